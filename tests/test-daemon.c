/*
 * End-to-end tests of steptraced: each test starts the real collector
 * (path from $STEPTRACED; unset: the whole executable skips with 77) on a
 * socket in a fresh mkdtemp() directory, talks to it as an agent would
 * (frames built with the common encoders, sent over a plain socket) and
 * compares the log files byte for byte.
 *
 * No test depends on timing: a FLUSH answered by its ACK is the barrier
 * after which the files are complete.  Waits (ready pipe, replies, exit)
 * have generous bounds only so that a broken collector fails the test
 * instead of hanging it.  The collector's own stderr goes to daemon.err
 * in the test directory, and every test that leaves the collector running
 * stops it with SIGTERM and expects exit status 0: crashes and sanitizer
 * reports in the collector fail the test that caused them.
 */
#include "test-common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "steptrace/buf.h"
#include "steptrace/wire.h"

/* Bound on every wait, so that a broken collector fails instead of hangs. */
#define WAIT_MS 20000

#define HEADER "--------------------- Step "
#define DASHES " ---------------------\n"

/* snprintf into an array, failing the test rather than truncating. */
#define xsnprintf(buf, ...)                                                 \
    ck_assert_int_lt(snprintf((buf), sizeof(buf), __VA_ARGS__),             \
                     (int)sizeof(buf))

/* The collector of the current test (each test runs in its own process). */
static struct {
    pid_t pid;
    char dir[PATH_MAX];
    char sock[PATH_MAX];
    char err[PATH_MAX];
    char logdir[PATH_MAX];
} D;

/* String ids every scenario defines. */
enum {
    S_FILE = 1, S_MAIN, S_X, S_INT, S_Y, S_MAIN_THREAD, S_STR, S_Z, S_OUTER,
    S_WORKER, S_MODULE, S_COUNT
};

static const char *const strings[S_COUNT] = {
    NULL, "/abs/f.py", "main", "x", "int", "y", "MainThread", "str", "z",
    "outer", "Worker", "<module>",
};

/* A variable of a diff: type 0 marks a deletion; name 0 ends a list. */
struct tvar {
    uint32_t name;
    uint32_t type;
    const char *value;
};

/* ---- the collector process ---- */

static const char *
steptraced_path(void)
{
    return getenv("STEPTRACED");
}

/* Starts steptraced with the ready pipe plus `extra` arguments (NULL
 * terminated) and waits for "ready\n".  @return 0, or -1 if the collector
 * exited or never got ready (it is then reaped). */
