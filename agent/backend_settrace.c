/*
 * The PyEval_SetTrace backend (3.10 and 3.11; on 3.12+ the fallback when
 * sys.monitoring has no free tool id).  A C trace function: events never
 * build argument tuples or call Python.  A non-zero return would
 * be an error raised into the program: always 0.
 */
#include "compat.h"

#include "backend.h"
#include "tracer.h"

#include <string.h>

static int
backend_settrace_func(PyObject *obj, PyFrameObject *f, int what, PyObject *arg)
{
    (void)obj;
    switch (what) {
    case PyTrace_CALL:
        if (st__tracer_on_call(f) == ST_HOOK_UNTRACED)
            /* Library code: its lines never reach the hook. */
            st_frame_disable_lines(f);
        return 0;
    case PyTrace_LINE: (void)st__tracer_on_line(f, -1); return 0;
    case PyTrace_RETURN:
        (void)st__tracer_on_return(f, arg, ST_RET_GUESS);
        return 0;
    case PyTrace_EXCEPTION:
        if (arg != NULL && PyTuple_Check(arg) && PyTuple_GET_SIZE(arg) == 3)
            (void)st__tracer_on_exception(f, PyTuple_GET_ITEM(arg, 1),
                                          PyTuple_GET_ITEM(arg, 2));
        return 0;
    default: return 0;
    }
}

int
st__backend_dispatch(PyFrameObject *f, const char *event, PyObject *arg)
{
    if (strcmp(event, "call") == 0)
        return backend_settrace_func(NULL, f, PyTrace_CALL, arg);
    if (strcmp(event, "line") == 0)
        return backend_settrace_func(NULL, f, PyTrace_LINE, arg);
    /* Python-level tracing passes None for an exception exit. */
    if (strcmp(event, "return") == 0)
        return backend_settrace_func(NULL, f, PyTrace_RETURN, arg);
    if (strcmp(event, "exception") == 0)
        return backend_settrace_func(NULL, f, PyTrace_EXCEPTION, arg);
    return 0;
}

void
st__backend_settrace_start(PyObject *handle)
{
    PyEval_SetTrace(backend_settrace_func, handle);
}

void
st__backend_settrace_stop(void)
{
    PyEval_SetTrace(NULL, NULL);
}
