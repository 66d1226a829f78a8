/*
 * The service around the connections (server.c): the listening socket,
 * readiness notification, signals, the flush, idle and measure timers,
 * and the orderly stop that leaves uv_loop_close() with nothing to
 * complain about.
 *
 * Ownership: main.c fills a struct st_options and calls st__server_run,
 * which keeps the struct st_server (and the loop) on its stack for the
 * life of the service.  The server owns the list of connections (each
 * freed in its close callback), the sinks' env (with the sinks left
 * without a connection), the counters and the scratch memory every record
 * borrows (one loop thread, so one set suffices).
 */
#ifndef STEPTRACE_DAEMON_SERVER_H
#define STEPTRACE_DAEMON_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "steptrace/buf.h"
#include "steptrace/record.h"

#include "pressure.h"
#include "settings.h"
#include "sink.h"
#include "stats.h"

struct st_conn;
struct st_forward;

/* Scratch memory reused by every STEP (one loop thread). */
struct st_scratch {
    struct st_var_view *gviews; /* Owned arrays. */
    size_t gcap;
    struct st_var_view *lviews;
    size_t lcap;
    struct st_loc_view *locs;
    size_t loccap;
    char **dead; /* Owned values freed after rendering. */
    size_t ndead;
    size_t deadcap;
    struct st_buf esc;   /* Escaped value being stored. */
    struct st_buf reply; /* Reply being encoded. */
};

struct st_options {
    const char *socket_path; /* Borrowed (argv / environment / owned). */
    const char *pid_file;    /* Borrowed, or NULL. */
    const char *config_path; /* Borrowed, or NULL. */
    int ready_fd;            /* -1: none. */
    uint64_t idle_exit_ms;   /* 0: never. */
    int private_dir;
    int verbose;
    int daemon;  /* --daemon: detach once listening. */
    int lock_fd; /* Owned: flock on "<socket>.lock". */
    char lock_path[4200];
    struct st_settings set; /* Owned: the --config values. */
    const char **forward;   /* Owned array of borrowed (argv) --forward
                               URLs. */
    size_t nforward;
};

struct st_server {
    uv_loop_t *loop; /* Borrowed. */
    uv_pipe_t listener;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_signal_t sig_hup;
    uv_timer_t idle_timer;
    uv_timer_t flush_timer;
    uv_timer_t ring_timer; /* Polls the active rings (ring.c). */
    uv_idle_t ring_idle;   /* Gives rings their next turn. */
    uv_timer_t stop_timer; /* Bounds the drain at SIGTERM. */
    uv_idle_t resume_idle; /* Resumes blocked connections. */
    uv_check_t tail_check; /* Sends gathered TEXT each iteration. */
    uv_pipe_t reject;      /* Accepts a peer we cannot serve. */
    int reject_busy;
    const struct st_options *opt; /* Borrowed. */
    dev_t sock_dev;               /* Identity of the socket we bound, so */
    ino_t sock_ino;               /* that we only ever unlink our own. */
    struct st_conn *conns;        /* Owned list (freed in close callbacks). */
    struct st_sink_env sinks;     /* Every sink's: the chunk pool and the
                                     sinks draining without a connection
                                     (sink.c). */
    size_t nclients;
    size_t ntails;      /* Tail subscribers. */
    int handles_closed; /* Stopping: the loop's own handles are
                           closed (no more scheduling). */
    int stopping;
    uint64_t start_ms;           /* uv_now at start, for uptime. */
    struct st_pressure pressure; /* The pending bytes and their bound,
                                    and the connections open. */
    uv_timer_t measure_timer;    /* Measures the resident size every
                                    ST_MEASURE_MS (pressure.c). */
    struct st_stats stats;
    struct st_scratch scratch;
    struct st_forward *fwd; /* Owned or NULL: forwarding (forward.c). */
};

/*
 * Binds, listens, announces readiness and runs the loop until a signal or
 * --idle-exit stops it.  The socket path has already been checked.
 * @return the process exit status.
 */
int st__server_run(const struct st_options *opt);
/*
 * The parts of st__server_run around the socket, which the fuzz harnesses
 * of tests/fuzz/ also use to drive connections of their own through the
 * real server:
 *   st__server_init sets *srv up on `loop` for `opt` (both borrowed for
 *   the server's life): handles (not started), the sinks' env, the
 *   forward destinations.  Nothing listens yet: st__server_run binds
 *   srv->listener; a harness opens it on a socket it made.
 *   st__server_stop begins the orderly stop SIGTERM begins (idempotent):
 *   the listener and the handles close, every connection drains; uv_run
 *   then returns once the last write job is done.
 *   st__server_free, after uv_loop_close, frees what the server still
 *   holds (the chunk pool, the scratch memory, forwarding).
 */
void st__server_init(struct st_server *srv, uv_loop_t *loop,
                     const struct st_options *opt);
void st__server_stop(struct st_server *srv, const char *why);
void st__server_free(struct st_server *srv);
/* A connection is gone (from its close callback). */
void st__server_conn_closed(struct st_server *srv, struct st_conn *c);
/* A counted client is gone (closed, or became a tail subscriber): the
 * --idle-exit countdown starts when it was the last. */
void st__server_client_gone(struct st_server *srv);
/* Is this uid allowed to connect (our own, or in allow_uids)? */
int st__server_uid_allowed(const struct st_server *srv, uid_t uid);

#endif /* STEPTRACE_DAEMON_SERVER_H */
