/*
 * The agents' rings (ring.c; PROTOCOL.md "The ring", layout in
 * steptrace/ring.h): a connection whose HELLO asks for one gets a shared
 * memory ring, from which the collector takes the agent's messages
 * instead of reading them from the socket.
 *
 * Ownership: the ring belongs to its connection (struct st_conn.ring),
 * made by st__ring_open at HELLO (session.c) and given up by
 * st__ring_close at close (conn.c); its memory goes in its own close
 * callback.  input.c takes the messages (st__ring_take and friends);
 * ringpoll.c decides when to look.  The struct's fields are private to
 * ring.c and ringpoll.c.
 */
#ifndef STEPTRACE_DAEMON_RING_H
#define STEPTRACE_DAEMON_RING_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct st_conn;
struct st_ring_hdr;

/* One agent's ring.  Private to ring.c, except the fields that say when
 * to look (quiet, want_turn, idle), which are ringpoll.c's. */
struct st_ring {
    struct st_conn *conn;    /* Borrowed owner; NULL once it let go. */
    struct st_ring_hdr *hdr; /* Owned mapping of map_len bytes. */
    size_t map_len;
    const char *data; /* Borrowed: the data area. */
    uint64_t size;    /* Data bytes, a power of two. */
    uint64_t rd;      /* Stream bytes taken (ours: the header's
                         copy is only for the agent). */
    int efd;          /* Owned eventfd, -1 when none. */
    uv_poll_t wake;   /* Watches efd; wake.data = the ring. */
    int watching;
    char *buf; /* Owned: bytes taken, not yet applied, at
                  [off, len). */
    size_t off, len, cap;
    unsigned quiet; /* Polls in a row without news. */
    int want_turn;  /* Yielded with more to take. */
    int idle;       /* Not polled: the agent wakes us. */
    int frozen;     /* Stopping: nothing past stop_at is taken. */
    uint64_t stop_at;
};

/* @return 1 when the agent committed bytes not taken yet. */
int st__ring_news(const struct st_ring *rg);

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

#endif /* STEPTRACE_DAEMON_RING_H */
