/*
 * The collector driven through its real server and connection code; see
 * fuzz-daemon.h.
 */
#include "fuzz-daemon.h"

#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

#include "conn.h"
#include "log.h"
#include "settings.h"
#include "sink.h"

/* Give up on a collector that takes nothing for this long: a hang. */
#define FZ_STALL_MS 10000

/* ---- Files: the writer's paths kept under the scratch directory ---- */

static char fz_root[64]; /* "" until the first input. */
static size_t fz_root_len;

/* A path of the writer, rebased under fz_root: "/a/b" -> ROOT/a/b.  The
 * collector's own reads (/proc/PID/cmdline) and paths already under the
 * root pass unchanged.  A path too long to rebase is one that fails. */
static const char *
fz_path(const char *path, char *buf, size_t len)
{
    if (fz_root_len == 0 || strncmp(path, "/proc/", 6) == 0 ||
        strcmp(path, "/dev/null") == 0 ||
        (strncmp(path, fz_root, fz_root_len) == 0 &&
         (path[fz_root_len] == '/' || path[fz_root_len] == '\0')))
        return path;
    if ((size_t)snprintf(buf, len, "%s%s%s", fz_root,
                         path[0] == '/' ? "" : "/", path) >= len)
        return "/nonexistent/too/long";
    return buf;
}

int __real_open(const char *path, int flags, ...);
int __real_open64(const char *path, int flags, ...);
int __real_mkdir(const char *path, mode_t mode);
int __real_rename(const char *from, const char *to);
int __real_unlink(const char *path);
int __wrap_open(const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...);
int __wrap_mkdir(const char *path, mode_t mode);
int __wrap_rename(const char *from, const char *to);
int __wrap_unlink(const char *path);

/* The mode argument of open(2), when the flags say there is one. */
#define FZ_OPEN_MODE(flags, mode)                                             \
    do {                                                                      \
        if ((flags) & (O_CREAT | O_TMPFILE)) {                                \
            va_list ap;                                                       \
                                                                              \
            va_start(ap, flags);                                              \
            mode = (mode_t)va_arg(ap, int);                                   \
            va_end(ap);                                                       \
        }                                                                     \
    } while (0)

int
__wrap_open(const char *path, int flags, ...)
{
    char buf[PATH_MAX + 64];
    mode_t mode = 0;

    FZ_OPEN_MODE(flags, mode);
    return __real_open(fz_path(path, buf, sizeof(buf)), flags, mode);
}

/* What open() is with -D_FILE_OFFSET_BITS=64, which meson passes. */
int
__wrap_open64(const char *path, int flags, ...)
{
    char buf[PATH_MAX + 64];
    mode_t mode = 0;

    FZ_OPEN_MODE(flags, mode);
    return __real_open64(fz_path(path, buf, sizeof(buf)), flags, mode);
}

int
__wrap_mkdir(const char *path, mode_t mode)
{
    char buf[PATH_MAX + 64];

    return __real_mkdir(fz_path(path, buf, sizeof(buf)), mode);
}

int
__wrap_rename(const char *from, const char *to)
{
    char b1[PATH_MAX + 64], b2[PATH_MAX + 64];

    return __real_rename(fz_path(from, b1, sizeof(b1)),
                         fz_path(to, b2, sizeof(b2)));
}

int
__wrap_unlink(const char *path)
{
    char buf[PATH_MAX + 64];

    return __real_unlink(fz_path(path, buf, sizeof(buf)));
}

static int
fz_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    if (f->level > 0)
        remove(path); /* libc's own unlink / rmdir: not wrapped. */
    return 0;
}

