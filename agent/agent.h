/*
 * Internal interfaces of the agent (the _agent extension module).  All of
 * this runs with the GIL held unless a comment says otherwise.
 *
 * Files:
 *   module.c           Python-facing functions, module init
 *   backend_settrace.c the PyEval_SetTrace hook: events -> tracer.c
 *   tracer.c           per-event work: threads, frames, regions (hot path)
 *   filter.c           which code is traced, cached per code object
 *   emit.c             records: encoding for the collector, console text
 *   vars.c             variable snapshots, diffs, str() rendering
 *   strtab.c           string ids sent on the wire
 *   outbox.c           records into the ring shared with the collector
 *   sender.c           the collector connection and its watcher thread
 *   signals.c          a note in the ring when a signal ends the process
 */
#ifndef STEPTRACE_AGENT_AGENT_H
#define STEPTRACE_AGENT_AGENT_H

#include "compat.h"

#include <msgpack.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "steptrace/buf.h"
#include "steptrace/record.h"
#include "steptrace/ring.h"
#include "steptrace/wire.h"

#include "clock.h"
#include "collector.h"
#include "outbox.h"
#include "sender.h"
#include "signals.h"
#include "strtab.h"
#include "compose.h"
#include "render.h"
#include "stateprint.h"
#include "vars.h"
#include "vfp.h"

/* Destinations (bits), from LogOutput. */
#define ST_OUT_FILE 1
#define ST_OUT_STDOUT 2
#define ST_OUT_STDERR 4

/* ---- tracer.c: regions and events ---- */

struct st_filter {
    char **workspaces;   /* Owned array of owned real paths; NULL when
                            filter_workspace is off. */
    size_t nworkspaces;
    char **excluded;     /* Owned array of owned prefixes. */
    size_t nexcluded;
    char *pkgdir;        /* Owned: the steptrace package directory. */
    size_t pkgdir_len;
    char *cwd;           /* Owned: for relative co_filename values. */
    PyObject *functions; /* Owned frozenset of names, or NULL for all. */
    uint32_t id;         /* Distinct per region: keys the code cache. */
    uint64_t key;        /* Equal for filters made of the same values. */
};

struct st_trace_scope;
struct st_trace_region {
    PyObject *owner;        /* Borrowed: the Region object owning this. */
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
    uint64_t dropped_base;  /* st__sender_dropped() when it started. */
    int drop_when_full;     /* on_full="drop". */
    int async_mode;         /* AsyncTracer: async records. */
    int trace_tasks;
    uint64_t await_threshold_ns;
    uint64_t async_steps;   /* Async records emitted (console numbers). */
    uint64_t errors;        /* Console writes that failed. */
    struct st_trace_scope *scopes; /* Owned list of module globals states. */
    struct st_trace_scope **scope_tab; /* Owned: scopes by globals address
                                    (open addressing, scope_cap slots,
                                    0 or a power of two). */
    size_t scope_cap, nscopes;
    int finished;           /* Ended: threads drop it at their next event. */
    int file_announced;     /* REGION sent on the current connection. */
    uint32_t announced_gen;
    PyObject *origin;       /* Owned str or NULL: the line that begins
                               each of its files (who started the
                               process), sent with the REGION. */
    uint64_t total_steps;   /* Steps recorded, across reconnections. */
};

/* Sets up the code-object cache and the batch.  @return 0 or -1. */
int st__tracer_init(void);

/*
 * Regions are per thread: each thread records into its own current region
 * (a thread started inside a region records into that region too), so two
 * threads can trace two regions at once.  The thread's state holds a
 * reference to the region's Python object, so a region another thread
 * still points at stays allocated; a finished region is dropped by each
 * thread at its next event.
 */

/* The calling thread's current region, or NULL. */
struct st_trace_region *st__threads_region(void);

/* Makes `r` (owned by Python object `obj`) the calling thread's region.
 * With `fresh`, it starts recording anew in this thread (its frame stack
 * starts empty); without, the thread joins the region as it is.  Returns
 * the thread's previous region object (new reference) or NULL. */
PyObject *st__region_enter(struct st_trace_region *r, PyObject *obj, int fresh);

/* The calling thread's region becomes `prev` (a Region object or NULL). */
void st__region_leave(PyObject *prev);

/* module.c: the struct st_trace_region of a Region object. */
struct st_trace_region *st__region_of(PyObject *obj);

