/*
 * Per-connection protocol state (PROTOCOL.md "Semantics"): the string,
 * thread, frame, scope, region and tracer tables, and the application of
 * each message to them.  STEP messages are rendered here with the shared
 * formatter into the tracer's sink.
 *
 * Every id comes from the peer: a reference to an id that was never
 * defined is a protocol error (the caller closes the connection), never a
 * crash.  Strings and values are stored escaped (st_record_escape is the
 * identity on text that is already escaped), so one variable is always
 * one line whatever the agent sends.
 */
#include "session.h"

#include "ack.h"
#include "conn.h"
#include "control.h"
#include "idmap.h"
#include "log.h"
#include "ring.h"
#include "server.h"
#include "sink.h"
#include "stats.h"
#include "step.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steptrace/error.h"
#include "steptrace/ring.h"

/* Slots of a connection's direct string table it starts with (see
 * st_conn.str_dense). */
#define ST_STR_DENSE_MIN 1024u

void
st__session_init(struct st_conn *c)
{
    st__idmap_init(&c->strings);
    c->str_dense = NULL;
    c->str_dense_cap = 0;
    st__idmap_init(&c->threads);
    st__idmap_init(&c->frames);
    st__idmap_init(&c->scopes);
    st__idmap_init(&c->regions);
    st__idmap_init(&c->sinks);
}

static void
session_frame_free(struct st_frame *f)
{
    st_varstate_close(&f->locals);
    free(f);
}

void
st__session_close(struct st_conn *c)
{
    size_t it;
    void *v;

    for (it = 0; (v = st__idmap_next(&c->strings, &it)) != NULL;)
        free(v);
    for (it = 0; (v = st__idmap_next(&c->threads, &it)) != NULL;)
        free(v);
    for (it = 0; (v = st__idmap_next(&c->frames, &it)) != NULL;)
        session_frame_free(v);
    for (it = 0; (v = st__idmap_next(&c->scopes, &it)) != NULL;) {
        st_varstate_close(&((struct st_scope *)v)->vars);
        free(v);
    }
    for (it = 0; (v = st__idmap_next(&c->regions, &it)) != NULL;)
        free(v);
    /* Normally given up already by st__conn_close. */
    for (it = 0; (v = st__idmap_next(&c->sinks, &it)) != NULL;)
        st__sink_release(v);
    st__idmap_close(&c->strings);
    free(c->str_dense);
    c->str_dense = NULL;
    c->str_dense_cap = 0;
    st__idmap_close(&c->threads);
    st__idmap_close(&c->frames);
    st__idmap_close(&c->scopes);
    st__idmap_close(&c->regions);
    st__idmap_close(&c->sinks);
}

/* ---- helpers ---- */

const struct st_string *
st__session_str(const struct st_conn *c, uint32_t sid)
{
    /* Slot 0 is NULL: id 0 means "none". */
    if (sid < c->str_dense_cap)
        return c->str_dense[sid];
    return sid == 0 ? NULL : st__idmap_get(&c->strings, sid);
}

/*
 * STR `sid` was stored in the hash map: lets the direct table cover it
 * when the ids are dense.  The table doubles, filling its new slots from
 * the hash map, and only while it stays within its bound; a failed
 * growth costs nothing but speed (the hash map has every string).
 */
static void
session_dense_add(struct st_conn *c, uint32_t sid, const struct st_string *s)
{
    size_t limit = 2 * c->strings.live + ST_STR_DENSE_MIN;
    size_t cap = c->str_dense_cap ? c->str_dense_cap : ST_STR_DENSE_MIN;
    const struct st_string **d;
    size_t i;

    if (sid < c->str_dense_cap) {
        c->str_dense[sid] = s;
        return;
    }
    while (cap <= sid)
        cap *= 2;
    if (cap > limit)
        return;
    d = realloc(c->str_dense, cap * sizeof(*d));
    if (d == NULL)
        return;
    for (i = c->str_dense_cap; i < cap; i++)
        d[i] = i == 0 ? NULL : st__idmap_get(&c->strings, (uint32_t)i);
    c->str_dense = d;
    c->str_dense_cap = cap;
}

int
st__session_escape(struct st_scratch *sc, const char *p, size_t n,
                   const char **out, size_t *outn)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (ch < 0x20 || ch == 0x7f)
            break;
    }
    if (i == n) {
        *out = p;
        *outn = n;
        return 0;
    }
    sc->esc.len = 0;
    if (st_record_escape(&sc->esc, p, n) != 0) {
        /* The buffer's oom flag is sticky: start afresh next time. */
        st_buf_close(&sc->esc);
        return ST_ENOMEM;
    }
    *out = sc->esc.data;
    *outn = sc->esc.len;
    return 0;
}

