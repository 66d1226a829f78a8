/*
 * The bound on the collector's memory (pressure.c): "pending" bytes,
 * received and not yet consumed or rendered and not yet written, are
 * counted here, and above a threshold the connections that produce stop
 * being read and processed (input.c) until the writers brought the
 * queues down (resume.c).  Standalone: the counts and the arithmetic
 * only, on a struct the server owns (struct st_server.pressure), fed by
 * the reading side (conn.c, input.c, ring.c) and the sinks' pending hook;
 * tests/test-int-pressure.c checks it alone.
 */
#ifndef STEPTRACE_DAEMON_PRESSURE_H
#define STEPTRACE_DAEMON_PRESSURE_H

#include <stddef.h>
#include <stdint.h>

struct st_pressure {
    size_t pending;     /* Bytes received or rendered, not yet
                           consumed or written. */
    size_t pending_out; /* Part of it in sink queues. */
    size_t pending_big; /* Read buffer room held for large
                           frames. */
    size_t max_pending; /* max_pending_bytes. */
    size_t rss_start;   /* Resident bytes once listening. */
    size_t overhead;    /* Resident bytes besides pending, as
                           last measured. */
    size_t nconns;      /* Connections open (each holds a read
                           buffer and chunks: the reserve). */
    uint64_t *peak;     /* Borrowed: the most pending bytes seen
                           (the pending_peak counter). */
};

/* Nothing pending, under a bound of max_pending bytes, the peak kept in
 * *peak.  Nothing to close. */
void st__pressure_init(struct st_pressure *p, size_t max_pending,
                       uint64_t *peak);
/* Pending bytes changed: read or processed (out = 0), rendered into a
 * sink queue or written (out = 1). */
void st__pressure_add(struct st_pressure *p, size_t n, int out);
void st__pressure_sub(struct st_pressure *p, size_t n, int out);
/* Pending bytes above which producers stop: a quarter of
 * max_pending_bytes, less if the collector's own reserve leaves less. */
size_t st__pressure_threshold(const struct st_pressure *p);
/* @return 1 when the sink queues are above the threshold (producers
 * must stop). */
int st__pressure_high(const struct st_pressure *p);
/* @return 1 when the sink queues are low enough again (under three
 * quarters of the threshold) for stopped producers to go on. */
int st__pressure_low(const struct st_pressure *p);
/*
 * May a connection hold `want` more bytes for a large frame?  Always yes
 * for the first large frame in progress, so that one always completes.
 */
int st__pressure_room_for_frame(const struct st_pressure *p, size_t want);
/* The process's resident size was measured (the measure timer): what it
 * holds besides pending bytes is the reserve from now on. */
void st__pressure_measure(struct st_pressure *p, size_t rss);

#endif /* STEPTRACE_DAEMON_PRESSURE_H */
