/*
 * Regions (PROTOCOL.md "Semantics"): REGION opens one, and for a new
 * tracer its sink (the directory of the tracer's first region is its
 * directory for good); REGION_END, LOST and NOTE; and, when the process
 * is gone with regions still open, the line that says how it ended.  The
 * connection owns its regions (c->regions) and sinks (c->sinks); the
 * sink owner callbacks here are how a sink reaches its connection:
 * errors for the next ACK, the FILE message, the ACKs a job lets go.
 */
#include "region.h"

#include "ack.h"
#include "conn.h"
#include "forward.h"
#include "server.h"
#include "session.h"
#include "sink.h"
#include "stats.h"
#include "store.h"
#include "steptrace/idmap.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"
#include "steptrace/ring.h"

/* ---- the sinks' owner: a connection (sink.h) ---- */

/* A file error: counted for the next ACK, which carries the latest. */
static void
region_sink_error(struct st_sink *s, const char *msg)
{
    struct st_conn *c = s->data;

    if (c->errors < UINT64_MAX)
        c->errors++;
    snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
}

/* Tells the agent the file its tracer's records go to (a FILE message). */
static void
region_sink_claimed(struct st_sink *s, const char *path)
{
    struct st_conn *c = s->data;
    struct st_buf *b = &c->srv->scratch.reply;
    msgpack_packer pk;

    /* Control clients and peers gone have nobody to tell. */
    if (c->peer_gone || c->kind != ST_CONN_AGENT)
        return;
    b->len = 0;
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    if (st_wire_pack_file(&pk, s->tracer_id, path, strlen(path)) != 0) {
        st_buf_close(b);
        return; /* The agent then names no file; nothing else is lost. */
    }
    (void)st__conn_send(c, b->data, b->len);
}

/* A job finished: the ACKs it was waiting for may go out. */
static void
region_sink_done(struct st_sink *s)
{
    st__ack_sink_done(s->data);
}

static const struct st_sink_owner region_sink_owner = {
    .on_error = region_sink_error,
    .on_claimed = region_sink_claimed,
    .on_done = region_sink_done,
};

const struct st_sink_owner st__region_store_owner = {
    .on_error = region_sink_error,
    .on_claimed = region_sink_claimed,
    .on_done = region_sink_done,
    .on_segment = st__store_segment,
};

/* ---- REGION, REGION_END, NOTE, LOST ---- */

/* A "[steptrace] ..." line of rg's file, also forwarded (forward.c; warn:
 * a loss or an abnormal end).  With log_file: false only forwarded. */
/* Does rg show its lines anywhere: a text file, or forwarding?  (A
 * tracer with a step store only has its lines rendered by the reader.) */
static int
region_shown(const struct st_conn *c, const struct st_region *rg)
{
    return rg->sink != NULL || c->srv->fwd != NULL;
}

static void
region_note_line(struct st_conn *c, struct st_region *rg, const char *line,
                 int warn)
{
    if (c->srv->fwd != NULL && st__forward_note(c, rg, line, warn) != 0)
        return;
    if (rg->sink != NULL)
        st__sink_note(rg->sink, line);
}

