/*
 * The outbox (outbox.c): the ring shared with the collector, which
 * records are committed to.  The encoders (emit.c) write the messages of
 * one record into st__outbox_batch with st__outbox_pk; st__outbox_commit()
 * publishes them.  outbox.c owns the ring's mapping (attached for each
 * connection by collector.c), st__outbox_batch and its packer, and the
 * policy for a full ring (wait or drop); it asks sender.c for room and
 * for the connection's health.  GIL held, except in the waits.
 */
#ifndef STEPTRACE_AGENT_OUTBOX_H
#define STEPTRACE_AGENT_OUTBOX_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"
#include "steptrace/ring.h"

/* The encoders' staging buffer and its packer: the messages of one record
 * (or of definitions and ends), committed with st__outbox_commit.  Owned
 * by outbox.c; st__outbox_batch usually borrows the ring's free room. */
extern struct st_buf st__outbox_batch;
extern msgpack_packer st__outbox_pk;

/* What the once-a-line path of the outbox needs (outbox.c owns it). */
struct st_outbox_hot {
    struct st_ring_hdr *hdr; /* Owned mapping of the header page, or
                                NULL when not connected. */
    char *data;              /* Owned: the data, mapped twice in a row. */
    uint64_t mask;           /* Data size - 1 (a power of two). */
    uint64_t wpos;           /* Stream bytes written (= hdr->commit). */
    uint64_t records;        /* Records committed on this connection. */
    uint64_t check_at;       /* wpos at which to look at more than
                                publishing (at most 4 KiB on): a FLUSH
                                due, the room, the soft end of a lap. */
};
extern struct st_outbox_hot st__outbox_hot;

/* Sets up st__outbox_batch and its packer (once, at module init). */
void st__outbox_init(void);

/*
 * A new connection's ring: maps the collector's memfd (its header, and
 * its data twice in a row, so that a record at any position is
 * contiguous) and keeps its eventfd (owned from then on; the memfd stays
 * the caller's).  @return 0, or -1 (err says why; efd is the caller's
 * still).
 */
int st__outbox_attach(int memfd, uint64_t size, int efd, char *err,
                      size_t errlen);

/* Unmaps the ring and closes the eventfd (after st__sender_disconnect:
 * nothing reads the ring's header any more). */
void st__outbox_detach(void);

/* In a forked child, inside fork(): lets go of the parent's ring without
 * writing to it. */
void st__outbox_forget(void);

/* Records committed on the current connection. */
uint64_t st__outbox_records(void);

/* Says in the ring's header how the process ends (enum st_ring_end);
 * `detail` (or NULL) names the exec'd program. */
void st__outbox_set_end(int kind, int sig, const char *detail);

/* The cases st__outbox_commit() does not inline. */
void st__outbox_commit_rest(int drop, size_t keep, uint64_t nrecords);
void st__outbox_after_commit(void);
void st__outbox_wake_idle(void);

/*
 * Commits st__outbox_batch to the ring (and empties it): `nrecords`
 * records, whose first `keep` bytes (definitions) must never be dropped.
 * With `drop` (the region's on_full="drop") a record that does not fit
 * is dropped and counted; without, the thread waits for room.  The
 * connection gone, the bytes are counted as lost.
 *
 * Inline for the case of nearly every line: encoded in place
 * (st__outbox_batch borrows the ring's free room), the record only needs
 * publishing, and st__outbox_batch moves on to the next free byte (the
 * data is mapped twice, so the room stays contiguous).
 */
static inline void
st__outbox_commit(int drop, size_t keep, uint64_t nrecords)
{
    size_t n = st__outbox_batch.len;
    uint64_t w;

    if (__builtin_expect(!st__outbox_batch.borrowed || n == 0, 0)) {
        st__outbox_commit_rest(drop, keep, nrecords);
        return;
    }
    w = st__outbox_hot.wpos + n;
    st__outbox_hot.wpos = w;
    st__outbox_hot.records += nrecords;
    __atomic_store_n(&st__outbox_hot.hdr->commit, w, __ATOMIC_RELEASE);
    if (__builtin_expect(__atomic_load_n(&st__outbox_hot.hdr->reader_idle,
                                         __ATOMIC_RELAXED),
                         0))
        st__outbox_wake_idle();
    st__outbox_batch.data = st__outbox_hot.data + (w & st__outbox_hot.mask);
    st__outbox_batch.cap -= n;
    st__outbox_batch.len = 0;
    if (__builtin_expect(w >= st__outbox_hot.check_at, 0))
        st__outbox_after_commit();
}

/* Commits a FLUSH (waking the collector with `wake`) under the `drop`
 * policy.  @return its token, or 0 when there is no connection. */
uint64_t st__outbox_flush(int drop, int wake);

/* Throws away st__outbox_batch (meant for a connection that is gone, or
 * for the parent of a forked child).  @return how many records it held. */
uint64_t st__outbox_discard(void);

#endif /* STEPTRACE_AGENT_OUTBOX_H */