static int
daemon_spawn(const char *const *extra)
{
    char fdarg[16];
    const char *argv[32];
    char buf[16];
    size_t argc = 0, got = 0;
    int p[2];
    pid_t parent = getpid();

    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    D.pid = fork();
    ck_assert_int_ge(D.pid, 0);
    if (D.pid == 0) {
        int efd = open(D.err, O_WRONLY | O_CREAT | O_APPEND, 0600);

        /* Dies with the test process even if the test fails early. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        if (efd >= 0)
            dup2(efd, STDERR_FILENO);
        /* Plain calls only in here: check's own assertions write to a
         * descriptor of the test process. */
        fcntl(p[1], F_SETFD, 0);
        snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
        argv[argc++] = steptraced_path();
        argv[argc++] = "--socket";
        argv[argc++] = D.sock;
        argv[argc++] = "--ready-fd";
        argv[argc++] = fdarg;
        while (extra != NULL && *extra != NULL && argc < 30)
            argv[argc++] = *extra++;
        argv[argc] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    while (got < sizeof(buf)) {
        struct pollfd pfd = {p[0], POLLIN, 0};
        ssize_t n;

        if (poll(&pfd, 1, WAIT_MS) <= 0)
            break;
        n = read(p[0], buf + got, sizeof(buf) - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(p[0]);
    if (got == 6 && memcmp(buf, "ready\n", 6) == 0)
        return 0;
    kill(D.pid, SIGKILL);
    waitpid(D.pid, NULL, 0);
    D.pid = 0;
    return -1;
}

/* Waits for a child; @return its exit status, or -1 if signalled. */
static int
wait_exit(pid_t pid)
{
    int status;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Stops the collector with SIGTERM; @return its exit status. */
static int
daemon_stop(void)
{
    int st;

    ck_assert_int_gt(D.pid, 0);
    ck_assert_int_eq(kill(D.pid, SIGTERM), 0);
    st = wait_exit(D.pid);
    D.pid = 0;
    return st;
}

/* Runs steptraced with `args` (NULL terminated) to completion, stderr into
 * daemon.err, stdout into `out` if not NULL.  @return its exit status. */
static int
run_steptraced(const char *const *args, const char *out)
{
    const char *argv[16];
    size_t argc = 0;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int efd = open(D.err, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int ofd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (efd >= 0)
            dup2(efd, STDERR_FILENO);
        if (ofd >= 0)
            dup2(ofd, STDOUT_FILENO);
        argv[argc++] = steptraced_path();
        while (*args != NULL && argc < 15)
            argv[argc++] = *args++;
        argv[argc] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return wait_exit(pid);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void
fixture_setup(void)
{
    const char *tmp = getenv("TMPDIR");

    memset(&D, 0, sizeof(D));
    xsnprintf(D.dir, "%s/st-daemon-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(D.dir));
    xsnprintf(D.sock, "%s/s.sock", D.dir);
    xsnprintf(D.err, "%s/daemon.err", D.dir);
    xsnprintf(D.logdir, "%s/.tracer", D.dir);
}

static void
fixture_teardown(void)
{
    if (D.pid > 0)
        ck_assert_int_eq(daemon_stop(), 0);
    nftw(D.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Setup of the tests that need a running collector. */
static void
running_setup(void)
{
    fixture_setup();
    ck_assert_int_eq(daemon_spawn(NULL), 0);
}

/* ---- files ---- */

/* @return the file's bytes (NUL added), or NULL if it does not exist. */
static char *
slurp(const char *path)
{
    struct st_buf b;
    char chunk[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    if (fd < 0)
        return NULL;
    st_buf_init(&b);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        st_buf_append(&b, chunk, (size_t)n);
    close(fd);
    st_buf_append(&b, "", 1);
    ck_assert_int_eq(b.oom, 0);
    return b.data;
}

static const char *
in_dir(const char *dir, const char *name)
{
    static char path[PATH_MAX];

    xsnprintf(path, "%s/%s", dir, name);
    return path;
}

static void
assert_file_eq(const char *path, const char *expected)
{
    char *text = slurp(path);

    ck_assert_msg(text != NULL, "%s does not exist", path);
    ck_assert_str_eq(text, expected);
    free(text);
}

static void
assert_missing(const char *path)
{
    ck_assert_msg(access(path, F_OK) != 0, "%s exists", path);
}

/* ---- client side of the protocol ---- */

/* Messages accumulated into one frame. */
struct frame {
    struct st_buf b;
    msgpack_packer pk;
};

static void
frame_init(struct frame *f)
{
    st_buf_init(&f->b);
    msgpack_packer_init(&f->pk, &f->b, st_buf_msgpack_write);
}

static int
client_connect(void)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    xsnprintf(sa.sun_path, "%s", D.sock);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void
send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_int_gt(w, 0);
        c += w;
        n -= (size_t)w;
    }
}

/* Sends the accumulated messages as one frame and empties the frame. */
static void
frame_send(int fd, struct frame *f)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];

    ck_assert_int_eq(f->b.oom, 0);
    st_wire_put_header(hdr, (uint32_t)f->b.len);
    send_all(fd, hdr, sizeof(hdr));
    send_all(fd, f->b.data, f->b.len);
    f->b.len = 0;
}

/* Reads exactly n bytes.  @return 0, or -1 at end of stream / reset. */
static int
recv_exact(int fd, void *p, size_t n)
{
    char *c = p;

    while (n > 0) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t r;

        ck_assert_msg(poll(&pfd, 1, WAIT_MS) == 1, "no reply from steptraced");
        r = recv(fd, c, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Receives one frame holding one message.  The caller frees *payload,
 * which the strings of *m borrow. */
static void
recv_msg(int fd, struct st_msg *m, char **payload)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct st_wire_decoder dec;
    int64_t len;

    ck_assert_int_eq(recv_exact(fd, hdr, sizeof(hdr)), 0);
    len = st_wire_frame_len(hdr, 0);
    ck_assert_int_gt(len, 0);
    *payload = malloc((size_t)len);
    ck_assert_ptr_nonnull(*payload);
    ck_assert_int_eq(recv_exact(fd, *payload, (size_t)len), 0);
    ck_assert_int_eq(st_wire_validate(*payload, (size_t)len), 1);
    st_wire_decoder_init(&dec);
    st_wire_decoder_reset(&dec, *payload, (size_t)len);
    ck_assert_int_eq(st_wire_decode_next(&dec, m), 1);
    st_wire_decoder_close(&dec);
}

/* Sends HELLO and checks the collector's answer. */
static void
hello(int fd)
{
    struct frame f;
    struct st_msg m;
    char *payload;

    frame_init(&f);
    ck_assert_int_eq(st_wire_pack_hello(&f.pk, (uint64_t)getpid(), "test", 4),
                     0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    recv_msg(fd, &m, &payload);
    ck_assert_int_eq(m.type, ST_MSG_HELLO);
    ck_assert_uint_eq(m.u.hello.version, ST_WIRE_VERSION);
    ck_assert_uint_eq(m.u.hello.pid, (uint64_t)D.pid);
    ck_assert_uint_eq(m.u.hello.program.n, 10);
    ck_assert_int_eq(memcmp(m.u.hello.program.p, "steptraced", 10), 0);
    free(payload);
}

/* A connected client past HELLO. */
static int
client_open(void)
{
    int fd = client_connect();

    hello(fd);
    return fd;
}

/*
 * Sends FLUSH and waits for its ACK: everything sent before is then in
 * the files.  @return the ACK's error count; its message is copied to
 * msg (if not NULL, "" when there is none).
 */
static uint64_t
flush_wait(int fd, uint64_t token, char *msg, size_t msglen)
{
    struct frame f;
    struct st_msg m;
    char *payload;
    uint64_t errors;

    frame_init(&f);
    ck_assert_int_eq(st_wire_pack_flush(&f.pk, token), 0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    recv_msg(fd, &m, &payload);
    ck_assert_int_eq(m.type, ST_MSG_ACK);
    ck_assert_uint_eq(m.u.ack.token, token);
    errors = m.u.ack.errors;
    if (msg != NULL)
        snprintf(msg, msglen, "%.*s", (int)m.u.ack.message.n,
                 m.u.ack.message.p != NULL ? m.u.ack.message.p : "");
    free(payload);
    return errors;
}

/* @return 1 once the collector closed the connection (EOF or reset). */
static int
closed_by_peer(int fd)
{
    char c;

    return recv_exact(fd, &c, 1) != 0;
}

static void
put_strings(struct frame *f)
{
    uint32_t i;

    for (i = 1; i < S_COUNT; i++)
        ck_assert_int_eq(st_wire_pack_str(&f->pk, i, strings[i],
                                          strlen(strings[i])), 0);
}

static void
put_region(struct frame *f, uint32_t id, uint32_t tracer, uint32_t level,
           uint32_t mode, uint64_t max_bytes, uint32_t max_files)
{
    ck_assert_int_eq(st_wire_pack_region(&f->pk, id, tracer, D.logdir,
                                         strlen(D.logdir), level, mode,
                                         max_bytes, max_files), 0);
}

static void
put_diff(struct frame *f, const struct tvar *v)
{
    size_t n = 0, i;

    if (v == NULL) {
        ck_assert_int_eq(st_wire_pack_nil(&f->pk), 0);
        return;
    }
    while (v[n].name != 0)
        n++;
    ck_assert_int_eq(st_wire_pack_diff_begin(&f->pk, n), 0);
    for (i = 0; i < n; i++) {
        if (v[i].type == 0)
            ck_assert_int_eq(st_wire_pack_var_del(&f->pk, v[i].name), 0);
        else
            ck_assert_int_eq(st_wire_pack_var_set(&f->pk, v[i].name,
                                                  v[i].type, v[i].value,
                                                  strlen(v[i].value)), 0);
    }
}

static void
put_step(struct frame *f, uint32_t region, uint32_t frame, uint32_t line,
         uint64_t ns, const struct tvar *globals, const struct tvar *locals)
{
    ck_assert_int_eq(st_wire_pack_step_begin(&f->pk, region, frame, line, ns),
                     0);
    put_diff(f, globals);
    put_diff(f, locals);
}

/* Strings, thread 1 "MainThread", frame 1 = /abs/f.py::main in scope 1
 * and region 1 of tracer 1 with the given level and mode. */
static void
put_prologue(struct frame *f, uint32_t level, uint32_t mode)
{
    put_strings(f);
    ck_assert_int_eq(st_wire_pack_thread(&f->pk, 1, S_MAIN_THREAD), 0);
    put_region(f, 1, 1, level, mode, 0, 10);
    ck_assert_int_eq(st_wire_pack_frame(&f->pk, 1, 1, 0, S_FILE, S_MAIN, 1, 0),
                     0);
}

#define V(name, type, value) {name, type, value}
#define DEL(name) {name, 0, NULL}
#define END {0, 0, NULL}

/* The record of the SPEC example: step 1 at line 8, x = 5, y = 10. */
static const char all_step1[] =
    HEADER "1" DASHES
    "Runtime: 0.0841 ms\n"
    "/abs/f.py::main -- line 8\n"
    "\n"
    "------> Global variables <------\n"
    "x: int :: 5\n"
    "\n"
    "------> Local variables <------\n"
    "y: int :: 10\n"
    "\n";

/* A region in ALL mode whose first step is the SPEC example, sent as one
 * frame; the second step changes y only, and is shown with the full
 * state. */
static void
send_all_mode_region(int fd)
{
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(&f, 1, 1, 8, 84100, (struct tvar[]){V(S_X, S_INT, "5"), END},
             (struct tvar[]){V(S_Y, S_INT, "10"), END});
    put_step(&f, 1, 1, 9, 1000, NULL,
             (struct tvar[]){V(S_Y, S_INT, "11"), END});
    ck_assert_int_eq(st_wire_pack_region_end(&f.pk, 1), 0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
}

static const char all_region_text[] =
    HEADER "1" DASHES
    "Runtime: 0.0841 ms\n"
    "/abs/f.py::main -- line 8\n"
    "\n"
    "------> Global variables <------\n"
    "x: int :: 5\n"
    "\n"
    "------> Local variables <------\n"
    "y: int :: 10\n"
    "\n" HEADER "2" DASHES
    "Runtime: 0.0010 ms\n"
    "/abs/f.py::main -- line 9\n"
    "\n"
    "------> Global variables <------\n"
    "x: int :: 5\n"
    "\n"
    "------> Local variables <------\n"
    "y: int :: 11\n"
    "\n";

/* ---- tests: protocol basics ---- */

START_TEST(test_daemon_hello_reply)
{
    int fd = client_connect();
    char *text;

    hello(fd);
    ck_assert_uint_eq(flush_wait(fd, 42, NULL, 0), 0);
    close(fd);
    /* A shared collector says where it listens, and nothing per client. */
    text = slurp(D.err);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(strncmp(text, "steptraced: listening on ", 25), 0);
    ck_assert_ptr_eq(strchr(text, '\n'), text + strlen(text) - 1);
    free(text);
}
END_TEST

START_TEST(test_daemon_all_mode_exact_text)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(&f, 1, 1, 8, 84100, (struct tvar[]){V(S_X, S_INT, "5"), END},
             (struct tvar[]){V(S_Y, S_INT, "10"), END});
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), all_step1);
    close(fd);
}
END_TEST

START_TEST(test_daemon_all_mode_rebuilds_state)
{
    int fd = client_open();

    send_all_mode_region(fd);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), all_region_text);
    close(fd);
}
END_TEST

START_TEST(test_daemon_frame_split_in_single_bytes)
{
    int fd = client_open();
    struct frame f;
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    size_t i;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(&f, 1, 1, 8, 84100, (struct tvar[]){V(S_X, S_INT, "5"), END},
             (struct tvar[]){V(S_Y, S_INT, "10"), END});
    st_wire_put_header(hdr, (uint32_t)f.b.len);
    for (i = 0; i < sizeof(hdr); i++)
        send_all(fd, hdr + i, 1);
    for (i = 0; i < f.b.len; i++)
        send_all(fd, f.b.data + i, 1);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), all_step1);
    close(fd);
}
END_TEST

START_TEST(test_daemon_changed_mode)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_CHANGED);
    put_step(&f, 1, 1, 8, 1000, (struct tvar[]){V(S_X, S_INT, "5"), END},
             (struct tvar[]){V(S_Y, S_INT, "10"), END});
    put_step(&f, 1, 1, 9, 2000, (struct tvar[]){V(S_X, S_INT, "6"), END},
             (struct tvar[]){DEL(S_Y), V(S_Z, S_STR, "hi"), END});
    put_step(&f, 1, 1, 10, 3000, (struct tvar[]){END}, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0010 ms\n"
                   "/abs/f.py::main -- line 8\n"
                   "\n"
                   "------> Global variable changes <------\n"
                   "[NEW] x: int :: 5\n"
                   "\n"
                   "------> Local variable changes <------\n"
                   "[NEW] y: int :: 10\n"
                   "\n" HEADER "2" DASHES
                   "Runtime: 0.0020 ms\n"
                   "/abs/f.py::main -- line 9\n"
                   "\n"
                   "------> Global variable changes <------\n"
                   "[CHANGED] x: int :: 5 -> 6\n"
                   "\n"
                   "------> Local variable changes <------\n"
                   "[DELETED] y\n"
                   "[NEW] z: str :: hi\n"
                   "\n" HEADER "3" DASHES
                   "Runtime: 0.0030 ms\n"
                   "/abs/f.py::main -- line 10\n"
                   "\n");
    close(fd);
}
END_TEST

START_TEST(test_daemon_none_mode)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    /* Even diffs the agent should not send are not printed. */
    put_step(&f, 1, 1, 8, 84100, (struct tvar[]){V(S_X, S_INT, "5"), END},
             (struct tvar[]){V(S_Y, S_INT, "10"), END});
    put_step(&f, 1, 1, 9, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0841 ms\n"
                   "/abs/f.py::main -- line 8\n"
                   "\n" HEADER "2" DASHES
                   "Runtime: 0.0001 ms\n"
                   "/abs/f.py::main -- line 9\n"
                   "\n");
    close(fd);
}
END_TEST

