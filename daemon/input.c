/*
 * What a connection receives (see input.h): reading, frame reassembly,
 * validation and decoding, blocking and resuming, and the end of the
 * input (EOF, an agent gone, the drain at stop).
 *
 * Memory read from a peer is bounded: the read buffer holds at most one
 * partial frame plus one read chunk, and a frame header is checked as
 * soon as its four bytes are present, so an announced size over
 * ST_WIRE_MAX_FRAME (or 0) closes the connection before anything is
 * allocated for it.  A large frame needs room under the pending bound
 * (pressure.c) before its buffer grows.
 *
 * Frames are processed in the read callback, message by message.  The
 * processing stops (and reading with it) when a FLUSH waits for its
 * records to be written or when pending memory is over the bound; it
 * goes on from the same message once the block is lifted.  While blocked
 * nothing more is taken from the peer: a ring agent's ring fills (its
 * on_full policy then waits or drops), a socket peer's bytes stay in the
 * kernel; that is how pressure reaches the traced program.
 */
#include "input.h"

#include "conn.h"
#include "log.h"
#include "pressure.h"
#include "region.h"
#include "resume.h"
#include "ring.h"
#include "ringpoll.h"
#include "server.h"
#include "session.h"
#include "sink.h"
#include "steptrace/idmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "steptrace/error.h"
#include "steptrace/ring.h"

/* Bytes of a ring applied in one turn of the loop. */
#define ST_RING_TURN (1024u * 1024)

static void input_read_cb(uv_stream_t *stream, ssize_t nread,
                          const uv_buf_t *buf);
static void input_process(struct st_conn *c);

static void
input_protocol_error(struct st_conn *c, int err)
{
    c->srv->stats.protocol_errors++;
    st__log("protocol error from pid %d: %s%s%s%s; closing the connection",
            (int)c->peer_pid, st_strerror(err), c->detail[0] ? " (" : "",
            c->detail, c->detail[0] ? ")" : "");
    st__conn_close(c, 1);
}

void
st__input_peer_gone(struct st_conn *c)
{
    c->eof = 1;
    c->peer_gone = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = 0;
    }
    input_process(c);
}

/* Capacity the read buffer needs: the whole pending frame once its header
 * is in (input_process checked it), else one chunk. */
static size_t
input_want(const struct st_conn *c)
{
    if (c->rlen - c->roff >= ST_WIRE_HEADER_SIZE) {
        int64_t flen =
            st_wire_frame_len((const unsigned char *)c->rbuf + c->roff, 0);

        if (flen > 0 && ST_WIRE_HEADER_SIZE + (size_t)flen > ST_READ_CHUNK)
            return c->roff + ST_WIRE_HEADER_SIZE + (size_t)flen;
    }
    return c->roff + ST_READ_CHUNK;
}

static void
input_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct st_conn *c = h->data;
    struct st_server *srv = c->srv;
    size_t want = input_want(c), room;

    if (c->rcap < want) {
        char *p = realloc(c->rbuf, want);

        if (p == NULL) {
            /* libuv reports UV_ENOBUFS to the read callback. */
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->rbuf = p;
        c->rcap = want;
        srv->pressure.pending_big -= c->big;
        c->big = want > ST_READ_CHUNK ? want - ST_READ_CHUNK : 0;
        srv->pressure.pending_big += c->big;
    }
    room = c->rcap - c->rlen;
    /* While stopping, read only what the peer had sent by then. */
    if (c->draining && room > c->stop_budget)
        room = c->stop_budget;
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)room);
}

void
st__input_update_reading(struct st_conn *c)
{
    /* An agent with a ring sends nothing more on its socket: it is read
     * all the same, blocked or not, to see the end as soon as it comes. */
    int want = c->state == ST_CONN_OPEN && !c->eof &&
               (c->blocked == 0 || c->ring != NULL) &&
               !(c->draining && c->stop_budget == 0);

    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->pipe, input_alloc_cb,
                          input_read_cb) == 0)
            c->reading = 1;
    }
    else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = 0;
    }
}

/* @return 1 when a sink of c holds records not yet written. */
static int
input_sinks_queued(const struct st_conn *c)
{
    const struct st_sink *s;
    size_t it = 0;

    while ((s = st__idmap_next(&c->sinks, &it)) != NULL)
        if (s->queued > 0)
            return 1;
    return 0;
}

/*
 * Decodes and applies the messages of the current frame from where it
 * stopped.  @return 0 when the frame is done, 1 when blocked (the frame
 * goes on later), -1 when the connection was closed.
 */
