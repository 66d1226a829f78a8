/*
 * One client connection: peer check, reading, frame reassembly,
 * validation and decoding, replies, and the close sequence.
 *
 * Memory read from a peer is bounded: the read buffer holds at most one
 * partial frame plus one read chunk, and a frame header is checked as
 * soon as its four bytes are present, so an announced size over
 * ST_WIRE_MAX_FRAME (or 0) closes the connection before anything is
 * allocated for it.  Frames are processed synchronously in the read
 * callback, so nothing else piles up.
 */
#include "daemon.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "steptrace/error.h"

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
st__conn_note_error(struct st_conn *c, const char *msg)
{
    if (c->errors < UINT64_MAX)
        c->errors++;
    snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
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
    st__server_conn_closed(c->srv, c);
    st__session_close(c);
    st_wire_decoder_close(&c->dec);
    free(c->rbuf);
    free(c);
}

static void
conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    /* Already closed if an abort overtook the graceful close. */
    if (!uv_is_closing((uv_handle_t *)req->handle))
        uv_close((uv_handle_t *)req->handle, conn_close_cb);
}

void
st__conn_close(struct st_conn *c, int abort)
{
    uv_stream_t *stream = (uv_stream_t *)&c->pipe;

    if (c->state == ST_CONN_OPEN) {
        c->state = ST_CONN_CLOSING;
        st__conn_flush(c);
        uv_read_stop(stream);
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
conn_protocol_error(struct st_conn *c, int err)
{
    st__log("protocol error from pid %d: %s%s%s%s; closing the connection",
            (int)c->peer_pid, st_strerror(err), c->detail[0] ? " (" : "",
            c->detail, c->detail[0] ? ")" : "");
    st__conn_close(c, 1);
}

static void
conn_write_cb(uv_write_t *req, int status)
{
    struct st_conn *c = req->handle->data;

    free(req);
    /* The peer is gone; its close shows up as a read error as well. */
    if (status < 0 && status != UV_ECANCELED)
        st__conn_close(c, 1);
}

int
st__conn_send(struct st_conn *c, const char *payload, size_t len)
{
    uv_stream_t *stream = (uv_stream_t *)&c->pipe;
    struct conn_reply *w;
    uv_buf_t buf;
    int r;

    if (c->state != ST_CONN_OPEN)
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

/* Capacity the read buffer needs: the whole pending frame once its header
 * is in (it was checked by conn_process), else one chunk. */
static size_t
conn_want(const struct st_conn *c)
{
    if (c->rlen >= ST_WIRE_HEADER_SIZE) {
        int64_t flen = st_wire_frame_len((const unsigned char *)c->rbuf, 0);

        if (flen > 0 && ST_WIRE_HEADER_SIZE + (size_t)flen > ST_READ_CHUNK)
            return ST_WIRE_HEADER_SIZE + (size_t)flen;
    }
    return ST_READ_CHUNK;
}

static void
conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct st_conn *c = h->data;
    size_t want = conn_want(c);

    if (c->rcap < want) {
        char *p = realloc(c->rbuf, want);

        if (p == NULL) {
            /* libuv reports UV_ENOBUFS to the read callback. */
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->rbuf = p;
        c->rcap = want;
    }
    /* conn_process leaves at most a partial frame, so there is room. */
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

/* Validates and applies one complete frame. */
static void
conn_frame(struct st_conn *c, const char *p, size_t len)
{
    struct st_msg m;
    int r, i;

    r = st_wire_validate(p, len);
    if (r < 0) {
        st__conn_detail(c, "frame of %zu bytes", len);
        conn_protocol_error(c, r);
        return;
    }
    st_wire_decoder_reset(&c->dec, p, len);
    for (i = 1; c->state == ST_CONN_OPEN; i++) {
        r = st_wire_decode_next(&c->dec, &m);
        if (r == 0)
            return;
        st__conn_detail(c, "message %d of a frame of %zu bytes", i, len);
        if (r > 0)
            r = st__session_apply(c, &m);
        if (r < 0) {
            conn_protocol_error(c, r);
            return;
        }
    }
}

/* Applies every complete frame in the buffer, then compacts it. */
static void
conn_process(struct st_conn *c)
{
    size_t off = 0;

    while (c->state == ST_CONN_OPEN &&
           c->rlen - off >= ST_WIRE_HEADER_SIZE) {
        const unsigned char *hdr = (const unsigned char *)c->rbuf + off;
        int64_t flen = st_wire_frame_len(hdr, 0);

        if (flen < 0) {
            st__conn_detail(c, "frame header announces %lu bytes",
                            ((unsigned long)hdr[0] << 24) |
                                ((unsigned long)hdr[1] << 16) |
                                ((unsigned long)hdr[2] << 8) | hdr[3]);
            conn_protocol_error(c, (int)flen);
            return;
        }
        if (c->rlen - off - ST_WIRE_HEADER_SIZE < (size_t)flen)
            break;
        conn_frame(c, c->rbuf + off + ST_WIRE_HEADER_SIZE, (size_t)flen);
        off += ST_WIRE_HEADER_SIZE + (size_t)flen;
    }
    if (c->state != ST_CONN_OPEN)
        return;
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    /* Give back the memory of a large frame once it is done. */
    if (c->rcap > 4 * ST_READ_CHUNK && conn_want(c) <= ST_READ_CHUNK) {
        char *p = realloc(c->rbuf, ST_READ_CHUNK);

        if (p != NULL) {
            c->rbuf = p;
            c->rcap = ST_READ_CHUNK;
        }
    }
}

static void
conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct st_conn *c = stream->data;

    if (nread > 0) {
        c->rlen += (size_t)nread;
        conn_process(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_EOF && c->rlen > 0) {
        st__conn_detail(c, "connection closed with %zu bytes of a frame",
                        c->rlen);
        conn_protocol_error(c, ST_ETRUNCATED);
    }
    else if (nread == UV_EOF) {
        st__conn_close(c, 0);
    }
    else if (nread == UV_ENOBUFS) {
        st__log("out of memory reading from pid %d; closing the connection",
                (int)c->peer_pid);
        st__conn_close(c, 1);
    }
    else {
        if (c->srv->opt->verbose)
            st__log("reading from pid %d: %s", (int)c->peer_pid,
                    uv_strerror((int)nread));
        st__conn_close(c, 1);
    }
}

/* Only the collector's own user may connect (SPEC section 9). */
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
    if (cr.uid != geteuid()) {
        st__log("refusing pid %d: uid %u is not the collector's uid %u",
                (int)cr.pid, (unsigned)cr.uid, (unsigned)geteuid());
        return -1;
    }
    return 0;
}

static void
reject_close_cb(uv_handle_t *h)
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
    uv_close((uv_handle_t *)&srv->reject, reject_close_cb);
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
    c->pipe.data = c;
    st_wire_decoder_init(&c->dec);
    st__session_init(c);
    uv_pipe_init(srv->loop, &c->pipe, 0);
    /* Listed from the start: the close callback unlinks every one. */
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
    c->counted = 1;
    srv->nclients++;
    uv_timer_stop(&srv->idle_timer);
    if (srv->opt->verbose)
        st__log("pid %d connected", (int)c->peer_pid);
    r = uv_read_start((uv_stream_t *)&c->pipe, conn_alloc_cb, conn_read_cb);
    if (r != 0) {
        st__log("reading from pid %d: %s", (int)c->peer_pid, uv_strerror(r));
        st__conn_close(c, 1);
    }
    return r;
}
