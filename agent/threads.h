/*
 * Per-thread state (threads.c): each thread's stack of traced frames,
 * its program time, the region it records into; the frames of suspended
 * generators and coroutines between a yield and their resumption; what a
 * forked child keeps.
 *
 * Regions are per thread: each thread records into its own current
 * region (a thread started inside a region records into that region too),
 * so two threads can trace two regions at once.  The thread's state
 * holds a reference to the region's Python object, so a region another
 * thread still points at stays allocated; a finished region is dropped by
 * each thread at its next event (st__threads_region).
 *
 * threads.c owns every thread's state (created at a thread's first use,
 * freed only for threads gone in a forked child) and the suspended
 * frames.  Callers: tracer.c (the hook), region.c (entering, leaving,
 * finishing), backend_*.c and module.c (the current region), emit.c
 * (reads states), compose.c (through the building check
 * module.c registers).  GIL held.
 */
#ifndef STEPTRACE_AGENT_THREADS_H
#define STEPTRACE_AGENT_THREADS_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "vars.h"

/* A coroutine followed by the async records (async.c fills it). */
struct st_coro {
    uint64_t start_ns; /* Clock at COROUTINE START. */
    uint32_t awaits;   /* Suspensions so far. */
    uint64_t await_total_ns;
    uint64_t susp_ns;   /* Clock at the latest suspension. */
    uint64_t resume_ns; /* Clock at the resumption after it. */
    int susp_lasti;     /* Where it suspended (same await again?). */
    uint32_t susp_line;
    char *expr;        /* Owned: the awaited expression, or NULL. */
    int start_written; /* AWAIT START of this await is out. */
    int pending_end;   /* Resumed; END waits for the next event. */
    PyObject *exc;     /* Owned: an exception seen right after the
                          resumption (until the next event). */
    uint64_t pending_dur;
};

/* A traced frame on a thread's stack. */
struct st_fentry {
    PyFrameObject *frame;   /* Borrowed: identity only, valid while here. */
    struct st_codeinfo *ci; /* Borrowed from the code object. */
    struct st_trace_scope *scope; /* Borrowed from the region. */
    uint32_t id;
    uint32_t parent;        /* Stack index + 1 of the traced caller. */
    uint32_t last_line;     /* Line of its latest record. */
    uint32_t line_now;      /* Line of its latest line event, 0 before
                               the first: what settrace keeps in
                               f_lineno. */
    uint32_t announced_gen; /* FRAME sent on this connection generation. */
    int module_level;       /* Locals are the globals: one section. */
    int gen_parent;         /* A generator or coroutine was its callee:
                               its id may be named as a parent after it
                               ends, so it is not used again. */
    struct st_snapshot locals;
    struct st_coro *coro; /* Owned, for async records; or NULL. */
    const void *building; /* Identity only: the object this initialiser
                             builds (its first argument), or NULL. */
};

struct st_tstate {
    struct st_tstate *next; /* Owned list of every thread's state. */
    uint64_t epoch;         /* Region epoch this state belongs to. */
    uint32_t tid;
    uint32_t announced_gen;
    PyObject *name;          /* Owned: the thread's name, once looked up. */
    struct st_fentry *stack; /* Owned. */
    size_t depth, cap;
    uint64_t last_exit; /* Clock when the hook last returned. */
    uint64_t prog;      /* Program time accumulated in this region. */
    uint64_t prog_at_step;
    int busy;                       /* Re-entrancy guard. */
    struct st_trace_region *region; /* Borrowed (kept by region_obj):
                                       current. */
    PyObject *region_obj;           /* Owned Region object, or NULL. */
    /* Scratch for a step's changes: per thread, because str() of a value
     * can let another thread's hook run in the middle of a step. */
    struct st_changes gch, lch;
    size_t nbuilding; /* Entries of stack with `building` set. */
};

/* The calling thread's state, or NULL before its first use.
 * initial-exec: no __tls_get_addr call per event (the module is loaded
 * with dlopen, so this takes a few bytes of the static TLS surplus). */
