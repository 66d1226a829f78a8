/*
 * The text log format and per-scope variable state; see
 * steptrace/record.h.
 *
 * A record is rendered in two passes: an upper bound of its size is
 * computed from the view, the buffer is grown once to hold it, and the
 * text is then written with a raw cursor (constant pieces by memcpy of
 * literals of known length).  This is the collector's per-record path,
 * so it avoids a capacity check and a strlen for every piece.
 */
#include "steptrace/record.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"
#include "steptrace/ring.h"

#define DASHES "---------------------"

/* Writes a string literal at cursor p and advances it. */
#define PUT_LIT(p, lit)                                                       \
    ((p) = (char *)memcpy((p), (lit), sizeof(lit) - 1) + sizeof(lit) - 1)

/* Bytes of a string literal, without the NUL. */
#define LIT_LEN(lit) (sizeof(lit) - 1)

/* Most bytes record_put_ms writes: the integer part of UINT64_MAX ns
 * (1.8e15 ms, 16 digits), a dot and four decimals. */
#define RECORD_MS_MAX 21

/* Section headers, indexed by [changed][local]. */
static const struct st_str record_titles[2][2] = {
    {{"------> Global variables <------\n", 33},
     {"------> Local variables <------\n", 32}},
    {{"------> Global variable changes <------\n", 40},
     {"------> Local variable changes <------\n", 39}},
};

static char *
record_put(char *p, struct st_str s)
{
    /* s.p may be NULL when s.n is 0, which memcpy must not see. */
    if (s.n != 0)
        memcpy(p, s.p, s.n);
    return p + s.n;
}

/*
 * Adds n to *acc, saturating: the views borrow strings that exist, but
 * one string may be shown many times, so the sum is not bounded by
 * memory.  A saturated size makes st_buf_reserve fail with ST_ENOMEM.
 */
static void
record_add(size_t *acc, size_t n)
{
    *acc = n > SIZE_MAX - *acc ? SIZE_MAX : *acc + n;
}

/* Writes ns as milliseconds with four decimals, rounded half up to
 * 0.1 us; at most RECORD_MS_MAX bytes. */
static char *
record_put_ms(char *p, uint64_t ns)
{
    /* Integer rounding, so both sides print the same digits for the same
     * count. */
    uint64_t q = ns / 100 + (ns % 100 >= 50);
    unsigned f = (unsigned)(q % 10000);

    p += st_buf_format_u64(p, q / 10000);
    p[0] = '.';
    p[1] = (char)('0' + f / 1000);
    p[2] = (char)('0' + f / 100 % 10);
    p[3] = (char)('0' + f / 10 % 10);
    p[4] = (char)('0' + f % 10);
    return p + 5;
}

int
st_record_put_ms(struct st_buf *out, uint64_t ns)
{
    if (st_buf_reserve(out, RECORD_MS_MAX) != 0)
        return ST_ENOMEM;
    out->len = (size_t)(record_put_ms(out->data + out->len, ns) - out->data);
    return 0;
}

int
st_record_format_runtime(struct st_buf *out, uint64_t ns)
{
    char *p;

    if (st_buf_reserve(out, LIT_LEN("Runtime:  ms") + RECORD_MS_MAX) != 0)
        return ST_ENOMEM;
    p = out->data + out->len;
    PUT_LIT(p, "Runtime: ");
    p = record_put_ms(p, ns);
    PUT_LIT(p, " ms");
    out->len = (size_t)(p - out->data);
    return 0;
}

int
st_record_format_async(struct st_buf *out, uint64_t step, uint64_t time_ns,
                       int kind, struct st_str body)
{
    static const struct st_str kinds[] = {{"?", 1},
                                          {"CORO", 4},
                                          {"AWAIT", 5},
                                          {"TASK", 4}};
    struct st_str k = kinds[kind >= 1 && kind <= 3 ? kind : 0];
    size_t size = LIT_LEN(DASHES " Async Step  " DASHES "\nTime:  ms | \n\n") +
                  ST_BUF_U64_MAX + RECORD_MS_MAX + k.n;
    char *p;

    record_add(&size, body.n);
    if (st_buf_reserve(out, size) != 0)
        return ST_ENOMEM;
    p = out->data + out->len;
    PUT_LIT(p, DASHES " Async Step ");
    p += st_buf_format_u64(p, step);
    PUT_LIT(p, " " DASHES "\nTime: ");
    p = record_put_ms(p, time_ns);
    PUT_LIT(p, " ms | ");
    p = record_put(p, k);
    *p++ = '\n';
    p = record_put(p, body);
    *p++ = '\n';
    out->len = (size_t)(p - out->data);
    return 0;
}

