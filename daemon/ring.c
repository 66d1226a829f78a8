/*
 * The agents' rings (PROTOCOL.md "The ring"; layout in steptrace/ring.h).
 *
 * A connection whose HELLO asks for a ring gets one here: a sealed memfd
 * mapped by both sides and an eventfd, sent with the HELLO reply.  From
 * then on the agent writes its messages into the ring, and the collector
 * takes them out when it looks (ringpoll.c says when), and once more
 * when the connection ends, before it is closed: what the process wrote
 * before it died is in the ring, and is applied.
 *
 * Bytes taken are copied into the ring's own buffer first, so that the
 * agent (which can write the shared memory at any time) cannot change
 * them while they are validated and applied.  The ring itself is owned by
 * its connection but freed in its own close callback (its uv_poll_t must
 * be closed first), after which the mapping goes.
 */
#include "ring.h"

#include "conn.h"
#include "pressure.h"
#include "resume.h"
#include "ringpoll.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "steptrace/error.h"
#include "steptrace/ring.h"

_Static_assert(sizeof(struct st_ring_hdr) <= ST_RING_HEADER,
               "the ring header fits its page");

/* Bytes taken from a ring at a time, unless a message needs more. */
#define RING_CHUNK (64u * 1024)
#define RING_PAGE 4096u
/* SKIPs taken in one turn at most. */
#define RING_TURN_SKIPS 64

/* The commit position as far as we take it. */
static uint64_t
ring_commit(const struct st_ring *rg)
{
    if (rg->frozen)
        return rg->stop_at;
    return __atomic_load_n(&rg->hdr->commit, __ATOMIC_ACQUIRE);
}

int
st__ring_news(const struct st_ring *rg)
{
    return ring_commit(rg) != rg->rd;
}

/* ---- making and freeing ---- */

uint64_t
st__ring_size_for(uint64_t want)
{
    uint64_t size = ST_RING_MIN;

    while (size < want && size < ST_RING_MAX)
        size *= 2;
    return size;
}

/* Maps a sealed memfd of header + size bytes.  @return the memfd (the
 * caller closes it once sent) or -errno. */
