/*
 * steptraced: command line, config file, socket path resolution and the
 * checks that come before binding: the lock that makes one collector per
 * socket path, a live collector, a stale socket, a path that is not a
 * socket.
 *
 * Exit status: 0 after a clean stop, 1 when the service cannot start, 2
 * for a usage error (always one line on stderr naming the problem and the
 * fix).
 */
#include "log.h"
#include "server.h"
#include "settings.h"
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "steptrace/config.h"

#define EXIT_USAGE 2
#define MAIN_SUN_PATH sizeof(((struct sockaddr_un *)0)->sun_path)

enum {
    OPT_SOCKET = 256,
    OPT_READY_FD,
    OPT_IDLE_EXIT,
    OPT_PRIVATE,
    OPT_DAEMON,
    OPT_CONFIG,
    OPT_PID_FILE,
    OPT_FORWARD
};

static const struct option main_options[] = {
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"ready-fd", required_argument, NULL, OPT_READY_FD},
    {"idle-exit", required_argument, NULL, OPT_IDLE_EXIT},
    {"private", no_argument, NULL, OPT_PRIVATE},
    {"daemon", no_argument, NULL, OPT_DAEMON},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"forward", required_argument, NULL, OPT_FORWARD},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void
main_usage(void)
{
    printf(
        "Usage: steptraced [--socket PATH] [--config FILE] [--daemon]\n"
        "                  [--pid-file FILE] [--ready-fd N] [--idle-exit S]\n"
        "                  [--forward URL]... [--private] [--verbose]\n"
        "                  [--help] [--version]\n"
        "\n"
        "Collects steptrace records from traced Python processes over a\n"
        "Unix socket and writes their .tracer logs.\n"
        "\n"
        "  --socket PATH   socket to listen on (default: the config's\n"
        "                  socket, else $STEPTRACE_SOCKET, else\n"
        "                  $XDG_RUNTIME_DIR/steptrace/steptraced.sock,\n"
        "                  else /tmp/steptrace-<uid>/steptraced.sock)\n"
        "  --config FILE   YAML settings: socket, pid_file, log_file,\n"
        "                  max_pending_bytes, max_log_bytes,\n"
        "                  max_log_files, allow_uids, forward, facility,\n"
        "                  sd_id, cee, max_message_bytes,\n"
        "                  forward_queue_bytes, forward_drain_ms\n"
        "  --daemon        detach: return once listening, with the service\n"
        "                  in a new session (stdin/stdout on /dev/null)\n"
        "  --pid-file FILE write the service's pid to FILE (removed at exit)\n"
        "  --ready-fd N    write \"ready\\n\" to file descriptor N once\n"
        "                  listening, then close it\n"
        "  --idle-exit S   exit after S seconds without any client\n"
        "  --forward URL   also send every record to a syslog relay:\n"
        "                  syslog+tcp://HOST:PORT or syslog+unix:///PATH\n"
        "                  (repeatable; replaces the config's forward)\n"
        "  --private       collector private to one process tree: remove\n"
        "                  the socket's directory at exit, and log only\n"
        "                  errors that the clients are not told about\n"
        "  -v, --verbose   log every connection and disconnection\n"
        "  -h, --help      show this help\n"
        "  -V, --version   show the version\n"
        "\n"
        "SIGTERM/SIGINT: stop accepting, write what was received, remove\n"
        "the socket, exit 0.  SIGHUP: reopen log files.  Status and the\n"
        "live stream: steptrace daemon status, steptrace tail.\n");
}

static int
main_usage_error(const char *msg, const char *arg, const char *fix)
{
    fprintf(stderr, "steptraced: %s%s%s%s; %s\n", msg, arg ? " '" : "",
            arg ? arg : "", arg ? "'" : "", fix);
    return EXIT_USAGE;
}

static int
main_parse_fd(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
        return main_usage_error("--ready-fd needs a file descriptor number, "
                                "got",
                                s, "pass the write end of a pipe");
    if (fcntl((int)v, F_GETFD) < 0)
        return main_usage_error("--ready-fd is not an open file descriptor:",
                                s, "pass the write end of a pipe");
    *out = (int)v;
    return 0;
}

