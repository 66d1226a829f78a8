/*
 * The queue of a sink (chunk.c): rendered records wait in a list of
 * chunks, head first, until a write job takes them; emptied chunks go to
 * the env's pool for the next ones.  Internal to the sink layer (sink.c
 * and chunk.c): nothing outside sees a chunk.
 *
 * Ownership: a sink owns its queue (s->head .. s->tail), the env its
 * pool.  Every byte a chunk gains or loses while queued is counted in
 * s->queued and reported through the env's pending hook.
 */
#ifndef STEPTRACE_DAEMON_CHUNK_H
#define STEPTRACE_DAEMON_CHUNK_H

#include <stdint.h>

#include "steptrace/buf.h"

struct st_sink;
struct st_sink_env;

/* Rendered records on their way to the file, in order. */
struct st_chunk {
    struct st_chunk *next;
    struct st_buf b;   /* Owned: whole records. */
    uint64_t nrecords; /* Records in b (notes are not records). */
    uint64_t epoch;    /* The owner's FLUSH epoch when created. */
    int rotate;        /* Rotate the file before writing b. */
    int sealed;        /* A FLUSH closed it: records go to a new one. */
};

/*
 * The chunk the next record of s is rendered into, grown to have room
 * for one: the tail, unless a job has it, a FLUSH sealed it or it is
 * full; else a new one appended to the queue.  @return it, or NULL when
 * out of memory.
 */
struct st_chunk *st__chunk_open(struct st_sink *s);
/*
 * The record at [s->mark, len) of the tail would push the file past its
 * limit: moves it into a fresh chunk marked "rotate first" (or marks the
 * tail, when the record is all it holds and no job has it).  @return 0,
 * or ST_ENOMEM (the record stays put and the file simply grows past the
 * limit once).
 */
int st__chunk_split_for_rotation(struct st_sink *s);
/* Drops the head chunk of s (written or lost) into the pool. */
void st__chunk_pop(struct st_sink *s);
/* Drops every chunk of s into the pool (s is being freed). */
void st__chunk_drop_all(struct st_sink *s);
/* Frees the env's pool of emptied chunks. */
void st__chunk_pool_free(struct st_sink_env *env);

#endif /* STEPTRACE_DAEMON_CHUNK_H */
