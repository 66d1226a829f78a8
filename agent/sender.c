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
/* Under the block policy, a collector that takes nothing for this long is
 * treated as gone. */
#define BLOCK_STALL_NS (10ull * 1000000000ull)
/* ... and for the closing frame of a region under the drop policy. */
#define BRIEF_STALL_NS (2ull * 1000000000ull)

struct qitem {
    struct qitem *next;
    char *data;          /* Owned frame bytes, header included. */
    size_t len;
    uint64_t nrecords;
    uint64_t token;      /* The FLUSH ending the frame. */
    uint64_t cum;        /* Records submitted up to and with this frame. */
};

/* Frames sent and not yet acknowledged: (token, cumulative records). */
#define INFLIGHT_MAX 4096

static void sender_resume(void);

static struct {
    int fd;              /* Owned socket, -1 when none. */
    int efd;             /* Owned eventfd waking the thread. */
    pthread_t thread;
    int running;         /* The thread was started and not joined. */
    /* The thread's own state, kept in S so that the thread can be stopped
     * around a fork (no thread may run when the program forks, or 3.12+
     * warns) and started again where it was.  Only the thread, or the
     * code that has joined it, touches these. */
    struct qitem *cur;   /* Owned: the frame being written. */
    size_t off;
    struct st_buf in;    /* Bytes read from the collector. */
    struct st_wire_decoder dec;
    int dec_ready;
    uint32_t gen;        /* Written with the GIL held; read by the hook. */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char program[256];
    /* ---- guarded by mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int ok;
    int stop;
    int suspend;         /* Exit the thread, keep the connection (fork). */
    int suspended;       /* Stopped by st__sender_before_fork(). */
    struct qitem *head, *tail;
    size_t queued;
    uint64_t dropped;      /* Records lost with the connection. */
    uint64_t dropped_full; /* Records dropped by the drop policy. */
    uint64_t acked;
    uint64_t ack_errors;
    uint64_t cum_submitted;  /* Records submitted on this connection. */
    uint64_t cum_sent;       /* ... in frames fully written to the socket. */
    uint64_t cum_confirmed;  /* ... in frames the collector acknowledged. */
    struct { uint64_t token, cum; } inflight[INFLIGHT_MAX];
    size_t inflight_head, inflight_n;
    uint64_t progress_ns;    /* Last byte sent or received. */
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

/* One warning per process: a reconnection that fails again, or the
 * region's end, adds nothing the user needs. */
static void
sender_warn_once(const char *why)
{
    static int warned;

    if (__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        return;
    sender_warn("steptrace: lost the connection to the collector at %s (%s); "
                "reconnecting, and the records lost are counted in the log\n",
                S.path, why);
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
    __atomic_store_n(&S.ok, 0, __ATOMIC_RELEASE);
    if (cur != NULL)
        S.dropped += cur->nrecords;
    for (q = S.head; q != NULL; q = q->next)
        S.dropped += q->nrecords;
    /* Sent, but the collector never said they were written. */
    S.dropped += S.cum_sent - S.cum_confirmed;
    S.cum_confirmed = S.cum_sent;
    S.inflight_n = 0;
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
            /* Frames up to this token are written. */
            while (S.inflight_n > 0 &&
                   S.inflight[S.inflight_head].token <= m.u.ack.token) {
                S.cum_confirmed = S.inflight[S.inflight_head].cum;
                S.inflight_head = (S.inflight_head + 1) % INFLIGHT_MAX;
                S.inflight_n--;
            }
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

static void
sender_progress(void)
{
    pthread_mutex_lock(&S.mu);
    S.progress_ns = st__now_ns();
    pthread_mutex_unlock(&S.mu);
}

/* Frees the thread's reading state (when the connection is over). */
static void
sender_state_close(void)
{
    if (S.dec_ready) {
        st_buf_close(&S.in);
        st_wire_decoder_close(&S.dec);
        S.dec_ready = 0;
    }
}

static void *
sender_main(void *arg)
{
    const char *why = NULL;
    char whybuf[160];

    (void)arg;
    if (!S.dec_ready) {
        st_buf_init(&S.in);
        st_wire_decoder_init(&S.dec);
        S.dec_ready = 1;
    }
    for (;;) {
        struct pollfd p[2];
        int stop;

        pthread_mutex_lock(&S.mu);
        if (S.cur == NULL && S.head != NULL) {
            S.cur = S.head;
            S.head = S.cur->next;
            if (S.head == NULL)
                S.tail = NULL;
            S.off = 0;
        }
        stop = S.suspend || (S.stop && S.cur == NULL);
        pthread_mutex_unlock(&S.mu);
        if (stop)
            break;
        p[0].fd = S.fd;
        p[0].events = (short)(POLLIN | (S.cur != NULL ? POLLOUT : 0));
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

            if (st_buf_reserve(&S.in, 4096) != 0) {
                why = "out of memory";
                break;
            }
            n = recv(S.fd, S.in.data + S.in.len, 4096, MSG_DONTWAIT);
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
                S.in.len += (size_t)n;
                sender_progress();
                if (sender_parse_replies(&S.in, &S.dec) != 0) {
                    why = "the collector sent a malformed reply";
                    break;
                }
            }
        }
        if (S.cur != NULL && (p[0].revents & POLLOUT)) {
            struct qitem *cur = S.cur;
            ssize_t n = send(S.fd, cur->data + S.off, cur->len - S.off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(whybuf, sizeof(whybuf), "%s", strerror(errno));
                why = whybuf;
                break;
            }
            if (n > 0) {
                S.off += (size_t)n;
                sender_progress();
            }
            if (S.off == cur->len) {
                pthread_mutex_lock(&S.mu);
                S.queued -= cur->len;
                S.cum_sent = cur->cum;
                if (S.inflight_n == INFLIGHT_MAX) {
                    /* Oldest dropped: a later ACK confirms it anyway. */
                    S.inflight_head = (S.inflight_head + 1) % INFLIGHT_MAX;
                    S.inflight_n--;
                }
                S.inflight[(S.inflight_head + S.inflight_n) % INFLIGHT_MAX]
                    .token = cur->token;
                S.inflight[(S.inflight_head + S.inflight_n) % INFLIGHT_MAX]
                    .cum = cur->cum;
                S.inflight_n++;
                pthread_cond_broadcast(&S.cond);
                pthread_mutex_unlock(&S.mu);
                free(cur->data);
                free(cur);
                S.cur = NULL;
            }
        }
    }
    if (why != NULL) {
        pthread_mutex_lock(&S.mu);
        sender_fail_locked(S.cur, why);
        pthread_mutex_unlock(&S.mu);
        sender_warn_once(why);
    }
    if (why != NULL || S.stop) {
        /* The connection is over: the thread's state goes with it. */
        if (S.cur != NULL) {
            free(S.cur->data);
            free(S.cur);
            S.cur = NULL;
        }
        sender_state_close();
    }
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
    __atomic_store_n(&S.ok, 1, __ATOMIC_RELEASE);
    S.stop = 0;
    S.acked = 0;
    S.ack_errors = 0;
    S.cum_submitted = S.cum_sent = S.cum_confirmed = 0;
    S.inflight_head = S.inflight_n = 0;
    S.progress_ns = st__now_ns();
    S.ack_msg[0] = '\0';
    pthread_mutex_unlock(&S.mu);
    S.gen++;
    r = pthread_create(&S.thread, NULL, sender_main, NULL);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the sender thread: %s",
                 strerror(r));
        __atomic_store_n(&S.ok, 0, __ATOMIC_RELEASE);
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
    sender_resume();
    if (!S.running)
        return;
    pthread_mutex_lock(&S.mu);
    S.stop = 1;
    pthread_mutex_unlock(&S.mu);
    sender_wake();
    /* The thread sends what is queued first; a collector that takes
     * nothing for 2 s is cut off rather than waited for. */
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        struct timespec deadline;
        uint64_t since;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += 100000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(S.thread, NULL, &deadline) == 0)
            break;
        pthread_mutex_lock(&S.mu);
        since = st__now_ns() - S.progress_ns;
        pthread_mutex_unlock(&S.mu);
        if (since > BRIEF_STALL_NS) {
            shutdown(S.fd, SHUT_RDWR);
            pthread_join(S.thread, NULL);
            break;
        }
    }
    Py_END_ALLOW_THREADS
    S.running = 0;
    pthread_mutex_lock(&S.mu);
    __atomic_store_n(&S.ok, 0, __ATOMIC_RELEASE);
    queue_free(S.head);
    S.head = S.tail = NULL;
    S.queued = 0;
    pthread_mutex_unlock(&S.mu);
    if (S.cur != NULL) {
        free(S.cur->data);
        free(S.cur);
        S.cur = NULL;
    }
    sender_state_close();
    close(S.fd);
    close(S.efd);
    S.fd = S.efd = -1;
}

