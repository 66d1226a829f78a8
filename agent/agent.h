/*
 * The types every layer of the agent (the _agent extension module)
 * shares: a traced region and the module globals it has seen.  Nothing
 * else lives here; each file has its own header for its functions.
 *
 * A region is built, entered, left, finished and freed by region.c,
 * which owns it through its Python object (a Region); the hook
 * (tracer.c) records into it; emit.c, async.c, vars.c and threads.c read
 * its settings and counters.  All of this runs with the GIL held.
 *
 * Files, from the top (each calls only files below it; where a lower one
 * must ask an upper one, the upper one hands it a callback at init):
 *   module.c           Python-facing functions, module init
 *   backend_*.c        the event hooks (sys.monitoring or PyEval_SetTrace)
 *                      and the sys.monitoring DISABLE policy
 *   tracer.c           the hook path: frames pushed and popped, records
 *   region.c           regions: built, entered, left, finished, freed
 *   async.c            async records
 *   emit.c             records: encoding for the collector, console text
 *   threads.c          per-thread state, suspended generators, fork
 *   vars.c, render.c, compose.c, vfp.c, stateprint.c, statewalk.c
 *                      variable snapshots and the text of values
 *   filter.c           which code is traced, cached per code object
 *   strtab.c           string ids sent on the wire
 *   collector.c        the collector connection as a whole
 *   outbox.c           records into the ring shared with the collector
 *   sender.c, sender_wait.c, hello.c   the socket and its watcher thread
 *   signals.c          a note in the ring when a signal ends the process
 *   wirepy.c           the wire codec and constants for the Python side
 *   clock.c, fastlocals.c, config_py.c, compat.h
 */
#ifndef STEPTRACE_AGENT_AGENT_H
#define STEPTRACE_AGENT_AGENT_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

#include "steptrace/wire.h"

#include "filter.h"
#include "vars.h"

/* Destinations (bits), from LogOutput. */
#define ST_OUT_FILE 1
#define ST_OUT_STDOUT 2
#define ST_OUT_STDERR 4

/* Module globals seen in a region, with their last shown state. */
struct st_trace_scope {
    struct st_trace_scope *next; /* Owned list. */
    PyObject *globals;           /* Owned for the region (identity key). */
    uint32_t id;
    int busy; /* A thread is updating snap (str() calls
                 can let another thread in meanwhile). */
    struct st_snapshot snap;
};

struct st_trace_region {
    PyObject *owner; /* Borrowed: the Region object owning this. */
    uint32_t id;
    uint32_t tracer_id;
    int level; /* Shown (console, text file). */
    int var_mode;
    uint32_t formats; /* ST_FORMAT_* bits, sent with REGION. */
    int record_all;   /* A step store: every event is recorded whatever
                         the level (st__region_records). */
    int outputs;      /* ST_OUT_* bits. */
    size_t repr_limit;
    struct st_filter filter;
    PyObject *hidden_types; /* Owned tuple of types never shown. */
    PyObject *log_dir;      /* Owned str (absolute), for REGION. */
    uint64_t max_log_bytes;
    uint32_t max_log_files;
    uint64_t epoch; /* Distinct per start; invalidates tstates. */
    uint64_t start_ns;
    uint64_t steps; /* Records emitted (numbers console output). */
    uint32_t first_tid;
    int multi_thread;      /* A second thread has stepped. */
    uint64_t lost;         /* Records not delivered to the collector. */
    uint64_t dropped_base; /* st__collector_dropped() when it started. */
    int drop_when_full;    /* on_full="drop". */
    int async_mode;        /* AsyncTracer: async records. */
    int trace_tasks;
    uint64_t await_threshold_ns;
    uint64_t async_steps; /* Async records emitted (console numbers). */
    uint64_t errors;      /* Console writes that failed. */
    struct st_trace_scope *scopes;     /* Owned list of module globals
                                          states. */
    struct st_trace_scope **scope_tab; /* Owned: scopes by globals
                                          address (open addressing,
                                          scope_cap slots, 0 or a power
                                          of two). */
    size_t scope_cap, nscopes;
    int finished;       /* Ended: threads drop it at their next event. */
    int file_announced; /* REGION sent on the current connection. */
    uint32_t announced_gen;
    PyObject *origin;     /* Owned str or NULL: the line that begins
                             each of its files (who started the
                             process), sent with the REGION. */
    uint64_t total_steps; /* Steps recorded, across reconnections. */
};

/* The level records are made at: the shown one, or DEBUG for a step
 * store, which any level is rendered from later. */
static inline int
st__region_rec_level(const struct st_trace_region *r)
{
    return r->record_all ? ST_LEVEL_DEBUG : r->level;
}

/* Is a record of this kind (enum st_event) shown at `level`
 * (docs/LOG-FORMAT.md section 7)? */
static inline int
st__level_shows(int level, int kind)
{
    if (kind == ST_EVENT_STEP)
        return level < ST_LEVEL_ERROR;
    if (kind == ST_EVENT_EXCEPTION)
        return level <= ST_LEVEL_ERROR;
    return level == ST_LEVEL_DEBUG;
}

#endif /* STEPTRACE_AGENT_AGENT_H */
