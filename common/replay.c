/*
 * A step store replayed at a level and variable mode (replay.h).  The
 * semantics are the collector's (daemon/session.c, step.c, region.c),
 * which wrote the text log from the same messages: any change there is
 * a change here, and tests/python/test_store.py compares the two byte
 * for byte.
 */
#include "steptrace/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"
#include "steptrace/ring.h"

/* Ancestor lines a DEBUG record shows at most (daemon/step.c). */
#define RP_MAX_ANCESTORS 10000u

void
st_replay_init(struct st_replay *rp, int level, int var_mode)
{
    memset(rp, 0, sizeof(*rp));
    rp->level = level;
    rp->var_mode = var_mode;
    st__idmap_init(&rp->strings);
    st__idmap_init(&rp->threads);
    st__idmap_init(&rp->frames);
    st__idmap_init(&rp->scopes);
    st__idmap_init(&rp->regions);
    st_buf_init(&rp->esc);
    st_buf_init(&rp->lines);
}

static void
replay_frame_free(struct st_rp_frame *f)
{
    st_varstate_close(&f->locals);
    free(f);
}

static void
replay_free_dead(struct st_replay *rp)
{
    size_t i;

    for (i = 0; i < rp->ndead; i++)
        free(rp->dead[i]);
    rp->ndead = 0;
}

static void
replay_header_free(struct st_rp_header *h)
{
    free(h->program);
    free(h->argv);
    free(h->host);
    memset(h, 0, sizeof(*h));
}

void
st_replay_close(struct st_replay *rp)
{
    size_t it;
    void *v;

    for (it = 0; (v = st__idmap_next(&rp->strings, &it)) != NULL;)
        free(v);
    for (it = 0; (v = st__idmap_next(&rp->threads, &it)) != NULL;)
        free(v);
    for (it = 0; (v = st__idmap_next(&rp->frames, &it)) != NULL;)
        replay_frame_free(v);
    for (it = 0; (v = st__idmap_next(&rp->scopes, &it)) != NULL;) {
        st_varstate_close(&((struct st_rp_scope *)v)->vars);
        free(v);
    }
    for (it = 0; (v = st__idmap_next(&rp->regions, &it)) != NULL;)
        free(v);
    st__idmap_close(&rp->strings);
    free(rp->dense);
    st__idmap_close(&rp->threads);
    st__idmap_close(&rp->frames);
    st__idmap_close(&rp->scopes);
    st__idmap_close(&rp->regions);
    replay_free_dead(rp);
    free(rp->dead);
    free(rp->gviews);
    free(rp->lviews);
    free(rp->locs);
    st_buf_close(&rp->esc);
    st_buf_close(&rp->lines);
    replay_header_free(&rp->hdr);
}

/* ---- helpers ---- */

static int
replay_error(struct st_replay *rp, int err, const char *fmt, uint32_t a,
             uint32_t b)
{
    snprintf(rp->detail, sizeof(rp->detail), fmt, a, b);
    return err;
}

const struct st_rp_string *
st_replay_str(const struct st_replay *rp, uint32_t sid)
{
    if (sid < rp->dense_cap)
        return rp->dense[sid];
    return sid == 0 ? NULL : st__idmap_get(&rp->strings, sid);
}

static struct st_str
replay_view(const struct st_rp_string *s)
{
    struct st_str v = {"", 0};

    if (s != NULL) {
        v.p = s->p;
        v.n = s->n;
    }
    return v;
}

/* Text safe for a log line (daemon/session.c st__session_escape). */
static int
replay_escape(struct st_replay *rp, const char *p, size_t n, const char **out,
              size_t *outn)
{
    return st_record_escaped(&rp->esc, p, n, out, outn);
}

int
st_replay_mode(const struct st_replay *rp, const struct st_rp_region *rg)
{
    /* A region recorded without variables shows none in any mode. */
    if (rg->var_mode == ST_VARMODE_NONE || rp->var_mode == 0)
        return (int)rg->var_mode;
    return rp->var_mode;
}

static int
replay_level(const struct st_replay *rp, const struct st_rp_region *rg)
{
    return rp->level != 0 ? rp->level : (int)rg->level;
}

