/*
 * The outbox: where records leave the process.  The encoders (emit.c)
 * write the messages of one record into st__batch; st__outbox_commit()
 * copies them into the ring the collector gave us (PROTOCOL.md "The
 * ring") and publishes them.  From that store on, the record is the
 * collector's: it reads the ring every few milliseconds, and what the
 * ring holds survives the process, whether it blocks forever, is killed
 * or crashes.  No system call is made per record: the eventfd is written
 * only to wake a collector that stopped looking (reader_idle), at
 * barriers, and when the ring is full.
 *
 * A full ring: under the block policy the committing thread waits (the
 * GIL released) until the collector has taken enough; records of other
 * threads queue behind it in st__batch, and those threads wait too, so
 * that records enter the ring in the order they were numbered and none
 * returns to the program before its record is in the ring.  Under the
 * drop policy the record is dropped and counted, but what it defined
 * (strings, frames) is kept, since later records name it.  A record
 * larger than the ring goes in piece by piece as room comes free.
 *
 * Every FLUSH_EVERY bytes or FLUSH_AGE_NS, a FLUSH marks how many records
 * were committed (sender.c counts those not confirmed as lost if the
 * collector dies).
 *
 * Everything here runs with the GIL held, except the waits.
 */
#include "agent.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "steptrace/ring.h"

struct st_buf st__batch;
msgpack_packer st__pk;

#define FLUSH_EVERY (64u * 1024)
#define FLUSH_AGE_NS (100 * 1000 * 1000ull)
/* Under the block policy, a collector that takes nothing for this long is
 * treated as gone. */
#define BLOCK_STALL_NS (10ull * 1000000000ull)
/* ... and for what a drop region must still send (definitions, ends). */
#define BRIEF_STALL_NS (2ull * 1000000000ull)

static struct {
    struct st_ring_hdr *hdr;  /* Owned mapping of map_len bytes, or NULL. */
    size_t map_len;
    char *data;               /* Borrowed: the data area. */
    uint64_t size;
    uint64_t wpos;            /* Stream bytes written (= hdr->commit). */
    uint64_t room;            /* Bytes known free at wpos. */
    int efd;                  /* Owned eventfd (the collector's wake). */
    uint64_t flush_bytes;     /* Committed since the last FLUSH. */
    uint64_t flush_ticks;     /* Clock at the last FLUSH. */
    uint64_t flush_age;       /* FLUSH_AGE_NS in ticks. */
    uint64_t tokens;
    /* A thread waits for room (its bytes and those queued behind it are
     * in st__batch); `taken` counts the bytes of st__batch committed so
     * far, for the queued threads to know when theirs went in. */
    int waiting;
    uint64_t taken;
    uint64_t staged_records;  /* Records in st__batch. */
    pthread_mutex_t mu;       /* For cv only (the GIL guards the rest). */
    pthread_cond_t cv;
} O = {
    .efd = -1,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
};

int st__outbox_init(void);
int
st__outbox_init(void)
{
    st_buf_init(&st__batch);
    msgpack_packer_init(&st__pk, &st__batch, st_buf_msgpack_write);
    return 0;
}

uint64_t
st__outbox_wanted(void)
{
    const char *env = getenv("STEPTRACE_PENDING_BYTES");
    char *end;
    unsigned long long v;

    if (env == NULL || *env == '\0')
        return ST_RING_DEFAULT;
    v = strtoull(env, &end, 10);
    if (*end != '\0' || v < ST_RING_MIN)
        return ST_RING_DEFAULT;
    return v > ST_RING_MAX ? ST_RING_MAX : v;
}

void
st__outbox_attach(struct st_ring_hdr *h, size_t map_len, int efd)
{
    O.hdr = h;
    O.map_len = map_len;
    O.data = (char *)h + ST_RING_HEADER;
    O.size = h->size;
    O.wpos = __atomic_load_n(&h->commit, __ATOMIC_RELAXED);
    O.room = 0;
    O.efd = efd;
    O.flush_bytes = 0;
    O.flush_ticks = st__ticks();
    O.flush_age = st__ns_ticks(FLUSH_AGE_NS);
    st__signals_ring(h);
}

void
st__outbox_detach(void)
{
    if (O.hdr == NULL)
        return;
    st__signals_ring(NULL);
    munmap(O.hdr, O.map_len);
    O.hdr = NULL;
    O.data = NULL;
    if (O.efd >= 0)
        close(O.efd);
    O.efd = -1;
}

