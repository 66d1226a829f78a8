/*
 * STEP messages: apply the variable diffs to the frame and scope state,
 * build the record view (step number, runtime, thread, locations,
 * variables in the region's mode) and render it with the shared
 * formatter into the tracer's sink.  The LINE path of a busy program goes
 * through here, so it allocates nothing once the scratch arrays have
 * grown: views borrow the state and the string table.
 */
#include "step.h"

#include "conn.h"
#include "forward.h"
#include "region.h"
#include "server.h"
#include "session.h"
#include "sink.h"
#include "store.h"
#include "steptrace/idmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"

/* Ancestor lines a DEBUG record shows at most (also stops id cycles). */
#define ST_MAX_ANCESTORS 10000u

static struct st_str
step_str_view(const struct st_string *s)
{
    struct st_str v = {"", 0};

    if (s != NULL) {
        v.p = s->p;
        v.n = s->n;
    }
    return v;
}

/* Every sid of a diff must be defined before anything is applied. */
static int
step_diff_check(struct st_conn *c, const struct st_wire_var *vars, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (st__session_str(c, vars[i].name_sid) == NULL ||
            (!vars[i].deleted &&
             st__session_str(c, vars[i].type_sid) == NULL)) {
            st__conn_detail(c, "STEP variable names strings %u and %u",
                            vars[i].name_sid, vars[i].type_sid);
            return ST_ENOSTR;
        }
    }
    return 0;
}

/*
 * Applies a diff to `state`.  Replaced and deleted values go to the dead
 * list (reserved by the caller) rather than being freed, so that the
 * views built here stay valid until the record is rendered.  With
 * `views` != NULL, one CHANGED-mode line per entry is added to it.
 */
static int
step_diff_apply(struct st_conn *c, struct st_varstate *state,
                const struct st_wire_var *vars, size_t n,
                struct st_var_view *views)
{
    struct st_scratch *sc = &c->srv->scratch;
    size_t i;

    for (i = 0; i < n; i++) {
        const struct st_wire_var *w = &vars[i];
        struct st_var_view *v = views != NULL ? &views[i] : NULL;
        char *old = NULL;
        size_t oldn = 0;
        const char *val;
        size_t valn;
        long idx;
        int r;

        if (w->deleted) {
            idx = st_varstate_find(state, w->name_sid);
            if (idx >= 0) {
                sc->dead[sc->ndead++] = state->ents[idx].value;
                state->ents[idx].value = NULL;
                st_varstate_del(state, w->name_sid);
            }
            if (v != NULL) {
                memset(v, 0, sizeof(*v));
                v->name = step_str_view(st__session_str(c, w->name_sid));
                v->change = ST_VAR_DELETED;
            }
            continue;
        }
        r = st__session_escape(sc, w->value.p, w->value.n, &val, &valn);
        if (r != 0)
            return r;
        r = st_varstate_set(state, w->name_sid, w->type_sid, val, valn, &old,
                            &oldn);
        if (r < 0)
            return r;
        if (r == 1)
            sc->dead[sc->ndead++] = old;
        if (v != NULL) {
            idx = st_varstate_find(state, w->name_sid);
            v->name = step_str_view(st__session_str(c, w->name_sid));
            v->type = step_str_view(st__session_str(c, w->type_sid));
            v->value.p = state->ents[idx].value;
            v->value.n = state->ents[idx].value_len;
            v->old.p = old != NULL ? old : "";
            v->old.n = oldn;
            v->change = r == 1 ? ST_VAR_CHANGED : ST_VAR_NEW;
        }
    }
    return 0;
}

/* ALL mode: one line per variable of the state, in first-seen order. */
static void
step_state_views(struct st_conn *c, const struct st_varstate *state,
                 struct st_var_view *views)
{
    size_t i;

    for (i = 0; i < state->n; i++) {
        const struct st_varent *e = &state->ents[i];

        views[i].name = step_str_view(st__session_str(c, e->name_sid));
        views[i].type = step_str_view(st__session_str(c, e->type_sid));
        views[i].value.p = e->value;
        views[i].value.n = e->value_len;
        views[i].old.p = "";
        views[i].old.n = 0;
        views[i].change = ST_VAR_PLAIN;
    }
}

