/*
 * FLUSH and ACK (PROTOCOL.md): a connection's FLUSH is answered once
 * every record it sent before the FLUSH is written.  The ACKs owed wait
 * in the connection (struct st_conn.acks), oldest first; session.c asks
 * for one at each FLUSH, and a sink's finished write job lets the ones
 * whose records are all written go out.
 */
#ifndef STEPTRACE_DAEMON_ACK_H
#define STEPTRACE_DAEMON_ACK_H

#include <stdint.h>

struct st_conn;

/* A FLUSH: owes its ACK (sent at once when nothing is queued).
 * @return 0 or ST_ENOMEM. */
int st__ack_request(struct st_conn *c, uint64_t token);
/* A sink of c finished a job: sends the ACKs whose records are all
 * written, in order, and lets processing go on if it waited for that.
 * May close c (and so release and free the sink). */
void st__ack_sink_done(struct st_conn *c);

#endif /* STEPTRACE_DAEMON_ACK_H */
