/*
 * The forward sink (forward.c): every record a log file would get (step,
 * event, async record, "[steptrace] ..." line) also goes, as one RFC 5424
 * message (syslog.c), to each destination of `forward:` / --forward
 * (fwddest.c), in addition to the files or, with `log_file: false`,
 * instead of them.  docs/COLLECTOR.md section 13.
 *
 * The server owns the struct st_forward (srv->fwd, NULL when nothing is
 * forwarded: the record path then tests one pointer and goes on).  step.c
 * and region.c call st__forward_step, _async and _note once per record;
 * control.c packs the counters; server.c starts it, stops it (the drain
 * at SIGTERM, bounded by forward_drain_ms) and frees it after the loop.
 * Nothing here ever makes a connection wait: a destination that cannot
 * keep up loses records, counted.  Loop thread only.
 */
#ifndef STEPTRACE_DAEMON_FORWARD_H
#define STEPTRACE_DAEMON_FORWARD_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "steptrace/buf.h"
#include "steptrace/record.h"
#include "steptrace/wire.h"

#include "fwdconf.h"
#include "syslog.h"

struct st_conn;
struct st_frame;
struct st_fwddest;
struct st_region;

struct st_forward {
    struct st_syslog_conf conf;
    struct st_fwddest **dests; /* Owned array of owned destinations. */
    size_t ndests;
    int files_off;      /* log_file: false. */
    uint64_t drain_ms;  /* forward_drain_ms. */
    uv_timer_t drain;   /* Stopping: looks at the queues every 10 ms. */
    uint64_t drain_end; /* uv_now when the drain gives up. */
    int stopping;
    struct st_buf msg; /* The message being made. */
    char run[320];     /* The run id of the last record's region ... */
    size_t run_n;
    const struct st_region *run_region; /* ... which it was made for: */
    uint64_t run_opened;                /* a region at this address, */
    uint32_t run_pid;                   /* its start, pid and id. */
    uint32_t run_id;
};

/*
 * Makes the forwarder for fc (NULL in *out when fc names no
 * destination), connecting nothing yet.  @return 0 or ST_ENOMEM.  Pairs
 * with st__forward_free, after the loop ran.
 */
int st__forward_new(uv_loop_t *loop, const struct st_fwdconf *fc,
                    struct st_forward **out);
/* The wall clock in µs since the epoch (a region's start, for its run
 * id). */
uint64_t st__forward_now_us(void);
/* Starts connecting to every destination. */
void st__forward_start(struct st_forward *fw);
/*
 * One record of region rg, shown by frame f as view v (built by step.c's
 * step_write), forwarded to every destination; c->srv->fwd must be set.
 * @return 1 when the files are off (the caller writes nothing more), else
 * 0.
 */
int st__forward_step(struct st_conn *c, const struct st_region *rg,
                     const struct st_frame *f, const struct st_step_view *v);
/* The same for an ASYNC message m, numbered `step` ("Async Step N"). */
int st__forward_async(struct st_conn *c, const struct st_region *rg,
                      const struct st_msg *m, uint64_t step);
/* The same for a "[steptrace] ..." line of rg's file; warn: a loss or an
 * abnormal end (severity warning), else notice. */
int st__forward_note(struct st_conn *c, const struct st_region *rg,
                     const char *line, int warn);
/* Bytes queued for every destination (the memory measure leaves them out:
 * forwarding never pushes back on the connections). */
size_t st__forward_queued_bytes(const struct st_forward *fw);
/* Counters for STATUS: how many, then packed (fw may be NULL: totals of
 * 0).  @return 0 or -1 (msgpack). */
size_t st__forward_ncounters(const struct st_forward *fw);
int st__forward_pack_counters(const struct st_forward *fw, msgpack_packer *pk);
/* SIGTERM, once every connection is gone: write the queues for up to
 * forward_drain_ms, then close every destination (what is left is
 * counted and logged). */
void st__forward_stop(struct st_forward *fw);
/* Frees everything (after uv_run returned).  NULL is fine. */
void st__forward_free(struct st_forward *fw);

#endif /* STEPTRACE_DAEMON_FORWARD_H */
