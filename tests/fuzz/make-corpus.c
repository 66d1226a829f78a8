/*
 * Writes the seeds of fuzz_session and fuzz_control into
 * DIR/session/ and DIR/control/ (tests/fuzz/corpus/ in the tree), built
 * with common's encoders (fuzz-script.c): whole agent connections at
 * every level, variable mode and log format, with and without a ring,
 * framed one message a frame, a few a frame or all in one, written in
 * pieces of several sizes; control connections asking for STATUS and
 * TAIL.  The seeds of the other harnesses come from elsewhere
 * (docs/RELIABILITY.md "Fuzzing": recorded .steps files, YAML files,
 * record views).
 *
 * Usage: fuzz-make-corpus DIR   (rerun after a protocol change)
 */
#include <stdio.h>
#include <string.h>

#include "steptrace/buf.h"
#include "steptrace/wire.h"

#include "fuzz-script.h"

#define LIT(s) s, sizeof(s) - 1

static int
write_seed(const char *dir, const char *name, const unsigned char *head,
           size_t hlen, const struct st_buf *b)
{
    char path[4096];
    FILE *f;
    int r = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    if (fwrite(head, 1, hlen, f) != hlen ||
        (b->len > 0 && fwrite(b->data, 1, b->len, f) != b->len))
        r = -1;
    if (fclose(f) != 0)
        r = -1;
    return r;
}

static int
session_seeds(const char *dir)
{
    static const unsigned levels[] = {ST_LEVEL_DEBUG, ST_LEVEL_INFO,
                                      ST_LEVEL_WARNING, ST_LEVEL_ERROR};
    static const char *const lnames[] = {"debug", "info", "warning", "error"};
    static const char *const mnames[] = {"", "all", "changed", "none"};
    static const char *const fnames[] = {"", "text", "steps", "both"};
    int i, r = 0, n = 0;

    for (i = 0; i < 36; i++) {
        struct fuzz_script s;
        struct st_buf b;
        unsigned char head[3];
        char name[128];

        fuzz_script_init(&s);
        s.level = levels[i % 4];
        s.var_mode = 1 + (unsigned)(i / 4) % 3;
        s.formats = 1 + (unsigned)i % 3;
        s.ring = i % 3 == 0 ? 65536 : 0;
        s.per_frame = i % 5 == 1 ? 0 : i % 5 == 2 ? 4 : 1;
        s.loops = 2 + i % 4;
        if (i % 7 == 3) {
            /* Rotation: small files, two backups. */
            s.max_log_bytes = 300;
            s.max_log_files = 2;
        }
        /* Pieces of 4 KiB, 1 byte, 7 bytes (2^0 is 1; 2^12 4 KiB). */
        head[0] = i % 4 == 0 ? 12 : i % 4 == 1 ? 0 : i % 4 == 2 ? 3 : 16;
        /* A ring agent ends by exit, by SIGKILL-like silence, by a
         * signal (SIGTERM) or by exec. */
        head[1] = (unsigned char)((i / 3) % 4 | (i % 2 ? 15 << 2 : 0));
        /* The collector's log_format; every fifth with the smallest
         * memory bound, every seventh with a SIGHUP halfway. */
        head[2] = (unsigned char)(i % 4 | (i % 5 == 4 ? 4 : 0) |
                                  (i % 7 == 5 ? 8 : 0));
        st_buf_init(&b);
        if (fuzz_script_agent(&s, &b) != 0)
            return -1;
        snprintf(name, sizeof(name), "agent-%02d-%s-%s-%s%s", i, lnames[i % 4],
                 mnames[s.var_mode], fnames[s.formats], s.ring ? "-ring" : "");
        r |= write_seed(dir, name, head, 3, &b);
        st_buf_close(&b);
        n++;
    }
    /* Past 16 KiB, past the 64 KiB read chunk (a large frame, which
     * waits for room under the memory bound), past the ring's size (the
     * agent waits for room, the ring wraps). */
    for (i = 0; i < 3; i++) {
        static const char *const names[] = {"big-frames", "big-one-frame",
                                            "big-ring"};
        static const unsigned char head[3] = {16, 1, 3 | 4 | 8};
        struct fuzz_script s;
        struct st_buf b;

        fuzz_script_init(&s);
        s.loops = i == 0 ? 500 : 2200;
        s.per_frame = i == 1 ? 0 : 1;
        s.ring = i == 2 ? 65536 : 0;
        s.formats = ST_FORMAT_TEXT | ST_FORMAT_STEPS;
        st_buf_init(&b);
        if (fuzz_script_agent(&s, &b) != 0)
            return -1;
        r |= write_seed(dir, names[i], head, 3, &b);
        st_buf_close(&b);
        n++;
    }
    return r != 0 ? -1 : n;
}

