/*
 * The collector's side of the record ring (steptrace/ring.h): each test
 * starts the real steptraced, connects as an agent that asks for a ring
 * in its HELLO, maps the memfd that comes with the reply and writes its
 * messages into the ring the way the agent does (no frame headers,
 * free-running positions, `commit` published with release stores, the
 * eventfd written when the collector has to be woken).  The log files
 * are compared byte for byte, as in test-daemon.c.
 *
 * No assertion depends on timing, bar one lower bound with a wide margin
 * (the idle test): a FLUSH answered by its ACK on the socket is the
 * barrier after which the files are complete, and every other wait (for
 * `read` to move, for a file to reach its text, for a counter) is bounded
 * by WAIT_MS only so that a broken collector fails instead of hanging.
 */
#include "test-daemon-util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "steptrace/buf.h"
#include "steptrace/ring.h"
#include "steptrace/wire.h"

/* The collector's own header, for ST_RING_POLL_MS and ST_RING_IDLE_TICKS
 * only. */
#include "../daemon/ringpoll.h"

/* The line written for a region still open when its process vanished. */
#define VANISHED_AFTER(n)                                                     \
    "[steptrace] the process vanished after step " n " without ending "       \
    "the region (killed by SIGKILL or the out-of-memory killer?)\n"
#define LOST_CUT                                                              \
    "[steptrace] 1 record lost in this region: the process ended while "      \
    "writing it\n"

/* ---- helpers ---- */

/* The text in b, NUL-terminated (not counted in b->len). */
static const char *
text_of(struct st_buf *b)
{
    ck_assert_int_eq(st_buf_reserve(b, 1), 0);
    b->data[b->len] = '\0';
    return b->data;
}

/* Appends the record of `step` at `line` of a NONE-mode region of frame
 * 1 (/abs/f.py::main), whose runtime prints as `ms`. */
static void
add_record(struct st_buf *b, unsigned step, unsigned line, const char *ms)
{
    char rec[256];

    xsnprintf(rec,
              HEADER "%u" DASHES "Runtime: %s ms\n"
                     "/abs/f.py::main -- line %u\n\n",
              step, ms, line);
    ck_assert_int_eq(st_buf_puts(b, rec), 0);
}

/* Records 1..n at lines 1..n, 100 ns each: what put_steps() sends. */
static void
add_records(struct st_buf *b, unsigned n)
{
    unsigned i;

    for (i = 1; i <= n; i++)
        add_record(b, i, i, "0.0001");
}

/* STEPs first..last of region 1, frame 1, at lines first..last. */
static void
put_steps(struct frame *f, unsigned first, unsigned last)
{
    unsigned i;

    for (i = first; i <= last; i++)
        put_step(f, 1, 1, i, 100, NULL, NULL);
}

/* A ring client whose NONE-mode region 1 holds `steps` steps, all of
 * them committed (the collector was not woken). */
static void
open_with_steps(struct ring_client *rc, unsigned steps)
{
    struct frame f;

    ring_client_open(rc, 1);
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_steps(&f, 1, steps);
    ring_put(rc, &f);
    st_buf_close(&f.b);
    ring_commit(rc);
}

/* The agent's last words: how its process ends (end_detail gets n bytes
 * of `detail`), then its socket closes, as the kernel closes it. */
static void
end_connection(struct ring_client *rc, uint32_t kind, uint32_t sig,
               const char *detail, size_t n)
{
    ck_assert_uint_le(n, ST_RING_END_DETAIL);
    memcpy(rc->hdr->end_detail, detail, n);
    __atomic_store_n(&rc->hdr->end_signal, sig, __ATOMIC_RELAXED);
    __atomic_store_n(&rc->hdr->end_kind, kind, __ATOMIC_RELEASE);
    ck_assert_int_eq(close(rc->fd), 0);
    rc->fd = -1;
}

/* The counters of how processes ended. */
static void
assert_end_counters(uint64_t sig, uint64_t exec, uint64_t vanished,
                    uint64_t lost)
{
    ck_assert_uint_eq(status_counter("ended_by_signal"), sig);
    ck_assert_uint_eq(status_counter("ended_by_exec"), exec);
    ck_assert_uint_eq(status_counter("vanished"), vanished);
    ck_assert_uint_eq(status_counter("lost_vanished"), lost);
}

/* The file reaches `expected`, and still holds exactly that once the
 * collector has stopped (nothing was added later). */
static void
assert_final_log(const char *path, const char *expected)
{
    wait_file_eq(path, expected);
    ck_assert_int_eq(daemon_stop(), 0);
    assert_file_eq(path, expected);
}

/* The log of `steps` records (3 unless asked) then `tail` is written, and
 * stays so; the end counters are then sig, exec, vanished, lost. */
static void
assert_ended(unsigned steps, const char *tail, uint64_t sig, uint64_t exec,
             uint64_t vanished, uint64_t lost)
{
    struct st_buf want;

    st_buf_init(&want);
    add_records(&want, steps);
    ck_assert_int_eq(st_buf_puts(&want, tail), 0);
    wait_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    assert_end_counters(sig, exec, vanished, lost);
    assert_final_log(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
}

static void
assert_err_contains(const char *needle)
{
    char *text = slurp(D.err);

    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, needle) != NULL,
                  "steptraced's stderr lacks \"%s\":\n%s", needle, text);
    free(text);
}

