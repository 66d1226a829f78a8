/*
 * The outbox: where records leave the process (see outbox.h).  The encoders
 * (emit.c) write the messages of one record into the batch
 * (st__outbox_batch), which normally points straight into the ring the
 * collector gave us (PROTOCOL.md "The ring"), at the next free byte;
 * st__outbox_commit() then publishes them with one release store.  From that
 * store on, the record is the collector's: it reads the ring every few
 * milliseconds, and what the ring holds survives the process, whether it
 * blocks forever, is killed or crashes.  No system call is made per record:
 * the eventfd is written only to wake a collector that stopped looking
 * (reader_idle), at barriers, and when the ring is full.
 *
 * The ring's data is mapped twice in a row, so the free room after any
 * position is contiguous and the batch can borrow all of it
 * (st_buf_borrow).  A record that does not fit grows the batch into
 * memory of its own, and is copied in once there is room:
 *
 *  - under the block policy the committing thread waits (the GIL
 *    released) until the collector has taken enough; records of other
 *    threads queue behind it in the batch, and those threads wait too, so
 *    that records enter the ring in the order they were numbered and none
 *    returns to the program before its record is in the ring;
 *  - under the drop policy the record is dropped and counted, also when
 *    another thread waits, but what it defined (strings, frames) is
 *    kept, since later records name it.
 *
 * A record larger than the ring goes in piece by piece as room comes
 * free (the collector waits for the rest of a message).  Every
 * FLUSH_EVERY bytes, or every FLUSH_AGE_NS (looked at every CHECK_EVERY
 * bytes), a FLUSH marks how many records were committed (collector.c
 * counts those not confirmed as lost if the collector dies).
 *
 * Everything here runs with the GIL held, except the waits.
 */
#include "compat.h"

#include "steptrace/ring.h"
#include "steptrace/wire.h"

#include "clock.h"
#include "outbox.h"
#include "sender.h"
#include "signals.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct st_buf st__outbox_batch;
msgpack_packer st__outbox_pk;

#define FLUSH_EVERY (64u * 1024)
/* Bytes between two looks at the clock for a FLUSH due by age. */
#define CHECK_EVERY 4096u
/* The soft size of a lap is the ring's size over this (4 MiB of 64). */
#define SOFT_DIVISOR 16
#define FLUSH_AGE_NS (100 * 1000 * 1000ull)
/* Under the block policy, a collector that takes nothing for this long is
 * treated as gone. */
#define BLOCK_STALL_NS (10ull * 1000000000ull)
/* ... and for what a drop region must still send (definitions, ends). */
#define BRIEF_STALL_NS (2ull * 1000000000ull)

struct st_outbox_hot st__outbox_hot;

/* Short names for the two globals above, within this file. */
static struct st_outbox_hot *const H = &st__outbox_hot;
static struct st_buf *const B = &st__outbox_batch;

static struct {
    uint64_t size;
    uint64_t room;        /* Bytes known free at wpos, when the batch
                             does not borrow (then its cap is). */
    int efd;              /* Owned eventfd (the collector's wake). */
    uint64_t flush_pos;   /* wpos at the last FLUSH. */
    uint64_t flush_ticks; /* Clock at the last FLUSH. */
    uint64_t flush_age;   /* FLUSH_AGE_NS in ticks. */
    uint64_t tokens;
    /* A thread waits for room (its bytes and those queued behind it are
     * in the batch); `taken` counts the bytes of the batch committed so
     * far, for the queued threads to know when theirs went in. */
    int waiting;
    uint64_t taken;
    uint64_t staged_records; /* Records in the batch while one waits. */
    pthread_mutex_t mu;      /* For cv only (the GIL guards the rest). */
    pthread_cond_t cv;
} O = {
    .efd = -1,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
};

void
st__outbox_init(void)
{
    st_buf_init(B);
    msgpack_packer_init(&st__outbox_pk, B, st_buf_msgpack_write);
}

uint64_t
st__outbox_records(void)
{
    return H->records;
}

static void outbox_set_check(void);

/* The batch writes straight into the ring's free room at wpos (looked up
 * again: other threads may have committed since O.room was known). */
static int outbox_refresh(void);

static void
outbox_borrow(void)
{
    if (outbox_refresh() != 0)
        O.room = 0;
    st_buf_borrow(B, H->data + (H->wpos & H->mask), (size_t)O.room);
}

/* Maps the data of memfd twice in a row.  @return the first byte, or
 * NULL. */
