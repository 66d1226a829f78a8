/*
 * The service around the connections: the listening socket, readiness
 * notification, signals, the flush and idle timers, and the orderly stop
 * that leaves uv_loop_close() with nothing to complain about.
 */
#include "server.h"

#include "conn.h"
#include "control.h"
#include "forward.h"
#include "input.h"
#include "log.h"
#include "pressure.h"
#include "resume.h"
#include "settings.h"
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steptrace/error.h"

/* How long SIGTERM waits for connections to drain before closing them. */
#define ST_STOP_DRAIN_MS 10000
/* Buffered records reach the file at most this long after being rendered
 * (so that the log of a program that hangs shows where it is). */
#define ST_SINK_FLUSH_MS 10
/* How often the collector measures its resident size (pressure.c). */
#define ST_MEASURE_MS 100

static void server_close_handle(uv_handle_t *h);

static void
server_flush_cb(uv_timer_t *t)
{
    struct st_server *srv = t->data;
    struct st_conn *c;
    struct st_sink *s;

    for (c = srv->conns; c != NULL; c = c->next)
        if (c->state == ST_CONN_OPEN)
            st__conn_flush(c);
    for (s = srv->sinks.orphans; s != NULL; s = s->onext)
        st__sink_flush(s);
}

/* ---- The sinks' hooks (sink.h): the server's side of the file layer ---- */

/* Queued sink bytes count in the bound on pending memory. */
static void
server_sink_pending(struct st_sink_env *env, size_t n, int added)
{
    struct st_server *srv = env->data;

    if (added)
        st__pressure_add(&srv->pressure, n, 1);
    else
        st__pressure_sub(&srv->pressure, n, 1);
}

/* Makes sure queued sink bytes are written within ST_SINK_FLUSH_MS. */
static void
server_sink_arm_flush(struct st_sink_env *env)
{
    struct st_server *srv = env->data;

    if (srv->stopping || uv_is_active((uv_handle_t *)&srv->flush_timer))
        return;
    uv_timer_start(&srv->flush_timer, server_flush_cb, ST_SINK_FLUSH_MS, 0);
}

static void
server_sink_publish(struct st_sink *s, const char *text, size_t n)
{
    st__control_publish(s->env->data, s->pid, s->path, text, n);
}

/* A job gave memory back: blocked connections may go on. */
static void
server_sink_job_done(struct st_sink_env *env)
{
    st__resume_schedule(env->data);
}

static const struct st_sink_hooks server_sink_hooks = {
    .pending = server_sink_pending,
    .arm_flush = server_sink_arm_flush,
    .publish = server_sink_publish,
    .job_done = server_sink_job_done,
};

/* The process's resident size in bytes (0 if unknown). */
static size_t
server_rss(void)
{
    unsigned long size, resident, shared;
    FILE *f = fopen("/proc/self/statm", "re");
    int n;

    if (f == NULL)
        return 0;
    n = fscanf(f, "%lu %lu %lu", &size, &resident, &shared);
    fclose(f);
    /* Shared pages are the agents' rings (and mapped files): memory the
     * agents hold too, bounded by the ring sizes, not by what is
     * pending here. */
    if (n != 3 || shared > resident)
        return 0;
    return (size_t)(resident - shared) * (size_t)sysconf(_SC_PAGESIZE);
}

static void
server_measure_cb(uv_timer_t *t)
{
    struct st_server *srv = t->data;

    size_t rss = server_rss(), fwd = st__forward_queued_bytes(srv->fwd);

    /* Forward queues have their own bound and never push back. */
    st__pressure_measure(&srv->pressure, rss > fwd ? rss - fwd : 0);
}

static void
server_idle_cb(uv_timer_t *t)
{
    struct st_server *srv = t->data;

    st__server_stop(srv, "no client connected for the --idle-exit time");
}

static void
server_idle_arm(struct st_server *srv)
{
    if (srv->opt->idle_exit_ms == 0 || srv->stopping || srv->nclients > 0)
        return;
    uv_timer_start(&srv->idle_timer, server_idle_cb, srv->opt->idle_exit_ms,
                   0);
}

