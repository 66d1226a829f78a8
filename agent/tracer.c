/*
 * Per-event work: per-thread stacks of traced frames, the program's time,
 * suspended generators and coroutines, and regions.  Runs with the GIL
 * held, from the backend's hook; never raises into the traced program.
 */
#include "agent.h"

#include "backend.h"
#include "fastlocals.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t next_frame_id = 1;

static uint32_t next_scope_id = 1;
static uint32_t next_tid = 1;

/* initial-exec: no __tls_get_addr call per event (the module is loaded
 * with dlopen, so this takes a few bytes of the static TLS surplus). */
/*
 * Frame ids of ended frames are used again (a collector forgets a frame at
 * FRAME_END), so ids stay as small as the stack is deep and take one byte
 * on the wire, not five.
 */
static uint32_t *free_ids;
static size_t nfree_ids, capfree_ids;

static uint32_t
frame_id_new(void)
{
    if (nfree_ids > 0)
        return free_ids[--nfree_ids];
    return next_frame_id++;
}

/* @return 1 when e's id will be used again, 0 when it is kept. */
static int
frame_id_release(const struct st_fentry *e)
{
    uint32_t *p;

    if (e->gen_parent)
        return 0;
    p = st_grow(free_ids, &capfree_ids, nfree_ids + 1, sizeof(*p), 64);
    if (p == NULL)
        return 0;
    free_ids = p;
    free_ids[nfree_ids++] = e->id;
    return 1;
}

static _Thread_local struct st_tstate *tls
    __attribute__((tls_model("initial-exec")));
static struct st_tstate *all_tstates; /* Owned list. */

/* Suspended entries below which no purge runs. */
#define SUSP_PURGE_MIN 1024

/*
 * A generator or coroutine frame between a yield (or await) and its next
 * resumption keeps its identity and variable state here, keyed by its
 * frame and checked through a weak reference to its generator (so the
 * generator's lifetime is untouched and a reused frame address is never
 * mistaken for it).
 */
struct st_suspended {
    struct st_suspended *next; /* Owned: the rest of its bucket. */
    struct st_trace_region *region;  /* Borrowed: the region it was kept for. */
    PyObject *genref;          /* Owned weak reference. */
    struct st_fentry e;        /* Owned contents (locals snapshot). */
};

/*
 * The suspended frames, hashed by frame address: a program may keep
 * thousands of generators alive between their steps (iterators stored in
 * its data, fixtures, pipelines), and each resumption looks its frame up.
 * Entries whose generator died without finishing are dropped by a purge
 * that runs when the count has doubled since the last one.
 */
static struct st_suspended **susp_tab; /* Owned: susp_cap buckets. */
static size_t susp_cap;                /* 0 or a power of two. */
static size_t nsuspended;
static size_t susp_purge_at = SUSP_PURGE_MIN;

int
st__tracer_init(void)
{
    if (st__filter_init() != 0)
        return -1;
    st__outbox_init();
    return 0;
}

/* ---- per-thread state ---- */

/* Frees what a frame entry owns. */
static void
fentry_clear(struct st_fentry *e)
{
    st__vars_clear(&e->locals);
    st__threads_coro_free(e->coro);
    e->coro = NULL;
}

static void
tstate_reset_stack(struct st_tstate *ts)
{
    size_t i;

    for (i = 0; i < ts->depth; i++)
        fentry_clear(&ts->stack[i]);
    ts->depth = 0;
    ts->nbuilding = 0;
}

int
st__threads_being_built(PyObject *v)
{
    struct st_tstate *ts = tls;
    size_t i;

    if (ts == NULL || ts->nbuilding == 0)
        return 0;
    for (i = ts->depth; i > 0; i--)
        if (ts->stack[i - 1].building == (const void *)v)
            return 1;
    return 0;
}

/* The calling thread's state, created on first use. */
static struct st_tstate *
tstate_self(void)
{
    struct st_tstate *ts = tls;

    if (ts == NULL) {
        ts = calloc(1, sizeof(*ts));
        if (ts == NULL)
            return NULL;
        ts->tid = next_tid++;
        ts->next = all_tstates;
        all_tstates = ts;
        tls = ts;
    }
    return ts;
}