/* Waits (at most WAIT_MS) for the collector to say it stops looking. */
static void
wait_reader_idle(struct ring_client *rc)
{
    int i;

    for (i = 0; i < WAIT_MS / 5; i++) {
        if (__atomic_load_n(&rc->hdr->reader_idle, __ATOMIC_ACQUIRE) == 1)
            return;
        sleep_ms(5);
    }
    ck_abort_msg("the collector never set reader_idle");
}

/* Waits (at most WAIT_MS) until `n` connections are open. */
static void
wait_connections_open(uint64_t n)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < WAIT_MS / 20; i++) {
        v = status_counter("connections_open");
        if (v == n)
            return;
        sleep_ms(20);
    }
    ck_abort_msg("%llu connections open, not %llu", (unsigned long long)v,
                 (unsigned long long)n);
}

static long
now_ms(void)
{
    struct timespec ts;

    ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A STR message (id 100, never used) of exactly n >= 262 bytes: a pad
 * that fills the ring to its last byte. */
static void
put_pad(struct frame *f, size_t n)
{
    size_t start = f->b.len, t;
    char *text = malloc(n);

    ck_assert_ptr_nonnull(text);
    memset(text, 'p', n);
    /* The str head is 3 bytes for 256 .. 65535 bytes of text. */
    for (t = n - 4; t + 8 > n; t--) {
        f->b.len = start;
        ck_assert_int_eq(st_wire_pack_str(&f->pk, 100, text, t), 0);
        if (f->b.len - start == n)
            break;
    }
    free(text);
    ck_assert_uint_eq(f->b.len - start, n);
}

/* ---- tests: records through the ring ---- */

START_TEST(test_ring_all_mode_exact_text)
{
    struct ring_client rc;
    struct frame f;

    ring_client_open(&rc, 1);
    ck_assert_uint_eq(rc.size, ST_RING_MIN);
    frame_init(&f);
    put_all_mode_region(&f);
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    /* The FLUSH travels in the ring, its ACK on the socket. */
    ck_assert_uint_eq(ring_flush_wait(&rc, 7), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), all_region_text);
    ring_client_close(&rc);
}
END_TEST

/* Every kind of record an agent sends, in two regions of two tracers. */
static void
put_session(struct frame *f)
{
    static const char none[] = "None";

    put_strings(f);
    ck_assert_int_eq(st_wire_pack_thread(&f->pk, 1, S_MAIN_THREAD), 0);
    ck_assert_int_eq(st_wire_pack_thread(&f->pk, 2, S_WORKER), 0);
    put_region(f, 1, 1, ST_LEVEL_DEBUG, ST_VARMODE_CHANGED, 0, 10);
    ck_assert_int_eq(st_wire_pack_frame(&f->pk, 1, 1, 0, S_FILE, S_OUTER, 1, 0,
                                        1),
                     0);
    ck_assert_int_eq(st_wire_pack_event(&f->pk, 1, 1, 11, 100, ST_EVENT_CALL,
                                        "", 0),
                     0);
    put_step(f, 1, 1, 12, 500, (struct tvar[]){V(S_X, S_INT, "5"), END},
             (struct tvar[]){V(S_Y, S_INT, "10"), END});
    ck_assert_int_eq(st_wire_pack_frame(&f->pk, 2, 1, 1, S_FILE, S_MAIN, 1, 0,
                                        1),
                     0);
    ck_assert_int_eq(st_wire_pack_line(&f->pk, 2, 8, 1200), 0);
    ck_assert_int_eq(st_wire_pack_line(&f->pk, 2, 9, 3400), 0);
    put_step(f, 1, 2, 10, 100, (struct tvar[]){V(S_X, S_INT, "6"), END},
             (struct tvar[]){V(S_Z, S_STR, "hi"), END});
    ck_assert_int_eq(st_wire_pack_event(&f->pk, 1, 2, 10, 100, ST_EVENT_RETURN,
                                        none, sizeof(none) - 1),
                     0);
    ck_assert_int_eq(st_wire_pack_frame_end(&f->pk, 2), 0);
    ck_assert_int_eq(st_wire_pack_frame(&f->pk, 3, 2, 0, S_FILE, S_MAIN, 1, 0,
                                        1),
                     0);
    ck_assert_int_eq(st_wire_pack_line(&f->pk, 3, 20, 300), 0);
    ck_assert_int_eq(st_wire_pack_lost(&f->pk, 1, 2), 0);
    ck_assert_int_eq(st_wire_pack_region_end(&f->pk, 1), 0);
    put_region(f, 2, 2, ST_LEVEL_INFO, ST_VARMODE_NONE, 0, 10);
    ck_assert_int_eq(st_wire_pack_frame(&f->pk, 4, 1, 0, S_FILE, S_MAIN, 1, 0,
                                        2),
                     0);
    ck_assert_int_eq(st_wire_pack_line(&f->pk, 4, 30, 100), 0);
    ck_assert_int_eq(st_wire_pack_region_end(&f->pk, 2), 0);
}