static void
fz_rm_root(void)
{
    /* ST_FUZZ_KEEP=1: leave the files for a look (one input at a time). */
    if (getenv("ST_FUZZ_KEEP") != NULL) {
        fprintf(stderr, "fuzz: files kept in %s\n", fz_root);
        return;
    }
    if (fz_root_len > 0)
        nftw(fz_root, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
fz_rm_root_at_exit(void)
{
    fz_rm_root();
    if (getenv("ST_FUZZ_KEEP") == NULL)
        rmdir(fz_root);
}

static void
fz_once(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

    if (fz_root_len > 0)
        return;
    snprintf(fz_root, sizeof(fz_root), "%s/steptrace-fuzz-XXXXXX", base);
    FUZZ_CHECK(mkdtemp(fz_root) != NULL);
    fz_root_len = strlen(fz_root);
    atexit(fz_rm_root_at_exit);
    /* As steptraced's main() does: a peer gone is a write error. */
    signal(SIGPIPE, SIG_IGN);
    st__log_set_quiet(1);
}

/* ---- The server ---- */

static void
fz_listen_cb(uv_stream_t *listener, int status)
{
    /* What server.c's server_connection_cb does. */
    if (status == 0)
        st__conn_accept(listener->data);
}

static uint64_t
fz_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
fz_addr(const struct fuzz_daemon *d, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n = strlen(d->sock_name + 1) + 1;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, d->sock_name, n); /* Abstract: leading NUL. */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

void
fuzz_daemon_start(struct fuzz_daemon *d, uint32_t formats,
                  uint64_t max_pending)
{
    static unsigned serial;
    struct sockaddr_un sa;
    socklen_t len;
    int fd;

    fz_once();
    memset(d, 0, sizeof(*d));
    st__settings_init(&d->opt.set);
    d->opt.set.formats = formats & ST_FORMAT_MASK_;
    if (max_pending != 0)
        d->opt.set.max_pending = max_pending;
    d->opt.socket_path = "fuzz.sock";
    d->opt.ready_fd = -1;
    d->opt.lock_fd = -1;
    FUZZ_CHECK(uv_loop_init(&d->loop) == 0);
    st__server_init(&d->srv, &d->loop, &d->opt);
    snprintf(d->sock_name + 1, sizeof(d->sock_name) - 1,
             "steptrace-fuzz-%d-%u", (int)getpid(), serial++);
    fz_addr(d, &sa, &len);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(bind(fd, (struct sockaddr *)&sa, len) == 0);
    FUZZ_CHECK(listen(fd, 16) == 0);
    FUZZ_CHECK(uv_pipe_open(&d->srv.listener, fd) == 0);
    FUZZ_CHECK(uv_listen((uv_stream_t *)&d->srv.listener, 16, fz_listen_cb) ==
               0);
}

void
fuzz_daemon_hup(struct fuzz_daemon *d)
{
    struct st_conn *c;
    struct st_sink *s;

    for (c = d->srv.conns; c != NULL; c = c->next)
        if (c->state == ST_CONN_OPEN)
            st__conn_reopen(c);
    for (s = d->srv.sinks.orphans; s != NULL; s = s->onext)
        st__sink_reopen(s);
}

/* ---- Clients ---- */

static void
fz_ring_map(struct fuzz_client *cl, uint64_t size)
{
    size_t len = ST_RING_HEADER + (size_t)size;
    void *p;

    FUZZ_CHECK(size >= ST_RING_MIN && size <= ST_RING_MAX &&
               (size & (size - 1)) == 0);
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, cl->fds[0], 0);
    FUZZ_CHECK(p != MAP_FAILED);
    cl->hdr = p;
    cl->ring_data = (char *)p + ST_RING_HEADER;
    cl->ring_size = (uint32_t)size;
    cl->wake_fd = cl->fds[1];
    FUZZ_CHECK(cl->hdr->magic == ST_RING_MAGIC && cl->hdr->size == size);
    close(cl->fds[0]);
    cl->nfds = 0;
}

/* Checks and consumes the whole reply frames cl->in holds: each must be
 * valid and decode to messages a collector sends. */
static void
fz_replies(struct fuzz_client *cl)
{
    struct st_wire_decoder dec;
    struct st_msg m;
    size_t off = 0;
    int r;

    st_wire_decoder_init(&dec);
    while (cl->in.len - off >= ST_WIRE_HEADER_SIZE) {
        int64_t flen =
            st_wire_frame_len((const unsigned char *)cl->in.data + off, 0);
        const char *p = cl->in.data + off + ST_WIRE_HEADER_SIZE;

        FUZZ_CHECK(flen > 0);
        if (cl->in.len - off - ST_WIRE_HEADER_SIZE < (size_t)flen)
            break;
        FUZZ_CHECK(st_wire_validate_messages(p, (size_t)flen) >= 1);
        st_wire_decoder_reset(&dec, p, (size_t)flen);
        while ((r = st_wire_decode_next(&dec, &m)) > 0) {
            FUZZ_CHECK(m.type == ST_MSG_HELLO || m.type == ST_MSG_ACK ||
                       m.type == ST_MSG_FILE || m.type == ST_MSG_STATS ||
                       m.type == ST_MSG_TEXT);
            /* The ring's descriptors come with the HELLO reply. */
            if (m.type == ST_MSG_HELLO && m.u.hello.ring_bytes > 0) {
                FUZZ_CHECK(cl->nfds == 2);
                fz_ring_map(cl, m.u.hello.ring_bytes);
            }
        }
        FUZZ_CHECK(r == 0);
        cl->replies++;
        off += ST_WIRE_HEADER_SIZE + (size_t)flen;
    }
    st_wire_decoder_close(&dec);
    st_buf_consume(&cl->in, off);
}

/* Reads what the collector sent.  @return bytes read. */
static size_t
fz_read(struct fuzz_client *cl)
{
    size_t total = 0;

    while (cl->fd >= 0 && !cl->closed) {
        char buf[65536];
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(4 * sizeof(int))];
        } ctl;
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr mh;
        struct cmsghdr *cm;
        ssize_t n;

        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.space;
        mh.msg_controllen = sizeof(ctl.space);
        n = recvmsg(cl->fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            cl->closed = 1;
            break;
        }
        for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                FUZZ_CHECK(cm->cmsg_len == CMSG_LEN(2 * sizeof(int)));
                FUZZ_CHECK(cl->nfds == 0 && cl->hdr == NULL);
                memcpy(cl->fds, CMSG_DATA(cm), sizeof(cl->fds));
                cl->nfds = 2;
            }
        FUZZ_CHECK(st_buf_append(&cl->in, buf, (size_t)n) == 0);
        fz_replies(cl);
        total += (size_t)n;
    }
    return total;
}