void
st__server_client_gone(struct st_server *srv)
{
    srv->nclients--;
    /* --idle-exit counts from the moment the last client is gone. */
    server_idle_arm(srv);
}

/* Stopping and nothing left to serve: close the loop's own handles, so
 * that uv_run returns once the last write job is done. */
static void
server_close_rest(struct st_server *srv)
{
    if (srv->handles_closed || srv->conns != NULL)
        return;
    srv->handles_closed = 1;
    server_close_handle((uv_handle_t *)&srv->resume_idle);
    server_close_handle((uv_handle_t *)&srv->measure_timer);
    server_close_handle((uv_handle_t *)&srv->tail_check);
    server_close_handle((uv_handle_t *)&srv->stop_timer);
    server_close_handle((uv_handle_t *)&srv->flush_timer);
    server_close_handle((uv_handle_t *)&srv->ring_timer);
    server_close_handle((uv_handle_t *)&srv->ring_idle);
    /* Every record is in: the forward queues drain, then close. */
    st__forward_stop(srv->fwd);
}

void
st__server_conn_closed(struct st_server *srv, struct st_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->counted)
        st__server_client_gone(srv);
    srv->pressure.nconns--;
    /* Idle: the chunks kept for busy sinks are given back. */
    if (srv->pressure.nconns == 0)
        st__sink_pool_free(&srv->sinks);
    if (srv->stopping)
        server_close_rest(srv);
}

int
st__server_uid_allowed(const struct st_server *srv, uid_t uid)
{
    const struct st_settings *set = &srv->opt->set;
    size_t i;

    if (uid == geteuid())
        return 1;
    for (i = 0; i < set->nallow; i++)
        if (set->allow_uids[i] == (uint32_t)uid)
            return 1;
    return 0;
}

static void
server_connection_cb(uv_stream_t *listener, int status)
{
    struct st_server *srv = listener->data;

    if (status < 0) {
        st__log("accept: %s", uv_strerror(status));
        return;
    }
    if (!srv->stopping)
        st__conn_accept(srv);
}

static void
server_signal_cb(uv_signal_t *h, int signum)
{
    struct st_server *srv = h->data;
    struct st_conn *c;

    if (signum == SIGHUP) {
        struct st_sink *sk;
        int r = st__log_open(srv->opt->set.log_file);

        if (r < 0)
            st__log("SIGHUP: cannot reopen %s: %s", srv->opt->set.log_file,
                    strerror(-r));
        st__log_info("SIGHUP: reopening log files");
        for (c = srv->conns; c != NULL; c = c->next)
            if (c->state == ST_CONN_OPEN)
                st__conn_reopen(c);
        for (sk = srv->sinks.orphans; sk != NULL; sk = sk->onext)
            st__sink_reopen(sk);
        return;
    }
    st__server_stop(srv, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* Removes the pid file if it still names us. */
static void
server_remove_pid_file(const char *path)
{
    char buf[32];
    ssize_t n;
    int fd;

    if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    if (atol(buf) == (long)getpid())
        unlink(path);
}

/* Unlinks the socket if it is still the one we bound (another collector
 * may have replaced a socket someone deleted under us), then the pid
 * file and the lock file (while still holding the lock: main.c's locking
 * checks that the file it locked is still the one at the path). */
static void
server_remove_socket(struct st_server *srv)
{
    const char *path = srv->opt->socket_path;
    struct stat st;
    char dir[4096];
    const char *slash;

    if (srv->sock_ino != 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
        unlink(path);
    server_remove_pid_file(srv->opt->pid_file);
    if (srv->opt->lock_fd >= 0)
        unlink(srv->opt->lock_path);
    if (!srv->opt->private_dir)
        return;
    slash = strrchr(path, '/');
    if (slash == NULL || slash == path ||
        (size_t)(slash - path) >= sizeof(dir))
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    /* Fails (and that is fine) if anything else lives there. */
    (void)rmdir(dir);
}

static void
server_close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
server_stop_timer_cb(uv_timer_t *t)
{
    struct st_server *srv = t->data;
    struct st_conn *c, *next;
    size_t n = 0;

    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == ST_CONN_OPEN)
            n++;
        st__conn_close(c, 1);
    }
    if (n > 0)
        st__log("%zu connections did not drain within %d s of the stop; "
                "closed",
                n, ST_STOP_DRAIN_MS / 1000);
}

void
st__server_stop(struct st_server *srv, const char *why)
{
    struct st_conn *c, *next;

    if (srv->stopping)
        return;
    srv->stopping = 1;
    st__log_info("%s: stopping", why);
    server_close_handle((uv_handle_t *)&srv->listener);
    server_remove_socket(srv);
    server_close_handle((uv_handle_t *)&srv->sig_term);
    server_close_handle((uv_handle_t *)&srv->sig_int);
    server_close_handle((uv_handle_t *)&srv->sig_hup);
    server_close_handle((uv_handle_t *)&srv->idle_timer);
    /* Every connection processes what its peer had sent before now, has
     * it written, answers its FLUSHes and closes; sinks whose connection
     * is gone write their queues as orphans.  The loop ends when the
     * last write job is done. */
    uv_timer_start(&srv->stop_timer, server_stop_timer_cb, ST_STOP_DRAIN_MS,
                   0);
    uv_unref((uv_handle_t *)&srv->stop_timer);
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        st__input_drain(c);
    }
    server_close_rest(srv);
}