/* The files of dir `a` and dir `b` are the same and not empty. */
static void
assert_same_file(const char *a, const char *b, const char *name)
{
    char pa[PATH_MAX];
    char *ta, *tb;

    xsnprintf(pa, "%s", in_dir(a, name));
    ta = slurp(pa);
    tb = slurp(in_dir(b, name));
    ck_assert_msg(ta != NULL && tb != NULL, "%s missing", name);
    ck_assert_ptr_nonnull(strstr(ta, HEADER "1" DASHES));
    ck_assert_str_eq(ta, tb);
    free(ta);
    free(tb);
}

START_TEST(test_ring_same_log_as_socket)
{
    char ringdir[PATH_MAX];
    struct ring_client rc;
    struct frame f;
    int fd;

    ring_client_open(&rc, 1);
    frame_init(&f);
    put_session(&f);
    ring_put(&rc, &f);
    ck_assert_uint_eq(ring_flush_wait(&rc, 1), 0);
    ring_client_close(&rc);
    /* The same messages on the socket, into a log directory of their
     * own. */
    xsnprintf(ringdir, "%s", D.logdir);
    xsnprintf(D.logdir, "%s/.socket", D.dir);
    fd = client_open();
    put_session(&f);
    frame_send(fd, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(flush_wait(fd, 1, NULL, 0), 0);
    close(fd);
    assert_same_file(ringdir, D.logdir, "tracer.log");
    assert_same_file(ringdir, D.logdir, "tracer_1.log");
}
END_TEST

START_TEST(test_ring_polled_without_wake)
{
    struct ring_client rc;

    /* Committed, and nothing else: no eventfd write, no socket traffic.
     * The poll timer finds the step. */
    open_with_steps(&rc, 1);
    wait_file_eq(in_dir(D.logdir, "tracer.log"), rot_records[0]);
    ck_assert_uint_eq(__atomic_load_n(&rc.hdr->taken, __ATOMIC_ACQUIRE),
                      rc.wr);
    /* The room given back: whole pages, never more than was taken. */
    ck_assert_uint_le(__atomic_load_n(&rc.hdr->read, __ATOMIC_ACQUIRE), rc.wr);
    ring_client_close(&rc);
}
END_TEST

#define WRAP_STEPS 20000u

START_TEST(test_ring_wraps_around)
{
    struct ring_client rc;
    struct frame f;
    struct st_buf want;
    unsigned i;

    ring_client_open(&rc, 64 * 1024);
    ck_assert_uint_eq(rc.size, 64 * 1024);
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    ring_put(&rc, &f);
    for (i = 1; i <= WRAP_STEPS; i++) {
        put_step(&f, 1, 1, i, 100, NULL, NULL);
        ring_put(&rc, &f);
        /* A commit now and then, as the agent makes at each barrier;
         * in between, a full ring makes ring_write() wait for room. */
        if (i % 97 == 0)
            ring_commit(&rc);
    }
    st_buf_close(&f.b);
    ck_assert_uint_gt(rc.wr, 3 * rc.size);
    ck_assert_uint_ge(rc.straddled, 2);
    ck_assert_uint_eq(ring_flush_wait(&rc, 1), 0);
    st_buf_init(&want);
    add_records(&want, WRAP_STEPS);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
    ring_client_close(&rc);
}
END_TEST

/* STEP region 1, frame 1, line 1000, 0.1 ms, written by the encoder and
 * by hand with its type as a uint16 (valid msgpack an agent may send),
 * so that cuts fall inside every kind of field. */
static void
put_cut_messages(struct st_buf *m0, struct st_buf *m1)
{
    static const unsigned char wide[] = {
        0x97, 0xcd, 0x00, 0x06, 0x01, 0x01, 0xcd, 0x03,
        0xe8, 0xce, 0x00, 0x01, 0x86, 0xa0, 0xc0, 0xc0,
    };
    struct frame f;

    frame_init(&f);
    put_step(&f, 1, 1, 1000, 100000, NULL, NULL);
    *m0 = f.b;
    st_buf_init(m1);
    ck_assert_int_eq(st_buf_append(m1, wide, sizeof(wide)), 0);
}

/* Writes and commits msg[0..k), waits until the collector took it, then
 * the rest. */
static void
ring_two_commits(struct ring_client *rc, const struct st_buf *msg, size_t k,
                 uint64_t before)
{
    ring_write(rc, msg->data, k);
    ring_commit(rc);
    ring_wake(rc);
    ring_wait_taken(rc, rc->wr);
    /* Taken but kept: the message is not applied yet. */
    ck_assert_uint_eq(status_counter("records_in"), before);
    ring_write(rc, msg->data + k, msg->len - k);
    ring_commit(rc);
    ring_wake(rc);
    ring_wait_taken(rc, rc->wr);
    ck_assert_uint_eq(status_counter("records_in"), before + 1);
}

START_TEST(test_ring_message_in_two_commits)
{
    struct ring_client rc;
    struct st_buf msg[2], want;
    struct frame f;
    uint64_t n = 0;
    size_t k, m;

    ring_client_open(&rc, 1);
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    ring_put(&rc, &f);
    ring_commit(&rc);
    put_cut_messages(&msg[0], &msg[1]);
    st_buf_init(&want);
    /* Every cut of each message: the records_in counter is bumped as a
     * STEP is applied, so STATUS tells what was (a STATUS is answered
     * after the collector's callback that took the bytes). */
    for (m = 0; m < 2; m++)
        for (k = 1; k < msg[m].len; k++) {
            ring_two_commits(&rc, &msg[m], k, n++);
            add_record(&want, (unsigned)n, 1000, "0.1000");
        }
    ck_assert_uint_eq(ring_flush_wait(&rc, 1), 0);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
    st_buf_close(&msg[0]);
    st_buf_close(&msg[1]);
    st_buf_close(&f.b);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_large_message_in_pieces)
{
    size_t n = 3u * 1024 * 1024, i;
    struct ring_client rc;
    struct frame f;
    char *big = malloc(n + 1), *text;

    ck_assert_ptr_nonnull(big);
    for (i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    /* 3 MiB through 64 KiB: the message is committed in pieces as room
     * comes free, and the collector keeps them until it is whole. */
    ring_client_open(&rc, 1);
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_ALL);
    put_step(&f, 1, 1, 8, 84100, NULL,
             (struct tvar[]){V(S_Y, S_STR, big), END});
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(ring_flush_wait(&rc, 1), 0);
    text = slurp(in_dir(D.logdir, "tracer.log"));
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "y: str :: abcdefghij"));
    ck_assert_uint_eq(strlen(text),
                      strlen(HEADER "1" DASHES "Runtime: 0.0841 ms\n"
                                    "/abs/f.py::main -- line 8\n\n"
                                    "------> Local variables <------\n"
                                    "y: str :: \n\n") +
                          n);
    free(text);
    free(big);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_idle_then_wake)
{
    struct ring_client rc;
    struct st_buf want;
    struct frame f;
    long t0;

    open_with_steps(&rc, 1);
    t0 = now_ms();
    wait_file_eq(in_dir(D.logdir, "tracer.log"), rot_records[0]);
    /* ST_RING_IDLE_TICKS polls without news: the collector says it
     * stops looking.  Its timer never fires early, so half of that time
     * is a lower bound with room for a slow loop iteration. */
    wait_reader_idle(&rc);
    ck_assert_int_ge(now_ms() - t0,
                     (long)(ST_RING_IDLE_TICKS * ST_RING_POLL_MS / 2));
    /* The agent, seeing the flag after a commit, clears it and writes
     * the eventfd. */
    frame_init(&f);
    put_steps(&f, 2, 2);
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ring_commit(&rc);
    __atomic_store_n(&rc.hdr->reader_idle, 0, __ATOMIC_SEQ_CST);
    ring_wake(&rc);
    st_buf_init(&want);
    add_records(&want, 2);
    wait_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
    /* And, quiet again, it goes idle again. */
    wait_reader_idle(&rc);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_writer_waiting_gets_ack)
{
    struct ring_client rc;
    struct st_buf want;
    struct frame f;
    unsigned steps = 0;

    ring_client_open(&rc, 1);
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    ring_put(&rc, &f);
    /* Nothing committed yet: the collector takes nothing meanwhile. */
    while (rc.size - rc.wr >= 300) {
        put_steps(&f, steps + 1, steps + 1);
        ring_put(&rc, &f);
        steps++;
    }
    put_pad(&f, (size_t)(rc.size - rc.wr));
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(rc.wr, rc.size);
    /* Full: the agent says it waits (before its commit, so that the
     * collector cannot take the bytes without seeing it), then wakes
     * the collector. */
    __atomic_store_n(&rc.hdr->writer_waiting, 1, __ATOMIC_SEQ_CST);
    ring_commit(&rc);
    ring_wake(&rc);
    ck_assert_uint_eq(ring_recv_ack(&rc, 0), 0);
    ck_assert_uint_gt(__atomic_load_n(&rc.hdr->read, __ATOMIC_ACQUIRE), 0);
    ck_assert_uint_eq(__atomic_load_n(&rc.hdr->writer_waiting,
                                      __ATOMIC_ACQUIRE),
                      0);
    ck_assert_uint_eq(ring_flush_wait(&rc, 1), 0);
    st_buf_init(&want);
    add_records(&want, steps);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_size_granted)
{
    static const uint64_t asks[][2] = {
        {1, ST_RING_MIN},
        {ST_RING_MIN, ST_RING_MIN},
        {ST_RING_MIN + 1, 2 * ST_RING_MIN},
        {100000, 128 * 1024},
    };
    struct ring_client rc;
    size_t i;

    for (i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
        ring_client_open(&rc, asks[i][0]);
        ck_assert_uint_eq(rc.size, asks[i][1]);
        ring_client_close(&rc);
    }
    assert_still_serving();
}
END_TEST