struct st_str
st_replay_thread_name(const struct st_replay *rp, uint32_t tid, char *tmp,
                      size_t tmplen)
{
    const struct st_rp_thread *t = st__idmap_get(&rp->threads, tid);
    struct st_str name;

    if (t != NULL && st_replay_str(rp, t->name_sid) != NULL)
        return replay_view(st_replay_str(rp, t->name_sid));
    name.p = tmp;
    name.n = (size_t)snprintf(tmp, tmplen, "%u", tid);
    return name;
}

/* ---- definitions ---- */

/* STR `sid` is defined: the direct table covers it when the ids are
 * dense (daemon/session.c does the same); a failed growth costs speed. */
static void
replay_dense_add(struct st_replay *rp, uint32_t sid,
                 const struct st_rp_string *s)
{
    size_t limit = 2 * rp->strings.live + 1024;
    size_t cap = rp->dense_cap ? rp->dense_cap : 1024, i;
    const struct st_rp_string **d;

    if (sid < rp->dense_cap) {
        rp->dense[sid] = s;
        return;
    }
    while (cap <= sid)
        cap *= 2;
    if (cap > limit)
        return;
    d = realloc(rp->dense, cap * sizeof(*d));
    if (d == NULL)
        return;
    for (i = rp->dense_cap; i < cap; i++)
        d[i] = i == 0 ? NULL : st__idmap_get(&rp->strings, (uint32_t)i);
    rp->dense = d;
    rp->dense_cap = cap;
}

static int
replay_on_str(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_string *s;
    const char *p;
    size_t n;
    int r;

    if (m->u.str.sid == 0)
        return replay_error(rp, ST_ESTATE, "STR defines id %u", 0, 0);
    /* Never redefined (PROTOCOL.md): the first definition stays. */
    if (st__idmap_get(&rp->strings, m->u.str.sid) != NULL)
        return 0;
    r = replay_escape(rp, m->u.str.text.p, m->u.str.text.n, &p, &n);
    if (r != 0)
        return r;
    s = malloc(sizeof(*s) + n + 1);
    if (s == NULL)
        return ST_ENOMEM;
    s->n = n;
    memcpy(s->p, p, n);
    s->p[n] = '\0';
    r = st__idmap_put(&rp->strings, m->u.str.sid, s);
    if (r != 0) {
        free(s);
        return r;
    }
    replay_dense_add(rp, m->u.str.sid, s);
    return 0;
}

