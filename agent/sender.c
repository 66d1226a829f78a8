/*
 * The collector connection and the sender thread.  The traced program never
 * waits per step: the hook hands whole frames (batches of messages) to this
 * thread, which writes them to the Unix socket and reads the collector's
 * ACKs.  The program waits only at flush barriers and, under the block
 * policy, when more than pending_max bytes (64 MiB by default) are queued.
 *
 * Locking: `mu` guards every field of `S` below the marker; the thread
 * never takes the GIL.
 */
#include "agent.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "steptrace/error.h"

/* Default bound on queued bytes; STEPTRACE_PENDING_BYTES overrides it. */
#define SENDER_PENDING_DEFAULT (64u * 1024 * 1024)
#define SENDER_PENDING_MIN (64u * 1024)

static size_t pending_max = SENDER_PENDING_DEFAULT;
#define HELLO_TIMEOUT_MS 5000

struct qitem {
    struct qitem *next;
    char *data;          /* Owned frame bytes, header included. */
    size_t len;
    uint64_t nrecords;
};

static struct {
    int fd;              /* Owned socket, -1 when none. */
    int efd;             /* Owned eventfd waking the thread. */
    pthread_t thread;
    int running;         /* The thread was started and not joined. */
    uint32_t gen;        /* Written with the GIL held; read by the hook. */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char program[256];
    /* ---- guarded by mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int ok;
    int stop;
    struct qitem *head, *tail;
    size_t queued;
    uint64_t dropped;      /* Records lost with the connection. */
    uint64_t dropped_full; /* Records dropped by the drop policy. */
    uint64_t acked;
    uint64_t ack_errors;
    char ack_msg[512];
    char fail_msg[256];
} S = {
    .fd = -1,
    .efd = -1,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

/* Writes one line to fd 2 directly: usable from the sender thread. */
static void
sender_warn(const char *fmt, const char *a, const char *b)
{
    char line[768];
    int n = snprintf(line, sizeof(line), fmt, a, b);

    if (n > 0) {
        ssize_t w = write(2, line, (size_t)n < sizeof(line) ? (size_t)n
                                                              : sizeof(line));
        (void)w;
    }
}

static void
queue_free(struct qitem *q)
{
    while (q != NULL) {
        struct qitem *next = q->next;

        free(q->data);
        free(q);
        q = next;
    }
}

/* Marks the connection failed: everything queued is dropped and counted.
 * Call with mu held. */
static void
sender_fail_locked(struct qitem *cur, const char *why)
{
    struct qitem *q;

    if (!S.ok)
        return;
    S.ok = 0;
    if (cur != NULL)
        S.dropped += cur->nrecords;
    for (q = S.head; q != NULL; q = q->next)
        S.dropped += q->nrecords;
    queue_free(S.head);
    S.head = S.tail = NULL;
    S.queued = 0;
    snprintf(S.fail_msg, sizeof(S.fail_msg), "%s", why);
    pthread_cond_broadcast(&S.cond);
}

/* Parses complete frames in `in` (ACKs), consuming them. */
static int
sender_parse_replies(struct st_buf *in, struct st_wire_decoder *d)
{
    for (;;) {
        int64_t len;
        struct st_msg m;
        int r;

        if (in->len < ST_WIRE_HEADER_SIZE)
            return 0;
        len = st_wire_frame_len((const unsigned char *)in->data, 0);
        if (len < 0)
            return -1;
        if (in->len < ST_WIRE_HEADER_SIZE + (size_t)len)
            return 0;
        if (st_wire_validate(in->data + ST_WIRE_HEADER_SIZE, (size_t)len) < 0)
            return -1;
        st_wire_decoder_reset(d, in->data + ST_WIRE_HEADER_SIZE, (size_t)len);
        while ((r = st_wire_decode_next(d, &m)) == 1) {
            if (m.type != ST_MSG_ACK)
                continue;
            pthread_mutex_lock(&S.mu);
            if (m.u.ack.token > S.acked)
                S.acked = m.u.ack.token;
            S.ack_errors += m.u.ack.errors;
            if (m.u.ack.errors > 0 && m.u.ack.message.n > 0)
                snprintf(S.ack_msg, sizeof(S.ack_msg), "%.*s",
                         (int)m.u.ack.message.n, m.u.ack.message.p);
            pthread_cond_broadcast(&S.cond);
            pthread_mutex_unlock(&S.mu);
        }
        if (r < 0)
            return -1;
        st_buf_consume(in, ST_WIRE_HEADER_SIZE + (size_t)len);
    }
}

static void *
sender_main(void *arg)
{
    struct qitem *cur = NULL;
    size_t off = 0;
    struct st_buf in;
    struct st_wire_decoder d;
    const char *why = NULL;
    char whybuf[160];

    (void)arg;
    st_buf_init(&in);
    st_wire_decoder_init(&d);
    for (;;) {
        struct pollfd p[2];
        int stop;

        pthread_mutex_lock(&S.mu);
        if (cur == NULL && S.head != NULL) {
            cur = S.head;
            S.head = cur->next;
            if (S.head == NULL)
                S.tail = NULL;
            off = 0;
        }
        stop = S.stop && cur == NULL;
        pthread_mutex_unlock(&S.mu);
        if (stop)
            break;
        p[0].fd = S.fd;
        p[0].events = (short)(POLLIN | (cur != NULL ? POLLOUT : 0));
        p[1].fd = S.efd;
        p[1].events = POLLIN;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            why = "poll failed";
            break;
        }
        if (p[1].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(S.efd, &v, sizeof(v));
            (void)r;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n;

            if (st_buf_reserve(&in, 4096) != 0) {
                why = "out of memory";
                break;
            }
            n = recv(S.fd, in.data + in.len, 4096, MSG_DONTWAIT);
            if (n == 0) {
                why = "the collector closed the connection";
                break;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(whybuf, sizeof(whybuf), "%s", strerror(errno));
                why = whybuf;
                break;
            }
            if (n > 0) {
                in.len += (size_t)n;
                if (sender_parse_replies(&in, &d) != 0) {
                    why = "the collector sent a malformed reply";
                    break;
                }
            }
        }
        if (cur != NULL && (p[0].revents & POLLOUT)) {
            ssize_t n = send(S.fd, cur->data + off, cur->len - off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(whybuf, sizeof(whybuf), "%s", strerror(errno));
                why = whybuf;
                break;
            }
            if (n > 0)
                off += (size_t)n;
            if (off == cur->len) {
                pthread_mutex_lock(&S.mu);
                S.queued -= cur->len;
                pthread_cond_broadcast(&S.cond);
                pthread_mutex_unlock(&S.mu);
                free(cur->data);
                free(cur);
                cur = NULL;
            }
        }
    }
    if (why != NULL) {
        static int warned;

        pthread_mutex_lock(&S.mu);
        sender_fail_locked(cur, why);
        pthread_mutex_unlock(&S.mu);
        /* One warning per process: a reconnection that fails again, or
         * the region's end, adds nothing the user needs. */
        if (!warned) {
            warned = 1;
            sender_warn("steptrace: lost the connection to the collector at "
                        "%s (%s); reconnecting, and the records lost are "
                        "counted in the log\n", S.path, why);
        }
    }
    if (cur != NULL) {
        free(cur->data);
        free(cur);
    }
    st_buf_close(&in);
    st_wire_decoder_close(&d);
    return NULL;
}

