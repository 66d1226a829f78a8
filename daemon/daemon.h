/*
 * steptraced internals: the server (listener, signals, timers), the
 * per-connection protocol state, the file sinks and the id maps they use.
 * Nothing here is public; the functions shared across daemon/ files carry
 * the st__ prefix.
 *
 * Threading: everything runs on the one libuv loop thread, except the
 * file work of the sinks (open, write, rotate), which runs in libuv's
 * threadpool as one job at a time per sink (writer.c); a job touches only
 * its struct st_write_job and the sink's descriptor, which the loop leaves
 * alone while the job is out.  Handlers never block on a peer.
 *
 * Memory: everything received and not yet written (unprocessed bytes of
 * the read buffers, rendered records waiting for their write) is
 * "pending"; pending plus the collector's own reserve is bounded by
 * max_pending_bytes (pressure.c): above it the connections that produce
 * stop being read and processed, so that the pressure reaches the agents
 * through their sockets.
 */
#ifndef STEPTRACE_DAEMON_DAEMON_H
#define STEPTRACE_DAEMON_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <uv.h>

#include "steptrace/buf.h"
#include "steptrace/record.h"
#include "steptrace/wire.h"

/* A sink hands its buffer to a write job once it holds this much. */
#define ST_SINK_FLUSH_BYTES (64u * 1024)
/* Emptied chunks the server keeps for reuse (about 68 KiB each), so that
 * busy sinks allocate none; bounded so that an idle collector holds
 * little. */
#define ST_CHUNK_POOL 8u
/* Chunks one write job takes at most (one writev). */
#define ST_WRITE_MAX_CHUNKS 16
/* Default bound on the collector's memory (max_pending_bytes). */
#define ST_DEFAULT_MAX_PENDING (64u * 1024 * 1024)
/* Memory an open connection holds whatever it sends: a read buffer and
 * room for the chunks it fills (pressure.c keeps it out of the pending
 * budget). */
#define ST_CONN_RESERVE (ST_READ_CHUNK + 2 * ST_SINK_FLUSH_BYTES)
/* Room left for what goes past the threshold before producers stop (one
 * record and one read per connection). */
#define ST_PRESSURE_MARGIN (2u << 20)
/* How often the collector measures its resident size (pressure.c). */
#define ST_MEASURE_MS 100
/* Bytes of TEXT a slow tail subscriber may have queued before records
 * are skipped for it. */
#define ST_TAIL_MAX_QUEUED (4u * 1024 * 1024)
/* How long SIGTERM waits for connections to drain before closing them. */
#define ST_STOP_DRAIN_MS 10000
/* Buffered records reach the file at most this long after being rendered
 * (so that the log of a program that hangs shows where it is). */
#define ST_SINK_FLUSH_MS 10
/* How often the rings of active agents are looked at (ring.c), and after
 * how many looks without news the collector stops looking at one. */
#define ST_RING_POLL_MS 4
#define ST_RING_IDLE_TICKS 50u
/* Bytes of a ring applied in one turn of the loop (conn.c). */
#define ST_RING_TURN (1024u * 1024)
/* Bytes a connection reads at a time when no large frame is pending. */
#define ST_READ_CHUNK (64u * 1024)
/* Replies (HELLO, ACK) a peer may leave unread before it is dropped. */
#define ST_MAX_PENDING_REPLY (1u << 20)
/* Rotation keeps at most this many backups, whatever a REGION asks for. */
#define ST_MAX_LOG_FILES 1000u
/* Slots of a connection's direct string table it starts with (see
 * st_conn.str_dense). */
#define ST_STR_DENSE_MIN 1024u
/* Live entries per id table and connection (strings, frames, ...). */
#define ST_MAX_ENTRIES (1u << 24)
/* Ancestor lines a DEBUG record shows at most (also stops id cycles). */
#define ST_MAX_ANCESTORS 10000u
/* tracer_N.log names tried before giving up. */
#define ST_MAX_CLAIM 100000u