static int
replay_on_thread(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_thread *t = st__idmap_get(&rp->threads, m->u.thread.tid);
    int r;

    if (st_replay_str(rp, m->u.thread.name_sid) == NULL)
        return replay_error(rp, ST_ENOSTR, "THREAD %u names string %u",
                            m->u.thread.tid, m->u.thread.name_sid);
    if (t != NULL) {
        t->name_sid = m->u.thread.name_sid;
        return 0;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return ST_ENOMEM;
    t->name_sid = m->u.thread.name_sid;
    r = st__idmap_put(&rp->threads, m->u.thread.tid, t);
    if (r != 0)
        free(t);
    return r;
}

static int
replay_scope(struct st_replay *rp, uint32_t id, struct st_rp_scope **out)
{
    struct st_rp_scope *s = st__idmap_get(&rp->scopes, id);
    int r;

    if (s == NULL) {
        s = malloc(sizeof(*s));
        if (s == NULL)
            return ST_ENOMEM;
        s->id = id;
        st_varstate_init(&s->vars);
        r = st__idmap_put(&rp->scopes, id, s);
        if (r != 0) {
            free(s);
            return r;
        }
    }
    *out = s;
    return 0;
}

static int
replay_on_frame(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_frame *f;
    struct st_rp_scope *scope;
    int r;

    if (st_replay_str(rp, m->u.frame.file_sid) == NULL ||
        st_replay_str(rp, m->u.frame.func_sid) == NULL)
        return replay_error(rp, ST_ENOSTR, "FRAME names strings %u and %u",
                            m->u.frame.file_sid, m->u.frame.func_sid);
    r = replay_scope(rp, m->u.frame.scope_id, &scope);
    if (r != 0)
        return r;
    f = st__idmap_get(&rp->frames, m->u.frame.frame_id);
    if (f != NULL) {
        st_varstate_close(&f->locals);
    }
    else {
        f = malloc(sizeof(*f));
        if (f == NULL)
            return ST_ENOMEM;
        r = st__idmap_put(&rp->frames, m->u.frame.frame_id, f);
        if (r != 0) {
            free(f);
            return r;
        }
    }
    f->id = m->u.frame.frame_id;
    f->tid = m->u.frame.tid;
    f->parent_id = m->u.frame.parent_id;
    f->flags = m->u.frame.flags;
    f->region_id = m->u.frame.region_id;
    f->last_line = 0;
    f->file = st_replay_str(rp, m->u.frame.file_sid);
    f->func = st_replay_str(rp, m->u.frame.func_sid);
    f->scope = scope;
    st_varstate_init(&f->locals);
    return 0;
}

static int
replay_on_region(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_region *rg = st__idmap_get(&rp->regions,
                                            m->u.region.region_id);
    int r;

    /* A file's prologue names the open regions; the REGION that began
     * the file may follow it: the same region, from its start. */
    if (rg == NULL) {
        rg = malloc(sizeof(*rg));
        if (rg == NULL)
            return ST_ENOMEM;
        r = st__idmap_put(&rp->regions, m->u.region.region_id, rg);
        if (r != 0) {
            free(rg);
            return r;
        }
    }
    memset(rg, 0, sizeof(*rg));
    rg->id = m->u.region.region_id;
    rg->tracer_id = m->u.region.tracer_id;
    rg->level = m->u.region.level;
    rg->var_mode = m->u.region.var_mode;
    rg->formats = m->u.region.formats;
    if (rg->var_mode < ST_VARMODE_ALL || rg->var_mode > ST_VARMODE_NONE)
        rg->var_mode = ST_VARMODE_ALL;
    if (rg->level < ST_LEVEL_DEBUG || rg->level > ST_LEVEL_ERROR)
        rg->level = ST_LEVEL_INFO;
    return 0;
}

static int
replay_on_rstate(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_region *rg = st__idmap_get(&rp->regions,
                                            m->u.rstate.region_id);

    if (rg == NULL)
        return replay_error(rp, ST_ESTATE, "RSTATE for region %u",
                            m->u.rstate.region_id, 0);
    /* The counts are those of levels below ERROR, which count steps;
     * ERROR counts none. */
    if (replay_level(rp, rg) < ST_LEVEL_ERROR) {
        rg->steps = m->u.rstate.steps;
        rg->async_steps = m->u.rstate.async_steps;
    }
    rg->lost = m->u.rstate.lost;
    rg->first_tid = m->u.rstate.first_tid;
    rg->seen_tid = (m->u.rstate.flags & ST_RSTATE_SEEN_TID) != 0;
    rg->multi_thread = (m->u.rstate.flags & ST_RSTATE_MULTI_THREAD) != 0;
    return 0;
}

/* ---- variables ---- */

static int
replay_diff_check(struct st_replay *rp, const struct st_wire_var *vars,
                  size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (st_replay_str(rp, vars[i].name_sid) == NULL ||
            (!vars[i].deleted && st_replay_str(rp, vars[i].type_sid) == NULL))
            return replay_error(rp, ST_ENOSTR,
                                "a variable names strings %u and %u",
                                vars[i].name_sid, vars[i].type_sid);
    return 0;
}

/* Room for n more dead values and n views in *views. */
static int
replay_reserve(struct st_replay *rp, struct st_var_view **views, size_t *cap,
               size_t n)
{
    char **dead = st_grow(rp->dead, &rp->deadcap, rp->ndead + n, sizeof(*dead),
                          16);
    struct st_var_view *v;

    if (dead == NULL)
        return ST_ENOMEM;
    rp->dead = dead;
    v = st_grow(*views, cap, n, sizeof(*v), 16);
    if (v == NULL)
        return ST_ENOMEM;
    *views = v;
    return 0;
}

/* Applies a diff to `state`, one CHANGED-mode view per entry into views
 * (daemon/step.c step_diff_apply). */
static int
replay_diff_apply(struct st_replay *rp, struct st_varstate *state,
                  const struct st_wire_var *vars, size_t n,
                  struct st_var_view *views)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const struct st_wire_var *w = &vars[i];
        struct st_var_view *v = &views[i];
        char *old = NULL;
        size_t oldn = 0, valn;
        const char *val;
        long idx;
        int r;

        if (w->deleted) {
            idx = st_varstate_find(state, w->name_sid);
            if (idx >= 0) {
                rp->dead[rp->ndead++] = state->ents[idx].value;
                state->ents[idx].value = NULL;
                st_varstate_del(state, w->name_sid);
            }
            memset(v, 0, sizeof(*v));
            v->name = replay_view(st_replay_str(rp, w->name_sid));
            v->change = ST_VAR_DELETED;
            continue;
        }
        r = replay_escape(rp, w->value.p, w->value.n, &val, &valn);
        if (r != 0)
            return r;
        r = st_varstate_set(state, w->name_sid, w->type_sid, val, valn, &old,
                            &oldn);
        if (r < 0)
            return r;
        if (r == 1)
            rp->dead[rp->ndead++] = old;
        idx = st_varstate_find(state, w->name_sid);
        v->name = replay_view(st_replay_str(rp, w->name_sid));
        v->type = replay_view(st_replay_str(rp, w->type_sid));
        v->value.p = state->ents[idx].value;
        v->value.n = state->ents[idx].value_len;
        v->old.p = old != NULL ? old : "";
        v->old.n = oldn;
        v->change = r == 1 ? ST_VAR_CHANGED : ST_VAR_NEW;
    }
    return 0;
}

