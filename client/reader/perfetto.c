/*
 * `steptrace export --format perfetto` (export.h; docs/STEP-STORE.md
 * section 5): the Trace Event Format JSON that ui.perfetto.dev and
 * chrome://tracing open, written as the records come.
 *
 * Times.  Each thread's clock is its program time, the sum of the
 * runtimes of its records (rec.clock_ns): a record happens at its
 * thread's clock, and the line of a step runs until the thread's next
 * record.  Each file's times start at 0; a later file of a process
 * already seen (a rotated segment) starts where that process ended.
 *
 * Slices, per thread, as B/E pairs written in the order the records
 * came: a thread's events are then in time order and nest by
 * construction, whatever the importer's floating point makes of the
 * microseconds, and equal times keep their order (a call and its first
 * step).  A stack per thread holds the frames whose call slices are open:
 * CALL pushes; RETURN pops to its frame; a record of a frame below the
 * top pops the frames above it (a generator or coroutine that yielded
 * or awaited: its slice ends there, and goes on as a new "resumed" slice
 * at its next record).  A step's slice is open from its record to the
 * thread's next record.  Memory: the open slices.
 *
 * Async records (coroutines, awaits, tasks) are perfetto_async.c's; the
 * writer's state, shared with it, is in perfetto_state.h.
 */
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "json.h"
#include "perfetto_state.h"
#include "reader.h"
#include "steptrace/error.h"

struct pf_thread {
    uint32_t tid;
    uint32_t name_sid; /* The name its thread_name event gave. */
    int step_open;     /* The B of a step was written. */
    uint64_t last_ts;  /* ns: its last record's time. */
    uint32_t *stack;   /* Owned: frame ids of open call slices. */
    size_t depth, cap;
};

/* A process seen: where its next file's times start. */
struct pf_pid {
    uint64_t pid;
    uint64_t end;
};

/* ---- events ---- */

/* Starts an event: {"ph":PH,"pid":..,"tid":..,"ts":..  (the caller
 * adds its fields and the closing brace); also perfetto_async.c's. */
struct st_buf *
rd__perfetto_event(struct rd_perfetto *p, const char *ph, uint32_t tid,
                   uint64_t ts)
{
    struct st_buf *o = &rd_out;

    if (p->nevents++ > 0)
        rd_json_raw(o, ",\n", 2);
    else
        rd_json_raw(o, "\n", 1);
    RD_JSON_LIT(o, "{\"ph\":\"");
    rd_json_raw(o, ph, strlen(ph));
    RD_JSON_LIT(o, "\",\"pid\":");
    rd_json_u64(o, p->pid);
    RD_JSON_LIT(o, ",\"tid\":");
    rd_json_u64(o, tid);
    RD_JSON_LIT(o, ",\"ts\":");
    rd_json_us(o, ts);
    return o;
}

static void
pf_end(struct rd_perfetto *p, uint32_t tid, uint64_t ts)
{
    struct st_buf *o = rd__perfetto_event(p, "E", tid, ts);

    rd_json_raw(o, "}", 1);
}

/* ,"location":"file:line" */
static void
pf_location(struct st_buf *o, const struct st_rp_frame *f, uint32_t line)
{
    RD_JSON_LIT(o, ",\"location\":\"");
    if (f->file != NULL)
        rd_json_chars(o, f->file->p, f->file->n);
    rd_json_raw(o, ":", 1);
    rd_json_u64(o, line);
    rd_json_raw(o, "\"", 1);
}

static void
pf_str(struct st_buf *o, const struct st_rp_string *s)
{
    if (s == NULL)
        rd_json_raw(o, "\"\"", 2);
    else
        rd_json_str(o, s->p, s->n);
}

/* ---- threads and their stacks ---- */

static void
pf_thread_name(struct rd_perfetto *p, const struct st_replay *rp,
               struct pf_thread *t)
{
    const struct st_rp_thread *rt = st__idmap_get(&rp->threads, t->tid);
    struct st_buf *o = rd__perfetto_event(p, "M", t->tid, 0);
    char tmp[16];
    struct st_str name = st_replay_thread_name(rp, t->tid, tmp, sizeof(tmp));

    t->name_sid = rt != NULL ? rt->name_sid : 0;
    RD_JSON_LIT(o, ",\"name\":\"thread_name\",\"args\":{\"name\":");
    rd_json_str(o, name.p, name.n);
    RD_JSON_LIT(o, "}}");
}