/* ---- idmap.c: uint32 id -> pointer, open addressing ---- */

/*
 * A hash map from ids to non-NULL pointers.  The map never owns the
 * values: whoever inserts frees them (usually by iterating before
 * st__idmap_close).  Memory grows with the number of live entries, never
 * with the size of an id, so hostile ids cost nothing.
 */
struct st_idmap {
    uint32_t *keys; /* Owned. */
    void **vals;    /* Owned array; NULL = empty slot, else value or tomb. */
    size_t cap;     /* Power of two, or 0. */
    size_t live;    /* Entries present. */
    size_t filled;  /* Entries present plus tombstones. */
};

void st__idmap_init(struct st_idmap *m);
/* Frees the table, not the values. */
void st__idmap_close(struct st_idmap *m);
/* @return the value for key, or NULL. */
void *st__idmap_get(const struct st_idmap *m, uint32_t key);
/*
 * Inserts or replaces key -> val (val != NULL).  A replaced value is not
 * freed: look it up first if it needs freeing.
 * @return 0, ST_ENOMEM, or ST_ETOOBIG when ST_MAX_ENTRIES are live.
 */
int st__idmap_put(struct st_idmap *m, uint32_t key, void *val);
/* Removes key.  @return its value (the caller frees it) or NULL. */
void *st__idmap_del(struct st_idmap *m, uint32_t key);
/*
 * Iterates: start with *it = 0; each call returns the next value or NULL
 * at the end.  Deleting the returned entry during the walk is allowed.
 */
void *st__idmap_next(const struct st_idmap *m, size_t *it);

/* ---- Per-connection protocol objects (conn.c, session.c) ---- */

struct st_server;
struct st_conn;
struct st_scratch;
struct st_ring;

/* A STR: escaped so that control characters never reach a log line. */
struct st_string {
    size_t n;
    char p[]; /* n bytes plus a NUL. */
};

struct st_thread {
    uint32_t name_sid;
};

/* The globals of one module, shared by every frame that names it. */
struct st_scope {
    struct st_varstate vars;
};

struct st_frame {
    uint32_t id;
    uint32_t tid;
    uint32_t parent_id;
    uint32_t file_sid;
    uint32_t func_sid;
    uint32_t flags;          /* ST_FRAME_*. */
    uint32_t region_id;      /* Where its LINE messages go. */
    uint32_t last_line;      /* Line of its latest STEP (DEBUG ancestry). */
    /* Borrowed from conn->strings, looked up once at FRAME (strings are
     * never redefined and live as long as the connection). */
    const struct st_string *file;
    const struct st_string *func;
    struct st_scope *scope;  /* Borrowed from conn->scopes. */
    struct st_varstate locals;
};

struct st_region {
    uint32_t id;
    uint32_t tracer_id;
    uint32_t level;
    uint32_t var_mode;
    uint64_t steps;          /* Records emitted so far. */
    uint64_t async_steps;    /* Async records (their own counter). */
    uint64_t lost;           /* Sum of LOST counts. */
    uint32_t first_tid;      /* Thread of the first STEP ... */
    int seen_tid;            /* ... once one was seen. */
    int multi_thread;        /* A second thread stepped: show "| thread". */
    struct st_sink *sink;    /* Borrowed from conn->sinks. */
};

/* ---- Counters (steptrace daemon status) ---- */

