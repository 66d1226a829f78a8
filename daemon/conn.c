/*
 * One client connection: the peer check at accept, replies, the close
 * sequence (the memory goes in the close callback only), and what the
 * server does to all sinks of a connection.  What the peer sends is
 * read and processed in input.c.
 */
#include "conn.h"

#include "control.h"
#include "input.h"
#include "log.h"
#include "pressure.h"
#include "ring.h"
#include "server.h"
#include "session.h"
#include "sink.h"
#include "steptrace/idmap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Replies (HELLO, ACK) a peer may leave unread before it is dropped. */
#define ST_MAX_PENDING_REPLY (1u << 20)

/* A queued reply: the request and the bytes it writes, freed together in
 * the write callback. */
struct conn_reply {
    uv_write_t req; /* First member: the callback frees through it. */
    char data[];
};

void
st__conn_detail(struct st_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
    va_end(ap);
}

void
st__conn_flush(struct st_conn *c)
{
    struct st_sink *s;
    size_t it = 0;

    while ((s = st__idmap_next(&c->sinks, &it)) != NULL)
        st__sink_flush(s);
}

void
st__conn_reopen(struct st_conn *c)
{
    struct st_sink *s;
    size_t it = 0;

    while ((s = st__idmap_next(&c->sinks, &it)) != NULL)
        st__sink_reopen(s);
}

/* The only place a connection's memory is released. */
static void
conn_close_cb(uv_handle_t *h)
{
    struct st_conn *c = h->data;

    if (c->srv->opt->verbose && c->counted)
        st__log("pid %d disconnected", (int)c->peer_pid);
    st__session_close(c);
    st_wire_decoder_close(&c->dec);
    st_buf_close(&c->tail_out);
    free(c->tail_glob);
    free(c->acks);
    free(c->rbuf);
    /* Last: when stopping, this may close the server's handles. */
    st__server_conn_closed(c->srv, c);
    free(c);
}

static void
conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    /* Already closed if an abort overtook the graceful close. */
    if (!uv_is_closing((uv_handle_t *)req->handle))
        uv_close((uv_handle_t *)req->handle, conn_close_cb);
}

/* Gives up the connection's pending bytes and its sinks (they write what
 * they hold on their own). */
static void
conn_release(struct st_conn *c)
{
    struct st_server *srv = c->srv;
    struct st_sink *s;
    size_t it = 0;
    uint32_t key;

    while ((s = st__idmap_next_key(&c->sinks, &it, &key)) != NULL) {
        st__idmap_del(&c->sinks, key);
        st__sink_release(s);
    }
    st__pressure_sub(&srv->pressure, c->rlen - c->roff, 0);
    c->rlen = c->roff = c->flen = 0;
    st__ring_close(c);
    srv->pressure.pending_big -= c->big;
    c->big = 0;
    if (c->kind == ST_CONN_TAIL)
        st__control_forget(c);
}

void
st__conn_close(struct st_conn *c, int abort)
{
    uv_stream_t *stream = (uv_stream_t *)&c->pipe;

    if (c->state == ST_CONN_OPEN) {
        c->state = ST_CONN_CLOSING;
        if (c->reading)
            uv_read_stop(stream);
        c->reading = 0;
        conn_release(c);
        /* Replies still queued (a peer that half-closed and waits for
         * its ACK) go out before the close; otherwise close now. */
        if (!abort && uv_stream_get_write_queue_size(stream) > 0 &&
            uv_shutdown(&c->shutdown_req, stream, conn_shutdown_cb) == 0)
            return;
    }
    else if (!abort) {
        return;
    }
    /* An abort also ends a graceful close whose peer stopped reading. */
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
}

static void
conn_write_cb(uv_write_t *req, int status)
{
    struct st_conn *c = req->handle->data;

    free(req);
    if (status >= 0 || status == UV_ECANCELED)
        return;
    /* The peer is gone; its close shows up as a read error as well.  An
     * agent's ring is still applied to its end first. */
    if (c->ring != NULL && c->state == ST_CONN_OPEN) {
        st__input_peer_gone(c);
        return;
    }
    st__conn_close(c, 1);
}

