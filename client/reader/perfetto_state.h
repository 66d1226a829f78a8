/*
 * The state of the perfetto writer (export.h), shared by its two files:
 * perfetto.c (processes, threads, calls, steps, exceptions and
 * steptrace's own lines) and perfetto_async.c (async records, held until
 * the thread's next record gives them a time).  Internal to
 * client/reader; single-threaded.
 */
#ifndef STEPTRACE_READER_PERFETTO_STATE_H
#define STEPTRACE_READER_PERFETTO_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"
#include "steptrace/idmap.h"
#include "steptrace/replay.h"

struct pf_async; /* perfetto_async.c */
struct pf_pend;  /* perfetto_async.c */
struct pf_pid;   /* perfetto.c */

struct rd_perfetto {
    const char *file; /* Borrowed: the file being read. */
    int started;      /* Its pid and offset are known. */
    uint64_t pid, offset;
    uint64_t now; /* ns: the time of the file's latest record. */
    uint32_t now_tid;
    uint64_t nevents;
    struct st_idmap threads; /* tid -> struct pf_thread, owned. */
    struct pf_async *asyncs; /* Owned. */
    size_t nasync, asynccap;
    uint64_t next_id;
    struct pf_pid *pids; /* Owned. */
    size_t npids, pidcap;
    /* Async events wait for the thread's next record
     * (rd__perfetto_async_place). */
    struct st_buf pend;    /* Owned. */
    struct pf_pend *pends; /* Owned. */
    size_t npend, pendcap;
    int64_t delta;     /* Time minus region time of the last placed. */
    int anchored;      /* delta is set. */
    uint64_t async_ts; /* The last async event's time. */
};

/* perfetto.c.  Starts an event in rd_out:
 * {"ph":PH,"pid":..,"tid":..,"ts":..  (the caller adds its fields and the
 * closing brace).  @return rd_out. */
struct st_buf *rd__perfetto_event(struct rd_perfetto *p, const char *ph,
                                  uint32_t tid, uint64_t ts);

/* perfetto_async.c.  An async record (rp->rec.what is ST_RP_ASYNC): its
 * event is held in p->pend.  @return 0 or -1 (out of memory). */
int rd__perfetto_async_record(struct rd_perfetto *p,
                              const struct st_replay *rp);
/* Gives the held async events their times, no later than hi (UINT64_MAX:
 * no bound), and writes them to rd_out. */
void rd__perfetto_async_place(struct rd_perfetto *p, uint64_t hi);
/* At the end of a file, after rd__perfetto_async_place: ends each async
 * slice still open as unfinished and forgets them.  @return the latest of
 * `end` and the times written. */
uint64_t rd__perfetto_async_end_file(struct rd_perfetto *p, uint64_t end);
/* Frees what p holds for async records (not p). */
void rd__perfetto_async_free(struct rd_perfetto *p);

#endif /* STEPTRACE_READER_PERFETTO_STATE_H */
