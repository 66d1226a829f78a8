/*
 * What sender.c and sender_wait.c share (and nothing else includes): the
 * connection's state.  sender.c owns it (socket, thread, replies, fork);
 * sender_wait.c waits on its condition variable for ACKs and room.
 *
 * Locking: `mu` guards the fields below the marker.  The others are the
 * GIL holder's (the thread is started and joined with the GIL held).
 */
#ifndef STEPTRACE_AGENT_SENDER_INT_H
#define STEPTRACE_AGENT_SENDER_INT_H

#include "steptrace/wire.h"

#include "sender.h"

#include <pthread.h>
#include <sys/un.h>

/* Frames committed and not yet acknowledged: (token, cumulative records). */
#define INFLIGHT_MAX 4096
/* Files remembered (one per Tracer that wrote on this connection). */
#define SENDER_FILES 16

struct st_sender_state {
    int fd;  /* Owned socket, -1 when none. */
    int ctl; /* Owned eventfd waking the thread (stop). */
    pthread_t thread;
    int running; /* The thread was started and not joined. */
    /* The thread's reading state, kept here so that the thread can be
     * stopped around a fork and started again where it was. */
    struct st_buf in; /* Bytes read from the collector. */
    struct st_wire_decoder dec;
    int dec_ready;
    uint32_t fork_gen; /* gen right after the last fork, in a child. */
    uint64_t lost;     /* Records lost: connections gone, drops. */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    /* ---- guarded by mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    int suspend;   /* Exit the thread, keep the connection (fork). */
    int suspended; /* Stopped by st__sender_before_fork(). */
    struct st_ring_hdr *ring; /* Borrowed from outbox.c while in use. */
    uint64_t acked;
    uint64_t ack_errors;
    uint64_t confirmed; /* Records the collector confirmed written. */
    struct {
        uint64_t token, cum;
    } inflight[INFLIGHT_MAX];
    size_t inflight_head, inflight_n;
    char ack_msg[512];
    char fail_msg[256];
    /* The files the collector opened for this connection's tracers (FILE
     * messages), most recent first; a reconnection forgets them. */
    struct {
        uint32_t tracer_id;
        char *path;
    } files[SENDER_FILES];
    size_t nfiles;
};

/* The one connection (defined in sender.c). */
extern struct st_sender_state st__sender_s;

/* Marks the connection failed, with why.  Call with mu held. */
void st__sender_fail_locked(const char *why);

/* Says on fd 2 that the connection is lost (once per process). */
void st__sender_warn_once(const char *why);

#endif /* STEPTRACE_AGENT_SENDER_INT_H */