void
st__sender_before_fork(void)
{
    if (!S.running)
        return;
    pthread_mutex_lock(&S.mu);
    S.suspend = 1;
    pthread_mutex_unlock(&S.mu);
    sender_wake();
    /* The thread never takes the GIL: joining with it held is safe. */
    pthread_join(S.thread, NULL);
    S.running = 0;
    S.suspended = 1;
}

/*
 * Starts the thread again if st__sender_before_fork() stopped it: at the
 * next use of the connection, not in an after_in_parent hook, because
 * CPython 3.13 looks for other threads (to warn about fork with threads)
 * after those hooks run.
 */
static void
sender_resume(void)
{
    int ok;

    if (!S.suspended)
        return;
    S.suspended = 0;
    pthread_mutex_lock(&S.mu);
    S.suspend = 0;
    ok = S.ok;
    pthread_mutex_unlock(&S.mu);
    if (ok && pthread_create(&S.thread, NULL, sender_main, NULL) == 0)
        S.running = 1;
    else if (ok) {
        pthread_mutex_lock(&S.mu);
        sender_fail_locked(S.cur, "cannot restart the sender thread");
        pthread_mutex_unlock(&S.mu);
    }
}

int
st__sender_ok(void)
{
    /* Read on every event: an atomic load, no lock (it is written under
     * the lock, and a stale value only delays noticing by one event). */
    return __atomic_load_n(&S.ok, __ATOMIC_ACQUIRE);
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
st__sender_submit(struct st_buf *b, uint64_t nrecords, int policy,
                  uint64_t token)
{
    sender_resume();
    int drop_when_full = policy == ST_FULL_DROP;
    uint64_t stall_ns = policy == ST_FULL_BLOCK_BRIEF ? BRIEF_STALL_NS
                                                      : BLOCK_STALL_NS;
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
        int stuck = 0;

        /* The block policy: wait for room without holding the GIL, as
         * long as the collector takes something; one that takes nothing
         * for BLOCK_STALL_NS is treated as gone (never hang the program
         * for good because of the collector). */
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&S.mu);
        while (S.ok && S.queued > pending_max) {
            struct timespec deadline;

            if (st__now_ns() - S.progress_ns > stall_ns) {
                stuck = 1;
                break;
            }
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_sec += 1;
            (void)pthread_cond_timedwait(&S.cond, &S.mu, &deadline);
        }
        if (stuck)
            sender_fail_locked(S.cur, "the collector stopped taking records");
        pthread_mutex_unlock(&S.mu);
        Py_END_ALLOW_THREADS
        if (stuck) {
            /* Wakes the thread out of poll: it sees the socket closed. */
            shutdown(S.fd, SHUT_RDWR);
            sender_warn_once("the collector stopped taking records");
        }
    }
    q->next = NULL;
    q->data = b->data;
    q->len = b->len;
    q->nrecords = nrecords;
    q->token = token;
    st_buf_init(b);
    pthread_mutex_lock(&S.mu);
    if (!S.ok) {
        S.dropped += nrecords;
        pthread_mutex_unlock(&S.mu);
        queue_free(q);
        return -1;
    }
    S.cum_submitted += nrecords;
    q->cum = S.cum_submitted;
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
st__sender_wait_ack(uint64_t token, int stall_ms, uint64_t *errors,
                    char *msg, size_t msglen)
{
    uint64_t stall_ns = (uint64_t)stall_ms * 1000000ull;
    int r = 0, stalled = 0;

    msg[0] = '\0';
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&S.mu);
    while (S.ok && S.acked < token) {
        struct timespec deadline;

        /* Wait in slices, giving up only when nothing moves: a slow but
         * working collector is waited for. */
        if (st__now_ns() - S.progress_ns > stall_ns) {
            stalled = 1;
            break;
        }
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += 100000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&S.cond, &S.mu, &deadline);
    }
    if (S.acked >= token) {
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
        (void)stalled;
        snprintf(msg, msglen, "the collector at %s took nothing for %d s, "
                 "so the end of the region is not confirmed (records may "
                 "be missing from the log)", S.path, stall_ms / 1000);
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
    S.suspended = 0;
    S.suspend = 0;
    __atomic_store_n(&S.ok, 0, __ATOMIC_RELEASE);
    S.stop = 0;
    queue_free(S.head);
    S.head = S.tail = NULL;
    S.queued = 0;
    if (S.cur != NULL) {
        free(S.cur->data);
        free(S.cur);
        S.cur = NULL;
    }
    sender_state_close();
    S.gen++;
}