START_TEST(test_daemon_module_frame_globals_only)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_strings(&f);
    put_region(&f, 1, 1, ST_LEVEL_INFO, ST_VARMODE_ALL, 0, 10);
    ck_assert_int_eq(st_wire_pack_frame(&f.pk, 1, 1, 0, S_FILE, S_MODULE, 1,
                                        ST_FRAME_MODULE), 0);
    put_step(&f, 1, 1, 3, 84100, (struct tvar[]){V(S_X, S_INT, "5"), END},
             NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0841 ms\n"
                   "/abs/f.py::<module> -- line 3\n"
                   "\n"
                   "------> Global variables <------\n"
                   "x: int :: 5\n"
                   "\n");
    close(fd);
}
END_TEST

START_TEST(test_daemon_debug_ancestors_and_threads)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_strings(&f);
    ck_assert_int_eq(st_wire_pack_thread(&f.pk, 1, S_MAIN_THREAD), 0);
    ck_assert_int_eq(st_wire_pack_thread(&f.pk, 2, S_WORKER), 0);
    put_region(&f, 1, 1, ST_LEVEL_DEBUG, ST_VARMODE_NONE, 0, 10);
    ck_assert_int_eq(st_wire_pack_frame(&f.pk, 1, 1, 0, S_FILE, S_OUTER, 1, 0),
                     0);
    ck_assert_int_eq(st_wire_pack_frame(&f.pk, 2, 1, 1, S_FILE, S_MAIN, 1, 0),
                     0);
    ck_assert_int_eq(st_wire_pack_frame(&f.pk, 3, 2, 0, S_FILE, S_MAIN, 1, 0),
                     0);
    put_step(&f, 1, 1, 12, 100, NULL, NULL);
    put_step(&f, 1, 2, 8, 200, NULL, NULL);
    put_step(&f, 1, 3, 20, 300, NULL, NULL);
    put_step(&f, 1, 2, 9, 400, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0001 ms\n"
                   "/abs/f.py::outer -- line 12\n"
                   "\n" HEADER "2" DASHES
                   "Runtime: 0.0002 ms\n"
                   "/abs/f.py::outer -- line 12\n"
                   "/abs/f.py::main -- line 8\n"
                   "\n" HEADER "3" DASHES
                   "Runtime: 0.0003 ms | thread Worker\n"
                   "/abs/f.py::main -- line 20\n"
                   "\n" HEADER "4" DASHES
                   "Runtime: 0.0004 ms | thread MainThread\n"
                   "/abs/f.py::outer -- line 12\n"
                   "/abs/f.py::main -- line 9\n"
                   "\n");
    close(fd);
}
END_TEST