/* ---- tests: the end of the connection ---- */

START_TEST(test_ring_end_vanished)
{
    struct ring_client rc;

    open_with_steps(&rc, 3);
    end_connection(&rc, ST_RING_END_NONE, 0, "", 0);
    assert_ended(3, VANISHED_AFTER("3"), 0, 0, 1, 0);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_end_signal)
{
    struct ring_client rc;

    open_with_steps(&rc, 3);
    end_connection(&rc, ST_RING_END_SIGNAL, 15, "", 0);
    assert_ended(3,
                 "[steptrace] the process ended by SIGTERM after step "
                 "3\n",
                 1, 0, 0, 0);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_end_exec)
{
    static const char prog[] = "/bin/true";
    struct ring_client rc;

    open_with_steps(&rc, 3);
    end_connection(&rc, ST_RING_END_EXEC, 0, prog, sizeof(prog));
    assert_ended(3,
                 "[steptrace] the process called exec (/bin/true) after "
                 "step 3\n",
                 0, 1, 0, 0);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_end_exit)
{
    struct ring_client rc;
    struct st_buf want;

    /* An orderly exit says nothing more, even with a region open. */
    open_with_steps(&rc, 3);
    end_connection(&rc, ST_RING_END_EXIT, 0, "", 0);
    st_buf_init(&want);
    add_records(&want, 3);
    wait_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    /* Gone (only the STATUS connection is open). */
    wait_connections_open(1);
    assert_end_counters(0, 0, 0, 0);
    assert_final_log(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_end_applies_unpolled)
{
    struct ring_client rc;
    struct frame f;

    /* The collector has stopped looking (the sleep only makes it likely
     * that its grace polls are over too); the process commits 500 steps
     * and dies before it can write the eventfd. */
    ring_client_open(&rc, 1);
    wait_reader_idle(&rc);
    sleep_ms(50);
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_steps(&f, 1, 500);
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ring_commit(&rc);
    end_connection(&rc, ST_RING_END_NONE, 0, "", 0);
    assert_ended(500, VANISHED_AFTER("500"), 0, 0, 1, 0);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_end_half_message)
{
    struct ring_client rc;
    struct frame f;

    /* Step 4 was being written when the process died: half of it is
     * committed (the agent commits parts of messages too large for the
     * room left). */
    open_with_steps(&rc, 3);
    frame_init(&f);
    put_step(&f, 1, 1, 300, 100, NULL, NULL);
    ring_write(&rc, f.b.data, f.b.len / 2);
    st_buf_close(&f.b);
    ring_commit(&rc);
    end_connection(&rc, ST_RING_END_NONE, 0, "", 0);
    assert_ended(3, LOST_CUT VANISHED_AFTER("3"), 0, 0, 1, 1);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_end_each_open_region)
{
    struct ring_client rc;
    struct frame f;

    /* Tracer 1 (2 steps) and tracer 2 (1 step) are open, tracer 3's
     * region ended: one line each for the open ones, one count. */
    open_with_steps(&rc, 2);
    frame_init(&f);
    put_region(&f, 2, 2, ST_LEVEL_INFO, ST_VARMODE_NONE, 0, 10);
    put_step(&f, 2, 1, 7, 100, NULL, NULL);
    put_region(&f, 3, 3, ST_LEVEL_INFO, ST_VARMODE_NONE, 0, 10);
    put_step(&f, 3, 1, 9, 100, NULL, NULL);
    ck_assert_int_eq(st_wire_pack_region_end(&f.pk, 3), 0);
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ring_commit(&rc);
    end_connection(&rc, ST_RING_END_SIGNAL, 2, "", 0);
    wait_file_eq(in_dir(D.logdir, "tracer.log"), HEADER
                 "1" DASHES "Runtime: 0.0001 ms\n"
                 "/abs/f.py::main -- line 1\n\n" HEADER "2" DASHES
                 "Runtime: 0.0001 ms\n"
                 "/abs/f.py::main -- line 2\n\n"
                 "[steptrace] the process ended by SIGINT after step 2\n");
    wait_file_eq(in_dir(D.logdir, "tracer_1.log"), HEADER
                 "1" DASHES "Runtime: 0.0001 ms\n"
                 "/abs/f.py::main -- line 7\n\n"
                 "[steptrace] the process ended by SIGINT after step 1\n");
    assert_end_counters(1, 0, 0, 0);
    assert_final_log(in_dir(D.logdir, "tracer_2.log"),
                     HEADER "1" DASHES "Runtime: 0.0001 ms\n"
                            "/abs/f.py::main -- line 9\n\n");
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_end_detail_escaped_and_bounded)
{
    char detail[ST_RING_END_DETAIL], want[1024];
    struct ring_client rc;

    /* The agent's bytes, control characters and all, with no NUL in the
     * field: the line holds the field's first 255 bytes, escaped. */
    memset(detail, 'y', sizeof(detail));
    memcpy(detail, "/bin/\t", 6);
    open_with_steps(&rc, 1);
    end_connection(&rc, ST_RING_END_EXEC, 0, detail, sizeof(detail));
    xsnprintf(want,
              "%s[steptrace] the process called exec (/bin/\\t%.*s) "
              "after step 1\n",
              rot_records[0], 249, detail + 6);
    wait_file_eq(in_dir(D.logdir, "tracer.log"), want);
    assert_end_counters(0, 1, 0, 0);
    assert_final_log(in_dir(D.logdir, "tracer.log"), want);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_end_signal_unnamed_or_invalid)
{
    static const struct {
        uint32_t sig;
        const char *line;
    } cases[] = {
        {40, "[steptrace] the process ended by signal 40 after step 1\n"},
        /* No signal 0: as if the process said nothing. */
        {0, VANISHED_AFTER("1")},
    };
    char want[1024], dir[PATH_MAX];
    struct ring_client rc;
    size_t i;

    for (i = 0; i < 2; i++) {
        xsnprintf(dir, "%s/.tracer%zu", D.dir, i);
        xsnprintf(D.logdir, "%s", dir);
        open_with_steps(&rc, 1);
        end_connection(&rc, ST_RING_END_SIGNAL, cases[i].sig, "", 0);
        xsnprintf(want, "%s%s", rot_records[0], cases[i].line);
        wait_file_eq(in_dir(dir, "tracer.log"), want);
        ring_client_close(&rc);
    }
    assert_end_counters(1, 0, 1, 0);
}
END_TEST

START_TEST(test_ring_collector_stop_applies_ring)
{
    struct ring_client rc;
    struct st_buf want;
    struct frame f;

    open_with_steps(&rc, 2);
    st_buf_init(&want);
    add_records(&want, 2);
    wait_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    frame_init(&f);
    put_steps(&f, 3, 3);
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ring_commit(&rc);
    /* SIGTERM: what the ring holds is applied.  The process is alive
     * and said nothing about an end: no line says it vanished. */
    ck_assert_int_eq(daemon_stop(), 0);
    ck_assert(closed_by_peer(rc.fd));
    add_record(&want, 3, 3, "0.0001");
    assert_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
    ring_client_close(&rc);
}
END_TEST

/* ---- tests: hostile ring clients ---- */

/* The collector closed the connection with a protocol error whose text
 * holds `detail`. */
static void
assert_closed_for(struct ring_client *rc, const char *detail)
{
    ck_assert(closed_by_peer(rc->fd));
    ring_client_close(rc);
    assert_logged_protocol_error();
    assert_err_contains(detail);
}

START_TEST(test_ring_commit_out_of_range_closes)
{
    struct ring_client rc;
    struct frame f;

    /* More than a ring's worth ahead of what was read. */
    ring_client_open(&rc, 1);
    __atomic_store_n(&rc.hdr->commit, rc.size + 1, __ATOMIC_RELEASE);
    ring_wake(&rc);
    assert_closed_for(&rc, "ring commit position 65537 is out of range "
                           "(read 0, size 65536)");
    /* Behind it. */
    ring_client_open(&rc, 1);
    frame_init(&f);
    put_strings(&f);
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ring_commit(&rc);
    ring_wake(&rc);
    ring_wait_taken(&rc, rc.wr);
    __atomic_store_n(&rc.hdr->commit, rc.wr - 1, __ATOMIC_RELEASE);
    ring_wake(&rc);
    assert_closed_for(&rc, "is out of range (read ");
    ck_assert_uint_eq(status_counter("protocol_errors"), 2);
    assert_still_serving();
}
END_TEST

START_TEST(test_ring_garbage_closes)
{
    static const struct {
        const char *bytes;
        size_t n;
    } bad[] = {
        {"\xc1\xc1\xc1\xc1", 4},  /* A byte msgpack never uses. */
        {"\x91\x63", 2},          /* [99]: no such message type. */
        {"\x81\x01\x01", 3},      /* A map. */
        {"\x93\x02\x00\xa1x", 5}, /* STR 0: valid msgpack, bad STR. */
    };
    struct ring_client rc;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ring_client_open(&rc, 1);
        ring_write(&rc, bad[i].bytes, bad[i].n);
        ring_commit(&rc);
        ring_wake(&rc);
        assert_closed_for(&rc, "steptraced: protocol error from pid");
    }
    assert_err_contains("(ring bytes 0 to 4)");
    ck_assert_uint_eq(status_counter("protocol_errors"), 4);
    assert_still_serving();
}
END_TEST

