/*
 * The text log format and per-scope variable state; see
 * steptrace/record.h.
 */
#include "steptrace/record.h"

#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"

#define DASHES "---------------------"

static void put_str(struct st_buf *out, struct st_str s);

int
st_record_put_ms(struct st_buf *out, uint64_t ns)
{
    /* Integer rounding to 0.1 us (four decimals of a millisecond), half
     * up, so both sides print the same digits for the same count. */
    uint64_t q = ns / 100 + (ns % 100 >= 50);
    char frac[5];
    uint64_t f = q % 10000;
    int i;

    for (i = 3; i >= 0; i--) {
        frac[i] = (char)('0' + f % 10);
        f /= 10;
    }
    frac[4] = '\0';
    st_buf_put_u64(out, q / 10000);
    st_buf_append(out, ".", 1);
    return st_buf_append(out, frac, 4);
}

int
st_record_format_runtime(struct st_buf *out, uint64_t ns)
{
    st_buf_puts(out, "Runtime: ");
    st_record_put_ms(out, ns);
    return st_buf_puts(out, " ms");
}

int
st_record_format_async(struct st_buf *out, uint64_t step, uint64_t time_ns,
                       int kind, struct st_str body)
{
    static const char *const kinds[] = {"?", "CORO", "AWAIT", "TASK"};

    st_buf_puts(out, DASHES " Async Step ");
    st_buf_put_u64(out, step);
    st_buf_puts(out, " " DASHES "\nTime: ");
    st_record_put_ms(out, time_ns);
    st_buf_puts(out, " ms | ");
    st_buf_puts(out, kind >= 1 && kind <= 3 ? kinds[kind] : kinds[0]);
    st_buf_append(out, "\n", 1);
    put_str(out, body);
    st_buf_append(out, "\n", 1);
    return out->oom ? ST_ENOMEM : 0;
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

static void
put_str(struct st_buf *out, struct st_str s)
{
    st_buf_append(out, s.p, s.n);
}

static void
format_var(struct st_buf *out, const struct st_var_view *v)
{
    switch (v->change) {
    case ST_VAR_NEW: st_buf_puts(out, "[NEW] "); break;
    case ST_VAR_CHANGED: st_buf_puts(out, "[CHANGED] "); break;
    case ST_VAR_DELETED:
        st_buf_puts(out, "[DELETED] ");
        put_str(out, v->name);
        st_buf_append(out, "\n", 1);
        return;
    default: break;
    }
    put_str(out, v->name);
    st_buf_puts(out, ": ");
    put_str(out, v->type);
    st_buf_puts(out, " :: ");
    if (v->change == ST_VAR_CHANGED) {
        put_str(out, v->old);
        st_buf_puts(out, " -> ");
    }
    put_str(out, v->value);
    st_buf_append(out, "\n", 1);
}

static void
format_section(struct st_buf *out, const char *title,
               const struct st_var_view *vars, size_t n)
{
    size_t i;

    if (n == 0)
        return;
    st_buf_puts(out, "------> ");
    st_buf_puts(out, title);
    st_buf_puts(out, " <------\n");
    for (i = 0; i < n; i++)
        format_var(out, &vars[i]);
    st_buf_append(out, "\n", 1);
}

static void
format_event(struct st_buf *out, const struct st_step_view *v)
{
    struct st_str func = {"?", 1};

    if (v->nlocs > 0)
        func = v->locs[v->nlocs - 1].func;
    switch (v->event) {
    case ST_EVENT_CALL:
        st_buf_puts(out, "Call: ");
        put_str(out, func);
        break;
    case ST_EVENT_RETURN:
        st_buf_puts(out, "Return: ");
        put_str(out, func);
        st_buf_puts(out, " -> ");
        put_str(out, v->detail);
        break;
    case ST_EVENT_RETURN_EXC:
        st_buf_puts(out, "Return: ");
        put_str(out, func);
        st_buf_puts(out, " (raised)");
        break;
    default:
        st_buf_puts(out, "Exception: ");
        put_str(out, v->detail);
        break;
    }
    st_buf_append(out, "\n\n", 2);
}

int
st_record_format_step(struct st_buf *out, const struct st_step_view *v)
{
    size_t i;
    int changed = v->var_mode == ST_VARMODE_CHANGED;

    st_buf_puts(out, DASHES " Step ");
    st_buf_put_u64(out, v->step);
    st_buf_puts(out, " " DASHES "\n");
    st_record_format_runtime(out, v->runtime_ns);
    if (v->thread.p != NULL) {
        st_buf_puts(out, " | thread ");
        put_str(out, v->thread);
    }
    st_buf_append(out, "\n", 1);
    for (i = 0; i < v->nlocs; i++) {
        put_str(out, v->locs[i].file);
        st_buf_puts(out, "::");
        put_str(out, v->locs[i].func);
        st_buf_puts(out, " -- line ");
        st_buf_put_u64(out, v->locs[i].line);
        st_buf_append(out, "\n", 1);
    }
    st_buf_append(out, "\n", 1);
    if (v->event != ST_EVENT_STEP)
        format_event(out, v);
    else if (v->var_mode != ST_VARMODE_NONE) {
        format_section(out,
                       changed ? "Global variable changes" : "Global variables",
                       v->globals, v->nglobals);
        format_section(out,
                       changed ? "Local variable changes" : "Local variables",
                       v->locals, v->nlocals);
    }
    return out->oom ? ST_ENOMEM : 0;
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
    struct st_varent *e;

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
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct st_varent *ents = realloc(s->ents, cap * sizeof(*ents));

        if (ents == NULL) {
            free(copy);
            return ST_ENOMEM;
        }
        s->ents = ents;
        s->cap = cap;
    }
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
