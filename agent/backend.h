/*
 * The one small interface every trace backend implements (the Redis ae_*.c
 * pattern): install the hook for the calling thread, remove it, and feed an
 * event that arrived through Python (sys.settrace of our handle).
 */
#ifndef STEPTRACE_AGENT_BACKEND_H
#define STEPTRACE_AGENT_BACKEND_H

#include "compat.h"

#include <string.h>

/* Installs the hook in the calling thread; `handle` is what
 * sys.gettrace() returns while it is installed (borrowed by CPython). */
void st__backend_start(PyObject *handle);

/* Removes the hook from the calling thread. */
void st__backend_stop(void);

/* Feeds one event given by name ("call", "line", "return",
 * "exception") with its argument. */
int st__backend_dispatch(PyFrameObject *f, const char *event, PyObject *arg);

#endif /* STEPTRACE_AGENT_BACKEND_H */