int
st_record_escape(struct st_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, start = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[4];
        size_t elen = 2;

        if (c >= 0x20 && c != 0x7f)
            continue;
        st_buf_append(out, s + start, i - start);
        start = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            elen = 4;
        }
        st_buf_append(out, esc, elen);
    }
    return st_buf_append(out, s + start, n - start);
}

/* Upper bound of one variable line (the longest prefix and every piece
 * any change kind writes). */
static void
record_var_size(size_t *acc, const struct st_var_view *v)
{
    record_add(acc, LIT_LEN("[CHANGED] :  ::  -> \n"));
    record_add(acc, v->name.n);
    record_add(acc, v->type.n);
    record_add(acc, v->value.n);
    if (v->change == ST_VAR_CHANGED)
        record_add(acc, v->old.n);
}

static char *
record_put_var(char *p, const struct st_var_view *v)
{
    switch (v->change) {
    case ST_VAR_NEW: PUT_LIT(p, "[NEW] "); break;
    case ST_VAR_CHANGED: PUT_LIT(p, "[CHANGED] "); break;
    case ST_VAR_DELETED:
        PUT_LIT(p, "[DELETED] ");
        p = record_put(p, v->name);
        *p++ = '\n';
        return p;
    default: break;
    }
    p = record_put(p, v->name);
    PUT_LIT(p, ": ");
    p = record_put(p, v->type);
    PUT_LIT(p, " :: ");
    if (v->change == ST_VAR_CHANGED) {
        p = record_put(p, v->old);
        PUT_LIT(p, " -> ");
    }
    p = record_put(p, v->value);
    *p++ = '\n';
    return p;
}

static void
record_section_size(size_t *acc, const struct st_var_view *vars, size_t n)
{
    size_t i;

    if (n == 0)
        return;
    /* The longest title and the blank line after the section. */
    record_add(acc, record_titles[1][0].n + 1);
    for (i = 0; i < n; i++)
        record_var_size(acc, &vars[i]);
}

static char *
record_put_section(char *p, struct st_str title,
                   const struct st_var_view *vars, size_t n)
{
    size_t i;

    if (n == 0)
        return p;
    p = record_put(p, title);
    for (i = 0; i < n; i++)
        p = record_put_var(p, &vars[i]);
    *p++ = '\n';
    return p;
}

/* The function an event line names: the last location's. */
static struct st_str
record_event_func(const struct st_step_view *v)
{
    struct st_str func = {"?", 1};

    if (v->nlocs > 0)
        func = v->locs[v->nlocs - 1].func;
    return func;
}

static char *
record_put_event(char *p, const struct st_step_view *v)
{
    struct st_str func = record_event_func(v);

    switch (v->event) {
    case ST_EVENT_CALL:
        PUT_LIT(p, "Call: ");
        p = record_put(p, func);
        break;
    case ST_EVENT_RETURN:
        PUT_LIT(p, "Return: ");
        p = record_put(p, func);
        PUT_LIT(p, " -> ");
        p = record_put(p, v->detail);
        break;
    case ST_EVENT_RETURN_EXC:
        PUT_LIT(p, "Return: ");
        p = record_put(p, func);
        PUT_LIT(p, " (raised)");
        break;
    default:
        PUT_LIT(p, "Exception: ");
        p = record_put(p, v->detail);
        break;
    }
    PUT_LIT(p, "\n\n");
    return p;
}

