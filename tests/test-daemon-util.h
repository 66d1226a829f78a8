/*
 * Shared by the daemon tests (test-daemon.c, test-daemon-service.c,
 * test-daemon-ring.c): the collector process of the current test, files,
 * and the client side of the protocol (frames built with the common
 * encoders, sent over a plain socket or written into a ring).  Each test
 * runs in its own process (CK_FORK), so the fixture is one global, D.
 */
#ifndef STEPTRACE_TESTS_TEST_DAEMON_UTIL_H
#define STEPTRACE_TESTS_TEST_DAEMON_UTIL_H

#include "test-common.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "wire-pack.h"
#include "steptrace/buf.h"
#include "steptrace/ring.h"
#include "steptrace/wire.h"

/* Bound on every wait, so that a broken collector fails instead of hangs. */
#define WAIT_MS 20000

#define HEADER "--------------------- Step "
#define DASHES " ---------------------\n"

/* snprintf into an array, failing the test rather than truncating. */
#define xsnprintf(buf, ...)                                                   \
    ck_assert_int_lt(snprintf((buf), sizeof(buf), __VA_ARGS__),               \
                     (int)sizeof(buf))

/* String ids every scenario defines. */
enum {
    S_FILE = 1,
    S_MAIN,
    S_X,
    S_INT,
    S_Y,
    S_MAIN_THREAD,
    S_STR,
    S_Z,
    S_OUTER,
    S_WORKER,
    S_MODULE,
    S_COUNT
};

/* The collector of the current test. */
struct daemon_fixture {
    pid_t pid;
    char dir[PATH_MAX];
    char sock[PATH_MAX];
    char err[PATH_MAX];
    char logdir[PATH_MAX];
};

extern struct daemon_fixture D;
extern const char *const strings[S_COUNT];

/* A variable of a diff: type 0 marks a deletion; name 0 ends a list. */
struct tvar {
    uint32_t name;
    uint32_t type;
    const char *value;
};

/* The agent's side of a ring (steptrace/ring.h), made by
 * ring_client_open() and given up by ring_client_close(). */
struct ring_client {
    int fd;                  /* Owned: the socket (-1 once closed). */
    int efd;                 /* Owned: the eventfd that wakes the
                                collector. */
    struct st_ring_hdr *hdr; /* Owned: the mapping, map_len bytes. */
    size_t map_len;
    char *data;         /* Borrowed: the data area. */
    uint64_t size;      /* Data bytes the collector granted. */
    uint64_t wr;        /* Stream bytes written (commit may lag). */
    unsigned straddled; /* Messages written across the data's end. */
};

/* Messages accumulated into one frame. */
struct frame {
    struct st_buf b;
    msgpack_packer pk;
};

/* clang-format would take these macros' braces for blocks. */
/* clang-format off */
#define V(name, type, value) {name, type, value}
#define DEL(name) {name, 0, NULL}
#define END {0, 0, NULL}
/* clang-format on */

/* The record of the example of docs/LOG-FORMAT.md section 2: step 1 at
 * line 8, x = 5, y = 10. */
extern const char all_step1[];
/* What send_all_mode_region() writes. */
extern const char all_region_text[];
/* Records at lines 1, 2, 3 in NONE mode (all of the same length). */
extern const char *const rot_records[];

/* ---- the collector process ---- */

/* $STEPTRACED, the collector under test. */
const char *steptraced_path(void);
/* Starts steptraced on D.sock with --ready-fd plus `extra` (NULL
 * terminated) and waits until it is ready.  @return 0 or -1. */
int daemon_spawn(const char *const *extra);
/* The same, without "--socket D.sock" unless with_socket. */
int daemon_spawn_opts(const char *const *extra, int with_socket);
/* Waits for a child.  @return its exit status, or -1 if signalled. */
int wait_exit(pid_t pid);
/* SIGTERM to the collector.  @return its exit status. */
int daemon_stop(void);
/* Runs steptraced with `args` to completion (stderr to D.err, stdout to
 * `out` if not NULL).  @return its exit status. */
int run_steptraced(const char *const *args, const char *out);
void fixture_setup(void);
void fixture_teardown(void);
/* fixture_setup() and a running collector. */
void running_setup(void);
/* One TCase per test, with or without a running collector. */
void add_test(Suite *s, const char *name, const TTest *test, int running);

void sleep_ms(long ms);

/* ---- files ---- */

