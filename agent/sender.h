/*
 * The collector connection's socket and its watcher thread (sender.c).
 *
 * Records do not travel on the socket: they go into the ring (outbox.c),
 * which the collector reads on its own.  The socket carries HELLO out
 * (hello.c) and the collector's ACKs and FILEs back; its end tells either
 * side that the other one is gone.  The watcher thread never takes the
 * GIL: it reads replies, notices the end, and wakes the threads that wait
 * for an ACK or for room in the ring.
 *
 * sender.c owns the socket, its eventfd, the thread and the ACK state;
 * it borrows the ring's header (to read the collector's positions) from
 * outbox.c, given with st__sender_start and taken back with
 * st__sender_disconnect.  It calls nothing above it: collector.c drives
 * the connection's life (dial, start, stop, disconnect, fork); outbox.c
 * asks for room and marks FLUSHes; emit.c and module.c ask whether it is
 * healthy and what the collector answered.  GIL held unless a comment
 * says otherwise.
 */
#ifndef STEPTRACE_AGENT_SENDER_H
#define STEPTRACE_AGENT_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "hello.h"

struct st_ring_hdr;

/*
 * Connects to the collector at `path` and exchanges HELLO (asking for a
 * ring of `ring_bytes`); *ring receives the ring (the caller's to close
 * or keep).  The connection is not in use yet (see st__sender_start).
 * On failure writes a one-line reason into err and leaves nothing open.
 * @return 0 or a negative errno / ST_E* code.
 */
int st__sender_dial(const char *path, const char *program, uint64_t ring_bytes,
                    struct st_hello_ring *ring, char *err, size_t errlen);

/*
 * Puts the dialled connection in use: the ring header it reads the
 * collector's positions from (borrowed until st__sender_disconnect), a
 * new generation, the watcher thread.  On failure the connection is
 * closed (err says why; the ring is the caller's to detach).
 * @return 0 or a negative errno.
 */
int st__sender_start(struct st_ring_hdr *ring, char *err, size_t errlen);

/* 1 while a connection is dialled (its socket open). */
int st__sender_dialed(void);

/* Stops the watcher thread (an orderly end begins); the connection
 * stays until st__sender_disconnect. */
void st__sender_stop(void);

/* Marks the connection gone, lets go of the ring header and closes the
 * socket.  The ring may be unmapped after this returns. */
void st__sender_disconnect(void);

/* What every event reads, apart from the sender's other state (sender.c
 * writes it): inline readers below. */
struct st_sender_hot {
    int ok;       /* Connected and healthy; written under the lock. */
    uint32_t gen; /* Changes at each (re)connect and fork. */
};
extern struct st_sender_hot st__sender_hot;

/* 1 while connected and healthy (any thread: an atomic load, no lock; a
 * stale value only delays noticing by one event). */
static inline int
st__sender_ok(void)
{
    return __atomic_load_n(&st__sender_hot.ok, __ATOMIC_ACQUIRE);
}

/* The connection generation: changes at each connection and fork. */
static inline uint32_t
st__sender_gen(void)
{
    return st__sender_hot.gen;
}

/* Starts the watcher thread again after a fork, if it was stopped. */
void st__sender_use(void);

/* Records the collector confirmed written on this connection. */
uint64_t st__sender_confirmed(void);

/* n more records lost (connections gone, the drop policy); the count of
 * all those lost so far. */
void st__sender_count_lost(uint64_t n);
uint64_t st__sender_lost(void);

/* A FLUSH with `token` is in the ring after `cum` records of this
 * connection: its ACK confirms them written. */
void st__sender_flush_mark(uint64_t token, uint64_t cum);

/*
 * Waits, with the GIL released, until the collector has acknowledged
 * `token` (sent in a FLUSH already committed), or the connection failed,
 * or nothing moved on it (no byte taken from the ring, no ACK) for
 * `stall_ms`.  *errors / msg receive the ACK's error report.
 * @return 0 on ACK, -1 on failure or timeout (msg says which).
 */
int st__sender_wait_ack(uint64_t token, int stall_ms, uint64_t *errors,
                        char *msg, size_t msglen);

/*
 * Waits (call it with the GIL released) until the collector's read
 * position in the ring of connection `gen` reaches `target`.  A collector
 * that takes nothing for `stall_ns` is treated as gone (the connection is
 * marked failed).  @return 0, or -1 when the connection is gone.
 */
int st__sender_wait_room(uint32_t gen, uint64_t target, uint64_t stall_ns);

/* The log file the collector opened for `tracer_id` on this connection
 * (its FILE message), copied into out.  @return 1, or 0 when none is
 * known yet. */
int st__sender_file(uint32_t tracer_id, char *out, size_t outlen);

/* Before os.fork() in the parent: the watcher thread is stopped (no other
 * thread may run while the program forks); it starts again at the next
 * use of the connection, which stays. */
void st__sender_before_fork(void);

/* In a forked child, inside fork() (collector.c's pthread_atfork
 * handler): no thread, no connection, no ring; no Python call. */
void st__sender_atfork_child(void);

/* In a forked child: has it connected since the fork? */
int st__sender_reconnected_since_fork(void);

#endif /* STEPTRACE_AGENT_SENDER_H */