START_TEST(test_ring_socket_bytes_close)
{
    struct ring_client rc;
    struct frame f;

    /* Once the ring exists, a frame on the socket is out of order.  It
     * goes in one send: the collector may close the connection as soon
     * as it sees the header. */
    ring_client_open(&rc, 1);
    frame_init(&f);
    ck_assert_int_eq(st_buf_append(&f.b, "\0\0\0\0", 4), 0);
    ck_assert_int_eq(st_wire_pack_flush(&f.pk, 1), 0);
    st_wire_put_header((unsigned char *)f.b.data, (uint32_t)f.b.len - 4);
    send_all(rc.fd, f.b.data, f.b.len);
    st_buf_close(&f.b);
    assert_closed_for(&rc, "bytes on the socket after the ring was made");
    assert_still_serving();
}
END_TEST

START_TEST(test_ring_socket_short_bytes_close)
{
    struct ring_client rc;

    /* Fewer bytes than a frame header are just as much out of order.
     * (They must not be taken for the start of a frame either: the
     * collector would then stop taking what the ring holds, and drop
     * it when the process ends.) */
    ring_client_open(&rc, 1);
    send_all(rc.fd, "\0", 1);
    assert_closed_for(&rc, "steptraced: protocol error from pid");
    assert_still_serving();
}
END_TEST

