/*
 * The sys.monitoring backend (PEP 669, CPython 3.12+), and the choice of
 * backend.  C callables are registered for the events settrace would have
 * given (the same mapping CPython's own settrace emulation uses), so the
 * event stream is the same, minus that emulation's layer:
 *
 *   PY_START, PY_RESUME, PY_THROW  -> call
 *   LINE, JUMP back to the same line -> line
 *   PY_RETURN, PY_YIELD, PY_UNWIND -> return (value, yield, exception)
 *   RAISE                          -> exception
 *
 * Events at locations of code that is not traced return DISABLE, so
 * library code costs one callback per location, once (see "code
 * locations switched off" below for when that is allowed).  Before 3.12,
 * and when no tool id is free (or STEPTRACE_BACKEND=settrace), the
 * settrace backend is used.
 */
#include "compat.h"

#include "agent.h"
#include "backend.h"
#include "filter.h"
#include "threads.h"
#include "tracer.h"

#include <stdlib.h>
#include <string.h>

#if !ST_HAVE_MONITORING

void
st__backend_start(PyObject *handle)
{
    st__backend_settrace_start(handle);
}

void
st__backend_stop(void)
{
    st__backend_settrace_stop();
}

void
st__backend_idle(int release)
{
    (void)release;
}

const char *
st__backend_name(void)
{
    return "settrace";
}

#else

enum { MODE_UNSET, MODE_MONITORING, MODE_SETTRACE };

static int mode = MODE_UNSET;
static int tool = -1;    /* Tool id while we hold one, else -1. */
static long events_mask; /* Our events, when they are on. */
static int events_on;
static PyObject *disable_obj; /* Owned: sys.monitoring.DISABLE. */

/* ---- code locations switched off (sys.monitoring DISABLE) ---- */

/*
 * Events switched off at a location stay off for every thread until they
 * are restarted.  They are switched off only for code that the filter of
 * the live regions does not trace; while regions with different filters
 * are live, nothing is switched off.
 */
enum { OFF_NONE, OFF_KEY };
static int off_state = OFF_NONE;
static uint64_t off_key;

/* Code locations whose events were switched off get them back (the
 * filter deciding what is traced changed). */
static void
mon_restart(void)
{
    PyObject *mon = PySys_GetObject("monitoring"), *res;
    st_exc_state es;

    if (mode != MODE_MONITORING || mon == NULL)
        return;
    ST_EXC_SAVE(es);
    res = PyObject_CallMethod(mon, "restart_events", NULL);
    Py_XDECREF(res);
    PyErr_Clear();
    ST_EXC_RESTORE(es);
}

/* r became live in the calling thread: settle what may be switched
 * off. */
static void
mon_off_policy(const struct st_trace_region *r)
{
    int mixed;

    if (off_state == OFF_KEY && off_key == r->filter.key)
        return;
    mixed = st__threads_other_filter_live(r->filter.key);
    if (off_state == OFF_KEY)
        mon_restart();
    if (mixed) {
        off_state = OFF_NONE;
    }
    else {
        off_state = OFF_KEY;
        off_key = r->filter.key;
    }
}

/* May events of code `co` be switched off at their locations for every
 * thread?  Only while all live regions filter alike and co is not traced
 * under that filter. */
static int
mon_off_ok(PyCodeObject *co)
{
    struct st_trace_region *r = st__threads_region();

    if (r == NULL || off_state != OFF_KEY || r->filter.key != off_key)
        return 0;
    return st__filter_codeinfo(co, &r->filter) == NULL;
}

/* The frame the event happened in (borrowed), or NULL. */
static inline PyFrameObject *
event_frame(void)
{
    return PyEval_GetFrame();
}

static PyObject *
mon_start(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyFrameObject *f;

    (void)self;
    if (nargs < 1 || st__threads_region() == NULL ||
        (f = event_frame()) == NULL)
        Py_RETURN_NONE;
    if (st__tracer_on_call(f) == ST_HOOK_UNTRACED &&
        mon_off_ok((PyCodeObject *)args[0]))
        return Py_NewRef(disable_obj);
    Py_RETURN_NONE;
}

static PyObject *
mon_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyFrameObject *f;

    (void)self;
    (void)args;
    (void)nargs;
    /* Not a location event: cannot be switched off. */
    if (st__threads_region() != NULL && (f = event_frame()) != NULL)
        (void)st__tracer_on_call(f);
    Py_RETURN_NONE;
}

