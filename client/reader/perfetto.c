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
 * thread's next record.  Memory: the open slices and async records.
 */
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "json.h"
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

/* An async slice begun (COROUTINE START, AWAIT START, TASK CREATED). */
struct pf_async {
    uint32_t kind; /* enum st_async_kind */
    uint32_t region_id;
    char *name; /* Owned. */
    size_t name_n;
    uint64_t time_ns; /* The record's region time. */
    uint64_t id;
};

/* An async event written into rd_perfetto.pend, its time to come. */
struct pf_pend {
    size_t start; /* Its bytes in pend, up to the next one's start. */
    size_t tsat;  /* Where its time goes (PF_TS_WIDTH spaces). */
    uint64_t wall;
};

/* Room for a time in microseconds: 20 digits, a point and 3 more. */
#define PF_TS_WIDTH 24
/* Async events held at most before they are placed anyway. */
#define PF_MAX_PEND 4096

/* A process seen: where its next file's times start. */
struct pf_pid {
    uint64_t pid;
    uint64_t end;
};

struct rd_perfetto {
    const char *file; /* Borrowed: the file being read. */
    int started;      /* Its pid and offset are known. */
    uint64_t pid, offset;
    uint64_t now; /* ns: the time of the file's latest record. */
    uint32_t now_tid;
    uint64_t nevents;
    struct st_idmap threads; /* tid -> struct pf_thread, owned. */
    struct pf_async *asyncs; /* Owned. */
    size_t nasync, asynccap;
    uint64_t next_id;
    struct pf_pid *pids; /* Owned. */
    size_t npids, pidcap;
    /* Async events wait for the thread's next record (pf_async_place). */
    struct st_buf pend;    /* Owned. */
    struct pf_pend *pends; /* Owned. */
    size_t npend, pendcap;
    int64_t delta;     /* Time minus region time of the last placed. */
    int anchored;      /* delta is set. */
    uint64_t async_ts; /* The last async event's time. */
};

/* ---- events ---- */

/* Starts an event: {"ph":PH,"pid":..,"tid":..,"ts":..  (the caller
 * adds its fields and the closing brace). */
static struct st_buf *
pf_event(struct rd_perfetto *p, const char *ph, uint32_t tid, uint64_t ts)
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
    struct st_buf *o = pf_event(p, "E", tid, ts);

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
    struct st_buf *o = pf_event(p, "M", t->tid, 0);
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
    o = pf_event(p, "B", t->tid, ts);
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
    o = pf_event(p, "B", t->tid, ts);
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
        o = pf_event(p, "E", t->tid, ts);
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

        o = pf_event(p, "i", t->tid, ts);
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
        o = pf_event(p, "i", p->now_tid, p->now);
        RD_JSON_LIT(o, ",\"s\":\"p\",\"cat\":\"steptrace\",\"name\":");
        rd_json_str(o, s, (size_t)(nl - s));
        RD_JSON_LIT(o, "}");
        s = nl + 1;
    }
}

/* ---- async records ---- */

static void
pf_async_free(struct pf_async *a)
{
    free(a->name);
    a->name = NULL;
}

/* What the first line of an async record says (docs/LOG-FORMAT.md
 * section 9). */
struct pf_async_line {
    int begin; /* 1: a start, 0: an end, -1: not understood. */
    const char *name;
    size_t name_n;
    int has_dur;
    uint64_t dur_ns; /* An end's "Duration:" / "Total duration:". */
};

static void
pf_async_parse(struct st_str body, struct pf_async_line *out)
{
    static const struct {
        const char *mark;
        int begin;
    } marks[] = {{"COROUTINE START: ", 1}, {"COROUTINE END: ", 0},
                 {"AWAIT START: ", 1},     {"AWAIT END: ", 0},
                 {"TASK CREATED: ", 1},    {"TASK DONE: ", 0}};
    const char *nl, *d, *end = body.p + body.n;
    size_t ln, i, k;

    memset(out, 0, sizeof(*out));
    out->begin = -1;
    if (body.n == 0)
        return;
    nl = memchr(body.p, '\n', body.n);
    ln = nl != NULL ? (size_t)(nl - body.p) : body.n;
    for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        const char *at = memmem(body.p, ln, marks[i].mark,
                                strlen(marks[i].mark));

        if (at == NULL)
            continue;
        out->begin = marks[i].begin;
        out->name = at + strlen(marks[i].mark);
        out->name_n = (size_t)(body.p + ln - out->name);
        break;
    }
    /* An end's name is followed by " ✓" or " ✗". */
    if (out->begin == 0 && out->name_n >= 4 &&
        (memcmp(out->name + out->name_n - 4, " \xe2\x9c\x93", 4) == 0 ||
         memcmp(out->name + out->name_n - 4, " \xe2\x9c\x97", 4) == 0))
        out->name_n -= 4;
    d = nl != NULL ? memmem(nl, (size_t)(end - nl), "uration: ", 9) : NULL;
    if (out->begin != 0 || d == NULL)
        return;
    /* "10.4123 ms" */
    for (d += 9, k = 0; d < end && *d >= '0' && *d <= '9'; d++)
        out->dur_ns = out->dur_ns * 10 + (uint64_t)(*d - '0');
    out->dur_ns *= 1000000;
    if (d < end && *d == '.')
        for (d++, k = 100000; d < end && *d >= '0' && *d <= '9'; d++) {
            out->dur_ns += (uint64_t)(*d - '0') * k;
            k /= 10;
        }
    out->has_dur = 1;
}

