/*
 * Helpers of the daemon tests; see test-daemon-util.h.
 */
#include "test-daemon-util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct daemon_fixture D;

const char *const strings[S_COUNT] = {
    NULL,         "/abs/f.py", "main", "x",     "int",    "y",
    "MainThread", "str",       "z",    "outer", "Worker", "<module>",
};

/* ---- the collector process ---- */

const char *
steptraced_path(void)
{
    return getenv("STEPTRACED");
}

/* Starts steptraced with the ready pipe plus `extra` arguments (NULL
 * terminated) and waits for "ready\n".  @return 0, or -1 if the collector
 * exited or never got ready (it is then reaped). */
int
daemon_spawn(const char *const *extra)
{
    return daemon_spawn_opts(extra, 1);
}

int
daemon_spawn_opts(const char *const *extra, int with_socket)
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
        if (with_socket) {
            argv[argc++] = "--socket";
            argv[argc++] = D.sock;
        }
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
int
wait_exit(pid_t pid)
{
    int status;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Stops the collector with SIGTERM; @return its exit status. */
int
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
int
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

void
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

void
fixture_teardown(void)
{
    if (D.pid > 0)
        ck_assert_int_eq(daemon_stop(), 0);
    /* ST_TEST_KEEP=1 keeps the test's directory (collector log, files)
     * for a look after a failure. */
    if (getenv("ST_TEST_KEEP") == NULL)
        nftw(D.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "kept %s\n", D.dir);
}

/* Setup of the tests that need a running collector. */
void
running_setup(void)
{
    fixture_setup();
    ck_assert_int_eq(daemon_spawn(NULL), 0);
}

void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- files ---- */

/* @return the file's bytes (NUL added), or NULL if it does not exist. */
char *
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

const char *
in_dir(const char *dir, const char *name)
{
    static char path[PATH_MAX];

    xsnprintf(path, "%s/%s", dir, name);
    return path;
}

void
assert_file_eq(const char *path, const char *expected)
{
    char *text = slurp(path);

    ck_assert_msg(text != NULL, "%s does not exist", path);
    ck_assert_str_eq(text, expected);
    free(text);
}

void
assert_missing(const char *path)
{
    ck_assert_msg(access(path, F_OK) != 0, "%s exists", path);
}

void
wait_file_eq(const char *path, const char *expected)
{
    int i;

    for (i = 0; i < WAIT_MS / 5; i++) {
        char *text = slurp(path);
        int same = text != NULL && strcmp(text, expected) == 0;

        free(text);
        if (same)
            break;
        sleep_ms(5);
    }
    assert_file_eq(path, expected);
}

/* ---- client side of the protocol ---- */

void
frame_init(struct frame *f)
{
    st_buf_init(&f->b);
    msgpack_packer_init(&f->pk, &f->b, st_buf_msgpack_write);
}

int
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

void
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
void
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
int
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
void
recv_msg(int fd, struct st_msg *m, char **payload)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct st_wire_decoder dec;
    int64_t len;

    for (;;) {
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
        if (m->type != ST_MSG_FILE)
            return;
        /* The file a tracer's records go to: kept for the test to see. */
        snprintf(last_file, sizeof(last_file), "%.*s", (int)m->u.file.path.n,
                 m->u.file.path.p);
        last_file_tracer = m->u.file.tracer_id;
        free(*payload);
    }
}