/* ---- definitions: STR, THREAD, FRAME, REGION ---- */

static int
session_on_str(struct st_conn *c, const struct st_msg *m)
{
    uint32_t sid = m->u.str.sid;
    struct st_string *s;
    const char *p;
    size_t n;
    int r;

    if (sid == 0) {
        st__conn_detail(c, "STR defines id 0, which means \"none\"");
        return ST_ESTATE;
    }
    if (st__idmap_get(&c->strings, sid) != NULL) {
        st__conn_detail(c, "STR %u defined twice", sid);
        return ST_ESTATE;
    }
    r = st__session_escape(&c->srv->scratch, m->u.str.text.p,
                           m->u.str.text.n, &p, &n);
    if (r != 0)
        return r;
    s = malloc(sizeof(*s) + n + 1);
    if (s == NULL)
        return ST_ENOMEM;
    s->n = n;
    memcpy(s->p, p, n);
    s->p[n] = '\0';
    r = st__idmap_put(&c->strings, sid, s);
    if (r != 0) {
        free(s);
        return r;
    }
    session_dense_add(c, sid, s);
    return 0;
}

static int
session_on_thread(struct st_conn *c, const struct st_msg *m)
{
    struct st_thread *t;
    int r;

    if (st__session_str(c, m->u.thread.name_sid) == NULL) {
        st__conn_detail(c, "THREAD %u names string %u", m->u.thread.tid,
                        m->u.thread.name_sid);
        return ST_ENOSTR;
    }
    t = st__idmap_get(&c->threads, m->u.thread.tid);
    if (t != NULL) {
        /* A renamed thread: later records show the new name. */
        t->name_sid = m->u.thread.name_sid;
        return 0;
    }
    t = malloc(sizeof(*t));
    if (t == NULL)
        return ST_ENOMEM;
    t->name_sid = m->u.thread.name_sid;
    r = st__idmap_put(&c->threads, m->u.thread.tid, t);
    if (r != 0)
        free(t);
    return r;
}

static int
session_scope_get(struct st_conn *c, uint32_t scope_id,
                  struct st_scope **out)
{
    struct st_scope *s = st__idmap_get(&c->scopes, scope_id);
    int r;

    if (s == NULL) {
        s = malloc(sizeof(*s));
        if (s == NULL)
            return ST_ENOMEM;
        st_varstate_init(&s->vars);
        r = st__idmap_put(&c->scopes, scope_id, s);
        if (r != 0) {
            free(s);
            return r;
        }
    }
    *out = s;
    return 0;
}

static int
session_on_frame(struct st_conn *c, const struct st_msg *m)
{
    struct st_frame *f;
    struct st_scope *scope;
    int r;

    if (st__session_str(c, m->u.frame.file_sid) == NULL ||
        st__session_str(c, m->u.frame.func_sid) == NULL) {
        st__conn_detail(c, "FRAME %u names strings %u and %u",
                        m->u.frame.frame_id, m->u.frame.file_sid,
                        m->u.frame.func_sid);
        return ST_ENOSTR;
    }
    r = session_scope_get(c, m->u.frame.scope_id, &scope);
    if (r != 0)
        return r;
    f = st__idmap_get(&c->frames, m->u.frame.frame_id);
    if (f != NULL) {
        /* An id announced again without FRAME_END: a new frame. */
        st_varstate_close(&f->locals);
    }
    else {
        f = malloc(sizeof(*f));
        if (f == NULL)
            return ST_ENOMEM;
        r = st__idmap_put(&c->frames, m->u.frame.frame_id, f);
        if (r != 0) {
            free(f);
            return r;
        }
    }
    f->id = m->u.frame.frame_id;
    f->tid = m->u.frame.tid;
    f->parent_id = m->u.frame.parent_id;
    f->file_sid = m->u.frame.file_sid;
    f->func_sid = m->u.frame.func_sid;
    f->flags = m->u.frame.flags;
    f->region_id = m->u.frame.region_id;
    f->file = st__session_str(c, f->file_sid);
    f->func = st__session_str(c, f->func_sid);
    f->last_line = 0;
    f->scope = scope;
    st_varstate_init(&f->locals);
    return 0;
}

