/*
 * The async records of `steptrace export --format perfetto` (export.h,
 * perfetto_state.h): a coroutine, await or task is an async slice, a b
 * event at its start and the matching e at its end; an end whose start
 * is not known (it was in an earlier file) is an instant.
 *
 * Times.  Async records carry no thread and are timed by their region's
 * clock, not by the program time of perfetto.c: each takes the thread
 * of the file's latest record (the event loop's), and its event is held
 * in rd_perfetto.pend until the thread's next record bounds its time
 * (rd__perfetto_async_place).  Memory: the slices open and the events
 * held (at most PF_MAX_PEND).
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "perfetto_state.h"
#include "reader.h"

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
 * rd__perfetto_async_place gives it a time.  @return the buffer to add its
 * fields to (and the closing brace). */
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
void
rd__perfetto_async_place(struct rd_perfetto *p, uint64_t hi)
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
int
rd__perfetto_async_record(struct rd_perfetto *p, const struct st_replay *rp)
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
        rd__perfetto_async_place(p, UINT64_MAX);
    return 0;
}

uint64_t
rd__perfetto_async_end_file(struct rd_perfetto *p, uint64_t end)
{
    size_t i;

    for (i = 0; i < p->nasync; i++) {
        struct pf_async *a = &p->asyncs[i];
        uint64_t ts = p->async_ts > p->now ? p->async_ts : p->now;
        struct st_buf *o = rd__perfetto_event(p, "e", p->now_tid, ts);

        pf_async_fields(o, a);
        RD_JSON_LIT(o, ",\"args\":{\"unfinished\":true}}");
        if (ts > end)
            end = ts;
        pf_async_free(a);
    }
    p->nasync = 0;
    p->anchored = 0;
    p->async_ts = 0;
    return end;
}

void
rd__perfetto_async_free(struct rd_perfetto *p)
{
    size_t i;

    for (i = 0; i < p->nasync; i++)
        pf_async_free(&p->asyncs[i]);
    free(p->asyncs);
    free(p->pends);
    st_buf_close(&p->pend);
}