/* Upper bound of the bytes st_record_format_step writes for v. */
static size_t
record_step_size(const struct st_step_view *v)
{
    size_t size = LIT_LEN(DASHES " Step  " DASHES "\nRuntime:  ms"
                                 " | thread \n\n") +
                  ST_BUF_U64_MAX + RECORD_MS_MAX;
    size_t i;

    record_add(&size, v->thread.n);
    for (i = 0; i < v->nlocs; i++) {
        record_add(&size, LIT_LEN(":: -- line \n") + ST_BUF_U64_MAX);
        record_add(&size, v->locs[i].file.n);
        record_add(&size, v->locs[i].func.n);
    }
    if (v->event != ST_EVENT_STEP) {
        /* The longest fixed text of the four event lines. */
        record_add(&size, LIT_LEN("Exception: Return:  -> (raised)\n\n"));
        record_add(&size, record_event_func(v).n);
        record_add(&size, v->detail.n);
    }
    else if (v->var_mode != ST_VARMODE_NONE) {
        record_section_size(&size, v->globals, v->nglobals);
        record_section_size(&size, v->locals, v->nlocals);
    }
    return size;
}

int
st_record_format_step(struct st_buf *out, const struct st_step_view *v)
{
    int changed = v->var_mode == ST_VARMODE_CHANGED;
    size_t i;
    char *p;

    if (st_buf_reserve(out, record_step_size(v)) != 0)
        return ST_ENOMEM;
    p = out->data + out->len;
    if (v->event == ST_EVENT_STEP) {
        PUT_LIT(p, DASHES " Step ");
        p += st_buf_format_u64(p, v->step);
        PUT_LIT(p, " " DASHES "\nRuntime: ");
    }
    else {
        /* Events are not numbered steps. */
        PUT_LIT(p, DASHES " Event " DASHES "\nRuntime: ");
    }
    p = record_put_ms(p, v->runtime_ns);
    PUT_LIT(p, " ms");
    if (v->thread.p != NULL) {
        PUT_LIT(p, " | thread ");
        p = record_put(p, v->thread);
    }
    *p++ = '\n';
    for (i = 0; i < v->nlocs; i++) {
        p = record_put(p, v->locs[i].file);
        PUT_LIT(p, "::");
        p = record_put(p, v->locs[i].func);
        PUT_LIT(p, " -- line ");
        p += st_buf_format_u64(p, v->locs[i].line);
        *p++ = '\n';
    }
    *p++ = '\n';
    if (v->event != ST_EVENT_STEP) {
        p = record_put_event(p, v);
    }
    else if (v->var_mode != ST_VARMODE_NONE) {
        p = record_put_section(p, record_titles[changed][0], v->globals,
                               v->nglobals);
        p = record_put_section(p, record_titles[changed][1], v->locals,
                               v->nlocals);
    }
    out->len = (size_t)(p - out->data);
    return 0;
}

void
st_varstate_init(struct st_varstate *s)
{
    s->ents = NULL;
    s->n = 0;
    s->cap = 0;
}

void
st_varstate_close(struct st_varstate *s)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        free(s->ents[i].value);
    free(s->ents);
    st_varstate_init(s);
}

long
st_varstate_find(const struct st_varstate *s, uint32_t name_sid)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (s->ents[i].name_sid == name_sid)
            return (long)i;
    return -1;
}

static char *
dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);

    if (d == NULL)
        return NULL;
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

int
st_varstate_set(struct st_varstate *s, uint32_t name_sid, uint32_t type_sid,
                const char *value, size_t n, char **old_out,
                size_t *old_len_out)
{
    long i = st_varstate_find(s, name_sid);
    char *copy = dup_bytes(value, n);
    struct st_varent *e, *ents;

    if (copy == NULL)
        return ST_ENOMEM;
    if (i >= 0) {
        e = &s->ents[i];
        if (old_out != NULL) {
            *old_out = e->value;
            *old_len_out = e->value_len;
        }
        else {
            free(e->value);
        }
        e->type_sid = type_sid;
        e->value = copy;
        e->value_len = n;
        return 1;
    }
    ents = st_grow(s->ents, &s->cap, s->n + 1, sizeof(*ents), 8);
    if (ents == NULL) {
        free(copy);
        return ST_ENOMEM;
    }
    s->ents = ents;
    e = &s->ents[s->n++];
    e->name_sid = name_sid;
    e->type_sid = type_sid;
    e->value = copy;
    e->value_len = n;
    return 0;
}

int
st_varstate_del(struct st_varstate *s, uint32_t name_sid)
{
    long i = st_varstate_find(s, name_sid);

    if (i < 0)
        return 0;
    free(s->ents[i].value);
    memmove(&s->ents[i], &s->ents[i + 1],
            (s->n - (size_t)i - 1) * sizeof(s->ents[0]));
    s->n--;
    return 1;
}