static char *
outbox_map_twice(int memfd, uint64_t size)
{
    char *base = mmap(NULL, 2 * (size_t)size, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (base == MAP_FAILED)
        return NULL;
    if (mmap(base, (size_t)size, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_FIXED, memfd, ST_RING_HEADER) == MAP_FAILED ||
        mmap(base + size, (size_t)size, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_FIXED, memfd, ST_RING_HEADER) == MAP_FAILED) {
        munmap(base, 2 * (size_t)size);
        return NULL;
    }
    return base;
}

int
st__outbox_attach(int memfd, uint64_t size, int efd, char *err, size_t errlen)
{
    struct st_ring_hdr *h;
    struct stat st;

    if (size < ST_RING_MIN || size > ST_RING_MAX || (size & (size - 1)) ||
        fstat(memfd, &st) != 0 ||
        (uint64_t)st.st_size < ST_RING_HEADER + size) {
        snprintf(err, errlen,
                 "the collector sent no usable ring: upgrade "
                 "steptrace and steptraced together");
        return -1;
    }
    h = mmap(NULL, ST_RING_HEADER, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
             0);
    if (h == MAP_FAILED) {
        snprintf(err, errlen, "cannot map the collector's ring: %s",
                 strerror(errno));
        return -1;
    }
    if (h->magic != ST_RING_MAGIC || h->version != ST_RING_VERSION ||
        h->size != size) {
        munmap(h, ST_RING_HEADER);
        snprintf(err, errlen,
                 "the collector's ring has another layout: "
                 "upgrade steptrace and steptraced together");
        return -1;
    }
    H->data = outbox_map_twice(memfd, size);
    if (H->data == NULL) {
        snprintf(err, errlen, "cannot map the collector's ring: %s",
                 strerror(errno));
        munmap(h, ST_RING_HEADER);
        return -1;
    }
    H->hdr = h;
    O.size = size;
    H->mask = size - 1;
    H->wpos = __atomic_load_n(&h->commit, __ATOMIC_RELAXED);
    O.room = size - (H->wpos - __atomic_load_n(&h->read, __ATOMIC_ACQUIRE));
    O.efd = efd;
    H->records = 0;
    O.flush_pos = H->wpos;
    O.flush_ticks = st__clock_ticks();
    O.flush_age = st__clock_ns_ticks(FLUSH_AGE_NS);
    outbox_set_check();
    /* A thread that waits for room on the old connection finds it gone
     * and counts what is staged as lost; until then the batch is its. */
    if (!O.waiting) {
        /* Whatever was encoded for no connection is not sent on this
         * one. */
        O.staged_records = 0;
        outbox_borrow();
    }
    st__signals_ring(h);
    return 0;
}

void
st__outbox_detach(void)
{
    if (H->hdr == NULL)
        return;
    st__signals_ring(NULL);
    /* Nothing may point into the ring any more. */
    if (B->borrowed)
        st_buf_close(B);
    munmap(H->data, 2 * (size_t)O.size);
    munmap(H->hdr, ST_RING_HEADER);
    H->hdr = NULL;
    H->data = NULL;
    O.room = 0;
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
    H->records = 0;
}

void
st__outbox_set_end(int kind, int sig, const char *detail)
{
    struct st_ring_hdr *h = H->hdr;

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

static void
outbox_wake(void)
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

    /* Borrowed bytes were never committed: the room is all of cap. */
    if (B->borrowed)
        O.room = B->cap;

    O.staged_records = 0;
    st_buf_close(B);
    if (H->hdr != NULL && !O.waiting)
        outbox_borrow();
    return n;
}

/* ---- committing ---- */

/* Refreshes O.room from the collector's read position.  @return 0, or -1
 * when the position makes no sense (a broken collector). */
static int
outbox_refresh(void)
{
    uint64_t rd = __atomic_load_n(&H->hdr->read, __ATOMIC_ACQUIRE);
    uint64_t used = H->wpos - rd;

    if (used > O.size)
        return -1;
    O.room = O.size - used;
    return 0;
}

/* n bytes at wpos are written: publishes them. */
static void
outbox_publish(size_t n)
{
    H->wpos += n;
    O.room -= n;
    __atomic_store_n(&H->hdr->commit, H->wpos, __ATOMIC_RELEASE);
    /* A collector that stopped looking is woken once. */
    if (__atomic_load_n(&H->hdr->reader_idle, __ATOMIC_RELAXED))
        st__outbox_wake_idle();
}

/* Copies the first n bytes of the batch (memory of its own) in at wpos,
 * publishes them and drops them from B-> */
static void
outbox_put(size_t n)
{
    memcpy(H->data + (H->wpos & H->mask), B->data, n);
    outbox_publish(n);
    if (n == B->len)
        B->len = 0;
    else
        st_buf_consume(B, n);
    O.taken += n;
}

/* The connection is gone: what is staged is lost. */
static void
outbox_lose(void)
{
    st__sender_count_lost(O.staged_records);
    O.staged_records = 0;
    O.taken += B->len;
    st_buf_close(B);
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
    target = H->wpos + need - O.size;
    __atomic_store_n(&H->hdr->writer_waiting, 1, __ATOMIC_SEQ_CST);
    outbox_wake();
    Py_BEGIN_ALLOW_THREADS
    r = st__sender_wait_room(gen, target, stall_ns);
    Py_END_ALLOW_THREADS
    /* The connection may have been replaced while the GIL was free. */
    if (r != 0 || H->hdr == NULL || st__sender_gen() != gen ||
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
 * Commits all of the batch, which did not fit (it holds its bytes in
 * memory of its own), waiting for room as needed: the slow path.  Other
 * threads may add to the batch while this one waits; their bytes go in
 * too, in order.  Under the drop policy only the first `keep` bytes (the
 * definitions) are committed, with a brief wait if even they do not fit.
 */
static void
outbox_commit_slow(int drop, size_t keep, uint64_t nrecords)
{
    uint64_t stall_ns = drop ? BRIEF_STALL_NS : BLOCK_STALL_NS;

    O.staged_records = nrecords;
    if (drop && keep < B->len) {
        /* The record goes, its definitions stay. */
        st__sender_count_lost(nrecords);
        O.staged_records = 0;
        B->len = keep;
    }
    O.waiting = 1;
    while (B->len > 0) {
        size_t n = B->len < O.room ? B->len : (size_t)O.room;

        if (n == 0 && outbox_refresh() == 0 && O.room > 0)
            continue;
        if (n > 0) {
            /* Part of a record may go in: the collector waits for the
             * rest (the agent is its only writer). */
            outbox_put(n);
            outbox_signal();
            continue;
        }
        if (outbox_wait_room(B->len, stall_ns) != 0) {
            outbox_lose();
            break;
        }
    }
    /* Ours and those queued behind us. */
    H->records += O.staged_records;
    O.staged_records = 0;
    O.waiting = 0;
    outbox_signal();
}

/* Another thread waits for room with records before ours in the batch:
 * ours go in after them, and this thread waits until they did. */
static void
outbox_queue_behind(int drop, uint64_t nrecords)
{
    uint64_t end = O.taken + B->len;
    uint32_t gen = st__sender_gen();

    O.staged_records += nrecords;
    while (!drop && O.waiting && (int64_t)(O.taken - end) < 0 &&
           st__sender_gen() == gen && st__sender_ok()) {
        Py_BEGIN_ALLOW_THREADS
        struct timespec t = st__clock_deadline(2);

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
outbox_maybe_flush(void)
{
    if (H->wpos - O.flush_pos < FLUSH_EVERY &&
        (int64_t)(st__clock_hook_ticks - O.flush_ticks) < (int64_t)O.flush_age)
        return;
    if (O.waiting || O.room < 16)
        return;
    (void)st__outbox_flush(0, 0);
}

/* When the next commit in place must look at more than publishing: a
 * FLUSH due, the room to be looked up again before it runs short (so
 * that a record rarely misses it), the soft end of a lap. */
static void
outbox_set_check(void)
{
    uint64_t half = O.size / 2, soft = O.size / SOFT_DIVISOR;
    uint64_t at = H->wpos & H->mask, next;

    /* The age of the last FLUSH is looked at every CHECK_EVERY bytes. */
    H->check_at = H->wpos + CHECK_EVERY;
    if (O.flush_pos + FLUSH_EVERY < H->check_at)
        H->check_at = O.flush_pos + FLUSH_EVERY;
    next = O.room > half ? O.room - half : O.room / 4;
    if (H->wpos + next < H->check_at)
        H->check_at = H->wpos + next;
    if (at < soft && H->wpos + (soft - at) < H->check_at)
        H->check_at = H->wpos + (soft - at);
}

/* Frees the memory of the data pages wholly inside ring offsets
 * [from, to) (MADV_REMOVE frees the memfd's pages; a later write there
 * finds a fresh one). */
static void
outbox_free(uint64_t from, uint64_t to)
{
    uint64_t a = (from + 4095) & ~(uint64_t)4095;
    uint64_t b = to & ~(uint64_t)4095;

    if (b > a)
        (void)madvise(H->data + a, (size_t)(b - a), MADV_REMOVE);
}

/*
 * Past the soft end of a lap, with the collector caught up: the rest of
 * the lap is skipped (a SKIP message over it) and the next record goes to
 * the start of the ring.  So while the collector keeps up the agent
 * writes the same first pages over and over, and the ring's resident
 * memory stays near its soft size; a burst the collector is behind on
 * goes on into the rest of the ring, whose pages the collector frees
 * when it next skips them (daemon/ring.c).
 */
static void
outbox_maybe_skip(void)
{
    uint64_t soft = O.size / SOFT_DIVISOR;
    uint64_t at = H->wpos & H->mask, n, taken;

    if (at < soft || O.size - at <= ST_WIRE_SKIP_HEAD || O.waiting ||
        B->len != 0)
        return;
    taken = __atomic_load_n(&H->hdr->taken, __ATOMIC_ACQUIRE);
    if (H->wpos - taken > soft / 2)
        return;
    n = O.size - at - ST_WIRE_SKIP_HEAD;
    if (outbox_refresh() != 0 || O.room < ST_WIRE_SKIP_HEAD + n)
        return;
    st_wire_put_skip_head((unsigned char *)H->data + at, (uint32_t)n);
    H->wpos += ST_WIRE_SKIP_HEAD + n;
    O.room -= ST_WIRE_SKIP_HEAD + n;
    __atomic_store_n(&H->hdr->commit, H->wpos, __ATOMIC_RELEASE);
    /* Beyond the soft size, this lap holds nothing anyone reads again
     * but what the collector has not taken yet (it skips the rest), and
     * while it keeps up nothing is written there: a burst's pages go. */
    outbox_free(at + ST_WIRE_SKIP_HEAD, O.size);
    if ((taken & H->mask) > soft && taken + O.size > H->wpos)
        outbox_free(soft, taken & H->mask);
    outbox_borrow();
}

/* After a commit in place, at check_at or when a FLUSH is due by age:
 * while the batch borrows, its cap is the room. */
void
st__outbox_after_commit(void)
{
    O.room = B->cap - B->len;
    if (O.room <= O.size / 2 && outbox_refresh() == 0)
        B->cap = B->len + (size_t)O.room;
    outbox_maybe_flush();
    outbox_maybe_skip();
    outbox_set_check();
}

void
st__outbox_wake_idle(void)
{
    __atomic_store_n(&H->hdr->reader_idle, 0, __ATOMIC_RELAXED);
    outbox_wake();
}

/* st__outbox_commit() of all but the common case (outbox.h): nothing to
 * commit, no ring, or a record that did not fit (the batch then holds it
 * in memory of its own). */
void
st__outbox_commit_rest(int drop, size_t keep, uint64_t nrecords)
{
    if (B->len == 0)
        return;
    if (H->hdr == NULL || B->oom) {
        O.staged_records += nrecords;
        outbox_lose();
        return;
    }
    if (O.waiting) {
        if (drop && keep < B->len) {
            /* The drop policy does not wait behind another thread: the
             * record goes, its definitions stay (they go in after the
             * waiting thread's bytes). */
            st__sender_count_lost(nrecords);
            B->len = keep;
            return;
        }
        /* Committed (and counted) by the waiting thread. */
        outbox_queue_behind(drop, nrecords);
        return;
    }
    /* The room the batch had is not known any more: look it up. */
    if (outbox_refresh() != 0)
        O.room = 0;
    outbox_commit_slow(drop, keep, nrecords);
    if (H->hdr != NULL) {
        outbox_borrow();
        outbox_maybe_flush();
        outbox_set_check();
    }
}

uint64_t
st__outbox_flush(int drop, int wake)
{
    uint64_t token;

    /* A thread stopped around a fork starts again here, at the latest
     * FLUSH_AGE_NS into tracing. */
    st__sender_use();
    if (H->hdr == NULL || !st__sender_ok())
        return 0;
    token = ++O.tokens;
    if (st_wire_pack_flush(&st__outbox_pk, token) != 0)
        return 0;
    O.flush_pos = H->wpos;
    O.flush_ticks = st__clock_ticks();
    outbox_set_check();
    /* Nothing of it may be dropped. */
    st__outbox_commit(drop, B->len, 0);
    if (!st__sender_ok() || H->hdr == NULL)
        return 0;
    st__sender_flush_mark(token, H->records);
    if (wake)
        outbox_wake();
    return token;
}
