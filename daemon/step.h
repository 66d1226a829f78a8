/*
 * Records (step.c): STEP and LINE messages applied to the variable state
 * and rendered with the shared formatter, and EVENT and ASYNC records,
 * into the sink of their region.  Called by session.c for each such
 * message; the record views borrow the connection's tables and the
 * server's scratch arrays, so the hot LINE path allocates nothing.
 */
#ifndef STEPTRACE_DAEMON_STEP_H
#define STEPTRACE_DAEMON_STEP_H

#include "steptrace/wire.h"

struct st_conn;

/* Applies and renders one STEP or LINE.  @return 0 or ST_E*. */
int st__step_apply(struct st_conn *c, const struct st_msg *m);
/* Renders an EVENT (call, return, exception) into the region's file.
 * CALL and RETURN records are written at DEBUG only, EXCEPTION records at
 * DEBUG, INFO, WARNING and ERROR (docs/LOG-FORMAT.md sections 7 and 8).
 * @return 0 or a protocol error. */
int st__step_event(struct st_conn *c, const struct st_msg *m);
/* Renders an ASYNC record (docs/LOG-FORMAT.md section 9), numbered
 * "Async Step N" by the region's own counter; written at DEBUG, INFO and
 * WARNING. */
int st__step_async(struct st_conn *c, const struct st_msg *m);

#endif /* STEPTRACE_DAEMON_STEP_H */
