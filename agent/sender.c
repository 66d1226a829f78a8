/*
 * The collector connection: HELLO (which brings the ring, PROTOCOL.md
 * "The ring"), the watcher thread that reads the collector's replies, the
 * waits for an ACK or for room in the ring, and what happens to all of it
 * around fork and exit.
 *
 * Records do not travel on the socket: the hook writes them into the ring
 * (outbox.c), which the collector reads on its own.  The socket carries
 * the collector's ACKs back, and its end tells either side that the other
 * one is gone.  The watcher thread never takes the GIL: it reads ACKs,
 * notices the end of the connection, and wakes the threads that wait.
 *
 * Loss accounting: the agent ends a stretch of records with a FLUSH every
 * so often (outbox.c), and notes here how many records were committed up
 * to it.  The collector ACKs a FLUSH once everything before it is written,
 * so if the connection dies, the records committed since the last ACK are
 * counted as lost (at most that many: some may have been written).
 *
 * Locking: `mu` guards the fields of S below the marker.  The others are
 * the GIL holder's (the thread is started and joined with the GIL held).
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
#include "steptrace/ring.h"

#define HELLO_TIMEOUT_MS 5000

/* Frames committed and not yet acknowledged: (token, cumulative records). */
#define INFLIGHT_MAX 4096
/* Files remembered (one per Tracer that wrote on this connection). */
#define SENDER_FILES 16

static void sender_resume(void);

static struct {
    int fd;              /* Owned socket, -1 when none. */
    int ctl;             /* Owned eventfd waking the thread (stop). */
    pthread_t thread;
    int running;         /* The thread was started and not joined. */
    /* The thread's reading state, kept here so that the thread can be
     * stopped around a fork and started again where it was. */
    struct st_buf in;    /* Bytes read from the collector. */
    struct st_wire_decoder dec;
    int dec_ready;
    uint32_t gen;        /* Changes at each (re)connect. */
    uint32_t fork_gen;   /* gen right after the last fork, in a child. */
    int settled;         /* A failure's loss was counted. */
    uint64_t dropped;    /* Records lost: connections gone, drops. */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char program[256];
    /* ---- guarded by mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int ok;
    int stop;
    int suspend;         /* Exit the thread, keep the connection (fork). */
    int suspended;       /* Stopped by st__sender_before_fork(). */
    uint64_t acked;
    uint64_t ack_errors;
    uint64_t confirmed;  /* Records the collector confirmed written. */
    struct { uint64_t token, cum; } inflight[INFLIGHT_MAX];
    size_t inflight_head, inflight_n;
    char ack_msg[512];
    char fail_msg[256];
    /* The files the collector opened for this connection's tracers (FILE
     * messages), most recent first; a reconnection forgets them. */
    struct { uint32_t tracer_id; char *path; } files[SENDER_FILES];
    size_t nfiles;
} S = {
    .fd = -1,
    .ctl = -1,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

/* Writes one line to fd 2 directly: usable from the watcher thread. */
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

/* Marks the connection failed.  Call with mu held. */
static void
sender_fail_locked(const char *why)
{
    if (!S.ok)
        return;
    __atomic_store_n(&S.ok, 0, __ATOMIC_RELEASE);
    S.inflight_n = 0;
    snprintf(S.fail_msg, sizeof(S.fail_msg), "%s", why);
    pthread_cond_broadcast(&S.cond);
}

/* The records committed since the last confirmation are lost with a
 * failed connection: counted once (GIL held). */
static void
sender_settle(void)
{
    uint64_t confirmed, committed = st__outbox_records();

    if (S.settled || __atomic_load_n(&S.ok, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&S.mu);
    confirmed = S.confirmed;
    pthread_mutex_unlock(&S.mu);
    if (committed > confirmed)
        S.dropped += committed - confirmed;
    S.settled = 1;
}

/* An ACK: frames up to its token are written.  Call with mu held. */
static void
sender_on_ack(const struct st_msg *m)
{
    if (m->u.ack.token > S.acked)
        S.acked = m->u.ack.token;
    while (S.inflight_n > 0 &&
           S.inflight[S.inflight_head].token <= m->u.ack.token) {
        S.confirmed = S.inflight[S.inflight_head].cum;
        S.inflight_head = (S.inflight_head + 1) % INFLIGHT_MAX;
        S.inflight_n--;
    }
    S.ack_errors += m->u.ack.errors;
    if (m->u.ack.errors > 0 && m->u.ack.message.n > 0)
        snprintf(S.ack_msg, sizeof(S.ack_msg), "%.*s",
                 (int)m->u.ack.message.n, m->u.ack.message.p);
    /* ACK 0 acknowledges nothing: the collector took bytes from a ring
     * the hook waits on (outbox.c). */
    pthread_cond_broadcast(&S.cond);
}

/* Forgets the files of the previous connection.  Call with mu held. */
static void
sender_files_clear(void)
{
    size_t i;

    for (i = 0; i < S.nfiles; i++)
        free(S.files[i].path);
    S.nfiles = 0;
}

/* A FILE: tracer_id's records go to path.  Call with mu held. */
static void
sender_on_file(const struct st_msg *m)
{
    char *path = malloc(m->u.file.path.n + 1);
    size_t i;

    if (path == NULL)
        return;
    memcpy(path, m->u.file.path.p, m->u.file.path.n);
    path[m->u.file.path.n] = '\0';
    for (i = 0; i < S.nfiles; i++)
        if (S.files[i].tracer_id == m->u.file.tracer_id)
            break;
    if (i == S.nfiles) {
        if (S.nfiles == SENDER_FILES)
            i = --S.nfiles;  /* The oldest goes. */
        else
            S.nfiles++;
        S.files[i].path = NULL;
    }
    free(S.files[i].path);
    /* Most recent first. */
    memmove(&S.files[1], &S.files[0], i * sizeof(S.files[0]));
    S.files[0].tracer_id = m->u.file.tracer_id;
    S.files[0].path = path;
}

int
st__sender_file(uint32_t tracer_id, char *out, size_t outlen)
{
    size_t i;
    int found = 0;

    pthread_mutex_lock(&S.mu);
    for (i = 0; i < S.nfiles; i++)
        if (S.files[i].tracer_id == tracer_id) {
            found = snprintf(out, outlen, "%s", S.files[i].path) > 0;
            break;
        }
    pthread_mutex_unlock(&S.mu);
    return found;
}

/* Parses complete frames in `in` (ACKs, FILEs), consuming them. */
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
            if (m.type != ST_MSG_ACK && m.type != ST_MSG_FILE)
                continue;
            pthread_mutex_lock(&S.mu);
            if (m.type == ST_MSG_ACK)
                sender_on_ack(&m);
            else
                sender_on_file(&m);
            pthread_mutex_unlock(&S.mu);
        }
        if (r < 0)
            return -1;
        st_buf_consume(in, ST_WIRE_HEADER_SIZE + (size_t)len);
    }
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