/* Tells the spawner we listen: "ready\n" on --ready-fd, then closes it. */
static void
server_announce(struct st_server *srv)
{
    static const char msg[] = "ready\n";
    int fd = srv->opt->ready_fd;
    ssize_t w;

    if (fd < 0)
        return;
    do {
        w = write(fd, msg, sizeof(msg) - 1);
    } while (w < 0 && errno == EINTR);
    if (w != (ssize_t)(sizeof(msg) - 1))
        st__log("cannot write to --ready-fd %d: %s", fd,
                w < 0 ? strerror(errno) : "short write");
    close(fd);
}

/* Writes our pid to --pid-file / pid_file.  @return 0 or -errno. */
static int
server_write_pid_file(const char *path)
{
    char buf[32];
    int fd, n, r = 0;

    if (path == NULL)
        return 0;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (write(fd, buf, (size_t)n) != n)
        r = -EIO;
    if (close(fd) != 0 && r == 0)
        r = -errno;
    return r;
}

static void
server_scratch_free(struct st_scratch *sc)
{
    free(sc->gviews);
    free(sc->lviews);
    free(sc->locs);
    free(sc->dead);
    st_buf_close(&sc->esc);
    st_buf_close(&sc->reply);
    memset(sc, 0, sizeof(*sc));
}

static int
opt_allows_others(const struct st_options *opt)
{
    return opt->set.nallow > 0;
}

/* Binds and listens.  @return 0 or a libuv error (logged). */
static int
server_listen(struct st_server *srv)
{
    const char *path = srv->opt->socket_path;
    struct stat st;
    int r;

    r = uv_pipe_bind(&srv->listener, path);
    if (r != 0) {
        st__log("cannot bind %s: %s", path, uv_strerror(r));
        return r;
    }
    if (stat(path, &st) == 0) {
        srv->sock_dev = st.st_dev;
        srv->sock_ino = st.st_ino;
    }
    /* The directory is private already; this also covers a socket
     * placed in a shared one with --socket.  With allow_uids the socket
     * is open to every local user and SO_PEERCRED decides (conn.c); the
     * directory must then let those users reach it. */
    (void)chmod(path, opt_allows_others(srv->opt) ? 0666 : 0600);
    r = uv_listen((uv_stream_t *)&srv->listener, SOMAXCONN,
                  server_connection_cb);
    if (r != 0) {
        st__log("cannot listen on %s: %s", path, uv_strerror(r));
        server_remove_socket(srv);
        return r;
    }
    return 0;
}

