/*
 * The collector as fuzz_session and fuzz_control drive it (fuzz-daemon.c):
 * a real server (daemon/server.c's st__server_init, its listener opened on
 * a socket made here, connections accepted by st__conn_accept as the
 * listener's callback in server.c does) on a loop of its own per input,
 * and clients that are plain sockets on this side: what they send is read
 * by libuv in the pieces the kernel hands out, as from an agent; what the
 * collector answers is read back and must be whole, valid frames.  An
 * agent whose HELLO asked for a ring gets one: the rest of its bytes go
 * into the ring's memory as an agent's outbox writes them.
 *
 * Files: every path the collector's writer uses (daemon/writer.c: mkdir,
 * open, rename, unlink) is wrapped at link time (-Wl,--wrap) to stay under
 * a scratch directory made at the first input and emptied after each, so
 * that a REGION's log_dir, which a client chooses, never leaves it.
 *
 * Per input: fuzz_daemon_start, clients connected, fed and ended, then
 * fuzz_daemon_finish, which stops the server the way SIGTERM does, runs
 * the loop until it ends, checks that uv_loop_close() is 0 and frees
 * everything (a leak is LeakSanitizer's finding).
 */
#ifndef STEPTRACE_TESTS_FUZZ_FUZZ_DAEMON_H
#define STEPTRACE_TESTS_FUZZ_FUZZ_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "steptrace/buf.h"
#include "steptrace/ring.h"

#include "server.h"

struct fuzz_client {
    int fd;                  /* Our end of the connection, or -1. */
    int started;             /* fuzz_daemon_send was called. */
    int closed;              /* The collector closed it (or we did). */
    struct st_buf in;        /* Owned: reply bytes not yet whole. */
    uint64_t replies;        /* Frames read back. */
    uint32_t ring_size;      /* Data bytes of the ring, 0: none. */
    struct st_ring_hdr *hdr; /* Owned mapping of the ring, or NULL. */
    char *ring_data;         /* hdr + ST_RING_HEADER. */
    int wake_fd;             /* The ring's eventfd, or -1. */
    int fds[2];              /* Descriptors received, not yet used. */
    int nfds;
};

struct fuzz_daemon {
    uv_loop_t loop;
    struct st_server srv;
    struct st_options opt;
    char sock_name[64]; /* The listener's abstract address. */
};

/* Sets up the server; formats: the collector's log_format (0: text);
 * max_pending: its max_pending_bytes (0: the default). */
void fuzz_daemon_start(struct fuzz_daemon *d, uint32_t formats,
                       uint64_t max_pending);
/* What SIGHUP does to the sinks (server.c server_signal_cb): every file
 * is reopened before its next write. */
void fuzz_daemon_hup(struct fuzz_daemon *d);
/* Connects a client, accepted by the server.  @return 0 or -1. */
int fuzz_daemon_connect(struct fuzz_daemon *d, struct fuzz_client *cl);
/*
 * Sends `n` bytes as a client, `chunk` bytes at a time: the first frame
 * alone, then the rest on the socket, or into the ring once the HELLO
 * reply brought one (a later call writes into the ring at once).  Stops
 * early when the collector closed the connection.
 */
void fuzz_daemon_send(struct fuzz_daemon *d, struct fuzz_client *cl,
                      const uint8_t *p, size_t n, size_t chunk);
/* Ends a client: how the process ended in its ring's header (end_kind,
 * end_signal), then the socket closed. */
void fuzz_daemon_end(struct fuzz_daemon *d, struct fuzz_client *cl,
                     uint32_t end_kind, uint32_t end_signal);
/* Stops the server, runs its loop to the end, checks it and frees it;
 * removes the files written. */
void fuzz_daemon_finish(struct fuzz_daemon *d);

#endif /* STEPTRACE_TESTS_FUZZ_FUZZ_DAEMON_H */
