/*
 * Regions; see region.h.  A region is per thread (threads.h): entering
 * points the calling thread's state at it, and a thread's state holds a
 * reference to its Region object.
 */
#include "compat.h"

#include "clock.h"
#include "collector.h"
#include "emit.h"
#include "filter.h"
#include "outbox.h"
#include "region.h"
#include "sender.h"
#include "threads.h"
#include "vars.h"

#include <stdlib.h>
#include <string.h>

/* ---- Region: owns a struct st_trace_region ---- */

typedef struct {
    PyObject_HEAD
    struct st_trace_region *r; /* Owned. */
} RegionObject;

static PyObject *RegionType; /* Owned heap type. */
static uint32_t next_region_id = 1;
static uint32_t next_scope_id = 1;

/* Frees what a region owns, and the region (NULL: nothing). */
static void
region_free(struct st_trace_region *r)
{
    if (r == NULL)
        return;
    st__filter_close(&r->filter);
    Py_XDECREF(r->hidden_types);
    Py_XDECREF(r->log_dir);
    Py_XDECREF(r->origin);
    free(r);
}

static void
region_dealloc(RegionObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    region_free(self->r);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyType_Slot region_slots[] = {
    {Py_tp_dealloc, region_dealloc},
    {Py_tp_doc, "A traced region's recording state (internal)."},
    {0, NULL},
};

static PyType_Spec region_spec = {
    .name = "steptrace._agent.Region",
    .basicsize = sizeof(RegionObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = region_slots,
};

int
st__region_add_type(PyObject *m)
{
    if (RegionType == NULL &&
        (RegionType = PyType_FromSpec(&region_spec)) == NULL)
        return -1;
    return PyModule_AddObjectRef(m, "Region", RegionType);
}

struct st_trace_region *
st__region_of(PyObject *obj)
{
    if (!PyObject_TypeCheck(obj, (PyTypeObject *)RegionType)) {
        PyErr_SetString(PyExc_TypeError, "expected a Region");
        return NULL;
    }
    return ((RegionObject *)obj)->r;
}

/* The Region object owning r (freed with it).  @return a new reference,
 * or NULL with an exception raised (r is freed then). */
static PyObject *
region_wrap(struct st_trace_region *r)
{
    RegionObject *ro = PyObject_New(RegionObject, (PyTypeObject *)RegionType);

    if (ro == NULL) {
        region_free(r);
        return NULL;
    }
    ro->r = r;
    r->owner = (PyObject *)ro;
    return (PyObject *)ro;
}

PyObject *
st__region_py_new(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"tracer_id",     "log_dir",
                             "level",         "var_mode",
                             "outputs",       "repr_limit",
                             "max_log_bytes", "max_log_files",
                             "workspace",     "excluded",
                             "pkgdir",        "cwd",
                             "functions",     "hidden_types",
                             "on_full_drop",  "async_mode",
                             "trace_tasks",   "await_threshold_ms",
                             "formats",       NULL};
    unsigned int tracer_id, max_files;
    PyObject *log_dir, *workspace, *excluded, *functions, *hidden;
    int level, var_mode, outputs, drop = 0, async_mode = 0, tasks = 1;
    unsigned int formats = ST_FORMAT_TEXT;
    double threshold_ms = 0.0;
    Py_ssize_t repr_limit;
    unsigned long long max_bytes;
    const char *pkgdir, *cwd;
    struct st_trace_region *r;

    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "IUiiinKIOO!ssOO!|pppdI:region", kwlist, &tracer_id,
            &log_dir, &level, &var_mode, &outputs, &repr_limit, &max_bytes,
            &max_files, &workspace, &PyTuple_Type, &excluded, &pkgdir, &cwd,
            &functions, &PyTuple_Type, &hidden, &drop, &async_mode, &tasks,
            &threshold_ms, &formats))
        return NULL;
    if (formats == 0 || (formats & ~ST_FORMAT_MASK_) != 0) {
        PyErr_SetString(PyExc_ValueError,
                        "formats must be 1 (text), 2 (steps) or 3 (both)");
        return NULL;
    }
    if (!(threshold_ms >= 0.0 && threshold_ms < 1e12)) {
        PyErr_SetString(PyExc_ValueError,
                        "await_threshold_ms must be a number, 0 or more");
        return NULL;
    }
    if (repr_limit < 1) {
        PyErr_SetString(PyExc_ValueError, "repr_limit must be at least 1");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PyErr_NoMemory();
    r->id = next_region_id++;
    r->tracer_id = tracer_id;
    r->level = level;
    r->var_mode = var_mode;
    r->outputs = outputs;
    r->repr_limit = (size_t)repr_limit;
    r->max_log_bytes = max_bytes;
    r->max_log_files = max_files;
    r->drop_when_full = drop;
    r->async_mode = async_mode;
    r->trace_tasks = tasks;
    r->await_threshold_ns = (uint64_t)(threshold_ms * 1e6);
    r->formats = formats;
    /* A step store renders any level later: every event is recorded
     * (docs/STEP-STORE.md); SILENT still records nothing. */
    r->record_all = (formats & ST_FORMAT_STEPS) != 0 &&
                    (outputs & ST_OUT_FILE) != 0 && level < ST_LEVEL_SILENT;
    r->log_dir = Py_NewRef(log_dir);
    r->hidden_types = Py_NewRef(hidden);
    if (st__filter_init(&r->filter, workspace, excluded, pkgdir, cwd,
                        functions) != 0) {
        region_free(r);
        return NULL;
    }
    return region_wrap(r);
}

