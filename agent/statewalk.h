/*
 * The walk behind a state print (statewalk.c; see stateprint.h): what an
 * object of a class statement's class (or an opaque immutable type
 * written in C, such as a compiled pattern or a date) holds, hashed
 * without running the program's code.  It owns the walk's reusable
 * stack and visited set.  Caller: stateprint.c.  GIL held.
 */
#ifndef STEPTRACE_AGENT_STATEWALK_H
#define STEPTRACE_AGENT_STATEWALK_H

#include "compat.h"

#include <stdint.h>

/* Can objects of type t be walked (and is the walk set up)?  @return 1
 * when so; 0 when not, or when the walk cannot be set up. */
int st__statewalk_ready(PyTypeObject *t);

/* Walks v (whose type st__statewalk_ready accepted).  @return 0 with
 * *hash and *nodes filled, or -1 when the walk gave up (something it
 * cannot see into, or too much in reach). */
int st__statewalk_run(PyObject *v, uint64_t *hash, uint32_t *nodes);

#endif /* STEPTRACE_AGENT_STATEWALK_H */