/* Blocking exchange of HELLO frames before the thread starts. */
static int
sender_hello(int fd, const char *program, char *err, size_t errlen)
{
    struct st_buf b;
    msgpack_packer pk;
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    size_t got = 0, want = ST_WIRE_HEADER_SIZE;
    char reply[512];
    int64_t len = -1;
    struct st_wire_decoder d;
    struct st_msg m;
    int r = -EPROTO;

    st_buf_init(&b);
    st_buf_append(&b, "\0\0\0\0", 4);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    st_wire_pack_hello(&pk, (uint64_t)getpid(), program, strlen(program));
    st_wire_put_header((unsigned char *)b.data, (uint32_t)(b.len - 4));
    if (b.oom || send(fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len) {
        snprintf(err, errlen, "cannot send to the collector: %s",
                 strerror(errno));
        st_buf_close(&b);
        return -EIO;
    }
    st_buf_close(&b);
    while (got < want) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;

        if (poll(&p, 1, HELLO_TIMEOUT_MS) <= 0) {
            snprintf(err, errlen, "the collector did not answer within %d s",
                     HELLO_TIMEOUT_MS / 1000);
            return -ETIMEDOUT;
        }
        n = recv(fd, reply + got, want - got, 0);
        if (n <= 0) {
            snprintf(err, errlen, "the collector closed the connection");
            return -ECONNRESET;
        }
        got += (size_t)n;
        if (got == ST_WIRE_HEADER_SIZE && len < 0) {
            memcpy(hdr, reply, sizeof(hdr));
            len = st_wire_frame_len(hdr, sizeof(reply) - ST_WIRE_HEADER_SIZE);
            if (len < 0)
                break;
            want += (size_t)len;
        }
    }
    if (len > 0 &&
        st_wire_validate(reply + ST_WIRE_HEADER_SIZE, (size_t)len) > 0) {
        st_wire_decoder_init(&d);
        st_wire_decoder_reset(&d, reply + ST_WIRE_HEADER_SIZE, (size_t)len);
        if (st_wire_decode_next(&d, &m) == 1 && m.type == ST_MSG_HELLO)
            r = m.u.hello.version == ST_WIRE_VERSION ? 0 : ST_EVERSION;
        st_wire_decoder_close(&d);
    }
    if (r == ST_EVERSION)
        snprintf(err, errlen, "the collector speaks another protocol version "
                 "(need %d): upgrade steptrace and steptraced together",
                 ST_WIRE_VERSION);
    else if (r != 0)
        snprintf(err, errlen, "the collector's reply is not a steptrace "
                 "HELLO: is %s a steptraced socket?", S.path);
    return r;
}