/* The file's bytes (NUL added; free()), or NULL if it does not exist. */
char *slurp(const char *path);
/* dir/name in a static buffer. */
const char *in_dir(const char *dir, const char *name);
void assert_file_eq(const char *path, const char *expected);
void assert_missing(const char *path);
/* Waits (at most WAIT_MS) until the file holds exactly `expected`, then
 * asserts it (so that a timeout shows both texts). */
void wait_file_eq(const char *path, const char *expected);

/* ---- client side of the protocol ---- */

void frame_init(struct frame *f);
/* A plain connection to D.sock (no HELLO). */
int client_connect(void);
void send_all(int fd, const void *p, size_t n);
/* Sends the accumulated messages as one frame and empties the frame. */
void frame_send(int fd, struct frame *f);
/* Reads exactly n bytes.  @return 0, or -1 at end of stream / reset. */
int recv_exact(int fd, void *p, size_t n);
/* Receives one frame holding one message (the caller frees *payload,
 * which the strings of *m borrow). */
/* The next message from the collector, past its FILE messages (the last
 * one's path and tracer id are kept in last_file, last_file_tracer). */
void recv_msg(int fd, struct st_msg *m, char **payload);
extern char last_file[4096];
extern uint32_t last_file_tracer;
/* Sends HELLO and checks the collector's answer. */
void hello(int fd);
/* A connected client past HELLO. */
int client_open(void);
/* FLUSH and its ACK: everything sent before is then in the files.
 * @return the ACK's error count; its message is copied to msg. */
uint64_t flush_wait(int fd, uint64_t token, char *msg, size_t msglen);
/* @return 1 once the collector closed the connection. */
int closed_by_peer(int fd);
void put_strings(struct frame *f);
void put_region(struct frame *f, uint32_t id, uint32_t tracer, uint32_t level,
                uint32_t mode, uint64_t max_bytes, uint32_t max_files);
void put_diff(struct frame *f, const struct tvar *v);
void put_step(struct frame *f, uint32_t region, uint32_t frame, uint32_t line,
              uint64_t ns, const struct tvar *globals,
              const struct tvar *locals);
/* Strings, thread 1 "MainThread", frame 1 = /abs/f.py::main in scope 1
 * and region 1 of tracer 1 with the given level and mode. */
void put_prologue(struct frame *f, uint32_t level, uint32_t mode);
/* A region in ALL mode (all_region_text), put into a frame or sent as
 * one. */
void put_all_mode_region(struct frame *f);
void send_all_mode_region(int fd);
/* After a bad peer, a new client is served in full. */
void assert_still_serving(void);
void assert_logged_protocol_error(void);
/* A STATUS round trip on a fresh connection.  @return the counter named
 * `name`; fails the test if the reply lacks it. */
uint64_t status_counter(const char *name);
/* Polls status_counter(name) until it is at least `want`. */
uint64_t wait_counter(const char *name, uint64_t want);

/* ---- client side of a ring ---- */

/* Connects, sends a HELLO asking for `want` ring bytes, receives the
 * reply with the memfd and the eventfd and maps the ring (checking its
 * header and seals).  Pair with ring_client_close(). */
void ring_client_open(struct ring_client *rc, uint64_t want);
/* Unmaps the ring and closes the descriptors still open. */
void ring_client_close(struct ring_client *rc);
/* Writes n bytes at rc->wr, wrapping at the data's end.  Without room it
 * does what the agent does: commits what it wrote (part of a message,
 * maybe), sets writer_waiting, writes the eventfd and waits for `read`
 * to move.  Nothing is committed otherwise. */
void ring_write(struct ring_client *rc, const void *p, size_t n);
/* ring_write() of the frame's messages (no frame header); empties it. */
void ring_put(struct ring_client *rc, struct frame *f);
/* Publishes commit = rc->wr (release). */
void ring_commit(struct ring_client *rc);
/* Writes the eventfd. */
void ring_wake(struct ring_client *rc);
/* Waits (at most WAIT_MS) until the collector's `taken` is at least pos
 * (it copied the bytes out).  @return `taken`. */
uint64_t ring_wait_taken(struct ring_client *rc, uint64_t pos);
/* Receives the ACK for `token` on the socket, skipping the ACKs for
 * token 0 (room came free).  @return its error count. */
uint64_t ring_recv_ack(struct ring_client *rc, uint64_t token);
/* A FLUSH through the ring (committed, eventfd written) and its ACK on
 * the socket.  @return the ACK's error count. */
uint64_t ring_flush_wait(struct ring_client *rc, uint64_t token);

#endif /* STEPTRACE_TESTS_TEST_DAEMON_UTIL_H */