/* ---- module globals ---- */

static size_t
region_scope_slot(const struct st_trace_region *r, const PyObject *globals)
{
    uint64_t h = (uint64_t)(uintptr_t)globals * 0x9e3779b97f4a7c15ull;

    return (size_t)(h >> 32) & (r->scope_cap - 1);
}

/* Doubles r's scope index.  @return 0, or -1 (out of memory). */
static int
region_scope_grow(struct st_trace_region *r)
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
        for (i = region_scope_slot(r, sc->globals); tab[i] != NULL;
             i = (i + 1) & (cap - 1))
            ;
        tab[i] = sc;
    }
    return 0;
}

/* Looked up by address: a program with hundreds of modules calls across
 * them all the time. */
struct st_trace_scope *
st__region_scope(struct st_trace_region *r, PyObject *globals)
{
    struct st_trace_scope *sc;
    size_t i;

    if (r->scope_cap > 0) {
        for (i = region_scope_slot(r, globals); r->scope_tab[i] != NULL;
             i = (i + 1) & (r->scope_cap - 1))
            if (r->scope_tab[i]->globals == globals)
                return r->scope_tab[i];
    }
    /* At most half full. */
    if ((r->nscopes + 1) * 2 > r->scope_cap && region_scope_grow(r) != 0)
        return NULL;
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    sc->globals = Py_NewRef(globals);
    sc->id = next_scope_id++;
    sc->next = r->scopes;
    r->scopes = sc;
    for (i = region_scope_slot(r, globals); r->scope_tab[i] != NULL;
         i = (i + 1) & (r->scope_cap - 1))
        ;
    r->scope_tab[i] = sc;
    r->nscopes++;
    return sc;
}

/* Frees the states of the module globals r has seen. */
static void
region_scopes_free(struct st_trace_region *r)
{
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
}

/* ---- entering, leaving, finishing ---- */

PyObject *
st__region_enter(PyObject *obj, int fresh)
{
    static uint64_t epochs;
    struct st_trace_region *r = ((RegionObject *)obj)->r;
    struct st_tstate *ts = st__threads_self();
    PyObject *prev;
    uint64_t now;

    if (ts == NULL)
        return NULL;
    prev = ts->region_obj; /* The reference passes to the caller. */
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
    ts = st__threads_get(r);
    if (ts != NULL && fresh)
        ts->last_exit = st__clock_ticks();
    if (prev != NULL && prev == obj) {
        Py_DECREF(prev);
        prev = NULL;
    }
    return prev;
}

void
st__region_leave(PyObject *prev)
{
    struct st_tstate *ts = st__threads_tls;

    if (ts == NULL)
        return;
    Py_CLEAR(ts->region_obj);
    ts->region = NULL;
    if (prev != NULL) {
        ts->region_obj = Py_NewRef(prev);
        ts->region = ((RegionObject *)prev)->r;
    }
}

static int region_reconnect(struct st_trace_region *r, int now);

uint64_t
st__region_finish(struct st_trace_region *r)
{
    st__threads_end_stacks(r);
    r->finished = 1;
    st__threads_end_suspended(r);
    region_scopes_free(r);
    if ((r->outputs & ST_OUT_FILE) && (r->lost > 0 || !st__sender_ok()))
        region_reconnect(r, 1);
    return st__emit_region_end(r);
}

/* ---- the collector connection ---- */

/* Forgets what the collector was sent for region r (a new connection or
 * a forked child): variable states, step count, threads. */
static void
region_reset_wire_state(struct st_trace_region *r)
{
    struct st_trace_scope *sc;

    /* The collector will see everything as new: drop what was shown. */
    for (sc = r->scopes; sc != NULL; sc = sc->next)
        st__vars_clear(&sc->snap);
    st__threads_forget_shown(r);
    r->steps = 0;
    r->first_tid = 0;
    r->multi_thread = 0;
    r->file_announced = 0;
}

/* Reconnects, at most once a second unless `now`: a region's end tries
 * at once (as a region's start does), so that its count of lost records
 * reaches a file. */
static int
region_reconnect(struct st_trace_region *r, int now)
{
    if (st__sender_ok())
        return 1;
    if (!st__collector_reconnect_due(now))
        return 0;
    /* What was being batched for the old connection cannot be sent on a
     * new one (ids and announcements are per connection). */
    r->lost += st__outbox_discard();
    if (!st__collector_reconnect())
        return 0;
    region_reset_wire_state(r);
    return 1;
}

int
st__region_reconnect(struct st_trace_region *r)
{
    return region_reconnect(r, 0);
}

uint64_t
st__region_end_again(struct st_trace_region *r)
{
    if (!(r->outputs & ST_OUT_FILE) || st__sender_ok() ||
        !region_reconnect(r, 1))
        return 0;
    /* The records committed since the last ACK are counted now (the
     * connection is settled), and go with REGION_END into the new file. */
    return st__emit_region_end(r);
}

int
st__region_note(struct st_trace_region *r, uint32_t kind, const char *text,
                size_t n)
{
    if (!(r->outputs & ST_OUT_FILE))
        return -1;
    if (!st__sender_ok() && !st__region_reconnect(r))
        return -1;
    st__emit_note(r, kind, text, n);
    return 0;
}

void
st__region_after_fork_child(void)
{
    int own = st__collector_after_fork_child();
    struct st_trace_region *r;

    st__threads_after_fork_child();
    r = st__threads_region();
    if (r != NULL && !own) {
        region_reset_wire_state(r);
        r->lost = 0;
        r->dropped_base = st__collector_dropped();
    }
}
