/*
 * One forward destination: connection, queue, backoff (see fwddest.h).
 *
 * The queue is a list of blocks of whole messages.  A write takes up to
 * 64 blocks from the head and seals them (later messages go to a new
 * block), so that a block never changes while the kernel may read it;
 * they leave the queue when the write succeeded.  After a failed write
 * they are sent again, from their first byte, on the next connection.
 */
#include "fwddest.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"

/* Messages are gathered in blocks of this size (or one larger message). */
#define FWD_BLOCK (64u * 1024)
#define FWD_BACKOFF_MIN_MS 100u
#define FWD_BACKOFF_MAX_MS 5000u

struct fwd_block {
    struct fwd_block *next;
    size_t len;
    size_t cap;
    uint64_t msgs;
    int sealed; /* Part of a write: nothing is appended any more. */
    char data[];
};

/* One connection attempt or connection; freed in its close callback. */
struct fwd_link {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    uv_connect_t creq;
    struct st_fwddest *d; /* NULL once closing. */
};

static void dest_connect(struct st_fwddest *d);
static void dest_try_next(struct st_fwddest *d, int status);
static void dest_kick_cb(uv_check_t *h);

int
st__fwddest_new(uv_loop_t *loop, const char *url, size_t max_bytes,
                st_fwddest_note_cb note_cb, void *data,
                struct st_fwddest **out)
{
    struct st_fwddest *d;
    char err[256];

    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return ST_ENOMEM;
    d->name = strdup(url);
    if (d->name == NULL ||
        st__fwdconf_parse_url(url, &d->url, err, sizeof(err)) != 0) {
        st__fwdconf_url_close(&d->url);
        free(d->name);
        free(d);
        return ST_ENOMEM;
    }
    d->loop = loop;
    d->max_bytes = max_bytes;
    d->note_cb = note_cb;
    d->data = data;
    d->backoff_ms = FWD_BACKOFF_MIN_MS;
    st_buf_init(&d->note);
    uv_timer_init(loop, &d->timer);
    uv_check_init(loop, &d->kick);
    d->timer.data = d;
    d->kick.data = d;
    *out = d;
    return 0;
}

/* ---- the connection ---- */

static void
dest_link_close_cb(uv_handle_t *h)
{
    free(h->data);
}

static void
dest_link_close(struct st_fwddest *d)
{
    struct fwd_link *l = d->link;

    if (l == NULL)
        return;
    d->link = NULL;
    d->connected = 0;
    l->d = NULL;
    uv_close(&l->u.handle, dest_link_close_cb);
}

static void
dest_timer_cb(uv_timer_t *t)
{
    dest_connect(t->data);
}

/* Something failed: one log line per new kind of failure, then a retry
 * after the backoff. */
static void
dest_retry(struct st_fwddest *d, const char *why)
{
    if (d->closed)
        return;
    if (strcmp(why, d->logged) != 0) {
        st__log("forward %s: %s; retrying every %.1f to %u s", d->name, why,
                FWD_BACKOFF_MIN_MS / 1000.0, FWD_BACKOFF_MAX_MS / 1000);
        strncpy(d->logged, why, sizeof(d->logged) - 1);
    }
    uv_timer_start(&d->timer, dest_timer_cb, d->backoff_ms, 0);
    d->backoff_ms *= 2;
    if (d->backoff_ms > FWD_BACKOFF_MAX_MS)
        d->backoff_ms = FWD_BACKOFF_MAX_MS;
}

/* A connection that was up failed: its write (if any) is cancelled and
 * will be sent again. */
static void
dest_link_failed(struct st_fwddest *d, const char *why)
{
    char line[200];

    dest_link_close(d);
    snprintf(line, sizeof(line), "connection lost (%s)", why);
    dest_retry(d, line);
}

static void
dest_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct fwd_link *l = h->data;

    (void)size;
    if (l->d == NULL) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(l->d->rbuf, sizeof(l->d->rbuf));
}

/* A relay sends nothing; reading tells when it closed or reset. */
static void
dest_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fwd_link *l = s->data;
    struct st_fwddest *d = l->d;

    (void)buf;
    if (d == NULL || d->link != l || nread >= 0)
        return;
    dest_link_failed(d, nread == UV_EOF ? "closed by the destination"
                                        : uv_strerror((int)nread));
}