int
st__conn_send(struct st_conn *c, const char *payload, size_t len)
{
    uv_stream_t *stream = (uv_stream_t *)&c->pipe;
    struct conn_reply *w;
    uv_buf_t buf;
    int r;

    if (c->state != ST_CONN_OPEN || c->peer_gone)
        return UV_ECANCELED;
    /* A peer that sends FLUSH after FLUSH and never reads the ACKs would
     * make the queue grow without end. */
    if (uv_stream_get_write_queue_size(stream) > ST_MAX_PENDING_REPLY) {
        st__log("pid %d does not read its replies; closing the connection",
                (int)c->peer_pid);
        st__conn_close(c, 1);
        return UV_ENOBUFS;
    }
    w = malloc(sizeof(*w) + ST_WIRE_HEADER_SIZE + len);
    if (w == NULL) {
        st__log("out of memory replying to pid %d; closing the connection",
                (int)c->peer_pid);
        st__conn_close(c, 1);
        return UV_ENOMEM;
    }
    st_wire_put_header((unsigned char *)w->data, (uint32_t)len);
    memcpy(w->data + ST_WIRE_HEADER_SIZE, payload, len);
    buf = uv_buf_init(w->data, (unsigned)(ST_WIRE_HEADER_SIZE + len));
    r = uv_write(&w->req, stream, &buf, 1, conn_write_cb);
    if (r != 0) {
        /* uv_write failed synchronously: its callback will not run. */
        free(w);
        st__conn_close(c, 1);
    }
    return r;
}

/* Only the collector's own user may connect, unless the config's
 * allow_uids lists more (docs/COLLECTOR.md section 10). */
static int
conn_check_peer(struct st_conn *c)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    uv_os_fd_t fd;

    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        st__log("cannot identify a connecting peer: %s; refusing it",
                strerror(errno));
        return -1;
    }
    c->peer_pid = cr.pid;
    if (!st__server_uid_allowed(c->srv, cr.uid)) {
        c->srv->stats.refused++;
        st__log("refusing pid %d: uid %u is not the collector's uid %u "
                "and not in allow_uids",
                (int)cr.pid, (unsigned)cr.uid, (unsigned)geteuid());
        return -1;
    }
    return 0;
}

static void
conn_reject_close_cb(uv_handle_t *h)
{
    struct st_server *srv = h->data;

    srv->reject_busy = 0;
}

/* Accepts a peer we have no memory for, only to close it: libuv stops
 * watching the listener until each pending connection is accepted. */
static void
conn_reject(struct st_server *srv)
{
    if (srv->reject_busy)
        return;
    uv_pipe_init(srv->loop, &srv->reject, 0);
    srv->reject.data = srv;
    srv->reject_busy = 1;
    uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&srv->reject);
    uv_close((uv_handle_t *)&srv->reject, conn_reject_close_cb);
}

int
st__conn_accept(struct st_server *srv)
{
    struct st_conn *c = calloc(1, sizeof(*c));
    int r;

    if (c == NULL) {
        st__log("out of memory: refusing a connection");
        conn_reject(srv);
        return UV_ENOMEM;
    }
    c->srv = srv;
    c->epoch = 1;
    c->pipe.data = c;
    st_wire_decoder_init(&c->dec);
    st__session_init(c);
    st_buf_init(&c->tail_out);
    uv_pipe_init(srv->loop, &c->pipe, 0);
    /* Listed from the start: the close callback unlinks every one. */
    srv->pressure.nconns++;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    r = uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->pipe);
    if (r != 0) {
        st__log("accept: %s", uv_strerror(r));
        st__conn_close(c, 1);
        return r;
    }
    if (conn_check_peer(c) != 0) {
        st__conn_close(c, 1);
        return UV_EPERM;
    }
    srv->stats.connections++;
    c->counted = 1;
    srv->nclients++;
    uv_timer_stop(&srv->idle_timer);
    if (srv->opt->verbose)
        st__log("pid %d connected", (int)c->peer_pid);
    st__input_update_reading(c);
    if (!c->reading) {
        st__log("cannot read from pid %d; closing the connection",
                (int)c->peer_pid);
        st__conn_close(c, 1);
        return UV_EIO;
    }
    return 0;
}
