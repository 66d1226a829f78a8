/*
 * Control clients (PROTOCOL.md "Control connections"): STATUS answered
 * with the counters, and TAIL subscribers that get every record as it is
 * written, as TEXT messages.
 *
 * A subscriber never slows the collector down: its records are gathered
 * into one TEXT frame per loop iteration (or per 64 KiB), and when more
 * than ST_TAIL_MAX_QUEUED bytes wait for it, records are skipped and
 * counted; it is told how many once it has room again.
 */
#include "control.h"

#include "conn.h"
#include "forward.h"
#include "pressure.h"
#include "server.h"
#include "stats.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steptrace/error.h"

/* Bytes of TEXT a slow tail subscriber may have queued before records
 * are skipped for it. */
#define ST_TAIL_MAX_QUEUED (4u * 1024 * 1024)

/* A TEXT frame on its way: owns the bytes. */
struct control_write {
    uv_write_t req;
    char *data;
    size_t len;
};

/* Gathered TEXT bytes are sent once a frame holds this much. */
#define CONTROL_SEND_BYTES (64u * 1024)

/* Sends what the subscribers have gathered (once per loop iteration). */
static void control_flush(struct st_server *srv);

int
st__control_status(struct st_conn *c, const struct st_msg *m)
{
    struct st_server *srv = c->srv;
    struct st_buf *b = &srv->scratch.reply;
    const struct st_stats *st = &srv->stats;
    const struct st_conn *o;
    msgpack_packer pk;
    uint64_t paused = 0, active = 0;
    int r = 0;

    for (o = srv->conns; o != NULL; o = o->next) {
        if (o->state != ST_CONN_OPEN)
            continue;
        active++;
        if (o->blocked & (ST_BLOCK_PRESSURE | ST_BLOCK_MEMORY))
            paused++;
    }
    b->len = 0;
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    /* The X-macro list, then the values that are not counters. */
#define XX(name, doc) +1
    r |= st_wire_pack_stats_begin(&pk, m->u.status.token,
                                  0 ST_STATS_MAP(XX) + 10 +
                                      st__forward_ncounters(srv->fwd));
#undef XX
#define XX(name, doc) r |= st_wire_pack_counter(&pk, #name, st->name);
    ST_STATS_MAP(XX)
#undef XX
    r |= st_wire_pack_counter(&pk, "pid", (uint64_t)getpid());
    r |= st_wire_pack_counter(&pk, "uptime_ms",
                              uv_now(srv->loop) - srv->start_ms);
    r |= st_wire_pack_counter(&pk, "connections_open", active);
    r |= st_wire_pack_counter(&pk, "clients", srv->nclients);
    r |= st_wire_pack_counter(&pk, "tail_subscribers", srv->ntails);
    r |= st_wire_pack_counter(&pk, "paused", paused);
    r |= st_wire_pack_counter(&pk, "pending_bytes", srv->pressure.pending);
    r |= st_wire_pack_counter(&pk, "max_pending_bytes",
                              srv->pressure.max_pending);
    r |= st_wire_pack_counter(&pk, "pause_threshold_bytes",
                              st__pressure_threshold(&srv->pressure));
    r |= st_wire_pack_counter(&pk, "records_filtered",
                              st->records_in > st->records_rendered
                                  ? st->records_in - st->records_rendered
                                  : 0);
    r |= st__forward_pack_counters(srv->fwd, &pk);
    if (r != 0 || b->oom) {
        st_buf_close(b);
        return ST_ENOMEM;
    }
    st__conn_send(c, b->data, b->len);
    return 0;
}

static void
control_check_cb(uv_check_t *h)
{
    control_flush(h->data);
}

int
st__control_tail(struct st_conn *c, const struct st_msg *m)
{
    struct st_server *srv = c->srv;
    const struct st_str *g = &m->u.tail.glob;

    if (g->n > 4096 || (g->n > 0 && memchr(g->p, '\0', g->n) != NULL)) {
        st__conn_detail(c, "TAIL file pattern is not a usable pattern");
        return ST_EBADTYPE;
    }
    if (g->n > 0) {
        c->tail_glob = malloc(g->n + 1);
        if (c->tail_glob == NULL)
            return ST_ENOMEM;
        memcpy(c->tail_glob, g->p, g->n);
        c->tail_glob[g->n] = '\0';
    }
    c->tail_pid = m->u.tail.pid;
    c->kind = ST_CONN_TAIL;
    /* A watcher does not keep a private collector alive. */
    if (c->counted) {
        c->counted = 0;
        st__server_client_gone(srv);
    }
    if (srv->ntails++ == 0)
        uv_check_start(&srv->tail_check, control_check_cb);
    return 0;
}