void
st__outbox_forget(void)
{
    /* The parent's ring: unmapped here without a byte written. */
    st__outbox_detach();
    pthread_mutex_init(&O.mu, NULL);
    pthread_cond_init(&O.cv, NULL);
    O.waiting = 0;
}

const uint64_t *
st__outbox_read_pos(void)
{
    return O.hdr != NULL ? &O.hdr->read : NULL;
}

void
st__outbox_set_end(int kind, int sig, const char *detail)
{
    struct st_ring_hdr *h = O.hdr;

    if (h == NULL)
        return;
    if (detail != NULL) {
        size_t n = strlen(detail);

        if (n >= ST_RING_END_DETAIL)
            n = ST_RING_END_DETAIL - 1;
        memcpy(h->end_detail, detail, n);
        h->end_detail[n] = '\0';
    }
    __atomic_store_n(&h->end_signal, (uint32_t)sig, __ATOMIC_RELAXED);
    __atomic_store_n(&h->end_kind, (uint32_t)kind, __ATOMIC_RELEASE);
}

void
st__outbox_wake(void)
{
    uint64_t one = 1;
    ssize_t r;

    if (O.efd < 0)
        return;
    r = write(O.efd, &one, sizeof(one));
    (void)r;
}

uint64_t
st__outbox_discard(void)
{
    uint64_t n = O.staged_records;

    O.staged_records = 0;
    st_buf_close(&st__batch);
    return n;
}

/* ---- committing ---- */

/* Refreshes O.room from the collector's read position.  @return 0, or -1
 * when the position makes no sense (a broken collector). */
static int
outbox_refresh(void)
{
    uint64_t rd = __atomic_load_n(&O.hdr->read, __ATOMIC_ACQUIRE);
    uint64_t used = O.wpos - rd;

    if (used > O.size)
        return -1;
    O.room = O.size - used;
    return 0;
}

/* Copies n bytes into the ring at wpos and publishes them. */
static void
outbox_put(const char *p, size_t n)
{
    size_t at = (size_t)(O.wpos & (O.size - 1));
    size_t first = n < O.size - at ? n : (size_t)O.size - at;

    memcpy(O.data + at, p, first);
    memcpy(O.data, p + first, n - first);
    O.wpos += n;
    O.room -= n;
    __atomic_store_n(&O.hdr->commit, O.wpos, __ATOMIC_RELEASE);
    /* A collector that stopped looking is woken once. */
    if (__atomic_load_n(&O.hdr->reader_idle, __ATOMIC_RELAXED)) {
        __atomic_store_n(&O.hdr->reader_idle, 0, __ATOMIC_RELAXED);
        st__outbox_wake();
    }
}

/* The first n bytes of st__batch are in the ring: drops them. */
static void
outbox_consume(size_t n)
{
    if (n == st__batch.len)
        st__batch.len = 0;
    else
        st_buf_consume(&st__batch, n);
    O.taken += n;
}

/* The connection is gone: what is staged is lost. */
static void
outbox_lose(void)
{
    st__sender_count_lost(O.staged_records);
    O.staged_records = 0;
    O.taken += st__batch.len;
    st__batch.len = 0;
    st__batch.oom = 0;
}

/* Waits (GIL released) until the collector has made room for `need`
 * bytes.  @return 0, or -1 when the connection failed meanwhile. */
static int
outbox_wait_room(uint64_t need, uint64_t stall_ns)
{
    uint32_t gen = st__sender_gen();
    uint64_t target;
    int r;

    if (need > O.size)
        need = O.size;
    target = O.wpos + need - O.size;
    __atomic_store_n(&O.hdr->writer_waiting, 1, __ATOMIC_SEQ_CST);
    st__outbox_wake();
    Py_BEGIN_ALLOW_THREADS
    r = st__sender_wait_room(gen, target, stall_ns);
    Py_END_ALLOW_THREADS
    /* The connection may have been replaced while the GIL was free. */
    if (r != 0 || O.hdr == NULL || st__sender_gen() != gen ||
        outbox_refresh() != 0)
        return -1;
    return 0;
}

/* Tells the threads queued behind a waiting committer to look again. */
static void
outbox_signal(void)
{
    pthread_mutex_lock(&O.mu);
    pthread_cond_broadcast(&O.cv);
    pthread_mutex_unlock(&O.mu);
}

