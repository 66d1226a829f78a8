/*
 * Records (emit.c): encoded as wire messages for the collector (file
 * output: into the outbox's ring) and formatted with the shared formatter
 * for the console (stdout/stderr output).  Both are fed from the same
 * state, so the two destinations write the same bytes.
 *
 * emit.c owns the console queue (records written in numbering order
 * across threads); it borrows the region, thread state and changes it is
 * given.  Callers: tracer.c (events), async.c (async records), region.c
 * (ends, notes).  GIL held; never raises.
 */
#ifndef STEPTRACE_AGENT_EMIT_H
#define STEPTRACE_AGENT_EMIT_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "threads.h"
#include "vars.h"

/* One record of the frame at ts->stack[idx].  `kind` is an enum st_event;
 * for ST_EVENT_STEP, `gch`/`lch` hold the variable changes (and `vars`
 * says whether variables are captured at all). */
struct st_record {
    int kind;
    uint64_t step;     /* Set by st__emit_record. */
    int thread_suffix; /* Set by st__emit_record. */
    uint32_t line;
    uint64_t runtime;
    const char *detail; /* Event text (escaped), or NULL. */
    size_t detail_len;
    int vars;
    const struct st_changes *gch; /* Borrowed. */
    const struct st_changes *lch;
};

/* Numbers *rec (a step) and writes it to r's destinations. */
void st__emit_record(struct st_trace_region *r, struct st_tstate *ts,
                     size_t idx, struct st_record *rec);

/* Sends FRAME_END for a frame leaving the stack (if it was announced). */
void st__emit_frame_end(struct st_trace_region *r, const struct st_fentry *e);

/* Sends LOST (if any), REGION_END and FLUSH.  @return the flush token, or
 * 0 when nothing was sent. */
uint64_t st__emit_region_end(struct st_trace_region *r);

/* Sends a NOTE (a line of the agent's in the region's log, kind enum
 * st_note) in order with the records; the connection is up. */
void st__emit_note(struct st_trace_region *r, uint32_t kind, const char *text,
                   size_t n);

/* One async record (body: its lines) at `time_ns` since the region
 * began. */
void st__emit_async(struct st_trace_region *r, int kind, uint64_t time_ns,
                    const char *body, size_t n);

#endif /* STEPTRACE_AGENT_EMIT_H */