static int
main_parse_idle(const char *s, uint64_t *out_ms)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    /* Zero would exit before the first client could connect. */
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 ||
        v > 1e9)
        return main_usage_error("--idle-exit needs a positive number of "
                                "seconds, got",
                                s, "e.g. --idle-exit 30");
    *out_ms = (uint64_t)(v * 1000.0 + 0.5);
    if (*out_ms == 0)
        *out_ms = 1;
    return 0;
}

/* --forward URL: checked now, kept (argv's) for after the config. */
static int
main_forward_arg(struct st_options *opt, const char *url)
{
    char why[512];
    struct st_fwd_url u;
    const char **urls;
    int r;

    r = st__fwdconf_parse_url(url, &u, why, sizeof(why));
    st__fwdconf_url_close(&u);
    if (r != 0) {
        fprintf(stderr, "steptraced: --forward %s\n", why);
        return EXIT_USAGE;
    }
    urls = realloc(opt->forward, (opt->nforward + 1) * sizeof(*urls));
    if (urls == NULL)
        return 1;
    urls[opt->nforward++] = url;
    opt->forward = urls;
    return 0;
}

/* @return -1 to go on, else the exit status. */
static int
main_parse(int argc, char **argv, struct st_options *opt)
{
    int ch, r;

    opterr = 0; /* Our own one-line messages. */
    while ((ch = getopt_long(argc, argv, ":hVv", main_options, NULL)) != -1) {
        switch (ch) {
        case OPT_SOCKET:
            if (optarg[0] == '\0')
                return main_usage_error("--socket is empty", NULL,
                                        "give the socket's path");
            opt->socket_path = optarg;
            break;
        case OPT_READY_FD:
            if ((r = main_parse_fd(optarg, &opt->ready_fd)) != 0)
                return r;
            break;
        case OPT_IDLE_EXIT:
            if ((r = main_parse_idle(optarg, &opt->idle_exit_ms)) != 0)
                return r;
            break;
        case OPT_PRIVATE: opt->private_dir = 1; break;
        case OPT_DAEMON: opt->daemon = 1; break;
        case OPT_CONFIG: opt->config_path = optarg; break;
        case OPT_FORWARD:
            if ((r = main_forward_arg(opt, optarg)) != 0)
                return r;
            break;
        case OPT_PID_FILE:
            if (optarg[0] == '\0')
                return main_usage_error("--pid-file is empty", NULL,
                                        "give the pid file's path");
            opt->pid_file = optarg;
            break;
        case 'v': opt->verbose = 1; break;
        case 'h': main_usage(); return 0;
        case 'V': printf("steptraced %s\n", ST_VERSION); return 0;
        case ':':
            return main_usage_error("option needs a value:", argv[optind - 1],
                                    "see 'steptraced --help'");
        default:
            return main_usage_error("unknown option", argv[optind - 1],
                                    "see 'steptraced --help'");
        }
    }
    if (optind < argc)
        return main_usage_error("unexpected argument", argv[optind],
                                "give the socket with --socket PATH");
    if (opt->daemon && opt->ready_fd >= 0)
        return main_usage_error("--daemon reports readiness itself and",
                                "cannot be combined with --ready-fd",
                                "drop --ready-fd");
    return -1;
}

/* mkdir -p of the socket's directory, missing parts with mode 0700. */
static int
main_mkdirs(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t len, i;

    if (slash == NULL || slash == path)
        return 0;
    len = (size_t)(slash - path);
    if (len >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, path, len);
    dir[len] = '\0';
    for (i = 1; i <= len; i++) {
        if (dir[i] != '/' && dir[i] != '\0')
            continue;
        dir[i] = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return -errno;
        if (i < len)
            dir[i] = '/';
    }
    return 0;
}