static int
session_region_check(struct st_conn *c, const struct st_msg *m)
{
    const struct st_str *dir = &m->u.region.log_dir;
    uint32_t level = m->u.region.level;
    uint32_t mode = m->u.region.var_mode;

    if (st__idmap_get(&c->regions, m->u.region.region_id) != NULL) {
        st__conn_detail(c, "REGION %u opened twice", m->u.region.region_id);
        return ST_ESTATE;
    }
    if (level != ST_LEVEL_DEBUG && level != ST_LEVEL_INFO &&
        level != ST_LEVEL_WARNING && level != ST_LEVEL_ERROR &&
        level != ST_LEVEL_SILENT) {
        st__conn_detail(c, "REGION level %u", level);
        return ST_EBADTYPE;
    }
    if (mode != ST_VARMODE_ALL && mode != ST_VARMODE_CHANGED &&
        mode != ST_VARMODE_NONE) {
        st__conn_detail(c, "REGION var_mode %u", mode);
        return ST_EBADTYPE;
    }
    /* Room is left for "/tracer_N.log.NNNN" so that no file name built
     * from the directory is ever truncated. */
    if (dir->n == 0 || dir->p[0] != '/' || dir->n > PATH_MAX - 64 ||
        memchr(dir->p, '\0', dir->n) != NULL) {
        st__conn_detail(c, "REGION log_dir is not a usable absolute path");
        return ST_EBADTYPE;
    }
    return 0;
}

/* ---- the sinks' owner: a connection (sink.h) ---- */

/* A file error: counted for the next ACK, which carries the latest. */
static void
session_sink_error(struct st_sink *s, const char *msg)
{
    struct st_conn *c = s->data;

    if (c->errors < UINT64_MAX)
        c->errors++;
    snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
}

/* Tells the agent the file its tracer's records go to (a FILE message). */
static void
session_sink_claimed(struct st_sink *s, const char *path)
{
    struct st_conn *c = s->data;
    struct st_buf *b = &c->srv->scratch.reply;
    msgpack_packer pk;

    /* Control clients and peers gone have nobody to tell. */
    if (c->peer_gone || c->kind != ST_CONN_AGENT)
        return;
    b->len = 0;
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    if (st_wire_pack_file(&pk, s->tracer_id, path, strlen(path)) != 0) {
        st_buf_close(b);
        return; /* The agent then names no file; nothing else is lost. */
    }
    (void)st__conn_send(c, b->data, b->len);
}

/* A job finished: the ACKs it was waiting for may go out. */
static void
session_sink_done(struct st_sink *s)
{
    st__ack_sink_done(s->data);
}

static const struct st_sink_owner session_sink_owner = {
    .on_error = session_sink_error,
    .on_claimed = session_sink_claimed,
    .on_done = session_sink_done,
};

static int
session_on_region(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg;
    struct st_sink *sink;
    int r;

    r = session_region_check(c, m);
    if (r != 0)
        return r;
    sink = st__idmap_get(&c->sinks, m->u.region.tracer_id);
    if (sink == NULL) {
        /* The first region of a tracer names its directory for good:
         * later regions append to the same file (SPEC section 4). */
        r = st__sink_new(&c->srv->sinks, &session_sink_owner, c, c->epoch,
                         m->u.region.tracer_id, m->u.region.log_dir.p,
                         m->u.region.log_dir.n, &sink);
        if (r != 0)
            return r;
        sink->pid = c->peer_pid;
        r = st__idmap_put(&c->sinks, m->u.region.tracer_id, sink);
        if (r != 0) {
            st__sink_free(sink);
            return r;
        }
    }
    st__sink_configure(sink, m->u.region.max_log_bytes,
                       m->u.region.max_log_files);
    rg = calloc(1, sizeof(*rg));
    if (rg == NULL)
        return ST_ENOMEM;
    rg->id = m->u.region.region_id;
    rg->tracer_id = m->u.region.tracer_id;
    rg->level = m->u.region.level;
    rg->var_mode = m->u.region.var_mode;
    rg->sink = sink;
    r = st__idmap_put(&c->regions, rg->id, rg);
    if (r != 0)
        free(rg);
    return r;
}

/* ---- ends, barriers, counters ---- */

static int
session_on_frame_end(struct st_conn *c, const struct st_msg *m)
{
    struct st_frame *f = st__idmap_del(&c->frames, m->u.frame_end.frame_id);

    if (f == NULL) {
        st__conn_detail(c, "FRAME_END for frame %u", m->u.frame_end.frame_id);
        return ST_ESTATE;
    }
    session_frame_free(f);
    return 0;
}

