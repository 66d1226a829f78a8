/*
 * The text log's formatter (common/record.c) with arbitrary text: every
 * string of a record view is escaped with st_record_escape, as the
 * collector escapes what agents send (daemon/session.c), then rendered by
 * st_record_format_step / st_record_format_async.  Invariants checked:
 *   - escaped text holds no control byte and has exactly the length the
 *     escapes give (1 -> 2 bytes for \n \r \t, 1 -> 4 for \xNN);
 *   - a record has exactly the lines its view gives: one per location
 *     and one per variable (a value never adds a line), whatever the text;
 *   - the milliseconds printed are the rounded count, for any u64.
 * Out-of-bounds writes past the formatter's own size bound are ASan's.
 */
#include "fuzz.h"

#include "steptrace/buf.h"
#include "steptrace/error.h"
#include "steptrace/record.h"
#include "steptrace/wire.h"

#define REC_MAX_LOCS 6
#define REC_MAX_VARS 8
/* Escaped strings of one input: 2 per location, 4 per variable, thread
 * and detail. */
#define REC_MAX_STRS (2 * REC_MAX_LOCS + 8 * REC_MAX_VARS + 2)

struct rec_ctx {
    struct fuzz_in in;
    struct st_buf strs[REC_MAX_STRS];
    int nstrs;
};

static size_t
rec_count(const char *p, size_t n, char c)
{
    size_t i, k = 0;

    for (i = 0; i < n; i++)
        k += p[i] == c;
    return k;
}

/* Escapes a piece of the input and checks the escaping. */
static struct st_str
rec_text(struct rec_ctx *x, size_t max)
{
    struct st_buf *b = &x->strs[x->nstrs++];
    size_t n, i, want = 0;
    const char *p = fuzz_bytes(&x->in, max, &n);
    struct st_str s;

    FUZZ_CHECK(st_record_escape(b, p, n) == 0);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c >= 0x20 && c != 0x7f)
            want += 1;
        else if (c == '\n' || c == '\r' || c == '\t')
            want += 2;
        else
            want += 4;
    }
    FUZZ_CHECK(b->len == want);
    for (i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];

        FUZZ_CHECK(c >= 0x20 && c != 0x7f);
    }
    s.p = b->data;
    s.n = b->len;
    return s;
}

static void
rec_vars(struct rec_ctx *x, struct st_var_view *vars, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        vars[i].change = fuzz_u8(&x->in) % 4;
        vars[i].name = rec_text(x, 64);
        vars[i].type = rec_text(x, 32);
        vars[i].value = rec_text(x, 1024);
        vars[i].old = rec_text(x, 1024);
    }
}

/* Lines of a section of n variables: its title, n lines, a blank one. */
static size_t
rec_section_lines(size_t n)
{
    return n > 0 ? n + 2 : 0;
}

static void
rec_step(struct rec_ctx *x)
{
    struct st_loc_view locs[REC_MAX_LOCS];
    struct st_var_view globals[REC_MAX_VARS], locals[REC_MAX_VARS];
    struct st_step_view v;
    struct st_buf out;
    size_t i, lines;

    memset(&v, 0, sizeof(v));
    memset(globals, 0, sizeof(globals));
    memset(locals, 0, sizeof(locals));
    v.event = fuzz_u8(&x->in) % (ST_EVENT_MAX_ + 1);
    v.var_mode = 1 + fuzz_u8(&x->in) % 3;
    v.step = fuzz_u64(&x->in);
    v.runtime_ns = fuzz_u64(&x->in);
    if (fuzz_u8(&x->in) & 1)
        v.thread = rec_text(x, 64);
    v.detail = rec_text(x, 1024);
    v.nlocs = fuzz_u8(&x->in) % (REC_MAX_LOCS + 1);
    for (i = 0; i < v.nlocs; i++) {
        locs[i].file = rec_text(x, 256);
        locs[i].func = rec_text(x, 64);
        locs[i].line = fuzz_u32(&x->in);
    }
    v.locs = locs;
    v.nglobals = fuzz_u8(&x->in) % (REC_MAX_VARS + 1);
    v.nlocals = fuzz_u8(&x->in) % (REC_MAX_VARS + 1);
    rec_vars(x, globals, v.nglobals);
    rec_vars(x, locals, v.nlocals);
    v.globals = globals;
    v.locals = locals;

    /* Appended after text already there, as a sink's chunk holds it. */
    st_buf_init(&out);
    FUZZ_CHECK(st_buf_puts(&out, "x\n") == 0);
    FUZZ_CHECK(st_record_format_step(&out, &v) == 0);
    FUZZ_CHECK(out.len <= out.cap);
    /* Header, runtime, the locations, a blank line; then an event's line
     * and a blank one, or the variable sections. */
    lines = 1 + 3 + v.nlocs;
    if (v.event != ST_EVENT_STEP)
        lines += 2;
    else if (v.var_mode != ST_VARMODE_NONE)
        lines += rec_section_lines(v.nglobals) + rec_section_lines(v.nlocals);
    FUZZ_CHECK(rec_count(out.data, out.len, '\n') == lines);
    FUZZ_CHECK(out.data[out.len - 1] == '\n');
    st_buf_close(&out);
}

static void
rec_async(struct rec_ctx *x)
{
    uint64_t step = fuzz_u64(&x->in), t = fuzz_u64(&x->in);
    int kind = (int8_t)fuzz_u8(&x->in);
    struct st_buf out;
    struct st_str body;
    size_t n;

    /* The body is the agent's lines, raw. */
    body.p = fuzz_bytes(&x->in, 4096, &n);
    body.n = n;
    st_buf_init(&out);
    FUZZ_CHECK(st_record_format_async(&out, step, t, kind, body) == 0);
    FUZZ_CHECK(rec_count(out.data, out.len, '\n') ==
               3 + rec_count(body.p, body.n, '\n'));
    st_buf_close(&out);
}

/* "Runtime: <ms> ms": the digits are ns / 100 rounded half up. */
static void
rec_runtime(struct rec_ctx *x)
{
    uint64_t ns = fuzz_u64(&x->in), q, got = 0;
    struct st_buf out;
    size_t i;

    st_buf_init(&out);
    FUZZ_CHECK(st_record_format_runtime(&out, ns) == 0);
    FUZZ_CHECK(out.len > 17 && memcmp(out.data, "Runtime: ", 9) == 0);
    FUZZ_CHECK(memcmp(out.data + out.len - 3, " ms", 3) == 0);
    FUZZ_CHECK(out.data[out.len - 8] == '.');
    for (i = 9; i < out.len - 3; i++) {
        if (out.data[i] == '.')
            continue;
        FUZZ_CHECK(out.data[i] >= '0' && out.data[i] <= '9');
        got = got * 10 + (uint64_t)(out.data[i] - '0');
    }
    q = ns / 100 + (ns % 100 >= 50);
    FUZZ_CHECK(got == q);
    st_buf_close(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rec_ctx x;
    int i;

    memset(&x, 0, sizeof(x));
    x.in.p = data;
    x.in.n = size;
    for (i = 0; i < REC_MAX_STRS; i++)
        st_buf_init(&x.strs[i]);
    switch (fuzz_u8(&x.in) % 3) {
    case 0: rec_step(&x); break;
    case 1: rec_async(&x); break;
    default: rec_runtime(&x); break;
    }
    for (i = 0; i < REC_MAX_STRS; i++)
        st_buf_close(&x.strs[i]);
    return 0;
}
