/*
 * File sinks, the collector's file layer: one log file per (connection,
 * tracer_id), claimed as tracer.log or tracer_N.log at its first record.
 * Records are rendered into a queue of chunks, which write jobs
 * (writer.c, in libuv's threadpool) put in the file in order, rotating
 * it at record boundaries.
 *
 * The layer calls nothing above it.  What it needs from the rest of the
 * collector comes through two sets of callbacks, libuv style:
 *
 *  - struct st_sink_env, one for all sinks (the server's): the loop, the
 *    counters, the collector's own limits, the pool of emptied chunks,
 *    the list of orphans, and hooks for the memory bound (pending), the
 *    flush timer, tail subscribers (publish) and the end of each job;
 *  - struct st_sink_owner, per sink (its connection's): a file error for
 *    the next ACK, the file claimed, a job done.
 *
 * Ownership: the owner creates a sink (st__sink_new) and gives it up with
 * st__sink_release, never frees it itself: a sink with bytes still
 * queued lives on as an orphan of its env, without owner callbacks, until
 * they are written, then frees itself.  No callback is made after the
 * owner let go.  Everything here runs on the loop thread except the work
 * of a job (writer.c).
 */
#ifndef STEPTRACE_DAEMON_SINK_H
#define STEPTRACE_DAEMON_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "steptrace/buf.h"

#include "writer.h"

/* A sink hands its buffer to a write job once it holds this much. */
#define ST_SINK_FLUSH_BYTES (64u * 1024)
/* Rotation keeps at most this many backups, whatever a REGION asks for. */
#define ST_MAX_LOG_FILES 1000u

struct st_chunk;
struct st_sink;
struct st_sink_env;
struct st_stats;

/* ---- The owner's callbacks (one set per kind of owner) ---- */

/* A file error, counted for the owner's next ACK (msg is the sink's; copy
 * it to keep it). */
typedef void (*st_sink_error_cb)(struct st_sink *s, const char *msg);
/* The sink claimed its file at `path` (its first record). */
typedef void (*st_sink_claimed_cb)(struct st_sink *s, const char *path);
/* A write job of the sink finished (written or failed).  The owner may
 * release the sink here, which may free it: s is not used after. */
typedef void (*st_sink_done_cb)(struct st_sink *s);

/* A record is about to begin a file (its first, or the first after a
 * rotation): render into b what the file needs before it (a step store's
 * header and state).  Nothing is rendered on failure (b's oom flag). */
typedef void (*st_sink_segment_cb)(struct st_sink *s, struct st_buf *b);

struct st_sink_owner {
    st_sink_error_cb on_error;
    st_sink_claimed_cb on_claimed;
    st_sink_done_cb on_done;
    st_sink_segment_cb on_segment; /* May be NULL. */
};

/* ---- The env's hooks (the server's) ---- */

/* `n` bytes entered a sink queue (added != 0) or left one, written or
 * dropped. */
typedef void (*st_sink_pending_cb)(struct st_sink_env *env, size_t n,
                                   int added);
/* Bytes are queued that no job will take until a flush: call
 * st__sink_flush on the env's sinks soon (the flush timer). */
typedef void (*st_sink_arm_cb)(struct st_sink_env *env);
/* A record or line of s reached its queue (or a loss line its file):
 * the text, for tail subscribers. */
typedef void (*st_sink_publish_cb)(struct st_sink *s, const char *text,
                                   size_t n);
/* A job finished and its sink's owner was told (or the orphan freed):
 * memory was given back. */
typedef void (*st_sink_job_cb)(struct st_sink_env *env);

struct st_sink_hooks {
    st_sink_pending_cb pending;
    st_sink_arm_cb arm_flush;
    st_sink_publish_cb publish;
    st_sink_job_cb job_done;
};

/*
 * What every sink shares.  Public fields: loop, stats, data and the two
 * limits, set by whoever made the env; the rest is the layer's.
 */
struct st_sink_env {
    uv_loop_t *loop;        /* Borrowed: where the jobs are queued. */
    struct st_stats *stats; /* Borrowed: the counters sinks bump. */
    const struct st_sink_hooks *hooks; /* Borrowed; every hook is set. */
    void *data;                        /* The env's maker's (the server). */
    /* The collector's own limits, which win over a region's (0: the
     * regions decide). */
    uint64_t max_log_bytes;
    uint32_t max_log_files;
    struct st_chunk *pool; /* Owned list of emptied chunks. */
    size_t npool;
    struct st_sink *orphans; /* Owned: sinks draining without an
                                owner (linked by onext / oprev). */
};