int
st_record_escaped(struct st_buf *scratch, const char *p, size_t n,
                  const char **out, size_t *outn)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (ch < 0x20 || ch == 0x7f)
            break;
    }
    if (i == n) {
        *out = n > 0 ? p : "";
        *outn = n;
        return 0;
    }
    scratch->len = 0;
    if (st_record_escape(scratch, p, n) != 0) {
        st_buf_close(scratch);
        return ST_ENOMEM;
    }
    *out = scratch->data;
    *outn = scratch->len;
    return 0;
}

/* ---- steptrace's own lines ---- */

const char st_record_cut_line[] = "[steptrace] 1 record lost in this region: "
                                  "the process ended while writing it";

/* The line ends: a NUL after it, not counted. */
static int
record_line_end(struct st_buf *out)
{
    if (st_buf_append(out, "", 1) != 0)
        return ST_ENOMEM;
    out->len--;
    return 0;
}

int
st_record_note_line(struct st_buf *out, int at_step, uint64_t step,
                    const char *text, size_t n)
{
    if (st_buf_puts(out, "[steptrace] ") != 0 ||
        (at_step &&
         (st_buf_puts(out, "step ") != 0 || st_buf_put_u64(out, step) != 0 ||
          st_buf_puts(out, " ") != 0)) ||
        st_buf_append(out, text, n) != 0)
        return ST_ENOMEM;
    return record_line_end(out);
}

int
st_record_lost_line(struct st_buf *out, uint64_t lost)
{
    if (st_buf_puts(out, "[steptrace] ") != 0 ||
        st_buf_put_u64(out, lost) != 0 ||
        st_buf_puts(out, " records lost in this region") != 0)
        return ST_ENOMEM;
    return record_line_end(out);
}

/* "SIGTERM" for 15: the names every Linux has, else "signal N". */
static const char *
record_signame(int sig, char *buf, size_t n)
{
    static const char *const names[] = {
        [SIGHUP] = "SIGHUP",       [SIGINT] = "SIGINT",
        [SIGQUIT] = "SIGQUIT",     [SIGILL] = "SIGILL",
        [SIGTRAP] = "SIGTRAP",     [SIGABRT] = "SIGABRT",
        [SIGBUS] = "SIGBUS",       [SIGFPE] = "SIGFPE",
        [SIGKILL] = "SIGKILL",     [SIGUSR1] = "SIGUSR1",
        [SIGSEGV] = "SIGSEGV",     [SIGUSR2] = "SIGUSR2",
        [SIGPIPE] = "SIGPIPE",     [SIGALRM] = "SIGALRM",
        [SIGTERM] = "SIGTERM",     [SIGSTKFLT] = "SIGSTKFLT",
        [SIGXCPU] = "SIGXCPU",     [SIGXFSZ] = "SIGXFSZ",
        [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
        [SIGIO] = "SIGIO",         [SIGPWR] = "SIGPWR",
        [SIGSYS] = "SIGSYS",
    };

    if (sig > 0 && (size_t)sig < sizeof(names) / sizeof(names[0]) &&
        names[sig] != NULL)
        return names[sig];
    snprintf(buf, n, "signal %d", sig);
    return buf;
}

int
st_record_ended_line(struct st_buf *out, int kind, int sig, const char *detail,
                     size_t dn, uint64_t steps)
{
    char signame[32];
    int r;

    if (kind == ST_RING_END_SIGNAL)
        r = st_buf_puts(out, "[steptrace] the process ended by ") ||
            st_buf_puts(out, record_signame(sig, signame, sizeof(signame))) ||
            st_buf_puts(out, " after step ") || st_buf_put_u64(out, steps);
    else if (kind == ST_RING_END_EXEC)
        r = st_buf_puts(out, "[steptrace] the process called exec (") ||
            st_buf_append(out, detail, dn) ||
            st_buf_puts(out, ") after step ") || st_buf_put_u64(out, steps);
    else
        r = st_buf_puts(out, "[steptrace] the process vanished after step ") ||
            st_buf_put_u64(out, steps) ||
            st_buf_puts(out, " without ending the region (killed by SIGKILL "
                             "or the out-of-memory killer?)");
    return r != 0 ? ST_ENOMEM : record_line_end(out);
}
