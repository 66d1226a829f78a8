/*
 * The collector connection's socket and its watcher thread; see sender.h.
 *
 * Loss accounting: the agent ends a stretch of records with a FLUSH every
 * so often (outbox.c), and notes here how many records were committed up
 * to it.  The collector ACKs a FLUSH once everything before it is written,
 * so if the connection dies, the records committed since the last ACK are
 * lost (at most that many: some may have been written); collector.c
 * counts them from st__sender_confirmed().
 *
 * Locking: see sender_int.h.
 */
#include "compat.h"

#include "steptrace/ring.h"
#include "steptrace/wire.h"

#include "sender_int.h"

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

static void sender_resume(void);

struct st_sender_state st__sender_s = {
    .fd = -1,
    .ctl = -1,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};
static struct st_sender_state *const S = &st__sender_s;
struct st_sender_hot st__sender_hot;

/* Writes one line to fd 2 directly: usable from the watcher thread. */
static void
sender_warn(const char *fmt, const char *a, const char *b)
{
    char line[768];
    int n = snprintf(line, sizeof(line), fmt, a, b);

    if (n > 0) {
        ssize_t w = write(2, line,
                          (size_t)n < sizeof(line) ? (size_t)n : sizeof(line));
        (void)w;
    }
}

/* One warning per process: a reconnection that fails again, or the
 * region's end, adds nothing the user needs. */
void
st__sender_warn_once(const char *why)
{
    static int warned;

    if (__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        return;
    sender_warn("steptrace: lost the connection to the collector at %s (%s); "
                "reconnecting, and the records lost are counted in the log\n",
                S->path, why);
}

/* Marks the connection failed.  Call with mu held. */
void
st__sender_fail_locked(const char *why)
{
    if (!st__sender_hot.ok)
        return;
    __atomic_store_n(&st__sender_hot.ok, 0, __ATOMIC_RELEASE);
    S->inflight_n = 0;
    snprintf(S->fail_msg, sizeof(S->fail_msg), "%s", why);
    pthread_cond_broadcast(&S->cond);
}

/* An ACK: frames up to its token are written.  Call with mu held. */
static void
sender_on_ack(const struct st_msg *m)
{
    if (m->u.ack.token > S->acked)
        S->acked = m->u.ack.token;
    while (S->inflight_n > 0 &&
           S->inflight[S->inflight_head].token <= m->u.ack.token) {
        S->confirmed = S->inflight[S->inflight_head].cum;
        S->inflight_head = (S->inflight_head + 1) % INFLIGHT_MAX;
        S->inflight_n--;
    }
    S->ack_errors += m->u.ack.errors;
    if (m->u.ack.errors > 0 && m->u.ack.message.n > 0)
        snprintf(S->ack_msg, sizeof(S->ack_msg), "%.*s",
                 (int)m->u.ack.message.n, m->u.ack.message.p);
    /* ACK 0 acknowledges nothing: the collector took bytes from a ring
     * the hook waits on (outbox.c). */
    pthread_cond_broadcast(&S->cond);
}

/* Forgets the files of the previous connection.  Call with mu held. */
static void
sender_files_clear(void)
{
    size_t i;

    for (i = 0; i < S->nfiles; i++)
        free(S->files[i].path);
    S->nfiles = 0;
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
    for (i = 0; i < S->nfiles; i++)
        if (S->files[i].tracer_id == m->u.file.tracer_id)
            break;
    if (i == S->nfiles) {
        if (S->nfiles == SENDER_FILES)
            i = --S->nfiles; /* The oldest goes. */
        else
            S->nfiles++;
        S->files[i].path = NULL;
    }
    free(S->files[i].path);
    /* Most recent first. */
    memmove(&S->files[1], &S->files[0], i * sizeof(S->files[0]));
    S->files[0].tracer_id = m->u.file.tracer_id;
    S->files[0].path = path;
}

int
st__sender_file(uint32_t tracer_id, char *out, size_t outlen)
{
    size_t i;
    int found = 0;

    pthread_mutex_lock(&S->mu);
    for (i = 0; i < S->nfiles; i++)
        if (S->files[i].tracer_id == tracer_id) {
            found = snprintf(out, outlen, "%s", S->files[i].path) > 0;
            break;
        }
    pthread_mutex_unlock(&S->mu);
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
            pthread_mutex_lock(&S->mu);
            if (m.type == ST_MSG_ACK)
                sender_on_ack(&m);
            else
                sender_on_file(&m);
            pthread_mutex_unlock(&S->mu);
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
    if (S->dec_ready) {
        st_buf_close(&S->in);
        st_wire_decoder_close(&S->dec);
        S->dec_ready = 0;
    }
}

/* Reads what the collector sent.  @return NULL, or why the connection is
 * over (whybuf may hold the text). */
static const char *
sender_read(char *whybuf, size_t n)
{
    ssize_t got;

    if (st_buf_reserve(&S->in, 4096) != 0)
        return "out of memory";
    got = recv(S->fd, S->in.data + S->in.len, 4096, MSG_DONTWAIT);
    if (got == 0)
        return "the collector closed the connection";
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return NULL;
        snprintf(whybuf, n, "%s", strerror(errno));
        return whybuf;
    }
    S->in.len += (size_t)got;
    if (sender_parse_replies(&S->in, &S->dec) != 0)
        return "the collector sent a malformed reply";
    return NULL;
}