static void
dest_up(struct st_fwddest *d)
{
    if (d->ai != NULL)
        uv_freeaddrinfo(d->ai);
    d->ai = d->ai_next = NULL;
    d->connected = 1;
    d->backoff_ms = FWD_BACKOFF_MIN_MS;
    if (d->ever_connected)
        d->reconnects++;
    if (d->logged[0] != '\0')
        st__log("forward %s: connected (after: %s)", d->name, d->logged);
    else
        st__log_info("forward %s: connected", d->name);
    d->logged[0] = '\0';
    d->ever_connected = 1;
    d->link->u.handle.data = d->link;
    uv_read_start(&d->link->u.stream, dest_alloc_cb, dest_read_cb);
    if (d->head != NULL)
        uv_check_start(&d->kick, dest_kick_cb);
}

static void
dest_connect_cb(uv_connect_t *req, int status)
{
    struct fwd_link *l = req->data;
    struct st_fwddest *d = l->d;

    if (d == NULL || d->link != l || status == UV_ECANCELED)
        return;
    if (status < 0) {
        dest_link_close(d);
        dest_try_next(d, status);
        return;
    }
    dest_up(d);
}

static struct fwd_link *
dest_link_new(struct st_fwddest *d)
{
    struct fwd_link *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->d = d;
    l->creq.data = l;
    l->u.handle.data = l;
    return l;
}

/* Tries the next resolved address, or gives up this round. */
static void
dest_try_next(struct st_fwddest *d, int status)
{
    char why[200];
    struct addrinfo *a;
    int r;

    while ((a = d->ai_next) != NULL) {
        d->ai_next = a->ai_next;
        d->link = dest_link_new(d);
        if (d->link == NULL)
            break;
        uv_tcp_init(d->loop, &d->link->u.tcp);
        d->link->u.handle.data = d->link;
        uv_tcp_keepalive(&d->link->u.tcp, 1, 60);
        r = uv_tcp_connect(&d->link->creq, &d->link->u.tcp, a->ai_addr,
                           dest_connect_cb);
        if (r == 0)
            return;
        status = r;
        dest_link_close(d);
    }
    if (d->ai != NULL)
        uv_freeaddrinfo(d->ai);
    d->ai = d->ai_next = NULL;
    snprintf(why, sizeof(why), "cannot connect to %s:%s: %s", d->url.host,
             d->url.port, uv_strerror(status));
    dest_retry(d, why);
}

static void
dest_resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct st_fwddest *d = req->data;
    char why[200];

    d->resolving = 0;
    if (d->closed) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        return;
    }
    if (status < 0) {
        snprintf(why, sizeof(why), "cannot resolve '%s': %s", d->url.host,
                 uv_strerror(status));
        dest_retry(d, why);
        return;
    }
    d->ai = d->ai_next = res;
    dest_try_next(d, UV_EAI_NONAME);
}

static void
dest_connect(struct st_fwddest *d)
{
    struct addrinfo hints;
    char why[200];
    int r;

    if (d->closed || d->link != NULL || d->resolving)
        return;
    if (d->url.scheme == ST_FWD_UNIX) {
        d->link = dest_link_new(d);
        if (d->link == NULL) {
            dest_retry(d, "out of memory");
            return;
        }
        uv_pipe_init(d->loop, &d->link->u.pipe, 0);
        d->link->u.handle.data = d->link;
        uv_pipe_connect(&d->link->creq, &d->link->u.pipe, d->url.path,
                        dest_connect_cb);
        return;
    }
    /* Resolved again at every attempt: the name may move.  In libuv's
     * threadpool, so the loop never waits for a name server. */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    d->gai.data = d;
    r = uv_getaddrinfo(d->loop, &d->gai, dest_resolved_cb, d->url.host,
                       d->url.port, &hints);
    if (r != 0) {
        snprintf(why, sizeof(why), "cannot resolve '%s': %s", d->url.host,
                 uv_strerror(r));
        dest_retry(d, why);
        return;
    }
    d->resolving = 1;
}

void
st__fwddest_start(struct st_fwddest *d)
{
    dest_connect(d);
}

/* ---- the queue ---- */