/* Sends HELLO and checks the collector's answer. */
void
hello(int fd)
{
    struct frame f;
    struct st_msg m;
    char *payload;

    frame_init(&f);
    ck_assert_int_eq(st_wire_pack_hello(&f.pk, (uint64_t)getpid(), "test", 4,
                                        0, 0),
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
int
client_open(void)
{
    int fd = client_connect();

    hello(fd);
    return fd;
}

char last_file[4096];
uint32_t last_file_tracer;

/*
 * Sends FLUSH and waits for its ACK: everything sent before is then in
 * the files.  @return the ACK's error count; its message is copied to
 * msg (if not NULL, "" when there is none).
 */
uint64_t
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
int
closed_by_peer(int fd)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct st_wire_decoder dec;
    struct st_msg m;
    char *payload;
    int64_t len;
    int r;

    /* FILE messages the test did not wait for may come first. */
    for (;;) {
        if (recv_exact(fd, hdr, sizeof(hdr)) != 0)
            return 1;
        len = st_wire_frame_len(hdr, 0);
        if (len <= 0 || (payload = malloc((size_t)len)) == NULL)
            return 0;
        if (recv_exact(fd, payload, (size_t)len) != 0) {
            free(payload);
            return 1;
        }
        st_wire_decoder_init(&dec);
        st_wire_decoder_reset(&dec, payload, (size_t)len);
        r = st_wire_decode_next(&dec, &m);
        st_wire_decoder_close(&dec);
        free(payload);
        if (r != 1 || m.type != ST_MSG_FILE)
            return 0;
    }
}

void
put_strings(struct frame *f)
{
    uint32_t i;

    for (i = 1; i < S_COUNT; i++)
        ck_assert_int_eq(st_wire_pack_str(&f->pk, i, strings[i],
                                          strlen(strings[i])),
                         0);
}

void
put_region(struct frame *f, uint32_t id, uint32_t tracer, uint32_t level,
           uint32_t mode, uint64_t max_bytes, uint32_t max_files)
{
    ck_assert_int_eq(st_wire_pack_region(&f->pk, id, tracer, D.logdir,
                                         strlen(D.logdir), level, mode,
                                         max_bytes, max_files, ST_FORMAT_TEXT),
                     0);
}

void
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
            ck_assert_int_eq(st_wire_pack_var_set(&f->pk, v[i].name, v[i].type,
                                                  v[i].value,
                                                  strlen(v[i].value)),
                             0);
    }
}

void
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
void
put_prologue(struct frame *f, uint32_t level, uint32_t mode)
{
    put_strings(f);
    ck_assert_int_eq(st_wire_pack_thread(&f->pk, 1, S_MAIN_THREAD), 0);
    put_region(f, 1, 1, level, mode, 0, 10);
    ck_assert_int_eq(st_wire_pack_frame(&f->pk, 1, 1, 0, S_FILE, S_MAIN, 1, 0,
                                        1),
                     0);
}

/* The record of the example of docs/LOG-FORMAT.md section 2: step 1 at
 * line 8, x = 5, y = 10. */
const char all_step1[] = HEADER "1" DASHES "Runtime: 0.0841 ms\n"
                                "/abs/f.py::main -- line 8\n"
                                "\n"
                                "------> Global variables <------\n"
                                "x: int :: 5\n"
                                "\n"
                                "------> Local variables <------\n"
                                "y: int :: 10\n"
                                "\n";

/* A region in ALL mode whose first step is the example of
 * docs/LOG-FORMAT.md section 2; the second step changes y only, and is
 * shown with the full state. */
void
put_all_mode_region(struct frame *f)
{
    put_prologue(f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(f, 1, 1, 8, 84100, (struct tvar[]){V(S_X, S_INT, "5"), END},
             (struct tvar[]){V(S_Y, S_INT, "10"), END});
    put_step(f, 1, 1, 9, 1000, NULL,
             (struct tvar[]){V(S_Y, S_INT, "11"), END});
    ck_assert_int_eq(st_wire_pack_region_end(&f->pk, 1), 0);
}

/* put_all_mode_region(), sent as one frame. */
void
send_all_mode_region(int fd)
{
    struct frame f;

    frame_init(&f);
    put_all_mode_region(&f);
    frame_send(fd, &f);
    st_buf_close(&f.b);
}

const char all_region_text[] = HEADER "1" DASHES "Runtime: 0.0841 ms\n"
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

/* Records at lines 1, 2, 3 in NONE mode have the same length. */
const char *const rot_records[] = {
    HEADER "1" DASHES "Runtime: 0.0001 ms\n/abs/f.py::main -- line 1\n\n",
    HEADER "2" DASHES "Runtime: 0.0001 ms\n/abs/f.py::main -- line 2\n\n",
    HEADER "3" DASHES "Runtime: 0.0001 ms\n/abs/f.py::main -- line 3\n\n",
};

/* After a bad peer, a new client is served in full. */
void
assert_still_serving(void)
{
    int fd = client_open();

    send_all_mode_region(fd);
    ck_assert_uint_eq(flush_wait(fd, 9, NULL, 0), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), all_region_text);
    close(fd);
}

