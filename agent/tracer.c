/*
 * The hook path; see tracer.h.  At a call, a traced frame is pushed on
 * its thread's stack (a resumed generator or coroutine gets its kept
 * state back); at each line, its step is recorded with the variables
 * that changed; at a return it is popped (a yield keeps it aside for its
 * resumption).  The program's time is what passes outside the hook.
 * Runs with the GIL held, from the backend's hook; never raises into the
 * traced program.
 */
#include "compat.h"

#include "steptrace/wire.h"

#include "agent.h"
#include "async.h"
#include "clock.h"
#include "compose.h"
#include "emit.h"
#include "fastlocals.h"
#include "filter.h"
#include "region.h"
#include "render.h"
#include "sender.h"
#include "stateprint.h"
#include "threads.h"
#include "tracer.h"
#include "vars.h"

#include <stdlib.h>

/*
 * Frame ids of ended frames are used again (a collector forgets a frame at
 * FRAME_END), so ids stay as small as the stack is deep and take one byte
 * on the wire, not five.
 */
static uint32_t next_frame_id = 1;
static uint32_t *free_ids;
static size_t nfree_ids, capfree_ids;

/* An id for a new frame. */
static uint32_t
tracer_frame_id_new(void)
{
    if (nfree_ids > 0)
        return free_ids[--nfree_ids];
    return next_frame_id++;
}

/* @return 1 when e's id will be used again, 0 when it is kept. */
static int
tracer_frame_id_release(const struct st_fentry *e)
{
    uint32_t *p;

    if (e->gen_parent)
        return 0;
    p = st_grow(free_ids, &capfree_ids, nfree_ids + 1, sizeof(*p), 64);
    if (p == NULL)
        return 0;
    free_ids = p;
    free_ids[nfree_ids++] = e->id;
    return 1;
}

/*
 * The hook's entry: the calling thread's region and state, with the
 * program's time since the hook last returned accounted for.  @return the
 * thread's state (busy until tracer_hook_exit), or NULL when there is
 * nothing to do (no region, or this thread is inside the hook already).
 */
static inline struct st_tstate *
tracer_hook_enter(struct st_trace_region **rp)
{
    struct st_trace_region *r = st__threads_region();
    struct st_tstate *ts;

    if (r == NULL)
        return NULL;
    ts = st__threads_get(r);
    if (ts == NULL || ts->busy)
        return NULL;
    ts->busy = 1;
    st__clock_hook_ticks = st__clock_ticks();
    /* A thread moved to a CPU whose clock is a little behind: no time. */
    if ((int64_t)(st__clock_hook_ticks - ts->last_exit) > 0)
        ts->prog += st__clock_hook_ticks - ts->last_exit;
    if ((r->outputs & ST_OUT_FILE) && !st__sender_ok())
        st__region_reconnect(r);
    *rp = r;
    return ts;
}

/* The hook's exit: the program's time starts again. */
static inline void
tracer_hook_exit(struct st_tstate *ts)
{
    ts->last_exit = st__clock_ticks();
    ts->busy = 0;
}

/* Module-level code runs with its globals (g) as its locals. */
static int
tracer_module_level(PyFrameObject *f, PyCodeObject *co, PyObject *g)
{
    PyObject *l;
    int same;

    if (g == NULL || (co->co_flags & CO_OPTIMIZED))
        return 0;
    l = st_frame_get_locals(f);
    same = g == l;
    Py_XDECREF(l);
    PyErr_Clear();
    return same;
}

/* The runtime of a record: program time since the thread's last one. */
static uint64_t
tracer_take_runtime(struct st_tstate *ts)
{
    uint64_t runtime = ts->prog - ts->prog_at_step;

    ts->prog_at_step = ts->prog;
    return st__clock_ticks_ns(runtime);
}

/* A new entry on ts's stack for frame f (code co, cached info ci of
 * region r): its id, its module's globals, the object it builds.
 * @return it, or NULL (out of memory). */
static struct st_fentry *
tracer_push_new(struct st_trace_region *r, struct st_tstate *ts,
                PyFrameObject *f, PyCodeObject *co, struct st_codeinfo *ci)
{
    struct st_fentry *e = st__threads_push(ts);
    PyObject *globals;

    if (e == NULL)
        return NULL;
    e->frame = f;
    e->ci = ci;
    e->id = tracer_frame_id_new();
    globals = st_frame_get_globals(f);
    e->module_level = tracer_module_level(f, co, globals);
    if (globals != NULL)
        e->scope = st__region_scope(r, globals);
    Py_XDECREF(globals);
    if (ci->initialiser) {
        e->building = st__fastlocals_first_arg(f, co);
        ts->nbuilding += e->building != NULL;
    }
    return e;
}