static int
region_check(struct st_conn *c, const struct st_msg *m)
{
    const struct st_str *dir = &m->u.region.log_dir;
    uint32_t level = m->u.region.level;
    uint32_t mode = m->u.region.var_mode;

    if (m->u.region.tracer_id >= 0x80000000u) {
        st__conn_detail(c, "REGION tracer_id %u", m->u.region.tracer_id);
        return ST_EBADTYPE;
    }
    if (st__idmap_get(&c->regions, m->u.region.region_id) != NULL) {
        st__conn_detail(c, "REGION %u opened twice", m->u.region.region_id);
        return ST_ESTATE;
    }
    if (level != ST_LEVEL_DEBUG && level != ST_LEVEL_INFO &&
        level != ST_LEVEL_WARNING && level != ST_LEVEL_ERROR &&
        level != ST_LEVEL_SILENT) {
        st__conn_detail(c, "REGION level %u", level);
        return ST_EBADTYPE;
    }
    if (mode != ST_VARMODE_ALL && mode != ST_VARMODE_CHANGED &&
        mode != ST_VARMODE_NONE) {
        st__conn_detail(c, "REGION var_mode %u", mode);
        return ST_EBADTYPE;
    }
    if (m->u.region.formats == 0 ||
        (m->u.region.formats & ~ST_FORMAT_MASK_) != 0) {
        st__conn_detail(c, "REGION formats %u", m->u.region.formats);
        return ST_EBADTYPE;
    }
    /* Room is left for "/tracer_N.log.NNNN" so that no file name built
     * from the directory is ever truncated. */
    if (dir->n == 0 || dir->p[0] != '/' || dir->n > PATH_MAX - 64 ||
        memchr(dir->p, '\0', dir->n) != NULL) {
        st__conn_detail(c, "REGION log_dir is not a usable absolute path");
        return ST_EBADTYPE;
    }
    return 0;
}

/* The step store of the region's tracer, made at its first region that
 * asks for one.  @return 0 and *out (NULL: none), or ST_ENOMEM. */
static int
region_store(struct st_conn *c, const struct st_msg *m, int first,
             struct st_sink *text, struct st_sink **out)
{
    struct st_store *st = st__idmap_get(&c->stores, m->u.region.tracer_id);

    *out = NULL;
    if (st != NULL) {
        *out = st->sink;
        return 0;
    }
    if (!first || !(m->u.region.formats & ST_FORMAT_STEPS))
        return 0;
    return st__store_new(c, m->u.region.tracer_id, text, m->u.region.log_dir.p,
                         m->u.region.log_dir.n, out);
}

int
st__region_open(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg;
    struct st_sink *sink, *store;
    int first, r;

    r = region_check(c, m);
    if (r != 0)
        return r;
    sink = st__idmap_get(&c->sinks, m->u.region.tracer_id);
    /* The formats of a tracer's first region are its files for good. */
    first = sink == NULL &&
            st__idmap_get(&c->stores, m->u.region.tracer_id) == NULL;
    if (first && (m->u.region.formats & ST_FORMAT_TEXT)) {
        /* The first region of a tracer names its directory for good:
         * later regions append to the same file (docs/LOG-FORMAT.md
         * section 11). */
        r = st__sink_new(&c->srv->sinks, &region_sink_owner, c, c->epoch,
                         m->u.region.tracer_id, m->u.region.log_dir.p,
                         m->u.region.log_dir.n, &sink);
        if (r != 0)
            return r;
        sink->pid = c->peer_pid;
        r = st__idmap_put(&c->sinks, m->u.region.tracer_id, sink);
        if (r != 0) {
            st__sink_free(sink);
            return r;
        }
    }
    r = region_store(c, m, first, sink, &store);
    if (r != 0)
        return r;
    if (sink != NULL)
        st__sink_configure(sink, m->u.region.max_log_bytes,
                           m->u.region.max_log_files);
    if (store != NULL)
        st__sink_configure(store, m->u.region.max_log_bytes,
                           m->u.region.max_log_files);
    rg = calloc(1, sizeof(*rg));
    if (rg == NULL)
        return ST_ENOMEM;
    rg->id = m->u.region.region_id;
    rg->tracer_id = m->u.region.tracer_id;
    rg->level = m->u.region.level;
    rg->var_mode = m->u.region.var_mode;
    rg->formats = m->u.region.formats;
    rg->sink = sink;
    rg->store = store;
    rg->opened_us = st__forward_now_us();
    r = st__idmap_put(&c->regions, rg->id, rg);
    if (r != 0) {
        free(rg);
        return r;
    }
    st__store_put(c, store);
    return 0;
}

