/*
 * File sinks (SPEC section 4): one log file per (connection, tracer_id),
 * claimed as tracer.log or tracer_N.log at its first record.  Records are
 * rendered into a queue of chunks, which write jobs (writer.c) put in the
 * file in order, rotating it at record boundaries.
 *
 * Ownership: a connection creates its sinks (st__sink_new) and gives each
 * up with st__sink_release, never frees it itself: a sink with bytes
 * still queued lives on as an orphan of the server until they are
 * written.
 */
#ifndef STEPTRACE_DAEMON_SINK_H
#define STEPTRACE_DAEMON_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "steptrace/buf.h"

#include "writer.h"

/* A sink hands its buffer to a write job once it holds this much. */
#define ST_SINK_FLUSH_BYTES (64u * 1024)
/* Rotation keeps at most this many backups, whatever a REGION asks for. */
#define ST_MAX_LOG_FILES 1000u

struct st_server;
struct st_conn;

/* Rendered records on their way to the file, in order. */
struct st_chunk {
    struct st_chunk *next;
    struct st_buf b;         /* Owned: whole records. */
    uint64_t nrecords;       /* Records in b (notes are not records). */
    uint64_t epoch;          /* The owner's FLUSH epoch when created. */
    int rotate;              /* Rotate the file before writing b. */
    int sealed;              /* A FLUSH closed it: records go to a new one. */
};

struct st_sink {
    struct st_server *srv;   /* Borrowed. */
    struct st_conn *conn;    /* Borrowed owner; NULL once the connection
                                is gone and the sink drains alone. */
    struct st_sink *onext;   /* Server's list of such orphans. */
    struct st_sink *oprev;
    uint32_t tracer_id;
    pid_t pid;               /* The writer's pid (for tail). */
    char *dir;               /* Owned: absolute log directory. */
    char *path;              /* Owned: claimed file; NULL until claimed. */
    int fd;                  /* -1 while closed.  The job's while busy. */
    int busy;                /* A write job is out: job and fd are its. */
    int broken;              /* Claim failed: drop records until the next
                                flush tick retries. */
    int rotate_off;          /* A rename failed: append until reopened. */
    int reopen;              /* SIGHUP while busy: close after the job. */
    int flush_all;           /* Write everything queued, however small. */
    uint64_t logical_size;   /* File size once the queue is written. */
    uint64_t max_bytes;      /* 0: no rotation. */
    uint32_t max_files;      /* Backups to keep; 0: no rotation. */
    struct st_chunk *head;   /* Owned queue; head is the job's when busy. */
    struct st_chunk *tail;
    size_t queued;           /* Bytes in the queue (pending). */
    size_t mark;             /* Start of the record being rendered. */
    uint64_t lost;           /* Records lost whose line is not written. */
    uint64_t lost_sent;      /* Of those, counted in the job's line. */
    int split;               /* The file may end inside a record. */
    char *lost_why;          /* Owned: the cause, for that line. */
    char *lost_line;         /* Owned: the line the job in flight writes. */
    char *logged;            /* Owned: last error logged (dedup) or NULL. */
    struct st_write_job job;
};

/*
 * Allocates a sink for files in `dir` (absolute, dir_len bytes, trailing
 * slashes dropped), owned by connection c.  No file is touched until the
 * first record.  @return 0 and *out, or ST_ENOMEM.  The connection gives
 * it up with st__sink_release(), never frees it itself.
 */
int st__sink_new(struct st_conn *c, uint32_t tracer_id, const char *dir,
                 size_t dir_len, struct st_sink **out);
/*
 * The owner is done with the sink: everything queued is written (the sink
 * lives on as an orphan of the server until then) and the sink is freed.
 */
void st__sink_release(struct st_sink *s);
/* Frees an idle sink (no job out).  For the server's last cleanup.  Its
 * chunks go to the server's pool. */
void st__sink_free(struct st_sink *s);
/* Frees the server's pool of emptied chunks (at exit, or when no
 * connection is left). */
void st__sink_pool_free(struct st_server *srv);
/* Sets the rotation limits (from the latest REGION of the tracer, capped
 * by the collector's own max_log_bytes / max_log_files). */
void st__sink_configure(struct st_sink *s, uint64_t max_bytes,
                        uint32_t max_files);
/* Starts a record: render it into the returned buffer, then commit. */
struct st_buf *st__sink_begin(struct st_sink *s);
/*
 * Ends the record started by st__sink_begin: claims the file at the first
 * record, marks a rotation before the record when it would push the file
 * past max_bytes, and hands the queue to a write job when it is large.  A
 * record whose rendering ran out of memory is dropped and counted.
 * @return 0 or a negative error (already counted and logged).
 */
int st__sink_commit(struct st_sink *s);
/* Appends one line that is not a record ("[steptrace] ..."), with a
 * newline added. */
void st__sink_note(struct st_sink *s, const char *line);
/* Writes everything queued, however little (flush timer, FLUSH, stop). */
void st__sink_flush(struct st_sink *s);
/* FLUSH: later records go to a new chunk, so that the queued ones show
 * when everything before the FLUSH is written. */
void st__sink_seal(struct st_sink *s);
/* @return 1 when no record rendered before FLUSH epoch `epoch` is still
 * waiting to be written. */
int st__sink_done_with(const struct st_sink *s, uint64_t epoch);
/* @return 1 when nothing is queued and no job is out. */
int st__sink_idle(const struct st_sink *s);
/* SIGHUP: closes the file once its queue is written; the next write
 * reopens the same name for appending. */
void st__sink_reopen(struct st_sink *s);


#endif /* STEPTRACE_DAEMON_SINK_H */