START_TEST(test_ring_message_over_limit_closes)
{
    /* STR 5 whose text claims 20 MiB. */
    static const unsigned char head[] = {0x93, 0x02, 0x05, 0xdb,
                                         0x01, 0x40, 0x00, 0x00};
    size_t fill = ST_WIRE_MAX_FRAME + 128 * 1024;
    struct ring_client rc;
    char *body = malloc(fill);

    ck_assert_ptr_nonnull(body);
    memset(body, 'a', fill);
    ring_client_open(&rc, 32u * 1024 * 1024);
    ck_assert_uint_eq(rc.size, 32u * 1024 * 1024);
    ring_write(&rc, head, sizeof(head));
    ring_write(&rc, body, fill);
    free(body);
    ring_commit(&rc);
    ring_wake(&rc);
    assert_closed_for(&rc, "a message in the ring is longer than "
                           "16777216 bytes");
    assert_still_serving();
}
END_TEST

/* Writes a SKIP over the rest of the lap, its bytes 0xc1 (never valid
 * msgpack: the collector must not look at them). */
static void
ring_put_skip_to_lap_end(struct ring_client *rc, uint32_t *n_out)
{
    unsigned char head[ST_WIRE_SKIP_HEAD];
    uint64_t at = rc->wr & (rc->size - 1);
    uint32_t n = (uint32_t)(rc->size - at - ST_WIRE_SKIP_HEAD);
    char *junk = malloc(n);

    ck_assert_ptr_nonnull(junk);
    ck_assert_uint_ge(rc->size - at, ST_WIRE_SKIP_HEAD + 1);
    memset(junk, 0xc1, n);
    st_wire_put_skip_head(head, n);
    ring_write(rc, head, sizeof(head));
    ring_write(rc, junk, n);
    free(junk);
    *n_out = n;
}

