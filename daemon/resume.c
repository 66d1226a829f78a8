/*
 * Connections going on after a block (see resume.h): a connection paused
 * for pressure is counted and its records handed to the writers; once
 * pending is low again (pressure.c) or a FLUSH block was lifted (ack.c),
 * the resume handle lets the blocked connections go on, one per loop
 * iteration, a lifted FLUSH block first, then in the order they were
 * paused.
 */
#include "resume.h"

#include "conn.h"
#include "input.h"
#include "log.h"
#include "pressure.h"
#include "server.h"

void
st__resume_paused(struct st_server *srv, struct st_conn *c)
{
    srv->stats.pauses++;
    c->pause_seq = srv->stats.pauses;
    /* Its records go to the writers now, whatever their size. */
    st__conn_flush(c);
    if (srv->opt->verbose)
        st__log("pid %d paused: %zu bytes pending", (int)c->peer_pid,
                srv->pressure.pending);
}

/* May c go on now?  Blocks other than pressure wait for their own event. */
static int
resume_eligible(const struct st_server *srv, const struct st_conn *c)
{
    unsigned b = c->blocked;

    if (c->state != ST_CONN_OPEN || (b & ST_BLOCK_FLUSH))
        return 0;
    if (b == 0)
        return c->resume_wanted;
    return st__pressure_low(&srv->pressure);
}

/* The connection that may go on and has waited longest, or NULL.  A
 * connection whose FLUSH limit was lifted comes first (it is not paused
 * for pressure); then they go in the order they were paused, so that none
 * waits more than one turn of the others. */
static struct st_conn *
resume_pick(struct st_server *srv)
{
    struct st_conn *c, *best = NULL;

    for (c = srv->conns; c != NULL; c = c->next) {
        if (!resume_eligible(srv, c))
            continue;
        if (c->blocked == 0)
            return c;
        if (best == NULL || c->pause_seq < best->pause_seq)
            best = c;
    }
    return best;
}

static void
resume_idle_cb(uv_idle_t *h)
{
    struct st_server *srv = h->data;
    struct st_conn *c = resume_pick(srv);

    if (c == NULL) {
        uv_idle_stop(h);
        return;
    }
    c->blocked &= ~(unsigned)(ST_BLOCK_PRESSURE | ST_BLOCK_MEMORY);
    c->resume_wanted = 0;
    st__input_resume(c);
}

void
st__resume_schedule(struct st_server *srv)
{
    if (uv_is_closing((uv_handle_t *)&srv->resume_idle) ||
        uv_is_active((uv_handle_t *)&srv->resume_idle))
        return;
    if (resume_pick(srv) != NULL)
        uv_idle_start(&srv->resume_idle, resume_idle_cb);
}