/* The state of thread tid, made (and named) at its first record. */
static struct pf_thread *
pf_thread(struct rd_perfetto *p, const struct st_replay *rp, uint32_t tid)
{
    struct pf_thread *t = st__idmap_get(&p->threads, tid);

    if (t != NULL)
        return t;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->tid = tid;
    if (st__idmap_put(&p->threads, tid, t) != 0) {
        free(t);
        return NULL;
    }
    pf_thread_name(p, rp, t);
    return t;
}

static void
pf_close_step(struct rd_perfetto *p, struct pf_thread *t, uint64_t ts)
{
    if (t->step_open)
        pf_end(p, t->tid, ts);
    t->step_open = 0;
}

/* Ends the call slices above depth `keep`. */
static void
pf_pop_to(struct rd_perfetto *p, struct pf_thread *t, size_t keep, uint64_t ts)
{
    while (t->depth > keep) {
        t->depth--;
        pf_end(p, t->tid, ts);
    }
}

/* The index + 1 of frame id in t's stack (searched from the top), or
 * 0. */
static size_t
pf_find(const struct pf_thread *t, uint32_t id)
{
    size_t i;

    for (i = t->depth; i > 0; i--)
        if (t->stack[i - 1] == id)
            return i;
    return 0;
}

/* Opens a call slice for f: a CALL (resumed 0) or a frame whose record
 * came with no open slice (a generator resumed, a call begun before the
 * file). */
static int
pf_push(struct rd_perfetto *p, struct pf_thread *t,
        const struct st_rp_frame *f, uint32_t line, uint64_t ts, int resumed)
{
    uint32_t *s = st_grow(t->stack, &t->cap, t->depth + 1, sizeof(*s), 16);
    struct st_buf *o;

    if (s == NULL)
        return -1;
    t->stack = s;
    t->stack[t->depth++] = f->id;
    o = rd__perfetto_event(p, "B", t->tid, ts);
    RD_JSON_LIT(o, ",\"cat\":\"call\",\"name\":");
    pf_str(o, f->func);
    RD_JSON_LIT(o, ",\"args\":{\"frame\":");
    rd_json_u64(o, f->id);
    pf_location(o, f, line);
    if (resumed)
        RD_JSON_LIT(o, ",\"resumed\":true");
    RD_JSON_LIT(o, "}}");
    return 0;
}

/* Makes f's slice the innermost open one: ends those above it, or opens
 * one for it. */
static int
pf_align(struct rd_perfetto *p, struct pf_thread *t,
         const struct st_rp_frame *f, uint32_t line, uint64_t ts)
{
    size_t at;

    if (t->depth > 0 && t->stack[t->depth - 1] == f->id)
        return 0;
    at = pf_find(t, f->id);
    if (at > 0) {
        pf_pop_to(p, t, at, ts);
        return 0;
    }
    return pf_push(p, t, f, line, ts, 1);
}

/* ---- records ---- */

/* The thread of a step or event, its step closed at the record's
 * time; NULL when out of memory. */
static struct pf_thread *
pf_enter(struct rd_perfetto *p, const struct st_replay *rp, uint64_t *ts)
{
    const struct st_rp_frame *f = rp->rec.f;
    struct pf_thread *t = pf_thread(p, rp, f->tid);

    *ts = p->offset + rp->rec.clock_ns;
    if (t == NULL)
        return NULL;
    pf_close_step(p, t, *ts);
    t->last_ts = *ts;
    p->now = *ts;
    p->now_tid = t->tid;
    return t;
}

/* "locals": {"x": "int :: 5", "y": "[DELETED]"} of a step's changes. */
static void
pf_changes(struct st_buf *o, const char *key, const struct st_var_view *v,
           size_t n)
{
    size_t i;

    if (n == 0)
        return;
    rd_json_raw(o, ",", 1);
    rd_json_cstr(o, key);
    rd_json_raw(o, ":{", 2);
    for (i = 0; i < n; i++) {
        if (i > 0)
            rd_json_raw(o, ",", 1);
        rd_json_str(o, v[i].name.p, v[i].name.n);
        if (v[i].change == ST_VAR_DELETED) {
            RD_JSON_LIT(o, ":\"[DELETED]\"");
            continue;
        }
        RD_JSON_LIT(o, ":\"");
        rd_json_chars(o, v[i].type.p, v[i].type.n);
        RD_JSON_LIT(o, " :: ");
        rd_json_chars(o, v[i].value.p, v[i].value.n);
        rd_json_raw(o, "\"", 1);
    }
    rd_json_raw(o, "}", 1);
}