static void *
sender_main(void *arg)
{
    const char *why = NULL;
    char whybuf[160];

    (void)arg;
    if (!S->dec_ready) {
        st_buf_init(&S->in);
        st_wire_decoder_init(&S->dec);
        S->dec_ready = 1;
    }
    for (;;) {
        struct pollfd p[2];
        int stop;

        pthread_mutex_lock(&S->mu);
        stop = S->suspend || S->stop;
        pthread_mutex_unlock(&S->mu);
        if (stop)
            break;
        p[0].fd = S->fd;
        p[0].events = POLLIN;
        p[1].fd = S->ctl;
        p[1].events = POLLIN;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            why = "poll failed";
            break;
        }
        if (p[1].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(S->ctl, &v, sizeof(v));
            (void)r;
        }
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
            (why = sender_read(whybuf, sizeof(whybuf))) != NULL)
            break;
    }
    if (why != NULL) {
        pthread_mutex_lock(&S->mu);
        st__sender_fail_locked(why);
        pthread_mutex_unlock(&S->mu);
        st__sender_warn_once(why);
        sender_state_close();
    }
    return NULL;
}

/* ---- connecting ---- */

/* Connects a socket to the collector at `path`.  @return it, or a
 * negative errno (err says why). */
static int
sender_socket(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    int fd, r;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path is longer than %zu bytes: %s",
                 sizeof(sa.sun_path) - 1, path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    snprintf(S->path, sizeof(S->path), "%s", path);
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
    return fd;
}

int
st__sender_dial(const char *path, const char *program, uint64_t ring_bytes,
                struct st_hello_ring *ring, char *err, size_t errlen)
{
    int fd, r;

    fd = sender_socket(path, err, errlen);
    if (fd < 0)
        return fd;
    S->ctl = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (S->ctl < 0) {
        r = -errno;
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto err_socket;
    }
    r = st__hello_exchange(fd, program, ring_bytes, path, ring, err, errlen);
    if (r != 0)
        goto err_ctl;
    S->fd = fd;
    return 0;

err_ctl:
    close(S->ctl);
    S->ctl = -1;
err_socket:
    close(fd);
    return r;
}

int
st__sender_start(struct st_ring_hdr *ring, char *err, size_t errlen)
{
    int r;

    pthread_mutex_lock(&S->mu);
    S->ring = ring;
    __atomic_store_n(&st__sender_hot.ok, 1, __ATOMIC_RELEASE);
    S->stop = 0;
    S->acked = 0;
    S->ack_errors = 0;
    S->confirmed = 0;
    S->inflight_head = S->inflight_n = 0;
    S->ack_msg[0] = '\0';
    sender_files_clear();
    st__sender_hot.gen++;
    pthread_mutex_unlock(&S->mu);
    r = pthread_create(&S->thread, NULL, sender_main, NULL);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the sender thread: %s",
                 strerror(r));
        st__sender_disconnect();
        return -r;
    }
    S->running = 1;
    return 0;
}

