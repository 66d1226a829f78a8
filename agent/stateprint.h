/*
 * State prints (stateprint.c, statewalk.c): a hash of the state an object
 * of a class statement's class holds (what its own __str__ can show),
 * taken without running the program's code, so that its str() runs again
 * only when that state changed.  Whether a walk is worth it is weighed
 * per type against what str() costs.
 *
 * stateprint.c owns the per-type costs and the prints taken since the
 * program's code last ran; statewalk.c owns the walk.  Callers: vars.c
 * (a variable's state), render.c and tracer.c (the program's code may
 * run).  GIL held.
 */
#ifndef STEPTRACE_AGENT_STATEPRINT_H
#define STEPTRACE_AGENT_STATEPRINT_H

#include "compat.h"

#include <stdint.h>

struct st_stateprint {
    uint64_t hash;
    uint32_t nodes;
};

/* @return 1 and fills *out, or 0 when v's state cannot be walked (not a
 * class statement's instance, something opaque or too much in reach) or
 * a walk of its type is not worth it. */
int st__stateprint_take(PyObject *v, struct st_stateprint *out);

/* The program's code may run (a str(), the next line): prints taken so
 * far are not reused. */
void st__stateprint_forget(void);

/* What a str() of an object of type t cost (clock ticks), to weigh walks
 * against. */
void st__stateprint_str_cost(const PyTypeObject *t, uint64_t ticks);

/* Whether a walk of an object of type t spared a str() (its state was
 * as last shown, or its text was kept for that state). */
void st__stateprint_outcome(const PyTypeObject *t, int spared);

#endif /* STEPTRACE_AGENT_STATEPRINT_H */