/* Starts an async event at region time `wall`, held in p->pend until
 * pf_async_place gives it a time.  @return the buffer to add its fields
 * to (and the closing brace). */
static struct st_buf *
pf_async_event(struct rd_perfetto *p, const char *ph, uint64_t wall)
{
    static const char spaces[PF_TS_WIDTH + 1] = "                        ";
    struct pf_pend *e = st_grow(p->pends, &p->pendcap, p->npend + 1,
                                sizeof(*e), 16);
    struct st_buf *o = &p->pend;

    if (e == NULL) {
        o->oom = 1;
        return o;
    }
    p->pends = e;
    e = &p->pends[p->npend++];
    e->start = o->len;
    e->wall = wall;
    RD_JSON_LIT(o, "{\"ph\":\"");
    rd_json_raw(o, ph, strlen(ph));
    RD_JSON_LIT(o, "\",\"pid\":");
    rd_json_u64(o, p->pid);
    RD_JSON_LIT(o, ",\"tid\":");
    rd_json_u64(o, p->now_tid);
    RD_JSON_LIT(o, ",\"ts\":");
    e->tsat = o->len;
    rd_json_raw(o, spaces, PF_TS_WIDTH);
    return o;
}

/* The category, id and name of a's b and e events. */
static void
pf_async_fields(struct st_buf *o, const struct pf_async *a)
{
    static const char *const cats[] = {"async", "coroutine", "await", "task"};
    static const char *const pre[] = {"", "", "await ", "task "};

    RD_JSON_LIT(o, ",\"cat\":\"");
    rd_json_raw(o, cats[a->kind], strlen(cats[a->kind]));
    RD_JSON_LIT(o, "\",\"id\":");
    rd_json_u64(o, a->id);
    RD_JSON_LIT(o, ",\"name\":\"");
    rd_json_raw(o, pre[a->kind], strlen(pre[a->kind]));
    rd_json_chars(o, a->name, a->name_n);
    rd_json_raw(o, "\"", 1);
}

/*
 * Gives the held async events their times and writes them.  They were
 * recorded after the latest record (p->now) and before the next one of
 * that thread (hi, or UINT64_MAX when it is not known): each is placed
 * by its region time, as far from the last placed one as their region
 * times are apart, kept within [now, hi] (the program's time leaves out
 * steptrace's own, the region's clock does not, so the two drift), and
 * never before the last placed one, so that an e never precedes its b.
 */
static void
pf_async_place(struct rd_perfetto *p, uint64_t hi)
{
    size_t i, end, n;
    char num[PF_TS_WIDTH + 8];
    struct st_buf nb;

    for (i = 0; i < p->npend && !p->pend.oom; i++) {
        struct pf_pend *e = &p->pends[i];
        int64_t est = p->anchored ? p->delta + (int64_t)e->wall
                                  : (int64_t)p->now;
        uint64_t ts = est < (int64_t)p->now ? p->now : (uint64_t)est;

        if (ts > hi)
            ts = hi > p->now ? hi : p->now;
        if (ts < p->async_ts)
            ts = p->async_ts;
        p->async_ts = ts;
        p->delta = (int64_t)ts - (int64_t)e->wall;
        p->anchored = 1;
        st_buf_init(&nb);
        st_buf_borrow(&nb, num, sizeof(num));
        rd_json_us(&nb, ts);
        n = nb.len <= PF_TS_WIDTH ? nb.len : PF_TS_WIDTH;
        memcpy(p->pend.data + e->tsat + PF_TS_WIDTH - n, nb.data, n);
        st_buf_close(&nb);
        end = i + 1 < p->npend ? p->pends[i + 1].start : p->pend.len;
        if (p->nevents++ > 0)
            rd_json_raw(&rd_out, ",", 1);
        rd_json_raw(&rd_out, "\n", 1);
        rd_json_raw(&rd_out, p->pend.data + e->start, end - e->start);
    }
    if (p->pend.oom)
        rd_out.oom = 1;
    p->npend = 0;
    p->pend.len = 0;
}

/* The open slice an end closes: same kind, region and name, and the
 * start its duration points at (two coroutines of one name may run at
 * once); without a duration, the latest.  @return its index or -1. */