/* The calling thread's state for region r (reset on a new region). */
static struct st_tstate *
tstate_get(const struct st_trace_region *r)
{
    struct st_tstate *ts = tstate_self();

    if (ts == NULL)
        return NULL;
    if (ts->epoch != r->epoch) {
        tstate_reset_stack(ts);
        ts->epoch = r->epoch;
        ts->last_exit = st__clock_ticks();
        ts->prog = 0;
        ts->prog_at_step = 0;
    }
    return ts;
}

static struct st_fentry *
tstate_push(struct st_tstate *ts)
{
    struct st_fentry *e, *stack;

    stack = st_grow(ts->stack, &ts->cap, ts->depth + 1, sizeof(*stack), 32);
    if (stack == NULL)
        return NULL;
    ts->stack = stack;
    e = &ts->stack[ts->depth++];
    memset(e, 0, sizeof(*e));
    return e;
}

static size_t
scope_slot(const struct st_trace_region *r, const PyObject *globals)
{
    uint64_t h = (uint64_t)(uintptr_t)globals * 0x9e3779b97f4a7c15ull;

    return (size_t)(h >> 32) & (r->scope_cap - 1);
}

/* Doubles r's scope index.  @return 0, or -1 (out of memory). */
static int
scope_grow(struct st_trace_region *r)
{
    size_t cap = r->scope_cap ? r->scope_cap * 2 : 64, i;
    struct st_trace_scope **tab = calloc(cap, sizeof(*tab));
    struct st_trace_scope *sc;

    if (tab == NULL)
        return -1;
    free(r->scope_tab);
    r->scope_tab = tab;
    r->scope_cap = cap;
    for (sc = r->scopes; sc != NULL; sc = sc->next) {
        for (i = scope_slot(r, sc->globals); tab[i] != NULL;
             i = (i + 1) & (cap - 1))
            ;
        tab[i] = sc;
    }
    return 0;
}

/* The state of a module's globals, made at its first sight: looked up by
 * address (a program with hundreds of modules calls across them all the
 * time). */
static struct st_trace_scope *
scope_for(struct st_trace_region *r, PyObject *globals)
{
    struct st_trace_scope *sc;
    size_t i;

    if (r->scope_cap > 0) {
        for (i = scope_slot(r, globals); r->scope_tab[i] != NULL;
             i = (i + 1) & (r->scope_cap - 1))
            if (r->scope_tab[i]->globals == globals)
                return r->scope_tab[i];
    }
    /* At most half full. */
    if ((r->nscopes + 1) * 2 > r->scope_cap && scope_grow(r) != 0)
        return NULL;
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    sc->globals = Py_NewRef(globals);
    sc->id = next_scope_id++;
    sc->next = r->scopes;
    r->scopes = sc;
    for (i = scope_slot(r, globals); r->scope_tab[i] != NULL;
         i = (i + 1) & (r->scope_cap - 1))
        ;
    r->scope_tab[i] = sc;
    r->nscopes++;
    return sc;
}

/* Module-level code runs with its globals (g) as its locals. */
static int
frame_is_module_level(PyFrameObject *f, PyCodeObject *co, PyObject *g)
{
    PyObject *l;
    int same;

    if (g == NULL || (co->co_flags & CO_OPTIMIZED))
        return 0;
    l = st_frame_get_locals(f);
    same = g == l;
    Py_XDECREF(l);
    PyErr_Clear();
    return same;
}

/* The runtime of a record: program time since the thread's last one. */
static uint64_t
take_runtime(struct st_tstate *ts)
{
    uint64_t runtime = ts->prog - ts->prog_at_step;

    ts->prog_at_step = ts->prog;
    return st__clock_ticks_ns(runtime);
}

/* ---- suspended generators and coroutines ---- */

static void
suspended_free(struct st_suspended *s)
{
    fentry_clear(&s->e);
    Py_XDECREF(s->genref);
    free(s);
}

static size_t
susp_index(const PyFrameObject *f)
{
    uint64_t h = (uint64_t)(uintptr_t)f * 0x9e3779b97f4a7c15ull;

    return (size_t)(h >> 32) & (susp_cap - 1);
}