extern _Thread_local struct st_tstate *st__threads_tls
    __attribute__((tls_model("initial-exec")));

/* The calling thread's state, created on first use, or NULL (out of
 * memory). */
struct st_tstate *st__threads_self(void);

/* The calling thread's state for region r: the slow case of
 * st__threads_get (created, or reset for a new region). */
struct st_tstate *st__threads_join(const struct st_trace_region *r);

/* The calling thread's state for region r (its stack starts empty when
 * the region started anew), or NULL (out of memory).  Inline: at every
 * event. */
static inline struct st_tstate *
st__threads_get(const struct st_trace_region *r)
{
    struct st_tstate *ts = st__threads_tls;

    if (ts != NULL && ts->epoch == r->epoch)
        return ts;
    return st__threads_join(r);
}

/* Lets go of the finished region ts records into (this may free it).
 * @return NULL. */
struct st_trace_region *st__threads_let_go(struct st_tstate *ts);

/* The calling thread's current region, or NULL.  A finished one is let
 * go of here.  Inline: at every event. */
static inline struct st_trace_region *
st__threads_region(void)
{
    struct st_tstate *ts = st__threads_tls;

    if (ts == NULL || ts->region == NULL)
        return NULL;
    if (ts->region->finished)
        return st__threads_let_go(ts);
    return ts->region;
}

/* The calling thread's current region when it is not finished, else NULL;
 * unlike st__threads_region, nothing is let go of. */
static inline struct st_trace_region *
st__threads_region_live(void)
{
    struct st_tstate *ts = st__threads_tls;

    if (ts == NULL || ts->region == NULL || ts->region->finished)
        return NULL;
    return ts->region;
}

/* A new, zeroed entry on top of ts's stack, or NULL (out of memory). */
struct st_fentry *st__threads_push(struct st_tstate *ts);

/* Pops the top entry of ts's stack, releasing what it owns. */
void st__threads_pop(struct st_tstate *ts);

/* Releases a coroutine's state (NULL: nothing). */
void st__threads_coro_free(struct st_coro *c);

/* Keeps the top entry of ts (frame f of region r, which yielded or
 * awaits) for its resumption, and pops it.  @return 1 when kept, 0 when
 * it cannot be (it stays on the stack then). */
int st__threads_suspend(struct st_trace_region *r, struct st_tstate *ts,
                        PyFrameObject *f);

/* The resumption of frame f of region r: its kept state, pushed back on
 * ts's stack.  @return the entry, or NULL when none is kept (*kept 0), or
 * when it cannot be pushed (*kept 1: the state is dropped). */
struct st_fentry *st__threads_resume(struct st_tstate *ts,
                                     const struct st_trace_region *r,
                                     PyFrameObject *f, int *kept);

/* Region r ends: every thread's stack in it is emptied and the thread
 * leaves it (its epoch). */
void st__threads_end_stacks(const struct st_trace_region *r);

/* Region r ends: the suspended frames kept for it are dropped. */
void st__threads_end_suspended(const struct st_trace_region *r);

/* The collector forgot what was shown: the variable states of r's frames
 * on every stack, and of every suspended frame, are emptied. */
void st__threads_forget_shown(const struct st_trace_region *r);

/* Is a region being recorded (entered, not finished) in some thread? */
int st__threads_any_live(void);

/* Is one whose filter key is not `key` being recorded? */
int st__threads_other_filter_live(uint64_t key);

/* Is a traced frame running in this thread of its current region? */
int st__threads_in_traced_code(void);

/* Is v an object that a traced initialiser running on this thread is
 * building (the first argument of an __init__ on its stack)?  Handed to
 * compose.c (st_compose_building_cb). */
int st__threads_being_built(PyObject *v);

/* In a forked child: only the forking thread lives on; its name is looked
 * up again and its thread announced again. */
void st__threads_after_fork_child(void);

#endif /* STEPTRACE_AGENT_THREADS_H */