static long
pf_async_match(const struct rd_perfetto *p, uint32_t kind, uint32_t region_id,
               uint64_t time_ns, const struct pf_async_line *l)
{
    uint64_t want = l->has_dur && l->dur_ns <= time_ns ? time_ns - l->dur_ns
                                                       : time_ns;
    uint64_t best_d = UINT64_MAX, d;
    long best = -1;
    size_t i;

    for (i = 0; i < p->nasync; i++) {
        const struct pf_async *a = &p->asyncs[i];

        if (a->kind != kind || a->region_id != region_id ||
            a->name_n != l->name_n || memcmp(a->name, l->name, l->name_n))
            continue;
        d = a->time_ns > want ? a->time_ns - want : want - a->time_ns;
        if (d <= best_d) {
            best_d = d;
            best = (long)i;
        }
    }
    return best;
}

/* An async record: a b event at a start, the matching e at an end, an
 * instant for what matches nothing (its start was in an earlier file).
 * Async records carry no thread: they take the time and thread of the
 * file's latest record (the event loop's). */
static int
pf_async(struct rd_perfetto *p, const struct st_replay *rp)
{
    const struct st_msg *m = rp->rec.m;
    uint32_t kind = m->u.async.kind <= ST_ASYNC_MAX_ ? m->u.async.kind : 0;
    struct pf_async_line l;
    struct pf_async *a;
    struct st_buf *o;
    long at = -1;

    pf_async_parse(m->u.async.body, &l);
    if (l.begin == 1 && kind != 0) {
        a = st_grow(p->asyncs, &p->asynccap, p->nasync + 1, sizeof(*a), 16);
        if (a == NULL)
            return -1;
        p->asyncs = a;
        a = &p->asyncs[p->nasync];
        a->name = malloc(l.name_n + 1);
        if (a->name == NULL)
            return -1;
        p->nasync++;
        memcpy(a->name, l.name, l.name_n);
        a->name_n = l.name_n;
        a->kind = kind;
        a->region_id = m->u.async.region_id;
        a->time_ns = m->u.async.time_ns;
        a->id = ++p->next_id;
        o = pf_async_event(p, "b", a->time_ns);
        pf_async_fields(o, a);
    }
    else if (l.begin == 0 &&
             (at = pf_async_match(p, kind, m->u.async.region_id,
                                  m->u.async.time_ns, &l)) >= 0) {
        o = pf_async_event(p, "e", m->u.async.time_ns);
        pf_async_fields(o, &p->asyncs[at]);
    }
    else {
        const char *nl = memchr(m->u.async.body.p, '\n', m->u.async.body.n);

        o = pf_async_event(p, "i", m->u.async.time_ns);
        RD_JSON_LIT(o, ",\"s\":\"p\",\"cat\":\"async\",\"name\":");
        rd_json_str(o, m->u.async.body.p,
                    nl ? (size_t)(nl - m->u.async.body.p) : m->u.async.body.n);
    }
    RD_JSON_LIT(o, ",\"args\":{\"text\":");
    rd_json_str(o, m->u.async.body.p, m->u.async.body.n);
    RD_JSON_LIT(o, "}}");
    if (at >= 0) {
        pf_async_free(&p->asyncs[at]);
        p->asyncs[at] = p->asyncs[--p->nasync];
    }
    if (p->npend >= PF_MAX_PEND)
        pf_async_place(p, UINT64_MAX);
    return 0;
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
        o = pf_event(p, "M", 0, 0);
        RD_JSON_LIT(o, ",\"name\":\"process_name\",\"args\":{\"name\":");
        rd_json_cstr(o, h->program != NULL && h->program[0] ? h->program
                                                            : "python");
        RD_JSON_LIT(o, "}}");
        o = pf_event(p, "M", 0, 0);
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
    pf_async_place(p, UINT64_MAX);
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
    for (i = 0; i < p->nasync; i++) {
        struct pf_async *a = &p->asyncs[i];
        uint64_t ts = p->async_ts > p->now ? p->async_ts : p->now;
        struct st_buf *o = pf_event(p, "e", p->now_tid, ts);

        pf_async_fields(o, a);
        RD_JSON_LIT(o, ",\"args\":{\"unfinished\":true}}");
        if (ts > end)
            end = ts;
        pf_async_free(a);
    }
    p->nasync = 0;
    p->anchored = 0;
    p->async_ts = 0;
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
        pf_async_place(p, rec->f->tid == p->now_tid ? p->offset + rec->clock_ns
                                                    : UINT64_MAX);
    switch (rec->what) {
    case ST_RP_STEP: return pf_step(p, rp);
    case ST_RP_EVENT: return pf_call_event(p, rp);
    case ST_RP_ASYNC: return pf_async(p, rp);
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
    size_t it = 0, i;
    struct pf_thread *t;

    if (p == NULL)
        return;
    while ((t = st__idmap_next(&p->threads, &it)) != NULL) {
        free(t->stack);
        free(t);
    }
    st__idmap_close(&p->threads);
    for (i = 0; i < p->nasync; i++)
        pf_async_free(&p->asyncs[i]);
    free(p->asyncs);
    free(p->pids);
    free(p->pends);
    st_buf_close(&p->pend);
    free(p);
}
