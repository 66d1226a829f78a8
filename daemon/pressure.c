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
 * stops at the next message it processes and is no longer read (conn.c);
 * connections that produce nothing (status, tail) are never stopped, and
 * the producers' agents feel it as a full socket.  Once writes bring the
 * queues under three quarters of the threshold, the stopped connections
 * go on, one per loop iteration, in the order they were stopped.
 *
 * Nothing is dropped here: a stopped connection keeps its bytes.  The
 * overshoot past the threshold is at most one read chunk and one rendered
 * record per connection.
 */
#include "pressure.h"

#include "conn.h"
#include "input.h"
#include "log.h"
#include "server.h"
#include "sink.h"

/* Memory an open connection holds whatever it sends: a read buffer and
 * room for the chunks it fills (kept out of the pending budget). */
#define ST_CONN_RESERVE (ST_READ_CHUNK + 2 * ST_SINK_FLUSH_BYTES)
/* Room left for what goes past the threshold before producers stop (one
 * record and one read per connection). */
#define ST_PRESSURE_MARGIN (2u << 20)

void
st__pressure_add(struct st_server *srv, size_t n, int out)
{
    srv->pending += n;
    if (out)
        srv->pending_out += n;
    if (srv->pending > srv->stats.pending_peak)
        srv->stats.pending_peak = srv->pending;
}

void
st__pressure_sub(struct st_server *srv, size_t n, int out)
{
    srv->pending = n > srv->pending ? 0 : srv->pending - n;
    if (out)
        srv->pending_out = n > srv->pending_out ? 0 : srv->pending_out - n;
}

/* The most pending bytes the bound allows: max_pending_bytes less what
 * the collector holds anyway, as estimated or last measured. */
static size_t
pressure_budget(const struct st_server *srv)
{
    size_t reserve = srv->rss_start + srv->nconns * ST_CONN_RESERVE;

    /* What the process holds besides pending bytes, as last measured
     * (fragmentation and per-connection state included), if larger. */
    if (srv->overhead > reserve)
        reserve = srv->overhead;
    reserve += ST_PRESSURE_MARGIN;
    return reserve < srv->max_pending ? srv->max_pending - reserve : 0;
}

size_t
st__pressure_threshold(const struct st_server *srv)
{
    size_t window = srv->max_pending / 4, budget = pressure_budget(srv);

    /* Records waiting for the disk beyond a quarter of the bound buy no
     * throughput (the writers always have work queued), only memory:
     * producers wait in the kernel and in their own queues instead.  The
     * rest of the budget is room for large frames.  With very many
     * connections the budget may be smaller; a sixteenth of the bound is
     * left for records in flight all the same. */
    if (budget < window)
        window = budget > srv->max_pending / 16 ? budget
                                                 : srv->max_pending / 16;
    return window;
}

int
st__pressure_high(const struct st_server *srv)
{
    return srv->pending_out > st__pressure_threshold(srv);
}

/* Resume below three quarters of the threshold. */
static size_t
pressure_low(const struct st_server *srv)
{
    return st__pressure_threshold(srv) / 4 * 3;
}

int
st__pressure_room_for_frame(const struct st_server *srv, size_t want)
{
    return srv->pending_big == 0 ||
           srv->pending + want <= pressure_budget(srv);
}

void
st__pressure_measure(struct st_server *srv)
{
    size_t rss = st__server_rss();

    srv->overhead = rss > srv->pending ? rss - srv->pending : 0;
}

void
st__pressure_paused(struct st_server *srv, struct st_conn *c)
{
    srv->stats.pauses++;
    c->pause_seq = srv->stats.pauses;
    /* Its records go to the writers now, whatever their size. */
    st__conn_flush(c);
    if (srv->opt->verbose)
        st__log("pid %d paused: %zu bytes pending", (int)c->peer_pid,
                srv->pending);
}

/* May c go on now?  Blocks other than pressure wait for their own event. */
static int
pressure_eligible(const struct st_server *srv, const struct st_conn *c)
{
    unsigned b = c->blocked;

    if (c->state != ST_CONN_OPEN || (b & ST_BLOCK_FLUSH))
        return 0;
    if (b == 0)
        return c->resume_wanted;
    return srv->pending_out < pressure_low(srv);
}

/* The connection that may go on and has waited longest, or NULL.  A
 * connection whose FLUSH limit was lifted comes first (it is not paused
 * for pressure); then they go in the order they were paused, so that none
 * waits more than one turn of the others. */
static struct st_conn *
pressure_pick(struct st_server *srv)
{
    struct st_conn *c, *best = NULL;

    for (c = srv->conns; c != NULL; c = c->next) {
        if (!pressure_eligible(srv, c))
            continue;
        if (c->blocked == 0)
            return c;
        if (best == NULL || c->pause_seq < best->pause_seq)
            best = c;
    }
    return best;
}

static void
pressure_idle_cb(uv_idle_t *h)
{
    struct st_server *srv = h->data;
    struct st_conn *c = pressure_pick(srv);

    if (c == NULL) {
        uv_idle_stop(h);
        return;
    }
    c->blocked &= ~(unsigned)(ST_BLOCK_PRESSURE | ST_BLOCK_MEMORY);
    c->resume_wanted = 0;
    st__input_resume(c);
}

void
st__pressure_schedule(struct st_server *srv)
{
    if (uv_is_closing((uv_handle_t *)&srv->resume_idle) ||
        uv_is_active((uv_handle_t *)&srv->resume_idle))
        return;
    if (pressure_pick(srv) != NULL)
        uv_idle_start(&srv->resume_idle, pressure_idle_cb);
}