int
st__region_end(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg;

    rg = st__idmap_del(&c->regions, m->u.region_end.region_id);
    if (rg == NULL) {
        st__conn_detail(c, "REGION_END for region %u",
                        m->u.region_end.region_id);
        return ST_ESTATE;
    }
    if (rg->store != NULL) {
        st__store_put(c, rg->store);
        st__sink_flush(rg->store);
    }
    if (!region_shown(c, rg)) {
        free(rg);
        return 0;
    }
    if (rg->lost > 0) {
        struct st_buf *b = &c->srv->scratch.reply;

        b->len = 0;
        if (st_record_lost_line(b, rg->lost) == 0)
            region_note_line(c, rg, b->data, 1);
        else
            st_buf_close(b); /* Its oom flag is sticky. */
        b->len = 0;
    }
    if (rg->sink != NULL)
        st__sink_flush(rg->sink);
    free(rg);
    return 0;
}

/* A line of the agent's in the region's log, in order with its records:
 * the process it started, or the one that started it
 * (docs/LOG-FORMAT.md section 10.3). */
int
st__region_note(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg = st__idmap_get(&c->regions, m->u.note.region_id);
    struct st_buf *b = &c->srv->scratch.reply;
    const char *t;
    size_t tn;

    if (rg == NULL) {
        st__conn_detail(c, "NOTE for region %u", m->u.note.region_id);
        return ST_ESTATE;
    }
    st__store_put(c, rg->store);
    if (!region_shown(c, rg))
        return 0;
    if (st__session_escape(&c->srv->scratch, m->u.note.text.p,
                           m->u.note.text.n, &t, &tn) != 0)
        return ST_ENOMEM;
    b->len = 0;
    if (st_record_note_line(b, m->u.note.kind == ST_NOTE_AT_STEP, rg->steps, t,
                            tn) != 0) {
        st_buf_close(b);
        return ST_ENOMEM;
    }
    region_note_line(c, rg, b->data, 0);
    b->len = 0;
    return 0;
}

int
st__region_lost(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg = st__idmap_get(&c->regions, m->u.lost.region_id);

    if (rg == NULL) {
        st__conn_detail(c, "LOST for region %u", m->u.lost.region_id);
        return ST_ESTATE;
    }
    st__store_put(c, rg->store);
    c->srv->stats.lost_agent += m->u.lost.count;
    rg->lost = m->u.lost.count > UINT64_MAX - rg->lost
                   ? UINT64_MAX
                   : rg->lost + m->u.lost.count;
    return 0;
}

/* ---- the end of the process ---- */

void
st__region_process_ended(struct st_conn *c, int kind, int sig,
                         const char *detail, size_t partial)
{
    struct st_stats *st = &c->srv->stats;
    struct st_buf *b = &c->srv->scratch.reply;
    struct st_region *rg;
    const char *d;
    size_t it = 0, dn;

    if (kind == ST_RING_END_EXIT)
        return;
    if (partial > 0)
        st->lost_vanished++;
    if (c->regions.live == 0)
        return;
    st__store_ended(c, kind, sig, detail, strlen(detail), partial);
    if (kind == ST_RING_END_SIGNAL)
        st->ended_by_signal++;
    else if (kind == ST_RING_END_EXEC)
        st->ended_by_exec++;
    else
        st->vanished++;
    if (st__session_escape(&c->srv->scratch, detail, strlen(detail), &d,
                           &dn) != 0) {
        d = "?";
        dn = 1;
    }
    while ((rg = st__idmap_next(&c->regions, &it)) != NULL) {
        /* A region with nothing written has no file to end. */
        if (!region_shown(c, rg) ||
            (rg->steps == 0 && rg->async_steps == 0 && partial == 0))
            continue;
        if (partial > 0)
            region_note_line(c, rg, st_record_cut_line, 1);
        b->len = 0;
        if (st_record_ended_line(b, kind, sig, d, dn, rg->steps) == 0)
            region_note_line(c, rg, b->data, kind != ST_RING_END_EXEC);
        else
            st_buf_close(b); /* Its oom flag is sticky. */
        b->len = 0;
        if (rg->sink != NULL)
            st__sink_flush(rg->sink);
    }
}
