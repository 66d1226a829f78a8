/*
 * The bound on the collector's memory.  "Pending" bytes are those received
 * and not yet consumed (unprocessed frames in the read buffers) plus those
 * rendered and not yet written (sink queues).  max_pending_bytes bounds
 * the collector's memory as a whole, so producers are stopped when pending
 * reaches the bound less a reserve for what the collector holds anyway:
 * the larger of its resident size at start plus, per open connection, a
 * read buffer and a spare chunk (ST_CONN_RESERVE), and its resident size
 * less pending as measured every ST_MEASURE_MS; plus ST_PRESSURE_MARGIN
 * for the overshoot.  Above that threshold a connection
 * stops at the next message it processes and is no longer read (conn.c),
 * so only the connections that produce are stopped, and their agents feel
 * it as a full socket.  Once writes bring pending under three quarters of
 * the threshold, the stopped connections go on, one per loop iteration
 * and the least loaded first: the busiest connections are the last to get
 * going again.
 *
 * Nothing is dropped here: a stopped connection keeps its bytes.  The
 * overshoot past the threshold is at most one read chunk and one rendered
 * record per connection.
 */
#include "daemon.h"

void
st__pressure_add(struct st_server *srv, size_t n)
{
    srv->pending += n;
    if (srv->pending > srv->stats.pending_peak)
        srv->stats.pending_peak = srv->pending;
}

void
st__pressure_sub(struct st_server *srv, size_t n)
{
    srv->pending = n > srv->pending ? 0 : srv->pending - n;
}

size_t
st__pressure_threshold(const struct st_server *srv)
{
    size_t reserve = srv->rss_start + srv->nconns * ST_CONN_RESERVE;
    size_t floor = srv->max_pending / 4;

    /* What the process holds besides pending bytes, as last measured
     * (fragmentation and per-connection state included), if larger. */
    if (srv->overhead > reserve)
        reserve = srv->overhead;
    reserve += ST_PRESSURE_MARGIN;

    /* With very many connections the reserve would leave nothing: keep a
     * quarter of the bound for records in flight all the same. */
    if (reserve > srv->max_pending - floor)
        return floor;
    return srv->max_pending - reserve;
}

int
st__pressure_high(const struct st_server *srv)
{
    return srv->pending > st__pressure_threshold(srv);
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
           srv->pending + want <= st__pressure_threshold(srv);
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
    if (srv->opt->verbose)
        st__log("pid %d paused: %zu bytes pending", (int)c->peer_pid,
                srv->pending);
}

/* Bytes this connection holds: unprocessed input and unwritten output. */
static size_t
pressure_load(const struct st_conn *c)
{
    const struct st_sink *s;
    size_t it = 0, n = c->rlen - c->roff;

    while ((s = st__idmap_next(&c->sinks, &it)) != NULL)
        n += s->queued;
    return n;
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
    return srv->pending < pressure_low(srv);
}

/* The least loaded connection that may go on, or NULL. */
static struct st_conn *
pressure_pick(struct st_server *srv)
{
    struct st_conn *c, *best = NULL;
    size_t best_load = 0;

    for (c = srv->conns; c != NULL; c = c->next) {
        size_t load;

        if (!pressure_eligible(srv, c))
            continue;
        load = pressure_load(c);
        if (best == NULL || load < best_load) {
            best = c;
            best_load = load;
        }
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
    st__conn_resume(c);
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