/* One turn of the loop, without blocking past `wait_ms` for it to have
 * something to do; then the replies.  @return 1 when anything moved. */
static int
fz_turn(struct fuzz_daemon *d, struct fuzz_client **cls, int ncls, int wait_ms)
{
    struct pollfd pfd = {uv_backend_fd(&d->loop), POLLIN, 0};
    int i, moved = 0;

    if (wait_ms > 0)
        moved = poll(&pfd, 1, wait_ms) > 0;
    uv_run(&d->loop, UV_RUN_NOWAIT);
    for (i = 0; i < ncls; i++)
        if (fz_read(cls[i]) > 0)
            moved = 1;
    return moved;
}

int
fuzz_daemon_connect(struct fuzz_daemon *d, struct fuzz_client *cl)
{
    size_t before = d->srv.stats.connections;
    struct sockaddr_un sa;
    socklen_t len;
    uint64_t t0;

    memset(cl, 0, sizeof(*cl));
    st_buf_init(&cl->in);
    cl->wake_fd = -1;
    fz_addr(d, &sa, &len);
    cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(cl->fd >= 0);
    if (connect(cl->fd, (struct sockaddr *)&sa, len) != 0) {
        close(cl->fd);
        cl->fd = -1;
        return -1;
    }
    for (t0 = fz_now_ms(); d->srv.stats.connections == before;) {
        fz_turn(d, NULL, 0, 1);
        FUZZ_CHECK(fz_now_ms() - t0 < FZ_STALL_MS);
    }
    return 0;
}

/* Bytes on the socket, `chunk` at a time, until sent or the collector
 * closed it. */
static void
fz_send_socket(struct fuzz_daemon *d, struct fuzz_client *cl, const uint8_t *p,
               size_t n, size_t chunk)
{
    uint64_t t0 = fz_now_ms();
    size_t off = 0;

    while (off < n && !cl->closed) {
        size_t k = n - off < chunk ? n - off : chunk;
        ssize_t w = send(cl->fd, p + off, k, MSG_NOSIGNAL);

        if (w > 0) {
            off += (size_t)w;
            t0 = fz_now_ms();
        }
        else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            break; /* EPIPE, ECONNRESET: the collector closed it. */
        }
        fz_turn(d, &cl, 1, w > 0 ? 0 : 1);
        FUZZ_CHECK(fz_now_ms() - t0 < FZ_STALL_MS);
    }
}

/* Bytes into the ring as the agent's outbox writes them: at `commit`,
 * wrapping, never past `read + size`; then the commit published and the
 * collector woken. */