static struct st_loc_view
step_frame_loc(const struct st_frame *f, uint32_t line)
{
    struct st_loc_view l;

    l.file = step_str_view(f->file);
    l.func = step_str_view(f->func);
    l.line = line;
    return l;
}

/* Location lines: at DEBUG the known ancestors, outermost first, each at
 * its latest line; then the current frame. */
static int
step_locations(struct st_conn *c, const struct st_region *rg,
               const struct st_frame *f, uint32_t lineno, size_t *nlocs)
{
    struct st_scratch *sc = &c->srv->scratch;
    struct st_loc_view *locs;
    size_t n = 0, i;
    uint32_t pid = f->parent_id;

    while (rg->level == ST_LEVEL_DEBUG && pid != 0 && n < ST_MAX_ANCESTORS) {
        /* The walk is bounded: parent ids come from the peer and an id
         * reused after FRAME_END can make them loop. */
        const struct st_frame *p = st__idmap_get(&c->frames, pid);

        if (p == NULL)
            break;
        locs = st_grow(sc->locs, &sc->loccap, n + 2, sizeof(*locs), 16);
        if (locs == NULL)
            return ST_ENOMEM;
        sc->locs = locs;
        sc->locs[n++] = step_frame_loc(p, p->last_line);
        pid = p->parent_id;
    }
    for (i = 0; i < n / 2; i++) {
        struct st_loc_view t = sc->locs[i];

        sc->locs[i] = sc->locs[n - 1 - i];
        sc->locs[n - 1 - i] = t;
    }
    locs = st_grow(sc->locs, &sc->loccap, n + 1, sizeof(*locs), 16);
    if (locs == NULL)
        return ST_ENOMEM;
    sc->locs = locs;
    sc->locs[n++] = step_frame_loc(f, lineno);
    *nlocs = n;
    return 0;
}

/* The "| thread <name>" suffix, once a second thread stepped. */
static struct st_str
step_thread(struct st_conn *c, struct st_region *rg, const struct st_frame *f,
            char *tmp, size_t tmplen)
{
    struct st_str none = {NULL, 0}, name;
    const struct st_thread *t;

    if (!rg->seen_tid) {
        rg->seen_tid = 1;
        rg->first_tid = f->tid;
    }
    else if (f->tid != rg->first_tid) {
        rg->multi_thread = 1;
    }
    if (!rg->multi_thread)
        return none;
    t = st__idmap_get(&c->threads, f->tid);
    if (t != NULL && st__session_str(c, t->name_sid) != NULL)
        return step_str_view(st__session_str(c, t->name_sid));
    /* An unnamed thread is shown by its number. */
    name.p = tmp;
    name.n = (size_t)snprintf(tmp, tmplen, "%u", f->tid);
    return name;
}

/* A record the level hides: its runtime goes to the thread's next record
 * shown (docs/STEP-STORE.md "Levels"). */
static void
step_carry(struct st_conn *c, uint32_t tid, uint64_t runtime_ns)
{
    struct st_thread *t = st__idmap_get(&c->threads, tid);

    if (t != NULL)
        t->carry_ns += runtime_ns;
}

/* Are rg's records rendered (views built): a text file or forwarding
 * wants them?  A tracer with a step store only keeps the state. */
static int
step_rendered(const struct st_conn *c, const struct st_region *rg)
{
    return rg->sink != NULL || c->srv->fwd != NULL;
}

/* Makes room for `ndead` dead values and the two view arrays. */
static int
step_scratch_reserve(struct st_scratch *sc, size_t ndead, size_t ng, size_t nl)
{
    char **dead;
    struct st_var_view *views;

    dead = st_grow(sc->dead, &sc->deadcap, ndead, sizeof(*dead), 16);
    if (dead == NULL)
        return ST_ENOMEM;
    sc->dead = dead;
    views = st_grow(sc->gviews, &sc->gcap, ng, sizeof(*views), 16);
    if (views == NULL)
        return ST_ENOMEM;
    sc->gviews = views;
    views = st_grow(sc->lviews, &sc->lcap, nl, sizeof(*views), 16);
    if (views == NULL)
        return ST_ENOMEM;
    sc->lviews = views;
    return 0;
}