int
st__sender_dialed(void)
{
    return S->fd >= 0;
}

static void
sender_wake_thread(void)
{
    uint64_t one = 1;
    ssize_t r = write(S->ctl, &one, sizeof(one));
    (void)r;
}

/* Tells the thread to exit (*flag, S->stop or S->suspend, set under mu)
 * and joins it. */
static void
sender_join(int *flag)
{
    pthread_mutex_lock(&S->mu);
    *flag = 1;
    pthread_mutex_unlock(&S->mu);
    sender_wake_thread();
    /* The thread never takes the GIL: joining with it held is safe. */
    pthread_join(S->thread, NULL);
    S->running = 0;
}

void
st__sender_stop(void)
{
    if (S->running)
        sender_join(&S->stop);
}

void
st__sender_disconnect(void)
{
    pthread_mutex_lock(&S->mu);
    __atomic_store_n(&st__sender_hot.ok, 0, __ATOMIC_RELEASE);
    S->ring = NULL;
    pthread_mutex_unlock(&S->mu);
    sender_state_close();
    if (S->fd >= 0)
        close(S->fd);
    if (S->ctl >= 0)
        close(S->ctl);
    S->fd = S->ctl = -1;
}

void
st__sender_before_fork(void)
{
    if (!S->running)
        return;
    sender_join(&S->suspend);
    S->suspended = 1;
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

    if (!S->suspended)
        return;
    S->suspended = 0;
    pthread_mutex_lock(&S->mu);
    S->suspend = 0;
    ok = st__sender_hot.ok;
    pthread_mutex_unlock(&S->mu);
    if (ok && pthread_create(&S->thread, NULL, sender_main, NULL) == 0)
        S->running = 1;
    else if (ok) {
        pthread_mutex_lock(&S->mu);
        st__sender_fail_locked("cannot restart the sender thread");
        pthread_mutex_unlock(&S->mu);
    }
}

void
st__sender_use(void)
{
    if (S->suspended)
        sender_resume();
}

uint64_t
st__sender_confirmed(void)
{
    uint64_t confirmed;

    pthread_mutex_lock(&S->mu);
    confirmed = S->confirmed;
    pthread_mutex_unlock(&S->mu);
    return confirmed;
}

void
st__sender_count_lost(uint64_t n)
{
    S->lost += n;
}

uint64_t
st__sender_lost(void)
{
    return S->lost;
}

void
st__sender_flush_mark(uint64_t token, uint64_t cum)
{
    size_t i;

    pthread_mutex_lock(&S->mu);
    if (S->inflight_n == INFLIGHT_MAX) {
        /* Oldest dropped: a later ACK confirms it anyway. */
        S->inflight_head = (S->inflight_head + 1) % INFLIGHT_MAX;
        S->inflight_n--;
    }
    i = (S->inflight_head + S->inflight_n) % INFLIGHT_MAX;
    S->inflight[i].token = token;
    S->inflight[i].cum = cum;
    S->inflight_n++;
    pthread_mutex_unlock(&S->mu);
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
void
st__sender_atfork_child(void)
{
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cond, NULL);
    S->ring = NULL;
    if (S->fd >= 0)
        close(S->fd);
    if (S->ctl >= 0)
        close(S->ctl);
    S->fd = S->ctl = -1;
    S->running = 0;
    S->suspended = 0;
    S->suspend = 0;
    __atomic_store_n(&st__sender_hot.ok, 0, __ATOMIC_RELEASE);
    S->stop = 0;
    /* The parent's files are not the child's (their strings are left
     * alone: no allocator call inside fork). */
    S->nfiles = 0;
    sender_state_close();
    st__sender_hot.gen++;
    S->fork_gen = st__sender_hot.gen;
}

int
st__sender_reconnected_since_fork(void)
{
    return st__sender_hot.gen != S->fork_gen;
}
