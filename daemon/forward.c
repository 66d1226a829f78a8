/*
 * The forward sink (see forward.h): a record's metadata gathered from the
 * connection (pid, region, frame, thread), made into one message by
 * syslog.c, copied into the queue of every destination (fwddest.c).
 *
 * Severities (RFC 5424 section 6.2.1), docs/COLLECTOR.md section 13:
 * steps and async records info, CALL / RETURN events debug, EXCEPTION
 * records error, the agent's notes (a process started, exec) notice,
 * losses and abnormal ends warning.
 */
#include "forward.h"

#include "conn.h"
#include "fwddest.h"
#include "region.h"
#include "server.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "steptrace/error.h"
#include "steptrace/idmap.h"

#define FORWARD_DRAIN_TICK_MS 10

uint64_t
st__forward_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The NOTE a destination gets after drops (fwddest.h). */
static int
forward_drop_note(struct st_fwddest *d, uint64_t dropped, struct st_buf *out)
{
    struct st_forward *fw = d->data;
    struct st_syslog_rec rec;
    char line[400];
    int n;

    n = snprintf(line, sizeof(line),
                 "[steptrace] %llu records dropped while forwarding to %s: "
                 "its queue was full (the destination was unreachable or "
                 "too slow)",
                 (unsigned long long)dropped, d->name);
    memset(&rec, 0, sizeof(rec));
    rec.kind = ST_SYSLOG_NOTE;
    rec.severity = ST_SYSLOG_WARNING;
    rec.time_us = st__forward_now_us();
    rec.text.p = line;
    rec.text.n = n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0;
    return st__syslog_frame(&fw->conf, &rec, out);
}

int
st__forward_new(uv_loop_t *loop, const struct st_fwdconf *fc,
                struct st_forward **out)
{
    struct st_forward *fw;
    size_t i;

    *out = NULL;
    if (fc->nurls == 0)
        return 0;
    fw = calloc(1, sizeof(*fw));
    if (fw == NULL)
        return ST_ENOMEM;
    st__syslog_conf_init(&fw->conf);
    fw->conf.facility = fc->facility;
    if (fc->sd_id != NULL)
        fw->conf.sd_id = fc->sd_id;
    fw->conf.cee = fc->cee;
    fw->conf.max_message = (size_t)fc->max_message;
    fw->files_off = fc->files_off;
    fw->drain_ms = fc->drain_ms;
    st_buf_init(&fw->msg);
    uv_timer_init(loop, &fw->drain);
    fw->drain.data = fw;
    fw->dests = calloc(fc->nurls, sizeof(*fw->dests));
    if (fw->dests == NULL)
        goto err;
    for (i = 0; i < fc->nurls; i++) {
        if (st__fwddest_new(loop, fc->urls[i], (size_t)fc->queue_bytes,
                            forward_drop_note, fw, &fw->dests[i]) != 0)
            goto err;
        fw->ndests++;
    }
    *out = fw;
    return 0;
err:
    /* Nothing ran yet: the handles are closed by the loop the caller
     * runs (st__forward_stop), so hand back what exists. */
    *out = fw;
    return ST_ENOMEM;
}

void
st__forward_start(struct st_forward *fw)
{
    size_t i;

    for (i = 0; i < fw->ndests; i++)
        st__fwddest_start(fw->dests[i]);
}

/* Makes rec's message once and queues it for every destination. */
static void
forward_send(struct st_forward *fw, const struct st_syslog_rec *rec)
{
    size_t i;

    fw->msg.len = 0;
    if (st__syslog_frame(&fw->conf, rec, &fw->msg) != 0) {
        st_buf_close(&fw->msg);
        return;
    }
    for (i = 0; i < fw->ndests; i++)
        (void)st__fwddest_push(fw->dests[i], fw->msg.data, fw->msg.len);
}