START_TEST(test_ring_skip_to_next_lap)
{
    struct ring_client rc;
    struct frame f;
    struct st_buf want;
    uint64_t lap;
    uint32_t n;

    /* A few steps, then (the collector caught up, as the agent waits
     * for) a SKIP over the rest of the lap, then steps from the start of
     * the ring: every step in the log, none of the skipped bytes read. */
    ring_client_open(&rc, 64 * 1024);
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_steps(&f, 1, 3);
    ring_put(&rc, &f);
    ring_commit(&rc);
    ring_wake(&rc);
    ring_wait_taken(&rc, rc.wr);
    ring_put_skip_to_lap_end(&rc, &n);
    lap = rc.wr;
    ck_assert_uint_eq(lap % rc.size, 0);
    put_steps(&f, 4, 6);
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ring_commit(&rc);
    ring_wake(&rc);
    ck_assert_uint_eq(ring_flush_wait(&rc, 1), 0);
    ck_assert_uint_ge(__atomic_load_n(&rc.hdr->taken, __ATOMIC_ACQUIRE), lap);
    ck_assert_uint_ge(__atomic_load_n(&rc.hdr->read, __ATOMIC_ACQUIRE), lap);
    /* Not copied: bytes_in counts what was copied out. */
    ck_assert_uint_lt(status_counter("bytes_in"), n);
    st_buf_init(&want);
    add_records(&want, 6);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_skip_small)
{
    struct ring_client rc;
    struct frame f;
    struct st_buf want;
    unsigned char head[ST_WIRE_SKIP_HEAD];
    static const char junk[3] = {(char)0xc1, (char)0xc1, (char)0xc1};

    /* A small SKIP between records (copied whole with them): applied as
     * nothing.  (One longer than the ring: the next test.) */
    ring_client_open(&rc, 64 * 1024);
    frame_init(&f);
    put_prologue(&f, ST_LEVEL_INFO, ST_VARMODE_NONE);
    put_steps(&f, 1, 1);
    ring_put(&rc, &f);
    st_wire_put_skip_head(head, sizeof(junk));
    ring_write(&rc, head, sizeof(head));
    ring_write(&rc, junk, sizeof(junk));
    put_steps(&f, 2, 2);
    ring_put(&rc, &f);
    st_buf_close(&f.b);
    ck_assert_uint_eq(ring_flush_wait(&rc, 1), 0);
    st_buf_init(&want);
    add_records(&want, 2);
    assert_file_eq(in_dir(D.logdir, "tracer.log"), text_of(&want));
    st_buf_close(&want);
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_skip_longer_than_ring_closes)
{
    struct ring_client rc;
    unsigned char head[ST_WIRE_SKIP_HEAD];

    ring_client_open(&rc, 64 * 1024);
    st_wire_put_skip_head(head, (uint32_t)rc.size);
    ring_write(&rc, head, sizeof(head));
    ring_commit(&rc);
    ring_wake(&rc);
    assert_closed_for(&rc, "SKIP of 65536 bytes in a ring of 65536");
    assert_still_serving();
}
END_TEST