static int
pf_step(struct rd_perfetto *p, struct st_replay *rp)
{
    const struct st_rp_frame *f = rp->rec.f;
    uint32_t line = rp->rec.m->u.step.lineno;
    struct pf_thread *t;
    struct st_buf *o;
    uint64_t ts;

    t = pf_enter(p, rp, &ts);
    if (t == NULL || pf_align(p, t, f, line, ts) != 0)
        return -1;
    o = rd__perfetto_event(p, "B", t->tid, ts);
    RD_JSON_LIT(o, ",\"cat\":\"step\",\"name\":\"");
    if (f->func != NULL)
        rd_json_chars(o, f->func->p, f->func->n);
    rd_json_raw(o, ":", 1);
    rd_json_u64(o, line);
    RD_JSON_LIT(o, "\",\"args\":{\"step\":");
    rd_json_u64(o, rp->rec.step);
    pf_location(o, f, line);
    /* The replay's CHANGED-mode views of the record's diffs. */
    pf_changes(o, "locals", rp->lviews, rp->nlviews);
    pf_changes(o, "globals", rp->gviews, rp->ngviews);
    RD_JSON_LIT(o, "}}");
    t->step_open = 1;
    return 0;
}

static int
pf_call_event(struct rd_perfetto *p, struct st_replay *rp)
{
    const struct st_rp_record *rec = &rp->rec;
    const struct st_rp_frame *f = rec->f;
    uint32_t line = rec->m->u.event.lineno;
    struct pf_thread *t;
    struct st_buf *o;
    uint64_t ts;
    size_t at;

    t = pf_enter(p, rp, &ts);
    if (t == NULL)
        return -1;
    switch (rec->event) {
    case ST_EVENT_CALL:
        /* Above its caller: a generator that yielded to untraced code
         * which calls f ends there. */
        at = f->parent_id != 0 ? pf_find(t, f->parent_id) : 0;
        if (at > 0)
            pf_pop_to(p, t, at, ts);
        return pf_push(p, t, f, line, ts, 0);
    case ST_EVENT_RETURN:
    case ST_EVENT_RETURN_EXC:
        /* A return of a call begun before the file closes nothing. */
        at = pf_find(t, f->id);
        if (at == 0)
            return 0;
        pf_pop_to(p, t, at, ts);
        t->depth--;
        o = rd__perfetto_event(p, "E", t->tid, ts);
        if (rec->event == ST_EVENT_RETURN_EXC) {
            RD_JSON_LIT(o, ",\"args\":{\"raised\":true}}");
            return 0;
        }
        RD_JSON_LIT(o, ",\"args\":{\"returned\":\"");
        rd_json_chars(o, rec->m->u.event.detail.p, rec->m->u.event.detail.n);
        RD_JSON_LIT(o, "\"}}");
        return 0;
    default: break;
    }
    /* An exception: an instant in f's slice, named by its type. */
    if (pf_align(p, t, f, line, ts) != 0)
        return -1;
    {
        const char *d = rec->m->u.event.detail.p;
        size_t dn = rec->m->u.event.detail.n;
        const char *colon = dn > 0 ? memchr(d, ':', dn) : NULL;

        o = rd__perfetto_event(p, "i", t->tid, ts);
        RD_JSON_LIT(o, ",\"s\":\"t\",\"cat\":\"exception\",\"name\":");
        rd_json_str(o, d != NULL ? d : "", colon ? (size_t)(colon - d) : dn);
        RD_JSON_LIT(o, ",\"args\":{\"exception\":");
        rd_json_str(o, d != NULL ? d : "", dn);
        pf_location(o, f, line);
        RD_JSON_LIT(o, "}}");
    }
    return 0;
}

/* steptrace's own lines: process-wide instants. */
static void
pf_lines(struct rd_perfetto *p, const struct st_replay *rp)
{
    const char *s = rp->lines.data, *end = s + rp->lines.len, *nl;
    struct st_buf *o;

    while (s != NULL && s < end) {
        nl = memchr(s, '\n', (size_t)(end - s));
        if (nl == NULL)
            nl = end;
        o = rd__perfetto_event(p, "i", p->now_tid, p->now);
        RD_JSON_LIT(o, ",\"s\":\"p\",\"cat\":\"steptrace\",\"name\":");
        rd_json_str(o, s, (size_t)(nl - s));
        RD_JSON_LIT(o, "}");
        s = nl + 1;
    }
}

/* ---- files and processes ---- */

/* The first record of a file: its process, named at its first file,
 * and where its times start. */