/* The fields every record of a region has: time, pid, run, region. */
static void
forward_region_rec(struct st_forward *fw, struct st_conn *c,
                   const struct st_region *rg, struct st_syslog_rec *rec)
{
    int n;

    memset(rec, 0, sizeof(*rec));
    rec->time_us = st__forward_now_us();
    rec->pid = (uint32_t)c->peer_pid;
    rec->region = rg->id;
    /* One traced region across hosts: host, pid, the region's start, its
     * id on the connection; made again only for another region. */
    if (fw->run_region != rg || fw->run_opened != rg->opened_us ||
        fw->run_pid != (uint32_t)c->peer_pid || fw->run_id != rg->id) {
        n = snprintf(fw->run, sizeof(fw->run), "%s:%u:%llu:%u",
                     fw->conf.hostname, (unsigned)c->peer_pid,
                     (unsigned long long)rg->opened_us, rg->id);
        fw->run_n = n > 0 && (size_t)n < sizeof(fw->run) ? (size_t)n : 0;
        fw->run_region = rg;
        fw->run_opened = rg->opened_us;
        fw->run_pid = (uint32_t)c->peer_pid;
        fw->run_id = rg->id;
    }
    rec->run.p = fw->run;
    rec->run.n = fw->run_n;
}

int
st__forward_step(struct st_conn *c, const struct st_region *rg,
                 const struct st_frame *f, const struct st_step_view *v)
{
    struct st_forward *fw = c->srv->fwd;
    const struct st_thread *t;
    const struct st_loc_view *loc = &v->locs[v->nlocs - 1];
    struct st_syslog_rec rec;
    char tid[16];

    forward_region_rec(fw, c, rg, &rec);
    rec.kind = v->event == ST_EVENT_STEP ? ST_SYSLOG_STEP : ST_SYSLOG_EVENT;
    rec.severity = v->event == ST_EVENT_STEP        ? ST_SYSLOG_INFO
                   : v->event == ST_EVENT_EXCEPTION ? ST_SYSLOG_ERR
                                                    : ST_SYSLOG_DEBUG;
    rec.file = loc->file;
    rec.func = loc->func;
    rec.line = loc->line;
    rec.step = v->step;
    rec.runtime_ns = v->runtime_ns;
    rec.has_runtime = 1;
    rec.view = v;
    /* The thread's name when it has one, else its number. */
    t = st__idmap_get(&c->threads, f->tid);
    if (t != NULL && st__session_str(c, t->name_sid) != NULL) {
        rec.thread.p = st__session_str(c, t->name_sid)->p;
        rec.thread.n = st__session_str(c, t->name_sid)->n;
    }
    else {
        rec.thread.n = (size_t)snprintf(tid, sizeof(tid), "%u", f->tid);
        rec.thread.p = tid;
    }
    forward_send(fw, &rec);
    return fw->files_off;
}

int
st__forward_async(struct st_conn *c, const struct st_region *rg,
                  const struct st_msg *m, uint64_t step)
{
    static const char *const kinds[] = {"?", "CORO", "AWAIT", "TASK"};
    struct st_forward *fw = c->srv->fwd;
    struct st_syslog_rec rec;

    forward_region_rec(fw, c, rg, &rec);
    rec.kind = ST_SYSLOG_ASYNC;
    rec.severity = ST_SYSLOG_INFO;
    rec.step = step;
    /* An async record's time is since its region began. */
    rec.runtime_ns = m->u.async.time_ns;
    rec.has_runtime = 1;
    rec.async_kind =
        kinds[m->u.async.kind <= ST_ASYNC_MAX_ ? m->u.async.kind : 0];
    rec.text = m->u.async.body;
    forward_send(fw, &rec);
    return fw->files_off;
}

int
st__forward_note(struct st_conn *c, const struct st_region *rg,
                 const char *line, int warn)
{
    struct st_forward *fw = c->srv->fwd;
    struct st_syslog_rec rec;

    forward_region_rec(fw, c, rg, &rec);
    rec.kind = ST_SYSLOG_NOTE;
    rec.severity = warn ? ST_SYSLOG_WARNING : ST_SYSLOG_NOTICE;
    rec.step = rg->steps;
    rec.text.p = line;
    rec.text.n = strlen(line);
    forward_send(fw, &rec);
    return fw->files_off;
}

