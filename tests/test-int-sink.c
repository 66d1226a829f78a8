/*
 * White-box tests of the collector's file layer alone (daemon/sink.c,
 * chunk.c, writer.c): real files in the test's temporary directory and a
 * real uv loop, with counting callbacks in place of the server and the
 * connection (libuv's idiom: count the callbacks, run the loop, assert
 * the counts, then close everything and check that uv_loop_close() is
 * clean).
 */
#include "test-common.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "steptrace/buf.h"
#include "steptrace/error.h"

#include "../daemon/log.h"
#include "../daemon/sink.h"
#include "../daemon/stats.h"
#include "../daemon/writer.h"

#define xsnprintf(buf, ...)                                                   \
    ck_assert_int_lt(snprintf((buf), sizeof(buf), __VA_ARGS__),               \
                     (int)sizeof(buf))

/* Everything the callbacks saw, the loop and env they run in, and the
 * test's directory. */
static struct {
    char dir[PATH_MAX];    /* The test's own (ST_TEST_KEEP=1 keeps it). */
    char logdir[PATH_MAX]; /* dir/.tracer, not made in advance. */
    uv_loop_t loop;
    struct st_stats stats;
    struct st_sink_env env;
    size_t pending; /* Bytes queued, as the pending hook says. */
    int arm_calls;
    int publish_calls;
    struct st_buf published; /* Every text published, in order. */
    int job_calls;
    int error_calls;
    char error[PATH_MAX + 128]; /* The latest error. */
    int claimed_calls;
    char claimed[PATH_MAX];
    int done_calls;
} T;

static void
hook_pending(struct st_sink_env *env, size_t n, int added)
{
    ck_assert_ptr_eq(env, &T.env);
    if (!added)
        ck_assert_uint_ge(T.pending, n);
    T.pending = added ? T.pending + n : T.pending - n;
}

static void
hook_arm_flush(struct st_sink_env *env)
{
    ck_assert_ptr_eq(env->data, &T);
    T.arm_calls++;
}

static void
hook_publish(struct st_sink *s, const char *text, size_t n)
{
    ck_assert_ptr_eq(s->env, &T.env);
    T.publish_calls++;
    ck_assert_int_eq(st_buf_append(&T.published, text, n), 0);
}

static void
hook_job_done(struct st_sink_env *env)
{
    T.job_calls++;
}

static const struct st_sink_hooks hooks = {
    .pending = hook_pending,
    .arm_flush = hook_arm_flush,
    .publish = hook_publish,
    .job_done = hook_job_done,
};

static void
owner_error(struct st_sink *s, const char *msg)
{
    ck_assert_ptr_eq(s->data, &T);
    T.error_calls++;
    xsnprintf(T.error, "%s", msg);
}

static void
owner_claimed(struct st_sink *s, const char *path)
{
    ck_assert_ptr_eq(s->data, &T);
    ck_assert_str_eq(s->path, path);
    T.claimed_calls++;
    xsnprintf(T.claimed, "%s", path);
}

static void
owner_done(struct st_sink *s)
{
    ck_assert_ptr_eq(s->data, &T);
    T.done_calls++;
}

static const struct st_sink_owner owner = {
    .on_error = owner_error,
    .on_claimed = owner_claimed,
    .on_done = owner_done,
};

/* A loop, an env and a directory; the file errors the layer logs stay
 * off stderr. */
static void
env_setup(void)
{
    const char *tmp = getenv("TMPDIR");

    memset(&T, 0, sizeof(T));
    xsnprintf(T.dir, "%s/st-int-sink-XXXXXX",
              tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(T.dir));
    xsnprintf(T.logdir, "%s/.tracer", T.dir);
    st_buf_init(&T.published);
    ck_assert_int_eq(uv_loop_init(&T.loop), 0);
    st__sink_env_init(&T.env, &T.loop, &T.stats, &hooks, &T);
    st__log_set_quiet(1);
}

static int
remove_entry(const char *path, const struct stat *st, int flag,
             struct FTW *ftw)
{
    return remove(path);
}