/* Doubles the table.  @return 0, or -1 (out of memory: it stays). */
static int
susp_grow(void)
{
    size_t old = susp_cap, cap = old ? old * 2 : 64, i;
    struct st_suspended **tab = calloc(cap, sizeof(*tab)), **from = susp_tab;

    if (tab == NULL)
        return -1;
    susp_tab = tab;
    susp_cap = cap;
    for (i = 0; i < old; i++) {
        while (from[i] != NULL) {
            struct st_suspended *s = from[i];
            size_t k = susp_index(s->e.frame);

            from[i] = s->next;
            s->next = tab[k];
            tab[k] = s;
        }
    }
    free(from);
    return 0;
}

/* Drops the entries for which drop(s, arg) says so. */
static void
susp_drop_if(int (*drop)(const struct st_suspended *, const void *),
             const void *arg)
{
    size_t i;

    for (i = 0; i < susp_cap; i++) {
        struct st_suspended **pp = &susp_tab[i];

        while (*pp != NULL) {
            struct st_suspended *s = *pp;

            if (drop(s, arg)) {
                *pp = s->next;
                suspended_free(s);
                nsuspended--;
            }
            else {
                pp = &s->next;
            }
        }
    }
}

static int
susp_is_dead(const struct st_suspended *s, const void *arg)
{
    (void)arg;
    return !st_weakref_alive_is(s->genref, NULL);
}

static int
susp_is_of(const struct st_suspended *s, const void *r)
{
    return s->region == r;
}

/* Drops entries whose generator is gone; the next purge waits until the
 * count has doubled, so that purges cost O(1) a suspension. */
static void
suspended_purge(void)
{
    susp_drop_if(susp_is_dead, NULL);
    susp_purge_at = nsuspended * 2 > SUSP_PURGE_MIN ? nsuspended * 2
                                                    : SUSP_PURGE_MIN;
}

/* Drops the entries kept for region r. */
static void
suspended_clear(const struct st_trace_region *r)
{
    susp_drop_if(susp_is_of, r);
}

/* Keeps the top entry of ts (a frame that yielded) for its resumption.
 * @return 1 when kept, 0 when it cannot be (it is then dropped). */
static int
suspend_top(struct st_trace_region *r, struct st_tstate *ts, PyFrameObject *f)
{
    PyObject *gen = st_frame_get_generator(f);
    struct st_suspended *s;
    size_t k;

    if (gen == NULL)
        return 0;
    if (nsuspended >= susp_purge_at)
        suspended_purge();
    if (nsuspended >= susp_cap && susp_grow() != 0 && susp_cap == 0) {
        Py_DECREF(gen);
        return 0;
    }
    s = calloc(1, sizeof(*s));
    if (s != NULL)
        s->genref = PyWeakref_NewRef(gen, NULL);
    Py_DECREF(gen);
    if (s == NULL || s->genref == NULL) {
        PyErr_Clear();
        free(s);
        return 0;
    }
    s->e = ts->stack[ts->depth - 1];
    s->e.frame = f;
    s->region = r;
    k = susp_index(f);
    s->next = susp_tab[k];
    susp_tab[k] = s;
    nsuspended++;
    ts->depth--;
    return 1;
}

/* Takes back the state of a resumed generator frame, or NULL. */
static struct st_suspended *
resume_take(const struct st_trace_region *r, PyFrameObject *f)
{
    struct st_suspended **pp;
    PyObject *gen = NULL;

    if (nsuspended == 0)
        return NULL;
    for (pp = &susp_tab[susp_index(f)]; *pp != NULL; pp = &(*pp)->next) {
        struct st_suspended *s = *pp;

        if (s->e.frame != f || s->region != r)
            continue;
        if (gen == NULL)
            gen = st_frame_get_generator(f);
        if (gen != NULL && st_weakref_alive_is(s->genref, gen)) {
            *pp = s->next;
            nsuspended--;
            Py_DECREF(gen);
            return s;
        }
    }
    Py_XDECREF(gen);
    PyErr_Clear();
    return NULL;
}

