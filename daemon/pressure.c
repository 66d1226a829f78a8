/*
 * The bound on the collector's memory.  "Pending" bytes are those received
 * and not yet consumed (unprocessed frames in the read buffers) plus those
 * rendered and not yet written (sink queues).  max_pending_bytes bounds
 * the collector's memory as a whole: pending bytes may use the bound less
 * a reserve for what the collector holds anyway (the larger of its
 * resident size at start plus, per open connection, a read buffer and a
 * spare chunk, and its resident size less pending as measured every
 * ST_MEASURE_MS; plus ST_PRESSURE_MARGIN for the overshoot).
 *
 * Producers are stopped well before that, when the rendered records
 * waiting for their write exceed a quarter of the bound
 * (st__pressure_threshold): once the writers always have a full queue,
 * more buffered text only costs memory, and rendered text is five to
 * twenty times the size of the msgpack it comes from, which can as well
 * wait in the kernel and in the agents' own bounded queues.  The rest of
 * the budget is room for large frames.  Unprocessed input does not count
 * here: only writes can bring the queues down, and a connection's input
 * is bounded on its own (one read chunk, or one frame that needed room in
 * the budget).  Above the threshold a connection with records queued
 * stops at the next message it processes and is no longer read (input.c);
 * connections that produce nothing (status, tail) are never stopped, and
 * the producers' agents feel it as a full ring.  Once writes bring the
 * queues under three quarters of the threshold, the stopped connections
 * go on, one per loop iteration, in the order they were stopped
 * (resume.c).
 *
 * Nothing is dropped here: a stopped connection keeps its bytes.  The
 * overshoot past the threshold is at most one read chunk and one rendered
 * record per connection.
 */
#include "pressure.h"

#include "conn.h"
#include "sink.h"

#include <string.h>

/* Memory an open connection holds whatever it sends: a read buffer and
 * room for the chunks it fills (kept out of the pending budget). */
#define ST_CONN_RESERVE (ST_READ_CHUNK + 2 * ST_SINK_FLUSH_BYTES)
/* Room left for what goes past the threshold before producers stop (one
 * record and one read per connection). */
#define ST_PRESSURE_MARGIN (2u << 20)

void
st__pressure_init(struct st_pressure *p, size_t max_pending, uint64_t *peak)
{
    memset(p, 0, sizeof(*p));
    p->max_pending = max_pending;
    p->peak = peak;
}

void
st__pressure_add(struct st_pressure *p, size_t n, int out)
{
    p->pending += n;
    if (out)
        p->pending_out += n;
    if (p->pending > *p->peak)
        *p->peak = p->pending;
}

void
st__pressure_sub(struct st_pressure *p, size_t n, int out)
{
    p->pending = n > p->pending ? 0 : p->pending - n;
    if (out)
        p->pending_out = n > p->pending_out ? 0 : p->pending_out - n;
}

/* The most pending bytes the bound allows: max_pending_bytes less what
 * the collector holds anyway, as estimated or last measured. */
static size_t
pressure_budget(const struct st_pressure *p)
{
    size_t reserve = p->rss_start + p->nconns * ST_CONN_RESERVE;

    /* What the process holds besides pending bytes, as last measured
     * (fragmentation and per-connection state included), if larger. */
    if (p->overhead > reserve)
        reserve = p->overhead;
    reserve += ST_PRESSURE_MARGIN;
    return reserve < p->max_pending ? p->max_pending - reserve : 0;
}

size_t
st__pressure_threshold(const struct st_pressure *p)
{
    size_t window = p->max_pending / 4, budget = pressure_budget(p);

    /* Records waiting for the disk beyond a quarter of the bound buy no
     * throughput (the writers always have work queued), only memory:
     * producers wait in the kernel and in their own queues instead.  The
     * rest of the budget is room for large frames.  With very many
     * connections the budget may be smaller; a sixteenth of the bound is
     * left for records in flight all the same. */
    if (budget < window)
        window = budget > p->max_pending / 16 ? budget : p->max_pending / 16;
    return window;
}

int
st__pressure_high(const struct st_pressure *p)
{
    return p->pending_out > st__pressure_threshold(p);
}

int
st__pressure_low(const struct st_pressure *p)
{
    /* Resume below three quarters of the threshold. */
    return p->pending_out < st__pressure_threshold(p) / 4 * 3;
}

int
st__pressure_room_for_frame(const struct st_pressure *p, size_t want)
{
    return p->pending_big == 0 || p->pending + want <= pressure_budget(p);
}

void
st__pressure_measure(struct st_pressure *p, size_t rss)
{
    p->overhead = rss > p->pending ? rss - p->pending : 0;
}