static void
fz_send_ring(struct fuzz_daemon *d, struct fuzz_client *cl, const uint8_t *p,
             size_t n, size_t chunk)
{
    uint64_t size = cl->ring_size, t0 = fz_now_ms();
    uint64_t commit = __atomic_load_n(&cl->hdr->commit, __ATOMIC_RELAXED);
    size_t off = 0;

    while (off < n && !cl->closed && d->srv.conns != NULL) {
        uint64_t rd = __atomic_load_n(&cl->hdr->read, __ATOMIC_ACQUIRE);
        uint64_t room = size - (commit - rd), k = n - off, pos, first;
        uint64_t one = 1;

        if (k > chunk)
            k = chunk;
        if (k > room)
            k = room;
        if (k > 0) {
            pos = commit & (size - 1);
            first = k < size - pos ? k : size - pos;
            memcpy(cl->ring_data + pos, p + off, (size_t)first);
            memcpy(cl->ring_data, p + off + first, (size_t)(k - first));
            commit += k;
            off += (size_t)k;
            __atomic_store_n(&cl->hdr->commit, commit, __ATOMIC_RELEASE);
            t0 = fz_now_ms();
        }
        if (write(cl->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            break;
        fz_turn(d, &cl, 1, k > 0 ? 0 : 1);
        FUZZ_CHECK(fz_now_ms() - t0 < FZ_STALL_MS);
    }
}

void
fuzz_daemon_send(struct fuzz_daemon *d, struct fuzz_client *cl,
                 const uint8_t *p, size_t n, size_t chunk)
{
    size_t first = n < chunk ? n : chunk;
    uint64_t t0 = fz_now_ms();
    int whole = 0;

    if (chunk == 0)
        chunk = 1;
    if (cl->hdr != NULL) {
        fz_send_ring(d, cl, p, n, chunk);
        return;
    }
    /* The first frame alone: a HELLO's ring comes with its reply.  (Only
     * at the start of the stream: later, the bytes at p may be anywhere
     * in a frame.) */
    if (!cl->started && n >= ST_WIRE_HEADER_SIZE) {
        int64_t flen = st_wire_frame_len(p, 0);

        if (flen > 0 && (size_t)flen <= n - ST_WIRE_HEADER_SIZE) {
            first = ST_WIRE_HEADER_SIZE + (size_t)flen;
            whole = 1;
        }
    }
    cl->started = 1;
    fz_send_socket(d, cl, p, first, chunk);
    /* A whole first frame is answered (HELLO) or refused (the connection
     * closes); either comes at once. */
    while (whole && cl->replies == 0 && !cl->closed) {
        fz_turn(d, &cl, 1, 1);
        FUZZ_CHECK(fz_now_ms() - t0 < FZ_STALL_MS);
    }
    if (cl->hdr != NULL)
        fz_send_ring(d, cl, p + first, n - first, chunk);
    else
        fz_send_socket(d, cl, p + first, n - first, chunk);
}

void
fuzz_daemon_end(struct fuzz_daemon *d, struct fuzz_client *cl,
                uint32_t end_kind, uint32_t end_signal)
{
    uint64_t t0 = fz_now_ms();

    if (cl->hdr != NULL) {
        __atomic_store_n(&cl->hdr->end_signal, end_signal, __ATOMIC_RELAXED);
        __atomic_store_n(&cl->hdr->end_kind, end_kind, __ATOMIC_RELEASE);
        if (end_kind == ST_RING_END_EXEC)
            snprintf(cl->hdr->end_detail, sizeof(cl->hdr->end_detail), "%s",
                     "/usr/bin/true\n\x01");
    }
    /* The collector applies what it holds, sends the ACKs owed, closes. */
    shutdown(cl->fd, SHUT_WR);
    while (!cl->closed) {
        fz_turn(d, &cl, 1, 1);
        FUZZ_CHECK(fz_now_ms() - t0 < FZ_STALL_MS);
    }
    if (getenv("ST_FUZZ_KEEP") != NULL)
        fprintf(stderr, "fuzz: a client ended after %llu replies\n",
                (unsigned long long)cl->replies);
    close(cl->fd);
    cl->fd = -1;
    /* Descriptors without a HELLO that announced a ring. */
    FUZZ_CHECK(cl->nfds == 0);
    if (cl->hdr != NULL)
        munmap(cl->hdr, ST_RING_HEADER + (size_t)cl->ring_size);
    cl->hdr = NULL;
    if (cl->wake_fd >= 0)
        close(cl->wake_fd);
    cl->wake_fd = -1;
    st_buf_close(&cl->in);
}

void
fuzz_daemon_finish(struct fuzz_daemon *d)
{
    st__server_stop(&d->srv, "fuzz input done");
    uv_run(&d->loop, UV_RUN_DEFAULT);
    FUZZ_CHECK(uv_loop_close(&d->loop) == 0);
    st__server_free(&d->srv);
    st__settings_close(&d->opt.set);
    fz_rm_root();
}