/* ---- events ---- */

/*
 * The hook's entry: the calling thread's region and state, with the
 * program's time since the hook last returned accounted for.  @return the
 * thread's state (busy until hook_exit), or NULL when there is nothing to
 * do (no region, or this thread is inside the hook already).
 */
static inline struct st_tstate *
hook_enter(struct st_trace_region **rp)
{
    struct st_trace_region *r = st__threads_region();
    struct st_tstate *ts;

    if (r == NULL)
        return NULL;
    ts = tstate_get(r);
    if (ts == NULL || ts->busy)
        return NULL;
    ts->busy = 1;
    st__clock_hook_ticks = st__clock_ticks();
    /* A thread moved to a CPU whose clock is a little behind: no time. */
    if ((int64_t)(st__clock_hook_ticks - ts->last_exit) > 0)
        ts->prog += st__clock_hook_ticks - ts->last_exit;
    if ((r->outputs & ST_OUT_FILE) && !st__sender_ok())
        st__region_reconnect(r);
    *rp = r;
    return ts;
}

/* The hook's exit: the program's time starts again. */
static inline void
hook_exit(struct st_tstate *ts)
{
    ts->last_exit = st__clock_ticks();
    ts->busy = 0;
}

/* Pushes a traced frame: a resumed one with its kept state, a new one
 * with a CALL record at DEBUG. */
static void
push_frame(struct st_trace_region *r, struct st_tstate *ts, PyFrameObject *f,
           PyCodeObject *co, struct st_codeinfo *ci)
{
    struct st_suspended *s = NULL;
    struct st_fentry *e;
    PyObject *globals;

    if (co->co_flags & ST_CO_SUSPENDABLE) {
        s = resume_take(r, f);
        /* A generator or coroutine that started before the region (like
         * the frame holding `with Tracer()`, or a coroutine awaiting in
         * `async with`) produces no records when it resumes. */
        if (s == NULL && !st_frame_is_first_start(f, co))
            return;
    }
    e = tstate_push(ts);
    if (e == NULL) {
        if (s != NULL)
            suspended_free(s);
        return;
    }
    if (s != NULL) {
        /* A resumption, not a call: same frame id, same variables. */
        *e = s->e;
        s->e.locals.ents = NULL;
        s->e.locals.n = s->e.locals.cap = 0;
        s->e.coro = NULL;
        suspended_free(s);
    }
    else {
        e->frame = f;
        e->ci = ci;
        e->id = frame_id_new();
        globals = st_frame_get_globals(f);
        e->module_level = frame_is_module_level(f, co, globals);
        if (globals != NULL)
            e->scope = scope_for(r, globals);
        Py_XDECREF(globals);
        if (ci->initialiser) {
            e->building = st__fastlocals_first_arg(f, co);
            ts->nbuilding += e->building != NULL;
        }
    }
    e->parent = ts->depth > 1 ? (uint32_t)(ts->depth - 1) : 0;
    if (e->parent != 0 && (co->co_flags & ST_CO_SUSPENDABLE))
        ts->stack[e->parent - 1].gen_parent = 1;
    if (s != NULL) {
        st__async_resume(r, e);
        return;
    }
    if (r->level == ST_LEVEL_DEBUG) {
        /* The def line (1 for a module): f_lineno is 0 in a module
         * frame that has not started. */
        struct st_record rec = {.kind = ST_EVENT_CALL,
                                .line = (uint32_t)co->co_firstlineno};

        rec.runtime = take_runtime(ts);
        st__emit_record(r, ts, ts->depth - 1, &rec);
    }
    if (co->co_flags & CO_COROUTINE)
        st__async_coro_start(r, &ts->stack[ts->depth - 1]);
}

int
st__tracer_on_call(PyFrameObject *f)
{
    PyCodeObject *co;
    struct st_codeinfo *ci;
    st_exc_state es;
    int rc = ST_HOOK_OK;
    struct st_trace_region *r;
    struct st_tstate *ts = hook_enter(&r);

    if (ts == NULL)
        return ST_HOOK_OK;

    ST_EXC_SAVE(es);
    co = PyFrame_GetCode(f);
    ci = st__filter_codeinfo(co, r);
    if (ci != NULL)
        push_frame(r, ts, f, co, ci);
    else
        /* Library code: the backend keeps its lines from the hook (the
         * issue's "turn line events off in frames that are not
         * traceable"). */
        rc = ST_HOOK_UNTRACED;
    Py_DECREF(co);
    ST_EXC_RESTORE(es);
    hook_exit(ts);
    return rc;
}

