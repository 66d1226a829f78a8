/*
 * What a connection receives (input.c): reading from the socket (or the
 * agent's ring), frame reassembly, validation and decoding, each message
 * applied (session.c), blocking when a FLUSH waits or memory is short,
 * resuming, and closing once the input ended and the ACKs owed are out.
 *
 * Called by conn.c (start reading at accept; an agent's write failed),
 * ringpoll.c and resume.c (resume), ack.c (an ACK went out: maybe done)
 * and server.c (SIGTERM).  Everything runs on the loop thread.
 */
#ifndef STEPTRACE_DAEMON_INPUT_H
#define STEPTRACE_DAEMON_INPUT_H

struct st_conn;

/* Reading follows the state: on while open, unblocked and (when
 * draining) with budget left; off otherwise.  c->reading says which. */
void st__input_update_reading(struct st_conn *c);
/*
 * Processes buffered frames until done or blocked, then starts or stops
 * reading to match c->blocked.  Used when a block is lifted.
 */
void st__input_resume(struct st_conn *c);
/* SIGTERM: read what the peer sent so far, process it, then close. */
void st__input_drain(struct st_conn *c);
/* While stopping (or after the peer half-closed): once everything the
 * peer had sent is processed and the ACKs owed are out, the connection
 * closes. */
void st__input_drain_check(struct st_conn *c);
/* An agent with a ring is gone (its socket ended or failed): what the
 * ring holds is applied, then the connection closes. */
void st__input_peer_gone(struct st_conn *c);

#endif /* STEPTRACE_DAEMON_INPUT_H */
