/*
 * The file operations of the sinks (writer.c): claiming a new file's name
 * (on the loop), and the threadpool side of a write job: rotate the file
 * if asked, open it if needed, write the loss line and the chunks with
 * one writev(2), and report what happened in the job's out fields.  The
 * loop side (sink.c) fills a struct st_write_job, queues it with
 * uv_queue_work(..., st__writer_work, ...) and applies the results in its
 * after-work callback; a job touches nothing but itself and the
 * descriptor it was given.
 */
#ifndef STEPTRACE_DAEMON_WRITER_H
#define STEPTRACE_DAEMON_WRITER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

/* Chunks one write job takes at most (one writev). */
#define ST_WRITE_MAX_CHUNKS 16
/* tracer_N.log names tried before giving up. */
#define ST_MAX_CLAIM 100000u

/* What st__writer_claim was doing when it failed. */
enum st_claim_step { ST_CLAIM_DIR = 1, ST_CLAIM_NAME, ST_CLAIM_OPEN };

/*
 * One job of the threadpool: the loop fills the inputs, writer.c's work
 * callback does the file calls and fills the outputs, and the loop applies
 * them in the after-work callback.  Lives in its sink; used by one job at
 * a time.  A job writes the first chunks of the sink's queue with one
 * writev: several, when the queue grew while the previous job was out, so
 * that the writer keeps up in fewer, larger writes.
 */
struct st_write_job {
    uv_work_t req; /* First member: the work callback finds the
                      job through it.  req.data is the loop
                      side's (the sink). */
    /* In (set by the loop, read-only for the worker). */
    int fd;             /* -1: open path first. */
    const char *path;   /* Borrowed: the sink's path. */
    const char *dir;    /* Borrowed: the sink's directory. */
    const char *prefix; /* Borrowed: loss line to write first, or NULL. */
    size_t prefix_len;
    int rotate; /* Rotate the file first (the first chunk
                   asks for it; no other chunk of the job
                   does). */
    struct iovec iov[ST_WRITE_MAX_CHUNKS + 1]; /* The loss line, then the
                                chunks' bytes (borrowed). */
    int niov;
    size_t bytes;       /* The chunks' bytes (without the loss line). */
    uint32_t max_files; /* For a rotation. */
    /* Out (set by the worker). */
    int fd_out;     /* Descriptor after the job, or -1. */
    int open_err;   /* Negative errno: could not open. */
    int write_err;  /* Negative errno: the write failed (the
                       chunk is not in the file). */
    int rotate_err; /* Negative errno: a rotation failed. */
    int rotated;
    int split;     /* A partial write could not be taken back. */
    uint64_t size; /* File size after the job. */
};

/* The work callback of a write job (threadpool): req is the job's. */
void st__writer_work(uv_work_t *req);
/*
 * Claims a new log file in `dir` (made first, mode 0750, if missing):
 * tracer.log, else the first free tracer_N.log, created with O_EXCL so
 * that the claim is atomic against every other tracer and process using
 * the directory.  Runs on the loop thread (once per file).
 * @return the descriptor, open for appending, with its name in path
 *         (pathlen bytes); or a negative errno, *step then saying what
 *         failed: ST_CLAIM_DIR making the directory, ST_CLAIM_NAME no
 *         name (-ENAMETOOLONG, or -EEXIST when ST_MAX_CLAIM names are
 *         taken), ST_CLAIM_OPEN creating `path`.
 */
int st__writer_claim(const char *dir, char *path, size_t pathlen, int *step);
/*
 * The same for a set of files of one tracer with the same number, one per
 * extension (".log", ".steps"): all are made, or none (those made are
 * removed and the next number is tried).  @return 0 with fds[i] and
 * paths[i] (PATH_MAX bytes each) for exts[i], or a negative errno and
 * *step, paths[0] then naming the file that failed.
 */
int st__writer_claim_set(const char *dir, const char *const *exts, int n,
                         char (*paths)[PATH_MAX], int *fds, int *step);
/*
 * The fault seam for the tests: with STEPTRACED_FAULT_FILE set in the
 * environment (read once at startup), every log write fails while that
 * file exists, with the errno named in it (ENOSPC, EIO, EDQUOT, EFBIG;
 * default ENOSPC), or, when it says "DELAY <ms>", every write job first
 * sleeps that long (a slow disk).
 */
void st__writer_init_faults(void);

#endif /* STEPTRACE_DAEMON_WRITER_H */