/* Records one line step of the frame on top of ts's stack. */
static void
record_step(struct st_trace_region *r, struct st_tstate *ts, PyFrameObject *f,
            uint32_t line)
{
    size_t idx = ts->depth - 1;
    struct st_fentry *e = &ts->stack[idx];
    struct st_record rec = {.kind = ST_EVENT_STEP, .gch = &ts->gch,
                            .lch = &ts->lch};
    PyObject *locals = NULL;

    rec.line = line;
    rec.runtime = take_runtime(ts);
    rec.vars = r->var_mode != ST_VARMODE_NONE;
    if (rec.vars) {
        st_exc_state es;

        /* The program ran since the last step. */
        st__stateprint_forget();
        /* str() runs the program's code: the exception in flight (none,
         * at a line event) is kept aside meanwhile. */
        ST_EXC_SAVE(es);
        st__vars_changes_reset(&ts->gch);
        st__vars_changes_reset(&ts->lch);
        /* A module's globals are shared by threads: one updates them at a
         * time; another one's step meanwhile shows no global changes (the
         * next step shows them). */
        if (e->scope != NULL && !e->scope->busy) {
            e->scope->busy = 1;
            st__vars_update(&e->scope->snap, e->scope->globals, r,
                                &ts->gch);
            e->scope->busy = 0;
        }
        if (!e->module_level) {
            struct st_codeinfo *ci = e->ci;

            if (!ci->fast_checked) {
                PyCodeObject *co = PyFrame_GetCode(f);

                (void)st__fastlocals_ok(co, &ci->fast_names);
                ci->fast_checked = 1;
                Py_DECREF(co);
            }
            if (ci->fast_names != NULL) {
                st__vars_update_slots(
                    &e->locals, ci->fast_names, st__fastlocals_get(f),
                    PyTuple_GET_SIZE(ci->fast_names), r, &ts->lch);
            }
            else {
                locals = st_frame_get_locals(f);
                if (locals != NULL)
                    st__vars_update(&e->locals, locals, r, &ts->lch);
            }
        }
        PyErr_Clear();
        st__emit_record(r, ts, idx, &rec);
        Py_XDECREF(locals);
        ST_EXC_RESTORE(es);
        return;
    }
    st__emit_record(r, ts, idx, &rec);
}

int
st__tracer_on_line(PyFrameObject *f, int line)
{
    st_exc_state es;
    int rc = ST_HOOK_OK;
    struct st_trace_region *r;
    struct st_tstate *ts = hook_enter(&r);

    if (ts == NULL)
        return ST_HOOK_OK;

    if (ts->depth > 0 && ts->stack[ts->depth - 1].frame == f) {
        struct st_fentry *e = &ts->stack[ts->depth - 1];

        if (line < 0)
            line = PyFrame_GetLineNumber(f);
        /* A line after a resumption: the await is over. */
        if (e->coro != NULL) {
            ST_EXC_SAVE(es);
            st__async_line(r, e, (uint32_t)line);
            ST_EXC_RESTORE(es);
        }
        /* ERROR and SILENT write no step records. */
        if (r->level < ST_LEVEL_ERROR)
            record_step(r, ts, f, (uint32_t)line);
    }
    else {
        rc = ST_HOOK_NOT_MINE;
    }
    hook_exit(ts);
    return rc;
}

/* RETURN record (DEBUG): the value, or "(raised)" when an exception ends
 * the frame. */
