/*
 * The PyEval_SetTrace backend (every supported CPython; the sys.monitoring
 * backend for 3.12+ is planned behind the same two calls).  A C trace
 * function: events never build argument tuples or call Python.
 */
#include "agent.h"

#include "backend.h"

static int
settrace_func(PyObject *obj, PyFrameObject *f, int what, PyObject *arg)
{
    (void)obj;
    switch (what) {
    case PyTrace_CALL:
        return st__on_call(f);
    case PyTrace_LINE:
        return st__on_line(f);
    case PyTrace_RETURN:
        return st__on_return(f, arg);
    case PyTrace_EXCEPTION:
        return st__on_exception(f, arg);
    default:
        return 0;
    }
}

int
st__backend_dispatch(PyFrameObject *f, const char *event, PyObject *arg)
{
    if (strcmp(event, "call") == 0)
        return settrace_func(NULL, f, PyTrace_CALL, arg);
    if (strcmp(event, "line") == 0)
        return settrace_func(NULL, f, PyTrace_LINE, arg);
    /* Python-level tracing passes None for an exception exit. */
    if (strcmp(event, "return") == 0)
        return settrace_func(NULL, f, PyTrace_RETURN, arg);
    if (strcmp(event, "exception") == 0)
        return settrace_func(NULL, f, PyTrace_EXCEPTION, arg);
    return 0;
}

void
st__backend_start(PyObject *handle)
{
    PyEval_SetTrace(settrace_func, handle);
}

void
st__backend_stop(void)
{
    PyEval_SetTrace(NULL, NULL);
}
