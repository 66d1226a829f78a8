/*
 * The step store's writer (docs/STEP-STORE.md): a tracer whose REGION
 * asks for `steps` gets a second sink, its .steps file, which receives
 * the connection's messages as they came (their bytes, copied before the
 * message is applied), and at the start of each file (the first, and
 * each after a rotation) a prologue that makes the file readable alone:
 * the magic, a STORE header, every string, thread, region (REGION and
 * RSTATE), frame and variable state (VARS) the connection holds.  The
 * connection owns its stores (c->stores: tracer_id -> struct st_store);
 * the sinks are released with the connection's.  Loop thread only.
 */
#ifndef STEPTRACE_DAEMON_STORE_H
#define STEPTRACE_DAEMON_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"
#include "steptrace/store.h"

struct st_conn;
struct st_sink;

/* A store's sink is in the connection's sinks (c->sinks, with the text
 * files) under this key; tracer ids are below 2^31 (region.c). */
#define ST_STORE_KEY(tracer_id) ((tracer_id) | 0x80000000u)

struct st_store {
    struct st_sink *sink; /* Borrowed from the connection's sinks. */
    uint32_t tracer_id;
    char *argv; /* Owned: the process's arguments, each ending in
                   NUL (/proc/PID/cmdline at the first region). */
    size_t argv_len;
    uint64_t start_ns; /* Wall clock at the first region. */
};

/* Makes the store of a tracer (its sink paired with `text`, which may be
 * NULL) for a REGION asking for steps.  @return 0 and *out, or ST_ENOMEM. */
int st__store_new(struct st_conn *c, uint32_t tracer_id, struct st_sink *text,
                  const char *dir, size_t dir_len, struct st_sink **out);
/* Frees the connection's store table (the sinks are released apart). */
void st__store_close_all(struct st_conn *c);
struct st_region;

/* Counts a record of region rg (a step, an async record, or an event of
 * thread tid) in its RSTATE state. */
void st__store_count(struct st_region *rg, int step, int async, uint32_t tid);
/* Appends the message being applied (its bytes) to `store`; NULL: none. */
void st__store_put(struct st_conn *c, struct st_sink *store);
/* Appends the message being applied to every store of the connection
 * (STR, THREAD, FRAME, FRAME_END: definitions any store may need). */
void st__store_put_all(struct st_conn *c);
/* The process ended with regions open (st__region_process_ended): an
 * ENDED record in every store. */
void st__store_ended(struct st_conn *c, int kind, int sig, const char *detail,
                     size_t detail_len, size_t partial);
/* The owner's on_segment callback of a store sink: the prologue. */
void st__store_segment(struct st_sink *s, struct st_buf *b);

#endif /* STEPTRACE_DAEMON_STORE_H */