static void
record_return(struct st_trace_region *r, struct st_tstate *ts, PyFrameObject *f,
              int raised, PyObject *arg)
{
    struct st_record rec = {.kind = ST_EVENT_RETURN};
    char *value = NULL;

    rec.line = (uint32_t)PyFrame_GetLineNumber(f);
    rec.runtime = take_runtime(ts);
    if (raised) {
        rec.kind = ST_EVENT_RETURN_EXC;
    }
    else {
        value = st__render_value(arg, r->repr_limit, &rec.detail_len);
        rec.detail = value;
    }
    st__emit_record(r, ts, ts->depth - 1, &rec);
    free(value);
}

int
st__tracer_on_return(PyFrameObject *f, PyObject *arg, int how)
{
    int rc = ST_HOOK_OK;
    struct st_trace_region *r;
    struct st_tstate *ts = hook_enter(&r);

    if (ts == NULL)
        return ST_HOOK_OK;

    if (ts->depth > 0 && ts->stack[ts->depth - 1].frame == f) {
        struct st_fentry *e = &ts->stack[ts->depth - 1];
        PyCodeObject *co = PyFrame_GetCode(f);
        int suspending;
        st_exc_state es;

        ST_EXC_SAVE(es);
        if (how == ST_RET_GUESS)
            suspending = st_frame_is_suspending(f, co);
        else
            suspending = how == ST_RET_YIELD &&
                         (co->co_flags & ST_CO_SUSPENDABLE);
        if (suspending)
            st__async_suspend(r, e, f);
        if (suspending && suspend_top(r, ts, f)) {
            /* A yield or an await: the frame comes back. */
        }
        else {
            int raised = how == ST_RET_GUESS
                             ? st_return_is_exception(f, co, arg)
                             : how == ST_RET_RAISE;

            if (r->level == ST_LEVEL_DEBUG)
                record_return(r, ts, f, raised, arg);
            st__async_coro_end(r, e, !raised);
            /* An id used again needs no FRAME_END: the next FRAME with it
             * replaces the frame (PROTOCOL.md).  Ids kept (parents of
             * generators) get one. */
            if (!frame_id_release(e))
                st__emit_frame_end(r, e);
            ts->nbuilding -= e->building != NULL;
            fentry_clear(e);
            ts->depth--;
        }
        Py_DECREF(co);
        ST_EXC_RESTORE(es);
    }
    else {
        rc = ST_HOOK_NOT_MINE;
    }
    hook_exit(ts);
    return rc;
}

/* Was the exception raised in this frame (or in code it called that is
 * not traced), rather than passing through from a traced callee? */
static int
raised_here(const struct st_trace_region *r, PyObject *tb)
{
    PyTracebackObject *t;

    if (tb == NULL || !PyTraceBack_Check(tb))
        return 1;
    for (t = ((PyTracebackObject *)tb)->tb_next; t != NULL; t = t->tb_next) {
        PyCodeObject *co = PyFrame_GetCode(t->tb_frame);
        int traced = st__filter_codeinfo(co, r) != NULL;

        Py_DECREF(co);
        if (traced)
            return 0;
    }
    return 1;
}

int
st__tracer_on_exception(PyFrameObject *f, PyObject *value, PyObject *tb)
{
    st_exc_state es;
    struct st_trace_region *r;
    struct st_tstate *ts = hook_enter(&r);

    if (ts == NULL)
        return ST_HOOK_OK;

    if (ts->depth > 0 && ts->stack[ts->depth - 1].frame == f &&
        value != NULL) {
        struct st_fentry *e = &ts->stack[ts->depth - 1];

        ST_EXC_SAVE(es);
        if ((PyErr_GivenExceptionMatches(value, PyExc_StopIteration) ||
             PyErr_GivenExceptionMatches(value, PyExc_StopAsyncIteration)) &&
            st_frame_at_iteration(f)) {
            /* An iterator saying it is done to a for loop, yield from,
             * await or async for (some versions report it as an
             * exception): not the program's exception, and an await that
             * ends so went well. */
            st__async_settle(r, e, 1);
            ST_EXC_RESTORE(es);
            hook_exit(ts);
            return 0;
        }
        /* An exception right after a resumption. */
        st__async_exception(r, e, value);
        /* Each raise is a record (a re-raise too); an exception passing
         * through from a traced callee was recorded there. */
        if (r->level <= ST_LEVEL_ERROR && raised_here(r, tb)) {
            struct st_record rec = {.kind = ST_EVENT_EXCEPTION};
            char *detail = st__render_exception(value, r->repr_limit,
                                                 &rec.detail_len);

            rec.line = (uint32_t)PyFrame_GetLineNumber(f);
            rec.runtime = take_runtime(ts);
            rec.detail = detail;
            st__emit_record(r, ts, ts->depth - 1, &rec);
            free(detail);
        }
        ST_EXC_RESTORE(es);
    }
    hook_exit(ts);
    return 0;
}

