/*
 * steptraced internals: the server (listener, signals, timers), the
 * per-connection protocol state, the file sinks and the id maps they use.
 * Nothing here is public; the functions shared across daemon/ files carry
 * the st__ prefix.
 *
 * Threading: everything runs on the one libuv loop thread.  Handlers never
 * block on a peer; file writes are plain write(2) calls from the loop.
 */
#ifndef STEPTRACE_DAEMON_DAEMON_H
#define STEPTRACE_DAEMON_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "steptrace/buf.h"
#include "steptrace/record.h"
#include "steptrace/wire.h"

/* A sink writes its buffer once it holds this much. */
#define ST_SINK_FLUSH_BYTES (64u * 1024)
/* Buffered records reach the file at most this long after being rendered. */
#define ST_SINK_FLUSH_MS 200
/* Bytes a connection reads at a time when no large frame is pending. */
#define ST_READ_CHUNK (64u * 1024)
/* Replies (HELLO, ACK) a peer may leave unread before it is dropped. */
#define ST_MAX_PENDING_REPLY (1u << 20)
/* Rotation keeps at most this many backups, whatever a REGION asks for. */
#define ST_MAX_LOG_FILES 1000u
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
    uint32_t last_line;      /* Line of its latest STEP (DEBUG ancestry). */
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

/* ---- sink.c: one log file per (connection, tracer_id) ---- */

struct st_sink {
    struct st_conn *conn;    /* Borrowed: owner, for error accounting. */
    uint32_t tracer_id;
    char *dir;               /* Owned: absolute log directory. */
    char *path;              /* Owned: claimed file; NULL until claimed. */
    int fd;                  /* -1 while closed. */
    int broken;              /* Last open failed: retry only at flush. */
    int rotate_off;          /* A rename failed: append until reopened. */
    uint64_t file_size;      /* Bytes in the file, as far as we know. */
    uint64_t max_bytes;      /* 0: no rotation. */
    uint32_t max_files;      /* Backups to keep; 0: no rotation. */
    struct st_buf buf;       /* Owned: whole records not yet written. */
    size_t mark;             /* Start of the record being rendered. */
    char *logged;            /* Owned: last error logged (dedup) or NULL. */
};

/*
 * Allocates a sink for files in `dir` (absolute, dir_len bytes, trailing
 * slashes dropped).  No file is touched until the first record.
 * @return 0 and *out (free with st__sink_free), or ST_ENOMEM.
 */
int st__sink_new(struct st_conn *c, uint32_t tracer_id, const char *dir,
                 size_t dir_len, struct st_sink **out);
/* Closes the file without writing the buffer, and frees the sink. */
void st__sink_free(struct st_sink *s);
/* Sets the rotation limits (from the latest REGION of the tracer). */
void st__sink_configure(struct st_sink *s, uint64_t max_bytes,
                        uint32_t max_files);
/* Starts a record: render it into the returned buffer, then commit. */
struct st_buf *st__sink_begin(struct st_sink *s);
/*
 * Ends the record started by st__sink_begin: claims the file at the first
 * record, rotates before the record when it would push the file past
 * max_bytes, and writes the buffer when it is large.  A record whose
 * rendering ran out of memory is dropped.
 * @return 0 or a negative error (already counted and logged).
 */
int st__sink_commit(struct st_sink *s);
/* Writes every buffered byte.  @return 0 or a counted, logged error. */
int st__sink_flush(struct st_sink *s);
/* SIGHUP: writes the buffer and closes the file; the next write reopens
 * the same name for appending. */
void st__sink_reopen(struct st_sink *s);

/* ---- conn.c / session.c: one client connection ---- */

enum st_conn_state { ST_CONN_OPEN = 0, ST_CONN_CLOSING };

struct st_conn {
    uv_pipe_t pipe;              /* pipe.data points back here. */
    uv_shutdown_t shutdown_req;  /* Used by a graceful close only. */
    struct st_server *srv;       /* Borrowed. */
    struct st_conn *prev;        /* Server's list of connections. */
    struct st_conn *next;
    int state;                   /* enum st_conn_state */
    int counted;                 /* Counts as a client for --idle-exit. */
    int got_hello;
    pid_t peer_pid;              /* From SO_PEERCRED; 0 if unknown. */
    char *rbuf;                  /* Owned: unconsumed bytes read. */
    size_t rlen;
    size_t rcap;
    struct st_wire_decoder dec;  /* Owned (init/close). */
    struct st_idmap strings;     /* sid -> struct st_string, owned. */
    struct st_idmap threads;     /* tid -> struct st_thread, owned. */
    struct st_idmap frames;      /* frame_id -> struct st_frame, owned. */
    struct st_idmap scopes;      /* scope_id -> struct st_scope, owned. */
    struct st_idmap regions;     /* region_id -> struct st_region, owned. */
    struct st_idmap sinks;       /* tracer_id -> struct st_sink, owned. */
    uint64_t errors;             /* Sink errors since the last ACK. */
    char errmsg[512];            /* Latest of them, "" if none. */
    char detail[160];            /* Context for the protocol error log. */
};

/* Called by the server for each accepted connection.  @return 0 or < 0. */
int st__conn_accept(struct st_server *srv);
/*
 * Closes a connection: writes its sinks, then uv_close (abort != 0, or
 * graceful: uv_shutdown first so queued replies go out).  Memory is freed
 * in the close callback.  Safe to call again; an abort then also ends a
 * pending graceful close.
 */
void st__conn_close(struct st_conn *c, int abort);
/* Writes every sink of the connection. */
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
/* step.c: applies and renders one STEP.  @return 0 or ST_E*. */
int st__step_apply(struct st_conn *c, const struct st_msg *m);
/* Renders an EVENT (call, return, exception) into the region's file.
 * CALL and RETURN records are written at DEBUG only, EXCEPTION records at
 * DEBUG and ERROR (SPEC section 3).  @return 0 or a protocol error. */
int st__step_event(struct st_conn *c, const struct st_msg *m);
/* Renders an ASYNC record (SPEC section 8), numbered "Async Step N" by the
 * region's own counter; written at DEBUG, INFO and WARNING. */
int st__step_async(struct st_conn *c, const struct st_msg *m);
/*
 * Applies one decoded message to the connection state.
 * @return 0, or ST_E* (protocol error: the caller closes the connection
 *         and logs c->detail).
 */
int st__session_apply(struct st_conn *c, const struct st_msg *m);

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
    int ready_fd;                /* -1: none. */
    uint64_t idle_exit_ms;       /* 0: never. */
    int private_dir;
    int verbose;
    int daemon;                  /* --daemon: detach once listening. */
};

struct st_server {
    uv_loop_t *loop;             /* Borrowed. */
    uv_pipe_t listener;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_signal_t sig_hup;
    uv_timer_t idle_timer;
    uv_timer_t flush_timer;
    uv_pipe_t reject;            /* Accepts a peer we cannot serve. */
    int reject_busy;
    const struct st_options *opt; /* Borrowed. */
    dev_t sock_dev;              /* Identity of the socket we bound, so */
    ino_t sock_ino;              /* that we only ever unlink our own. */
    struct st_conn *conns;       /* Owned list (freed in close callbacks). */
    size_t nclients;
    int stopping;
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
/* Makes sure buffered sink bytes are written within ST_SINK_FLUSH_MS. */
void st__server_arm_flush(struct st_server *srv);
/* A connection is gone (from its close callback). */
void st__server_conn_closed(struct st_server *srv, struct st_conn *c);

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

#endif /* STEPTRACE_DAEMON_DAEMON_H */