static int
replay_on_vars(struct st_replay *rp, const struct st_msg *m)
{
    struct st_varstate *state;
    int r;

    r = replay_diff_check(rp, m->u.vars.vars, m->u.vars.nvars);
    if (r != 0)
        return r;
    if (m->u.vars.kind == ST_VARS_SCOPE) {
        struct st_rp_scope *s;

        r = replay_scope(rp, m->u.vars.id, &s);
        if (r != 0)
            return r;
        state = &s->vars;
    }
    else {
        struct st_rp_frame *f = st__idmap_get(&rp->frames, m->u.vars.id);

        if (f == NULL)
            return replay_error(rp, ST_ESTATE, "VARS for frame %u",
                                m->u.vars.id, 0);
        f->last_line = m->u.vars.last_line;
        state = &f->locals;
    }
    if (rp->skip_vars)
        return 0;
    /* The state as it is: a fresh one, filled. */
    st_varstate_close(state);
    st_varstate_init(state);
    r = replay_reserve(rp, &rp->gviews, &rp->gcap, m->u.vars.nvars);
    if (r != 0)
        return r;
    return replay_diff_apply(rp, state, m->u.vars.vars, m->u.vars.nvars,
                             rp->gviews);
}

/* ---- records ---- */

/* The runtime a shown record of thread tid gets, and its clock. */
static void
replay_runtime(struct st_replay *rp, uint32_t tid, uint64_t runtime_ns,
               int shown)
{
    struct st_rp_thread *t = st__idmap_get(&rp->threads, tid);

    rp->rec.runtime_ns = runtime_ns;
    rp->rec.clock_ns = runtime_ns;
    if (t == NULL)
        return;
    t->clock_ns += runtime_ns;
    rp->rec.clock_ns = t->clock_ns;
    if (!shown) {
        t->carry_ns += runtime_ns;
        return;
    }
    rp->rec.runtime_ns += t->carry_ns;
    t->carry_ns = 0;
}

/* The "| thread" state (daemon/step.c step_thread), for a shown record. */
static void
replay_thread_seen(struct st_rp_region *rg, uint32_t tid)
{
    if (!rg->seen_tid) {
        rg->seen_tid = 1;
        rg->first_tid = tid;
    }
    else if (tid != rg->first_tid) {
        rg->multi_thread = 1;
    }
}

