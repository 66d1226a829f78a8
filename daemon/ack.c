/*
 * FLUSH and ACK (PROTOCOL.md): the collector answers a FLUSH once every
 * record the connection sent before it is written.  Processing does not
 * stop at a FLUSH: its sinks seal their current chunk, so that the records
 * after it go to chunks of a later epoch, and the ACKs owed wait in a ring,
 * oldest first, until no sink of the connection still queues a chunk of
 * their epoch (st__sink_done_with).  The agent ends every frame with a
 * FLUSH, so this is how it learns which records are safe.
 */
#include "ack.h"

#include "conn.h"
#include "input.h"
#include "log.h"
#include "resume.h"
#include "server.h"
#include "sink.h"
#include "steptrace/idmap.h"

#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"

/* FLUSHes a peer may have waiting for their ACK before its processing
 * stops too. */
#define ST_MAX_ACK_WAIT 1024u

/* @return 1 when every record before FLUSH epoch `epoch` is written. */
static int
ack_done_with(const struct st_conn *c, uint64_t epoch)
{
    struct st_sink *s;
    size_t it = 0;

    while ((s = st__idmap_next(&c->sinks, &it)) != NULL)
        if (!st__sink_done_with(s, epoch))
            return 0;
    return 1;
}

/* Sends one ACK, with the errors counted since the previous one.
 * @return 0, or -1 when the connection was closed. */
static int
ack_send(struct st_conn *c, uint64_t token)
{
    struct st_buf *b = &c->srv->scratch.reply;
    msgpack_packer pk;

    /* Nobody is there to read it (an agent gone, its ring applied). */
    if (c->peer_gone)
        return 0;
    b->len = 0;
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    if (st_wire_pack_ack(&pk, token, c->errors, c->errors ? c->errmsg : NULL,
                         c->errors ? strlen(c->errmsg) : 0) != 0) {
        st_buf_close(b);
        st__log("out of memory replying to pid %d; closing the connection",
                (int)c->peer_pid);
        st__conn_close(c, 1);
        return -1;
    }
    c->errors = 0;
    c->errmsg[0] = '\0';
    return st__conn_send(c, b->data, b->len) == 0 ? 0 : -1;
}

void
st__ack_sink_done(struct st_conn *c)
{
    while (c->nacks > 0 && c->state == ST_CONN_OPEN) {
        struct st_ack_wait *a = &c->acks[c->acks_head];

        if (!ack_done_with(c, a->epoch))
            break;
        c->acks_head = (c->acks_head + 1) % c->acks_cap;
        c->nacks--;
        if (ack_send(c, a->token) != 0)
            return;
    }
    if ((c->blocked & ST_BLOCK_FLUSH) && c->nacks < ST_MAX_ACK_WAIT) {
        c->blocked &= ~(unsigned)ST_BLOCK_FLUSH;
        c->resume_wanted = 1;
        st__resume_schedule(c->srv);
    }
    st__input_drain_check(c);
}

int
st__ack_request(struct st_conn *c, uint64_t token)
{
    struct st_sink *s;
    size_t it = 0;

    if (c->nacks == c->acks_cap) {
        size_t cap = c->acks_cap ? c->acks_cap * 2 : 4, i;
        struct st_ack_wait *a = malloc(cap * sizeof(*a));

        if (a == NULL)
            return ST_ENOMEM;
        for (i = 0; i < c->nacks; i++)
            a[i] = c->acks[(c->acks_head + i) % c->acks_cap];
        free(c->acks);
        c->acks = a;
        c->acks_cap = cap;
        c->acks_head = 0;
    }
    c->acks[(c->acks_head + c->nacks) % c->acks_cap].token = token;
    c->acks[(c->acks_head + c->nacks) % c->acks_cap].epoch = c->epoch;
    c->nacks++;
    /* Records after this FLUSH go to new chunks of a later epoch. */
    c->epoch++;
    while ((s = st__idmap_next(&c->sinks, &it)) != NULL) {
        st__sink_seal(s, c->epoch);
        st__sink_flush(s);
    }
    /* A peer that keeps sending FLUSHes faster than its records can be
     * written waits, like one that sends too many records. */
    if (c->nacks >= ST_MAX_ACK_WAIT)
        c->blocked |= ST_BLOCK_FLUSH;
    st__ack_sink_done(c);
    return 0;
}
