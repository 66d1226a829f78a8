/*
 * The step store's writer: messages copied into .steps files, and the
 * prologue that begins each file (store.h, docs/STEP-STORE.md).
 */
#include "store.h"

#include "conn.h"
#include "region.h"
#include "server.h"
#include "session.h"
#include "sink.h"
#include "steptrace/idmap.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "steptrace/error.h"
#include "steptrace/ring.h"
#include "steptrace/wire.h"

/* The arguments of process pid, each ending in NUL, read once. */
static void
store_read_argv(pid_t pid, char **out, size_t *outn)
{
    char path[64], *buf = NULL, *nb;
    size_t len = 0, cap = 0;
    ssize_t n;
    int fd;

    *out = NULL;
    *outn = 0;
    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* Bounded: a program's arguments are at most a few MiB. */
    while (len < (8u << 20)) {
        if (len == cap) {
            cap = cap ? cap * 2 : 512;
            nb = realloc(buf, cap);
            if (nb == NULL)
                break;
            buf = nb;
        }
        n = read(fd, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    *out = buf;
    *outn = buf != NULL ? len : 0;
}

int
st__store_new(struct st_conn *c, uint32_t tracer_id, struct st_sink *text,
              const char *dir, size_t dir_len, struct st_sink **out)
{
    struct st_store *st = calloc(1, sizeof(*st));
    struct timespec ts;
    int r;

    if (st == NULL)
        return ST_ENOMEM;
    r = st__sink_new(&c->srv->sinks, &st__region_store_owner, c, c->epoch,
                     tracer_id, dir, dir_len, &st->sink);
    if (r != 0) {
        free(st);
        return r;
    }
    st->sink->pid = c->peer_pid;
    st__sink_pair(text, st->sink);
    st->tracer_id = tracer_id;
    store_read_argv(c->peer_pid, &st->argv, &st->argv_len);
    clock_gettime(CLOCK_REALTIME, &ts);
    st->start_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    r = st__idmap_put(&c->stores, tracer_id, st);
    if (r == 0) {
        r = st__idmap_put(&c->sinks, ST_STORE_KEY(tracer_id), st->sink);
        if (r != 0)
            st__idmap_del(&c->stores, tracer_id);
    }
    if (r != 0) {
        if (text != NULL)
            text->partner = NULL;
        st__sink_free(st->sink);
        free(st->argv);
        free(st);
        return r;
    }
    *out = st->sink;
    return 0;
}

void
st__store_close_all(struct st_conn *c)
{
    size_t it = 0;
    struct st_store *st;

    while ((st = st__idmap_next(&c->stores, &it)) != NULL) {
        free(st->argv);
        free(st);
    }
    st__idmap_close(&c->stores);
}

void
st__store_count(struct st_region *rg, int step, int async, uint32_t tid)
{
    if (step)
        rg->rec_steps++;
    if (async) {
        rg->rec_async++;
        return;
    }
    if (!rg->rec_seen_tid) {
        rg->rec_seen_tid = 1;
        rg->rec_first_tid = tid;
    }
    else if (tid != rg->rec_first_tid) {
        rg->rec_multi_thread = 1;
    }
}

void
st__store_put(struct st_conn *c, struct st_sink *store)
{
    struct st_buf *b;

    if (store == NULL || c->msg_rawlen == 0)
        return;
    b = st__sink_begin(store);
    st_buf_append(b, c->msg_raw, c->msg_rawlen);
    (void)st__sink_commit(store);
}

void
st__store_put_all(struct st_conn *c)
{
    size_t it = 0;
    struct st_store *st;

    while ((st = st__idmap_next(&c->stores, &it)) != NULL) {
        struct st_buf *b = st__sink_begin(st->sink);

        st_buf_append(b, c->msg_raw, c->msg_rawlen);
        st__sink_note_end(st->sink);
    }
}

void
st__store_ended(struct st_conn *c, int kind, int sig, const char *detail,
                size_t detail_len, size_t partial)
{
    size_t it = 0;
    struct st_store *st;
    msgpack_packer pk;

    while ((st = st__idmap_next(&c->stores, &it)) != NULL) {
        struct st_buf *b = st__sink_begin(st->sink);

        msgpack_packer_init(&pk, b, st_buf_msgpack_write);
        (void)st_wire_pack_ended(&pk, (uint32_t)kind, (uint32_t)sig, detail,
                                 detail_len, partial);
        st__sink_note_end(st->sink);
        st__sink_flush(st->sink);
    }
}

/* ---- the prologue ---- */

/* VARS: the whole state of a scope or frame, as one diff. */
static void
store_put_vars(struct st_buf *b, uint32_t kind, uint32_t id,
               uint32_t last_line, const struct st_varstate *vs)
{
    size_t i;

    st_wire_put_vars_head(b, kind, id, last_line);
    st_wire_put_diff_begin(b, vs->n);
    for (i = 0; i < vs->n; i++) {
        const struct st_varent *e = &vs->ents[i];

        st_wire_put_var_set(b, e->name_sid, e->type_sid, e->value,
                            e->value_len);
    }
}

void
st__store_segment(struct st_sink *s, struct st_buf *b)
{
    struct st_conn *c = s->data;
    struct st_store *st = st__idmap_get(&c->stores, s->tracer_id);
    const char *prog = c->program != NULL ? c->program : "";
    char host[256];
    msgpack_packer pk;
    size_t it;
    void *v;
    uint32_t key;

    if (st == NULL)
        return;
    if (gethostname(host, sizeof(host)) != 0)
        host[0] = '\0';
    host[sizeof(host) - 1] = '\0';
    msgpack_packer_init(&pk, b, st_buf_msgpack_write);
    st_buf_append(b, ST_STORE_MAGIC, ST_STORE_MAGIC_LEN);
    st_wire_pack_store(&pk, ST_STORE_VERSION, (uint64_t)c->peer_pid, prog,
                       strlen(prog), st->argv != NULL ? st->argv : "",
                       st->argv_len, st->start_ns, host, strlen(host),
                       s->tracer_id);
    for (it = 0; (v = st__idmap_next_key(&c->strings, &it, &key)) != NULL;) {
        const struct st_string *str = v;

        st_wire_pack_str(&pk, key, str->p, str->n);
    }
    for (it = 0; (v = st__idmap_next_key(&c->threads, &it, &key)) != NULL;)
        st_wire_pack_thread(&pk, key, ((struct st_thread *)v)->name_sid);
    for (it = 0; (v = st__idmap_next(&c->regions, &it)) != NULL;) {
        const struct st_region *rg = v;

        if (rg->tracer_id != s->tracer_id)
            continue;
        st_wire_pack_region(&pk, rg->id, rg->tracer_id, s->dir, strlen(s->dir),
                            rg->level, rg->var_mode, 0, 0, rg->formats);
        st_wire_pack_rstate(&pk, rg->id, rg->rec_steps, rg->rec_async,
                            rg->lost, rg->rec_first_tid,
                            (rg->rec_seen_tid ? ST_RSTATE_SEEN_TID : 0) |
                                (rg->rec_multi_thread ? ST_RSTATE_MULTI_THREAD
                                                      : 0));
    }
    for (it = 0; (v = st__idmap_next_key(&c->scopes, &it, &key)) != NULL;) {
        const struct st_scope *sc = v;

        if (sc->vars.n > 0)
            store_put_vars(b, ST_VARS_SCOPE, key, 0, &sc->vars);
    }
    for (it = 0; (v = st__idmap_next(&c->frames, &it)) != NULL;) {
        const struct st_frame *f = v;

        st_wire_put_frame(b, f->id, f->tid, f->parent_id, f->file_sid,
                          f->func_sid, f->scope->id, f->flags, f->region_id);
        if (f->locals.n > 0 || f->last_line != 0)
            store_put_vars(b, ST_VARS_FRAME, f->id, f->last_line, &f->locals);
    }
}