/* ---- the collector connection: loss, reconnection, fork ---- */

void
st__region_reset_wire_state(struct st_trace_region *r)
{
    struct st_trace_scope *sc;
    struct st_tstate *ts;
    struct st_suspended *s;
    size_t i;

    /* The collector will see everything as new: drop what was shown. */
    for (sc = r->scopes; sc != NULL; sc = sc->next)
        st__vars_clear(&sc->snap);
    for (ts = all_tstates; ts != NULL; ts = ts->next)
        if (ts->epoch == r->epoch)
            for (i = 0; i < ts->depth; i++)
                st__vars_clear(&ts->stack[i].locals);
    for (i = 0; i < susp_cap; i++)
        for (s = susp_tab[i]; s != NULL; s = s->next)
            st__vars_clear(&s->e.locals);
    r->steps = 0;
    r->first_tid = 0;
    r->multi_thread = 0;
    r->file_announced = 0;
}

int
st__region_reconnect(struct st_trace_region *r)
{
    if (st__sender_ok())
        return 1;
    if (!st__collector_reconnect_due())
        return 0;
    /* What was being batched for the old connection cannot be sent on a
     * new one (ids and announcements are per connection). */
    r->lost += st__outbox_discard();
    if (!st__collector_reconnect())
        return 0;
    st__region_reset_wire_state(r);
    return 1;
}

void
st__tracer_after_fork_child(void)
{
    struct st_tstate **pp = &all_tstates;
    struct st_trace_region *r;
    int own = st__collector_after_fork_child();

    /* Only the forking thread lives on in the child. */
    while (*pp != NULL) {
        struct st_tstate *ts = *pp;

        if (ts == tls) {
            pp = &ts->next;
            continue;
        }
        *pp = ts->next;
        tstate_reset_stack(ts);
        free(ts->stack);
        st__vars_changes_reset(&ts->gch);
        st__vars_changes_reset(&ts->lch);
        free(ts->gch.c);
        free(ts->lch.c);
        Py_XDECREF(ts->name);
        Py_XDECREF(ts->region_obj);
        free(ts);
    }
    if (tls != NULL) {
        /* Its name is looked up again (a multiprocessing child renames
         * nothing, but the parent's cached name is the parent's). */
        Py_CLEAR(tls->name);
        tls->announced_gen = 0;
    }
    r = st__threads_region();
    if (r != NULL && !own) {
        st__region_reset_wire_state(r);
        r->lost = 0;
        r->dropped_base = st__collector_dropped();
    }
}

int
st__threads_in_traced_code(void)
{
    struct st_trace_region *r = st__threads_region();

    return r != NULL && tls->epoch == r->epoch && tls->depth > 0;
}

/* ---- code locations switched off (sys.monitoring DISABLE) ---- */

/*
 * Events switched off at a location stay off for every thread until the
 * backend restarts them.  They are switched off only for code that the
 * filter of the live regions does not trace; while regions with different
 * filters are live, nothing is switched off.
 */
enum { OFF_NONE, OFF_KEY };
static int off_state = OFF_NONE;
static uint64_t off_key;

/* Is a region filtering otherwise than r live in some thread? */
static int
other_filter_live(const struct st_trace_region *r)
{
    struct st_tstate *ts;

    for (ts = all_tstates; ts != NULL; ts = ts->next)
        if (ts->region != NULL && !ts->region->finished &&
            ts->region->filter.key != r->filter.key)
            return 1;
    return 0;
}

int
st__threads_any_live(void)
{
    struct st_tstate *ts;

    for (ts = all_tstates; ts != NULL; ts = ts->next)
        if (ts->region != NULL && !ts->region->finished)
            return 1;
    return 0;
}

