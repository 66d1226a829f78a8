/*
 * The bound on the collector's memory: "pending" bytes are those received
 * and not yet consumed (unprocessed frames in the read buffers) plus those
 * rendered and not yet written (sink queues).  Above max_pending_bytes a
 * connection stops at the next message it processes and is no longer
 * read (conn.c), so only the connections that produce are stopped, and
 * their agents feel it as a full socket.  Once writes bring pending under
 * three quarters of the bound, the stopped connections go on, one per
 * loop iteration and the least loaded first: the busiest connections are
 * the last to get going again.
 *
 * Nothing is dropped here: a stopped connection keeps its bytes.  The
 * overshoot past the bound is at most one read chunk and one rendered
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

int
st__pressure_high(const struct st_server *srv)
{
    return srv->pending > srv->max_pending;
}

int
st__pressure_room_for_frame(const struct st_server *srv, size_t want)
{
    return srv->pending_big == 0 || srv->pending + want <= srv->max_pending;
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
        return !c->reading;
    if ((b & ST_BLOCK_MEMORY) && srv->pending_big != 0 &&
        srv->pending >= srv->low_pending)
        return 0;
    return srv->pending < srv->low_pending;
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