static int
ring_map(struct st_ring *rg)
{
    int fd, r;

    fd = memfd_create("steptrace-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    rg->map_len = ST_RING_HEADER + (size_t)rg->size;
    if (ftruncate(fd, (off_t)rg->map_len) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        goto err_fd;
    rg->hdr = mmap(NULL, rg->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                   0);
    if (rg->hdr == MAP_FAILED) {
        rg->hdr = NULL;
        goto err_fd;
    }
    rg->data = (const char *)rg->hdr + ST_RING_HEADER;
    rg->hdr->magic = ST_RING_MAGIC;
    rg->hdr->version = ST_RING_VERSION;
    rg->hdr->size = rg->size;
    return fd;

err_fd:
    r = -errno;
    close(fd);
    return r;
}

static void
ring_free(struct st_ring *rg)
{
    if (rg->hdr != NULL)
        munmap(rg->hdr, rg->map_len);
    if (rg->efd >= 0)
        close(rg->efd);
    free(rg->buf);
    free(rg);
}

static void
ring_close_cb(uv_handle_t *h)
{
    ring_free(h->data);
}

void
st__ring_close(struct st_conn *c)
{
    struct st_ring *rg = c->ring;

    if (rg == NULL)
        return;
    c->ring = NULL;
    rg->conn = NULL;
    st__pressure_sub(&c->srv->pressure, rg->len - rg->off, 0);
    if (rg->watching)
        uv_close((uv_handle_t *)&rg->wake, ring_close_cb);
    else
        ring_free(rg);
}

/* Sends the HELLO reply (payload p, n bytes) with the two descriptors.
 * @return 0 or -errno. */
static int
ring_send_reply(struct st_conn *c, const char *p, size_t n, int memfd, int efd)
{
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct iovec iov[2];
    struct msghdr mh;
    struct cmsghdr *cm;
    int fds[2] = {memfd, efd};
    uv_os_fd_t sock;
    ssize_t w;

    /* Nothing else is queued to a peer that just said HELLO, so this goes
     * out whole, ahead of anything libuv will write. */
    if (uv_fileno((uv_handle_t *)&c->pipe, &sock) != 0 ||
        uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > 0)
        return -EBUSY;
    st_wire_put_header(hdr, (uint32_t)n);
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    iov[1].iov_base = (void *)p;
    iov[1].iov_len = n;
    memset(&mh, 0, sizeof(mh));
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    do {
        w = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    return (size_t)w == sizeof(hdr) + n ? 0 : -EAGAIN;
}

int
st__ring_open(struct st_conn *c, uint64_t size, const char *reply,
              size_t reply_len)
{
    struct st_ring *rg;
    int memfd, r;

    rg = calloc(1, sizeof(*rg));
    if (rg == NULL)
        return ST_ENOMEM;
    rg->efd = -1;
    rg->size = size;
    memfd = ring_map(rg);
    if (memfd < 0) {
        r = memfd;
        goto err_ring;
    }
    rg->hdr->pid = (uint64_t)c->peer_pid;
    rg->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (rg->efd < 0) {
        r = -errno;
        goto err_memfd;
    }
    r = uv_poll_init(c->srv->loop, &rg->wake, rg->efd);
    if (r != 0)
        goto err_memfd;
    rg->wake.data = rg;
    rg->watching = 1;
    rg->conn = c;
    c->ring = rg;
    r = reply != NULL ? ring_send_reply(c, reply, reply_len, memfd, rg->efd)
                      : 0;
    close(memfd);
    if (r != 0) {
        st__ring_close(c);
        return r;
    }
    st__ringpoll_watch(c);
    return 0;

err_memfd:
    close(memfd);
err_ring:
    ring_free(rg);
    return r;
}

/* ---- taking what the agent wrote ---- */

/* What was taken is room for the agent again. */
static void
ring_publish(struct st_ring *rg)
{
    __atomic_store_n(&rg->hdr->taken, rg->rd, __ATOMIC_RELAXED);
    __atomic_store_n(&rg->hdr->read, rg->rd, __ATOMIC_RELEASE);
}

/* Frees the memory of the data pages wholly inside stream bytes
 * [from, to) (MADV_REMOVE: the memfd's pages go; a later write there
 * finds a fresh page).  Only for bytes not yet published as room: the
 * agent cannot be writing there. */
static void
ring_free_pages(struct st_ring *rg, uint64_t from, uint64_t to)
{
    uint64_t a = (from + RING_PAGE - 1) & ~(uint64_t)(RING_PAGE - 1);
    uint64_t b = to & ~(uint64_t)(RING_PAGE - 1);
    size_t at, len, first;

    if (b <= a)
        return;
    len = (size_t)(b - a);
    at = (size_t)(a & (rg->size - 1));
    first = len < rg->size - at ? len : (size_t)rg->size - at;
    (void)madvise((char *)rg->data + at, first, MADV_REMOVE);
    if (len > first)
        (void)madvise((char *)rg->data, len - first, MADV_REMOVE);
}

/*
 * A SKIP at the start of what is left of the copy: the agent went on to
 * its next lap early, and the bytes it skipped (most of the ring, at
 * times) are not copied.  What a burst once wrote there is freed before
 * the skip is published as room, so a ring's resident memory follows the
 * agent's backlog, not the ring's size.
 * @return 1 when skipped, 0 when there is none, 2 when its bytes are
 *         not all committed yet, or ST_E* (c->detail says why).
 */
static int
ring_skip(struct st_conn *c)
{
    struct st_ring *rg = c->ring;
    size_t avail = rg->len - rg->off;
    uint64_t start = rg->rd - avail, end;
    uint32_t n;

    if (!st_wire_skip_head((const unsigned char *)rg->buf + rg->off, avail,
                           &n))
        return 0;
    end = start + ST_WIRE_SKIP_HEAD + n;
    if ((uint64_t)ST_WIRE_SKIP_HEAD + n > rg->size) {
        st__conn_detail(c, "SKIP of %lu bytes in a ring of %llu",
                        (unsigned long)n, (unsigned long long)rg->size);
        return ST_ETOOBIG;
    }
    if (end > ring_commit(rg)) {
        /* The agent commits a SKIP whole: one that never will is cut
         * short, and the end of the connection must not wait for it. */
        if (c->peer_gone) {
            st__conn_detail(c, "a SKIP of %lu bytes cut short",
                            (unsigned long)n);
            return ST_ETRUNCATED;
        }
        return 2;
    }
    if (end <= rg->rd) {
        /* Copied whole already (a small one): drop it. */
        rg->off += (size_t)(end - start);
        st__pressure_sub(&c->srv->pressure, (size_t)(end - start), 0);
    }
    else {
        st__pressure_sub(&c->srv->pressure, avail, 0);
        rg->off = rg->len = 0;
        ring_free_pages(rg, rg->rd, end);
        rg->rd = end;
        ring_publish(rg);
    }
    if (rg->off == rg->len)
        rg->off = rg->len = 0;
    return 1;
}

/* Copies n bytes of the stream at rd into the buffer's end. */
static void
ring_copy(struct st_ring *rg, size_t n)
{
    size_t at = (size_t)(rg->rd & (rg->size - 1));
    size_t first = n < rg->size - at ? n : (size_t)rg->size - at;

    memcpy(rg->buf + rg->len, rg->data + at, first);
    memcpy(rg->buf + rg->len + first, rg->data, n - first);
    rg->len += n;
    rg->rd += n;
}

/* Does a SKIP head start at rd?  A hint only (the agent may change the
 * bytes meanwhile): what is copied is checked again. */
static int
ring_peek_skip(const struct st_ring *rg)
{
    unsigned char head[ST_WIRE_SKIP_HEAD];
    size_t at = (size_t)(rg->rd & (rg->size - 1)), i;
    uint32_t n;

    for (i = 0; i < sizeof(head); i++)
        head[i] = (unsigned char)rg->data[(at + i) & (rg->size - 1)];
    return st_wire_skip_head(head, sizeof(head), &n);
}

/* Room for `more` bytes after the unapplied ones.  @return 0 or
 * ST_ENOMEM. */
static int
ring_reserve(struct st_ring *rg, size_t more)
{
    size_t keep = rg->len - rg->off, cap;
    char *p;

    if (rg->off > 0) {
        memmove(rg->buf, rg->buf + rg->off, keep);
        rg->off = 0;
        rg->len = keep;
    }
    if (keep + more <= rg->cap)
        return 0;
    cap = rg->cap ? rg->cap : RING_CHUNK;
    while (cap < keep + more)
        cap *= 2;
    p = realloc(rg->buf, cap);
    if (p == NULL)
        return ST_ENOMEM;
    rg->buf = p;
    rg->cap = cap;
    return 0;
}

/* The agent waits for room: tell it some came free (an ACK for token 0,
 * which acknowledges nothing). */
static void
ring_tell_room(struct st_conn *c)
{
    struct st_buf *b = &c->srv->scratch.reply;
    msgpack_packer pk;

    __atomic_store_n(&c->ring->hdr->writer_waiting, 0, __ATOMIC_RELAXED);
    b->len = 0;
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    if (st_wire_pack_ack(&pk, 0, 0, NULL, 0) == 0)
        st__conn_send(c, b->data, b->len);
}

/*
 * Takes more bytes from the ring: a chunk, or, when the unapplied bytes
 * hold no whole message yet, as many again (so that a large message
 * costs a number of walks logarithmic in its size).
 * @return 1 when bytes were taken, 0 when there were none (or no room),
 *         or ST_E* (protocol error, c->detail says which).
 */
static int
ring_pull(struct st_conn *c)
{
    struct st_ring *rg = c->ring;
    uint64_t commit = ring_commit(rg);
    size_t keep = rg->len - rg->off, want, n;

    if (commit - rg->rd > rg->size) {
        st__conn_detail(c,
                        "ring commit position %llu is out of range "
                        "(read %llu, size %llu)",
                        (unsigned long long)commit, (unsigned long long)rg->rd,
                        (unsigned long long)rg->size);
        return ST_EMALFORMED;
    }
    if (commit == rg->rd)
        return 0;
    want = keep > RING_CHUNK ? keep : RING_CHUNK;
    /* At a message boundary, a SKIP is copied no further than its head
     * (ring_skip then skips its bytes without copying them). */
    if (keep == 0 && commit - rg->rd >= ST_WIRE_SKIP_HEAD &&
        ring_peek_skip(rg))
        want = ST_WIRE_SKIP_HEAD;
    n = commit - rg->rd < want ? (size_t)(commit - rg->rd) : want;
    if (keep + n > ST_WIRE_MAX_FRAME + RING_CHUNK) {
        st__conn_detail(c, "a message in the ring is longer than %u bytes",
                        ST_WIRE_MAX_FRAME);
        return ST_ETOOBIG;
    }
    /* A large message waits for room under the pending bound. */
    if (keep + n > 2 * RING_CHUNK && rg->cap < keep + n &&
        !st__pressure_room_for_frame(&c->srv->pressure, keep + n)) {
        c->blocked |= ST_BLOCK_MEMORY;
        st__resume_paused(c->srv, c);
        return 0;
    }
    if (ring_reserve(rg, n) != 0)
        return ST_ENOMEM;
    ring_copy(rg, n);
    ring_publish(rg);
    c->srv->stats.bytes_in += n;
    st__pressure_add(&c->srv->pressure, n, 0);
    if (__atomic_load_n(&rg->hdr->writer_waiting, __ATOMIC_ACQUIRE))
        ring_tell_room(c);
    return 1;
}

int
st__ring_take(struct st_conn *c, const char **p, size_t *n)
{
    struct st_ring *rg = c->ring;
    size_t complete;
    int r, skips = 0;

    for (;;) {
        if (rg->len > rg->off) {
            r = ring_skip(c);
            if (r == 2)
                return 0;
            if (r < 0)
                return r;
            /* Skips count against the turn too (they cost a look each). */
            if (r == 1 && ++skips == RING_TURN_SKIPS) {
                st__ringpoll_yield(c);
                return 0;
            }
            if (r == 1)
                continue;
            r = st_wire_validate_prefix(rg->buf + rg->off, rg->len - rg->off,
                                        &complete);
            if (r < 0) {
                st__conn_detail(c, "ring bytes %llu to %llu",
                                (unsigned long long)(rg->rd -
                                                     (rg->len - rg->off)),
                                (unsigned long long)rg->rd);
                return r;
            }
            if (complete > 0) {
                *p = rg->buf + rg->off;
                *n = complete;
                return 1;
            }
        }
        r = ring_pull(c);
        /* Replying (ACK 0) may have closed the connection, and its ring
         * with it. */
        if (c->ring != rg || c->state != ST_CONN_OPEN)
            return 0;
        if (r <= 0)
            return r;
    }
}

void
st__ring_consumed(struct st_conn *c, size_t n)
{
    struct st_ring *rg = c->ring;

    rg->off += n;
    st__pressure_sub(&c->srv->pressure, n, 0);
    if (rg->off == rg->len) {
        rg->off = rg->len = 0;
        /* A large message's room is given back. */
        if (rg->cap > 4 * RING_CHUNK) {
            free(rg->buf);
            rg->buf = NULL;
            rg->cap = 0;
        }
    }
}

int
st__ring_drained(const struct st_conn *c, size_t *partial)
{
    const struct st_ring *rg = c->ring;

    /* After a whole prefix is applied, what is left of the copy is the
     * start of a message that has not come whole. */
    *partial = rg->len - rg->off;
    return !rg->want_turn && ring_commit(rg) == rg->rd;
}

void
st__ring_freeze(struct st_conn *c)
{
    struct st_ring *rg = c->ring;
    uint64_t commit = __atomic_load_n(&rg->hdr->commit, __ATOMIC_ACQUIRE);

    rg->frozen = 1;
    /* A position out of range is refused by ring_pull all the same. */
    rg->stop_at = commit - rg->rd <= rg->size ? commit : rg->rd;
}

int
st__ring_end(const struct st_conn *c, int *sig, char *detail, size_t n)
{
    const struct st_ring_hdr *h = c->ring->hdr;
    int kind = (int)__atomic_load_n(&h->end_kind, __ATOMIC_ACQUIRE);
    size_t i;

    *sig = (int)__atomic_load_n(&h->end_signal, __ATOMIC_RELAXED);
    detail[0] = '\0';
    if (kind == ST_RING_END_EXEC && n > 0) {
        /* The agent's bytes: copied up to a NUL, never past the field. */
        for (i = 0; i + 1 < n && i < ST_RING_END_DETAIL; i++) {
            char ch = ((volatile const char *)h->end_detail)[i];

            if (ch == '\0')
                break;
            detail[i] = ch;
        }
        detail[i] = '\0';
    }
    if (kind == ST_RING_END_SIGNAL && (*sig <= 0 || *sig >= 65))
        kind = ST_RING_END_NONE;
    if (kind < ST_RING_END_NONE || kind > ST_RING_END_EXEC)
        kind = ST_RING_END_NONE;
    return kind;
}
