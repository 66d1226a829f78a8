/*
 * Internal interfaces of the agent (the _agent extension module).  All of
 * this runs with the GIL held unless a comment says otherwise.
 *
 * Files:
 *   module.c           Python-facing functions, module init
 *   backend_settrace.c the PyEval_SetTrace hook: events -> tracer.c
 *   tracer.c           per-event work: frames, steps, records (hot path)
 *   vars.c             variable snapshots, diffs, str() rendering
 *   strtab.c           string ids sent on the wire
 *   sender.c           the sender thread and the collector socket
 */
#ifndef STEPTRACE_AGENT_AGENT_H
#define STEPTRACE_AGENT_AGENT_H

#include "compat.h"

#include <msgpack.h>
#include <stdint.h>

#include "steptrace/buf.h"
#include "steptrace/record.h"
#include "steptrace/wire.h"

/* Destinations (bits), from LogOutput. */
#define ST_OUT_FILE 1
#define ST_OUT_STDOUT 2
#define ST_OUT_STDERR 4

/* ---- strtab.c: string ids ---- */

struct st_strent {
    const void *key;     /* Identity: a str object or a static type. */
    PyObject *ref;       /* Owned reference keeping key/text alive, or NULL. */
    const char *text;    /* Borrowed from ref or static storage. */
    size_t len;
    uint32_t sid;
    uint32_t sent_gen;   /* Connection generation it was sent on. */
};

/* Returns the entry for a str object (new entries keep a reference), or
 * NULL on memory failure. */
struct st_strent *st__strtab_str(PyObject *s);

/* Returns the entry for the __name__ of type t. */
struct st_strent *st__strtab_type(PyTypeObject *t);

/* Returns the entry for a C string with static storage duration. */
struct st_strent *st__strtab_cstr(const char *s);

/* Drops every entry and its reference; ids keep increasing afterwards. */
void st__strtab_clear(void);

/* Incremented by st__strtab_clear(): caches holding sids compare it. */
extern uint32_t st__strtab_epoch;

/* ---- sender.c: the collector connection ---- */

/*
 * Connects to the collector at `path`, exchanges HELLO and starts the
 * sender thread.  On failure writes a one-line reason into err.
 * @return 0 or a negative errno / ST_E* code.
 */
int st__sender_connect(const char *path, const char *program, char *err,
                       size_t errlen);

/* Closes the connection after sending what is queued (at exit). */
void st__sender_close(void);

/* 1 while connected and healthy. */
int st__sender_ok(void);

/* The connection generation: changes at each (re)connect. */
uint32_t st__sender_gen(void);

/*
 * Hands a frame (header included) to the sender thread, which takes
 * ownership of the buffer's bytes (b is reset).  May block, with the GIL
 * released, while more than the pending limit is queued.
 * `nrecords` is how many records the frame carries, for loss counts.
 * @return 0, or -1 when the connection is gone (the bytes are dropped and
 *         counted).
 */
int st__sender_submit(struct st_buf *b, uint64_t nrecords);

/*
 * Waits, with the GIL released, until the collector has acknowledged
 * `token` (sent in a FLUSH already submitted) or the connection failed or
 * `timeout_ms` passed.  *errors / msg receive the ACK's error report.
 * @return 0 on ACK, -1 on failure or timeout (msg says which).
 */
int st__sender_wait_ack(uint64_t token, int timeout_ms, uint64_t *errors,
                        char *msg, size_t msglen);

/* Records dropped because the connection was gone. */
uint64_t st__sender_dropped(void);

/* Resets the state in a forked child: no thread, no connection. */
void st__sender_after_fork_child(void);

/* ---- tracer.c: regions and events ---- */

struct st_filter {
    char *workspace;     /* Owned; NULL when filter_workspace is off. */
    size_t ws_len;
    char **excluded;     /* Owned array of owned prefixes. */
    size_t nexcluded;
    char *pkgdir;        /* Owned: the steptrace package directory. */
    size_t pkgdir_len;
    char *cwd;           /* Owned: for relative co_filename values. */
    PyObject *functions; /* Owned frozenset of names, or NULL for all. */
    uint32_t id;         /* Distinct per region: keys the code cache. */
};