/* /tmp is shared: the default directory there must be ours alone. */
static int
main_check_tmp_dir(const char *dir)
{
    struct stat st;

    if (lstat(dir, &st) != 0) {
        fprintf(stderr, "steptraced: cannot use %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 077) != 0) {
        fprintf(stderr,
                "steptraced: %s is not a private directory of uid "
                "%u; remove it or use --socket\n",
                dir, (unsigned)getuid());
        return 1;
    }
    return 0;
}

/* Picks the socket path.  @return -1 to go on, else the exit status. */
static int
main_socket_path(struct st_options *opt, char *buf, size_t buflen)
{
    const char *env = getenv("STEPTRACE_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int tmp_default = 0, r;

    if (opt->socket_path == NULL && opt->set.socket != NULL)
        opt->socket_path = opt->set.socket;
    if (opt->socket_path == NULL && env != NULL && env[0] != '\0')
        opt->socket_path = env;
    if (opt->socket_path == NULL && xdg != NULL && xdg[0] == '/') {
        snprintf(buf, buflen, "%s/steptrace/steptraced.sock", xdg);
        opt->socket_path = buf;
    }
    if (opt->socket_path == NULL) {
        snprintf(buf, buflen, "/tmp/steptrace-%u/steptraced.sock",
                 (unsigned)getuid());
        opt->socket_path = buf;
        tmp_default = 1;
    }
    /* libuv would silently cut a longer path. */
    if (strlen(opt->socket_path) >= MAIN_SUN_PATH) {
        fprintf(stderr,
                "steptraced: socket path is %zu bytes long, the "
                "limit is %zu; choose a shorter --socket path\n",
                strlen(opt->socket_path), MAIN_SUN_PATH - 1);
        return EXIT_USAGE;
    }
    r = main_mkdirs(opt->socket_path);
    if (r < 0) {
        fprintf(stderr,
                "steptraced: cannot create the directory of %s: "
                "%s\n",
                opt->socket_path, strerror(-r));
        return 1;
    }
    if (tmp_default) {
        char dir[64];

        snprintf(dir, sizeof(dir), "/tmp/steptrace-%u", (unsigned)getuid());
        return main_check_tmp_dir(dir) == 0 ? -1 : 1;
    }
    return -1;
}

/*
 * One collector per socket path: an exclusive flock(2) on "<socket>.lock",
 * held for the life of the process (and across --daemon's fork, which
 * shares the open file).  Two collectors started at the same moment on a
 * stale socket cannot both reclaim it.  The file is removed at exit while
 * still locked, so a locker checks that the file it locked is still the
 * one at the path, and tries again if not.
 * @return -1 to go on, else the exit status.
 */
static int
main_lock(struct st_options *opt)
{
    struct stat a, b;
    int fd, tries;

    if ((size_t)snprintf(opt->lock_path, sizeof(opt->lock_path), "%s.lock",
                         opt->socket_path) >= sizeof(opt->lock_path))
        return EXIT_USAGE;
    for (tries = 0; tries < 100; tries++) {
        fd = open(opt->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            fprintf(stderr, "steptraced: cannot open %s: %s\n", opt->lock_path,
                    strerror(errno));
            return 1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;

            close(fd);
            if (err == EWOULDBLOCK) {
                fprintf(stderr,
                        "steptraced: another steptraced is already "
                        "running on %s\n",
                        opt->socket_path);
                return 1;
            }
            fprintf(stderr, "steptraced: cannot lock %s: %s\n", opt->lock_path,
                    strerror(err));
            return 1;
        }
        if (fstat(fd, &a) == 0 && stat(opt->lock_path, &b) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            opt->lock_fd = fd;
            return -1;
        }
        close(fd);
    }
    fprintf(stderr, "steptraced: cannot lock %s: it keeps changing\n",
            opt->lock_path);
    return 1;
}

/* Looks at what is at the path already.  @return -1 to go on, else the
 * exit status. */
static int
main_check_existing(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, r, err;

    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return -1;
        fprintf(stderr, "steptraced: cannot use %s: %s\n", path,
                strerror(errno));
        return 1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        fprintf(stderr,
                "steptraced: %s exists and is not a socket; remove "
                "it or choose another --socket path\n",
                path);
        return 1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "steptraced: socket: %s\n", strerror(errno));
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    do {
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } while (r != 0 && errno == EINTR);
    err = errno;
    close(fd);
    /* EAGAIN: the listener's backlog is full, so it is alive. */
    if (r == 0 || err == EAGAIN) {
        fprintf(stderr,
                "steptraced: another steptraced is already "
                "listening on %s\n",
                path);
        return 1;
    }
    if (err != ECONNREFUSED) {
        fprintf(stderr, "steptraced: cannot check %s: %s\n", path,
                strerror(err));
        return 1;
    }
    /* Nobody listens: a stale socket left by a collector that died. */
    if (unlink(path) != 0 && errno != ENOENT) {
        fprintf(stderr,
                "steptraced: cannot remove the stale socket %s: "
                "%s\n",
                path, strerror(errno));
        return 1;
    }
    st__log_info("removed stale socket %s", path);
    return -1;
}

/*
 * --daemon: forks; the parent waits until the child listens (or fails) and
 * exits 0 (or with the child's status), so that `steptraced --daemon`
 * returns once the service is ready and the service is nobody's child.
 * The child starts a new session, moves to / (for an absolute socket
 * path) and gets /dev/null as stdin
 * and stdout; stderr stays for its log.
 * @return -1 in the child, else the parent's exit status.
 */
static int
main_daemonize(struct st_options *opt)
{
    int p[2], fd, status;
    pid_t pid;
    char buf[8];
    ssize_t n;

    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "steptraced: pipe: %s\n", strerror(errno));
        return 1;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "steptraced: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid > 0) {
        close(p[1]);
        do
            n = read(p[0], buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        close(p[0]);
        if (n > 0)
            return 0;
        /* The child ended before it was ready: it said why on stderr. */
        if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
            WEXITSTATUS(status) != 0)
            return WEXITSTATUS(status);
        return 1;
    }
    close(p[0]);
    opt->ready_fd = p[1];
    (void)setsid();
    /* Leave the directory (so it can be unmounted), unless the socket path
     * is relative to it. */
    if (opt->socket_path[0] == '/' && chdir("/") != 0)
        return 1;
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (fd > 2)
            close(fd);
    }
    return -1;
}