START_TEST(test_daemon_values_escaped_one_line)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(&f, 1, 1, 8, 84100, NULL,
             (struct tvar[]){V(S_Y, S_STR, "a\nb\tc\x01"), END});
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0841 ms\n"
                   "/abs/f.py::main -- line 8\n"
                   "\n"
                   "------> Local variables <------\n"
                   "y: str :: a\\nb\\tc\\x01\n"
                   "\n");
    close(fd);
}
END_TEST

START_TEST(test_daemon_large_value)
{
    size_t n = 3u * 1024 * 1024, i;
    char *big = malloc(n + 1);
    char *text;
    int fd = client_open();
    struct frame f;

    ck_assert_ptr_nonnull(big);
    for (i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(&f, 1, 1, 8, 84100, NULL,
             (struct tvar[]){V(S_Y, S_STR, big), END});
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    text = slurp(in_dir(D.logdir, "tracer.log"));
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "y: str :: abcdefghij"));
    ck_assert_uint_eq(strlen(text), strlen(HEADER "1" DASHES
                                           "Runtime: 0.0841 ms\n"
                                           "/abs/f.py::main -- line 8\n\n"
                                           "------> Local variables <------\n"
                                           "y: str :: \n\n") + n);
    free(text);
    free(big);
    close(fd);
}
END_TEST

/* ---- tests: files ---- */

START_TEST(test_daemon_second_tracer_gets_tracer_1)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_region(&f, 2, 2, ST_LEVEL_INFO, ST_VARMODE_NONE, 0, 10);
    put_step(&f, 1, 1, 8, 84100, (struct tvar[]){V(S_X, S_INT, "5"), END},
             (struct tvar[]){V(S_Y, S_INT, "10"), END});
    put_step(&f, 2, 1, 9, 100, NULL, NULL);
    ck_assert_int_eq(st_wire_pack_region_end(&f.pk, 1), 0);
    /* A later region of tracer 1 appends, counting from Step 1 again. */
    put_region(&f, 3, 1, ST_LEVEL_INFO, ST_VARMODE_NONE, 0, 10);
    put_step(&f, 3, 1, 10, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0841 ms\n"
                   "/abs/f.py::main -- line 8\n"
                   "\n"
                   "------> Global variables <------\n"
                   "x: int :: 5\n"
                   "\n"
                   "------> Local variables <------\n"
                   "y: int :: 10\n"
                   "\n" HEADER "1" DASHES
                   "Runtime: 0.0001 ms\n"
                   "/abs/f.py::main -- line 10\n"
                   "\n");
    assert_file_eq(in_dir(D.logdir, "tracer_1.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0001 ms\n"
                   "/abs/f.py::main -- line 9\n"
                   "\n");
    assert_missing(in_dir(D.logdir, "tracer_2.log"));
    close(fd);
}
END_TEST

