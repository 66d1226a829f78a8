/*
 * steptraced as a service: the config file, the pid file and the lock,
 * status counters (STATUS), the live stream (TAIL), write faults (through
 * the STEPTRACED_FAULT_FILE seam and a real ENOSPC from /dev/full), memory
 * pressure, SIGTERM draining, peer credentials, descriptors after many
 * connections and memory under hostile input.
 *
 * Like test-daemon.c, no test depends on timing for what it asserts:
 * waits only have generous bounds so that a broken collector fails
 * instead of hanging.
 */
#include "test-daemon-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "steptrace/error.h"

/* ---- helpers ---- */

/* Writes `text` to dir/name; @return the path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
    const char *path = in_dir(D.dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* A round trip through the collector's loop: a signal sent before this
 * call has been handled when it returns (the handler runs before the
 * collector can read the request, and its callback at the latest in the
 * same loop iteration as the request). */
static void
sync_loop(void)
{
    (void)status_counter("pid");
}

/* The record at `line` of a NONE-mode region, numbered `step`. */
static const char *
none_record(unsigned step, unsigned line)
{
    static char buf[256];

    xsnprintf(buf,
              HEADER "%u" DASHES "Runtime: 0.0001 ms\n"
                     "/abs/f.py::main -- line %u\n\n",
              step, line);
    return buf;
}

/* Sends steps first..last (lines = steps) of region 1 and a FLUSH.
 * @return the ACK's error count. */
static uint64_t
send_steps(int fd, unsigned first, unsigned last, uint64_t token, char *msg,
           size_t msglen)
{
    struct frame f;
    unsigned i;

    frame_init(&f);
    for (i = first; i <= last; i++)
        put_step(&f, 1, 1, i, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    return flush_wait(fd, token, msg, msglen);
}

static void
send_prologue_none(int fd)
{
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    frame_send(fd, &f);
    st_buf_close(&f.b);
}

/* Entries of /proc/PID/fd. */
static int
count_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    xsnprintf(path, "/proc/%d/fd", (int)pid);
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* VmRSS or VmHWM of PID, in KiB. */
static long
proc_kib(pid_t pid, const char *key)
{
    char path[64], line[256];
    FILE *f;
    long v = -1;

    xsnprintf(path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, strlen(key)) == 0)
            v = strtol(line + strlen(key) + 1, NULL, 10);
    fclose(f);
    ck_assert_int_ge(v, 0);
    return v;
}

static int
text_contains(const char *path, const char *needle)
{
    char *text = slurp(path);
    int r = text != NULL && strstr(text, needle) != NULL;

    free(text);
    return r;
}

/* ---- config file, pid file, lock ---- */

START_TEST(test_service_config_applies)
{
    char cfg[4 * PATH_MAX], sock[PATH_MAX], pidf[PATH_MAX], own[PATH_MAX];
    char want[32];
    const char *path;
    const char *args[] = {"--config", NULL, NULL};
    size_t rec = strlen(none_record(1, 1));
    int fd;

    xsnprintf(sock, "%s/cfg.sock", D.dir);
    xsnprintf(pidf, "%s/steptraced.pid", D.dir);
    xsnprintf(own, "%s/own.log", D.dir);
    /* Rotation: each file holds at most one and a half records, and one
     * backup is kept, whatever the region asks for (here: none). */
    xsnprintf(cfg,
              "# the collector's own settings\n"
              "socket: %s\n"
              "pid-file: %s\n"
              "log_file: %s\n"
              "max_pending_bytes: 8388608\n"
              "max_log_bytes: %zu\n"
              "max_log_files: 1\n"
              "allow_uids: []\n",
              sock, pidf, own, rec * 3 / 2);
    path = write_file("steptraced.yaml", cfg);
    args[1] = path;
    xsnprintf(D.sock, "%s", sock);
    ck_assert_int_eq(daemon_spawn_opts(args, 0), 0);
    xsnprintf(want, "%d\n", (int)D.pid);
    assert_file_eq(pidf, want);
    ck_assert(text_contains(own, "steptraced: listening on "));
    ck_assert_uint_eq(status_counter("max_pending_bytes"), 8388608);
    fd = client_open();
    send_prologue_none(fd);
    ck_assert_uint_eq(send_steps(fd, 1, 3, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), none_record(3, 3));
    assert_file_eq(in_dir(D.logdir, "tracer.log.1"), none_record(2, 2));
    assert_missing(in_dir(D.logdir, "tracer.log.2"));
    ck_assert_uint_eq(status_counter("rotations"), 2);
    close(fd);
    ck_assert_int_eq(daemon_stop(), 0);
    assert_missing(pidf);
    assert_missing(sock);
    assert_missing(in_dir(D.dir, "cfg.sock.lock"));
    ck_assert(text_contains(own, "SIGTERM: stopping"));
}
END_TEST