/* Links the top entry e of ts (code co) to its traced caller. */
static void
tracer_push_link(struct st_tstate *ts, struct st_fentry *e, PyCodeObject *co)
{
    e->parent = ts->depth > 1 ? (uint32_t)(ts->depth - 1) : 0;
    if (e->parent != 0 && (co->co_flags & ST_CO_SUSPENDABLE))
        ts->stack[e->parent - 1].gen_parent = 1;
}

/* Pushes a traced frame: a resumed one with its kept state, a new one
 * with a CALL record at DEBUG. */
static void
tracer_push_frame(struct st_trace_region *r, struct st_tstate *ts,
                  PyFrameObject *f, PyCodeObject *co, struct st_codeinfo *ci)
{
    struct st_fentry *e;
    int kept = 0;

    if (co->co_flags & ST_CO_SUSPENDABLE) {
        e = st__threads_resume(ts, r, f, &kept);
        if (kept) {
            if (e != NULL) {
                tracer_push_link(ts, e, co);
                st__async_resume(r, e);
            }
            return;
        }
        /* A generator or coroutine that started before the region (like
         * the frame holding `with Tracer()`, or a coroutine awaiting in
         * `async with`) produces no records when it resumes. */
        if (!st_frame_is_first_start(f, co))
            return;
    }
    e = tracer_push_new(r, ts, f, co, ci);
    if (e == NULL)
        return;
    tracer_push_link(ts, e, co);
    if (st__region_rec_level(r) == ST_LEVEL_DEBUG) {
        /* The def line (1 for a module): f_lineno is 0 in a module
         * frame that has not started. */
        struct st_record rec = {.kind = ST_EVENT_CALL,
                                .line = (uint32_t)co->co_firstlineno};

        rec.runtime = tracer_take_runtime(ts);
        st__emit_record(r, ts, ts->depth - 1, &rec);
    }
    if (co->co_flags & CO_COROUTINE)
        st__async_coro_start(r, &ts->stack[ts->depth - 1]);
}

int
st__tracer_on_call(PyFrameObject *f)
{
    PyCodeObject *co;
    struct st_codeinfo *ci;
    st_exc_state es;
    int rc = ST_HOOK_OK;
    struct st_trace_region *r;
    struct st_tstate *ts = tracer_hook_enter(&r);

    if (ts == NULL)
        return ST_HOOK_OK;
    ST_EXC_SAVE(es);
    co = PyFrame_GetCode(f);
    ci = st__filter_codeinfo(co, &r->filter);
    if (ci != NULL)
        tracer_push_frame(r, ts, f, co, ci);
    else
        /* Library code: the backend keeps its lines from the hook (the
         * issue's "turn line events off in frames that are not
         * traceable"). */
        rc = ST_HOOK_UNTRACED;
    Py_DECREF(co);
    ST_EXC_RESTORE(es);
    tracer_hook_exit(ts);
    return rc;
}

/* Updates the variable states of frame e (frame f) for a step: its
 * module's globals into ts->gch, its locals into ts->lch.  @return the
 * locals mapping read (a new reference, to release after the record), or
 * NULL. */
static PyObject *
tracer_record_vars(struct st_trace_region *r, struct st_tstate *ts,
                   struct st_fentry *e, PyFrameObject *f)
{
    struct st_codeinfo *ci = e->ci;
    PyObject *locals;

    st__vars_changes_reset(&ts->gch);
    st__vars_changes_reset(&ts->lch);
    /* A module's globals are shared by threads: one updates them at a
     * time; another one's step meanwhile shows no global changes (the
     * next step shows them). */
    if (e->scope != NULL && !e->scope->busy) {
        e->scope->busy = 1;
        st__vars_update(&e->scope->snap, e->scope->globals, r, &ts->gch);
        e->scope->busy = 0;
    }
    if (e->module_level)
        return NULL;
    if (!ci->fast_checked) {
        PyCodeObject *co = PyFrame_GetCode(f);

        (void)st__fastlocals_ok(co, &ci->fast_names);
        ci->fast_checked = 1;
        Py_DECREF(co);
    }
    if (ci->fast_names != NULL) {
        st__vars_update_slots(&e->locals, ci->fast_names,
                              st__fastlocals_get(f),
                              PyTuple_GET_SIZE(ci->fast_names), r, &ts->lch);
        return NULL;
    }
    locals = st_frame_get_locals(f);
    if (locals != NULL)
        st__vars_update(&e->locals, locals, r, &ts->lch);
    return locals;
}