/* A line event of code `co` at `line`. */
static PyObject *
mon_line_at(PyObject *co, int line)
{
    PyFrameObject *f;

    if (st__threads_region() == NULL || (f = event_frame()) == NULL)
        Py_RETURN_NONE;
    if (st__tracer_on_line(f, line) == ST_HOOK_NOT_MINE &&
        mon_off_ok((PyCodeObject *)co))
        return Py_NewRef(disable_obj);
    Py_RETURN_NONE;
}

static PyObject *
mon_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 2)
        Py_RETURN_NONE;
    return mon_line_at(args[0], (int)PyLong_AsLong(args[1]));
}

/*
 * settrace reports a line again when a backward jump lands on the line it
 * left (a one-line loop); a LINE event only fires when the line changes.
 * Other jumps never make a line event: switched off at once.
 */
static PyObject *
mon_jump(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long from, to;
    int to_line;

    (void)self;
    if (nargs < 3)
        Py_RETURN_NONE;
    from = PyLong_AsLong(args[1]);
    to = PyLong_AsLong(args[2]);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (to > from)
        return Py_NewRef(disable_obj);
    to_line = PyCode_Addr2Line((PyCodeObject *)args[0], (int)to);
    if (to_line != PyCode_Addr2Line((PyCodeObject *)args[0], (int)from))
        return Py_NewRef(disable_obj);
    return mon_line_at(args[0], to_line);
}

/* A frame ends (PY_RETURN) or suspends (PY_YIELD) with args[2]. */
static PyObject *
mon_leave(PyObject *const *args, Py_ssize_t nargs, int how)
{
    PyFrameObject *f;

    if (nargs < 3 || st__threads_region() == NULL ||
        (f = event_frame()) == NULL)
        Py_RETURN_NONE;
    if (st__tracer_on_return(f, args[2], how) == ST_HOOK_NOT_MINE &&
        mon_off_ok((PyCodeObject *)args[0]))
        return Py_NewRef(disable_obj);
    Py_RETURN_NONE;
}

static PyObject *
mon_return(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    return mon_leave(args, nargs, ST_RET_VALUE);
}

static PyObject *
mon_yield(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    return mon_leave(args, nargs, ST_RET_YIELD);
}

static PyObject *
mon_unwind(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyFrameObject *f;

    (void)self;
    (void)args;
    (void)nargs;
    if (st__threads_region() != NULL && (f = event_frame()) != NULL)
        (void)st__tracer_on_return(f, NULL, ST_RET_RAISE);
    Py_RETURN_NONE;
}

static PyObject *
mon_raise(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyFrameObject *f;
    PyObject *tb;

    (void)self;
    if (nargs < 3 || st__threads_region() == NULL ||
        (f = event_frame()) == NULL)
        Py_RETURN_NONE;
    tb = PyException_GetTraceback(args[2]);
    (void)st__tracer_on_exception(f, args[2], tb);
    Py_XDECREF(tb);
    Py_RETURN_NONE;
}

static PyMethodDef mon_defs[] = {
    {"PY_START", (PyCFunction)(void (*)(void))mon_start, METH_FASTCALL, NULL},
    {"PY_RESUME", (PyCFunction)(void (*)(void))mon_start, METH_FASTCALL, NULL},
    {"PY_THROW", (PyCFunction)(void (*)(void))mon_throw, METH_FASTCALL, NULL},
    {"LINE", (PyCFunction)(void (*)(void))mon_line, METH_FASTCALL, NULL},
    {"JUMP", (PyCFunction)(void (*)(void))mon_jump, METH_FASTCALL, NULL},
    {"PY_RETURN", (PyCFunction)(void (*)(void))mon_return, METH_FASTCALL,
     NULL},
    {"PY_YIELD", (PyCFunction)(void (*)(void))mon_yield, METH_FASTCALL, NULL},
    {"PY_UNWIND", (PyCFunction)(void (*)(void))mon_unwind, METH_FASTCALL,
     NULL},
    {"RAISE", (PyCFunction)(void (*)(void))mon_raise, METH_FASTCALL, NULL},
};
#define NEVENTS (sizeof(mon_defs) / sizeof(mon_defs[0]))

static PyObject *callbacks[NEVENTS]; /* Owned C callables. */

/* Registers `cb` (or None) for every event of ours.  @return the events
 * mask, or -1 (raised). */
static long
mon_register(PyObject *mon, int use_ours)
{
    PyObject *events = PyObject_GetAttrString(mon, "events");
    long mask = 0;
    size_t i;

    if (events == NULL)
        return -1;
    for (i = 0; i < NEVENTS; i++) {
        PyObject *ev = PyObject_GetAttrString(events, mon_defs[i].ml_name);
        PyObject *res = NULL;
        long bit;

        if (ev == NULL)
            goto fail;
        bit = PyLong_AsLong(ev);
        if (bit != -1 || !PyErr_Occurred())
            res = PyObject_CallMethod(mon, "register_callback", "iOO", tool,
                                      ev, use_ours ? callbacks[i] : Py_None);
        Py_DECREF(ev);
        if (res == NULL)
            goto fail;
        Py_DECREF(res);
        mask |= bit;
    }
    Py_DECREF(events);
    return mask;

fail:
    Py_DECREF(events);
    return -1;
}

