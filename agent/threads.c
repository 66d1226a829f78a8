/*
 * Per-thread state; see threads.h.
 */
#include "compat.h"

#include "steptrace/buf.h"

#include "clock.h"
#include "threads.h"
#include "vars.h"

#include <stdlib.h>
#include <string.h>

_Thread_local struct st_tstate *st__threads_tls
    __attribute__((tls_model("initial-exec")));
static struct st_tstate *all_tstates; /* Owned list. */
static uint32_t next_tid = 1;

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
    struct st_suspended *next;      /* Owned: the rest of its bucket. */
    struct st_trace_region *region; /* Borrowed: the region it was kept
                                       for. */
    PyObject *genref;               /* Owned weak reference. */
    struct st_fentry e;             /* Owned contents (locals snapshot). */
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

/* ---- thread states ---- */

void
st__threads_coro_free(struct st_coro *c)
{
    if (c == NULL)
        return;
    free(c->expr);
    Py_XDECREF(c->exc);
    free(c);
}

/* Frees what a frame entry owns. */
static void
threads_fentry_clear(struct st_fentry *e)
{
    st__vars_clear(&e->locals);
    st__threads_coro_free(e->coro);
    e->coro = NULL;
}

static void
threads_reset_stack(struct st_tstate *ts)
{
    size_t i;

    for (i = 0; i < ts->depth; i++)
        threads_fentry_clear(&ts->stack[i]);
    ts->depth = 0;
    ts->nbuilding = 0;
}

struct st_tstate *
st__threads_self(void)
{
    struct st_tstate *ts = st__threads_tls;

    if (ts == NULL) {
        ts = calloc(1, sizeof(*ts));
        if (ts == NULL)
            return NULL;
        ts->tid = next_tid++;
        ts->next = all_tstates;
        all_tstates = ts;
        st__threads_tls = ts;
    }
    return ts;
}

struct st_tstate *
st__threads_join(const struct st_trace_region *r)
{
    struct st_tstate *ts = st__threads_self();

    if (ts == NULL)
        return NULL;
    if (ts->epoch != r->epoch) {
        threads_reset_stack(ts);
        ts->epoch = r->epoch;
        ts->last_exit = st__clock_ticks();
        ts->prog = 0;
        ts->prog_at_step = 0;
    }
    return ts;
}

struct st_trace_region *
st__threads_let_go(struct st_tstate *ts)
{
    /* Ended by its owner: let go of it (this may free it). */
    ts->region = NULL;
    Py_CLEAR(ts->region_obj);
    return NULL;
}

struct st_fentry *
st__threads_push(struct st_tstate *ts)
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

void
st__threads_pop(struct st_tstate *ts)
{
    struct st_fentry *e = &ts->stack[ts->depth - 1];

    ts->nbuilding -= e->building != NULL;
    threads_fentry_clear(e);
    ts->depth--;
}

int
st__threads_being_built(PyObject *v)
{
    struct st_tstate *ts = st__threads_tls;
    size_t i;

    if (ts == NULL || ts->nbuilding == 0)
        return 0;
    for (i = ts->depth; i > 0; i--)
        if (ts->stack[i - 1].building == (const void *)v)
            return 1;
    return 0;
}

/* ---- suspended generators and coroutines ---- */

static void
threads_susp_free(struct st_suspended *s)
{
    threads_fentry_clear(&s->e);
    Py_XDECREF(s->genref);
    free(s);
}

static size_t
threads_susp_index(const PyFrameObject *f)
{
    uint64_t h = (uint64_t)(uintptr_t)f * 0x9e3779b97f4a7c15ull;

    return (size_t)(h >> 32) & (susp_cap - 1);
}

/* Doubles the table.  @return 0, or -1 (out of memory: it stays). */
static int
threads_susp_grow(void)
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
            size_t k = threads_susp_index(s->e.frame);

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
threads_susp_drop_if(int (*drop)(const struct st_suspended *, const void *),
                     const void *arg)
{
    size_t i;

    for (i = 0; i < susp_cap; i++) {
        struct st_suspended **pp = &susp_tab[i];

        while (*pp != NULL) {
            struct st_suspended *s = *pp;

            if (drop(s, arg)) {
                *pp = s->next;
                threads_susp_free(s);
                nsuspended--;
            }
            else {
                pp = &s->next;
            }
        }
    }
}

static int
threads_susp_is_dead(const struct st_suspended *s, const void *arg)
{
    (void)arg;
    return !st_weakref_alive_is(s->genref, NULL);
}