/* Applies both diffs and fills the variable part of the view. */
static int
step_vars(struct st_conn *c, const struct st_msg *m, struct st_region *rg,
          struct st_frame *f, struct st_step_view *v)
{
    struct st_scratch *sc = &c->srv->scratch;
    size_t ng = m->u.step.nglobals, nl = m->u.step.nlocals;
    /* Without a text file only the state is kept (for the stores'
     * prologues): no views. */
    int rendered = step_rendered(c, rg);
    int changed = rg->var_mode == ST_VARMODE_CHANGED && rendered;
    int module = (f->flags & ST_FRAME_MODULE) != 0;
    int r;

    if (step_scratch_reserve(sc, ng + nl, ng, nl) != 0)
        return ST_ENOMEM;
    r = step_diff_apply(c, &f->scope->vars, m->u.step.globals, ng,
                        changed ? sc->gviews : NULL);
    if (r == 0)
        r = step_diff_apply(c, &f->locals, m->u.step.locals, nl,
                            changed ? sc->lviews : NULL);
    if (r != 0)
        return r;
    v->globals = sc->gviews;
    v->locals = sc->lviews;
    if (changed) {
        v->nglobals = ng;
        v->nlocals = module ? 0 : nl;
    }
    else if (rg->var_mode == ST_VARMODE_ALL && rendered) {
        /* Module-level code: its locals are the globals, shown once. */
        v->nglobals = f->scope->vars.n;
        v->nlocals = module ? 0 : f->locals.n;
        if (step_scratch_reserve(sc, 0, v->nglobals, v->nlocals) != 0)
            return ST_ENOMEM;
        v->globals = sc->gviews;
        v->locals = sc->lviews;
        step_state_views(c, &f->scope->vars, sc->gviews);
        if (!module)
            step_state_views(c, &f->locals, sc->lviews);
    }
    return 0;
}

/* Numbers the record in view v (its variables or event already set),
 * adds its runtime, thread and locations, and writes it to the region's
 * file.  @return 0 or ST_ENOMEM. */
static int
step_write(struct st_conn *c, struct st_region *rg, struct st_frame *f,
           struct st_step_view *v, uint64_t runtime_ns, uint32_t lineno)
{
    char tidbuf[16];
    struct st_thread *t = st__idmap_get(&c->threads, f->tid);
    int r;

    /* Only line steps are numbered (docs/LOG-FORMAT.md section 2): the
     * step count is the same at every level. */
    v->step = v->event == ST_EVENT_STEP ? ++rg->steps : rg->steps;
    v->runtime_ns = runtime_ns;
    if (t != NULL && t->carry_ns > 0) {
        v->runtime_ns += t->carry_ns;
        t->carry_ns = 0;
    }
    v->thread = step_thread(c, rg, f, tidbuf, sizeof(tidbuf));
    if (!step_rendered(c, rg))
        return 0; /* Steps only: the count and threads are kept. */
    r = step_locations(c, rg, f, lineno, &v->nlocs);
    v->locs = c->srv->scratch.locs;
    if (r == 0) {
        /* Forwarding (forward.c); with log_file: false, only that. */
        if (c->srv->fwd != NULL && st__forward_step(c, rg, f, v) != 0)
            return 0;
        if (rg->sink == NULL)
            return 0;
        st_record_format_step(st__sink_begin(rg->sink), v);
        /* File errors are counted for the ACK, not protocol errors. */
        st__sink_commit(rg->sink);
    }
    return r;
}