struct st_scope;
struct st_region {
    uint32_t id;
    uint32_t tracer_id;
    int level;
    int var_mode;
    int outputs;          /* ST_OUT_* bits. */
    size_t repr_limit;
    struct st_filter filter;
    PyObject *hidden_types; /* Owned tuple of types never shown. */
    PyObject *log_dir;      /* Owned str (absolute), for REGION. */
    uint64_t max_log_bytes;
    uint32_t max_log_files;
    uint64_t epoch;         /* Distinct per start; invalidates tstates. */
    uint64_t start_ns;
    uint64_t steps;         /* Records emitted (numbers console output). */
    uint32_t first_tid;
    int multi_thread;       /* A second thread has stepped. */
    uint64_t lost;          /* Records not delivered to the collector. */
    uint64_t errors;        /* Console writes that failed. */
    struct st_scope *scopes; /* Owned list of module globals states. */
    int file_announced;     /* REGION sent on the current connection. */
    uint32_t announced_gen;
};

/* Sets up the code-object cache and the batch.  @return 0 or -1. */
int st__tracer_init(void);

/* The region events are recorded into, or NULL. */
extern struct st_region *st__active;

/* Monotonic clock in ns (CLOCK_MONOTONIC). */
uint64_t st__now_ns(void);

/* Event entry points called by the backend; return 0 (never raise). */
int st__on_call(PyFrameObject *f);
int st__on_line(PyFrameObject *f);
int st__on_return(PyFrameObject *f);

/* Starts a region: resets per-thread state for it. */
void st__region_activate(struct st_region *r);

/*
 * Ends the active region's recording: frees frame and scope states and
 * queues REGION_END + FLUSH(token) when the region writes to a file.
 * @return the flush token to wait for, or 0 when nothing was sent.
 */
uint64_t st__region_finish(struct st_region *r);

/* Frees what a region owns (after st__region_finish). */
void st__region_free(struct st_region *r);

/* The current batch of encoded messages and its packer. */
extern struct st_buf st__batch;
extern msgpack_packer st__pk;

/* Hands the current batch to the sender (counts a loss if it fails). */
void st__batch_handoff(void);

/* ---- vars.c: snapshots and diffs ---- */

/* One shown variable of a scope, as last rendered. */
struct st_snapent {
    PyObject *name;          /* Owned. */
    struct st_strent *name_s; /* Borrowed from strtab. */
    struct st_strent *type_s;
    PyObject *imm;           /* Owned ref to an immutable value, or NULL. */
    char *value;             /* Owned, escaped and cut. */
    size_t value_len;
    int seen;
};

struct st_snapshot {
    struct st_snapent *ents; /* Owned. */
    size_t n, cap;
};

/* One change found by st__snapshot_update(). */
struct st_change {
    struct st_snapent *ent;  /* Borrowed (NULL for a delete). */
    struct st_strent *name_s;
    int kind;                /* ST_VAR_NEW, ST_VAR_CHANGED, ST_VAR_DELETED */
    char *old;               /* Owned old value for ST_VAR_CHANGED. */
    size_t old_len;
};

struct st_changes {
    struct st_change *c;     /* Owned. */
    size_t n, cap;
};

void st__snapshot_clear(struct st_snapshot *s);
void st__changes_reset(struct st_changes *c);

/*
 * Compares the mapping `vars` with the snapshot, updates the snapshot and
 * appends the differences to *out.  Never raises: a value whose str()
 * fails is rendered as <unprintable T: msg>.
 * @return 0, or -1 when the mapping could not be read (exception cleared).
 */
int st__snapshot_update(struct st_snapshot *s, PyObject *vars,
                        const struct st_region *r, struct st_changes *out);

#endif /* STEPTRACE_AGENT_AGENT_H */