static int
input_frame_run(struct st_conn *c)
{
    struct st_server *srv = c->srv;
    struct st_msg m;
    int r;

    for (;;) {
        size_t start = c->dec.off;

        r = st_wire_decode_next(&c->dec, &m);
        c->msg_raw = c->dec.data + start;
        c->msg_rawlen = c->dec.off - start;
        if (r == 0) {
            if (c->frame_from_ring) {
                c->frame_from_ring = 0;
                st__ring_consumed(c, c->flen);
            }
            else {
                st__pressure_sub(&srv->pressure, ST_WIRE_HEADER_SIZE + c->flen,
                                 0);
                c->roff += ST_WIRE_HEADER_SIZE + c->flen;
            }
            c->flen = 0;
            return 0;
        }
        c->msgno++;
        /* The context of an error is formatted only when one is
         * reported (this loop runs once per record): the session code
         * fills c->detail when it knows more, else the message number
         * is the context. */
        c->detail[0] = '\0';
        if (r > 0)
            r = st__session_apply(c, &m);
        if (r < 0) {
            if (c->detail[0] == '\0')
                st__conn_detail(c, "message %d of a frame of %zu bytes",
                                c->msgno, c->flen);
            input_protocol_error(c, r);
            return -1;
        }
        if (c->state != ST_CONN_OPEN)
            return -1;
        if (c->blocked)
            return 1;
        /* Only a connection with records waiting to be written is
         * stopped: it is one of those the writers are behind on. */
        if (st__pressure_high(&srv->pressure) && input_sinks_queued(c)) {
            c->blocked |= ST_BLOCK_PRESSURE;
            st__resume_paused(srv, c);
            return 1;
        }
    }
}

/* Starts the next complete frame.  @return 1 when one was started, 0 when
 * none is complete yet, -1 on a protocol error (connection closed). */
static int
input_frame_start(struct st_conn *c)
{
    const unsigned char *hdr = (const unsigned char *)c->rbuf + c->roff;
    size_t avail = c->rlen - c->roff;
    int64_t flen;
    int r;

    /* Once the agent has its ring, everything comes through it: bytes on
     * the socket (however few) could not be put in order with the
     * ring's. */
    if (c->ring != NULL && avail > 0) {
        st__conn_detail(c,
                        "%zu bytes on the socket after the ring was "
                        "made",
                        avail);
        input_protocol_error(c, ST_ESTATE);
        return -1;
    }
    if (avail < ST_WIRE_HEADER_SIZE)
        return 0;
    flen = st_wire_frame_len(hdr, 0);
    if (flen < 0) {
        st__conn_detail(c, "frame header announces %lu bytes",
                        ((unsigned long)hdr[0] << 24) |
                            ((unsigned long)hdr[1] << 16) |
                            ((unsigned long)hdr[2] << 8) | hdr[3]);
        input_protocol_error(c, (int)flen);
        return -1;
    }
    if (avail - ST_WIRE_HEADER_SIZE < (size_t)flen) {
        size_t need = ST_WIRE_HEADER_SIZE + (size_t)flen;

        /* A large frame waits for room under the pending bound. */
        if (need > ST_READ_CHUNK && c->big == 0 &&
            !st__pressure_room_for_frame(&c->srv->pressure, need)) {
            c->blocked |= ST_BLOCK_MEMORY;
            st__resume_paused(c->srv, c);
        }
        return 0;
    }
    r = st_wire_validate_messages((const char *)hdr + ST_WIRE_HEADER_SIZE,
                                  (size_t)flen);
    if (r < 0) {
        st__conn_detail(c, "frame of %lld bytes", (long long)flen);
        input_protocol_error(c, r);
        return -1;
    }
    st_wire_decoder_reset(&c->dec, (const char *)hdr + ST_WIRE_HEADER_SIZE,
                          (size_t)flen);
    c->flen = (size_t)flen;
    c->msgno = 0;
    return 1;
}

/* Moves unprocessed bytes to the front and gives back the memory of a
 * large frame once it is done.  Only between frames: the decoder borrows
 * the current frame's bytes. */
static void
input_compact(struct st_conn *c)
{
    struct st_server *srv = c->srv;

    if (c->flen != 0)
        return;
    if (c->roff > 0) {
        memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
        c->rlen -= c->roff;
        c->roff = 0;
    }
    if (c->rcap > ST_READ_CHUNK && input_want(c) <= ST_READ_CHUNK) {
        char *p = realloc(c->rbuf, ST_READ_CHUNK);

        if (p != NULL) {
            c->rbuf = p;
            c->rcap = ST_READ_CHUNK;
            srv->pressure.pending_big -= c->big;
            c->big = 0;
        }
    }
}

/* @return 1 when everything the ring held was applied (or there is no
 * ring); *partial: the bytes of a message that never came whole. */
static int
input_ring_empty(struct st_conn *c, size_t *partial)
{
    *partial = 0;
    if (c->ring == NULL)
        return 1;
    return c->flen == 0 && c->blocked == 0 && st__ring_drained(c, partial);
}

/* The agent is gone: once its ring is applied, the regions it left open
 * get the line that says how it ended.  @return 1 when done. */