START_TEST(test_ring_waiting_reader_of_nothing_closed)
{
    struct ring_client rc;
    unsigned char skip[ST_WIRE_SKIP_HEAD];
    uint64_t mask;
    long deadline;
    unsigned long i;
    char *err = NULL;

    /* An agent that says it waits but never reads the socket, and keeps
     * the ring busy with empty SKIPs: each take answers with an ACK 0
     * that is never read, until the collector gives the connection up.
     * Closing it from inside the take must not leave the take looking
     * at the ring it just freed; the collector serves on. */
    ring_client_open(&rc, 64 * 1024);
    mask = rc.size - 1;
    st_wire_put_skip_head(skip, 0);
    deadline = now_ms() + WAIT_MS;
    for (i = 0;; i++) {
        uint64_t rd = __atomic_load_n(&rc.hdr->read, __ATOMIC_ACQUIRE);
        size_t k;

        while (rc.wr + sizeof(skip) <= rd + rc.size) {
            for (k = 0; k < sizeof(skip); k++)
                rc.data[(rc.wr + k) & mask] = (char)skip[k];
            rc.wr += sizeof(skip);
        }
        __atomic_store_n(&rc.hdr->writer_waiting, 1, __ATOMIC_SEQ_CST);
        ring_commit(&rc);
        if (i % 64 == 0)
            ring_wake(&rc);
        if (i % 4096 == 0) {
            free(err);
            err = slurp(D.err);
            ck_assert_ptr_nonnull(err);
            if (strstr(err, "does not read its replies") != NULL)
                break;
            ck_assert_msg(now_ms() < deadline,
                          "the collector never gave up on the connection");
        }
    }
    free(err);
    assert_still_serving();
    ring_client_close(&rc);
}
END_TEST

START_TEST(test_ring_skip_cut_short_at_end)
{
    struct ring_client rc;
    unsigned char head[ST_WIRE_SKIP_HEAD];
    static const char some[3] = {0, 0, 0};

    /* A SKIP whose bytes are never all committed, then the socket
     * closes: the connection ends (the SKIP is an error), it does not
     * wait for bytes that cannot come. */
    ring_client_open(&rc, 64 * 1024);
    st_wire_put_skip_head(head, 1000);
    ring_write(&rc, head, sizeof(head));
    ring_write(&rc, some, sizeof(some));
    ring_commit(&rc);
    ring_wake(&rc);
    ck_assert_int_eq(close(rc.fd), 0);
    rc.fd = -1;
    wait_connections_open(1); /* the STATUS connection */
    assert_err_contains("a SKIP of 1000 bytes cut short");
    assert_still_serving();
    ring_client_close(&rc);
}
END_TEST

Suite *
ring_suite(void)
{
    Suite *s = suite_create("ring");

    add_test(s, "ring-all", test_ring_all_mode_exact_text, 1);
    add_test(s, "ring-as-socket", test_ring_same_log_as_socket, 1);
    add_test(s, "ring-polled", test_ring_polled_without_wake, 1);
    add_test(s, "ring-wrap", test_ring_wraps_around, 1);
    add_test(s, "ring-two-commits", test_ring_message_in_two_commits, 1);
    add_test(s, "ring-large", test_ring_large_message_in_pieces, 1);
    add_test(s, "ring-idle", test_ring_idle_then_wake, 1);
    add_test(s, "ring-waiting", test_ring_writer_waiting_gets_ack, 1);
    add_test(s, "ring-size", test_ring_size_granted, 1);
    add_test(s, "ring-vanished", test_ring_end_vanished, 1);
    add_test(s, "ring-signal", test_ring_end_signal, 1);
    add_test(s, "ring-exec", test_ring_end_exec, 1);
    add_test(s, "ring-exit", test_ring_end_exit, 1);
    add_test(s, "ring-unpolled", test_ring_end_applies_unpolled, 1);
    add_test(s, "ring-half", test_ring_end_half_message, 1);
    add_test(s, "ring-regions", test_ring_end_each_open_region, 1);
    add_test(s, "ring-detail", test_ring_end_detail_escaped_and_bounded, 1);
    add_test(s, "ring-signo", test_ring_end_signal_unnamed_or_invalid, 1);
    add_test(s, "ring-stop", test_ring_collector_stop_applies_ring, 1);
    add_test(s, "ring-range", test_ring_commit_out_of_range_closes, 1);
    add_test(s, "ring-garbage", test_ring_garbage_closes, 1);
    add_test(s, "ring-socket", test_ring_socket_bytes_close, 1);
    add_test(s, "ring-socket-short", test_ring_socket_short_bytes_close, 1);
    add_test(s, "ring-over-limit", test_ring_message_over_limit_closes, 1);
    add_test(s, "ring-skip", test_ring_skip_to_next_lap, 1);
    add_test(s, "ring-skip-small", test_ring_skip_small, 1);
    add_test(s, "ring-skip-long", test_ring_skip_longer_than_ring_closes, 1);
    add_test(s, "ring-no-reader", test_ring_waiting_reader_of_nothing_closed,
             1);
    add_test(s, "ring-skip-cut", test_ring_skip_cut_short_at_end, 1);
    return s;
}