/* Many clients and their log files: use every descriptor we may. */
static void
main_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* --config: read before anything else uses a setting. */
static int
main_settings(struct st_options *opt)
{
    char err[ST_CONFIG_ERRLEN];

    if (opt->config_path != NULL &&
        st__settings_load(&opt->set, opt->config_path, err, sizeof(err)) !=
            0) {
        fprintf(stderr, "steptraced: %s\n", err);
        return EXIT_USAGE;
    }
    if (opt->pid_file == NULL)
        opt->pid_file = opt->set.pid_file;
    /* --forward replaces the config's list (command line over config). */
    if (opt->nforward > 0 &&
        st__fwdconf_set_urls(&opt->set.fwd, (char *const *)opt->forward,
                             opt->nforward) != 0)
        return 1;
    if (st__fwdconf_check(&opt->set.fwd, err, sizeof(err)) != 0) {
        fprintf(stderr, "steptraced: %s%s%s\n",
                opt->config_path != NULL ? opt->config_path : "",
                opt->config_path != NULL ? ": " : "", err);
        return EXIT_USAGE;
    }
    return -1;
}

/* The collector's own log, when the config names a file: opened after the
 * start-up checks, whose messages belong on the terminal. */
static int
main_log_file(struct st_options *opt)
{
    int r = st__log_open(opt->set.log_file);

    if (r < 0) {
        fprintf(stderr, "steptraced: cannot open the log file %s: %s\n",
                opt->set.log_file, strerror(-r));
        return 1;
    }
    return -1;
}

int
main(int argc, char **argv)
{
    struct st_options opt;
    char path[PATH_MAX];
    int r;

    memset(&opt, 0, sizeof(opt));
    opt.ready_fd = -1;
    opt.lock_fd = -1;
    st__settings_init(&opt.set);
    r = main_parse(argc, argv, &opt);
    if (r < 0)
        r = main_settings(&opt);
    if (r >= 0)
        goto done;
    st__log_set_quiet(opt.private_dir && !opt.verbose);
    r = main_socket_path(&opt, path, sizeof(path));
    if (r < 0)
        r = main_lock(&opt);
    if (r < 0)
        r = main_check_existing(opt.socket_path);
    if (r < 0)
        r = main_log_file(&opt);
    if (r < 0 && opt.daemon)
        r = main_daemonize(&opt);
    if (r >= 0)
        goto done;
    /* A client that vanishes must not kill the collector. */
    signal(SIGPIPE, SIG_IGN);
    main_raise_nofile();
    /* Buffers of 128 KiB and more are mapped on their own and given back
     * to the system when freed, so memory used at a peak of pressure
     * does not stay in the process (glibc would otherwise raise this
     * threshold as large buffers are freed). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    st__writer_init_faults();
    r = st__server_run(&opt);
done:
    if (opt.lock_fd >= 0)
        close(opt.lock_fd);
    free(opt.forward);
    st__settings_close(&opt.set);
    return r;
}