/* Turns our events on.  @return 0, or -1 when sys.monitoring cannot be
 * used (no free tool id); nothing raised. */
static int
mon_enable(void)
{
    static const int ids[] = {4, 3, 5, 2}; /* Free for "other" tools. */
    PyObject *mon = PySys_GetObject("monitoring"), *res;
    long mask;
    size_t i;

    if (mon == NULL)
        return -1;
    for (i = 0; i < NEVENTS; i++)
        if (callbacks[i] == NULL &&
            (callbacks[i] = PyCFunction_New(&mon_defs[i], NULL)) == NULL)
            goto fail;
    if (disable_obj == NULL &&
        (disable_obj = PyObject_GetAttrString(mon, "DISABLE")) == NULL)
        goto fail;
    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        res = PyObject_CallMethod(mon, "use_tool_id", "is", ids[i],
                                  "steptrace");
        if (res != NULL) {
            Py_DECREF(res);
            tool = ids[i];
            break;
        }
        PyErr_Clear();
    }
    if (tool < 0)
        return -1;
    mask = mon_register(mon, 1);
    if (mask < 0)
        goto fail_tool;
    res = PyObject_CallMethod(mon, "set_events", "il", tool, mask);
    if (res == NULL)
        goto fail_tool;
    Py_DECREF(res);
    events_mask = mask;
    events_on = 1;
    return 0;

fail_tool:
    PyErr_Clear();
    (void)mon_register(mon, 0);
    res = PyObject_CallMethod(mon, "free_tool_id", "i", tool);
    Py_XDECREF(res);
    tool = -1;
fail:
    PyErr_Clear();
    return -1;
}

static void
mon_disable(void)
{
    PyObject *mon = PySys_GetObject("monitoring"), *res;
    st_exc_state es;

    if (tool < 0 || mon == NULL)
        return;
    ST_EXC_SAVE(es);
    res = PyObject_CallMethod(mon, "set_events", "ii", tool, 0);
    Py_XDECREF(res);
    PyErr_Clear();
    (void)mon_register(mon, 0);
    PyErr_Clear();
    res = PyObject_CallMethod(mon, "free_tool_id", "i", tool);
    Py_XDECREF(res);
    PyErr_Clear();
    ST_EXC_RESTORE(es);
    tool = -1;
    events_on = 0;
}

/* Turns our events on or off, keeping the tool id and callbacks. */
static void
mon_switch(int on)
{
    PyObject *mon = PySys_GetObject("monitoring"), *res;
    st_exc_state es;

    if (tool < 0 || mon == NULL || events_on == on)
        return;
    ST_EXC_SAVE(es);
    res = PyObject_CallMethod(mon, "set_events", "il", tool,
                              on ? events_mask : 0L);
    if (res != NULL)
        events_on = on;
    Py_XDECREF(res);
    PyErr_Clear();
    ST_EXC_RESTORE(es);
}

void
st__backend_start(PyObject *handle)
{
    const struct st_trace_region *live = st__threads_region_live();

    if (live != NULL)
        mon_off_policy(live);
    if (mode == MODE_UNSET) {
        const char *want = getenv("STEPTRACE_BACKEND");

        mode = want != NULL && strcmp(want, "settrace") == 0 ? MODE_SETTRACE
                                                             : MODE_MONITORING;
    }
    if (mode == MODE_MONITORING && tool >= 0)
        mon_switch(1);
    else if (mode == MODE_MONITORING && mon_enable() != 0)
        /* No tool id free (other tools hold all of them): settrace. */
        mode = MODE_SETTRACE;
    if (mode == MODE_SETTRACE)
        st__backend_settrace_start(handle);
}

void
st__backend_stop(void)
{
    if (mode == MODE_SETTRACE)
        st__backend_settrace_stop();
}

void
st__backend_idle(int release)
{
    if (mode != MODE_MONITORING || tool < 0 || st__threads_any_live())
        return;
    /* Between two resumptions of a traced generator the events are only
     * switched off (one call); the tool id goes back when regions end. */
    if (release)
        mon_disable();
    else
        mon_switch(0);
}

const char *
st__backend_name(void)
{
    return mode == MODE_MONITORING ? "sys.monitoring" : "settrace";
}

#endif