/* r becomes live in a thread: settle what may be switched off. */
static void
events_off_policy(const struct st_trace_region *r)
{
    int mixed;

    if (off_state == OFF_KEY && off_key == r->filter.key)
        return;
    mixed = other_filter_live(r);
    if (off_state == OFF_KEY)
        st__backend_restart();
    if (mixed) {
        off_state = OFF_NONE;
    }
    else {
        off_state = OFF_KEY;
        off_key = r->filter.key;
    }
}

int
st__code_events_off_ok(PyCodeObject *co)
{
    struct st_trace_region *r = st__threads_region();

    if (r == NULL || off_state != OFF_KEY || r->filter.key != off_key)
        return 0;
    return st__filter_codeinfo(co, r) == NULL;
}

/* ---- regions ---- */

struct st_trace_region *
st__threads_region(void)
{
    struct st_tstate *ts = tls;

    if (ts == NULL || ts->region == NULL)
        return NULL;
    if (ts->region->finished) {
        /* Ended by its owner: let go of it (this may free it). */
        ts->region = NULL;
        Py_CLEAR(ts->region_obj);
        return NULL;
    }
    return ts->region;
}

PyObject *
st__region_enter(struct st_trace_region *r, PyObject *obj, int fresh)
{
    static uint64_t epochs;
    struct st_tstate *ts = tstate_self();
    PyObject *prev;
    uint64_t now;

    if (ts == NULL)
        return NULL;
    prev = ts->region_obj;  /* The reference passes to the caller. */
    ts->region = r;
    ts->region_obj = Py_NewRef(obj);
    r->finished = 0;
    st__clock_calibrate();
    now = st__clock_now_ns();
    if (fresh) {
        r->epoch = ++epochs;
        r->dropped_base = st__collector_dropped();
        /* A region resumed after a pause (a traced generator) keeps its
         * start: async records' Time is since the region began. */
        if (r->start_ns == 0)
            r->start_ns = now;
    }
    ts = tstate_get(r);
    if (ts != NULL && fresh)
        ts->last_exit = st__clock_ticks();
    events_off_policy(r);
    if (prev != NULL && prev == obj) {
        Py_DECREF(prev);
        prev = NULL;
    }
    return prev;
}

void
st__region_leave(PyObject *prev)
{
    struct st_tstate *ts = tls;

    if (ts == NULL)
        return;
    Py_CLEAR(ts->region_obj);
    ts->region = NULL;
    if (prev != NULL) {
        ts->region_obj = Py_NewRef(prev);
        ts->region = st__region_of(prev);
        /* An outer region comes back (a nested one ended): what the inner
         * one switched off may be traced by the outer one. */
        if (ts->region != NULL && !ts->region->finished)
            events_off_policy(ts->region);
    }
}

uint64_t
st__region_finish(struct st_trace_region *r)
{
    struct st_tstate *ts;

    for (ts = all_tstates; ts != NULL; ts = ts->next)
        if (ts->epoch == r->epoch) {
            tstate_reset_stack(ts);
            ts->epoch = 0;
        }
    r->finished = 1;
    suspended_clear(r);
    while (r->scopes != NULL) {
        struct st_trace_scope *sc = r->scopes;

        r->scopes = sc->next;
        st__vars_clear(&sc->snap);
        Py_DECREF(sc->globals);
        free(sc);
    }
    free(r->scope_tab);
    r->scope_tab = NULL;
    r->scope_cap = r->nscopes = 0;
    return st__emit_region_end(r);
}

void
st__region_free(struct st_trace_region *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->filter.nworkspaces; i++)
        free(r->filter.workspaces[i]);
    free(r->filter.workspaces);
    for (i = 0; i < r->filter.nexcluded; i++)
        free(r->filter.excluded[i]);
    free(r->filter.excluded);
    free(r->filter.pkgdir);
    free(r->filter.cwd);
    Py_XDECREF(r->filter.functions);
    Py_XDECREF(r->hidden_types);
    Py_XDECREF(r->log_dir);
    Py_XDECREF(r->origin);
    free(r);
}