START_TEST(test_daemon_two_connections_own_files)
{
    int a = client_open();
    int b = client_open();
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    frame_send(a, &f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    frame_send(b, &f);
    put_step(&f, 1, 1, 1, 100, NULL, NULL);
    frame_send(a, &f);
    ck_assert_uint_eq(flush_wait(a, 1, NULL, 0), 0);
    put_step(&f, 1, 1, 2, 200, NULL, NULL);
    frame_send(b, &f);
    ck_assert_uint_eq(flush_wait(b, 1, NULL, 0), 0);
    put_step(&f, 1, 1, 3, 300, NULL, NULL);
    frame_send(a, &f);
    ck_assert_uint_eq(flush_wait(a, 2, NULL, 0), 0);
    st_buf_close(&f.b);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0001 ms\n"
                   "/abs/f.py::main -- line 1\n"
                   "\n" HEADER "2" DASHES
                   "Runtime: 0.0003 ms\n"
                   "/abs/f.py::main -- line 3\n"
                   "\n");
    assert_file_eq(in_dir(D.logdir, "tracer_1.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0002 ms\n"
                   "/abs/f.py::main -- line 2\n"
                   "\n");
    close(a);
    close(b);
}
END_TEST

START_TEST(test_daemon_lost_summary_line)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_step(&f, 1, 1, 1, 100, NULL, NULL);
    ck_assert_int_eq(st_wire_pack_lost(&f.pk, 1, 3), 0);
    ck_assert_int_eq(st_wire_pack_lost(&f.pk, 1, 2), 0);
    ck_assert_int_eq(st_wire_pack_region_end(&f.pk, 1), 0);
    /* No line for a region that lost nothing. */
    put_region(&f, 2, 1, ST_LEVEL_INFO, ST_VARMODE_NONE, 0, 10);
    put_step(&f, 2, 1, 2, 100, NULL, NULL);
    ck_assert_int_eq(st_wire_pack_region_end(&f.pk, 2), 0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "1" DASHES
                   "Runtime: 0.0001 ms\n"
                   "/abs/f.py::main -- line 1\n"
                   "\n"
                   "[steptrace] 5 records lost in this region\n"
                   HEADER "1" DASHES
                   "Runtime: 0.0001 ms\n"
                   "/abs/f.py::main -- line 2\n"
                   "\n");
    close(fd);
}
END_TEST

/* Records at lines 1, 2, 3 in NONE mode have the same length. */
static const char *const rot_records[] = {
    HEADER "1" DASHES "Runtime: 0.0001 ms\n/abs/f.py::main -- line 1\n\n",
    HEADER "2" DASHES "Runtime: 0.0001 ms\n/abs/f.py::main -- line 2\n\n",
    HEADER "3" DASHES "Runtime: 0.0001 ms\n/abs/f.py::main -- line 3\n\n",
};

static void
send_rotating_region(int fd, uint64_t max, uint32_t max_files)
{
    struct frame f;

    frame_init(&f);
    put_strings(&f);
    put_region(&f, 1, 1, ST_LEVEL_INFO, ST_VARMODE_NONE, max, max_files);
    ck_assert_int_eq(st_wire_pack_frame(&f.pk, 1, 1, 0, S_FILE, S_MAIN, 1, 0),
                     0);
    put_step(&f, 1, 1, 1, 100, NULL, NULL);
    put_step(&f, 1, 1, 2, 100, NULL, NULL);
    put_step(&f, 1, 1, 3, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
}

START_TEST(test_daemon_rotation_whole_records)
{
    int fd = client_open();

    send_rotating_region(fd, strlen(rot_records[0]) * 3 / 2, 5);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), rot_records[2]);
    assert_file_eq(in_dir(D.logdir, "tracer.log.1"), rot_records[1]);
    assert_file_eq(in_dir(D.logdir, "tracer.log.2"), rot_records[0]);
    assert_missing(in_dir(D.logdir, "tracer.log.3"));
    close(fd);
}
END_TEST

START_TEST(test_daemon_rotation_keeps_max_files)
{
    int fd = client_open();

    send_rotating_region(fd, strlen(rot_records[0]) * 3 / 2, 1);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), rot_records[2]);
    assert_file_eq(in_dir(D.logdir, "tracer.log.1"), rot_records[1]);
    assert_missing(in_dir(D.logdir, "tracer.log.2"));
    close(fd);
}
END_TEST

START_TEST(test_daemon_rotation_oversized_records)
{
    int fd = client_open();

    /* Every record is larger than the limit: each gets a file of its own,
     * and no empty file is ever rotated. */
    send_rotating_region(fd, 10, 5);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), rot_records[2]);
    assert_file_eq(in_dir(D.logdir, "tracer.log.1"), rot_records[1]);
    assert_file_eq(in_dir(D.logdir, "tracer.log.2"), rot_records[0]);
    assert_missing(in_dir(D.logdir, "tracer.log.3"));
    close(fd);
}
END_TEST