/* Records one line step of the frame on top of ts's stack. */
static void
tracer_record_step(struct st_trace_region *r, struct st_tstate *ts,
                   PyFrameObject *f, uint32_t line)
{
    size_t idx = ts->depth - 1;
    struct st_record rec = {.kind = ST_EVENT_STEP,
                            .gch = &ts->gch,
                            .lch = &ts->lch};
    PyObject *locals;
    st_exc_state es;

    rec.line = line;
    rec.runtime = tracer_take_runtime(ts);
    rec.vars = r->var_mode != ST_VARMODE_NONE;
    if (!rec.vars) {
        st__emit_record(r, ts, idx, &rec);
        return;
    }
    /* The program ran since the last step. */
    st__stateprint_forget();
    /* str() runs the program's code: the exception in flight (none, at a
     * line event) is kept aside meanwhile. */
    ST_EXC_SAVE(es);
    locals = tracer_record_vars(r, ts, &ts->stack[idx], f);
    PyErr_Clear();
    st__emit_record(r, ts, idx, &rec);
    Py_XDECREF(locals);
    ST_EXC_RESTORE(es);
}

int
st__tracer_on_line(PyFrameObject *f, int line)
{
    st_exc_state es;
    int rc = ST_HOOK_OK;
    struct st_trace_region *r;
    struct st_tstate *ts = tracer_hook_enter(&r);

    if (ts == NULL)
        return ST_HOOK_OK;
    if (ts->depth > 0 && ts->stack[ts->depth - 1].frame == f) {
        struct st_fentry *e = &ts->stack[ts->depth - 1];

        if (line < 0)
            line = PyFrame_GetLineNumber(f);
        e->line_now = (uint32_t)line;
        /* A line after a resumption: the await is over. */
        if (e->coro != NULL) {
            ST_EXC_SAVE(es);
            st__async_line(r, e, (uint32_t)line);
            ST_EXC_RESTORE(es);
        }
        /* ERROR and SILENT write no step records. */
        if (st__region_rec_level(r) < ST_LEVEL_ERROR)
            tracer_record_step(r, ts, f, (uint32_t)line);
    }
    else {
        rc = ST_HOOK_NOT_MINE;
    }
    tracer_hook_exit(ts);
    return rc;
}

/* RETURN record (DEBUG): the value, or "(raised)" when an exception ends
 * the frame. */
static void
tracer_record_return(struct st_trace_region *r, struct st_tstate *ts,
                     PyFrameObject *f, int raised, PyObject *arg)
{
    struct st_record rec = {.kind = ST_EVENT_RETURN};
    char *value = NULL, num[24];

#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12+ keeps no f_lineno for us: PyFrame_GetLineNumber() walks the
     * code's line table (~600 instructions a return on fib).  The line of
     * the frame's latest line event is what the frame's f_lineno holds at
     * a return under settrace (CPython's own emulation sets it at each
     * line event), so the record is the same as with that hook. */
    const struct st_fentry *e = &ts->stack[ts->depth - 1];

    rec.line = e->line_now != 0 ? e->line_now
                                : (uint32_t)PyFrame_GetLineNumber(f);
#else
    rec.line = (uint32_t)PyFrame_GetLineNumber(f);
#endif
    rec.runtime = tracer_take_runtime(ts);
    if (raised) {
        rec.kind = ST_EVENT_RETURN_EXC;
    }
    else if ((rec.detail_len = st__compose_int(arg, r->repr_limit, num)) > 0) {
        /* An int (the common case): no allocation. */
        rec.detail = num;
    }
    else {
        value = st__render_value(arg, r->repr_limit, &rec.detail_len);
        rec.detail = value;
    }
    st__emit_record(r, ts, ts->depth - 1, &rec);
    free(value);
}

/* The top frame of ts (frame f, code co) ends: its RETURN record at
 * DEBUG, its coroutine's end, its id given back. */