struct st_sink {
    /* Public: read by anyone, written by the owner only where said. */
    struct st_sink_env *env; /* Borrowed. */
    void *data;              /* The owner's; NULL once released. */
    uint32_t tracer_id;
    pid_t pid;             /* The writer's pid, for tail (set by
                              the owner). */
    uint64_t epoch;        /* The owner's FLUSH epoch, stamped on
                              new chunks (st__sink_new and
                              st__sink_seal set it). */
    char *path;            /* Owned: claimed file; NULL until
                              claimed. */
    size_t queued;         /* Bytes in the queue (pending): the
                              owner reads it. */
    struct st_sink *onext; /* The env's list of orphans. */
    struct st_sink *oprev;
    /* Private. */
    int binary; /* A step store (.steps): not published to tail, loss
                   lines as SLOST records (st__sink_pair). */
    struct st_sink *partner;           /* Borrowed: the tracer's other file,
                                          claimed with the same number; NULL. */
    const struct st_sink_owner *owner; /* Borrowed; NULL once released. */
    char *dir;                         /* Owned: absolute log directory. */
    int fd;                            /* -1 while closed.  The job's while
                                          busy. */
    int busy;                          /* A write job is out: job and fd are
                                          its. */
    int broken;                        /* Claim failed: drop records until the
                                          next flush tick retries. */
    int rotate_off;                    /* A rename failed: append until
                                          reopened. */
    int reopen;                        /* SIGHUP while busy: close after the
                                          job. */
    int flush_all;                     /* Write everything queued, however
                                          small. */
    uint64_t logical_size; /* File size once the queue is written. */
    uint64_t max_bytes;    /* 0: no rotation. */
    uint32_t max_files;    /* Backups to keep; 0: no rotation. */
    struct st_chunk *head; /* Owned queue; head is the job's when
                              busy. */
    struct st_chunk *tail;
    size_t mark;               /* Start of the record being rendered. */
    uint64_t lost;             /* Records lost whose line is not
                                  written. */
    uint64_t lost_sent;        /* Of those, counted in the job's line. */
    int split;                 /* The file may end inside a record. */
    char *lost_why;            /* Owned: the cause, for that line. */
    size_t lost_line_len;      /* Its length (a record may hold NUL). */
    char *lost_line;           /* Owned: the line the job in flight
                                  writes. */
    char *logged;              /* Owned: last error logged (dedup) or
                                  NULL. */
    size_t job_chunks;         /* Chunks of the queue's head the job
                                  out writes. */
    struct st_chunk *job_last; /* Borrowed: the last of them; NULL when
                                  no job is out. */
    uint64_t job_records;      /* Their records. */
    struct st_write_job job;
};

/*
 * Initialises an env with no sinks; every hook must be set.  The limits
 * start at 0 (the regions decide).  Pairs with st__sink_pool_free once
 * every sink is gone.
 */
void st__sink_env_init(struct st_sink_env *env, uv_loop_t *loop,
                       struct st_stats *stats,
                       const struct st_sink_hooks *hooks, void *data);
/* Frees the env's pool of emptied chunks (at exit, or when no owner is
 * left). */
void st__sink_pool_free(struct st_sink_env *env);

/*
 * Allocates a sink for files in `dir` (absolute, dir_len bytes, trailing
 * slashes dropped), owned by `data` with callbacks `owner` (borrowed;
 * every callback set), its chunks stamped with FLUSH epoch `epoch`.  No
 * file is touched until the first record.
 * @return 0 and *out, or ST_ENOMEM (no callback is made).  The owner
 * gives it up with st__sink_release().
 */
int st__sink_new(struct st_sink_env *env, const struct st_sink_owner *owner,
                 void *data, uint64_t epoch, uint32_t tracer_id,
                 const char *dir, size_t dir_len, struct st_sink **out);
/*
 * The owner is done with the sink: no callback is made any more;
 * everything queued is written (the sink lives on as an orphan of its env
 * until then) and the sink is freed.
 */
void st__sink_release(struct st_sink *s);
/* Frees an idle sink (no job out) at once, without its owner's
 * callbacks.  Its chunks go to the env's pool. */
void st__sink_free(struct st_sink *s);
/*
 * Makes `store` (new, nothing committed) the step store of `text`'s
 * tracer: it writes tracer[_N].steps, and the first record of either
 * claims both names with one number.  `text` may be NULL (steps only).
 * FILE (on_claimed) names the text file when there is one.
 */
void st__sink_pair(struct st_sink *text, struct st_sink *store);
/* Sets the rotation limits (from the latest REGION of the tracer, capped
 * by the env's max_log_bytes / max_log_files). */
void st__sink_configure(struct st_sink *s, uint64_t max_bytes,
                        uint32_t max_files);
/* Starts a record: render it into the returned buffer, then commit. */
struct st_buf *st__sink_begin(struct st_sink *s);
/*
 * Ends the record started by st__sink_begin: claims the file at the first
 * record, marks a rotation before the record when it would push the file
 * past max_bytes, and hands the queue to a write job when it is large.  A
 * record whose rendering ran out of memory is dropped and counted.
 * @return 0 or a negative error (already counted, logged and given to
 * on_error).
 */
int st__sink_commit(struct st_sink *s);
/* Ends what was put since st__sink_begin as bytes that are not a
 * record (a step store's definitions). */
int st__sink_note_end(struct st_sink *s);
/* Appends one line that is not a record ("[steptrace] ..."), with a
 * newline added. */
void st__sink_note(struct st_sink *s, const char *line);
/* Writes everything queued, however little (flush timer, FLUSH, stop). */
void st__sink_flush(struct st_sink *s);
/* FLUSH: later records go to a new chunk of FLUSH epoch `epoch`, so that
 * the queued ones show when everything before the FLUSH is written. */
void st__sink_seal(struct st_sink *s, uint64_t epoch);
/* @return 1 when no record rendered before FLUSH epoch `epoch` is still
 * waiting to be written. */
int st__sink_done_with(const struct st_sink *s, uint64_t epoch);
/* SIGHUP: closes the file once its queue is written; the next write
 * reopens the same name for appending. */
void st__sink_reopen(struct st_sink *s);

#endif /* STEPTRACE_DAEMON_SINK_H */
