/*
 * The queue of a sink's rendered records (see chunk.h): chunks are made,
 * grown in a few steps, split for a rotation, and recycled through the
 * env's pool, so that a busy sink allocates nothing.
 */
#include "chunk.h"

#include "sink.h"

#include <stdlib.h>

#include "steptrace/error.h"

/* Emptied chunks the env keeps for reuse (about 68 KiB each), so that
 * busy sinks allocate none; bounded so that an idle collector holds
 * little. */
#define CHUNK_POOL 8u
/*
 * The working size of a chunk: it is handed to a write job once the
 * queue holds ST_SINK_FLUSH_BYTES, so it ends at most one record past
 * that.  A chunk grows to it in a few steps (CHUNK_FIRST, times
 * CHUNK_STEP) rather than by st_buf's doubling from 256 bytes, which
 * took ten reallocs and ended at 128 KiB, the size glibc serves with
 * mmap: every chunk freed was a munmap and every new one faulted its
 * pages in again.  Small first, because a FLUSH seals a chunk however
 * little it holds and a peer may have many sealed.
 */
#define CHUNK_BYTES (ST_SINK_FLUSH_BYTES + 4096)
#define CHUNK_FIRST 1024u
#define CHUNK_STEP 8u
/* A chunk about to be rendered into with less room than this grows to
 * its next step first. */
#define CHUNK_ROOM 2048u

static void
chunk_destroy(struct st_chunk *ch)
{
    st_buf_close(&ch->b);
    free(ch);
}

/* An emptied chunk goes to the env's pool, unless the pool is full or
 * the chunk grew past the working size (a large record). */
static void
chunk_recycle(struct st_sink_env *env, struct st_chunk *ch)
{
    if (env->npool < CHUNK_POOL && ch->b.cap <= CHUNK_BYTES) {
        ch->next = env->pool;
        env->pool = ch;
        env->npool++;
        return;
    }
    chunk_destroy(ch);
}

void
st__chunk_pool_free(struct st_sink_env *env)
{
    struct st_chunk *ch;

    while ((ch = env->pool) != NULL) {
        env->pool = ch->next;
        chunk_destroy(ch);
    }
    env->npool = 0;
}

/* Grows the chunk to its next size step when a record may not fit in
 * what is left.  Failure is not an error here: st_buf grows on its own
 * while rendering, or marks the record out of memory. */
static void
chunk_prepare(struct st_chunk *ch)
{
    size_t cap = ch->b.cap;
    char *p;

    if (cap >= CHUNK_BYTES || cap - ch->b.len >= CHUNK_ROOM || ch->b.oom)
        return;
    cap = cap < CHUNK_FIRST ? CHUNK_FIRST : cap * CHUNK_STEP;
    if (cap > CHUNK_BYTES)
        cap = CHUNK_BYTES;
    p = realloc(ch->b.data, cap);
    if (p == NULL)
        return;
    ch->b.data = p;
    ch->b.cap = cap;
}

/* A new, empty chunk at the end of the queue, from the pool if it has
 * one.  @return it or NULL. */
static struct st_chunk *
chunk_append(struct st_sink *s)
{
    struct st_sink_env *env = s->env;
    struct st_chunk *ch = env->pool;

    if (ch != NULL) {
        env->pool = ch->next;
        env->npool--;
        ch->b.len = 0;
        ch->b.oom = 0;
        ch->nrecords = 0;
        ch->rotate = 0;
        ch->next = NULL;
    }
    else {
        ch = calloc(1, sizeof(*ch));
        if (ch == NULL)
            return NULL;
        st_buf_init(&ch->b);
    }
    ch->epoch = s->owner != NULL ? s->epoch : 0;
    ch->sealed = 0;
    if (s->tail != NULL)
        s->tail->next = ch;
    else
        s->head = ch;
    s->tail = ch;
    return ch;
}

void
st__chunk_pop(struct st_sink *s)
{
    struct st_chunk *ch = s->head;

    s->head = ch->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->queued -= ch->b.len;
    s->env->hooks->pending(s->env, ch->b.len, 0);
    chunk_recycle(s->env, ch);
}

void
st__chunk_drop_all(struct st_sink *s)
{
    struct st_chunk *ch;

    while ((ch = s->head) != NULL) {
        s->head = ch->next;
        s->env->hooks->pending(s->env, ch->b.len, 0);
        chunk_recycle(s->env, ch);
    }
}

/* Is the tail chunk part of the job that is out?  (A job takes chunks
 * from the head, so the tail is in it only as its last.) */
static int
chunk_tail_in_job(const struct st_sink *s)
{
    return s->busy && s->tail == s->job_last;
}

struct st_chunk *
st__chunk_open(struct st_sink *s)
{
    struct st_chunk *ch = s->tail;

    /* While a job is out, chunks queue up at their working size rather
     * than one growing without end. */
    if (ch == NULL || ch->sealed || chunk_tail_in_job(s) ||
        ch->b.len >= ST_SINK_FLUSH_BYTES) {
        ch = chunk_append(s);
        if (ch == NULL)
            return NULL;
    }
    chunk_prepare(ch);
    return ch;
}

int
st__chunk_split_for_rotation(struct st_sink *s)
{
    struct st_chunk *old = s->tail, *ch;
    size_t rec = old->b.len - s->mark;

    if (s->mark == 0 && !chunk_tail_in_job(s)) {
        old->rotate = 1;
        return 0;
    }
    ch = chunk_append(s);
    if (ch == NULL)
        return ST_ENOMEM;
    if (st_buf_append(&ch->b, old->b.data + s->mark, rec) != 0) {
        /* Undo: the record stays where it was. */
        s->tail = old;
        old->next = NULL;
        chunk_destroy(ch);
        return ST_ENOMEM;
    }
    old->b.len = s->mark;
    ch->rotate = 1;
    s->mark = 0;
    return 0;
}
