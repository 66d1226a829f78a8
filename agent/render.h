/*
 * A value's text as the log shows it (render.c): str() escaped and cut at the
 * region's repr_limit, composed in C where it can be (compose.c),
 * "<unprintable T: msg>" when str() raises; the "Type: message" of an
 * exception; and the texts kept by state print (stateprint.h), so that an
 * object's str() runs once per change of its state.  Returned texts are new
 * malloc'ed strings, the caller's to free.
 *
 * Callers: vars.c (variables), tracer.c (returned values, exceptions).
 * GIL held; never raises.
 */
#ifndef STEPTRACE_AGENT_RENDER_H
#define STEPTRACE_AGENT_RENDER_H

#include "compat.h"

#include <stddef.h>

#include "stateprint.h"
#include "vfp.h"

/*
 * Renders str(v) escaped and cut at `limit` characters into a new
 * malloc'ed, NUL-terminated string (*len_out excludes the NUL); a str()
 * that raises gives "<unprintable T: msg>".  Never raises; NULL only when
 * out of memory.
 */
char *st__render_value(PyObject *v, size_t limit, size_t *len_out);

/* Moves the fingerprint of the text st__render_value() last composed
 * into *fp (empty when it composed none); *fp must be empty. */
void st__render_take_fp(struct st_vfp *fp);

/* "Type: message" (or "Type" when str(exc) is empty) for an exception
 * value, rendered like st__render_value; NULL when out of memory. */
char *st__render_exception(PyObject *exc, size_t limit, size_t *len_out);

/* A copy of the text kept for state print sp at `limit` (a new malloc'ed
 * string), or NULL. */
char *st__render_cached(const struct st_stateprint *sp, size_t limit,
                        size_t *len);

/* Keeps a copy of `text` as the text of state print sp at `limit`. */
void st__render_keep(const struct st_stateprint *sp, size_t limit,
                     const char *text, size_t len);

#endif /* STEPTRACE_AGENT_RENDER_H */