/* One control connection: HELLO, then what `what` says. */
static int
control_seed(const char *dir, const char *name, int what)
{
    struct st_buf b, msg;
    msgpack_packer pk;
    unsigned char head[2] = {12, (unsigned char)(what & 1)};
    int r = 0;

    st_buf_init(&b);
    st_buf_init(&msg);
    msgpack_packer_init(&pk, &msg, st_buf_msgpack_write);
#define FRAME()                                                               \
    do {                                                                      \
        r |= fuzz_script_frame(&b, msg.data, msg.len);                        \
        msg.len = 0;                                                          \
    } while (0)
    r |= st_wire_pack_hello(&pk, 0, LIT("steptrace daemon"), 0, 0);
    FRAME();
    switch (what) {
    case 0:
        r |= st_wire_pack_status(&pk, 1);
        FRAME();
        break;
    case 1:
        r |= st_wire_pack_status(&pk, 7);
        r |= st_wire_pack_status(&pk, UINT64_MAX);
        FRAME();
        break;
    case 2:
        r |= st_wire_pack_tail(&pk, 0, "", 0);
        FRAME();
        break;
    case 3:
        r |= st_wire_pack_tail(&pk, 0, LIT("*.log"));
        FRAME();
        break;
    case 4:
        r |= st_wire_pack_tail(&pk, 0, LIT("/logs/*"));
        FRAME();
        break;
    case 5:
        r |= st_wire_pack_tail(&pk, 1, LIT("[a-")); /* A pid not ours. */
        FRAME();
        break;
    case 6:
        r |= st_wire_pack_status(&pk, 2);
        FRAME();
        r |= st_wire_pack_tail(&pk, 0, LIT("*tracer*"));
        FRAME();
        break;
    case 7:
        /* Anything after TAIL is a protocol error. */
        r |= st_wire_pack_tail(&pk, 0, "", 0);
        FRAME();
        r |= st_wire_pack_status(&pk, 3);
        FRAME();
        break;
    default:
        /* STATUS and TAIL in one frame. */
        r |= st_wire_pack_status(&pk, 4);
        r |= st_wire_pack_tail(&pk, 0, LIT("*.steps"));
        FRAME();
        break;
    }
#undef FRAME
    r |= write_seed(dir, name, head, 2, &b);
    st_buf_close(&b);
    st_buf_close(&msg);
    return r;
}

int
main(int argc, char **argv)
{
    static const char *const cnames[] = {
        "status",           "status-twice", "tail-all",
        "tail-glob",        "tail-dir",     "tail-other-pid",
        "status-then-tail", "after-tail",   "one-frame",
    };
    char dir[4096];
    int i, n, r = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s/session", argv[1]);
    n = session_seeds(dir);
    if (n < 0)
        return 1;
    snprintf(dir, sizeof(dir), "%s/control", argv[1]);
    for (i = 0; i < (int)(sizeof(cnames) / sizeof(cnames[0])); i++)
        r |= control_seed(dir, cnames[i], i);
    printf("%d session seeds, %d control seeds in %s\n", n, i, argv[1]);
    return r != 0;
}