/* The step's diffs applied to the frame's states, and their views. */
static int
replay_step_vars(struct st_replay *rp, const struct st_msg *m,
                 struct st_rp_frame *f)
{
    size_t ng = m->u.step.nglobals, nl = m->u.step.nlocals;
    int r;

    r = replay_reserve(rp, &rp->gviews, &rp->gcap, ng);
    if (r == 0)
        r = replay_reserve(rp, &rp->lviews, &rp->lcap, nl);
    if (r == 0)
        r = replay_diff_apply(rp, &f->scope->vars, m->u.step.globals, ng,
                              rp->gviews);
    if (r == 0)
        r = replay_diff_apply(rp, &f->locals, m->u.step.locals, nl,
                              rp->lviews);
    if (r != 0)
        return r;
    rp->ngviews = ng;
    rp->nlviews = (f->flags & ST_FRAME_MODULE) ? 0 : nl;
    return 0;
}

static int
replay_on_step(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_frame *f = st__idmap_get(&rp->frames, m->u.step.frame_id);
    uint32_t region_id = m->type == ST_MSG_LINE && f != NULL
                             ? f->region_id
                             : m->u.step.region_id;
    struct st_rp_region *rg = st__idmap_get(&rp->regions, region_id);
    size_t ng = m->u.step.nglobals, nl = m->u.step.nlocals;
    int r;

    if (rg == NULL || f == NULL)
        return replay_error(rp, ST_ESTATE, "STEP for region %u frame %u",
                            region_id, m->u.step.frame_id);
    r = replay_diff_check(rp, m->u.step.globals, ng);
    if (r == 0)
        r = replay_diff_check(rp, m->u.step.locals, nl);
    /* A caller that reads no variables skips their cost (replay.h). */
    if (r == 0 && !rp->skip_vars)
        r = replay_step_vars(rp, m, f);
    if (r != 0)
        return r;
    rp->rec.what = ST_RP_STEP;
    rp->rec.event = ST_EVENT_STEP;
    rp->rec.rg = rg;
    rp->rec.f = f;
    rp->rec.gdiff = m->u.step.globals;
    rp->rec.ngdiff = ng;
    rp->rec.ldiff = m->u.step.locals;
    rp->rec.nldiff = nl;
    /* ERROR shows no steps and counts none (daemon/step.c). */
    rp->rec.shown = replay_level(rp, rg) < ST_LEVEL_ERROR;
    replay_runtime(rp, f->tid, m->u.step.runtime_ns, rp->rec.shown);
    if (rp->rec.shown) {
        rg->steps++;
        replay_thread_seen(rg, f->tid);
    }
    rp->rec.step = rg->steps;
    f->last_line = m->u.step.lineno;
    return 0;
}

static int
replay_event_shown(uint32_t kind, int level)
{
    if (kind == ST_EVENT_EXCEPTION)
        return level <= ST_LEVEL_ERROR;
    return level == ST_LEVEL_DEBUG;
}

static int
replay_on_event(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_region *rg = st__idmap_get(&rp->regions,
                                            m->u.event.region_id);
    struct st_rp_frame *f = st__idmap_get(&rp->frames, m->u.event.frame_id);

    if (rg == NULL || f == NULL)
        return replay_error(rp, ST_ESTATE, "EVENT for region %u frame %u",
                            m->u.event.region_id, m->u.event.frame_id);
    f->last_line = m->u.event.lineno;
    rp->rec.what = ST_RP_EVENT;
    rp->rec.event = (int)m->u.event.kind;
    rp->rec.rg = rg;
    rp->rec.f = f;
    rp->rec.shown = replay_event_shown(m->u.event.kind, replay_level(rp, rg));
    replay_runtime(rp, f->tid, m->u.event.runtime_ns, rp->rec.shown);
    if (rp->rec.shown)
        replay_thread_seen(rg, f->tid);
    rp->rec.step = rg->steps;
    return 0;
}