/* Event entry points called by the backend; they never raise. */
enum {
    ST_HOOK_OK = 0,       /* Handled (or nothing to do). */
    ST_HOOK_UNTRACED = 1, /* The code is not traced in this region. */
    ST_HOOK_NOT_MINE = 2  /* A line of a frame that is not being traced. */
};
/* How a frame's RETURN event ends it, when the backend knows. */
enum {
    ST_RET_GUESS = 0, /* Unknown (settrace): looked at the frame. */
    ST_RET_VALUE = 1, /* Returned arg. */
    ST_RET_YIELD = 2, /* Yielded arg (or an await waits). */
    ST_RET_RAISE = 3  /* An exception ends it. */
};
int st__tracer_on_call(PyFrameObject *f);
/* line: the line number, or -1 to read it from f. */
int st__tracer_on_line(PyFrameObject *f, int line);
/* arg: the returned or yielded value (settrace: NULL or None when an
 * exception ends the frame). */
int st__tracer_on_return(PyFrameObject *f, PyObject *arg, int how);
/* value: the exception; tb: its traceback (or NULL). */
int st__tracer_on_exception(PyFrameObject *f, PyObject *value, PyObject *tb);

/* May events of code `co` be switched off at their locations for every
 * thread (sys.monitoring DISABLE)?  Only while all live regions filter
 * alike and co is not traced under that filter. */
int st__code_events_off_ok(PyCodeObject *co);

/* Is a region being recorded (entered, not finished) in some thread? */
int st__threads_any_live(void);

/*
 * Called when a record for the file cannot be sent because the collector
 * connection is gone: at most once a second, calls the Python reconnect
 * hook (set with _agent.set_reconnect: it connects to STEPTRACE_SOCKET
 * again or starts a private collector).  After a new connection, every
 * scope's and frame's variable state is sent again from scratch: the
 * collector starts a new file for the region.  @return 1 when connected.
 */
int st__region_reconnect(struct st_trace_region *r);

/* The Python callable st__region_reconnect() calls (NULL: none). */
void st__collector_set_reconnect_hook(PyObject *hook);

/* Forgets what the collector was sent for region r (a new connection or
 * a forked child): variable states, step count, threads. */
void st__region_reset_wire_state(struct st_trace_region *r);

/* In a forked child: the region goes on in the child, into a new file
 * (a new connection); other threads' states are gone. */
void st__tracer_after_fork_child(void);

/*
 * Ends the active region's recording: frees frame and scope states and
 * queues REGION_END + FLUSH(token) when the region writes to a file.
 * @return the flush token to wait for, or 0 when nothing was sent.
 */
uint64_t st__region_finish(struct st_trace_region *r);

/* Frees what a region owns (after st__region_finish). */
void st__region_free(struct st_trace_region *r);

/* tracer.c: is v an object that a traced initialiser running on this
 * thread is building (the first argument of an __init__ on its stack)? */
int st__threads_being_built(PyObject *v);

/* ---- shared by tracer.c, filter.c and emit.c ---- */

/* Cached per code object (in its co_extra slot): the filter verdict. */
struct st_codeinfo {
    uint32_t filter_id;      /* Region filter this verdict is for. */
    int traceable;
    PyObject *abs_file;      /* Owned: absolute co_filename. */
    struct st_strent *file_s; /* Borrowed from strtab. */
    struct st_strent *func_s;
    int fast_checked;        /* fast_names was decided. */
    PyObject *fast_names;    /* Owned tuple: the locals' names when they
                                are read from the fast locals, else NULL. */
    int initialiser;         /* __init__, __post_init__ or __setstate__
                                with a first argument: the object it
                                builds is not str()'d meanwhile. */
};

/* Module globals seen in a region, with their last shown state. */
struct st_trace_scope {
    struct st_trace_scope *next;   /* Owned list. */
    PyObject *globals;       /* Owned for the region (identity key). */
    uint32_t id;
    int busy;                /* A thread is updating snap (str() calls
                                can let another thread in meanwhile). */
    struct st_snapshot snap;
};

/* A coroutine followed by the async records (async.c). */
struct st_coro {
    uint64_t start_ns;       /* Clock at COROUTINE START. */
    uint32_t awaits;         /* Suspensions so far. */
    uint64_t await_total_ns;
    uint64_t susp_ns;        /* Clock at the latest suspension. */
    uint64_t resume_ns;      /* Clock at the resumption after it. */
    int susp_lasti;          /* Where it suspended (same await again?). */
    uint32_t susp_line;
    char *expr;              /* Owned: the awaited expression, or NULL. */
    int start_written;       /* AWAIT START of this await is out. */
    int pending_end;         /* Resumed; END waits for the next event. */
    PyObject *exc;           /* Owned: an exception seen right after the
                                resumption (until the next event). */
    uint64_t pending_dur;
};

