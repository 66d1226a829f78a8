/*
 * Async records (async.c, docs/LOG-FORMAT.md section 9): coroutines in the
 * workspace are followed automatically.  A coroutine frame's first start is
 * COROUTINE START, its end COROUTINE END; each suspension of it (an await
 * that waits) is an AWAIT START, its resumption an AWAIT END, settled at
 * the frame's next event (a line: it went well; an exception: the await
 * raised).  Task records come from the package (task_event).
 *
 * async.c owns the package's two Python hooks; a frame's async state
 * (struct st_coro) hangs off its entry (threads.h) and is released with
 * it.  Callers: tracer.c (frame events), module.c (hooks, task records).
 * GIL held; never raises.
 */
#ifndef STEPTRACE_AGENT_ASYNC_H
#define STEPTRACE_AGENT_ASYNC_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "threads.h"

/* The package's hooks: await_expression(frame) -> str and
 * loop_created_task_hook() -> None (NULL: none); new references kept. */
void st__async_set_hooks(PyObject *expr, PyObject *loop);

/* A coroutine frame e starts (COROUTINE START). */
void st__async_coro_start(struct st_trace_region *r, struct st_fentry *e);

/* Frame e (frame f) suspends at an await. */
void st__async_suspend(struct st_trace_region *r, struct st_fentry *e,
                       PyFrameObject *f);

/* Frame e resumes; its AWAIT END waits for its next event. */
void st__async_resume(struct st_trace_region *r, struct st_fentry *e);

/* Writes the pending AWAIT END of e, if any: `ok` when the await went
 * well. */
void st__async_settle(struct st_trace_region *r, struct st_fentry *e, int ok);

/* An exception event right after a resumption: whether the await raised
 * is known at the frame's next event. */
void st__async_exception(struct st_trace_region *r, struct st_fentry *e,
                         PyObject *value);

/* At a line event: settles a pending AWAIT END. */
void st__async_line(struct st_trace_region *r, struct st_fentry *e,
                    uint32_t line);

/* Coroutine frame e ends (COROUTINE END); its async state is released. */
void st__async_coro_end(struct st_trace_region *r, struct st_fentry *e,
                        int ok);

/* A task record from the package in region r (NULL: none).  @return 1
 * when written. */
int st__async_task_event(struct st_trace_region *r, int created,
                         const char *name, size_t n, int ok,
                         uint64_t duration_ns);

#endif /* STEPTRACE_AGENT_ASYNC_H */