/* Runs steptraced --config with `text`; @return its exit status and the
 * stderr it wrote in err (cleared first). */
static int
config_error(const char *text, char *err, size_t errlen)
{
    const char *args[] = {"--config", NULL, "--socket", D.sock, NULL};
    char *out;
    int st;

    args[1] = write_file("bad.yaml", text);
    unlink(D.err);
    st = run_steptraced(args, NULL);
    out = slurp(D.err);
    snprintf(err, errlen, "%s", out != NULL ? out : "");
    free(out);
    return st;
}

/* Forwarding's settings (issue 14): one line naming the problem and the
 * fix, exit status 2, nothing started. */
START_TEST(test_service_forward_errors)
{
    const char *bad_url[] = {"--socket", D.sock, "--forward",
                             "udp://127.0.0.1:514", NULL};
    const char *no_port[] = {"--socket", D.sock, "--forward",
                             "syslog+tcp://localhost", NULL};
    char err[2048], *out;

    unlink(D.err);
    ck_assert_int_eq(run_steptraced(bad_url, NULL), 2);
    out = slurp(D.err);
    ck_assert_str_eq(out, "steptraced: --forward 'udp://127.0.0.1:514' is "
                          "not a forward destination; write "
                          "syslog+tcp://HOST:PORT or syslog+unix:///PATH\n");
    free(out);
    unlink(D.err);
    ck_assert_int_eq(run_steptraced(no_port, NULL), 2);
    out = slurp(D.err);
    ck_assert_ptr_nonnull(strstr(out, "names no port"));
    free(out);
    ck_assert_int_eq(config_error("log_file: false\n", err, sizeof(err)), 2);
    ck_assert_ptr_nonnull(strstr(err, "bad.yaml: log_file: false turns the "
                                      ".tracer files off, but no forward "
                                      "destination is set"));
    ck_assert_int_eq(config_error("forward: [syslog+tcp://h:1, x]\n", err,
                                  sizeof(err)),
                     2);
    ck_assert_ptr_nonnull(strstr(err, "bad.yaml:1:29: forward: 'x' is not a "
                                      "forward destination"));
    assert_missing(D.sock);
}
END_TEST

START_TEST(test_service_config_errors)
{
    char err[2048], want[PATH_MAX + 200];
    const char *path = in_dir(D.dir, "bad.yaml");
    char p[PATH_MAX];

    xsnprintf(p, "%s", path);
    ck_assert_int_eq(config_error("socket: /tmp/x.sock\nbogus: 1\n", err,
                                  sizeof(err)),
                     2);
    xsnprintf(want,
              "steptraced: %s:2:1: unknown key 'bogus' (valid keys: "
              "socket, pid_file, log_file, max_pending_bytes, "
              "max_log_bytes, max_log_files, allow_uids, log_format, "
              "forward, facility, sd_id, cee, max_message_bytes, "
              "forward_queue_bytes, forward_drain_ms)\n",
              p);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(config_error("max_pending_bytes: lots\n", err,
                                  sizeof(err)),
                     2);
    xsnprintf(want,
              "steptraced: %s:1:20: max_pending_bytes must be a whole "
              "number\n",
              p);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(config_error("max_log_files: 5000\n", err, sizeof(err)),
                     2);
    ck_assert_ptr_nonnull(strstr(err, ":1:16: max_log_files must be between "
                                      "0 and 1000"));
    ck_assert_int_eq(config_error("allow_uids: [0, no-such-user-here]\n", err,
                                  sizeof(err)),
                     2);
    ck_assert_ptr_nonnull(strstr(err, ":1:17: allow_uids: no user named "
                                      "'no-such-user-here'"));
    ck_assert_int_eq(config_error("socket: [a, b]\n", err, sizeof(err)), 2);
    ck_assert_ptr_nonnull(strstr(err, ":1:9: socket must be a file path"));
    ck_assert_int_eq(config_error("- just\n- a list\n", err, sizeof(err)), 2);
    ck_assert_ptr_nonnull(strstr(err, ":1:1: expected a mapping"));
    /* YAML syntax errors, with their position. */
    ck_assert_int_eq(config_error("socket: [unclosed\n", err, sizeof(err)), 2);
    ck_assert_ptr_nonnull(strstr(err, p));
    ck_assert_ptr_eq(strchr(err, '\n'), err + strlen(err) - 1);
    /* A file that cannot be read. */
    unlink(path);
    {
        const char *args[] = {"--config", path, NULL};

        unlink(D.err);
        ck_assert_int_eq(run_steptraced(args, NULL), 2);
        ck_assert(text_contains(D.err, p));
    }
    /* Nothing was started. */
    assert_missing(D.sock);
}
END_TEST