/* Reads what the collector sent.  @return NULL, or why the connection is
 * over (whybuf may hold the text). */
static const char *
sender_read(char *whybuf, size_t n)
{
    ssize_t got;

    if (st_buf_reserve(&S.in, 4096) != 0)
        return "out of memory";
    got = recv(S.fd, S.in.data + S.in.len, 4096, MSG_DONTWAIT);
    if (got == 0)
        return "the collector closed the connection";
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return NULL;
        snprintf(whybuf, n, "%s", strerror(errno));
        return whybuf;
    }
    S.in.len += (size_t)got;
    if (sender_parse_replies(&S.in, &S.dec) != 0)
        return "the collector sent a malformed reply";
    return NULL;
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
        stop = S.suspend || S.stop;
        pthread_mutex_unlock(&S.mu);
        if (stop)
            break;
        p[0].fd = S.fd;
        p[0].events = POLLIN;
        p[1].fd = S.ctl;
        p[1].events = POLLIN;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            why = "poll failed";
            break;
        }
        if (p[1].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(S.ctl, &v, sizeof(v));
            (void)r;
        }
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
            (why = sender_read(whybuf, sizeof(whybuf))) != NULL)
            break;
    }
    if (why != NULL) {
        pthread_mutex_lock(&S.mu);
        sender_fail_locked(why);
        pthread_mutex_unlock(&S.mu);
        sender_warn_once(why);
        sender_state_close();
    }
    return NULL;
}

/* ---- connecting ---- */

/* Receives one frame (the HELLO reply) and the descriptors sent with it.
 * @return the payload length, or -1 (err says why). */