void
assert_logged_protocol_error(void)
{
    char *text = slurp(D.err);

    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "steptraced: protocol error from pid"));
    free(text);
}

void
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

uint64_t
status_counter(const char *name)
{
    int fd = client_open();
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct st_wire_decoder dec;
    struct frame f;
    struct st_msg m;
    char *payload;
    uint64_t v = 0;
    int64_t len;
    size_t i;
    int found = 0;

    frame_init(&f);
    ck_assert_int_eq(st_wire_pack_status(&f.pk, 77), 0);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    /* Not recv_msg(): the counters live in the decoder's scratch. */
    ck_assert_int_eq(recv_exact(fd, hdr, sizeof(hdr)), 0);
    len = st_wire_frame_len(hdr, 0);
    ck_assert_int_gt(len, 0);
    payload = malloc((size_t)len);
    ck_assert_int_eq(recv_exact(fd, payload, (size_t)len), 0);
    ck_assert_int_eq(st_wire_validate_messages(payload, (size_t)len), 1);
    st_wire_decoder_init(&dec);
    st_wire_decoder_reset(&dec, payload, (size_t)len);
    ck_assert_int_eq(st_wire_decode_next(&dec, &m), 1);
    ck_assert_int_eq(m.type, ST_MSG_STATS);
    ck_assert_uint_eq(m.u.stats.token, 77);
    for (i = 0; i < m.u.stats.ncounters; i++) {
        const struct st_str *n = &m.u.stats.counters[i].name;

        if (n->n == strlen(name) && memcmp(n->p, name, n->n) == 0) {
            v = m.u.stats.counters[i].value;
            found = 1;
        }
    }
    st_wire_decoder_close(&dec);
    free(payload);
    close(fd);
    ck_assert_msg(found, "no counter %s in STATS", name);
    return v;
}

uint64_t
wait_counter(const char *name, uint64_t want)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < WAIT_MS / 20; i++) {
        v = status_counter(name);
        if (v >= want)
            break;
        sleep_ms(20);
    }
    return v;
}

/* ---- client side of a ring ---- */

/* Receives the 4-byte header of the HELLO reply and the two descriptors
 * that come with it (SCM_RIGHTS): fds[0] the memfd, fds[1] the eventfd.
 * @return the payload's length. */
static size_t
ring_recv_fds(int fd, int fds[2])
{
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct iovec iov = {hdr, sizeof(hdr)};
    struct pollfd pfd = {fd, POLLIN, 0};
    struct msghdr mh;
    struct cmsghdr *cm;
    int64_t len;

    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    ck_assert_msg(poll(&pfd, 1, WAIT_MS) == 1, "no reply from steptraced");
    ck_assert_int_eq(recvmsg(fd, &mh, MSG_CMSG_CLOEXEC), (ssize_t)sizeof(hdr));
    ck_assert_int_eq(mh.msg_flags & MSG_CTRUNC, 0);
    cm = CMSG_FIRSTHDR(&mh);
    ck_assert_msg(cm != NULL, "the HELLO reply carries no descriptors");
    ck_assert_int_eq(cm->cmsg_level, SOL_SOCKET);
    ck_assert_int_eq(cm->cmsg_type, SCM_RIGHTS);
    ck_assert_uint_eq(cm->cmsg_len, CMSG_LEN(2 * sizeof(int)));
    memcpy(fds, CMSG_DATA(cm), 2 * sizeof(int));
    ck_assert_ptr_null(CMSG_NXTHDR(&mh, cm));
    len = st_wire_frame_len(hdr, 0);
    ck_assert_int_gt(len, 0);
    return (size_t)len;
}