START_TEST(test_service_pid_file_option)
{
    char pidf[PATH_MAX], want[32];
    const char *args[] = {"--pid-file", NULL, NULL};

    xsnprintf(pidf, "%s/p.pid", D.dir);
    args[1] = pidf;
    ck_assert_int_eq(daemon_spawn(args), 0);
    xsnprintf(want, "%d\n", (int)D.pid);
    assert_file_eq(pidf, want);
    ck_assert_int_eq(daemon_stop(), 0);
    assert_missing(pidf);
}
END_TEST

/* Collectors started at the same moment on one path: one runs. */
START_TEST(test_service_lock_one_collector_per_socket)
{
    enum { N = 4 };
    pid_t pids[N];
    int pipes[N], ready = 0, refused = 0, i;
    char fdarg[N][16];

    for (i = 0; i < N; i++) {
        int p[2];

        ck_assert_int_eq(pipe(p), 0);
        snprintf(fdarg[i], sizeof(fdarg[i]), "%d", p[1]);
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            int efd = open(D.err, O_WRONLY | O_CREAT | O_APPEND, 0600);

            close(p[0]);
            if (efd >= 0)
                dup2(efd, STDERR_FILENO);
            execl(steptraced_path(), steptraced_path(), "--socket", D.sock,
                  "--ready-fd", fdarg[i], (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        pipes[i] = p[0];
    }
    for (i = 0; i < N; i++) {
        char buf[8];
        struct pollfd pfd = {pipes[i], POLLIN, 0};
        ssize_t n = 0;

        if (poll(&pfd, 1, WAIT_MS) == 1)
            n = read(pipes[i], buf, sizeof(buf));
        close(pipes[i]);
        if (n == 6) {
            ready++;
            D.pid = pids[i];
        }
        else {
            ck_assert_int_eq(wait_exit(pids[i]), 1);
            refused++;
        }
    }
    ck_assert_int_eq(ready, 1);
    ck_assert_int_eq(refused, N - 1);
    ck_assert(text_contains(D.err, "another steptraced is already running"));
    assert_still_serving();
}
END_TEST

/* ---- status ---- */

START_TEST(test_service_status_counters)
{
    int fd = client_open(), bad;
    char *text;
    static const unsigned char garbage[] = {0, 0, 0, 2, 0xc1, 0xc1};

    ck_assert_uint_eq(status_counter("records_in"), 0);
    send_prologue_none(fd);
    ck_assert_uint_eq(send_steps(fd, 1, 3, 1, NULL, 0), 0);
    ck_assert_uint_eq(status_counter("records_in"), 3);
    ck_assert_uint_eq(status_counter("records_written"), 3);
    ck_assert_uint_eq(status_counter("records_filtered"), 0);
    text = slurp(in_dir(D.logdir, "tracer.log"));
    ck_assert_uint_eq(status_counter("bytes_written"), strlen(text));
    free(text);
    ck_assert_uint_eq(status_counter("pid"), (uint64_t)D.pid);
    ck_assert_uint_eq(status_counter("max_pending_bytes"), 64u << 20);
    ck_assert_uint_eq(status_counter("dropped_write"), 0);
    ck_assert_uint_eq(status_counter("protocol_errors"), 0);
    bad = client_open();
    send_all(bad, garbage, sizeof(garbage));
    ck_assert(closed_by_peer(bad));
    close(bad);
    ck_assert_uint_eq(status_counter("protocol_errors"), 1);
    /* This connection, the bad one and one per status call so far. */
    ck_assert_uint_ge(status_counter("connections"), 12);
    ck_assert_uint_eq(status_counter("connections_open"), 2);
    close(fd);
}
END_TEST

/* ---- tail ---- */

/* A subscriber: HELLO, then TAIL(pid, glob). */
static int
tail_open(uint64_t pid, const char *glob)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    ck_assert_int_eq(st_wire_pack_tail(&f.pk, pid, glob, strlen(glob)), 0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    return fd;
}

/* Reads TEXT messages until `want` bytes of text arrived; @return them
 * (NUL-terminated, free()).  *pid and *path (if not NULL) get the source
 * of the first record. */
static char *
tail_read(int fd, size_t want, uint64_t *pid, char *path, size_t pathlen)
{
    struct st_buf out;
    struct st_wire_decoder dec;
    int first = 1;

    st_buf_init(&out);
    st_wire_decoder_init(&dec);
    while (out.len < want) {
        unsigned char hdr[ST_WIRE_HEADER_SIZE];
        struct st_msg m;
        char *p;
        int64_t len;

        ck_assert_int_eq(recv_exact(fd, hdr, sizeof(hdr)), 0);
        len = st_wire_frame_len(hdr, 0);
        ck_assert_int_gt(len, 0);
        p = malloc((size_t)len);
        ck_assert_int_eq(recv_exact(fd, p, (size_t)len), 0);
        ck_assert_int_gt(st_wire_validate_messages(p, (size_t)len), 0);
        st_wire_decoder_reset(&dec, p, (size_t)len);
        while (st_wire_decode_next(&dec, &m) == 1) {
            ck_assert_int_eq(m.type, ST_MSG_TEXT);
            if (m.u.text.pid == 0)
                continue;
            if (first && pid != NULL)
                *pid = m.u.text.pid;
            if (first && path != NULL)
                snprintf(path, pathlen, "%.*s", (int)m.u.text.path.n,
                         m.u.text.path.p);
            first = 0;
            st_buf_append(&out, m.u.text.text.p, m.u.text.text.n);
        }
        free(p);
    }
    st_wire_decoder_close(&dec);
    st_buf_append(&out, "", 1);
    return out.data;
}

START_TEST(test_service_tail_streams_records_as_written)
{
    int sub = tail_open(0, "");
    int fd = client_open();
    char path[PATH_MAX], *text, *file;
    uint64_t pid = 0;

    /* The subscriber is no client: the counter says so once it is in. */
    ck_assert_uint_eq(wait_counter("tail_subscribers", 1), 1);
    send_all_mode_region(fd);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    file = slurp(in_dir(D.logdir, "tracer.log"));
    text = tail_read(sub, strlen(file), &pid, path, sizeof(path));
    ck_assert_str_eq(text, all_region_text);
    ck_assert_str_eq(text, file);
    ck_assert_str_eq(path, in_dir(D.logdir, "tracer.log"));
    ck_assert_uint_eq(pid, (uint64_t)getpid());
    free(text);
    free(file);
    close(fd);
    close(sub);
}
END_TEST

START_TEST(test_service_tail_filters)
{
    char glob[PATH_MAX], path[PATH_MAX], *text;
    int by_file, by_pid, fd;
    struct frame f;

    xsnprintf(glob, "%s/*_1.log", D.logdir);
    by_file = tail_open(0, glob);
    by_pid = tail_open((uint64_t)getpid() + 1000000, "");
    ck_assert_uint_eq(wait_counter("tail_subscribers", 2), 2);
    fd = client_open();
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_region(&f, 2, 2, ST_LEVEL_INFO, ST_VARMODE_NONE, 0, 10);
    put_step(&f, 1, 1, 1, 100, NULL, NULL);
    put_step(&f, 2, 1, 2, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    /* Only tracer_1.log matches: its record is the first text. */
    text = tail_read(by_file, strlen(none_record(1, 2)), NULL, path,
                     sizeof(path));
    ck_assert_str_eq(text, none_record(1, 2));
    ck_assert_str_eq(path, in_dir(D.logdir, "tracer_1.log"));
    free(text);
    /* Another pid: nothing, and the collector says nothing to it. */
    {
        struct pollfd pfd = {by_pid, POLLIN, 0};

        ck_assert_int_eq(poll(&pfd, 1, 200), 0);
    }
    close(fd);
    close(by_file);
    close(by_pid);
}
END_TEST

START_TEST(test_service_tail_slow_subscriber_skips)
{
    int sub = tail_open(0, "");
    int fd = client_open();
    uint64_t skipped, token = 1;
    struct frame f;
    unsigned line = 1, i;
    int noted = 0;

    ck_assert_uint_eq(wait_counter("tail_subscribers", 1), 1);
    send_prologue_none(fd);
    /* Far more than the subscriber's queue and socket hold, while it
     * does not read: the writer is never slowed down. */
    while (status_counter("dropped_tail") == 0) {
        frame_init(&f);
        for (i = 0; i < 2000; i++, line++)
            put_step(&f, 1, 1, line, 100, NULL, NULL);
        frame_send(fd, &f);
        st_buf_close(&f.b);
        ck_assert_uint_eq(flush_wait(fd, token++, NULL, 0), 0);
        ck_assert_uint_lt(line, 2000000);
    }
    ck_assert_uint_eq(status_counter("records_written"), line - 1);
    skipped = status_counter("dropped_tail");
    /* Reading again, the subscriber is told how many it missed. */
    while (!noted) {
        unsigned char hdr[ST_WIRE_HEADER_SIZE];
        struct st_wire_decoder dec;
        struct st_msg m;
        char *p;
        int64_t len;

        ck_assert_int_eq(recv_exact(sub, hdr, sizeof(hdr)), 0);
        len = st_wire_frame_len(hdr, 0);
        p = malloc((size_t)len);
        ck_assert_int_eq(recv_exact(sub, p, (size_t)len), 0);
        st_wire_decoder_init(&dec);
        st_wire_decoder_reset(&dec, p, (size_t)len);
        while (st_wire_decode_next(&dec, &m) == 1) {
            char want[64];

            if (m.u.text.pid != 0)
                continue;
            xsnprintf(want, "%llu records skipped",
                      (unsigned long long)skipped);
            ck_assert_int_eq(strncmp(m.u.text.text.p, want, strlen(want)), 0);
            noted = 1;
        }
        st_wire_decoder_close(&dec);
        free(p);
    }
    close(fd);
    close(sub);
}
END_TEST

/* ---- faults ---- */

START_TEST(test_service_write_fault_counted_and_reported)
{
    char fault[PATH_MAX], msg[512], want[PATH_MAX + 128], *log;
    int fd;

    xsnprintf(fault, "%s/fault", D.dir);
    setenv("STEPTRACED_FAULT_FILE", fault, 1);
    ck_assert_int_eq(daemon_spawn(NULL), 0);
    fd = client_open();
    send_prologue_none(fd);
    write_file("fault", "ENOSPC\n");
    ck_assert_uint_eq(send_steps(fd, 1, 2, 1, msg, sizeof(msg)), 1);
    xsnprintf(want, "cannot write %s: No space left on device",
              in_dir(D.logdir, "tracer.log"));
    ck_assert_str_eq(msg, want);
    /* Still failing: counted again, the collector goes on. */
    ck_assert_uint_eq(send_steps(fd, 3, 3, 2, msg, sizeof(msg)), 1);
    ck_assert_uint_eq(status_counter("dropped_write"), 3);
    unlink(fault);
    /* Writing recovers: one line says what was lost, then the records. */
    ck_assert_uint_eq(send_steps(fd, 4, 4, 3, msg, sizeof(msg)), 0);
    log = slurp(in_dir(D.logdir, "tracer.log"));
    xsnprintf(want,
              "[steptrace] 3 records lost: cannot write %s: No space "
              "left on device\n",
              in_dir(D.logdir, "tracer.log"));
    ck_assert_int_eq(strncmp(log, want, strlen(want)), 0);
    ck_assert_str_eq(log + strlen(want), none_record(4, 4));
    free(log);
    ck_assert_uint_eq(status_counter("records_written"), 1);
    ck_assert_uint_ge(status_counter("write_errors"), 2);
    close(fd);
}
END_TEST

/* The log directory cannot be created: the records are counted, and the
 * file, once it can be made, starts with the line saying so. */
START_TEST(test_service_open_fault_reported_in_the_file)
{
    char msg[512], want[2 * PATH_MAX + 256];
    char logdir[PATH_MAX], blocker[PATH_MAX];
    int fd = client_open(), created;

    xsnprintf(blocker, "%s/afile", D.dir);
    created = open(blocker, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(created, 0);
    close(created);
    xsnprintf(logdir, "%s/afile/.tracer", D.dir);
    xsnprintf(D.logdir, "%s", logdir);
    send_prologue_none(fd);
    ck_assert_uint_eq(send_steps(fd, 1, 2, 1, msg, sizeof(msg)), 1);
    ck_assert_uint_eq(status_counter("dropped_open"), 2);
    /* The directory can be made now; a FLUSH lets the next record try. */
    ck_assert_int_eq(unlink(blocker), 0);
    ck_assert_uint_eq(send_steps(fd, 3, 3, 2, NULL, 0), 0);
    xsnprintf(want,
              "[steptrace] 2 records lost: cannot create log directory "
              "%s: Not a directory\n%s",
              logdir, none_record(3, 3));
    assert_file_eq(in_dir(logdir, "tracer.log"), want);
    close(fd);
}
END_TEST

/* A real ENOSPC: the file is swapped for /dev/full and SIGHUP reopens it. */
START_TEST(test_service_dev_full_then_recovers)
{
    char msg[512], want[PATH_MAX + 256];
    const char *log = in_dir(D.logdir, "tracer.log");
    char logp[PATH_MAX], keep[PATH_MAX];
    int fd = client_open();

    xsnprintf(logp, "%s", log);
    xsnprintf(keep, "%s.keep", logp);
    send_prologue_none(fd);
    ck_assert_uint_eq(send_steps(fd, 1, 1, 1, NULL, 0), 0);
    ck_assert_int_eq(rename(logp, keep), 0);
    ck_assert_int_eq(symlink("/dev/full", logp), 0);
    ck_assert_int_eq(kill(D.pid, SIGHUP), 0);
    sync_loop();
    ck_assert_uint_eq(send_steps(fd, 2, 3, 2, msg, sizeof(msg)), 1);
    xsnprintf(want, "cannot write %s: No space left on device", logp);
    ck_assert_str_eq(msg, want);
    ck_assert_int_eq(unlink(logp), 0);
    ck_assert_int_eq(kill(D.pid, SIGHUP), 0);
    sync_loop();
    ck_assert_uint_eq(send_steps(fd, 4, 4, 3, msg, sizeof(msg)), 0);
    assert_file_eq(keep, none_record(1, 1));
    xsnprintf(want,
              "[steptrace] 2 records lost: cannot write %s: No space "
              "left on device\n%s",
              logp, none_record(4, 4));
    assert_file_eq(logp, want);
    close(fd);
}
END_TEST

/* chattr on the log directory; @return 0 when it worked. */
static int
chattr_logdir(const char *flag)
{
    char cmd[PATH_MAX + 64];

    xsnprintf(cmd, "chattr %s '%s' 2>/dev/null", flag, D.logdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
chattr_teardown(void)
{
    (void)chattr_logdir("-i");
    fixture_teardown();
}

/* A rotation whose rename fails: the file keeps growing, nothing is
 * truncated or lost, and the failure is counted.  An immutable directory
 * (chattr +i) refuses renames even to root while the open file still
 * takes appends. */
START_TEST(test_service_rotation_rename_fails_keeps_appending)
{
    char msg[512], want[PATH_MAX + 128], all[1024];
    size_t rec = strlen(none_record(1, 1));
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_strings(&f);
    put_region(&f, 1, 1, ST_LEVEL_INFO, ST_VARMODE_NONE, rec * 3 / 2, 5);
    ck_assert_int_eq(st_wire_pack_frame(&f.pk, 1, 1, 0, S_FILE, S_MAIN, 1, 0,
                                        1),
                     0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(send_steps(fd, 1, 1, 1, NULL, 0), 0);
    if (geteuid() != 0 || chattr_logdir("+i") != 0) {
        fprintf(stderr, "test_service_rotation_rename_fails_keeps_appending:"
                        " cannot make the log directory immutable; not run\n");
        close(fd);
        return;
    }
    ck_assert_uint_ge(send_steps(fd, 2, 3, 2, msg, sizeof(msg)), 1);
    xsnprintf(want, "cannot rotate %s: Operation not permitted",
              in_dir(D.logdir, "tracer.log"));
    ck_assert_str_eq(msg, want);
    ck_assert_int_eq(chattr_logdir("-i"), 0);
    xsnprintf(all, "%s", none_record(1, 1));
    strcat(all, none_record(2, 2));
    strcat(all, none_record(3, 3));
    assert_file_eq(in_dir(D.logdir, "tracer.log"), all);
    assert_missing(in_dir(D.logdir, "tracer.log.1"));
    ck_assert_uint_ge(status_counter("rotate_errors"), 1);
    ck_assert_uint_eq(status_counter("records_written"), 3);
    close(fd);
}
END_TEST

/* ---- pressure ---- */

/* Child: sends `n` ALL-mode records with 50 locals each in frames of
 * 500, then FLUSH; exits 0 when the ACK reports no error. */
static void
heavy_writer(unsigned n)
{
    int fd = client_open();
    struct frame f;
    char name[16], value[64];
    unsigned i, k;

    frame_init(&f);
    put_strings(&f);
    ck_assert_int_eq(st_wire_pack_thread(&f.pk, 1, S_MAIN_THREAD), 0);
    put_region(&f, 1, 1, ST_LEVEL_INFO, ST_VARMODE_ALL, 0, 10);
    ck_assert_int_eq(st_wire_pack_frame(&f.pk, 1, 1, 0, S_FILE, S_MAIN, 1, 0,
                                        1),
                     0);
    for (k = 0; k < 50; k++) {
        snprintf(name, sizeof(name), "v%u", k);
        ck_assert_int_eq(st_wire_pack_str(&f.pk, 100 + k, name, strlen(name)),
                         0);
    }
    for (i = 1; i <= n; i++) {
        ck_assert_int_eq(st_wire_pack_step_begin(&f.pk, 1, 1, i, 100), 0);
        ck_assert_int_eq(st_wire_pack_nil(&f.pk), 0);
        snprintf(value, sizeof(value), "%u-%040u", i, i);
        ck_assert_int_eq(st_wire_pack_diff_begin(&f.pk, 1), 0);
        ck_assert_int_eq(st_wire_pack_var_set(&f.pk, 100 + i % 50, S_STR,
                                              value, strlen(value)),
                         0);
        if (i % 500 == 0)
            frame_send(fd, &f);
    }
    if (f.b.len > 0)
        frame_send(fd, &f);
    st_buf_close(&f.b);
    _exit(flush_wait(fd, 1, NULL, 0) == 0 ? 0 : 1);
}

START_TEST(test_service_slow_disk_pauses_producers_without_loss)
{
    enum { N = 6000 };
    char fault[PATH_MAX], *text, *p;
    const char *args[] = {"--config", NULL, NULL};
    unsigned k;
    pid_t w;

    xsnprintf(fault, "%s/fault", D.dir);
    setenv("STEPTRACED_FAULT_FILE", fault, 1);
    write_file("fault", "DELAY 20\n");
    args[1] = write_file("c.yaml", "max_pending_bytes: 1048576\n");
    ck_assert_int_eq(daemon_spawn(args), 0);
    w = fork();
    ck_assert_int_ge(w, 0);
    if (w == 0)
        heavy_writer(N);
    /* Writing falls behind: the writer's connection is paused ... */
    ck_assert_uint_ge(wait_counter("pauses", 1), 1);
    /* ... while another client is still served. */
    ck_assert_uint_eq(status_counter("connections_open"), 2);
    unlink(fault);
    ck_assert_int_eq(wait_exit(w), 0);
    ck_assert_uint_eq(status_counter("records_written"), N);
    ck_assert_uint_eq(status_counter("dropped_write"), 0);
    /* Pending stayed near the bound: no more than a frame's worth over. */
    ck_assert_uint_le(status_counter("pending_peak"), 1048576 + 512 * 1024);
    text = slurp(in_dir(D.logdir, "tracer.log"));
    p = text;
    for (k = 1; k <= N; k++) {
        char head[64];

        xsnprintf(head, HEADER "%u" DASHES, k);
        p = strstr(p, head);
        ck_assert_msg(p != NULL, "step %u missing", k);
        p += strlen(head);
    }
    free(text);
}
END_TEST

/* ---- stop ---- */

START_TEST(test_service_sigterm_writes_what_was_sent)
{
    static const unsigned char partial[] = {0, 0, 0, 40, 0x96, 6};
    int fd = client_open();
    struct frame f;
    unsigned i;
    char *log;

    send_prologue_none(fd);
    /* Three frames and no FLUSH: the bytes are in the collector's socket
     * when the signal comes. */
    for (i = 0; i < 3; i++) {
        frame_init(&f);
        put_step(&f, 1, 1, i + 1, 100, NULL, NULL);
        frame_send(fd, &f);
        st_buf_close(&f.b);
    }
    send_all(fd, partial, sizeof(partial));
    ck_assert_int_eq(daemon_stop(), 0);
    assert_missing(D.sock);
    log = slurp(in_dir(D.logdir, "tracer.log"));
    ck_assert_ptr_nonnull(log);
    ck_assert_ptr_nonnull(strstr(log, none_record(3, 3)));
    free(log);
    ck_assert(text_contains(D.err, "bytes of an unfinished frame dropped at "
                                   "stop"));
    close(fd);
}
END_TEST

/* ---- peers ---- */

/* Child: as uid 65534, connects and sends HELLO.  Exits 0 when served
 * (HELLO answered), 3 when the collector closed the connection. */
static void
connect_as_nobody(void)
{
    struct frame f;
    char c;
    int fd;

    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        _exit(10);
    fd = client_connect();
    frame_init(&f);
    st_wire_pack_hello(&f.pk, 1, "nobody", 6, 0, 0);
    /* Plain calls: a refused peer may see the send fail. */
    {
        unsigned char hdr[ST_WIRE_HEADER_SIZE];

        st_wire_put_header(hdr, (uint32_t)f.b.len);
        if (send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) != sizeof(hdr) ||
            send(fd, f.b.data, f.b.len, MSG_NOSIGNAL) != (ssize_t)f.b.len)
            _exit(3);
    }
    _exit(recv(fd, &c, 1, 0) == 1 ? 0 : 3);
}

static int
run_as_nobody(void)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        connect_as_nobody();
    return wait_exit(pid);
}

START_TEST(test_service_peer_uid_checked)
{
    const char *args[] = {"--config", NULL, NULL};

    if (geteuid() != 0) {
        fprintf(stderr, "test_service_peer_uid_checked: needs root to "
                        "connect as another user; not run\n");
        return;
    }
    /* Other users may reach the socket: SO_PEERCRED decides. */
    ck_assert_int_eq(chmod(D.dir, 0711), 0);
    args[1] = write_file("c.yaml", "allow_uids: [65533]\n");
    ck_assert_int_eq(daemon_spawn(args), 0);
    ck_assert_int_eq(run_as_nobody(), 3);
    ck_assert_uint_eq(status_counter("refused"), 1);
    ck_assert(text_contains(D.err, "uid 65534 is not the collector's uid"));
    ck_assert_int_eq(daemon_stop(), 0);
    args[1] = write_file("c.yaml", "allow_uids: [65533, 65534]\n");
    ck_assert_int_eq(daemon_spawn(args), 0);
    ck_assert_int_eq(run_as_nobody(), 0);
    ck_assert_uint_eq(status_counter("refused"), 0);
}
END_TEST

START_TEST(test_service_connect_close_cycles_keep_fds)
{
    static const unsigned char half[] = {0, 0, 1, 0, 0x93, 1};
    int before, after = -1, i;

    /* Before any client: listener, loop, signals, lock, log. */
    before = count_fds(D.pid);
    for (i = 0; i < 1000; i++) {
        int fd = i % 3 == 0 ? client_connect() : client_open();

        /* Some leave half a frame behind, some a record in a file. */
        if (i % 3 == 1)
            send_all(fd, half, sizeof(half));
        else if (i % 3 == 2)
            send_prologue_none(fd);
        close(fd);
    }
    ck_assert_uint_ge(wait_counter("connections", 1000 + 3), 1000 + 3);
    for (i = 0; i < WAIT_MS / 20; i++) {
        after = count_fds(D.pid);
        if (after == before)
            break;
        sleep_ms(20);
    }
    ck_assert_int_eq(after, before);
    assert_still_serving();
}
END_TEST

START_TEST(test_service_hostile_inputs_bounded_memory)
{
    static const unsigned char dd[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char df[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char four_gib[] = {0xff, 0xff, 0xff, 0xff};
    struct test_rng rng;
    unsigned char *buf;
    size_t n = 100000, i;
    long rss0, rss1;
    int round, fd;

    /* Warm up: one full client, so that what follows is growth only. */
    assert_still_serving();
    rss0 = proc_kib(D.pid, "VmRSS:");
    buf = malloc(4 + n);
    ck_assert_ptr_nonnull(buf);
    test_rng_seed(&rng, 42);
    for (round = 0; round < 7; round++) {
        size_t len;

        fd = round % 2 == 0 ? client_connect() : client_open();
        switch (round) {
        case 0: /* Raw: read as a header announcing 3.7 GB. */
            send_all(fd, dd, sizeof(dd));
            break;
        case 1: /* Framed: an array of 4 billion elements. */
            st_wire_put_header(buf, sizeof(dd));
            memcpy(buf + 4, dd, sizeof(dd));
            send_all(fd, buf, 4 + sizeof(dd));
            break;
        case 2:
            st_wire_put_header(buf, sizeof(df));
            memcpy(buf + 4, df, sizeof(df));
            send_all(fd, buf, 4 + sizeof(df));
            break;
        case 3: /* 100,000 nested arrays. */
            st_wire_put_header(buf, (uint32_t)n);
            memset(buf + 4, 0x91, n);
            send_all(fd, buf, 4 + n);
            break;
        case 4: /* A header announcing 4 GiB. */
            send_all(fd, four_gib, sizeof(four_gib));
            break;
        default: /* Random bytes, framed and not. */
            len = round == 5 ? n : 4 + n;
            for (i = 0; i < 4 + n; i++)
                buf[i] = (unsigned char)test_rng_below(&rng, 256);
            if (round == 5)
                st_wire_put_header(buf, (uint32_t)(n - 4));
            else
                buf[0] |= 0x80; /* Announces more than the limit. */
            send_all(fd, buf, len);
            break;
        }
        ck_assert(closed_by_peer(fd));
        close(fd);
    }
    free(buf);
    rss1 = proc_kib(D.pid, "VmRSS:");
    ck_assert_msg(rss1 - rss0 < 1024, "RSS grew from %ld to %ld KiB", rss0,
                  rss1);
    ck_assert_uint_eq(status_counter("protocol_errors"), 7);
    assert_still_serving();
}
END_TEST

Suite *
service_suite(void)
{
    Suite *s = suite_create("service");

    add_test(s, "config", test_service_config_applies, 0);
    add_test(s, "config-errors", test_service_config_errors, 0);
    add_test(s, "forward-errors", test_service_forward_errors, 0);
    add_test(s, "pid-file", test_service_pid_file_option, 0);
    add_test(s, "lock", test_service_lock_one_collector_per_socket, 0);
    add_test(s, "status", test_service_status_counters, 1);
    add_test(s, "tail", test_service_tail_streams_records_as_written, 1);
    add_test(s, "tail-filters", test_service_tail_filters, 1);
    add_test(s, "tail-slow", test_service_tail_slow_subscriber_skips, 1);
    add_test(s, "write-fault", test_service_write_fault_counted_and_reported,
             0);
    add_test(s, "open-fault", test_service_open_fault_reported_in_the_file, 1);
    add_test(s, "dev-full", test_service_dev_full_then_recovers, 1);
    {
        TCase *tc = tcase_create("rename-fails");

        tcase_add_checked_fixture(tc, running_setup, chattr_teardown);
        tcase_add_test(tc, test_service_rotation_rename_fails_keeps_appending);
        suite_add_tcase(s, tc);
    }
    add_test(s, "slow-disk",
             test_service_slow_disk_pauses_producers_without_loss, 0);
    add_test(s, "sigterm-drain", test_service_sigterm_writes_what_was_sent, 1);
    add_test(s, "peer-uid", test_service_peer_uid_checked, 0);
    add_test(s, "fd-cycles", test_service_connect_close_cycles_keep_fds, 1);
    add_test(s, "hostile-rss", test_service_hostile_inputs_bounded_memory, 1);
    return s;
}