/* STEPTRACE_PENDING_BYTES: the bound on the agent's queued records. */
static void
sender_read_pending_max(void)
{
    const char *env = getenv("STEPTRACE_PENDING_BYTES");
    char *end;
    unsigned long long v;

    if (env == NULL || *env == '\0')
        return;
    v = strtoull(env, &end, 10);
    if (*end == '\0' && v >= SENDER_PENDING_MIN)
        pending_max = (size_t)v;
}

int
st__sender_connect(const char *path, const char *program, char *err,
                   size_t errlen)
{
    struct sockaddr_un sa;
    int fd, r;

    st__sender_close();
    sender_read_pending_max();
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path is longer than %zu bytes: %s",
                 sizeof(sa.sun_path) - 1, path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    snprintf(S.path, sizeof(S.path), "%s", path);
    snprintf(S.program, sizeof(S.program), "%s", program);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        r = -errno;
        snprintf(err, errlen, "cannot connect to the collector at %s: %s",
                 path, strerror(errno));
        close(fd);
        return r;
    }
    r = sender_hello(fd, program, err, errlen);
    if (r != 0) {
        close(fd);
        return r;
    }
    S.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (S.efd < 0) {
        r = -errno;
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        close(fd);
        return r;
    }
    S.fd = fd;
    pthread_mutex_lock(&S.mu);
    S.ok = 1;
    S.stop = 0;
    S.acked = 0;
    S.ack_errors = 0;
    S.ack_msg[0] = '\0';
    pthread_mutex_unlock(&S.mu);
    S.gen++;
    r = pthread_create(&S.thread, NULL, sender_main, NULL);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the sender thread: %s",
                 strerror(r));
        S.ok = 0;
        close(S.fd);
        close(S.efd);
        S.fd = S.efd = -1;
        return -r;
    }
    S.running = 1;
    return 0;
}

static void
sender_wake(void)
{
    uint64_t one = 1;
    ssize_t r = write(S.efd, &one, sizeof(one));
    (void)r;
}

void
st__sender_close(void)
{
    if (!S.running)
        return;
    pthread_mutex_lock(&S.mu);
    S.stop = 1;
    pthread_mutex_unlock(&S.mu);
    sender_wake();
    Py_BEGIN_ALLOW_THREADS
    pthread_join(S.thread, NULL);
    Py_END_ALLOW_THREADS
    S.running = 0;
    pthread_mutex_lock(&S.mu);
    S.ok = 0;
    queue_free(S.head);
    S.head = S.tail = NULL;
    S.queued = 0;
    pthread_mutex_unlock(&S.mu);
    close(S.fd);
    close(S.efd);
    S.fd = S.efd = -1;
}