/* The rest of the HELLO reply: [1, version, pid, "steptraced", size].
 * @return the ring size it grants. */
static uint64_t
ring_recv_hello(int fd, size_t len)
{
    struct st_wire_decoder dec;
    struct st_msg m;
    char *payload = malloc(len);
    uint64_t size;

    ck_assert_ptr_nonnull(payload);
    ck_assert_int_eq(recv_exact(fd, payload, len), 0);
    ck_assert_int_eq(st_wire_validate_messages(payload, len), 1);
    st_wire_decoder_init(&dec);
    st_wire_decoder_reset(&dec, payload, len);
    ck_assert_int_eq(st_wire_decode_next(&dec, &m), 1);
    ck_assert_int_eq(m.type, ST_MSG_HELLO);
    ck_assert_uint_eq(m.u.hello.version, ST_WIRE_VERSION);
    ck_assert_uint_eq(m.u.hello.pid, (uint64_t)D.pid);
    ck_assert_uint_eq(m.u.hello.program.n, 10);
    ck_assert_int_eq(memcmp(m.u.hello.program.p, "steptraced", 10), 0);
    size = m.u.hello.ring_bytes;
    st_wire_decoder_close(&dec);
    free(payload);
    return size;
}

/* Maps the memfd after checking its size and seals; closes it. */
static void
ring_map(struct ring_client *rc, int memfd)
{
    int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    struct stat st;
    void *p;

    ck_assert_int_eq(fstat(memfd, &st), 0);
    ck_assert_int_eq(st.st_size, (off_t)(ST_RING_HEADER + rc->size));
    ck_assert_int_eq(fcntl(memfd, F_GET_SEALS) & seals, seals);
    rc->map_len = ST_RING_HEADER + (size_t)rc->size;
    p = mmap(NULL, rc->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    close(memfd);
    rc->hdr = p;
    rc->data = (char *)p + ST_RING_HEADER;
    ck_assert_uint_eq(rc->hdr->magic, ST_RING_MAGIC);
    ck_assert_uint_eq(rc->hdr->version, ST_RING_VERSION);
    ck_assert_uint_eq(rc->hdr->size, rc->size);
    ck_assert_uint_eq(rc->hdr->pid, (uint64_t)getpid());
}

void
ring_client_open(struct ring_client *rc, uint64_t want)
{
    struct frame f;
    int fds[2];
    size_t len;

    memset(rc, 0, sizeof(*rc));
    rc->fd = client_connect();
    frame_init(&f);
    ck_assert_int_eq(st_wire_pack_hello(&f.pk, (uint64_t)getpid(), "test", 4,
                                        want, 0),
                     0);
    frame_send(rc->fd, &f);
    st_buf_close(&f.b);
    len = ring_recv_fds(rc->fd, fds);
    rc->efd = fds[1];
    rc->size = ring_recv_hello(rc->fd, len);
    /* A power of two, at least what was asked for (within the bounds). */
    ck_assert_uint_ge(rc->size, ST_RING_MIN);
    ck_assert_uint_le(rc->size, ST_RING_MAX);
    ck_assert_uint_eq(rc->size & (rc->size - 1), 0);
    ck_assert(rc->size >= want || rc->size == ST_RING_MAX);
    ring_map(rc, fds[0]);
}

void
ring_client_close(struct ring_client *rc)
{
    if (rc->hdr != NULL)
        munmap(rc->hdr, rc->map_len);
    rc->hdr = NULL;
    if (rc->efd >= 0)
        close(rc->efd);
    rc->efd = -1;
    if (rc->fd >= 0)
        close(rc->fd);
    rc->fd = -1;
}

/* The agent's wait for room: the collector has read `rd` so far. */
static void
ring_wait_room(struct ring_client *rc, uint64_t rd)
{
    int i;

    ring_commit(rc);
    __atomic_store_n(&rc->hdr->writer_waiting, 1, __ATOMIC_SEQ_CST);
    ring_wake(rc);
    for (i = 0; i < WAIT_MS; i++) {
        if (__atomic_load_n(&rc->hdr->read, __ATOMIC_ACQUIRE) != rd)
            return;
        sleep_ms(1);
    }
    ck_abort_msg("steptraced never took bytes from a full ring");
}

void
ring_write(struct ring_client *rc, const void *p, size_t n)
{
    const char *c = p;
    uint64_t start = rc->wr, mask = rc->size - 1;

    while (n > 0) {
        uint64_t rd = __atomic_load_n(&rc->hdr->read, __ATOMIC_ACQUIRE);
        uint64_t room = rc->size - (rc->wr - rd);
        size_t at = (size_t)(rc->wr & mask), k, first;

        ck_assert_uint_le(rc->wr - rd, rc->size);
        if (room == 0) {
            ring_wait_room(rc, rd);
            continue;
        }
        k = n < room ? n : (size_t)room;
        first = k < rc->size - at ? k : (size_t)(rc->size - at);
        memcpy(rc->data + at, c, first);
        memcpy(rc->data, c + first, k - first);
        rc->wr += k;
        c += k;
        n -= k;
    }
    /* Its first and last bytes in different laps of the data area. */
    if (rc->wr > start && start / rc->size != (rc->wr - 1) / rc->size)
        rc->straddled++;
}

void
ring_put(struct ring_client *rc, struct frame *f)
{
    ck_assert_int_eq(f->b.oom, 0);
    ring_write(rc, f->b.data, f->b.len);
    f->b.len = 0;
}

void
ring_commit(struct ring_client *rc)
{
    __atomic_store_n(&rc->hdr->commit, rc->wr, __ATOMIC_RELEASE);
}

void
ring_wake(struct ring_client *rc)
{
    uint64_t one = 1;

    ck_assert_int_eq(write(rc->efd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

uint64_t
ring_wait_taken(struct ring_client *rc, uint64_t pos)
{
    uint64_t rd = 0;
    int i;

    for (i = 0; i < WAIT_MS; i++) {
        rd = __atomic_load_n(&rc->hdr->taken, __ATOMIC_ACQUIRE);
        if (rd >= pos)
            return rd;
        sleep_ms(1);
    }
    ck_abort_msg("steptraced took %llu of %llu ring bytes",
                 (unsigned long long)rd, (unsigned long long)pos);
    return rd;
}

uint64_t
ring_recv_ack(struct ring_client *rc, uint64_t token)
{
    struct st_msg m;
    char *payload;
    uint64_t errors;

    for (;;) {
        recv_msg(rc->fd, &m, &payload);
        ck_assert_int_eq(m.type, ST_MSG_ACK);
        if (m.u.ack.token != 0 || token == 0)
            break;
        free(payload);
    }
    ck_assert_uint_eq(m.u.ack.token, token);
    errors = m.u.ack.errors;
    free(payload);
    return errors;
}

uint64_t
ring_flush_wait(struct ring_client *rc, uint64_t token)
{
    struct frame f;

    frame_init(&f);
    ck_assert_int_eq(st_wire_pack_flush(&f.pk, token), 0);
    ring_put(rc, &f);
    st_buf_close(&f.b);
    ring_commit(rc);
    ring_wake(rc);
    return ring_recv_ack(rc, token);
}