/* Every counter, with its name on the wire (STATS) and its meaning. */
#define ST_STATS_MAP(XX)                                                    \
    XX(connections, "connections accepted (agents and control clients)")   \
    XX(refused, "peers refused: uid not allowed")                          \
    XX(protocol_errors, "connections closed for a bad frame or message")   \
    XX(bytes_in, "bytes read from clients")                                \
    XX(records_in, "records received (steps, events, async records)")      \
    XX(records_rendered, "records rendered for a log file")                \
    XX(records_written, "records written to a log file")                   \
    XX(bytes_written, "bytes written to log files")                        \
    XX(lost_agent, "records the agents reported lost (LOST)")              \
    XX(dropped_write, "records lost: a write failed")                      \
    XX(dropped_open, "records lost: the log file could not be opened")     \
    XX(dropped_nomem, "records lost: out of memory while rendering")       \
    XX(dropped_tail, "records a slow tail subscriber did not get")         \
    XX(rotations, "log files rotated")                                     \
    XX(rotate_errors, "rotations that failed (the file kept growing)")     \
    XX(write_errors, "failed opens and writes of log files")               \
    XX(pauses, "times a connection was paused by memory pressure")         \
    XX(ended_by_signal, "processes that died of a signal in a region")      \
    XX(ended_by_exec, "processes that called exec in a region")           \
    XX(vanished, "processes gone without ending their region (SIGKILL)")   \
    XX(lost_vanished, "records cut short when a process ended")            \
    XX(pending_peak, "most pending bytes seen")

struct st_stats {
#define XX(name, doc) uint64_t name;
    ST_STATS_MAP(XX)
#undef XX
};

/* ---- sink.c / writer.c: one log file per (connection, tracer_id) ---- */

/* Rendered records on their way to the file, in order. */
struct st_chunk {
    struct st_chunk *next;
    struct st_buf b;         /* Owned: whole records. */
    uint64_t nrecords;       /* Records in b (notes are not records). */
    uint64_t epoch;          /* The owner's FLUSH epoch when created. */
    int rotate;              /* Rotate the file before writing b. */
    int sealed;              /* A FLUSH closed it: records go to a new one. */
};

/*
 * One job of the threadpool: the loop fills the inputs, writer.c's work
 * callback does the file calls and fills the outputs, and the loop applies
 * them in the after-work callback.  Lives in its sink; used by one job at
 * a time.  A job writes the first nchunks chunks of the sink's queue with
 * one writev: several, when the queue grew while the previous job was
 * out, so that the writer keeps up in fewer, larger writes.
 */