static int
replay_on_async(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_region *rg = st__idmap_get(&rp->regions,
                                            m->u.async.region_id);

    if (rg == NULL)
        return replay_error(rp, ST_ESTATE, "ASYNC for region %u",
                            m->u.async.region_id, 0);
    rp->rec.what = ST_RP_ASYNC;
    rp->rec.rg = rg;
    rp->rec.shown = replay_level(rp, rg) < ST_LEVEL_ERROR;
    if (rp->rec.shown)
        rg->async_steps++;
    rp->rec.step = rg->async_steps;
    return 0;
}

/* One "[steptrace] ..." line into rp->lines. */
static int
replay_line(struct st_replay *rp, const char *text, size_t n)
{
    if (st_buf_append(&rp->lines, text, n) != 0 ||
        st_buf_append(&rp->lines, "\n", 1) != 0)
        return ST_ENOMEM;
    rp->rec.what = ST_RP_LINES;
    rp->rec.shown = 1;
    return 0;
}

static int
replay_on_note(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_region *rg = st__idmap_get(&rp->regions, m->u.note.region_id);
    struct st_buf *b = &rp->lines;
    const char *t;
    size_t tn;

    if (rg == NULL)
        return replay_error(rp, ST_ESTATE, "NOTE for region %u",
                            m->u.note.region_id, 0);
    if (replay_escape(rp, m->u.note.text.p, m->u.note.text.n, &t, &tn) != 0)
        return ST_ENOMEM;
    rp->rec.rg = rg;
    if (st_record_note_line(b, m->u.note.kind == ST_NOTE_AT_STEP, rg->steps, t,
                            tn) != 0)
        return ST_ENOMEM;
    return replay_line(rp, "", 0);
}

static int
replay_on_region_end(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_region *rg = st__idmap_del(&rp->regions,
                                            m->u.region_end.region_id);
    int r = 0;

    if (rg == NULL)
        return replay_error(rp, ST_ESTATE, "REGION_END for region %u",
                            m->u.region_end.region_id, 0);
    if (rg->lost > 0)
        r = st_record_lost_line(&rp->lines, rg->lost) != 0
                ? ST_ENOMEM
                : replay_line(rp, "", 0);
    free(rg);
    return r;
}

/* The process ended with regions open (daemon/region.c
 * st__region_process_ended): the lines of each region. */
static int
replay_on_ended(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_region *rg;
    const char *d;
    size_t it = 0, dn;
    int r = 0;

    if (replay_escape(rp, m->u.ended.detail.p, m->u.ended.detail.n, &d, &dn) !=
        0)
        return ST_ENOMEM;
    rp->rec.what = ST_RP_LINES;
    while (r == 0 && (rg = st__idmap_next(&rp->regions, &it)) != NULL) {
        if (rg->steps == 0 && rg->async_steps == 0 && m->u.ended.partial == 0)
            continue;
        if (m->u.ended.partial > 0)
            r = replay_line(rp, st_record_cut_line,
                            strlen(st_record_cut_line));
        if (r == 0)
            r = st_record_ended_line(&rp->lines, (int)m->u.ended.kind,
                                     (int)m->u.ended.sig, d, dn,
                                     rg->steps) != 0
                    ? ST_ENOMEM
                    : replay_line(rp, "", 0);
    }
    return r;
}

static int
replay_on_store(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_header *h = &rp->hdr;

    replay_header_free(h);
    h->program = strndup(m->u.store.program.n ? m->u.store.program.p : "",
                         m->u.store.program.n);
    h->host = strndup(m->u.store.host.n ? m->u.store.host.p : "",
                      m->u.store.host.n);
    h->argv = malloc(m->u.store.argv.n + 1);
    if (h->program == NULL || h->host == NULL || h->argv == NULL) {
        replay_header_free(h);
        return ST_ENOMEM;
    }
    if (m->u.store.argv.n > 0)
        memcpy(h->argv, m->u.store.argv.p, m->u.store.argv.n);
    h->argv[m->u.store.argv.n] = '\0';
    h->argv_len = m->u.store.argv.n;
    h->seen = 1;
    h->version = m->u.store.version;
    h->pid = m->u.store.pid;
    h->start_ns = m->u.store.start_ns;
    h->tracer_id = m->u.store.tracer_id;
    return 0;
}