int
st__sender_ok(void)
{
    int ok;

    pthread_mutex_lock(&S.mu);
    ok = S.ok;
    pthread_mutex_unlock(&S.mu);
    return ok;
}

uint32_t
st__sender_gen(void)
{
    return S.gen;
}

uint64_t
st__sender_dropped(void)
{
    uint64_t n;

    pthread_mutex_lock(&S.mu);
    n = S.dropped + S.dropped_full;
    pthread_mutex_unlock(&S.mu);
    return n;
}

int
st__sender_reconnect(void)
{
    char err[512];
    char path[sizeof(S.path)];

    if (S.path[0] == '\0')
        return -1;
    memcpy(path, S.path, sizeof(path));
    return st__sender_connect(path, S.program, err, sizeof(err));
}

int
st__sender_submit(struct st_buf *b, uint64_t nrecords, int drop_when_full)
{
    struct qitem *q = malloc(sizeof(*q));
    int full;

    pthread_mutex_lock(&S.mu);
    if (!S.ok || q == NULL) {
        S.dropped += nrecords;
        pthread_mutex_unlock(&S.mu);
        free(q);
        st_buf_close(b);
        return -1;
    }
    full = S.queued > pending_max;
    if (full && drop_when_full) {
        /* The drop policy: the program never waits; the loss is counted
         * and written into the log at the region's end. */
        S.dropped_full += nrecords;
        pthread_mutex_unlock(&S.mu);
        free(q);
        st_buf_close(b);
        return 1;
    }
    pthread_mutex_unlock(&S.mu);
    if (full) {
        /* The block policy: wait for room without holding the GIL. */
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&S.mu);
        while (S.ok && S.queued > pending_max)
            pthread_cond_wait(&S.cond, &S.mu);
        pthread_mutex_unlock(&S.mu);
        Py_END_ALLOW_THREADS
    }
    q->next = NULL;
    q->data = b->data;
    q->len = b->len;
    q->nrecords = nrecords;
    st_buf_init(b);
    pthread_mutex_lock(&S.mu);
    if (!S.ok) {
        S.dropped += nrecords;
        pthread_mutex_unlock(&S.mu);
        queue_free(q);
        return -1;
    }
    if (S.tail != NULL)
        S.tail->next = q;
    else
        S.head = q;
    S.tail = q;
    S.queued += q->len;
    pthread_mutex_unlock(&S.mu);
    sender_wake();
    return 0;
}

int
st__sender_wait_ack(uint64_t token, int timeout_ms, uint64_t *errors,
                    char *msg, size_t msglen)
{
    struct timespec deadline;
    int r = 0;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    msg[0] = '\0';
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&S.mu);
    while (S.ok && S.acked < token && r == 0)
        r = pthread_cond_timedwait(&S.cond, &S.mu, &deadline);
    if (S.acked >= token) {
        r = 0;
        *errors = S.ack_errors;
        if (S.ack_errors > 0)
            snprintf(msg, msglen, "%s", S.ack_msg);
        S.ack_errors = 0;
        S.ack_msg[0] = '\0';
    }
    else if (!S.ok) {
        r = -1;
        snprintf(msg, msglen, "lost the connection to the collector at %s "
                 "(%s)", S.path, S.fail_msg);
    }
    else {
        r = -1;
        snprintf(msg, msglen, "the collector at %s did not confirm the "
                 "write within %d s", S.path, timeout_ms / 1000);
    }
    pthread_mutex_unlock(&S.mu);
    Py_END_ALLOW_THREADS
    return r;
}

void
st__sender_after_fork_child(void)
{
    /* Only the forking thread exists in the child: the sender thread and
     * any lock it held are gone.  Start from a clean, disconnected state;
     * the package reconnects when the child traces again. */
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cond, NULL);
    if (S.fd >= 0)
        close(S.fd);
    if (S.efd >= 0)
        close(S.efd);
    S.fd = S.efd = -1;
    S.running = 0;
    S.ok = 0;
    S.stop = 0;
    queue_free(S.head);
    S.head = S.tail = NULL;
    S.queued = 0;
    S.gen++;
}
