/*
 * When the collector looks at the agents' rings (see ringpoll.h): the
 * poll timer, the eventfd wake-up, the idle flag and the turns.
 */
#include "ringpoll.h"

#include "conn.h"
#include "input.h"
#include "ring.h"
#include "server.h"

#include <unistd.h>

#include "steptrace/ring.h"

static void ringpoll_arm(struct st_server *srv);

static void
ringpoll_look(struct st_conn *c)
{
    c->ring->quiet = 0;
    c->ring->idle = 0;
    __atomic_store_n(&c->ring->hdr->reader_idle, 0, __ATOMIC_RELAXED);
    st__input_resume(c);
}

static void
ringpoll_wake_cb(uv_poll_t *h, int status, int events)
{
    struct st_ring *rg = h->data;
    struct st_server *srv;
    uint64_t v;
    ssize_t r;

    (void)status;
    (void)events;
    r = read(rg->efd, &v, sizeof(v));
    (void)r;
    if (rg->conn == NULL || rg->conn->state != ST_CONN_OPEN)
        return;
    srv = rg->conn->srv;
    ringpoll_look(rg->conn);
    ringpoll_arm(srv);
}

/* One poll of connection c's ring. */
static void
ringpoll_one(struct st_conn *c)
{
    struct st_ring *rg = c->ring;

    if (rg->idle)
        return;
    if (st__ring_news(rg)) {
        ringpoll_look(c);
        return;
    }
    rg->quiet++;
    if (rg->quiet == ST_RING_IDLE_TICKS)
        __atomic_store_n(&rg->hdr->reader_idle, 1, __ATOMIC_SEQ_CST);
    else if (rg->quiet >= ST_RING_IDLE_TICKS + 3)
        rg->idle = 1;
}

static void
ringpoll_cb(uv_timer_t *t)
{
    struct st_server *srv = t->data;
    struct st_conn *c, *next;
    int active = 0;

    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state != ST_CONN_OPEN || c->ring == NULL)
            continue;
        ringpoll_one(c);
        if (c->ring != NULL && !c->ring->idle)
            active = 1;
    }
    if (!active)
        uv_timer_stop(t);
}

/* Makes sure active rings are polled (the poll timer runs). */
static void
ringpoll_arm(struct st_server *srv)
{
    if (srv == NULL || srv->handles_closed ||
        uv_is_active((uv_handle_t *)&srv->ring_timer))
        return;
    uv_timer_start(&srv->ring_timer, ringpoll_cb, ST_RING_POLL_MS,
                   ST_RING_POLL_MS);
}

void
st__ringpoll_watch(struct st_conn *c)
{
    uv_poll_start(&c->ring->wake, UV_READABLE, ringpoll_wake_cb);
    ringpoll_arm(c->srv);
}

static void
ringpoll_turn_cb(uv_idle_t *h)
{
    struct st_server *srv = h->data;
    struct st_conn *c, *next;

    /* Each ring that yielded gets one turn; one that yields again
     * restarts the handle for the next iteration. */
    uv_idle_stop(h);
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state != ST_CONN_OPEN || c->ring == NULL || !c->ring->want_turn)
            continue;
        c->ring->want_turn = 0;
        st__input_resume(c);
    }
}

void
st__ringpoll_yield(struct st_conn *c)
{
    struct st_server *srv = c->srv;

    c->ring->want_turn = 1;
    if (srv->handles_closed || uv_is_active((uv_handle_t *)&srv->ring_idle))
        return;
    uv_idle_start(&srv->ring_idle, ringpoll_turn_cb);
}