START_TEST(test_daemon_unwritable_dir_reported_in_ack)
{
    char msg[512], expect[PATH_MAX + 64];
    int fd, created;
    struct frame f;

    /* A regular file where a directory should be: mkdir fails even for
     * root, which ignores permission bits. */
    created = open(in_dir(D.dir, "afile"), O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(created, 0);
    close(created);
    xsnprintf(D.logdir, "%s/afile/.tracer", D.dir);
    fd = client_open();
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_step(&f, 1, 1, 1, 100, NULL, NULL);
    frame_send(fd, &f);
    ck_assert_uint_eq(flush_wait(fd, 1, msg, sizeof(msg)), 1);
    snprintf(expect, sizeof(expect),
             "cannot create log directory %s: Not a directory", D.logdir);
    ck_assert_str_eq(msg, expect);
    /* Counted once, then the count starts again from zero. */
    ck_assert_uint_eq(flush_wait(fd, 2, msg, sizeof(msg)), 0);
    ck_assert_str_eq(msg, "");
    /* The connection goes on: a good directory for another tracer. */
    xsnprintf(D.logdir, "%s/.tracer", D.dir);
    put_region(&f, 2, 2, ST_LEVEL_INFO, ST_VARMODE_NONE, 0, 10);
    put_step(&f, 2, 1, 1, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 3, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), rot_records[0]);
    close(fd);
}
END_TEST

/* Waits until daemon.err contains `needle` (the collector logs the
 * handling of a signal; this is how the test knows it happened). */
static void
wait_log(const char *needle)
{
    int i;

    for (i = 0; i < WAIT_MS / 10; i++) {
        char *text = slurp(D.err);
        int found = text != NULL && strstr(text, needle) != NULL;

        free(text);
        if (found)
            return;
        usleep(10000);
    }
    ck_abort_msg("steptraced never logged \"%s\"", needle);
}

START_TEST(test_daemon_sighup_reopens)
{
    int fd = client_open();
    char moved[PATH_MAX];
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_step(&f, 1, 1, 1, 100, NULL, NULL);
    frame_send(fd, &f);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    xsnprintf(moved, "%s", in_dir(D.logdir, "moved.log"));
    ck_assert_int_eq(rename(in_dir(D.logdir, "tracer.log"), moved), 0);
    ck_assert_int_eq(kill(D.pid, SIGHUP), 0);
    wait_log("SIGHUP");
    put_step(&f, 1, 1, 3, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 2, NULL, 0), 0);
    assert_file_eq(moved, rot_records[0]);
    assert_file_eq(in_dir(D.logdir, "tracer.log"),
                   HEADER "2" DASHES
                   "Runtime: 0.0001 ms\n/abs/f.py::main -- line 3\n\n");
    close(fd);
}
END_TEST

/* ---- tests: hostile peers ---- */

/* After a bad peer, a new client is served in full. */
static void
assert_still_serving(void)
{
    int fd = client_open();

    send_all_mode_region(fd);
    ck_assert_uint_eq(flush_wait(fd, 9, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), all_region_text);
    close(fd);
}

static void
assert_logged_protocol_error(void)
{
    char *text = slurp(D.err);

    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "steptraced: protocol error from pid"));
    free(text);
}

START_TEST(test_daemon_huge_frame_header_closes)
{
    static const unsigned char hdr[] = {0xff, 0xff, 0xff, 0xff};
    int fd = client_open();

    send_all(fd, hdr, sizeof(hdr));
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_logged_protocol_error();
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_frame_just_over_limit_closes)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    int fd = client_open();

    st_wire_put_header(hdr, ST_WIRE_MAX_FRAME + 1);
    send_all(fd, hdr, sizeof(hdr));
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_zero_frame_header_closes)
{
    static const unsigned char hdr[] = {0, 0, 0, 0};
    int fd = client_connect();

    send_all(fd, hdr, sizeof(hdr));
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_array32_bomb_closes)
{
    static const unsigned char bomb[] = {0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff,
                                         0xff};
    int fd = client_open();

    send_all(fd, bomb, sizeof(bomb));
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_logged_protocol_error();
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_random_garbage_closes)
{
    struct test_rng rng;
    unsigned char buf[4 + 512];
    int round;

    test_rng_seed(&rng, 0x5eed + (unsigned long long)_i);
    for (round = 0; round < 2; round++) {
        /* Round 0 before HELLO, round 1 after: a valid header, then
         * noise (never a valid HELLO, so it closes either way). */
        int fd = round == 0 ? client_connect() : client_open();
        size_t i;

        st_wire_put_header(buf, sizeof(buf) - 4);
        for (i = 4; i < sizeof(buf); i++)
            buf[i] = (unsigned char)test_rng_below(&rng, 256);
        send_all(fd, buf, sizeof(buf));
        ck_assert(closed_by_peer(fd));
        close(fd);
    }
    assert_still_serving();
}
END_TEST

/* Each message below is valid msgpack but breaks the protocol. */
static void
send_bad_after_hello(void (*put)(struct frame *))
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put(&f);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_logged_protocol_error();
}