static int64_t
sender_recv_reply(int fd, char *reply, size_t cap, int fds[2], char *err,
                  size_t errlen)
{
    size_t got = 0, want = ST_WIRE_HEADER_SIZE;
    int64_t len = -1;

    while (got < want) {
        union {
            char buf[CMSG_SPACE(4 * sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct pollfd p = {fd, POLLIN, 0};
        struct iovec iov = {reply + got, want - got};
        struct msghdr mh;
        struct cmsghdr *cm;
        ssize_t n;

        if (poll(&p, 1, HELLO_TIMEOUT_MS) <= 0) {
            snprintf(err, errlen, "the collector did not answer within %d s",
                     HELLO_TIMEOUT_MS / 1000);
            return -1;
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            snprintf(err, errlen, "the collector closed the connection");
            return -1;
        }
        for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
            size_t k, nfd;

            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (k = 0; k < nfd; k++) {
                int d;

                memcpy(&d, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
                if (k < 2 && fds[k] < 0)
                    fds[k] = d;
                else
                    close(d);
            }
        }
        got += (size_t)n;
        if (got == ST_WIRE_HEADER_SIZE && len < 0) {
            len = st_wire_frame_len((const unsigned char *)reply,
                                    (uint32_t)(cap - ST_WIRE_HEADER_SIZE));
            if (len < 0)
                break;
            want += (size_t)len;
        }
    }
    return len;
}

/* Decodes the HELLO reply.  @return 0 (with *ring the ring's size) or a
 * negative code (err says why). */
static int
sender_check_reply(const char *reply, int64_t len, uint64_t *ring,
                   char *err, size_t errlen)
{
    struct st_wire_decoder d;
    struct st_msg m;
    int r = -EPROTO;

    if (len > 0 &&
        st_wire_validate(reply + ST_WIRE_HEADER_SIZE, (size_t)len) > 0) {
        st_wire_decoder_init(&d);
        st_wire_decoder_reset(&d, reply + ST_WIRE_HEADER_SIZE, (size_t)len);
        if (st_wire_decode_next(&d, &m) == 1 && m.type == ST_MSG_HELLO) {
            r = m.u.hello.version == ST_WIRE_VERSION ? 0 : ST_EVERSION;
            *ring = m.u.hello.ring_bytes;
        }
        st_wire_decoder_close(&d);
    }
    /* A HELLO of another version may have other fields: its version is
     * still its second element. */
    if (r != 0 && len >= 3 &&
        ((unsigned char)reply[ST_WIRE_HEADER_SIZE] & 0xf0) == 0x90 &&
        reply[ST_WIRE_HEADER_SIZE + 1] == ST_MSG_HELLO &&
        (unsigned char)reply[ST_WIRE_HEADER_SIZE + 2] <= 0x7f &&
        reply[ST_WIRE_HEADER_SIZE + 2] != ST_WIRE_VERSION)
        r = ST_EVERSION;
    if (r == ST_EVERSION)
        snprintf(err, errlen, "the collector speaks another protocol version "
                 "(need %d): upgrade steptrace and steptraced together",
                 ST_WIRE_VERSION);
    else if (r != 0)
        snprintf(err, errlen, "the collector's reply is not a steptrace "
                 "HELLO: is %s a steptraced socket?", S.path);
    return r;
}

/*
 * Blocking exchange of HELLO frames before the thread starts; the reply
 * brings the ring, which is handed to the outbox.
 * @return 0 or a negative code (err says why).
 */
static int
sender_hello(int fd, const char *program, char *err, size_t errlen)
{
    struct st_buf b;
    msgpack_packer pk;
    char reply[512];
    int fds[2] = {-1, -1};
    uint64_t ring = 0;
    int64_t len;
    int r;

    st_buf_init(&b);
    st_buf_append(&b, "\0\0\0\0", 4);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    st_wire_pack_hello(&pk, (uint64_t)getpid(), program, strlen(program),
                       st__outbox_wanted());
    st_wire_put_header((unsigned char *)b.data, (uint32_t)(b.len - 4));
    if (b.oom || send(fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len) {
        snprintf(err, errlen, "cannot send to the collector: %s",
                 strerror(errno));
        st_buf_close(&b);
        return -EIO;
    }
    st_buf_close(&b);
    len = sender_recv_reply(fd, reply, sizeof(reply), fds, err, errlen);
    if (len < 0) {
        r = -EPROTO;
        goto out;
    }
    r = sender_check_reply(reply, len, &ring, err, errlen);
    if (r != 0)
        goto out;
    if (ring == 0 || fds[0] < 0 || fds[1] < 0) {
        snprintf(err, errlen, "the collector sent no ring: upgrade "
                 "steptrace and steptraced together");
        r = -EPROTO;
        goto out;
    }
    pthread_mutex_lock(&S.mu);
    r = st__outbox_attach(fds[0], ring, fds[1], err, errlen);
    pthread_mutex_unlock(&S.mu);
    if (r != 0)
        goto out;
    fds[1] = -1;  /* The outbox's now. */

out:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    return r;
}

int
st__sender_connect(const char *path, const char *program, char *err,
                   size_t errlen)
{
    struct sockaddr_un sa;
    int fd, r;

    st__sender_close();
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
    S.ctl = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (S.ctl < 0) {
        r = -errno;
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        close(fd);
        return r;
    }
    r = sender_hello(fd, program, err, errlen);
    if (r != 0) {
        close(fd);
        close(S.ctl);
        S.ctl = -1;
        return r;
    }
    S.fd = fd;
    pthread_mutex_lock(&S.mu);
    __atomic_store_n(&S.ok, 1, __ATOMIC_RELEASE);
    S.stop = 0;
    S.acked = 0;
    S.ack_errors = 0;
    S.confirmed = 0;
    S.inflight_head = S.inflight_n = 0;
    S.ack_msg[0] = '\0';
    sender_files_clear();
    S.gen++;
    pthread_mutex_unlock(&S.mu);
    S.settled = 0;
    r = pthread_create(&S.thread, NULL, sender_main, NULL);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the sender thread: %s",
                 strerror(r));
        pthread_mutex_lock(&S.mu);
        __atomic_store_n(&S.ok, 0, __ATOMIC_RELEASE);
        st__outbox_detach();
        pthread_mutex_unlock(&S.mu);
        close(S.fd);
        close(S.ctl);
        S.fd = S.ctl = -1;
        return -r;
    }
    S.running = 1;
    st__signals_install();
    st__sender_atfork_install();
    return 0;
}

static void
sender_wake_thread(void)
{
    uint64_t one = 1;
    ssize_t r = write(S.ctl, &one, sizeof(one));
    (void)r;
}

void
st__sender_close(void)
{
    sender_resume();
    if (S.fd < 0)
        return;
    /* Everything recorded is in the ring already: the collector takes it
     * once it sees the end of the connection.  Saying that this is an
     * orderly end keeps it from reporting a vanished process. */
    st__outbox_set_end(ST_RING_END_EXIT, 0, NULL);
    if (S.running) {
        pthread_mutex_lock(&S.mu);
        S.stop = 1;
        pthread_mutex_unlock(&S.mu);
        sender_wake_thread();
        /* The thread never takes the GIL: joining with it held is safe. */
        pthread_join(S.thread, NULL);
        S.running = 0;
    }
    sender_settle();
    pthread_mutex_lock(&S.mu);
    if (S.ok)
        S.settled = 1;  /* An orderly end loses nothing. */
    __atomic_store_n(&S.ok, 0, __ATOMIC_RELEASE);
    st__outbox_detach();
    pthread_mutex_unlock(&S.mu);
    sender_state_close();
    close(S.fd);
    close(S.ctl);
    S.fd = S.ctl = -1;
}

void
st__sender_before_fork(void)
{
    if (!S.running)
        return;
    pthread_mutex_lock(&S.mu);
    S.suspend = 1;
    pthread_mutex_unlock(&S.mu);
    sender_wake_thread();
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
        sender_fail_locked("cannot restart the sender thread");
        pthread_mutex_unlock(&S.mu);
    }
}

void
st__sender_use(void)
{
    if (S.suspended)
        sender_resume();
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
    sender_settle();
    return S.dropped;
}

void
st__sender_count_lost(uint64_t n)
{
    S.dropped += n;
}

void
st__sender_flush_mark(uint64_t token, uint64_t cum)
{
    pthread_mutex_lock(&S.mu);
    if (S.inflight_n == INFLIGHT_MAX) {
        /* Oldest dropped: a later ACK confirms it anyway. */
        S.inflight_head = (S.inflight_head + 1) % INFLIGHT_MAX;
        S.inflight_n--;
    }
    S.inflight[(S.inflight_head + S.inflight_n) % INFLIGHT_MAX].token = token;
    S.inflight[(S.inflight_head + S.inflight_n) % INFLIGHT_MAX].cum = cum;
    S.inflight_n++;
    pthread_mutex_unlock(&S.mu);
}

/* A deadline `ms` from now, for pthread_cond_timedwait. */
static struct timespec
sender_deadline(long ms)
{
    struct timespec t;

    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += ms * 1000000L;
    while (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* A position of the ring of connection `gen` (*p: a field of its
 * header, from st__outbox_read_pos or st__outbox_taken_pos), or -1 when
 * that connection is no longer the one attached.  Call with mu held: the
 * ring is attached and detached under it. */
static int
sender_ring_pos(const uint64_t *p, uint32_t gen, uint64_t *pos)
{
    if (p == NULL || S.gen != gen)
        return -1;
    *pos = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    return 0;
}

int
st__sender_wait_room(uint32_t gen, uint64_t target, uint64_t stall_ns)
{
    uint64_t last = 0, since = st__clock_now_ns();
    int r = 0;

    pthread_mutex_lock(&S.mu);
    (void)sender_ring_pos(st__outbox_taken_pos(), gen, &last);
    for (;;) {
        uint64_t pos, taken;
        struct timespec deadline;

        if (!S.ok || sender_ring_pos(st__outbox_read_pos(), gen, &pos) ||
            sender_ring_pos(st__outbox_taken_pos(), gen, &taken)) {
            r = -1;
            break;
        }
        if ((int64_t)(pos - target) >= 0)
            break;
        /* Progress is what the collector takes. */
        if (taken != last) {
            last = taken;
            since = st__clock_now_ns();
        }
        else if (st__clock_now_ns() - since > stall_ns) {
            /* The next hook reconnects (and so stops the thread). */
            sender_fail_locked("the collector stopped taking records");
            sender_warn_once("the collector stopped taking records");
            r = -1;
            break;
        }
        /* The collector's ACK 0 says it took bytes; the timeout covers a
         * wake-up that came before this wait began. */
        deadline = sender_deadline(2);
        (void)pthread_cond_timedwait(&S.cond, &S.mu, &deadline);
    }
    pthread_mutex_unlock(&S.mu);
    return r;
}

int
st__sender_wait_ack(uint64_t token, int stall_ms, uint64_t *errors,
                    char *msg, size_t msglen)
{
    uint64_t stall_ns = (uint64_t)stall_ms * 1000000ull;
    uint32_t gen = S.gen;
    uint64_t last = 0, since = st__clock_now_ns(), acked = 0;
    int r = 0;

    msg[0] = '\0';
    sender_resume();
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&S.mu);
    (void)sender_ring_pos(st__outbox_taken_pos(), gen, &last);
    while (S.ok && S.acked < token) {
        struct timespec deadline;
        uint64_t pos = 0;

        (void)sender_ring_pos(st__outbox_taken_pos(), gen, &pos);
        /* Wait as long as something moves (the collector takes bytes
         * from the ring, or ACKs earlier FLUSHes): a slow but working
         * collector is waited for. */
        if (pos != last || S.acked != acked) {
            last = pos;
            acked = S.acked;
            since = st__clock_now_ns();
        }
        else if (st__clock_now_ns() - since > stall_ns) {
            break;
        }
        deadline = sender_deadline(100);
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
        snprintf(msg, msglen, "the collector at %s took nothing for %d s, "
                 "so the end of the region is not confirmed (records may "
                 "be missing from the log)", S.path, stall_ms / 1000);
    }
    pthread_mutex_unlock(&S.mu);
    Py_END_ALLOW_THREADS
    return r;
}

/*
 * In a forked child, inside fork() itself (a pthread_atfork handler): so
 * before any code of the program's can run in the child, even an
 * os.register_at_fork hook registered before steptrace's, which may be
 * traced.  Only the forking thread exists in the child: the watcher thread
 * and any lock it held are gone, and the ring is the parent's.  Start
 * from a clean, disconnected state; the child connects anew when it
 * records.  No Python call here (none may be made inside fork()).
 */
static void
sender_atfork_child(void)
{
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cond, NULL);
    st__outbox_forget();
    if (S.fd >= 0)
        close(S.fd);
    if (S.ctl >= 0)
        close(S.ctl);
    S.fd = S.ctl = -1;
    S.running = 0;
    S.suspended = 0;
    S.suspend = 0;
    __atomic_store_n(&S.ok, 0, __ATOMIC_RELEASE);
    S.stop = 0;
    S.settled = 1;   /* The parent's records are the parent's. */
    /* The parent's files are not the child's (their strings are left
     * alone: no allocator call inside fork). */
    S.nfiles = 0;
    sender_state_close();
    S.gen++;
    S.fork_gen = S.gen;
}

void
st__sender_atfork_install(void)
{
    static int done;

    if (!done && pthread_atfork(NULL, NULL, sender_atfork_child) == 0)
        done = 1;
}

int
st__sender_reconnected_since_fork(void)
{
    return S.gen != S.fork_gen;
}