static void
control_write_cb(uv_write_t *req, int status)
{
    struct control_write *w = (struct control_write *)req;
    struct st_conn *c = req->handle->data;

    c->tail_queued -= w->len;
    free(w->data);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        st__conn_close(c, 1);
}

/* Sends the gathered frame, handing its bytes to the write request. */
static void
control_send(struct st_conn *c)
{
    struct control_write *w;
    uv_buf_t buf;

    if (c->state != ST_CONN_OPEN || c->tail_out.len <= ST_WIRE_HEADER_SIZE)
        return;
    if (c->tail_out.oom) {
        st_buf_close(&c->tail_out);
        return;
    }
    w = malloc(sizeof(*w));
    if (w == NULL)
        return;
    st_wire_put_header((unsigned char *)c->tail_out.data,
                       (uint32_t)(c->tail_out.len - ST_WIRE_HEADER_SIZE));
    w->data = c->tail_out.data;
    w->len = c->tail_out.len;
    st_buf_init(&c->tail_out);
    c->tail_queued += w->len;
    buf = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1,
                 control_write_cb) != 0) {
        c->tail_queued -= w->len;
        free(w->data);
        free(w);
        st__conn_close(c, 1);
    }
}

/* Appends one TEXT message to the subscriber's frame. */
static void
control_append(struct st_conn *c, uint64_t pid, const char *path,
               size_t path_len, const char *text, size_t n)
{
    msgpack_packer pk;

    if (c->tail_out.len == 0)
        st_buf_append(&c->tail_out, "\0\0\0\0", ST_WIRE_HEADER_SIZE);
    msgpack_packer_init(&pk, &c->tail_out, st_buf_msgpack_write);
    st_wire_pack_text(&pk, pid, path, path_len, text, n);
    if (c->tail_out.len >= CONTROL_SEND_BYTES)
        control_send(c);
}

/* Tells the subscriber about skipped records once it has room again. */
static void
control_report_skipped(struct st_conn *c)
{
    char line[128];
    int n;

    if (c->tail_skipped == 0)
        return;
    n = snprintf(line, sizeof(line),
                 "%llu records skipped: this tail reads too slowly\n",
                 (unsigned long long)c->tail_skipped);
    c->tail_skipped = 0;
    control_append(c, 0, "", 0, line, (size_t)n);
}

static int
control_matches(const struct st_conn *c, pid_t pid, const char *path)
{
    if (c->tail_pid != 0 && c->tail_pid != (uint64_t)pid)
        return 0;
    if (c->tail_glob == NULL)
        return 1;
    return path != NULL && fnmatch(c->tail_glob, path, 0) == 0;
}

void
st__control_publish(struct st_server *srv, pid_t pid, const char *path,
                    const char *text, size_t n)
{
    struct st_conn *c;

    if (srv->ntails == 0 || n == 0)
        return;
    for (c = srv->conns; c != NULL; c = c->next) {
        size_t path_len;

        if (c->kind != ST_CONN_TAIL || c->state != ST_CONN_OPEN ||
            !control_matches(c, pid, path))
            continue;
        path_len = path != NULL ? strlen(path) : 0;
        if (c->tail_queued + c->tail_out.len + n + path_len >
                ST_TAIL_MAX_QUEUED ||
            n + path_len + 64 > ST_WIRE_MAX_FRAME) {
            c->tail_skipped++;
            srv->stats.dropped_tail++;
            continue;
        }
        control_report_skipped(c);
        control_append(c, (uint64_t)pid, path != NULL ? path : "", path_len,
                       text, n);
    }
}

static void
control_flush(struct st_server *srv)
{
    struct st_conn *c;

    for (c = srv->conns; c != NULL; c = c->next) {
        if (c->kind != ST_CONN_TAIL || c->state != ST_CONN_OPEN)
            continue;
        if (c->tail_skipped > 0 &&
            c->tail_queued + c->tail_out.len < ST_TAIL_MAX_QUEUED / 2)
            control_report_skipped(c);
        control_send(c);
    }
}

void
st__control_forget(struct st_conn *c)
{
    struct st_server *srv = c->srv;

    if (c->kind != ST_CONN_TAIL)
        return;
    c->kind = ST_CONN_AGENT;
    if (--srv->ntails == 0 && !uv_is_closing((uv_handle_t *)&srv->tail_check))
        uv_check_stop(&srv->tail_check);
}