/* Every sink gone: nothing is pending, and the loop closes clean. */
static void
env_teardown(void)
{
    ck_assert_ptr_null(T.env.orphans);
    ck_assert_uint_eq(T.pending, 0);
    st__sink_pool_free(&T.env);
    ck_assert_int_eq(uv_loop_close(&T.loop), 0);
    st_buf_close(&T.published);
    if (getenv("ST_TEST_KEEP") == NULL)
        nftw(T.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct st_sink *
sink_open(const char *dir, uint32_t tracer_id)
{
    struct st_sink *s = NULL;

    ck_assert_int_eq(st__sink_new(&T.env, &owner, &T, 1, tracer_id, dir,
                                  strlen(dir), &s),
                     0);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Renders one record and commits it.  @return what the commit says. */
static int
put(struct st_sink *s, const char *text)
{
    ck_assert_int_eq(st_buf_puts(st__sink_begin(s), text), 0);
    return st__sink_commit(s);
}

/* Writes everything s holds: the loop runs until no job is out. */
static void
drain(struct st_sink *s)
{
    st__sink_flush(s);
    ck_assert_int_ge(uv_run(&T.loop, UV_RUN_DEFAULT), 0);
    ck_assert(!s->busy);
    ck_assert_uint_eq(s->queued, 0);
}

/* `name` in directory `dir`, in a buffer that the next call reuses. */
static const char *
in_dir(const char *dir, const char *name)
{
    static char path[PATH_MAX];

    xsnprintf(path, "%s/%s", dir, name);
    return path;
}

/* The file holds `expected` (a few KiB at most), byte for byte. */
static void
assert_file_eq(const char *path, const char *expected)
{
    char text[8192];
    FILE *f = fopen(path, "r");
    size_t n;

    ck_assert_msg(f != NULL, "%s does not exist", path);
    n = fread(text, 1, sizeof(text) - 1, f);
    ck_assert_int_eq(fclose(f), 0);
    text[n] = '\0';
    ck_assert_str_eq(text, expected);
}

static void
assert_missing(const char *path)
{
    ck_assert_msg(access(path, F_OK) != 0, "%s exists", path);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* The first record claims tracer.log, in a directory made for it (its
 * trailing slashes dropped); the owner hears of it once. */
START_TEST(test_sink_claims_tracer_log)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct st_sink *s;

    xsnprintf(dir, "%s/a/b///", T.logdir);
    xsnprintf(path, "%s/a/b/tracer.log", T.logdir);
    s = sink_open(dir, 7);
    assert_missing(in_dir(T.logdir, "a"));
    ck_assert_int_eq(put(s, "one\n"), 0);
    ck_assert_int_eq(T.claimed_calls, 1);
    ck_assert_str_eq(T.claimed, path);
    ck_assert_str_eq(s->path, path);
    /* Queued, not written: the flush timer is asked for. */
    ck_assert_uint_eq(s->queued, 4);
    ck_assert_uint_eq(T.pending, 4);
    ck_assert_int_eq(T.arm_calls, 1);
    ck_assert_int_eq(put(s, "two\n"), 0);
    ck_assert_int_eq(T.claimed_calls, 1);
    drain(s);
    assert_file_eq(path, "one\ntwo\n");
    ck_assert_uint_eq(s->queued, 0);
    ck_assert_int_eq(T.done_calls, 1);
    ck_assert_int_eq(T.job_calls, 1);
    ck_assert_int_eq(T.error_calls, 0);
    ck_assert_uint_eq(T.stats.records_rendered, 2);
    ck_assert_uint_eq(T.stats.records_written, 2);
    ck_assert_uint_eq(T.stats.bytes_written, 8);
    ck_assert_buf_str_eq(&T.published, "one\ntwo\n");
    st__sink_release(s);
}
END_TEST

/* Taken names are skipped with O_EXCL: files already there stay as they
 * are, and two sinks of one directory never share a file. */
START_TEST(test_sink_claims_next_free_name)
{
    struct st_sink *a, *b;

    ck_assert_int_eq(mkdir(T.logdir, 0700), 0);
    write_file(in_dir(T.logdir, "tracer.log"), "old\n");
    write_file(in_dir(T.logdir, "tracer_1.log"), "old 1\n");
    a = sink_open(T.logdir, 1);
    b = sink_open(T.logdir, 2);
    ck_assert_int_eq(put(a, "a\n"), 0);
    ck_assert_str_eq(T.claimed, in_dir(T.logdir, "tracer_2.log"));
    ck_assert_int_eq(put(b, "b\n"), 0);
    ck_assert_str_eq(T.claimed, in_dir(T.logdir, "tracer_3.log"));
    ck_assert_int_eq(T.claimed_calls, 2);
    drain(a);
    drain(b);
    assert_file_eq(in_dir(T.logdir, "tracer.log"), "old\n");
    assert_file_eq(in_dir(T.logdir, "tracer_1.log"), "old 1\n");
    assert_file_eq(in_dir(T.logdir, "tracer_2.log"), "a\n");
    assert_file_eq(in_dir(T.logdir, "tracer_3.log"), "b\n");
    st__sink_release(a);
    st__sink_release(b);
}
END_TEST

/* A directory that cannot be made: the error goes to the owner once, the
 * records are dropped and counted, and no claim is tried again before
 * the next flush tick. */
START_TEST(test_sink_claim_failure_reported)
{
    char dir[PATH_MAX], msg[PATH_MAX + 128];
    struct st_sink *s;

    write_file(in_dir(T.dir, "plain"), "");
    xsnprintf(dir, "%s/plain/logs", T.dir);
    xsnprintf(msg, "cannot create log directory %s: %s", dir,
              st_strerror(-ENOTDIR));
    s = sink_open(dir, 1);
    ck_assert_int_eq(put(s, "lost\n"), -ENOTDIR);
    ck_assert_int_eq(T.error_calls, 1);
    ck_assert_str_eq(T.error, msg);
    ck_assert_int_eq(put(s, "lost too\n"), -EACCES);
    ck_assert_int_eq(T.error_calls, 1);
    ck_assert_int_eq(T.claimed_calls, 0);
    ck_assert_int_eq(T.arm_calls, 2);
    ck_assert_uint_eq(T.stats.dropped_open, 2);
    ck_assert_uint_eq(s->lost, 2);
    ck_assert_uint_eq(s->queued, 0);
    ck_assert_int_eq(T.publish_calls, 0);
    st__sink_release(s);
}
END_TEST

/* A record that would push the file past max_bytes goes to a new file;
 * the backups shift up (name.1, name.2) and the oldest beyond max_files
 * is gone. */
START_TEST(test_sink_rotation_names_and_limit)
{
    const char *log = in_dir(T.logdir, "tracer.log");
    char p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX];
    struct st_sink *s = sink_open(T.logdir, 1);

    xsnprintf(p1, "%s.1", log);
    xsnprintf(p2, "%s.2", log);
    xsnprintf(p3, "%s.3", log);
    st__sink_configure(s, 10, 2);
    ck_assert_int_eq(put(s, "aaaaa\n"), 0);
    ck_assert_int_eq(put(s, "bbbbb\n"), 0);
    ck_assert_int_eq(put(s, "ccccc\n"), 0);
    ck_assert_int_eq(put(s, "ddddd\n"), 0);
    drain(s);
    assert_file_eq(s->path, "ddddd\n");
    assert_file_eq(p1, "ccccc\n");
    assert_file_eq(p2, "bbbbb\n");
    assert_missing(p3);
    ck_assert_uint_eq(T.stats.rotations, 3);
    ck_assert_uint_eq(T.stats.rotate_errors, 0);
    ck_assert_uint_eq(T.stats.records_written, 4);
    /* One job per file: a chunk that rotates starts its own job. */
    ck_assert_int_eq(T.done_calls, 4);
    /* A record larger than the limit still goes whole into a fresh
     * file. */
    ck_assert_int_eq(put(s, "a record longer than ten bytes\n"), 0);
    drain(s);
    assert_file_eq(s->path, "a record longer than ten bytes\n");
    assert_file_eq(p1, "ddddd\n");
    ck_assert_uint_eq(T.stats.rotations, 4);
    st__sink_release(s);
}
END_TEST

/* The collector's own limits win over a region's, and no region keeps
 * more than ST_MAX_LOG_FILES backups. */
START_TEST(test_sink_rotation_limits_capped)
{
    struct st_sink *s = sink_open(T.logdir, 1);

    st__sink_configure(s, 1000, 5000);
    ck_assert_uint_eq(s->max_bytes, 1000);
    ck_assert_uint_eq(s->max_files, ST_MAX_LOG_FILES);
    T.env.max_log_files = 3;
    st__sink_configure(s, 1000, 5);
    ck_assert_uint_eq(s->max_files, 3);
    /* A region that wants no rotation still rotates at the collector's
     * max_log_bytes, keeping 10 backups. */
    T.env.max_log_files = 0;
    T.env.max_log_bytes = 100;
    st__sink_configure(s, 0, 0);
    ck_assert_uint_eq(s->max_bytes, 100);
    ck_assert_uint_eq(s->max_files, 10);
    st__sink_configure(s, 50, 2);
    ck_assert_uint_eq(s->max_bytes, 50);
    ck_assert_uint_eq(s->max_files, 2);
    st__sink_configure(s, 500, 2);
    ck_assert_uint_eq(s->max_bytes, 100);
    st__sink_release(s);
}
END_TEST

/* A failed write is reported through on_error and counted; the next
 * write that succeeds starts with the line that says what was lost. */
START_TEST(test_sink_write_error_reported)
{
    char fault[PATH_MAX], msg[PATH_MAX + 128], expect[2 * PATH_MAX];
    struct st_sink *s = sink_open(T.logdir, 1);

    xsnprintf(fault, "%s/fault", T.dir);
    write_file(fault, "EIO\n");
    ck_assert_int_eq(setenv("STEPTRACED_FAULT_FILE", fault, 1), 0);
    st__writer_init_faults();
    ck_assert_int_eq(put(s, "first\n"), 0);
    drain(s);
    xsnprintf(msg, "cannot write %s: %s", s->path, st_strerror(-EIO));
    ck_assert_int_eq(T.error_calls, 1);
    ck_assert_str_eq(T.error, msg);
    ck_assert_int_eq(T.done_calls, 1);
    ck_assert_uint_eq(T.stats.write_errors, 1);
    ck_assert_uint_eq(T.stats.dropped_write, 1);
    ck_assert_uint_eq(T.stats.records_written, 0);
    ck_assert_uint_eq(s->lost, 1);
    assert_file_eq(s->path, "");
    ck_assert_int_eq(unlink(fault), 0);
    ck_assert_int_eq(put(s, "second\n"), 0);
    drain(s);
    xsnprintf(expect, "[steptrace] 1 records lost: %s\nsecond\n", msg);
    assert_file_eq(s->path, expect);
    ck_assert_uint_eq(s->lost, 0);
    ck_assert_int_eq(T.error_calls, 1);
    ck_assert_uint_eq(T.stats.records_written, 1);
    /* Tail subscribers see the loss line too, after the records. */
    xsnprintf(expect, "first\nsecond\n[steptrace] 1 records lost: %s\n", msg);
    ck_assert_buf_str_eq(&T.published, expect);
    st__sink_release(s);
}
END_TEST

/* NOTE lines: written in order with the records, a newline added, not
 * counted as records; a note alone claims the file too. */
START_TEST(test_sink_note_lines)
{
    struct st_sink *s = sink_open(T.logdir, 1);

    st__sink_note(s, "[steptrace] started by pid 1");
    ck_assert_int_eq(T.claimed_calls, 1);
    ck_assert_int_eq(put(s, "record\n"), 0);
    st__sink_note(s, "[steptrace] step 1 started pid 2");
    drain(s);
    assert_file_eq(s->path, "[steptrace] started by pid 1\nrecord\n"
                            "[steptrace] step 1 started pid 2\n");
    ck_assert_uint_eq(T.stats.records_rendered, 1);
    ck_assert_uint_eq(T.stats.records_written, 1);
    ck_assert_int_eq(T.publish_calls, 3);
    st__sink_release(s);
}
END_TEST

/* FLUSH epochs: records before a seal are done with once written, and a
 * seal's later records go to a chunk of the new epoch. */
START_TEST(test_sink_flush_epochs)
{
    struct st_sink *s = sink_open(T.logdir, 1);

    ck_assert(st__sink_done_with(s, 1));
    ck_assert_int_eq(put(s, "before\n"), 0);
    ck_assert(!st__sink_done_with(s, 1));
    st__sink_seal(s, 2);
    ck_assert_int_eq(put(s, "after\n"), 0);
    ck_assert(!st__sink_done_with(s, 1));
    drain(s);
    ck_assert(st__sink_done_with(s, 1));
    ck_assert(st__sink_done_with(s, 2));
    assert_file_eq(s->path, "before\nafter\n");
    st__sink_release(s);
}
END_TEST

/* Released with records queued: the sink drains alone as an orphan of
 * the env, calls its old owner no more, and frees itself. */
START_TEST(test_sink_release_drains_orphan)
{
    struct st_sink *s = sink_open(T.logdir, 1);
    char path[PATH_MAX];

    ck_assert_int_eq(put(s, "queued\n"), 0);
    xsnprintf(path, "%s", s->path);
    st__sink_release(s);
    ck_assert_ptr_eq(T.env.orphans, s);
    ck_assert_int_ge(uv_run(&T.loop, UV_RUN_DEFAULT), 0);
    ck_assert_ptr_null(T.env.orphans);
    ck_assert_int_eq(T.done_calls, 0);
    ck_assert_int_eq(T.job_calls, 1);
    assert_file_eq(path, "queued\n");
}
END_TEST

Suite *
sink_suite(void)
{
    Suite *s = suite_create("sink");
    struct {
        const char *name;
        const TTest *test;
    } tests[] = {
        {"claim", test_sink_claims_tracer_log},
        {"claim-next", test_sink_claims_next_free_name},
        {"claim-failure", test_sink_claim_failure_reported},
        {"rotation", test_sink_rotation_names_and_limit},
        {"rotation-limits", test_sink_rotation_limits_capped},
        {"write-error", test_sink_write_error_reported},
        {"note", test_sink_note_lines},
        {"epochs", test_sink_flush_epochs},
        {"orphan", test_sink_release_drains_orphan},
    };
    size_t i;

    for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        TCase *tc = tcase_create(tests[i].name);

        tcase_add_checked_fixture(tc, env_setup, env_teardown);
        tcase_add_test(tc, tests[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}
