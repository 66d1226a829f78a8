/*
 * One forward destination (fwddest.c): a connection to a syslog relay
 * (TCP, the name resolved with uv_getaddrinfo, or a Unix stream socket),
 * a bounded queue of framed messages in front of it, reconnection with
 * backoff (100 ms doubling to 5 s), and its counters.
 *
 * Delivery never pushes back: a message that does not fit in the queue
 * (max_bytes) is dropped and counted, and once there is room again the
 * destination gets one NOTE saying how many (made by the owner's note
 * callback).  One line goes to the collector's log per change of state
 * (cannot connect, connected, connection lost, dropping), never per
 * message.  A write batch that failed is sent again whole on the next
 * connection: delivery is at least once for what the kernel did not
 * take; plain TCP syslog has no acknowledgement, so what the relay's
 * kernel had accepted when it died is lost (docs/COLLECTOR.md section 13).
 *
 * Lower layer: calls nothing of the collector but log.c.  The owner
 * (forward.c) creates it with st__fwddest_new, feeds it, stops it at
 * SIGTERM, closes it, and frees it with st__fwddest_free once the loop
 * has run the close callbacks.  Everything runs on the loop thread.
 */
#ifndef STEPTRACE_DAEMON_FWDDEST_H
#define STEPTRACE_DAEMON_FWDDEST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "steptrace/buf.h"

#include "fwdconf.h"

struct st_fwddest;
struct fwd_block;
struct fwd_link;

/* Appends one framed NOTE message saying `dropped` messages were dropped
 * for d to out.  @return 0 or ST_ENOMEM. */
typedef int (*st_fwddest_note_cb)(struct st_fwddest *d, uint64_t dropped,
                                  struct st_buf *out);

struct st_fwddest {
    /* Public, read-only. */
    char *name;          /* Owned: the URL as given. */
    void *data;          /* The owner's. */
    uint64_t sent;       /* Messages written to a connection. */
    uint64_t dropped;    /* Messages dropped: queue full, or left
                            at exit. */
    uint64_t reconnects; /* Connections made after the first. */
    uint64_t queued;     /* Messages in the queue. */
    size_t queued_bytes; /* Their bytes. */
    int connected;       /* A connection is up. */
    /* Private. */
    uv_loop_t *loop; /* Borrowed. */
    struct st_fwd_url url;
    size_t max_bytes;
    st_fwddest_note_cb note_cb;
    struct fwd_block *head; /* Owned queue, oldest first. */
    struct fwd_block *tail;
    size_t inflight; /* Blocks at the head in the write. */
    uint64_t inflight_msgs;
    int writing; /* wreq is out. */
    uv_write_t wreq;
    uv_buf_t bufs[64];
    struct fwd_link *link; /* Owned (freed in its close callback) or
                              NULL. */
    uv_timer_t timer;      /* Reconnection backoff. */
    uv_check_t kick;       /* Writes what was queued this iteration. */
    uv_getaddrinfo_t gai;
    int resolving;       /* gai is out. */
    struct addrinfo *ai; /* Owned (uv_freeaddrinfo): being tried. */
    struct addrinfo *ai_next;
    uint64_t backoff_ms;
    int ever_connected;
    int stopping;        /* SIGTERM: close once the queue is empty. */
    int closed;          /* st__fwddest_close was called. */
    uint64_t unreported; /* Dropped since the last NOTE. */
    int dropping;        /* "dropping" was logged. */
    char logged[200];    /* The last failure logged (once per
                            change). */
    char rbuf[512];      /* What the relay sends (nothing). */
    struct st_buf note;  /* The NOTE being made. */
};

/*
 * Allocates a destination for `url` (checked: st__fwdconf_parse_url
 * succeeds on it), with a queue of at most max_bytes; nothing is done
 * until st__fwddest_start.  @return 0 and *out, or ST_ENOMEM.  Pairs with
 * st__fwddest_close, then st__fwddest_free after the loop ran.
 */
int st__fwddest_new(uv_loop_t *loop, const char *url, size_t max_bytes,
                    st_fwddest_note_cb note_cb, void *data,
                    struct st_fwddest **out);
/* Starts connecting (and keeps reconnecting). */
void st__fwddest_start(struct st_fwddest *d);
/*
 * Queues one framed message (copied).  @return 0, or 1 when it was
 * dropped (queue full, or the destination is closed), counted.
 */
int st__fwddest_push(struct st_fwddest *d, const char *frame, size_t n);
/* SIGTERM: the destination closes itself once its queue is written. */
void st__fwddest_stop(struct st_fwddest *d);
/* @return 1 when it is stopping and has nothing left to write. */
int st__fwddest_drained(const struct st_fwddest *d);
/*
 * Closes the handles now; what is still queued is counted as dropped and
 * said in the log.  Safe to call twice.
 */
void st__fwddest_close(struct st_fwddest *d);
/* Frees a closed destination whose close callbacks have run (after
 * uv_run returned). */
void st__fwddest_free(struct st_fwddest *d);

#endif /* STEPTRACE_DAEMON_FWDDEST_H */