static int
threads_susp_is_of(const struct st_suspended *s, const void *r)
{
    return s->region == r;
}

/* Drops entries whose generator is gone; the next purge waits until the
 * count has doubled, so that purges cost O(1) a suspension. */
static void
threads_susp_purge(void)
{
    threads_susp_drop_if(threads_susp_is_dead, NULL);
    susp_purge_at = nsuspended * 2 > SUSP_PURGE_MIN ? nsuspended * 2
                                                    : SUSP_PURGE_MIN;
}

void
st__threads_end_suspended(const struct st_trace_region *r)
{
    threads_susp_drop_if(threads_susp_is_of, r);
}

int
st__threads_suspend(struct st_trace_region *r, struct st_tstate *ts,
                    PyFrameObject *f)
{
    PyObject *gen = st_frame_get_generator(f);
    struct st_suspended *s;
    size_t k;

    if (gen == NULL)
        return 0;
    if (nsuspended >= susp_purge_at)
        threads_susp_purge();
    if (nsuspended >= susp_cap && threads_susp_grow() != 0 && susp_cap == 0) {
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
    k = threads_susp_index(f);
    s->next = susp_tab[k];
    susp_tab[k] = s;
    nsuspended++;
    ts->depth--;
    return 1;
}

/* Takes back the state of a resumed generator frame, or NULL. */
static struct st_suspended *
threads_resume_take(const struct st_trace_region *r, PyFrameObject *f)
{
    struct st_suspended **pp;
    PyObject *gen = NULL;

    if (nsuspended == 0)
        return NULL;
    for (pp = &susp_tab[threads_susp_index(f)]; *pp != NULL;
         pp = &(*pp)->next) {
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

struct st_fentry *
st__threads_resume(struct st_tstate *ts, const struct st_trace_region *r,
                   PyFrameObject *f, int *kept)
{
    struct st_suspended *s = threads_resume_take(r, f);
    struct st_fentry *e;

    *kept = s != NULL;
    if (s == NULL)
        return NULL;
    e = st__threads_push(ts);
    if (e != NULL) {
        /* A resumption, not a call: same frame id, same variables. */
        *e = s->e;
        s->e.locals.ents = NULL;
        s->e.locals.n = s->e.locals.cap = 0;
        s->e.coro = NULL;
    }
    threads_susp_free(s);
    return e;
}

/* ---- all threads ---- */

void
st__threads_end_stacks(const struct st_trace_region *r)
{
    struct st_tstate *ts;

    for (ts = all_tstates; ts != NULL; ts = ts->next)
        if (ts->epoch == r->epoch) {
            threads_reset_stack(ts);
            ts->epoch = 0;
        }
}

void
st__threads_forget_shown(const struct st_trace_region *r)
{
    struct st_tstate *ts;
    struct st_suspended *s;
    size_t i;

    for (ts = all_tstates; ts != NULL; ts = ts->next)
        if (ts->epoch == r->epoch)
            for (i = 0; i < ts->depth; i++)
                st__vars_clear(&ts->stack[i].locals);
    for (i = 0; i < susp_cap; i++)
        for (s = susp_tab[i]; s != NULL; s = s->next)
            st__vars_clear(&s->e.locals);
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

int
st__threads_other_filter_live(uint64_t key)
{
    struct st_tstate *ts;

    for (ts = all_tstates; ts != NULL; ts = ts->next)
        if (ts->region != NULL && !ts->region->finished &&
            ts->region->filter.key != key)
            return 1;
    return 0;
}

int
st__threads_in_traced_code(void)
{
    struct st_trace_region *r = st__threads_region();

    return r != NULL && st__threads_tls->epoch == r->epoch &&
           st__threads_tls->depth > 0;
}

void
st__threads_after_fork_child(void)
{
    struct st_tstate **pp = &all_tstates, *self = st__threads_tls;

    /* Only the forking thread lives on in the child. */
    while (*pp != NULL) {
        struct st_tstate *ts = *pp;

        if (ts == self) {
            pp = &ts->next;
            continue;
        }
        *pp = ts->next;
        threads_reset_stack(ts);
        free(ts->stack);
        st__vars_changes_reset(&ts->gch);
        st__vars_changes_reset(&ts->lch);
        free(ts->gch.c);
        free(ts->lch.c);
        Py_XDECREF(ts->name);
        Py_XDECREF(ts->region_obj);
        free(ts);
    }
    if (self != NULL) {
        /* Its name is looked up again (a multiprocessing child renames
         * nothing, but the parent's cached name is the parent's). */
        Py_CLEAR(self->name);
        self->announced_gen = 0;
    }
}
