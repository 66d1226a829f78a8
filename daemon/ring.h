/*
 * The agents' rings (ring.c; PROTOCOL.md "The ring", layout in
 * steptrace/ring.h): a connection whose HELLO asks for one gets a shared
 * memory ring, from which the collector takes the agent's messages
 * instead of reading them from the socket.
 *
 * Ownership: the ring belongs to its connection (struct st_conn.ring),
 * made by st__ring_open at HELLO (session.c) and given up by
 * st__ring_close at close (conn.c); its memory goes in its own close
 * callback.  conn.c takes the messages (st__ring_take and friends).
 */
#ifndef STEPTRACE_DAEMON_RING_H
#define STEPTRACE_DAEMON_RING_H

#include <stddef.h>
#include <stdint.h>

/* How often the rings of active agents are looked at, and after how many
 * looks without news the collector stops looking at one. */
#define ST_RING_POLL_MS 4
#define ST_RING_IDLE_TICKS 50u

struct st_conn;

/* ---- ring.c: the agents' rings ---- */

/* The data size granted for a request of `want` bytes (a power of two
 * within ST_RING_MIN .. ST_RING_MAX). */
uint64_t st__ring_size_for(uint64_t want);
/*
 * Makes c's ring of `size` data bytes (from st__ring_size_for) and sends
 * `reply` (a HELLO payload, framed here) with its two descriptors; later
 * replies go through libuv as usual.
 * @return 0, ST_ENOMEM or -errno (nothing is left behind).
 */
int st__ring_open(struct st_conn *c, uint64_t size, const char *reply,
                  size_t reply_len);
/* Gives up c's ring (at close); its memory goes once its handle closed. */
void st__ring_close(struct st_conn *c);
/*
 * The next whole messages the agent wrote, copied out of the shared
 * memory: *p, *n (valid until st__ring_consumed).
 * @return 1, 0 when there are none yet (or no room for them: c->blocked
 *         then says so), or ST_E* (a protocol error; c->detail says more).
 */
int st__ring_take(struct st_conn *c, const char **p, size_t *n);
/* The n bytes st__ring_take gave were applied. */
void st__ring_consumed(struct st_conn *c, size_t n);
/* @return 1 when everything committed was taken; *partial: bytes taken
 * that hold no whole message (the start of one that never came whole). */
int st__ring_drained(const struct st_conn *c, size_t *partial);
/* Stopping: only what the ring holds now will be taken. */
void st__ring_freeze(struct st_conn *c);
/* How the agent said its process ends (enum st_ring_end); *sig and
 * detail (the exec'd program, escaped later) go with it. */
int st__ring_end(const struct st_conn *c, int *sig, char *detail, size_t n);
/* c had its turn: it goes on at the next loop iteration, after every
 * other ring that waits for a turn (round robin). */
void st__ring_yield(struct st_conn *c);

#endif /* STEPTRACE_DAEMON_RING_H */