/*
 * Commits all of st__batch (its first `keep` bytes at least), waiting for
 * room as needed: the slow path.  Other threads may add to st__batch
 * while this one waits; their bytes go in too, in order.
 */
static void
outbox_commit_slow(int drop, size_t keep, uint64_t nrecords,
                   uint64_t stall_ns)
{
    if (drop && keep < st__batch.len) {
        /* The drop policy: the record goes, its definitions stay. */
        st__sender_count_lost(nrecords);
        O.staged_records -= nrecords;
        st__batch.len = keep;
        if (keep <= O.room || (outbox_refresh() == 0 && keep <= O.room)) {
            if (keep > 0)
                outbox_put(st__batch.data, keep);
            outbox_consume(keep);
            return;
        }
    }
    O.waiting = 1;
    while (st__batch.len > 0) {
        size_t n = st__batch.len < O.room ? st__batch.len : (size_t)O.room;

        if (n > 0) {
            /* Part of a record may go in: the collector waits for the
             * rest (the agent is its only writer). */
            outbox_put(st__batch.data, n);
            outbox_consume(n);
            outbox_signal();
            continue;
        }
        if (outbox_wait_room(st__batch.len, stall_ns) != 0) {
            outbox_lose();
            break;
        }
    }
    /* Ours and those queued behind us. */
    st__sender_committed(O.staged_records, 0);
    O.waiting = 0;
    O.staged_records = 0;
    outbox_signal();
}

/* Another thread waits for room with records before ours in st__batch:
 * ours go in after them, and this thread waits until they did. */
static void
outbox_queue_behind(int drop)
{
    uint64_t end = O.taken + st__batch.len;
    uint32_t gen = st__sender_gen();

    while (O.waiting && (int64_t)(O.taken - end) < 0 && !drop &&
           st__sender_gen() == gen && st__sender_ok()) {
        Py_BEGIN_ALLOW_THREADS
        struct timespec t;

        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 2000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&O.mu);
        (void)pthread_cond_timedwait(&O.cv, &O.mu, &t);
        pthread_mutex_unlock(&O.mu);
        Py_END_ALLOW_THREADS
    }
}

/* A FLUSH after enough bytes or time: how many records are committed.
 * Only for the accounting, so it never waits: with the ring full it
 * comes at a later record. */
static void
outbox_maybe_flush(size_t n)
{
    O.flush_bytes += n;
    if (O.flush_bytes < FLUSH_EVERY &&
        (int64_t)(st__hook_ticks - O.flush_ticks) < (int64_t)O.flush_age)
        return;
    if (O.waiting || O.room < 16)
        return;
    (void)st__outbox_flush(NULL, 0);
}

void
st__outbox_commit(const struct st_region *r, size_t keep, uint64_t nrecords)
{
    size_t n = st__batch.len;
    int drop = r != NULL && r->drop_when_full;

    if (n == 0)
        return;
    O.staged_records += nrecords;
    if (O.hdr == NULL || st__batch.oom || !st__sender_ok()) {
        outbox_lose();
        return;
    }
    if (O.waiting) {
        /* Committed (and counted) by the waiting thread. */
        outbox_queue_behind(drop);
        return;
    }
    if (n <= O.room || (outbox_refresh() == 0 && n <= O.room)) {
        outbox_put(st__batch.data, n);
        st__batch.len = 0;
        O.taken += n;
        O.staged_records = 0;
        st__sender_committed(nrecords, 0);
        outbox_maybe_flush(n);
        return;
    }
    outbox_commit_slow(drop, keep, nrecords,
                       drop ? BRIEF_STALL_NS : BLOCK_STALL_NS);
    outbox_maybe_flush(n);
}

uint64_t
st__outbox_flush(const struct st_region *r, int wake)
{
    uint64_t token;

    /* A thread stopped around a fork starts again here, at the latest
     * FLUSH_AGE_NS into tracing. */
    st__sender_use();
    if (O.hdr == NULL || !st__sender_ok())
        return 0;
    token = ++O.tokens;
    if (st_wire_pack_flush(&st__pk, token) != 0)
        return 0;
    O.flush_bytes = 0;
    O.flush_ticks = st__ticks();
    /* Nothing of it may be dropped. */
    st__outbox_commit(r, st__batch.len, 0);
    if (!st__sender_ok())
        return 0;
    st__sender_committed(0, token);
    if (wake)
        st__outbox_wake();
    return token;
}
