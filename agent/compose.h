/*
 * str() of values at the cost of what is shown (compose.c): exact ints
 * and floats formatted in C, and exact lists, tuples, dicts, sets and
 * frozensets composed item by item up to the region's repr_limit, with a
 * fingerprint (vfp.h) of what the text shows.  Returned texts are new
 * malloc'ed strings, the caller's to free.
 *
 * The program's own str() and repr() run through st__compose_text: a
 * half-built object's __str__ can fill a cache from state not set yet (a
 * functools.cached_property), which would change what the program does
 * later, so for an object that a traced initialiser is building (asked
 * through the callback module.c sets from threads.c), its attribute dict
 * is put back as it was if str() changed it.
 *
 * Callers: render.c (a variable's text).  GIL held; an item's repr() may
 * run the program's code.
 */
#ifndef STEPTRACE_AGENT_COMPOSE_H
#define STEPTRACE_AGENT_COMPOSE_H

#include "compat.h"

#include <stddef.h>

#include "vfp.h"

/* Is v an object that a traced initialiser running on this thread is
 * building (the first argument of an __init__ on its stack)? */
typedef int (*st_compose_building_cb)(PyObject *v);

/* Sets the building check (once, at module init; NULL: none). */
void st__compose_set_building(st_compose_building_cb cb);

/* str(v), or repr(v) when `repr`: a new reference, or NULL with the
 * exception set.  See above for objects being built. */
PyObject *st__compose_text(PyObject *v, int repr);

/* str() of an exact int or float formatted in C (no str object), as a new
 * malloc'ed string; NULL when v is not one or its text is longer than
 * `limit` (0: no limit). */
char *st__compose_number(PyObject *v, size_t limit, size_t *len_out);

/* str() of an exact int that fits a long long, into buf (no allocation):
 * @return its length (no NUL), or 0 when v is not one, or is longer than
 * `limit` (0: no limit). */
size_t st__compose_int(PyObject *v, size_t limit, char buf[24]);

/*
 * str() of an exact list, tuple, dict, set or frozenset, composed item by
 * item up to `limit` characters, escaped, cut texts ending "... (N
 * items)": a new malloc'ed string (*len_out excludes the NUL), or NULL
 * when v is not such a container or its str() must say something went
 * wrong.  *fp receives the fingerprint of what it shows (ntok 0 when the
 * program's code ran meanwhile or v has none); free with st__vfp_clear.
 */
char *st__compose_value(PyObject *v, size_t limit, size_t *len_out,
                        struct st_vfp *fp);

#endif /* STEPTRACE_AGENT_COMPOSE_H */