static int
replay_on_slost(struct st_replay *rp, const struct st_msg *m)
{
    const char *w;
    size_t wn;
    char head[64];

    if (replay_escape(rp, m->u.slost.why.p, m->u.slost.why.n, &w, &wn) != 0)
        return ST_ENOMEM;
    snprintf(head, sizeof(head), "[steptrace] %llu records lost: ",
             (unsigned long long)m->u.slost.count);
    if (st_buf_puts(&rp->lines, head) != 0)
        return ST_ENOMEM;
    return replay_line(rp, w, wn);
}

int
st_replay_apply(struct st_replay *rp, const struct st_msg *m)
{
    struct st_rp_frame *f;
    struct st_rp_region *rg;

    replay_free_dead(rp);
    memset(&rp->rec, 0, sizeof(rp->rec));
    rp->rec.m = m;
    rp->lines.len = 0;
    rp->detail[0] = '\0';
    switch (m->type) {
    case ST_MSG_STR: return replay_on_str(rp, m);
    case ST_MSG_THREAD: return replay_on_thread(rp, m);
    case ST_MSG_FRAME: return replay_on_frame(rp, m);
    case ST_MSG_FRAME_END:
        f = st__idmap_del(&rp->frames, m->u.frame_end.frame_id);
        if (f != NULL)
            replay_frame_free(f);
        return 0;
    case ST_MSG_REGION: return replay_on_region(rp, m);
    case ST_MSG_REGION_END: return replay_on_region_end(rp, m);
    case ST_MSG_STEP:
    case ST_MSG_LINE: return replay_on_step(rp, m);
    case ST_MSG_EVENT: return replay_on_event(rp, m);
    case ST_MSG_ASYNC: return replay_on_async(rp, m);
    case ST_MSG_NOTE: return replay_on_note(rp, m);
    case ST_MSG_LOST:
        rg = st__idmap_get(&rp->regions, m->u.lost.region_id);
        if (rg == NULL)
            return replay_error(rp, ST_ESTATE, "LOST for region %u",
                                m->u.lost.region_id, 0);
        rg->lost = m->u.lost.count > UINT64_MAX - rg->lost
                       ? UINT64_MAX
                       : rg->lost + m->u.lost.count;
        return 0;
    case ST_MSG_STORE: return replay_on_store(rp, m);
    case ST_MSG_RSTATE: return replay_on_rstate(rp, m);
    case ST_MSG_VARS: return replay_on_vars(rp, m);
    case ST_MSG_ENDED: return replay_on_ended(rp, m);
    case ST_MSG_SLOST: return replay_on_slost(rp, m);
    default:
        return replay_error(rp, ST_EBADMSG, "message type %u in a store",
                            (uint32_t)m->type, 0);
    }
}

/* ---- rendering ---- */

/* ALL mode: one line per variable of the state. */
static int
replay_state_views(struct st_replay *rp, const struct st_varstate *state,
                   struct st_var_view **views, size_t *cap)
{
    struct st_var_view *v = st_grow(*views, cap, state->n, sizeof(*v), 16);
    size_t i;

    if (v == NULL)
        return ST_ENOMEM;
    *views = v;
    for (i = 0; i < state->n; i++) {
        const struct st_varent *e = &state->ents[i];

        v[i].name = replay_view(st_replay_str(rp, e->name_sid));
        v[i].type = replay_view(st_replay_str(rp, e->type_sid));
        v[i].value.p = e->value;
        v[i].value.n = e->value_len;
        v[i].old.p = "";
        v[i].old.n = 0;
        v[i].change = ST_VAR_PLAIN;
    }
    return 0;
}

