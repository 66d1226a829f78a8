/*
 * Per-connection protocol state (PROTOCOL.md "Semantics"): the string,
 * thread, frame, scope, region and tracer tables, the handshake, and the
 * dispatch of each message.  Records are rendered by step.c; regions and
 * their files are region.c's.
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
#include "log.h"
#include "region.h"
#include "ring.h"
#include "server.h"
#include "sink.h"
#include "stats.h"
#include "step.h"
#include "store.h"
#include "steptrace/idmap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steptrace/error.h"

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
    st__idmap_init(&c->stores);
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
    st__store_close_all(c);
    free(c->program);
    c->program = NULL;
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
    return st_record_escaped(&sc->esc, p, n, out, outn);
}

/* ---- definitions: STR, THREAD, FRAME ---- */

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
    r = st__session_escape(&c->srv->scratch, m->u.str.text.p, m->u.str.text.n,
                           &p, &n);
    if (r != 0)
        return r;
    s = malloc(sizeof(*s) + n + 1);
    if (s == NULL)
        return ST_ENOMEM;
    s->n = n;
    if (n > 0) /* An empty text may come as NULL: no memcpy from NULL. */
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
    t->carry_ns = 0;
    r = st__idmap_put(&c->threads, m->u.thread.tid, t);
    if (r != 0)
        free(t);
    return r;
}

static int
session_scope_get(struct st_conn *c, uint32_t scope_id, struct st_scope **out)
{
    struct st_scope *s = st__idmap_get(&c->scopes, scope_id);
    int r;

    if (s == NULL) {
        s = malloc(sizeof(*s));
        if (s == NULL)
            return ST_ENOMEM;
        s->id = scope_id;
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

/* ---- frame ends, barriers, the handshake ---- */

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

/* The ACK is owed until every record sent before the FLUSH is written;
 * processing goes on meanwhile (ack.c). */
static int
session_on_flush(struct st_conn *c, const struct st_msg *m)
{
    return st__ack_request(c, m->u.flush.token);
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
    c->program = strndup(m->u.hello.program.p != NULL ? m->u.hello.program.p
                                                      : "",
                         m->u.hello.program.n);
    ring = m->u.hello.ring_bytes ? st__ring_size_for(m->u.hello.ring_bytes)
                                 : 0;
    b->len = 0;
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    if (st_wire_pack_hello(&pk, (uint64_t)getpid(), "steptraced", 10, ring,
                           c->srv->opt->set.formats != 0
                               ? c->srv->opt->set.formats
                               : ST_FORMAT_TEXT) != 0) {
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
    /* Definitions go to every step store as they come (store.h). */
    if (c->stores.live > 0 &&
        (m->type == ST_MSG_STR || m->type == ST_MSG_THREAD ||
         m->type == ST_MSG_FRAME || m->type == ST_MSG_FRAME_END))
        st__store_put_all(c);
    switch (m->type) {
    case ST_MSG_HELLO: return session_on_hello(c, m);
    case ST_MSG_STR: return session_on_str(c, m);
    case ST_MSG_REGION: return st__region_open(c, m);
    case ST_MSG_THREAD: return session_on_thread(c, m);
    case ST_MSG_FRAME: return session_on_frame(c, m);
    case ST_MSG_STEP:
    case ST_MSG_LINE: c->srv->stats.records_in++; return st__step_apply(c, m);
    case ST_MSG_FRAME_END: return session_on_frame_end(c, m);
    case ST_MSG_REGION_END: return st__region_end(c, m);
    case ST_MSG_FLUSH: return session_on_flush(c, m);
    case ST_MSG_LOST: return st__region_lost(c, m);
    case ST_MSG_NOTE: return st__region_note(c, m);
    case ST_MSG_EVENT: c->srv->stats.records_in++; return st__step_event(c, m);
    case ST_MSG_ASYNC: c->srv->stats.records_in++; return st__step_async(c, m);
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
