/*
 * State prints: has an object whose str() is its own code (a __str__ or
 * __repr__ written in Python) possibly changed since its text was taken?
 * See stateprint.h; the walk itself is statewalk.c's.
 *
 * Calling that str() at every line is what made real programs slow to
 * trace: a parser's node serialises its whole subtree, a graph view
 * renders its whole adjacency dict, on every line where it is in scope.
 * Instead the agent walks what the object holds, in C, running none of
 * the program's code, and hashes what it met; str() is called again only
 * when that hash differs (or the walk meets something it cannot see into,
 * or is too big: then str() is called at each step, as before).  A root
 * walked again before any of the program's code has run (the same object
 * under two names) reuses its print.
 *
 * What the walk cannot see: state the object does not reach (module
 * globals, the clock, a C object's insides, a class's attributes when the
 * class is changed without a new version tag).  A __str__ that shows such
 * state is shown again when the object's own state changes.
 */
#include "compat.h"

#include "clock.h"
#include "stateprint.h"
#include "statewalk.h"

#include <string.h>

/*
 * What walking a type's objects is worth: a walk pays when it is cheaper
 * than the str() it may save.  A class whose __str__ runs much Python
 * code (a parser's node serialising its subtree) is walked; a view whose
 * str() is a dict's repr in C, over as much as the walk would visit, is
 * not; nor is a type whose walks give up (something opaque or too big).
 * Per type, moving averages of both costs in clock ticks; a type not
 * worth walking is tried again one time in SP_RETRY.  Direct-mapped by
 * type; a collision only resets the figures.
 */
#define SP_TYPE_SLOTS 512u
#define SP_RETRY 16u

static struct type_cost {
    const PyTypeObject *type;
    uint64_t walk, str; /* Moving averages (ticks); 0: not known. */
    uint64_t hits;      /* Moving average of walks that spared a
                           str(), in 1/1024ths; starts at all. */
    uint32_t tick;
} type_cost[SP_TYPE_SLOTS];

static struct type_cost *
stateprint_type_cost(const PyTypeObject *t)
{
    struct type_cost *c =
        &type_cost[(((uintptr_t)t >> 4) * 0x9e3779b97f4a7c15ull >> 40) %
                   SP_TYPE_SLOTS];

    if (c->type != t) {
        memset(c, 0, sizeof(*c));
        c->type = t;
        c->hits = 1024;
    }
    return c;
}

static void
stateprint_average(uint64_t *avg, uint64_t x)
{
    *avg = *avg == 0 ? x + 1 : *avg - *avg / 4 + x / 4;
}

static int
stateprint_worth(const PyTypeObject *t)
{
    struct type_cost *c = stateprint_type_cost(t);

    /* A walk pays what the str() it spares costs, as often as it spares
     * one (objects changing at every step spare none); walks are
     * favoured up to twice that, since one that finds the state unchanged
     * also saves escaping and comparing the text. */
    if (c->walk == 0 || c->str == 0 || c->walk * 512 < c->str * c->hits)
        return 1;
    return ++c->tick % SP_RETRY == 0;
}

void
st__stateprint_str_cost(const PyTypeObject *t, uint64_t ticks)
{
    stateprint_average(&stateprint_type_cost(t)->str, ticks);
}

void
st__stateprint_outcome(const PyTypeObject *t, int spared)
{
    struct type_cost *c = stateprint_type_cost(t);

    c->hits = c->hits - c->hits / 8 + (spared ? 1024 : 0) / 8;
}

/*
 * Prints taken since the program's code last ran: the same root walked
 * again in the same step (a graph held as `G`, `R` and `self`) gives the
 * same print.  Direct-mapped by root; any run of the program's code (a
 * str(), the next line) forgets them all.
 */
#define SP_MEMO_SLOTS 16u

static uint64_t code_epoch = 1;
static struct {
    const void *root; /* Identity only. */
    uint64_t epoch;
    struct st_stateprint sp;
} memo[SP_MEMO_SLOTS];

void
st__stateprint_forget(void)
{
    code_epoch++;
}

int
st__stateprint_take(PyObject *v, struct st_stateprint *out)
{
    uint64_t t0;
    size_t k;
    int failed;

    memset(out, 0, sizeof(*out));
    if (!st__statewalk_ready(Py_TYPE(v)) || !stateprint_worth(Py_TYPE(v)))
        return 0;
    k = (((uintptr_t)v >> 4) * 0x9e3779b97f4a7c15ull >> 32) % SP_MEMO_SLOTS;
    if (memo[k].root == (const void *)v && memo[k].epoch == code_epoch) {
        *out = memo[k].sp;
        return 1;
    }
    t0 = st__clock_ticks();
    failed = st__statewalk_run(v, &out->hash, &out->nodes) != 0;
    /* A walk that gave up saves nothing: it costs as much as it can. */
    stateprint_average(&stateprint_type_cost(Py_TYPE(v))->walk,
                       failed ? UINT32_MAX : st__clock_ticks() - t0);
    if (failed) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    memo[k].root = v;
    memo[k].epoch = code_epoch;
    memo[k].sp = *out;
    return 1;
}