static int
session_on_region_end(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg;

    rg = st__idmap_del(&c->regions, m->u.region_end.region_id);
    if (rg == NULL) {
        st__conn_detail(c, "REGION_END for region %u",
                        m->u.region_end.region_id);
        return ST_ESTATE;
    }
    if (rg->lost > 0) {
        char line[96];

        snprintf(line, sizeof(line),
                 "[steptrace] %llu records lost in this region",
                 (unsigned long long)rg->lost);
        st__sink_note(rg->sink, line);
    }
    st__sink_flush(rg->sink);
    free(rg);
    return 0;
}

/* A line of the agent's in the region's log, in order with its records:
 * the process it started, or the one that started it (SPEC section 6). */
static int
session_on_note(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg = st__idmap_get(&c->regions, m->u.note.region_id);
    struct st_buf *b = &c->srv->scratch.reply;
    const char *t;
    size_t tn;

    if (rg == NULL) {
        st__conn_detail(c, "NOTE for region %u", m->u.note.region_id);
        return ST_ESTATE;
    }
    if (st__session_escape(&c->srv->scratch, m->u.note.text.p,
                           m->u.note.text.n, &t, &tn) != 0)
        return ST_ENOMEM;
    b->len = 0;
    if (st_buf_puts(b, "[steptrace] ") != 0 ||
        (m->u.note.kind == ST_NOTE_AT_STEP &&
         (st_buf_puts(b, "step ") != 0 || st_buf_put_u64(b, rg->steps) != 0 ||
          st_buf_puts(b, " ") != 0)) ||
        st_buf_append(b, t, tn) != 0 || st_buf_append(b, "", 1) != 0) {
        st_buf_close(b);
        return ST_ENOMEM;
    }
    st__sink_note(rg->sink, b->data);
    b->len = 0;
    return 0;
}

/* The ACK is owed until every record sent before the FLUSH is written;
 * processing goes on meanwhile (ack.c). */
static int
session_on_flush(struct st_conn *c, const struct st_msg *m)
{
    return st__ack_request(c, m->u.flush.token);
}

static int
session_on_lost(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg = st__idmap_get(&c->regions, m->u.lost.region_id);

    if (rg == NULL) {
        st__conn_detail(c, "LOST for region %u", m->u.lost.region_id);
        return ST_ESTATE;
    }
    c->srv->stats.lost_agent += m->u.lost.count;
    rg->lost = m->u.lost.count > UINT64_MAX - rg->lost
                   ? UINT64_MAX
                   : rg->lost + m->u.lost.count;
    return 0;
}

static int
session_on_hello(struct st_conn *c, const struct st_msg *m)
{
    struct st_buf *b = &c->srv->scratch.reply;
    msgpack_packer pk;
    uint64_t ring;
    int r;

    if (c->got_hello) {
        st__conn_detail(c, "HELLO sent twice");
        return ST_ESTATE;
    }
    if (m->u.hello.version != ST_WIRE_VERSION) {
        st__conn_detail(c, "peer speaks version %u, this collector %d",
                        m->u.hello.version, ST_WIRE_VERSION);
        return ST_EVERSION;
    }
    c->got_hello = 1;
    ring = m->u.hello.ring_bytes ? st__ring_size_for(m->u.hello.ring_bytes)
                                 : 0;
    b->len = 0;
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    if (st_wire_pack_hello(&pk, (uint64_t)getpid(), "steptraced", 10,
                           ring) != 0) {
        st_buf_close(b);
        return ST_ENOMEM;
    }
    if (ring == 0) {
        st__conn_send(c, b->data, b->len);
        return 0;
    }
    /* The reply carries the ring's descriptors; from now on the agent's
     * records come through the ring (ring.c). */
    r = st__ring_open(c, ring, b->data, b->len);
    if (r != 0) {
        st__log("cannot make a ring for pid %d: %s", (int)c->peer_pid,
                r == ST_ENOMEM ? "out of memory" : strerror(-r));
        st__conn_close(c, 1);
    }
    return 0;
}

