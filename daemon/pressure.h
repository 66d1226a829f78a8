/*
 * The bound on the collector's memory (pressure.c): "pending" bytes,
 * received and not yet consumed or rendered and not yet written, are
 * counted in the server (struct st_server.pending...), and above a
 * threshold the connections that produce stop being read and processed;
 * they are resumed, in turn, once the writers brought the queues down.
 * Called by the reading side (conn.c, ring.c), the sinks and the ACKs.
 */
#ifndef STEPTRACE_DAEMON_PRESSURE_H
#define STEPTRACE_DAEMON_PRESSURE_H

#include <stddef.h>

struct st_server;
struct st_conn;

/* Pending bytes changed: read or processed (out = 0), rendered into a
 * sink queue or written (out = 1). */
void st__pressure_add(struct st_server *srv, size_t n, int out);
void st__pressure_sub(struct st_server *srv, size_t n, int out);
/* Pending bytes above which producers stop: a quarter of
 * max_pending_bytes, less if the collector's own reserve leaves less. */
size_t st__pressure_threshold(const struct st_server *srv);
/* @return 1 when the sink queues are above the threshold (producers
 * must stop). */
int st__pressure_high(const struct st_server *srv);
/*
 * May c hold `want` more bytes for a large frame?  Always yes for the
 * first large frame in progress, so that one always completes.
 */
int st__pressure_room_for_frame(const struct st_server *srv, size_t want);
/* Blocks are lifted when pending is low again: schedules resumes, least
 * loaded connections first. */
void st__pressure_schedule(struct st_server *srv);
/* Measures the resident size (the measure timer). */
void st__pressure_measure(struct st_server *srv);
/* A connection became blocked for pressure (counted). */
void st__pressure_paused(struct st_server *srv, struct st_conn *c);

#endif /* STEPTRACE_DAEMON_PRESSURE_H */
