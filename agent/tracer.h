/*
 * The hook path (tracer.c): what the backend's hook does at each event of
 * a frame -- a traced frame is pushed on its thread's stack at a call
 * (or taken back at a resumption), recorded at each line, popped at its
 * return (or kept aside at a yield) -- and the program's time around it.
 *
 * tracer.c owns the frame ids it hands out; it records into the calling
 * thread's region (threads.h) through emit.c and async.c.  Callers:
 * backend_settrace.c and backend_monitoring.c only.  GIL held; these
 * entry points never raise, and keep the exception in flight.
 */
#ifndef STEPTRACE_AGENT_TRACER_H
#define STEPTRACE_AGENT_TRACER_H

#include "compat.h"

/* What an entry point tells the backend. */
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

/* A frame starts or resumes.  @return ST_HOOK_OK or ST_HOOK_UNTRACED. */
int st__tracer_on_call(PyFrameObject *f);

/* A line of f (line: its number, or -1 to read it from f).
 * @return ST_HOOK_OK or ST_HOOK_NOT_MINE. */
int st__tracer_on_line(PyFrameObject *f, int line);

/* f returns or yields arg (settrace: NULL or None when an exception ends
 * the frame); `how` is an ST_RET_*.
 * @return ST_HOOK_OK or ST_HOOK_NOT_MINE. */
int st__tracer_on_return(PyFrameObject *f, PyObject *arg, int how);

/* An exception `value` (traceback tb, or NULL) in f.  @return ST_HOOK_OK. */
int st__tracer_on_exception(PyFrameObject *f, PyObject *value, PyObject *tb);

#endif /* STEPTRACE_AGENT_TRACER_H */