static int
pf_start(struct rd_perfetto *p, const struct st_replay *rp)
{
    const struct st_rp_header *h = &rp->hdr;
    struct pf_pid *e = NULL;
    struct st_buf *o;
    size_t i;

    p->pid = h->seen ? h->pid : 0;
    for (i = 0; i < p->npids; i++)
        if (p->pids[i].pid == p->pid)
            e = &p->pids[i];
    if (e == NULL) {
        e = st_grow(p->pids, &p->pidcap, p->npids + 1, sizeof(*e), 8);
        if (e == NULL)
            return -1;
        p->pids = e;
        e = &p->pids[p->npids++];
        e->pid = p->pid;
        e->end = 0;
        o = rd__perfetto_event(p, "M", 0, 0);
        RD_JSON_LIT(o, ",\"name\":\"process_name\",\"args\":{\"name\":");
        rd_json_cstr(o, h->program != NULL && h->program[0] ? h->program
                                                            : "python");
        RD_JSON_LIT(o, "}}");
        o = rd__perfetto_event(p, "M", 0, 0);
        RD_JSON_LIT(o, ",\"name\":\"process_labels\",\"args\":{\"labels\":\"");
        for (i = 0; h->argv != NULL && i < h->argv_len; i++) {
            size_t n = strnlen(h->argv + i, h->argv_len - i);

            if (i > 0)
                rd_json_raw(o, " ", 1);
            rd_json_chars(o, h->argv + i, n);
            i += n;
        }
        RD_JSON_LIT(o, "\"}}");
    }
    p->offset = e->end;
    p->now = p->offset;
    p->now_tid = 0;
    p->started = 1;
    return 0;
}

/* Closes what the file left open at its last times. */
static void
pf_end_file(struct rd_perfetto *p)
{
    struct pf_thread *t;
    uint64_t end = p->now;
    size_t it = 0, i;

    if (!p->started)
        return;
    rd__perfetto_async_place(p, UINT64_MAX);
    while ((t = st__idmap_next(&p->threads, &it)) != NULL) {
        pf_close_step(p, t, t->last_ts);
        pf_pop_to(p, t, 0, t->last_ts);
        if (t->last_ts > end)
            end = t->last_ts;
        free(t->stack);
        free(t);
    }
    st__idmap_close(&p->threads);
    st__idmap_init(&p->threads);
    end = rd__perfetto_async_end_file(p, end);
    for (i = 0; i < p->npids; i++)
        if (p->pids[i].pid == p->pid && p->pids[i].end < end)
            p->pids[i].end = end;
    p->started = 0;
}

int
rd_perfetto_record(struct rd_perfetto *p, struct st_replay *rp,
                   const char *file)
{
    const struct st_rp_record *rec = &rp->rec;

    if (file != p->file) {
        pf_end_file(p);
        p->file = file;
    }
    if (rec->what == ST_RP_NONE) {
        /* A thread renamed: Perfetto keeps the last name given. */
        if (rec->m != NULL && rec->m->type == ST_MSG_THREAD) {
            struct pf_thread *t = st__idmap_get(&p->threads,
                                                rec->m->u.thread.tid);

            if (t != NULL && t->name_sid != rec->m->u.thread.name_sid)
                pf_thread_name(p, rp, t);
        }
        return 0;
    }
    if (!p->started && pf_start(p, rp) != 0)
        return -1;
    if (p->npend > 0 && rec->f != NULL)
        rd__perfetto_async_place(p, rec->f->tid == p->now_tid
                                        ? p->offset + rec->clock_ns
                                        : UINT64_MAX);
    switch (rec->what) {
    case ST_RP_STEP: return pf_step(p, rp);
    case ST_RP_EVENT: return pf_call_event(p, rp);
    case ST_RP_ASYNC: return rd__perfetto_async_record(p, rp);
    case ST_RP_LINES: pf_lines(p, rp); return 0;
    default: return 0;
    }
}

int
rd_perfetto_new(struct rd_perfetto **out)
{
    struct rd_perfetto *p = calloc(1, sizeof(*p));

    *out = p;
    if (p == NULL)
        return ST_ENOMEM;
    st__idmap_init(&p->threads);
    st_buf_init(&p->pend);
    RD_JSON_LIT(&rd_out, "{\"displayTimeUnit\":\"ns\",\"otherData\":"
                         "{\"producer\":\"steptrace export\"},"
                         "\"traceEvents\":[");
    return 0;
}

void
rd_perfetto_finish(struct rd_perfetto *p)
{
    pf_end_file(p);
    RD_JSON_LIT(&rd_out, "\n]}\n");
}

void
rd_perfetto_free(struct rd_perfetto *p)
{
    size_t it = 0;
    struct pf_thread *t;

    if (p == NULL)
        return;
    while ((t = st__idmap_next(&p->threads, &it)) != NULL) {
        free(t->stack);
        free(t);
    }
    st__idmap_close(&p->threads);
    rd__perfetto_async_free(p);
    free(p->pids);
    free(p);
}
