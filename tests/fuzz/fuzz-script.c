/*
 * A traced program's traffic; see fuzz-script.h.  The program: a module
 * that sets a global, calls f(), whose loop changes a local with text
 * that needs escaping, raises and catches, returns; async and note
 * records, a loss, a FLUSH; a second tracer with its own files; the
 * region ends.
 */
#include "fuzz-script.h"

#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

#define LIT(s) s, sizeof(s) - 1

void
fuzz_script_init(struct fuzz_script *s)
{
    memset(s, 0, sizeof(*s));
    s->level = ST_LEVEL_INFO;
    s->var_mode = ST_VARMODE_ALL;
    s->formats = ST_FORMAT_TEXT;
    s->per_frame = 1;
    s->loops = 3;
    s->log_dir = "/logs";
}

int
fuzz_script_frame(struct st_buf *out, const char *p, size_t n)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];

    st_wire_put_header(hdr, (uint32_t)n);
    if (st_buf_append(out, hdr, sizeof(hdr)) != 0 ||
        st_buf_append(out, p, n) != 0)
        return ST_ENOMEM;
    return 0;
}

/* The messages after HELLO, one after the other, into b; ends[] gets
 * the end of each (for framing).  @return the count, or -1. */
static int
script_body(const struct fuzz_script *s, struct st_buf *b, size_t *ends,
            int max)
{
    static const char *const strs[] = {"/srv/app/prog.py",
                                       "<module>",
                                       "f",
                                       "x",
                                       "int",
                                       "MainThread",
                                       "s",
                                       "str",
                                       "",
                                       "worker\x01\n",
                                       "t",
                                       "list"};
    msgpack_packer pk;
    char val[64];
    int n = 0, i, r = 0;
    size_t k;

#define END()                                                                 \
    do {                                                                      \
        if (n < max)                                                          \
            ends[n++] = b->len;                                               \
    } while (0)
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    for (k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
        r |= st_wire_pack_str(&pk, (uint32_t)k + 1, strs[k], strlen(strs[k]));
        END();
    }
    r |= st_wire_pack_region(&pk, 1, 1, s->log_dir, strlen(s->log_dir),
                             s->level, s->var_mode, s->max_log_bytes,
                             s->max_log_files, s->formats);
    END();
    r |= st_wire_pack_thread(&pk, 1, 6);
    END();
    r |= st_wire_put_frame(b, 1, 1, 0, 1, 2, 1, ST_FRAME_MODULE, 1);
    END();
    r |= st_wire_put_step_head(b, 1, 1, 1, 84100);
    r |= st_wire_put_diff_begin(b, 1);
    r |= st_wire_put_var_set(b, 4, 5, LIT("1"));
    r |= st_wire_put_nil(b);
    END();
    r |= st_wire_put_frame(b, 2, 1, 1, 1, 3, 1, 0, 1);
    END();
    r |= st_wire_pack_event(&pk, 1, 2, 3, 1000, ST_EVENT_CALL, "", 0);
    END();
    for (i = 0; i < s->loops; i++) {
        int len = snprintf(val, sizeof(val), "'line %d\\n'\n\ttab", i);

        r |= st_wire_put_step_head(b, 1, 2, 4 + (uint32_t)i % 2,
                                   (uint64_t)i * 1000003);
        r |= st_wire_put_nil(b);
        r |= st_wire_put_diff_begin(b, i == 2 ? 2 : 1);
        r |= st_wire_put_var_set(b, 7, 8, val, (size_t)len);
        if (i == 2)
            r |= st_wire_put_var_del(b, 11);
        END();
        if (i == 1) {
            r |= st_wire_put_step_head(b, 1, 2, 6, 50);
            r |= st_wire_put_nil(b);
            r |= st_wire_put_diff_begin(b, 1);
            r |= st_wire_put_var_set(b, 11, 12, LIT("[1, 2, {'k': (3, 4)}]"));
            END();
        }
    }
    r |= st_wire_put_line(b, 2, 7, 149);
    END();
    r |= st_wire_pack_event(&pk, 1, 2, 8, 10, ST_EVENT_EXCEPTION,
                            LIT("ZeroDivisionError: division by zero"));
    END();
    r |= st_wire_pack_event(&pk, 1, 2, 9, 10, ST_EVENT_RETURN, LIT("'ok'"));
    END();
    r |= st_wire_pack_async(&pk, 1, 123456, ST_ASYNC_AWAIT,
                            LIT("\xe2\x8f\xb3 AWAIT START: fetch\n"
                                "   File: /srv/app/prog.py:15\n"));
    END();
    r |= st_wire_pack_note(&pk, 1, ST_NOTE_AT_STEP, LIT("forked child 42"));
    END();
    r |= st_wire_pack_lost(&pk, 1, 3);
    END();
    r |= st_wire_put_frame_end(b, 2);
    END();
    r |= st_wire_pack_flush(&pk, 1);
    END();
    r |= st_wire_pack_thread(&pk, 2, 10);
    END();
    r |= st_wire_pack_region(&pk, 2, 2, LIT("/logs/other"), ST_LEVEL_DEBUG,
                             ST_VARMODE_CHANGED, 0, 0,
                             ST_FORMAT_TEXT | ST_FORMAT_STEPS);
    END();
    r |= st_wire_put_frame(b, 3, 2, 0, 1, 3, 2, 0, 2);
    END();
    r |= st_wire_put_step_head(b, 2, 3, 4, 7);
    r |= st_wire_put_diff_begin(b, 0);
    r |= st_wire_put_diff_begin(b, 1);
    r |= st_wire_put_var_set(b, 4, 5, LIT("2"));
    END();
    r |= st_wire_put_step_head(b, 2, 3, 5, 7);
    r |= st_wire_put_nil(b);
    r |= st_wire_put_diff_begin(b, 1);
    r |= st_wire_put_var_set(b, 4, 5, LIT("3"));
    END();
    r |= st_wire_pack_region_end(&pk, 2);
    END();
    r |= st_wire_pack_region_end(&pk, 1);
    END();
    r |= st_wire_pack_flush(&pk, 2);
    END();
#undef END
    return r != 0 ? -1 : n;
}