static int
input_ring_done(struct st_conn *c)
{
    char detail[ST_RING_END_DETAIL];
    size_t partial;
    int kind, sig;

    if (!input_ring_empty(c, &partial))
        return 0;
    if (c->ring == NULL)
        return 1;
    kind = st__ring_end(c, &sig, detail, sizeof(detail));
    st__region_process_ended(c, kind, sig, detail, partial);
    return 1;
}

void
st__input_drain_check(struct st_conn *c)
{
    size_t partial;

    if (c->state != ST_CONN_OPEN)
        return;
    /* An agent with a ring is gone: its ring is all there is, and nobody
     * waits for ACKs any more. */
    if (c->peer_gone) {
        if (input_ring_done(c))
            st__conn_close(c, 0);
        return;
    }
    if (c->nacks > 0)
        return;
    /* The peer half-closed and its last ACK is out: done. */
    if (c->eof) {
        st__conn_close(c, 0);
        return;
    }
    /* Stopping the collector is not the agent's end: no line for it. */
    if (!c->draining || c->blocked != 0 || c->stop_budget > 0 ||
        c->flen != 0 || !input_ring_empty(c, &partial))
        return;
    if (c->rlen > c->roff)
        st__log("pid %d: %zu bytes of an unfinished frame dropped at stop",
                (int)c->peer_pid, c->rlen - c->roff);
    st__conn_close(c, 0);
}

/* Starts applying the next whole messages of the ring.  @return as
 * input_frame_start. */
static int
input_ring_start(struct st_conn *c)
{
    const char *p;
    size_t n;
    int r;

    /* A turn takes at most ST_RING_TURN bytes, then lets the loop run
     * (write completions keep the writers busy meanwhile) and goes on
     * from the resume handle, like a socket that libuv reads in turns. */
    if (c->turn_bytes >= ST_RING_TURN) {
        st__ringpoll_yield(c);
        return 0;
    }
    r = st__ring_take(c, &p, &n);
    if (r < 0) {
        input_protocol_error(c, r);
        return -1;
    }
    if (r == 0)
        return 0;
    st_wire_decoder_reset(&c->dec, p, n);
    c->flen = n;
    c->msgno = 0;
    c->frame_from_ring = 1;
    c->turn_bytes += n;
    return 1;
}

/* Applies every complete frame in the buffer, then what the ring holds,
 * until done or blocked. */
static void
input_process(struct st_conn *c)
{
    int r;

    c->turn_bytes = 0;
    while (c->state == ST_CONN_OPEN && c->blocked == 0) {
        if (c->flen > 0)
            r = input_frame_run(c) == 0 ? 1 : -1;
        else if (c->rlen > c->roff || c->ring == NULL)
            r = input_frame_start(c);
        else
            r = input_ring_start(c);
        if (r <= 0)
            break;
    }
    if (c->state != ST_CONN_OPEN)
        return;
    input_compact(c);
    st__input_update_reading(c);
    st__input_drain_check(c);
}

void
st__input_resume(struct st_conn *c)
{
    input_process(c);
}

static void
input_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct st_conn *c = stream->data;

    if (nread > 0) {
        c->rlen += (size_t)nread;
        c->srv->stats.bytes_in += (uint64_t)nread;
        st__pressure_add(&c->srv->pressure, (size_t)nread, 0);
        if (c->draining)
            c->stop_budget -= (size_t)nread;
        input_process(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_EOF && c->rlen > c->roff) {
        st__conn_detail(c, "connection closed with %zu bytes of a frame",
                        c->rlen - c->roff);
        input_protocol_error(c, ST_ETRUNCATED);
    }
    else if (c->ring != NULL) {
        /* An agent's end, orderly or not: its ring is applied first. */
        st__input_peer_gone(c);
    }
    else if (nread == UV_EOF) {
        /* ACKs still owed go out before the close (a peer may half-close
         * and wait for them). */
        c->eof = 1;
        st__input_update_reading(c);
        st__input_drain_check(c);
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

void
st__input_drain(struct st_conn *c)
{
    uv_os_fd_t fd;
    int n = 0;

    if (c->state != ST_CONN_OPEN)
        return;
    if (c->kind == ST_CONN_TAIL || !c->got_hello) {
        st__conn_close(c, 1);
        return;
    }
    /* What the peer wrote before the stop is in the kernel now; what it
     * writes later is not waited for. */
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        ioctl(fd, FIONREAD, &n) != 0 || n < 0)
        n = 0;
    c->draining = 1;
    c->stop_budget = (size_t)n;
    /* Likewise for the ring: what it holds now is applied, no more. */
    if (c->ring != NULL)
        st__ring_freeze(c);
    /* Room for a large frame is no longer rationed: this is the end. */
    c->blocked &= ~(unsigned)ST_BLOCK_MEMORY;
    input_process(c);
}
