/*
 * When the collector looks at the agents' rings (ringpoll.c):
 *
 *  - every ST_RING_POLL_MS while the agent is active (so a record reaches
 *    the collector within a few milliseconds, whatever the program does
 *    next: it may block forever, or be killed);
 *  - at once when the agent writes the eventfd (at a barrier, when the
 *    ring is full, or when the collector had stopped looking);
 *  - and in turns: a ring that had its share of a loop iteration yields
 *    to the others (round robin).
 *
 * After ST_RING_IDLE_TICKS polls without news the collector says so in
 * the ring's header (reader_idle) and, a few polls later, stops looking;
 * the agent then writes the eventfd after its next commit.  The grace
 * polls cover a commit made just as the flag was set.  The poll timer and
 * the turn handle are the server's; looking means resuming the
 * connection's input (input.c).
 */
#ifndef STEPTRACE_DAEMON_RINGPOLL_H
#define STEPTRACE_DAEMON_RINGPOLL_H

/* How often the rings of active agents are looked at, and after how many
 * looks without news the collector stops looking at one. */
#define ST_RING_POLL_MS 4
#define ST_RING_IDLE_TICKS 50u

struct st_conn;

/* c's ring was just made: its eventfd is watched, and the rings are
 * polled. */
void st__ringpoll_watch(struct st_conn *c);
/* c had its turn: it goes on at the next loop iteration, after every
 * other ring that waits for a turn (round robin). */
void st__ringpoll_yield(struct st_conn *c);

#endif /* STEPTRACE_DAEMON_RINGPOLL_H */