struct st_write_job {
    uv_work_t req;           /* req.data points to the sink. */
    /* In (set by the loop, read-only for the worker). */
    int fd;                  /* -1: open path first. */
    const char *path;        /* Borrowed: the sink's path. */
    const char *dir;         /* Borrowed: the sink's directory. */
    const char *prefix;      /* Borrowed: loss line to write first, or NULL. */
    size_t prefix_len;
    int rotate;              /* Rotate the file first (the first chunk
                                asks for it; no other chunk of the job
                                does). */
    struct iovec iov[ST_WRITE_MAX_CHUNKS + 1]; /* The loss line, then the
                                chunks' bytes (borrowed). */
    int niov;
    size_t bytes;            /* The chunks' bytes (without the loss line). */
    uint32_t max_files;      /* For a rotation. */
    /* Loop only. */
    size_t nchunks;          /* Chunks of the queue's head it writes. */
    struct st_chunk *last;   /* Borrowed: the last of them; NULL when no
                                job is out. */
    uint64_t nrecords;       /* Their records. */
    /* Out (set by the worker). */
    int fd_out;              /* Descriptor after the job, or -1. */
    int open_err;            /* Negative errno: could not open. */
    int write_err;           /* Negative errno: the write failed (the
                                chunk is not in the file). */
    int rotate_err;          /* Negative errno: a rotation failed. */
    int rotated;
    int split;               /* A partial write could not be taken back. */
    uint64_t size;           /* File size after the job. */
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
/* Tells the agent of connection `c` the file its tracer's records go to
 * (a FILE message), when a sink has claimed it. */
void st__session_file_claimed(struct st_conn *c, uint32_t tracer_id,
                              const char *path);
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

/* writer.c: the threadpool side of a write job, and its test seam. */
void st__writer_work(uv_work_t *req);
/* mkdir -p with mode 0750 (also used by the loop to claim a file).
 * @return 0 or -errno. */
int st__writer_mkdirs(const char *dir);
/*
 * The fault seam for the tests: with STEPTRACED_FAULT_FILE set in the
 * environment (read once at startup), every log write fails while that
 * file exists, with the errno named in it (ENOSPC, EIO, EDQUOT, EFBIG;
 * default ENOSPC), or, when it says "DELAY <ms>", every write job first
 * sleeps that long (a slow disk).
 */
void st__writer_init_faults(void);

/* ---- conn.c / session.c: one client connection ---- */

enum st_conn_state { ST_CONN_OPEN = 0, ST_CONN_CLOSING };

/* Why a connection is neither read nor processed (bits of c->blocked). */
enum {
    ST_BLOCK_PRESSURE = 1,   /* Too much pending: wait for writes. */
    ST_BLOCK_FLUSH = 2,      /* Too many FLUSHes wait for their ACK. */
    ST_BLOCK_MEMORY = 4      /* A large frame waits for room. */
};

/* An ACK owed: sent once every record before its FLUSH is written. */
struct st_ack_wait {
    uint64_t token;
    uint64_t epoch;
};

/* FLUSHes a peer may have waiting for their ACK before its processing
 * stops too. */
#define ST_MAX_ACK_WAIT 1024u

/* What a connection is, as far as it told us. */
enum st_conn_kind { ST_CONN_AGENT = 0, ST_CONN_TAIL };

struct st_conn {
    uv_pipe_t pipe;              /* pipe.data points back here. */
    uv_shutdown_t shutdown_req;  /* Used by a graceful close only. */
    struct st_server *srv;       /* Borrowed. */
    struct st_conn *prev;        /* Server's list of connections. */
    struct st_conn *next;
    int state;                   /* enum st_conn_state */
    int kind;                    /* enum st_conn_kind */
    int counted;                 /* Counts as a client for --idle-exit. */
    int got_hello;
    int reading;                 /* uv_read_start is in effect. */
    unsigned blocked;            /* ST_BLOCK_* bits. */
    int resume_wanted;           /* A block was lifted: process again. */
    int eof;                     /* The peer is done sending; close once
                                    the ACKs owed are sent. */
    int peer_gone;               /* An agent with a ring ended: apply
                                    its ring, send nothing, close. */
    int draining;                /* Stopping: read only stop_budget more. */
    size_t stop_budget;          /* Bytes still to read while draining. */
    pid_t peer_pid;              /* From SO_PEERCRED; 0 if unknown. */
    char *rbuf;                  /* Owned: bytes read, not yet consumed. */
    size_t rlen;                 /* Bytes in rbuf. */
    size_t rcap;
    size_t roff;                 /* Start of the first unprocessed frame. */
    size_t flen;                 /* Payload length of the frame being
                                    decoded (from rbuf + roff), or 0. */
    int msgno;                   /* Messages of that frame applied. */
    size_t big;                  /* rbuf bytes beyond ST_READ_CHUNK held
                                    for a large frame (pressure.c). */
    size_t out_queued;           /* Bytes its sinks hold for writing. */
    uint64_t pause_seq;          /* When it was last paused (pressure.c). */
    uint64_t epoch;              /* FLUSHes seen so far, plus one. */
    struct st_ring *ring;        /* Owned (ring.c): the agent's ring, or
                                    NULL (records come on the socket). */
    int frame_from_ring;         /* The frame being applied is ring bytes
                                    (st__ring_take), not rbuf's. */
    size_t turn_bytes;           /* Ring bytes taken in this turn. */
    struct st_ack_wait *acks;    /* Owned ring of ACKs owed, oldest first. */
    size_t acks_head;
    size_t nacks;
    size_t acks_cap;
    struct st_wire_decoder dec;  /* Owned (init/close). */
    struct st_idmap strings;     /* sid -> struct st_string, owned. */
    /* The same for the low, dense sids agents use, indexed directly (a
     * cache in front of `strings`, whose entries it borrows; NULL:
     * undefined).  Grown by doubling only while it stays within twice the
     * strings defined plus ST_STR_DENSE_MIN, so that memory follows the
     * number of strings, never the size of an id. */
    const struct st_string **str_dense; /* Owned array. */
    size_t str_dense_cap;
    struct st_idmap threads;     /* tid -> struct st_thread, owned. */
    struct st_idmap frames;      /* frame_id -> struct st_frame, owned. */
    struct st_idmap scopes;      /* scope_id -> struct st_scope, owned. */
    struct st_idmap regions;     /* region_id -> struct st_region, owned. */
    struct st_idmap sinks;       /* tracer_id -> struct st_sink, released
                                    (st__sink_release) at close. */
    uint64_t errors;             /* Sink errors since the last ACK. */
    char errmsg[512];            /* Latest of them, "" if none. */
    char detail[160];            /* Context for the protocol error log;
                                    "" while a message is applied until
                                    the session code says more. */
    /* A tail subscriber (kind ST_CONN_TAIL), control.c. */
    uint64_t tail_pid;           /* 0: every process. */
    char *tail_glob;             /* Owned; NULL: every file. */
    struct st_buf tail_out;      /* Owned: TEXT frame being filled. */
    size_t tail_queued;          /* Bytes handed to uv_write, not done. */
    uint64_t tail_skipped;       /* Records skipped, not yet reported. */
};

/* Called by the server for each accepted connection.  @return 0 or < 0. */
int st__conn_accept(struct st_server *srv);
/*
 * Closes a connection: releases its sinks (their queues are still
 * written), then uv_close (abort != 0, or graceful: uv_shutdown first so
 * queued replies go out).  Memory is freed in the close callback.  Safe
 * to call again; an abort then also ends a pending graceful close.
 */
void st__conn_close(struct st_conn *c, int abort);
/* Hands every sink's queue of the connection to a write job. */
void st__conn_flush(struct st_conn *c);
/* SIGHUP for every sink of the connection. */
void st__conn_reopen(struct st_conn *c);
/* Records a file error for the next ACK (message copied). */
void st__conn_note_error(struct st_conn *c, const char *msg);
/* Frames `payload` with a header and queues it to the peer.
 * @return 0 or a libuv error (the connection is then closed). */
int st__conn_send(struct st_conn *c, const char *payload, size_t len);
/* Fills c->detail (printf-style) for the next protocol error line. */
void st__conn_detail(struct st_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* @return 1 when no sink of the connection has anything queued or out. */
int st__conn_sinks_idle(const struct st_conn *c);
/* While stopping (or after the peer half-closed): once everything the
 * peer had sent is processed and the ACKs owed are out, the connection
 * closes. */
void st__conn_drain_check(struct st_conn *c);

/* ---- ack.c: FLUSH and ACK ---- */

/* A FLUSH: owes its ACK (sent at once when nothing is queued).
 * @return 0 or ST_ENOMEM. */
int st__ack_request(struct st_conn *c, uint64_t token);
/* A sink of c finished a job: sends the ACKs whose records are all
 * written, in order, and lets processing go on if it waited for that.
 * May close c (and so release and free the sink). */
void st__ack_sink_done(struct st_conn *c);
/*
 * Processes buffered frames until done or blocked, then starts or stops
 * reading to match c->blocked.  Used when a block is lifted.
 */
void st__conn_resume(struct st_conn *c);
/* SIGTERM: read what the peer sent so far, process it, then close. */
void st__conn_drain(struct st_conn *c);

/* session.c: creates / frees the id tables. */
void st__session_init(struct st_conn *c);
void st__session_close(struct st_conn *c);
/* @return the string defined for sid, or NULL (also for sid 0). */
const struct st_string *st__session_str(const struct st_conn *c,
                                        uint32_t sid);
/*
 * Returns text safe for a log line through *out: `p` itself when it holds
 * no control characters, else an escaped copy in the scratch buffer,
 * valid until the next call.  @return 0 or ST_ENOMEM.
 */
int st__escape(struct st_scratch *sc, const char *p, size_t n,
               const char **out, size_t *outn);
/* step.c: applies and renders one STEP or LINE.  @return 0 or ST_E*. */
int st__step_apply(struct st_conn *c, const struct st_msg *m);
/* Renders an EVENT (call, return, exception) into the region's file.
 * CALL and RETURN records are written at DEBUG only, EXCEPTION records at
 * DEBUG and ERROR (SPEC section 3).  @return 0 or a protocol error. */
int st__step_event(struct st_conn *c, const struct st_msg *m);
/* Renders an ASYNC record (SPEC section 8), numbered "Async Step N" by the
 * region's own counter; written at DEBUG, INFO and WARNING. */
int st__step_async(struct st_conn *c, const struct st_msg *m);
/*
 * The connection ended while regions were open: writes the line that says
 * how into each one's file (`kind`: enum st_ring_end, with the signal or
 * the exec'd program) and counts it.  `partial`: bytes of a message cut
 * short, counted as one lost record.
 */
void st__session_end(struct st_conn *c, int kind, int sig,
                     const char *detail, size_t partial);
/*
 * Applies one decoded message to the connection state.
 * @return 0, or ST_E* (protocol error: the caller closes the connection
 *         and logs c->detail).
 */
int st__session_apply(struct st_conn *c, const struct st_msg *m);

/* ---- ring.c: the agents' rings ---- */

/* The data size granted for a request of `want` bytes (a power of two
 * within ST_RING_MIN .. ST_RING_MAX). */
uint64_t st__ring_size_for(uint64_t want);
/*
 * Makes c's ring of `size` data bytes (from st__ring_size_for) and sends
 * `reply` (a HELLO payload, framed here) with its two descriptors; later
 * replies go through libuv as usual.
 * @return 0, ST_ENOMEM or -errno (nothing is left behind).
 */
int st__ring_open(struct st_conn *c, uint64_t size, const char *reply,
                  size_t reply_len);
/* Gives up c's ring (at close); its memory goes once its handle closed. */
void st__ring_close(struct st_conn *c);
/*
 * The next whole messages the agent wrote, copied out of the shared
 * memory: *p, *n (valid until st__ring_consumed).
 * @return 1, 0 when there are none yet (or no room for them: c->blocked
 *         then says so), or ST_E* (a protocol error; c->detail says more).
 */
int st__ring_take(struct st_conn *c, const char **p, size_t *n);
/* The n bytes st__ring_take gave were applied. */
void st__ring_consumed(struct st_conn *c, size_t n);
/* @return 1 when everything committed was taken; *partial: bytes taken
 * that hold no whole message (the start of one that never came whole). */
int st__ring_drained(const struct st_conn *c, size_t *partial);
/* Stopping: only what the ring holds now will be taken. */
void st__ring_freeze(struct st_conn *c);
/* How the agent said its process ends (enum st_ring_end); *sig and
 * detail (the exec'd program, escaped later) go with it. */
int st__ring_end(const struct st_conn *c, int *sig, char *detail, size_t n);
/* Makes sure active rings are polled (the poll timer runs). */
void st__ring_poll_arm(struct st_server *srv);
/* c had its turn: it goes on at the next loop iteration, after every
 * other ring that waits for a turn (round robin). */
void st__ring_yield(struct st_conn *c);

/* ---- control.c: STATUS and TAIL ---- */

/* STATUS: replies with STATS.  @return 0 or ST_ENOMEM. */
int st__control_status(struct st_conn *c, const struct st_msg *m);
/* TAIL: makes c a subscriber.  @return 0 or ST_E*. */
int st__control_tail(struct st_conn *c, const struct st_msg *m);
/* A record (or note) of sink s was rendered: copies it to the matching
 * subscribers.  Cheap when there are none. */
void st__control_publish(struct st_sink *s, const char *text, size_t n);
/* Sends what the subscribers have gathered (once per loop iteration). */
void st__control_flush(struct st_server *srv);
/* A subscriber is closing: forget it. */
void st__control_forget(struct st_conn *c);

/* ---- pressure.c: the bound on pending memory ---- */

/* Pending bytes changed: read or processed (out = 0), rendered into a
 * sink queue or written (out = 1). */
void st__pressure_add(struct st_server *srv, size_t n, int out);
void st__pressure_sub(struct st_server *srv, size_t n, int out);
/* Pending bytes above which producers stop: a quarter of
 * max_pending_bytes, less if the collector's own reserve leaves less. */
size_t st__pressure_threshold(const struct st_server *srv);
/* @return 1 when the sink queues are above the threshold (producers
 * must stop). */
int st__pressure_high(const struct st_server *srv);
/*
 * May c hold `want` more bytes for a large frame?  Always yes for the
 * first large frame in progress, so that one always completes.
 */
int st__pressure_room_for_frame(const struct st_server *srv, size_t want);
/* Blocks are lifted when pending is low again: schedules resumes, least
 * loaded connections first. */
void st__pressure_schedule(struct st_server *srv);
/* Measures the resident size (the measure timer). */
void st__pressure_measure(struct st_server *srv);
/* A connection became blocked for pressure (counted). */
void st__pressure_paused(struct st_server *srv, struct st_conn *c);

/* ---- settings.c: the collector's own YAML config (--config) ---- */

struct st_settings {
    char *socket;                /* Owned or NULL. */
    char *pid_file;              /* Owned or NULL. */
    char *log_file;              /* Owned or NULL: the collector's log. */
    uint64_t max_pending;        /* Bytes; ST_DEFAULT_MAX_PENDING. */
    uint64_t max_log_bytes;      /* 0: the regions decide. */
    uint32_t max_log_files;      /* 0: the regions decide. */
    uint32_t *allow_uids;        /* Owned: uids besides our own. */
    size_t nallow;
};

/* Defaults: nothing set, max_pending = ST_DEFAULT_MAX_PENDING. */
void st__settings_init(struct st_settings *st);
void st__settings_close(struct st_settings *st);
/*
 * Reads the YAML file at path into *st.  On error, err holds one line
 * "FILE:LINE:COLUMN: message" (or "FILE: message").
 * @return 0, or a negative code (the caller exits with status 2).
 */
int st__settings_load(struct st_settings *st, const char *path, char *err,
                      size_t errlen);

/* ---- server.c ---- */

/* Scratch memory reused by every STEP (one loop thread). */
struct st_scratch {
    struct st_var_view *gviews;  /* Owned arrays. */
    size_t gcap;
    struct st_var_view *lviews;
    size_t lcap;
    struct st_loc_view *locs;
    size_t loccap;
    char **dead;                 /* Owned values freed after rendering. */
    size_t ndead;
    size_t deadcap;
    struct st_buf esc;           /* Escaped value being stored. */
    struct st_buf reply;         /* Reply being encoded. */
};

struct st_options {
    const char *socket_path;     /* Borrowed (argv / environment / owned). */
    const char *pid_file;        /* Borrowed, or NULL. */
    const char *config_path;     /* Borrowed, or NULL. */
    int ready_fd;                /* -1: none. */
    uint64_t idle_exit_ms;       /* 0: never. */
    int private_dir;
    int verbose;
    int daemon;                  /* --daemon: detach once listening. */
    int lock_fd;                 /* Owned: flock on "<socket>.lock". */
    char lock_path[4200];
    struct st_settings set;      /* Owned: the --config values. */
};

struct st_server {
    uv_loop_t *loop;             /* Borrowed. */
    uv_pipe_t listener;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_signal_t sig_hup;
    uv_timer_t idle_timer;
    uv_timer_t flush_timer;
    uv_timer_t ring_timer;       /* Polls the active rings (ring.c). */
    uv_idle_t ring_idle;         /* Gives rings their next turn. */
    uv_timer_t stop_timer;       /* Bounds the drain at SIGTERM. */
    uv_idle_t resume_idle;       /* Resumes blocked connections. */
    uv_check_t tail_check;       /* Sends gathered TEXT each iteration. */
    uv_pipe_t reject;            /* Accepts a peer we cannot serve. */
    int reject_busy;
    const struct st_options *opt; /* Borrowed. */
    dev_t sock_dev;              /* Identity of the socket we bound, so */
    ino_t sock_ino;              /* that we only ever unlink our own. */
    struct st_conn *conns;       /* Owned list (freed in close callbacks). */
    struct st_sink *orphans;     /* Owned: sinks draining without a
                                    connection. */
    size_t nclients;
    size_t ntails;               /* Tail subscribers. */
    int handles_closed;          /* Stopping: the loop's own handles are
                                    closed (no more scheduling). */
    int stopping;
    uint64_t start_ms;           /* uv_now at start, for uptime. */
    size_t pending;              /* Bytes received or rendered, not yet
                                    written (pressure.c). */
    size_t pending_out;          /* Part of it in sink queues. */
    size_t pending_big;          /* Read buffer room held for large
                                    frames. */
    size_t max_pending;          /* max_pending_bytes. */
    size_t rss_start;            /* Resident bytes once listening. */
    size_t overhead;             /* Resident bytes besides pending, as
                                    last measured. */
    uv_timer_t measure_timer;    /* Measures it every ST_MEASURE_MS. */
    size_t nconns;               /* Connections open (for the reserve). */
    struct st_chunk *pool;       /* Owned list of emptied chunks (sink.c),
                                    at most ST_CHUNK_POOL. */
    size_t npool;
    struct st_stats stats;
    struct st_scratch scratch;
};

/*
 * Binds, listens, announces readiness and runs the loop until a signal or
 * --idle-exit stops it.  The socket path has already been checked.
 * @return the process exit status.
 */
int st__server_run(const struct st_options *opt);
/* Begins an orderly stop (idempotent). */
void st__server_stop(struct st_server *srv, const char *why);
/* Makes sure queued sink bytes are written within ST_SINK_FLUSH_MS. */
void st__server_arm_flush(struct st_server *srv);
/* A connection is gone (from its close callback). */
void st__server_conn_closed(struct st_server *srv, struct st_conn *c);
/* A counted client is gone (closed, or became a tail subscriber): the
 * --idle-exit countdown starts when it was the last. */
void st__server_client_gone(struct st_server *srv);
/* Sinks without a connection: kept until their queue is written. */
void st__server_adopt(struct st_server *srv, struct st_sink *s);
void st__server_forget(struct st_server *srv, struct st_sink *s);
/* The process's resident size in bytes (0 if unknown). */
size_t st__server_rss(void);
/* Is this uid allowed to connect (our own, or in allow_uids)? */
int st__server_uid_allowed(const struct st_server *srv, uid_t uid);

/* One line "steptraced: ..." on stderr, written with a single write(2). */
void st__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The same for lines nobody needs when the collector is private to one
 * process tree (--private, whose stderr is the traced program's): start
 * and stop, and file errors, which the agent learns from the ACK and
 * shows itself.  Such lines are dropped after st__log_set_quiet(1).
 */
void st__log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void st__log_set_quiet(int quiet);
/* Points the log at `path` (opened for appending, as stderr), or back at
 * the original stderr when path is NULL.  @return 0 or -errno. */
int st__log_open(const char *path);

#endif /* STEPTRACE_DAEMON_DAEMON_H */