size_t
st__forward_queued_bytes(const struct st_forward *fw)
{
    size_t i, n = 0;

    for (i = 0; fw != NULL && i < fw->ndests; i++)
        n += fw->dests[i]->queued_bytes;
    return n;
}

/* Per destination: "forward.<url>.<name>"; the totals first. */
#define FORWARD_PER_DEST 6
#define FORWARD_TOTALS 4

size_t
st__forward_ncounters(const struct st_forward *fw)
{
    return FORWARD_TOTALS + (fw != NULL ? fw->ndests * FORWARD_PER_DEST : 0);
}

static int
forward_pack_dest(const struct st_fwddest *d, msgpack_packer *pk)
{
    const char *names[FORWARD_PER_DEST] = {"sent",         "queued",
                                           "queued_bytes", "dropped",
                                           "reconnects",   "connected"};
    uint64_t values[FORWARD_PER_DEST];
    char name[600];
    size_t i;
    int r = 0;

    values[0] = d->sent;
    values[1] = d->queued;
    values[2] = d->queued_bytes;
    values[3] = d->dropped;
    values[4] = d->reconnects;
    values[5] = (uint64_t)d->connected;
    for (i = 0; i < FORWARD_PER_DEST; i++) {
        snprintf(name, sizeof(name), "forward.%s.%s", d->name, names[i]);
        r |= st_wire_pack_counter(pk, name, values[i]);
    }
    return r;
}

int
st__forward_pack_counters(const struct st_forward *fw, msgpack_packer *pk)
{
    uint64_t sent = 0, queued = 0, dropped = 0, reconnects = 0;
    size_t i;
    int r = 0;

    for (i = 0; fw != NULL && i < fw->ndests; i++) {
        sent += fw->dests[i]->sent;
        queued += fw->dests[i]->queued;
        dropped += fw->dests[i]->dropped;
        reconnects += fw->dests[i]->reconnects;
    }
    r |= st_wire_pack_counter(pk, "forward_sent", sent);
    r |= st_wire_pack_counter(pk, "forward_queued", queued);
    r |= st_wire_pack_counter(pk, "forward_dropped", dropped);
    r |= st_wire_pack_counter(pk, "forward_reconnects", reconnects);
    for (i = 0; fw != NULL && i < fw->ndests; i++)
        r |= forward_pack_dest(fw->dests[i], pk);
    return r;
}

/* Closes the destinations that are done (all of them past the deadline),
 * and the timer once every one is closed. */
static void
forward_drain_cb(uv_timer_t *t)
{
    struct st_forward *fw = t->data;
    int late = uv_now(t->loop) >= fw->drain_end, open = 0;
    size_t i;

    for (i = 0; i < fw->ndests; i++) {
        struct st_fwddest *d = fw->dests[i];

        if (d->closed)
            continue;
        if (late || st__fwddest_drained(d))
            st__fwddest_close(d);
        else
            open++;
    }
    if (open == 0 && !uv_is_closing((uv_handle_t *)t))
        uv_close((uv_handle_t *)t, NULL);
}

void
st__forward_stop(struct st_forward *fw)
{
    size_t i;

    if (fw == NULL || fw->stopping)
        return;
    fw->stopping = 1;
    for (i = 0; i < fw->ndests; i++)
        st__fwddest_stop(fw->dests[i]);
    fw->drain_end = uv_now(fw->drain.loop) + fw->drain_ms;
    uv_timer_start(&fw->drain, forward_drain_cb, FORWARD_DRAIN_TICK_MS,
                   FORWARD_DRAIN_TICK_MS);
    forward_drain_cb(&fw->drain);
}

void
st__forward_free(struct st_forward *fw)
{
    size_t i;

    if (fw == NULL)
        return;
    for (i = 0; i < fw->ndests; i++)
        st__fwddest_free(fw->dests[i]);
    free(fw->dests);
    st_buf_close(&fw->msg);
    free(fw);
}