/* A traced frame on a thread's stack. */
struct st_fentry {
    PyFrameObject *frame;    /* Borrowed: identity only, valid while here. */
    struct st_codeinfo *ci;  /* Borrowed from the code object. */
    struct st_trace_scope *scope;  /* Borrowed from the region. */
    uint32_t id;
    uint32_t parent;         /* Stack index + 1 of the traced caller. */
    uint32_t last_line;      /* Line of its latest record. */
    uint32_t announced_gen;  /* FRAME sent on this connection generation. */
    int module_level;        /* Locals are the globals: one section. */
    int gen_parent;          /* A generator or coroutine was its callee:
                                its id may be named as a parent after it
                                ends, so it is not used again. */
    struct st_snapshot locals;
    struct st_coro *coro;    /* Owned, for async records; or NULL. */
    const void *building;    /* Identity only: the object this initialiser
                                builds (its first argument), or NULL. */
};

struct st_tstate {
    struct st_tstate *next;  /* Owned list of every thread's state. */
    uint64_t epoch;          /* Region epoch this state belongs to. */
    uint32_t tid;
    uint32_t announced_gen;
    PyObject *name;          /* Owned: the thread's name, once looked up. */
    struct st_fentry *stack; /* Owned. */
    size_t depth, cap;
    uint64_t last_exit;      /* Clock when the hook last returned. */
    uint64_t prog;           /* Program time accumulated in this region. */
    uint64_t prog_at_step;
    int busy;                /* Re-entrancy guard. */
    struct st_trace_region *region; /* Borrowed (kept by region_obj): current. */
    PyObject *region_obj;    /* Owned Region object, or NULL. */
    /* Scratch for a step's changes: per thread, because str() of a value
     * can let another thread's hook run in the middle of a step. */
    struct st_changes gch, lch;
    size_t nbuilding;        /* Entries of stack with `building` set. */
};

/* filter.c: sets up the co_extra slot.  @return 0 or -1. */
int st__filter_init(void);

/* The code object's cached info for region r (borrowed), or NULL when it
 * is not traced. */
struct st_codeinfo *st__filter_codeinfo(PyCodeObject *co,
                                     const struct st_trace_region *r);

/* emit.c: one record of the frame at ts->stack[idx].  `kind` is an enum
 * st_event; for ST_EVENT_STEP, `gch`/`lch` hold the variable changes (and
 * `vars` says whether variables are captured at all). */
struct st_record {
    int kind;
    uint64_t step;           /* Set by st__emit_record. */
    int thread_suffix;       /* Set by st__emit_record. */
    uint32_t line;
    uint64_t runtime;
    const char *detail;      /* Event text (escaped), or NULL. */
    size_t detail_len;
    int vars;
    const struct st_changes *gch;
    const struct st_changes *lch;
};

void st__emit_record(struct st_trace_region *r, struct st_tstate *ts, size_t idx,
              struct st_record *rec);

/* Sends FRAME_END for a frame leaving the stack (if it was announced). */
void st__emit_frame_end(struct st_trace_region *r, const struct st_fentry *e);

/* Sends LOST (if any), REGION_END and FLUSH; returns the flush token or 0
 * when nothing was sent. */
uint64_t st__emit_region_end(struct st_trace_region *r);

/* Sends a NOTE (a line of the agent's in the region's log, kind enum
 * st_note) in order with the records.  @return 0, or -1 when there is no
 * file output or connection. */
int st__emit_note(struct st_trace_region *r, uint32_t kind, const char *text,
                  size_t n);

/* The thread's name (threading.current_thread().name), looked up once. */
PyObject *st__tstate_name(struct st_tstate *ts);

/* emit.c: one async record (body: its lines) at `time_ns` since the
 * region began. */
void st__emit_async(struct st_trace_region *r, int kind, uint64_t time_ns,
                    const char *body, size_t n);

/* async.c (see there). */
void st__async_set_hooks(PyObject *expr, PyObject *loop);
void st__threads_coro_free(struct st_coro *c);
void st__async_coro_start(struct st_trace_region *r, struct st_fentry *e);
void st__async_suspend(struct st_trace_region *r, struct st_fentry *e,
                       PyFrameObject *f);
void st__async_resume(struct st_trace_region *r, struct st_fentry *e);
void st__async_settle(struct st_trace_region *r, struct st_fentry *e, int ok);
/* An exception event right after a resumption: whether the await raised
 * is known at the frame's next event (see async.c). */
void st__async_exception(struct st_trace_region *r, struct st_fentry *e,
                         PyObject *value);
/* At a line event: settles a pending AWAIT END. */
void st__async_line(struct st_trace_region *r, struct st_fentry *e,
                    uint32_t line);
void st__async_coro_end(struct st_trace_region *r, struct st_fentry *e, int ok);
/* tracer.c: is a traced frame running in this thread of the region? */
int st__threads_in_traced_code(void);


/* A task record from the package; @return 1 when written. */
int st__async_task_event(int created, const char *name, size_t n, int ok,
                         uint64_t duration_ns);

#endif /* STEPTRACE_AGENT_AGENT_H */