static void
tracer_pop_frame(struct st_trace_region *r, struct st_tstate *ts,
                 PyFrameObject *f, PyCodeObject *co, PyObject *arg, int how)
{
    struct st_fentry *e = &ts->stack[ts->depth - 1];
    int raised = how == ST_RET_GUESS ? st_return_is_exception(f, co, arg)
                                     : how == ST_RET_RAISE;

    if (st__region_rec_level(r) == ST_LEVEL_DEBUG)
        tracer_record_return(r, ts, f, raised, arg);
    st__async_coro_end(r, e, !raised);
    /* An id used again needs no FRAME_END: the next FRAME with it
     * replaces the frame (PROTOCOL.md).  Ids kept (parents of
     * generators) get one. */
    if (!tracer_frame_id_release(e))
        st__emit_frame_end(r, e);
    st__threads_pop(ts);
}

int
st__tracer_on_return(PyFrameObject *f, PyObject *arg, int how)
{
    int rc = ST_HOOK_OK;
    struct st_trace_region *r;
    struct st_tstate *ts = tracer_hook_enter(&r);

    if (ts == NULL)
        return ST_HOOK_OK;
    if (ts->depth > 0 && ts->stack[ts->depth - 1].frame == f) {
        struct st_fentry *e = &ts->stack[ts->depth - 1];
        PyCodeObject *co = PyFrame_GetCode(f);
        int suspending;
        st_exc_state es;

        ST_EXC_SAVE(es);
        if (how == ST_RET_GUESS)
            suspending = st_frame_is_suspending(f, co);
        else
            suspending = how == ST_RET_YIELD &&
                         (co->co_flags & ST_CO_SUSPENDABLE);
        if (suspending)
            st__async_suspend(r, e, f);
        /* A yield or an await: the frame comes back (kept aside). */
        if (!suspending || !st__threads_suspend(r, ts, f))
            tracer_pop_frame(r, ts, f, co, arg, how);
        Py_DECREF(co);
        ST_EXC_RESTORE(es);
    }
    else {
        rc = ST_HOOK_NOT_MINE;
    }
    tracer_hook_exit(ts);
    return rc;
}

/* Was the exception raised in this frame (or in code it called that is
 * not traced), rather than passing through from a traced callee? */
static int
tracer_raised_here(const struct st_trace_region *r, PyObject *tb)
{
    PyTracebackObject *t;

    if (tb == NULL || !PyTraceBack_Check(tb))
        return 1;
    for (t = ((PyTracebackObject *)tb)->tb_next; t != NULL; t = t->tb_next) {
        PyCodeObject *co = PyFrame_GetCode(t->tb_frame);
        int traced = st__filter_codeinfo(co, &r->filter) != NULL;

        Py_DECREF(co);
        if (traced)
            return 0;
    }
    return 1;
}

int
st__tracer_on_exception(PyFrameObject *f, PyObject *value, PyObject *tb)
{
    st_exc_state es;
    struct st_trace_region *r;
    struct st_tstate *ts = tracer_hook_enter(&r);

    if (ts == NULL)
        return ST_HOOK_OK;
    if (ts->depth > 0 && ts->stack[ts->depth - 1].frame == f &&
        value != NULL) {
        struct st_fentry *e = &ts->stack[ts->depth - 1];

        ST_EXC_SAVE(es);
        if ((PyErr_GivenExceptionMatches(value, PyExc_StopIteration) ||
             PyErr_GivenExceptionMatches(value, PyExc_StopAsyncIteration)) &&
            st_frame_at_iteration(f)) {
            /* An iterator saying it is done to a for loop, yield from,
             * await or async for (some versions report it as an
             * exception): not the program's exception, and an await that
             * ends so went well. */
            st__async_settle(r, e, 1);
            ST_EXC_RESTORE(es);
            tracer_hook_exit(ts);
            return ST_HOOK_OK;
        }
        /* An exception right after a resumption. */
        st__async_exception(r, e, value);
        /* Each raise is a record (a re-raise too); an exception passing
         * through from a traced callee was recorded there. */
        if (st__region_rec_level(r) <= ST_LEVEL_ERROR &&
            tracer_raised_here(r, tb)) {
            struct st_record rec = {.kind = ST_EVENT_EXCEPTION};
            char *detail = st__render_exception(value, r->repr_limit,
                                                &rec.detail_len);

            rec.line = (uint32_t)PyFrame_GetLineNumber(f);
            rec.runtime = tracer_take_runtime(ts);
            rec.detail = detail;
            st__emit_record(r, ts, ts->depth - 1, &rec);
            free(detail);
        }
        ST_EXC_RESTORE(es);
    }
    tracer_hook_exit(ts);
    return ST_HOOK_OK;
}
