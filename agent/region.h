/*
 * Regions (region.c): a traced region is built from the package's
 * arguments (owned by a Region Python object, freed with it), entered
 * and left by threads, finished when the package stops it; it keeps the
 * state of the module globals it has seen, and what the collector was
 * sent for it (forgotten at a reconnection or in a forked child).  The
 * struct itself is agent.h's (every layer reads it).
 *
 * Callers: module.c (the Python-facing functions), tracer.c (module
 * globals, reconnection at the hook's entry).  GIL held.
 */
#ifndef STEPTRACE_AGENT_REGION_H
#define STEPTRACE_AGENT_REGION_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

/* region(...) -> Region: the module function (METH_VARARGS |
 * METH_KEYWORDS) building a region from the package's arguments.
 * @return a new reference, or NULL with an exception raised. */
PyObject *st__region_py_new(PyObject *mod, PyObject *args, PyObject *kw);

/* Makes the Region heap type and adds it to module m as "Region" (once,
 * at module init).  @return 0, or -1 with an exception raised. */
int st__region_add_type(PyObject *m);

/* The region of Region object obj (borrowed from it), or NULL with a
 * TypeError raised when obj is not a Region. */
struct st_trace_region *st__region_of(PyObject *obj);

/*
 * Makes Region object obj's region the calling thread's.  With `fresh`,
 * it starts recording anew in this thread (its frame stack starts
 * empty); without, the thread joins the region as it is.
 * @return the thread's previous Region object (a new reference) or NULL.
 */
PyObject *st__region_enter(PyObject *obj, int fresh);

/* The calling thread's region becomes `prev` (a Region object or NULL). */
void st__region_leave(PyObject *prev);

/*
 * Ends r's recording: every thread drops its frames, the module globals'
 * states are freed, and REGION_END + FLUSH(token) are queued when the
 * region writes to a file (after a reconnection, tried at once, when the
 * connection is gone: the LOST count goes first).  @return the flush
 * token to wait for, or 0 when nothing was sent.
 */
uint64_t st__region_finish(struct st_trace_region *r);

/*
 * Called when r's records cannot be sent because the collector
 * connection is gone: at most once a second, reconnects through the
 * package's hook (collector.c).  After a new connection, every scope's
 * and frame's variable state is sent again from scratch: the collector
 * starts a new file for the region.  @return 1 when connected.
 */
int st__region_reconnect(struct st_trace_region *r);

/*
 * Called when the connection died after st__region_finish sent r's end
 * and before the collector confirmed it: reconnects at once (a region's
 * end does not wait for st__region_reconnect's second) and sends the
 * region's count of lost records and its end again, so that the count is
 * in the new file
 * (docs/COLLECTOR.md section 12).  @return the flush token to wait for,
 * or 0 when nothing could be sent.
 */
uint64_t st__region_end_again(struct st_trace_region *r);

/* A NOTE (kind enum st_note) in r's log, in order with its records.
 * @return 0, or -1 when r writes no file or there is no connection. */
int st__region_note(struct st_trace_region *r, uint32_t kind, const char *text,
                    size_t n);

/* The state of module globals `globals` in r (made at its first sight),
 * or NULL when out of memory. */
struct st_trace_scope *st__region_scope(struct st_trace_region *r,
                                        PyObject *globals);

/* In a forked child (the package's after-fork hook): the calling
 * thread's region goes on in the child, into a new file (a new
 * connection); other threads' states are gone. */
void st__region_after_fork_child(void);

#endif /* STEPTRACE_AGENT_REGION_H */