static int
dest_append(struct st_fwddest *d, const char *p, size_t n)
{
    struct fwd_block *b = d->tail;

    if (b == NULL || b->sealed || b->cap - b->len < n) {
        size_t cap = n > FWD_BLOCK ? n : FWD_BLOCK;

        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return ST_ENOMEM;
        b->next = NULL;
        b->len = 0;
        b->cap = cap;
        b->msgs = 0;
        b->sealed = 0;
        if (d->tail != NULL)
            d->tail->next = b;
        else
            d->head = b;
        d->tail = b;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->msgs++;
    d->queued++;
    d->queued_bytes += n;
    if (d->connected && !uv_is_active((uv_handle_t *)&d->kick))
        uv_check_start(&d->kick, dest_kick_cb);
    return 0;
}

/* After drops, once there is room again: one NOTE saying how many. */
static void
dest_report(struct st_fwddest *d)
{
    if (d->unreported == 0 || d->closed || d->note_cb == NULL ||
        d->queued_bytes + 2048 > d->max_bytes)
        return;
    d->note.len = 0;
    if (d->note_cb(d, d->unreported, &d->note) != 0 ||
        d->queued_bytes + d->note.len > d->max_bytes ||
        dest_append(d, d->note.data, d->note.len) != 0)
        return;
    st__log("forward %s: %llu records dropped while its queue was full; "
            "it has room again",
            d->name, (unsigned long long)d->unreported);
    d->unreported = 0;
    d->dropping = 0;
}

int
st__fwddest_push(struct st_fwddest *d, const char *frame, size_t n)
{
    if (!d->closed) {
        dest_report(d);
        if (d->queued_bytes + n <= d->max_bytes &&
            dest_append(d, frame, n) == 0)
            return 0;
    }
    d->dropped++;
    d->unreported++;
    if (!d->dropping && !d->closed) {
        d->dropping = 1;
        st__log("forward %s: queue full (%zu bytes, %s); dropping records "
                "for it until it has room",
                d->name, d->queued_bytes,
                d->connected ? "the destination reads too slowly"
                             : "the destination is unreachable");
    }
    return 1;
}

static void
dest_write_cb(uv_write_t *req, int status)
{
    struct st_fwddest *d = req->data;
    size_t i;

    d->writing = 0;
    if (d->closed)
        return;
    if (status < 0) {
        d->inflight = 0;
        if (status != UV_ECANCELED && d->link != NULL)
            dest_link_failed(d, uv_strerror(status));
        return;
    }
    for (i = 0; i < d->inflight && d->head != NULL; i++) {
        struct fwd_block *b = d->head;

        d->head = b->next;
        if (d->head == NULL)
            d->tail = NULL;
        d->sent += b->msgs;
        d->queued -= b->msgs;
        d->queued_bytes -= b->len;
        free(b);
    }
    d->inflight = 0;
    dest_report(d);
    if (d->head != NULL && d->connected)
        uv_check_start(&d->kick, dest_kick_cb);
}

/* Once per loop iteration while messages wait: one write of up to 64
 * blocks. */
static void
dest_kick_cb(uv_check_t *h)
{
    struct st_fwddest *d = h->data;
    struct fwd_block *b;
    unsigned n = 0;
    int r;

    if (d->closed || !d->connected || d->writing || d->head == NULL) {
        uv_check_stop(h);
        return;
    }
    for (b = d->head; b != NULL && n < 64; b = b->next) {
        b->sealed = 1;
        d->bufs[n++] = uv_buf_init(b->data, (unsigned)b->len);
    }
    d->inflight = n;
    d->wreq.data = d;
    r = uv_write(&d->wreq, &d->link->u.stream, d->bufs, n, dest_write_cb);
    if (r != 0) {
        d->inflight = 0;
        dest_link_failed(d, uv_strerror(r));
        return;
    }
    d->writing = 1;
    uv_check_stop(h);
}

/* ---- the end ---- */

void
st__fwddest_stop(struct st_fwddest *d)
{
    d->stopping = 1;
}

int
st__fwddest_drained(const struct st_fwddest *d)
{
    return d->closed || (d->head == NULL && !d->writing);
}

void
st__fwddest_close(struct st_fwddest *d)
{
    if (d->closed)
        return;
    d->closed = 1;
    if (d->queued > 0) {
        st__log("forward %s: %llu records not delivered at exit (%s)", d->name,
                (unsigned long long)d->queued,
                d->connected ? "the destination read too slowly"
                             : "the destination was unreachable");
        d->dropped += d->queued;
    }
    if (d->resolving)
        (void)uv_cancel((uv_req_t *)&d->gai);
    dest_link_close(d);
    uv_close((uv_handle_t *)&d->timer, NULL);
    uv_close((uv_handle_t *)&d->kick, NULL);
}

void
st__fwddest_free(struct st_fwddest *d)
{
    struct fwd_block *b, *next;

    if (d == NULL)
        return;
    for (b = d->head; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    if (d->ai != NULL)
        uv_freeaddrinfo(d->ai);
    st_buf_close(&d->note);
    st__fwdconf_url_close(&d->url);
    free(d->name);
    free(d);
}