int
fuzz_script_agent(const struct fuzz_script *s, struct st_buf *out)
{
    /* Every message's end: its frame ends there (a few per loop). */
    int max = 64 + 2 * s->loops;
    size_t *ends = malloc(sizeof(*ends) * (size_t)max);
    struct st_buf b;
    msgpack_packer pk;
    int n, i, r = 0;
    size_t start = 0;

    if (ends == NULL)
        return ST_ENOMEM;
    st_buf_init(&b);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    r |= st_wire_pack_hello(&pk, 4242, LIT("prog.py"), s->ring, 0);
    r |= fuzz_script_frame(out, b.data, b.len);
    b.len = 0;
    n = script_body(s, &b, ends, max);
    if (r != 0 || n < 0 || n >= max) {
        free(ends);
        st_buf_close(&b);
        return ST_ENOMEM;
    }
    if (s->ring != 0 || s->per_frame <= 0) {
        /* Raw messages into the ring, or one frame of them all. */
        r = s->ring != 0 ? st_buf_append(out, b.data, b.len)
                         : fuzz_script_frame(out, b.data, b.len);
        free(ends);
        st_buf_close(&b);
        return r != 0 ? ST_ENOMEM : 0;
    }
    for (i = 0; i < n; i += s->per_frame) {
        size_t end =
            ends[i + s->per_frame - 1 < n ? i + s->per_frame - 1 : n - 1];

        r |= fuzz_script_frame(out, b.data + start, end - start);
        start = end;
    }
    free(ends);
    st_buf_close(&b);
    return r != 0 ? ST_ENOMEM : 0;
}