static void
bad_step_unknown_region(struct frame *f)
{
    put_prologue(f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(f, 7, 1, 1, 100, NULL, NULL);
}

static void
bad_step_unknown_frame(struct frame *f)
{
    put_prologue(f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(f, 1, 7, 1, 100, NULL, NULL);
}

static void
bad_undefined_string(struct frame *f)
{
    put_prologue(f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(f, 1, 1, 1, 100, (struct tvar[]){V(999, S_INT, "1"), END}, NULL);
}

static void
bad_second_hello(struct frame *f)
{
    ck_assert_int_eq(st_wire_pack_hello(&f->pk, 1, "again", 5), 0);
}

static void
bad_huge_ids(struct frame *f)
{
    /* Ids are looked up, never used to size anything. */
    ck_assert_int_eq(st_wire_pack_str(&f->pk, 4000000000u, "x", 1), 0);
    ck_assert_int_eq(st_wire_pack_frame_end(&f->pk, 4000000000u), 0);
}

static void
bad_ack_from_agent(struct frame *f)
{
    ck_assert_int_eq(st_wire_pack_ack(&f->pk, 1, 0, NULL, 0), 0);
}

START_TEST(test_daemon_protocol_errors_close_connection)
{
    send_bad_after_hello(bad_step_unknown_region);
    send_bad_after_hello(bad_step_unknown_frame);
    send_bad_after_hello(bad_undefined_string);
    send_bad_after_hello(bad_second_hello);
    send_bad_after_hello(bad_huge_ids);
    send_bad_after_hello(bad_ack_from_agent);
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_first_message_must_be_hello)
{
    int fd = client_connect();
    struct frame f;

    frame_init(&f);
    put_strings(&f);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_logged_protocol_error();
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_wrong_version_closes)
{
    int fd = client_connect();
    struct frame f;

    /* HELLO by hand: the encoder always writes ST_WIRE_VERSION. */
    frame_init(&f);
    ck_assert_int_eq(msgpack_pack_array(&f.pk, 4), 0);
    ck_assert_int_eq(msgpack_pack_uint8(&f.pk, ST_MSG_HELLO), 0);
    ck_assert_int_eq(msgpack_pack_uint32(&f.pk, ST_WIRE_VERSION + 1), 0);
    ck_assert_int_eq(msgpack_pack_uint64(&f.pk, 1), 0);
    ck_assert_int_eq(msgpack_pack_str(&f.pk, 1), 0);
    ck_assert_int_eq(msgpack_pack_str_body(&f.pk, "p", 1), 0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_truncated_frame_at_eof)
{
    static const unsigned char part[] = {0, 0, 1, 0, 0x93};
    int fd = client_open();

    send_all(fd, part, sizeof(part));
    shutdown(fd, SHUT_WR);
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_still_serving();
}
END_TEST

/* Sends `n` FLUSH messages (tokens 1..n) without reading any ACK.
 * @return 0, or -1 once the collector closed the connection. */
static int
send_flushes(int fd, uint32_t n)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct frame f;
    uint32_t i;
    int r = 0;

    frame_init(&f);
    for (i = 1; i <= n && r == 0; i++) {
        ck_assert_int_eq(st_wire_pack_flush(&f.pk, i), 0);
        if (f.b.len < 60000 && i < n)
            continue;
        st_wire_put_header(hdr, (uint32_t)f.b.len);
        if (send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) != sizeof(hdr) ||
            send(fd, f.b.data, f.b.len, MSG_NOSIGNAL) != (ssize_t)f.b.len)
            r = -1;
        f.b.len = 0;
    }
    st_buf_close(&f.b);
    return r;
}

START_TEST(test_daemon_half_close_still_gets_ack)
{
    int fd = client_open();
    struct frame f;
    struct st_msg m;
    char *payload;

    frame_init(&f);
    ck_assert_int_eq(st_wire_pack_flush(&f.pk, 5), 0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    recv_msg(fd, &m, &payload);
    ck_assert_int_eq(m.type, ST_MSG_ACK);
    ck_assert_uint_eq(m.u.ack.token, 5);
    free(payload);
    ck_assert(closed_by_peer(fd));
    close(fd);
}
END_TEST

START_TEST(test_daemon_peer_not_reading_replies)
{
    const uint32_t n = 200000;
    uint64_t got = 0;
    char buf[65536];
    int fd = client_open();
    int fd2 = client_open();

    /* Far more ACKs than the socket and the reply cap hold: the
     * collector gives up on this peer instead of queueing them all. */
    (void)send_flushes(fd, n);
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t r;

        ck_assert_int_eq(poll(&pfd, 1, WAIT_MS), 1);
        r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0)
            break;
        got += (uint64_t)r;
    }
    ck_assert_uint_lt(got, (uint64_t)n * 8);
    close(fd);
    /* A half-closed peer with ACKs queued that it never reads: the
     * graceful close waits for it, SIGTERM must not (teardown checks
     * the exit status). */
    ck_assert_int_eq(send_flushes(fd2, 20000), 0);
    ck_assert_int_eq(shutdown(fd2, SHUT_WR), 0);
    assert_still_serving();
    ck_assert_int_eq(daemon_stop(), 0);
    close(fd2);
}
END_TEST

/* ---- tests: lifecycle ---- */

START_TEST(test_daemon_sigterm_exits_zero_removes_socket)
{
    int fd = client_open();
    struct frame f;

    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_step(&f, 1, 1, 1, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    ck_assert_int_eq(daemon_stop(), 0);
    assert_missing(D.sock);
    ck_assert(closed_by_peer(fd));
    close(fd);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), rot_records[0]);
}
END_TEST

START_TEST(test_daemon_idle_exit_flushes_on_disconnect)
{
    static const char *const args[] = {"--idle-exit", "2", "--private",
                                       NULL};
    char sockdir[PATH_MAX];
    int fd;
    struct frame f;

    /* --private removes the socket's directory: give it its own. */
    xsnprintf(sockdir, "%s/run", D.dir);
    xsnprintf(D.sock, "%s/s.sock", sockdir);
    ck_assert_int_eq(daemon_spawn((const char *const *)args), 0);
    fd = client_open();
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_step(&f, 1, 1, 1, 100, NULL, NULL);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    /* No FLUSH: closing the connection writes the file, and only after
     * the last client is gone does the idle countdown start. */
    close(fd);
    ck_assert_int_eq(wait_exit(D.pid), 0);
    D.pid = 0;
    assert_missing(D.sock);
    assert_missing(sockdir);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), rot_records[0]);
    /* A private collector shares the traced program's stderr: nothing
     * on the normal path. */
    assert_file_eq(D.err, "");
}
END_TEST

START_TEST(test_daemon_second_instance_refused)
{
    const char *const args[] = {"--socket", D.sock, NULL};

    ck_assert_int_eq(run_steptraced(args, NULL), 1);
    ck_assert_int_eq(access(D.sock, F_OK), 0);
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_regular_file_not_deleted)
{
    const char *const args[] = {"--socket", D.sock, NULL};
    int fd = open(D.sock, O_WRONLY | O_CREAT | O_EXCL, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "keep", 4), 4);
    close(fd);
    ck_assert_int_eq(run_steptraced(args, NULL), 1);
    assert_file_eq(D.sock, "keep");
}
END_TEST

