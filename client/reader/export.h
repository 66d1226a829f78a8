/*
 * `steptrace export`'s two writers (docs/STEP-STORE.md section 5), each
 * fed every record of every file in order (rd_each_file, at level DEBUG
 * so that every step and event is shown and numbered) and writing into
 * rd_out: export.c holds the command and jsonl, perfetto.c the Trace
 * Event Format (its async records in perfetto_async.c).  Single-threaded.
 */
#ifndef STEPTRACE_READER_EXPORT_H
#define STEPTRACE_READER_EXPORT_H

#include <stdint.h>

#include "steptrace/replay.h"

struct rd_perfetto;

/* A perfetto writer (its JSON prologue is written to rd_out); pairs
 * with rd_perfetto_free.  @return 0 or ST_ENOMEM. */
int rd_perfetto_new(struct rd_perfetto **out);
/* One record of file `file` (rp->rec).  @return 0 or -1 (out of
 * memory). */
int rd_perfetto_record(struct rd_perfetto *p, struct st_replay *rp,
                       const char *file);
/* Closes what the last file left open (calls, steps, async slices) at
 * its last times and writes the JSON's end. */
void rd_perfetto_finish(struct rd_perfetto *p);
void rd_perfetto_free(struct rd_perfetto *p);

#endif /* STEPTRACE_READER_EXPORT_H */
