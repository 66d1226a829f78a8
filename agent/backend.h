/*
 * The one small interface every trace backend implements (the Redis ae_*.c
 * pattern): sys.monitoring on 3.12+ (backend_monitoring.c), else the
 * PyEval_SetTrace C trace function (backend_settrace.c).  Both feed the
 * st__tracer_on_* entry points of tracer.c; backend_monitoring.c also
 * decides when code locations may be switched off for every thread
 * (sys.monitoring's DISABLE).
 *
 * The backends own the hook's registration (tool id, callbacks); they
 * read the calling thread's region (threads.h) and the filter's verdicts.
 * Caller: module.c.  GIL held.
 */
#ifndef STEPTRACE_AGENT_BACKEND_H
#define STEPTRACE_AGENT_BACKEND_H

#include "compat.h"

/* The calling thread starts recording (it has just entered a region, or
 * gone back to one): makes sure events reach the hook, and settles what
 * may stay switched off for the region now live.  `handle` is what
 * sys.gettrace() returns while the settrace backend is installed
 * (borrowed by CPython). */
void st__backend_start(PyObject *handle);

/* The calling thread stops recording. */
void st__backend_stop(void);

/* A region ended (release) or paused: hooks that no live region needs
 * are switched off, and with `release` given back. */
void st__backend_idle(int release);

/* The backend in use: "sys.monitoring" or "settrace". */
const char *st__backend_name(void);

/* Feeds one event given by name ("call", "line", "return",
 * "exception") with its argument: our handle called from Python after
 * someone re-installed it with sys.settrace(). */
int st__backend_dispatch(PyFrameObject *f, const char *event, PyObject *arg);

/* backend_settrace.c: the C trace function installed and removed (the
 * settrace backend, and sys.monitoring's fallback). */
void st__backend_settrace_start(PyObject *handle);
void st__backend_settrace_stop(void);

#endif /* STEPTRACE_AGENT_BACKEND_H */