START_TEST(test_daemon_stale_socket_reclaimed)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    /* A socket file nobody listens on, as a killed collector leaves. */
    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    xsnprintf(sa.sun_path, "%s", D.sock);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    ck_assert_int_eq(daemon_spawn(NULL), 0);
    assert_still_serving();
}
END_TEST

START_TEST(test_daemon_cli_usage_errors)
{
    static const char *const bad_option[] = {"--bogus", NULL};
    static const char *const no_value[] = {"--socket", NULL};
    static const char *const bad_fd[] = {"--ready-fd", "x", NULL};
    static const char *const bad_idle[] = {"--idle-exit", "-1", NULL};
    static const char *const extra[] = {"stray", NULL};
    const char *long_path[] = {"--socket", NULL, NULL};
    char path[300];
    char *text;

    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    long_path[1] = path;
    ck_assert_int_eq(run_steptraced(bad_option, NULL), 2);
    ck_assert_int_eq(run_steptraced(no_value, NULL), 2);
    ck_assert_int_eq(run_steptraced(bad_fd, NULL), 2);
    ck_assert_int_eq(run_steptraced(bad_idle, NULL), 2);
    ck_assert_int_eq(run_steptraced(extra, NULL), 2);
    ck_assert_int_eq(run_steptraced(long_path, NULL), 2);
    /* One line each. */
    text = slurp(D.err);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "--bogus"));
    ck_assert_ptr_nonnull(strstr(text, "limit is 107"));
    free(text);
}
END_TEST

START_TEST(test_daemon_cli_help_version)
{
    static const char *const help[] = {"--help", NULL};
    static const char *const version[] = {"--version", NULL};
    char out[PATH_MAX];
    char *text;

    xsnprintf(out, "%s/out", D.dir);
    ck_assert_int_eq(run_steptraced(help, out), 0);
    text = slurp(out);
    ck_assert_ptr_nonnull(strstr(text, "--socket"));
    free(text);
    ck_assert_int_eq(run_steptraced(version, out), 0);
    text = slurp(out);
    ck_assert_int_eq(strncmp(text, "steptraced ", 11), 0);
    free(text);
}
END_TEST

static void
add_test(Suite *s, const char *name, const TTest *test, int running)
{
    TCase *tc = tcase_create(name);

    if (running)
        tcase_add_checked_fixture(tc, running_setup, fixture_teardown);
    else
        tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

Suite *
daemon_suite(void)
{
    const char *path = steptraced_path();
    Suite *s;

    if (path == NULL || path[0] != '/' || access(path, X_OK) != 0) {
        fprintf(stderr, "test-daemon: set STEPTRACED to the absolute path "
                "of the steptraced binary; skipping\n");
        exit(77);
    }
    s = suite_create("daemon");
    add_test(s, "hello", test_daemon_hello_reply, 1);
    add_test(s, "all", test_daemon_all_mode_exact_text, 1);
    add_test(s, "all-state", test_daemon_all_mode_rebuilds_state, 1);
    add_test(s, "split", test_daemon_frame_split_in_single_bytes, 1);
    add_test(s, "changed", test_daemon_changed_mode, 1);
    add_test(s, "none", test_daemon_none_mode, 1);
    add_test(s, "module", test_daemon_module_frame_globals_only, 1);
    add_test(s, "debug", test_daemon_debug_ancestors_and_threads, 1);
    add_test(s, "escape", test_daemon_values_escaped_one_line, 1);
    add_test(s, "large", test_daemon_large_value, 1);
    add_test(s, "tracer_1", test_daemon_second_tracer_gets_tracer_1, 1);
    add_test(s, "two-conns", test_daemon_two_connections_own_files, 1);
    add_test(s, "lost", test_daemon_lost_summary_line, 1);
    add_test(s, "rotate", test_daemon_rotation_whole_records, 1);
    add_test(s, "rotate-max", test_daemon_rotation_keeps_max_files, 1);
    add_test(s, "rotate-big", test_daemon_rotation_oversized_records, 1);
    add_test(s, "unwritable", test_daemon_unwritable_dir_reported_in_ack, 1);
    add_test(s, "sighup", test_daemon_sighup_reopens, 1);
    add_test(s, "huge-header", test_daemon_huge_frame_header_closes, 1);
    add_test(s, "over-limit", test_daemon_frame_just_over_limit_closes, 1);
    add_test(s, "zero-header", test_daemon_zero_frame_header_closes, 1);
    add_test(s, "array32", test_daemon_array32_bomb_closes, 1);
    add_test(s, "garbage", test_daemon_random_garbage_closes, 1);
    add_test(s, "protocol", test_daemon_protocol_errors_close_connection, 1);
    add_test(s, "first-hello", test_daemon_first_message_must_be_hello, 1);
    add_test(s, "version", test_daemon_wrong_version_closes, 1);
    add_test(s, "truncated", test_daemon_truncated_frame_at_eof, 1);
    add_test(s, "half-close", test_daemon_half_close_still_gets_ack, 1);
    add_test(s, "not-reading", test_daemon_peer_not_reading_replies, 1);
    add_test(s, "sigterm", test_daemon_sigterm_exits_zero_removes_socket, 1);
    add_test(s, "idle-exit", test_daemon_idle_exit_flushes_on_disconnect, 0);
    add_test(s, "second", test_daemon_second_instance_refused, 1);
    add_test(s, "regular-file", test_daemon_regular_file_not_deleted, 0);
    add_test(s, "stale", test_daemon_stale_socket_reclaimed, 0);
    add_test(s, "cli-errors", test_daemon_cli_usage_errors, 0);
    add_test(s, "cli-help", test_daemon_cli_help_version, 0);
    return s;
}
