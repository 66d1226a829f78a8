/*
 * Waiting on the collector (see sender.h): for the ACK of a FLUSH, at the
 * end of a region, and for room in the ring, when a record does not fit.
 * Both waits run with the GIL released and watch the collector's progress
 * (bytes taken from the ring, ACKs), so that a slow but working collector
 * is waited for and one that stopped is not.
 */
#include "compat.h"

#include "steptrace/ring.h"

#include "clock.h"
#include "sender_int.h"

#include <stdio.h>
#include <time.h>

static struct st_sender_state *const S = &st__sender_s;

/* A position in the ring of connection `gen` (&S->ring->read: the room
 * given back, or &S->ring->taken: progress), or -1 when that connection is
 * no longer the one in use.  Call with mu held: the ring is given and
 * taken back under it. */
static int
sender_wait_ring_pos(int taken, uint32_t gen, uint64_t *pos)
{
    if (S->ring == NULL || st__sender_hot.gen != gen)
        return -1;
    *pos = __atomic_load_n(taken ? &S->ring->taken : &S->ring->read,
                           __ATOMIC_ACQUIRE);
    return 0;
}

int
st__sender_wait_room(uint32_t gen, uint64_t target, uint64_t stall_ns)
{
    uint64_t last = 0, since = st__clock_now_ns();
    int r = 0;

    pthread_mutex_lock(&S->mu);
    (void)sender_wait_ring_pos(1, gen, &last);
    for (;;) {
        uint64_t pos, taken;
        struct timespec deadline;

        if (!st__sender_hot.ok || sender_wait_ring_pos(0, gen, &pos) ||
            sender_wait_ring_pos(1, gen, &taken)) {
            r = -1;
            break;
        }
        if ((int64_t)(pos - target) >= 0)
            break;
        /* Progress is what the collector takes. */
        if (taken != last) {
            last = taken;
            since = st__clock_now_ns();
        }
        else if (st__clock_now_ns() - since > stall_ns) {
            /* The next hook reconnects (and so stops the thread). */
            st__sender_fail_locked("the collector stopped taking records");
            st__sender_warn_once("the collector stopped taking records");
            r = -1;
            break;
        }
        /* The collector's ACK 0 says it took bytes; the timeout covers a
         * wake-up that came before this wait began. */
        deadline = st__clock_deadline(2);
        (void)pthread_cond_timedwait(&S->cond, &S->mu, &deadline);
    }
    pthread_mutex_unlock(&S->mu);
    return r;
}

int
st__sender_wait_ack(uint64_t token, int stall_ms, uint64_t *errors, char *msg,
                    size_t msglen)
{
    uint64_t stall_ns = (uint64_t)stall_ms * 1000000ull;
    uint32_t gen = st__sender_hot.gen;
    uint64_t last = 0, since = st__clock_now_ns(), acked = 0;
    int r = 0;

    msg[0] = '\0';
    st__sender_use();
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&S->mu);
    (void)sender_wait_ring_pos(1, gen, &last);
    while (st__sender_hot.ok && S->acked < token) {
        struct timespec deadline;
        uint64_t pos = 0;

        (void)sender_wait_ring_pos(1, gen, &pos);
        /* Wait as long as something moves (the collector takes bytes
         * from the ring, or ACKs earlier FLUSHes): a slow but working
         * collector is waited for. */
        if (pos != last || S->acked != acked) {
            last = pos;
            acked = S->acked;
            since = st__clock_now_ns();
        }
        else if (st__clock_now_ns() - since > stall_ns) {
            break;
        }
        deadline = st__clock_deadline(100);
        (void)pthread_cond_timedwait(&S->cond, &S->mu, &deadline);
    }
    if (S->acked >= token) {
        *errors = S->ack_errors;
        if (S->ack_errors > 0)
            snprintf(msg, msglen, "%s", S->ack_msg);
        S->ack_errors = 0;
        S->ack_msg[0] = '\0';
    }
    else if (!st__sender_hot.ok) {
        r = -1;
        snprintf(msg, msglen,
                 "lost the connection to the collector at %s "
                 "(%s)",
                 S->path, S->fail_msg);
    }
    else {
        r = -1;
        snprintf(msg, msglen,
                 "the collector at %s took nothing for %d s, "
                 "so the end of the region is not confirmed (records may "
                 "be missing from the log)",
                 S->path, stall_ms / 1000);
    }
    pthread_mutex_unlock(&S->mu);
    Py_END_ALLOW_THREADS
    return r;
}
