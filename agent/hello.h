/*
 * The HELLO exchange that opens a collector connection (hello.c,
 * PROTOCOL.md "The ring"): the agent says who it is and how big a ring it
 * wants; the collector answers with the ring (a memfd) and its eventfd.
 * Blocking, before the connection's watcher thread starts.
 *
 * Caller: sender.c (st__sender_dial).
 */
#ifndef STEPTRACE_AGENT_HELLO_H
#define STEPTRACE_AGENT_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* The ring a collector gave: both descriptors are the caller's to close
 * (or to hand on: outbox.c keeps efd). */
struct st_hello_ring {
    int memfd;        /* Owned: the ring (header, then data). */
    uint64_t size;    /* Its data size. */
    int efd;          /* Owned: the collector's eventfd. */
    uint32_t formats; /* The collector's default log formats (ST_FORMAT_*;
                         0: none said). */
};

/*
 * Sends HELLO (pid, `program`, `ring_bytes` wanted) on the connected
 * socket fd and waits for the reply (5 s at most).  `path` names the
 * socket in error texts.  On success *ring holds the ring; on failure
 * nothing is left open and err says why.
 * @return 0, or a negative errno / ST_E* code.
 */
int st__hello_exchange(int fd, const char *program, uint64_t ring_bytes,
                       const char *path, struct st_hello_ring *ring, char *err,
                       size_t errlen);

#endif /* STEPTRACE_AGENT_HELLO_H */
