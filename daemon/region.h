/*
 * Regions (region.c): the messages that open, end and annotate a region
 * (REGION, REGION_END, NOTE, LOST), each applied by session.c's
 * dispatch, and the lines written when the process is gone with regions
 * still open (input.c).  A region is owned by its connection's table
 * (c->regions, freed by st__session_close); its sink is borrowed from
 * c->sinks.  step.c renders records into the region's sink.
 */
#ifndef STEPTRACE_DAEMON_REGION_H
#define STEPTRACE_DAEMON_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/wire.h"

struct st_conn;
struct st_sink;

struct st_region {
    uint32_t id;
    uint32_t tracer_id;
    uint32_t level;
    uint32_t var_mode;
    uint64_t steps;        /* Records emitted so far. */
    uint64_t async_steps;  /* Async records (their own counter). */
    uint64_t lost;         /* Sum of LOST counts. */
    uint32_t first_tid;    /* Thread of the first STEP ... */
    int seen_tid;          /* ... once one was seen. */
    int multi_thread;      /* A second thread stepped: show "| thread". */
    uint32_t formats;      /* ST_FORMAT_* of its REGION. */
    struct st_sink *sink;  /* Borrowed from conn->sinks; NULL when the
                              tracer writes no text (steps only). */
    struct st_sink *store; /* Borrowed: its step store's sink, or NULL. */
    /* With a store: the counts and thread state of every record received,
     * whatever the level (DEBUG's view), for the prologue's RSTATE. */
    uint64_t rec_steps;
    uint64_t rec_async;
    uint32_t rec_first_tid;
    int rec_seen_tid;
    int rec_multi_thread;
    uint64_t opened_us; /* Wall clock at REGION (forward.c's run). */
};

/* REGION: a new region, and for the tracer's first its sink.
 * @return 0, or ST_E* (a protocol error; c->detail says more). */
int st__region_open(struct st_conn *c, const struct st_msg *m);
/* REGION_END: writes the region's loss line if any, flushes its file.
 * @return 0 or ST_ESTATE. */
int st__region_end(struct st_conn *c, const struct st_msg *m);
/* NOTE: one "[steptrace] ..." line of the agent's in the region's file,
 * in order with its records.  @return 0, ST_ESTATE or ST_ENOMEM. */
int st__region_note(struct st_conn *c, const struct st_msg *m);
/* LOST: records the agent could not send, counted for the region.
 * @return 0 or ST_ESTATE. */
int st__region_lost(struct st_conn *c, const struct st_msg *m);
/*
 * The connection ended while regions were open: writes the line that says
 * how into each one's file (`kind`: enum st_ring_end, with the signal or
 * the exec'd program) and counts it.  `partial`: bytes of a message cut
 * short, counted as one lost record.
 */
/* The owner callbacks of a step store's sink (store.c makes them). */
extern const struct st_sink_owner st__region_store_owner;

void st__region_process_ended(struct st_conn *c, int kind, int sig,
                              const char *detail, size_t partial);

#endif /* STEPTRACE_DAEMON_REGION_H */