/* Location lines: at DEBUG the ancestors, outermost first. */
static int
replay_locations(struct st_replay *rp, const struct st_rp_frame *f,
                 uint32_t lineno, int level, size_t *nlocs)
{
    struct st_loc_view *locs;
    size_t n = 0, i;
    uint32_t pid = f->parent_id;

    while (level == ST_LEVEL_DEBUG && pid != 0 && n < RP_MAX_ANCESTORS) {
        const struct st_rp_frame *p = st__idmap_get(&rp->frames, pid);

        if (p == NULL)
            break;
        locs = st_grow(rp->locs, &rp->loccap, n + 2, sizeof(*locs), 16);
        if (locs == NULL)
            return ST_ENOMEM;
        rp->locs = locs;
        rp->locs[n].file = replay_view(p->file);
        rp->locs[n].func = replay_view(p->func);
        rp->locs[n].line = p->last_line;
        n++;
        pid = p->parent_id;
    }
    for (i = 0; i < n / 2; i++) {
        struct st_loc_view t = rp->locs[i];

        rp->locs[i] = rp->locs[n - 1 - i];
        rp->locs[n - 1 - i] = t;
    }
    locs = st_grow(rp->locs, &rp->loccap, n + 1, sizeof(*locs), 16);
    if (locs == NULL)
        return ST_ENOMEM;
    rp->locs = locs;
    rp->locs[n].file = replay_view(f->file);
    rp->locs[n].func = replay_view(f->func);
    rp->locs[n].line = lineno;
    *nlocs = n + 1;
    return 0;
}

/* A step or event record of rp->rec. */
static int
replay_render_step(struct st_replay *rp, struct st_buf *out)
{
    const struct st_rp_record *rec = &rp->rec;
    const struct st_msg *m = rec->m;
    struct st_rp_region *rg = rec->rg;
    const struct st_rp_frame *f = rec->f;
    int module = (f->flags & ST_FRAME_MODULE) != 0;
    struct st_step_view v;
    char tidbuf[16];
    uint32_t lineno;
    int r;

    memset(&v, 0, sizeof(v));
    v.event = rec->event;
    v.step = rec->step;
    v.runtime_ns = rec->runtime_ns;
    v.var_mode = st_replay_mode(rp, rg);
    v.thread.p = NULL;
    if (rg->multi_thread)
        v.thread = st_replay_thread_name(rp, f->tid, tidbuf, sizeof(tidbuf));
    if (rec->what == ST_RP_EVENT) {
        const char *d;

        r = replay_escape(rp, m->u.event.detail.p, m->u.event.detail.n, &d,
                          &v.detail.n);
        if (r != 0)
            return r;
        v.detail.p = d;
        lineno = m->u.event.lineno;
    }
    else {
        lineno = m->u.step.lineno;
        if (v.var_mode == ST_VARMODE_CHANGED) {
            v.globals = rp->gviews;
            v.nglobals = rp->ngviews;
            v.locals = rp->lviews;
            v.nlocals = rp->nlviews;
        }
        else if (v.var_mode == ST_VARMODE_ALL) {
            /* The views of the diff are not needed any more. */
            r = replay_state_views(rp, &f->scope->vars, &rp->gviews,
                                   &rp->gcap);
            if (r == 0 && !module)
                r = replay_state_views(rp, &f->locals, &rp->lviews, &rp->lcap);
            if (r != 0)
                return r;
            rp->ngviews = f->scope->vars.n;
            rp->nlviews = module ? 0 : f->locals.n;
            v.globals = rp->gviews;
            v.nglobals = rp->ngviews;
            v.locals = rp->lviews;
            v.nlocals = rp->nlviews;
        }
    }
    r = replay_locations(rp, f, lineno, replay_level(rp, rg), &v.nlocs);
    if (r != 0)
        return r;
    v.locs = rp->locs;
    return st_record_format_step(out, &v);
}

int
st_replay_render(struct st_replay *rp, struct st_buf *out)
{
    const struct st_rp_record *rec = &rp->rec;

    if (!rec->shown)
        return 0;
    switch (rec->what) {
    case ST_RP_STEP:
    case ST_RP_EVENT: return replay_render_step(rp, out);
    case ST_RP_ASYNC:
        return st_record_format_async(out, rec->step, rec->m->u.async.time_ns,
                                      (int)rec->m->u.async.kind,
                                      rec->m->u.async.body);
    case ST_RP_LINES:
        return st_buf_append(out, rp->lines.data, rp->lines.len) != 0
                   ? ST_ENOMEM
                   : 0;
    default: return 0;
    }
}