/* "SIGTERM" for 15: the names every Linux has, else "signal N". */
static const char *
session_signame(int sig, char *buf, size_t n)
{
    static const char *const names[] = {
        [SIGHUP] = "SIGHUP", [SIGINT] = "SIGINT", [SIGQUIT] = "SIGQUIT",
        [SIGILL] = "SIGILL", [SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",
        [SIGBUS] = "SIGBUS", [SIGFPE] = "SIGFPE", [SIGKILL] = "SIGKILL",
        [SIGUSR1] = "SIGUSR1", [SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
        [SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM", [SIGTERM] = "SIGTERM",
        [SIGSTKFLT] = "SIGSTKFLT", [SIGXCPU] = "SIGXCPU",
        [SIGXFSZ] = "SIGXFSZ", [SIGVTALRM] = "SIGVTALRM",
        [SIGPROF] = "SIGPROF", [SIGIO] = "SIGIO", [SIGPWR] = "SIGPWR",
        [SIGSYS] = "SIGSYS",
    };

    if (sig > 0 && (size_t)sig < sizeof(names) / sizeof(names[0]) &&
        names[sig] != NULL)
        return names[sig];
    snprintf(buf, n, "signal %d", sig);
    return buf;
}

void
st__session_end(struct st_conn *c, int kind, int sig, const char *detail,
                size_t partial)
{
    struct st_stats *st = &c->srv->stats;
    struct st_region *rg;
    char line[600], signame[32];
    const char *d;
    size_t it = 0, dn;

    if (kind == ST_RING_END_EXIT)
        return;
    if (partial > 0)
        st->lost_vanished++;
    if (c->regions.live == 0)
        return;
    if (kind == ST_RING_END_SIGNAL)
        st->ended_by_signal++;
    else if (kind == ST_RING_END_EXEC)
        st->ended_by_exec++;
    else
        st->vanished++;
    if (st__session_escape(&c->srv->scratch, detail, strlen(detail), &d,
                           &dn) != 0) {
        d = "?";
        dn = 1;
    }
    while ((rg = st__idmap_next(&c->regions, &it)) != NULL) {
        /* A region with nothing written has no file to end. */
        if (rg->steps == 0 && rg->async_steps == 0 && partial == 0)
            continue;
        if (partial > 0)
            st__sink_note(rg->sink, "[steptrace] 1 record lost in this "
                          "region: the process ended while writing it");
        if (kind == ST_RING_END_SIGNAL)
            snprintf(line, sizeof(line), "[steptrace] the process ended by "
                     "%s after step %llu",
                     session_signame(sig, signame, sizeof(signame)),
                     (unsigned long long)rg->steps);
        else if (kind == ST_RING_END_EXEC)
            snprintf(line, sizeof(line), "[steptrace] the process called "
                     "exec (%.*s) after step %llu", (int)dn, d,
                     (unsigned long long)rg->steps);
        else
            snprintf(line, sizeof(line), "[steptrace] the process vanished "
                     "after step %llu without ending the region (killed "
                     "by SIGKILL or the out-of-memory killer?)",
                     (unsigned long long)rg->steps);
        st__sink_note(rg->sink, line);
        st__sink_flush(rg->sink);
    }
}

int
st__session_apply(struct st_conn *c, const struct st_msg *m)
{
    if (!c->got_hello && m->type != ST_MSG_HELLO) {
        st__conn_detail(c, "first message is type %d, not HELLO", m->type);
        return ST_ESTATE;
    }
    if (c->kind == ST_CONN_TAIL) {
        st__conn_detail(c, "message type %d after TAIL", m->type);
        return ST_ESTATE;
    }
    switch (m->type) {
    case ST_MSG_HELLO: return session_on_hello(c, m);
    case ST_MSG_STR: return session_on_str(c, m);
    case ST_MSG_REGION: return session_on_region(c, m);
    case ST_MSG_THREAD: return session_on_thread(c, m);
    case ST_MSG_FRAME: return session_on_frame(c, m);
    case ST_MSG_STEP:
    case ST_MSG_LINE:
        c->srv->stats.records_in++;
        return st__step_apply(c, m);
    case ST_MSG_FRAME_END: return session_on_frame_end(c, m);
    case ST_MSG_REGION_END: return session_on_region_end(c, m);
    case ST_MSG_FLUSH: return session_on_flush(c, m);
    case ST_MSG_LOST: return session_on_lost(c, m);
    case ST_MSG_NOTE: return session_on_note(c, m);
    case ST_MSG_EVENT:
        c->srv->stats.records_in++;
        return st__step_event(c, m);
    case ST_MSG_ASYNC:
        c->srv->stats.records_in++;
        return st__step_async(c, m);
    case ST_MSG_SKIP:
        /* A ring's filler, small enough to have been copied (ring.c
         * skips large ones without copying them); nowhere else. */
        if (c->ring == NULL) {
            st__conn_detail(c, "SKIP on a connection without a ring");
            return ST_EBADMSG;
        }
        return 0;
    case ST_MSG_STATUS: return st__control_status(c, m);
    case ST_MSG_TAIL: return st__control_tail(c, m);
    default:
        st__conn_detail(c, "message type %d is not sent to the collector",
                        m->type);
        return ST_EBADMSG;
    }
}