int
st__step_apply(struct st_conn *c, const struct st_msg *m)
{
    struct st_scratch *sc = &c->srv->scratch;
    struct st_frame *f = st__idmap_get(&c->frames, m->u.step.frame_id);
    /* A LINE is in the region its FRAME named. */
    uint32_t region_id = m->type == ST_MSG_LINE && f != NULL
                             ? f->region_id
                             : m->u.step.region_id;
    struct st_region *rg = st__idmap_get(&c->regions, region_id);
    struct st_step_view v;
    size_t i;
    int r;

    if (rg == NULL || f == NULL) {
        /* A STEP names its region first; a LINE only its frame. */
        int bad_frame = f == NULL && (rg != NULL || m->type == ST_MSG_LINE);

        st__conn_detail(c, "%s for %s %u",
                        m->type == ST_MSG_LINE ? "LINE" : "STEP",
                        bad_frame ? "frame" : "region",
                        bad_frame ? m->u.step.frame_id : region_id);
        return ST_ESTATE;
    }
    r = step_diff_check(c, m->u.step.globals, m->u.step.nglobals);
    if (r == 0)
        r = step_diff_check(c, m->u.step.locals, m->u.step.nlocals);
    if (r != 0)
        return r;
    if (rg->store != NULL) {
        st__store_put(c, rg->store);
        st__store_count(rg, 1, 0, f->tid);
    }
    /* Field by field: a memset of the view compiled to "rep stos",
     * whose start-up cost showed at this rate.  step_vars() sets the
     * variable part, the rest is set before rendering. */
    v.event = ST_EVENT_STEP;
    v.detail.p = NULL;
    v.detail.n = 0;
    v.var_mode = (int)rg->var_mode;
    v.globals = v.locals = NULL;
    v.nglobals = v.nlocals = 0;
    sc->ndead = 0;
    r = step_vars(c, m, rg, f, &v);
    /* ERROR and SILENT regions show no step records (docs/LOG-FORMAT.md
     * section 7); the variable state still follows the diffs. */
    if (r == 0 && rg->level < ST_LEVEL_ERROR)
        r = step_write(c, rg, f, &v, m->u.step.runtime_ns, m->u.step.lineno);
    else if (r == 0)
        step_carry(c, f->tid, m->u.step.runtime_ns);
    f->last_line = m->u.step.lineno;
    for (i = 0; i < sc->ndead; i++)
        free(sc->dead[i]);
    sc->ndead = 0;
    return r;
}

/* Is an event of this kind written at this level? */
static int
step_event_shown(uint32_t kind, uint32_t level)
{
    if (kind == ST_EVENT_EXCEPTION)
        return level <= ST_LEVEL_ERROR;
    return level == ST_LEVEL_DEBUG;
}

int
st__step_event(struct st_conn *c, const struct st_msg *m)
{
    struct st_scratch *sc = &c->srv->scratch;
    struct st_region *rg = st__idmap_get(&c->regions, m->u.event.region_id);
    struct st_frame *f = st__idmap_get(&c->frames, m->u.event.frame_id);
    struct st_step_view v;
    int r;

    if (rg == NULL || f == NULL) {
        st__conn_detail(c, "EVENT for %s %u", rg == NULL ? "region" : "frame",
                        rg == NULL ? m->u.event.region_id
                                   : m->u.event.frame_id);
        return ST_ESTATE;
    }
    if (rg->store != NULL) {
        st__store_put(c, rg->store);
        st__store_count(rg, 0, 0, f->tid);
    }
    f->last_line = m->u.event.lineno;
    if (!step_event_shown(m->u.event.kind, rg->level)) {
        step_carry(c, f->tid, m->u.event.runtime_ns);
        return 0;
    }
    memset(&v, 0, sizeof(v));
    v.event = (int)m->u.event.kind;
    r = st__session_escape(sc, m->u.event.detail.p, m->u.event.detail.n,
                           &v.detail.p, &v.detail.n);
    if (r != 0)
        return r;
    v.var_mode = (int)rg->var_mode;
    return step_write(c, rg, f, &v, m->u.event.runtime_ns, m->u.event.lineno);
}

int
st__step_async(struct st_conn *c, const struct st_msg *m)
{
    struct st_region *rg = st__idmap_get(&c->regions, m->u.async.region_id);

    if (rg == NULL) {
        st__conn_detail(c, "ASYNC for region %u", m->u.async.region_id);
        return ST_ESTATE;
    }
    if (rg->store != NULL) {
        st__store_put(c, rg->store);
        st__store_count(rg, 0, 1, 0);
    }
    if (rg->level >= ST_LEVEL_ERROR)
        return 0;
    ++rg->async_steps;
    /* Forwarding (forward.c); with log_file: false, only that. */
    if (c->srv->fwd != NULL &&
        st__forward_async(c, rg, m, rg->async_steps) != 0)
        return 0;
    if (rg->sink == NULL)
        return 0;
    /* The body is the agent's text, lines with newlines: written as is
     * (it is valid UTF-8 made by the agent; control characters other
     * than the line ends were escaped there). */
    st_record_format_async(st__sink_begin(rg->sink), rg->async_steps,
                           m->u.async.time_ns, (int)m->u.async.kind,
                           m->u.async.body);
    st__sink_commit(rg->sink);
    return 0;
}