static void
server_init_handles(struct st_server *srv)
{
    uv_pipe_init(srv->loop, &srv->listener, 0);
    uv_signal_init(srv->loop, &srv->sig_term);
    uv_signal_init(srv->loop, &srv->sig_int);
    uv_signal_init(srv->loop, &srv->sig_hup);
    uv_timer_init(srv->loop, &srv->idle_timer);
    uv_timer_init(srv->loop, &srv->flush_timer);
    uv_timer_init(srv->loop, &srv->ring_timer);
    uv_idle_init(srv->loop, &srv->ring_idle);
    uv_timer_init(srv->loop, &srv->stop_timer);
    uv_idle_init(srv->loop, &srv->resume_idle);
    uv_timer_init(srv->loop, &srv->measure_timer);
    uv_check_init(srv->loop, &srv->tail_check);
    srv->listener.data = srv;
    srv->sig_term.data = srv;
    srv->sig_int.data = srv;
    srv->sig_hup.data = srv;
    srv->idle_timer.data = srv;
    srv->flush_timer.data = srv;
    srv->ring_timer.data = srv;
    srv->ring_idle.data = srv;
    srv->stop_timer.data = srv;
    srv->resume_idle.data = srv;
    srv->measure_timer.data = srv;
    srv->tail_check.data = srv;
    /* These run only while connections need them; they never keep the
     * loop alive on their own. */
    uv_unref((uv_handle_t *)&srv->resume_idle);
    uv_unref((uv_handle_t *)&srv->measure_timer);
    uv_unref((uv_handle_t *)&srv->tail_check);
    uv_unref((uv_handle_t *)&srv->ring_timer);
    uv_unref((uv_handle_t *)&srv->ring_idle);
}

void
st__server_init(struct st_server *srv, uv_loop_t *loop,
                const struct st_options *opt)
{
    memset(srv, 0, sizeof(*srv));
    srv->opt = opt;
    st__pressure_init(&srv->pressure, (size_t)opt->set.max_pending,
                      &srv->stats.pending_peak);
    srv->loop = loop;
    srv->start_ms = uv_now(loop);
    st__sink_env_init(&srv->sinks, loop, &srv->stats, &server_sink_hooks, srv);
    srv->sinks.max_log_bytes = opt->set.max_log_bytes;
    srv->sinks.max_log_files = opt->set.max_log_files;
    server_init_handles(srv);
    if (st__forward_new(loop, &opt->set.fwd, &srv->fwd) != 0)
        st__log("out of memory for the forward destinations");
}

void
st__server_free(struct st_server *srv)
{
    st__sink_pool_free(&srv->sinks);
    server_scratch_free(&srv->scratch);
    st__forward_free(srv->fwd);
    srv->fwd = NULL;
}

int
st__server_run(const struct st_options *opt)
{
    struct st_server srv;
    uv_loop_t loop;
    int status = 0;
    int r;

    r = uv_loop_init(&loop);
    if (r != 0) {
        st__log("cannot start the event loop: %s", uv_strerror(r));
        return 1;
    }
    st__server_init(&srv, &loop, opt);
    if (server_listen(&srv) != 0) {
        /* Nothing was bound: stopping only closes the handles. */
        srv.sock_ino = 0;
        status = 1;
        st__server_stop(&srv, "startup failed");
    }
    else {
        r = server_write_pid_file(opt->pid_file);
        if (r < 0)
            st__log("cannot write the pid file %s: %s", opt->pid_file,
                    strerror(-r));
        uv_signal_start(&srv.sig_term, server_signal_cb, SIGTERM);
        uv_signal_start(&srv.sig_int, server_signal_cb, SIGINT);
        uv_signal_start(&srv.sig_hup, server_signal_cb, SIGHUP);
        server_idle_arm(&srv);
        srv.pressure.rss_start = server_rss();
        uv_timer_start(&srv.measure_timer, server_measure_cb, ST_MEASURE_MS,
                       ST_MEASURE_MS);
        st__log_info("listening on %s (pid %d, version %s)", opt->socket_path,
                     (int)getpid(), ST_VERSION);
        if (srv.fwd != NULL)
            st__forward_start(srv.fwd);
        server_announce(&srv);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    r = uv_loop_close(&loop);
    if (r != 0) {
        st__log("event loop not clean at exit: %s", uv_strerror(r));
        status = 1;
    }
    st__server_free(&srv);
    return status;
}
