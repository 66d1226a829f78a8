/*
 * Per-event work: which frames are traced, step records, encoding for the
 * collector and formatting for the console.  Runs with the GIL held, from
 * the backend's hook; never raises into the traced program.
 */
#include "agent.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct st_region *st__active;
struct st_buf st__batch;
msgpack_packer st__pk;

static uint64_t batch_records;     /* STEP messages in st__batch. */
static uint64_t last_handoff_ns;
static uint32_t next_frame_id = 1;
static uint32_t next_scope_id = 1;
static uint32_t next_tid = 1;
static int code_extra_index = -1;

/* Hand the batch over at this size, or when it is this old. */
#define BATCH_BYTES (64 * 1024)
#define BATCH_AGE_NS (100 * 1000 * 1000ull)

/* Cached per code object (in its co_extra slot): the filter verdict. */
struct st_codeinfo {
    uint32_t filter_id;      /* Region filter this verdict is for. */
    uint32_t strtab_epoch;   /* Validity of file_s / func_s. */
    int traceable;
    PyObject *abs_file;      /* Owned: absolute co_filename. */
    struct st_strent *file_s;
    struct st_strent *func_s;
};

/* Module globals seen in a region, with their last shown state. */
struct st_scope {
    struct st_scope *next;   /* Owned list. */
    PyObject *globals;       /* Owned for the region (identity key). */
    uint32_t id;
    uint32_t announced_gen;
    struct st_snapshot snap;
};

/* A traced frame on a thread's stack. */
struct st_fentry {
    PyFrameObject *frame;    /* Borrowed: identity only, valid while here. */
    struct st_codeinfo *ci;  /* Borrowed from the code object. */
    struct st_scope *scope;  /* Borrowed from the region. */
    uint32_t id;
    uint32_t parent;         /* Stack index + 1 of the traced caller. */
    uint32_t last_line;
    uint32_t announced_gen;
    int module_level;        /* Locals are the globals: one section. */
    struct st_snapshot locals;
};

struct st_tstate {
    struct st_tstate *next;  /* Owned list of every thread's state. */
    uint64_t epoch;          /* Region epoch this state belongs to. */
    uint32_t tid;
    uint32_t announced_gen;
    PyObject *name;          /* Owned: the thread's name, once looked up. */
    struct st_fentry *stack; /* Owned. */
    size_t depth, cap;
    uint64_t last_exit;      /* Clock when the hook last returned. */
    uint64_t prog;           /* Program time accumulated in this region. */
    uint64_t prog_at_step;
    int busy;                /* Re-entrancy guard. */
};

static _Thread_local struct st_tstate *tls;
static struct st_tstate *all_tstates;
static struct st_changes gch, lch;   /* Scratch, reused every step. */
static struct st_buf text;           /* Scratch for console output. */

uint64_t
st__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- code object cache and the workspace filter (SPEC section 5) ---- */

static void
codeinfo_free(void *p)
{
    struct st_codeinfo *ci = p;

    if (ci == NULL)
        return;
    Py_XDECREF(ci->abs_file);
    free(ci);
}

int
st__tracer_init(void)
{
    code_extra_index = (int)ST_REQUEST_CODE_EXTRA_INDEX(codeinfo_free);
    if (code_extra_index < 0)
        return -1;
    st_buf_init(&st__batch);
    st_buf_init(&text);
    msgpack_packer_init(&st__pk, &st__batch, st_buf_msgpack_write);
    st__batch.len = 0;
    return st_buf_append(&st__batch, "\0\0\0\0", 4) == 0 ? 0 : -1;
}

/* Is `path` equal to `prefix` or below it, component-wise? */
static int
path_under(const char *path, size_t n, const char *prefix, size_t pn)
{
    if (pn == 0 || n < pn || memcmp(path, prefix, pn) != 0)
        return 0;
    return n == pn || path[pn] == '/' || prefix[pn - 1] == '/';
}

static int
path_has_component(const char *path, const char *comp)
{
    size_t cn = strlen(comp);
    const char *p = path;

    while ((p = strstr(p, comp)) != NULL) {
        if ((p == path || p[-1] == '/') && (p[cn] == '/' || p[cn] == '\0'))
            return 1;
        p += cn;
    }
    return 0;
}

/* Computes the verdict for a code object under filter f. */
static int
filter_code(const struct st_filter *f, PyCodeObject *co,
            struct st_codeinfo *ci)
{
    Py_ssize_t n;
    const char *fn = PyUnicode_AsUTF8AndSize(co->co_filename, &n);
    const char *path;
    struct stat sb;
    size_t i, pn;

    if (fn == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (n == 0 || fn[0] == '<')
        return 0;
    if (ci->abs_file == NULL) {
        if (fn[0] == '/')
            ci->abs_file = Py_NewRef(co->co_filename);
        else
            ci->abs_file = PyUnicode_FromFormat("%s/%U", f->cwd,
                                                co->co_filename);
        if (ci->abs_file == NULL) {
            PyErr_Clear();
            return 0;
        }
    }
    path = PyUnicode_AsUTF8AndSize(ci->abs_file, &n);
    if (path == NULL) {
        PyErr_Clear();
        return 0;
    }
    pn = (size_t)n;
    if (path_under(path, pn, f->pkgdir, f->pkgdir_len))
        return 0;
    for (i = 0; i < f->nexcluded; i++)
        if (path_under(path, pn, f->excluded[i], strlen(f->excluded[i])))
            return 0;
    if (path_has_component(path, "site-packages") ||
        path_has_component(path, "dist-packages"))
        return 0;
    if (f->workspace != NULL &&
        !path_under(path, pn, f->workspace, f->ws_len))
        return 0;
    if (f->functions != NULL) {
        int in = PySet_Contains(f->functions, co->co_name);

        if (in < 0)
            PyErr_Clear();
        if (in != 1)
            return 0;
    }
    /* A real file, not source made up by exec() or a loader. */
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return 0;
    return 1;
}

/* Returns the code object's cached info for region r (borrowed), or NULL
 * when it is not traceable. */
static struct st_codeinfo *
codeinfo_get(PyCodeObject *co, const struct st_region *r)
{
    struct st_codeinfo *ci = NULL;

    if (ST_CODE_GET_EXTRA((PyObject *)co, code_extra_index, (void **)&ci) < 0) {
        PyErr_Clear();
        return NULL;
    }
    if (ci == NULL) {
        ci = calloc(1, sizeof(*ci));
        if (ci == NULL)
            return NULL;
        if (ST_CODE_SET_EXTRA((PyObject *)co, code_extra_index, ci) < 0) {
            PyErr_Clear();
            free(ci);
            return NULL;
        }
    }
    if (ci->filter_id != r->filter.id) {
        ci->filter_id = r->filter.id;
        ci->traceable = filter_code(&r->filter, co, ci);
        ci->strtab_epoch = 0;
    }
    if (!ci->traceable)
        return NULL;
    if (ci->strtab_epoch != st__strtab_epoch) {
        ci->file_s = st__strtab_str(ci->abs_file);
        ci->func_s = st__strtab_str(co->co_name);
        if (ci->file_s == NULL || ci->func_s == NULL)
            return NULL;
        ci->strtab_epoch = st__strtab_epoch;
    }
    return ci;
}

/* ---- per-thread state ---- */

static void
tstate_reset_stack(struct st_tstate *ts)
{
    size_t i;

    for (i = 0; i < ts->depth; i++)
        st__snapshot_clear(&ts->stack[i].locals);
    ts->depth = 0;
}

/* The calling thread's state for region r (reset on a new region). */
static struct st_tstate *
tstate_get(const struct st_region *r)
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
    if (ts->epoch != r->epoch) {
        tstate_reset_stack(ts);
        ts->epoch = r->epoch;
        ts->last_exit = st__now_ns();
        ts->prog = 0;
        ts->prog_at_step = 0;
    }
    return ts;
}

static struct st_fentry *
tstate_push(struct st_tstate *ts)
{
    struct st_fentry *e;

    if (ts->depth == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 32;
        struct st_fentry *p = realloc(ts->stack, cap * sizeof(*p));

        if (p == NULL)
            return NULL;
        ts->stack = p;
        ts->cap = cap;
    }
    e = &ts->stack[ts->depth++];
    memset(e, 0, sizeof(*e));
    return e;
}

/* The thread's name (threading.current_thread().name), looked up once. */
static PyObject *
tstate_name(struct st_tstate *ts)
{
    PyObject *mod, *cur = NULL;

    if (ts->name != NULL)
        return ts->name;
    mod = PyImport_ImportModule("threading");
    if (mod != NULL)
        cur = PyObject_CallMethod(mod, "current_thread", NULL);
    if (cur != NULL)
        ts->name = PyObject_GetAttrString(cur, "name");
    Py_XDECREF(cur);
    Py_XDECREF(mod);
    if (ts->name == NULL || !PyUnicode_Check(ts->name)) {
        PyErr_Clear();
        Py_XSETREF(ts->name, PyUnicode_FromFormat("%u", ts->tid));
        PyErr_Clear();
    }
    return ts->name;
}

/* ---- encoding for the collector ---- */

void
st__batch_handoff(void)
{
    struct st_region *r = st__active;

    last_handoff_ns = st__now_ns();
    if (st__batch.len <= ST_WIRE_HEADER_SIZE)
        return;
    st_wire_put_header((unsigned char *)st__batch.data,
                       (uint32_t)(st__batch.len - ST_WIRE_HEADER_SIZE));
    if (st__batch.oom || st__sender_submit(&st__batch, batch_records) != 0) {
        if (r != NULL)
            r->lost += batch_records;
    }
    batch_records = 0;
    st_buf_close(&st__batch);
    st_buf_append(&st__batch, "\0\0\0\0", 4);
}

static void
send_str(struct st_strent *e)
{
    uint32_t gen = st__sender_gen();

    if (e->sent_gen == gen)
        return;
    st_wire_pack_str(&st__pk, e->sid, e->text, e->len);
    e->sent_gen = gen;
}

static void
announce_region(struct st_region *r)
{
    uint32_t gen = st__sender_gen();
    Py_ssize_t n;
    const char *dir;

    if (r->file_announced && r->announced_gen == gen)
        return;
    dir = PyUnicode_AsUTF8AndSize(r->log_dir, &n);
    if (dir == NULL) {
        PyErr_Clear();
        dir = ".tracer";
        n = 7;
    }
    st_wire_pack_region(&st__pk, r->id, r->tracer_id, dir, (size_t)n,
                        (uint32_t)r->level, (uint32_t)r->var_mode,
                        r->max_log_bytes, r->max_log_files);
    r->file_announced = 1;
    r->announced_gen = gen;
}

static void
announce_frame(struct st_tstate *ts, size_t idx)
{
    uint32_t gen = st__sender_gen();
    struct st_fentry *e = &ts->stack[idx];
    uint32_t parent_id = 0;

    if (e->announced_gen == gen)
        return;
    if (e->parent != 0) {
        announce_frame(ts, e->parent - 1);
        parent_id = ts->stack[e->parent - 1].id;
    }
    if (ts->announced_gen != gen) {
        struct st_strent *name = st__strtab_str(tstate_name(ts));

        if (name != NULL) {
            send_str(name);
            st_wire_pack_thread(&st__pk, ts->tid, name->sid);
        }
        ts->announced_gen = gen;
    }
    send_str(e->ci->file_s);
    send_str(e->ci->func_s);
    st_wire_pack_frame(&st__pk, e->id, ts->tid, parent_id, e->ci->file_s->sid,
                       e->ci->func_s->sid, e->scope ? e->scope->id : 0,
                       e->module_level ? ST_FRAME_MODULE : 0);
    e->announced_gen = gen;
}

static void
pack_diff(const struct st_changes *c, int present)
{
    size_t i;

    if (!present) {
        st_wire_pack_nil(&st__pk);
        return;
    }
    st_wire_pack_diff_begin(&st__pk, c->n);
    for (i = 0; i < c->n; i++) {
        const struct st_change *ch = &c->c[i];

        if (ch->kind == ST_VAR_DELETED)
            st_wire_pack_var_del(&st__pk, ch->name_s->sid);
        else
            st_wire_pack_var_set(&st__pk, ch->name_s->sid,
                                 ch->ent->type_s->sid, ch->ent->value,
                                 ch->ent->value_len);
    }
}

static void
send_change_strings(const struct st_changes *c)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        send_str(c->c[i].name_s);
        if (c->c[i].kind != ST_VAR_DELETED)
            send_str(c->c[i].ent->type_s);
    }
}

static void
encode_step(struct st_region *r, struct st_tstate *ts, size_t idx,
            uint32_t line, uint64_t runtime, int vars, int module_level)
{
    struct st_fentry *e = &ts->stack[idx];

    if (!st__sender_ok()) {
        r->lost++;
        return;
    }
    announce_region(r);
    if (e->scope != NULL && e->scope->announced_gen != st__sender_gen())
        e->scope->announced_gen = st__sender_gen();
    announce_frame(ts, idx);
    if (vars) {
        send_change_strings(&gch);
        send_change_strings(&lch);
    }
    st_wire_pack_step_begin(&st__pk, r->id, e->id, line, runtime);
    pack_diff(&gch, vars);
    pack_diff(&lch, vars && !module_level);
    batch_records++;
    if (st__batch.len >= BATCH_BYTES ||
        st__now_ns() - last_handoff_ns >= BATCH_AGE_NS)
        st__batch_handoff();
}

/* ---- console output (formatted here with the shared formatter) ---- */

static struct st_str
strent_str(const struct st_strent *e)
{
    struct st_str s = {e->text, e->len};
    return s;
}

/* Fills views for a full snapshot (ALL) or the changes (CHANGED). */
static struct st_var_view *
make_views(const struct st_snapshot *snap, const struct st_changes *c,
           int var_mode, size_t *n_out)
{
    size_t n = var_mode == ST_VARMODE_ALL ? snap->n : c->n;
    struct st_var_view *v = calloc(n ? n : 1, sizeof(*v));
    size_t i;

    *n_out = 0;
    if (v == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        const struct st_snapent *e;

        if (var_mode == ST_VARMODE_ALL) {
            e = &snap->ents[i];
            v[i].change = ST_VAR_PLAIN;
        }
        else {
            e = c->c[i].ent;
            v[i].change = c->c[i].kind;
            v[i].name = strent_str(c->c[i].name_s);
            v[i].old.p = c->c[i].old;
            v[i].old.n = c->c[i].old_len;
            if (e == NULL)
                continue;
        }
        v[i].name = strent_str(e->name_s);
        v[i].type = strent_str(e->type_s);
        v[i].value.p = e->value;
        v[i].value.n = e->value_len;
    }
    *n_out = n;
    return v;
}

static void
console_step(struct st_region *r, struct st_tstate *ts, size_t idx,
             uint32_t line, uint64_t runtime, struct st_scope *scope,
             int module_level)
{
    struct st_fentry *e = &ts->stack[idx];
    struct st_loc_view loc[1];
    struct st_step_view v;
    struct st_var_view *gv = NULL, *lv = NULL;
    PyObject *stream, *s, *res;
    static struct st_snapshot empty;

    memset(&v, 0, sizeof(v));
    v.step = r->steps;
    v.runtime_ns = runtime;
    if (r->multi_thread) {
        PyObject *name = tstate_name(ts);
        Py_ssize_t n;

        v.thread.p = PyUnicode_AsUTF8AndSize(name, &n);
        v.thread.n = (size_t)n;
        if (v.thread.p == NULL) {
            PyErr_Clear();
            v.thread.p = "?";
            v.thread.n = 1;
        }
    }
    loc[0].file = strent_str(e->ci->file_s);
    loc[0].func = strent_str(e->ci->func_s);
    loc[0].line = line;
    v.locs = loc;
    v.nlocs = 1;
    v.var_mode = r->var_mode;
    if (r->var_mode != ST_VARMODE_NONE) {
        gv = make_views(scope ? &scope->snap : &empty, &gch, r->var_mode,
                        &v.nglobals);
        if (!module_level)
            lv = make_views(&e->locals, &lch, r->var_mode, &v.nlocals);
        v.globals = gv;
        v.locals = lv;
    }
    text.len = 0;
    st_record_format_step(&text, &v);
    free(gv);
    free(lv);
    stream = PySys_GetObject(r->outputs & ST_OUT_STDOUT ? "stdout" : "stderr");
    if (stream == NULL || stream == Py_None || text.oom) {
        r->errors++;
        return;
    }
    s = PyUnicode_DecodeUTF8(text.data, (Py_ssize_t)text.len, "replace");
    res = s ? PyObject_CallMethod(stream, "write", "O", s) : NULL;
    if (res == NULL) {
        PyErr_Clear();
        r->errors++;
    }
    Py_XDECREF(res);
    Py_XDECREF(s);
}

/* ---- events ---- */

static struct st_scope *
scope_for(struct st_region *r, PyObject *globals)
{
    struct st_scope *sc;

    for (sc = r->scopes; sc != NULL; sc = sc->next)
        if (sc->globals == globals)
            return sc;
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    sc->globals = Py_NewRef(globals);
    sc->id = next_scope_id++;
    sc->next = r->scopes;
    r->scopes = sc;
    return sc;
}

/* Records one step of the frame on top of ts's stack. */
static void
record_step(struct st_region *r, struct st_tstate *ts, PyFrameObject *f)
{
    size_t idx = ts->depth - 1;
    struct st_fentry *e = &ts->stack[idx];
    uint32_t line = (uint32_t)PyFrame_GetLineNumber(f);
    uint64_t runtime = ts->prog - ts->prog_at_step;
    int vars = r->var_mode != ST_VARMODE_NONE;
    int module_level = e->module_level;
    PyObject *globals = NULL, *locals = NULL;

    ts->prog_at_step = ts->prog;
    e->last_line = line;
    r->steps++;
    if (r->first_tid == 0)
        r->first_tid = ts->tid;
    else if (r->first_tid != ts->tid)
        r->multi_thread = 1;
    st__changes_reset(&gch);
    st__changes_reset(&lch);
    globals = st_frame_get_globals(f);
    if (globals != NULL && e->scope == NULL)
        e->scope = scope_for(r, globals);
    if (vars && globals != NULL) {
        if (!module_level) {
            locals = st_frame_get_locals(f);
            if (locals == NULL)
                PyErr_Clear();
        }
        if (e->scope != NULL)
            st__snapshot_update(&e->scope->snap, globals, r, &gch);
        if (!module_level && locals != NULL)
            st__snapshot_update(&e->locals, locals, r, &lch);
    }
    PyErr_Clear();
    if (r->outputs & ST_OUT_FILE)
        encode_step(r, ts, idx, line, runtime, vars, module_level);
    if (r->outputs & (ST_OUT_STDOUT | ST_OUT_STDERR))
        console_step(r, ts, idx, line, runtime, e->scope, module_level);
    Py_XDECREF(locals);
    Py_XDECREF(globals);
}

/* Module-level code runs with its globals as its locals. */
static int
frame_is_module_level(PyFrameObject *f, PyCodeObject *co)
{
    PyObject *g, *l;
    int same;

    if (co->co_flags & CO_OPTIMIZED)
        return 0;
    g = st_frame_get_globals(f);
    l = st_frame_get_locals(f);
    same = g != NULL && g == l;
    Py_XDECREF(g);
    Py_XDECREF(l);
    PyErr_Clear();
    return same;
}

/* Common entry: accounting of the program's time around the hook. */
#define HOOK_ENTER(r, ts)                                                    \
    struct st_region *r = st__active;                                        \
    struct st_tstate *ts;                                                    \
    uint64_t t_enter_;                                                       \
    if (r == NULL)                                                           \
        return 0;                                                            \
    ts = tstate_get(r);                                                      \
    if (ts == NULL || ts->busy)                                              \
        return 0;                                                            \
    ts->busy = 1;                                                            \
    t_enter_ = st__now_ns();                                                 \
    ts->prog += t_enter_ - ts->last_exit

#define HOOK_EXIT(ts)                                                        \
    do {                                                                     \
        ts->last_exit = st__now_ns();                                        \
        ts->busy = 0;                                                        \
    } while (0)

int
st__on_call(PyFrameObject *f)
{
    PyCodeObject *co;
    struct st_codeinfo *ci;
    struct st_fentry *e;
    st_exc_state es;
    HOOK_ENTER(r, ts);

    ST_EXC_SAVE(es);
    co = PyFrame_GetCode(f);
    ci = codeinfo_get(co, r);
    if (ci != NULL && (e = tstate_push(ts)) != NULL) {
        e->frame = f;
        e->ci = ci;
        e->id = next_frame_id++;
        e->parent = ts->depth > 1 ? (uint32_t)(ts->depth - 1) : 0;
        e->module_level = frame_is_module_level(f, co);
    }
    Py_DECREF(co);
    ST_EXC_RESTORE(es);
    HOOK_EXIT(ts);
    return 0;
}

int
st__on_line(PyFrameObject *f)
{
    st_exc_state es;
    HOOK_ENTER(r, ts);

    /* ERROR and SILENT write no step records. */
    if (r->level < ST_LEVEL_ERROR && ts->depth > 0 &&
        ts->stack[ts->depth - 1].frame == f) {
        ST_EXC_SAVE(es);
        record_step(r, ts, f);
        ST_EXC_RESTORE(es);
    }
    HOOK_EXIT(ts);
    return 0;
}

int
st__on_return(PyFrameObject *f)
{
    HOOK_ENTER(r, ts);

    if (ts->depth > 0 && ts->stack[ts->depth - 1].frame == f) {
        struct st_fentry *e = &ts->stack[ts->depth - 1];
        st_exc_state es;

        ST_EXC_SAVE(es);
        if ((r->outputs & ST_OUT_FILE) &&
            e->announced_gen == st__sender_gen() && st__sender_ok())
            st_wire_pack_frame_end(&st__pk, e->id);
        st__snapshot_clear(&e->locals);
        ts->depth--;
        ST_EXC_RESTORE(es);
    }
    HOOK_EXIT(ts);
    return 0;
}

/* ---- regions ---- */

void
st__region_activate(struct st_region *r)
{
    static uint64_t epochs;
    struct st_tstate *ts;

    r->epoch = ++epochs;
    st__active = r;
    ts = tstate_get(r);
    r->start_ns = st__now_ns();
    if (ts != NULL)
        ts->last_exit = r->start_ns;
    last_handoff_ns = r->start_ns;
}

uint64_t
st__region_finish(struct st_region *r)
{
    static uint64_t tokens;
    struct st_tstate *ts;
    uint64_t token = 0;

    for (ts = all_tstates; ts != NULL; ts = ts->next)
        if (ts->epoch == r->epoch) {
            tstate_reset_stack(ts);
            ts->epoch = 0;
        }
    while (r->scopes != NULL) {
        struct st_scope *sc = r->scopes;

        r->scopes = sc->next;
        st__snapshot_clear(&sc->snap);
        Py_DECREF(sc->globals);
        free(sc);
    }
    if ((r->outputs & ST_OUT_FILE) && r->file_announced && st__sender_ok()) {
        if (r->lost > 0)
            st_wire_pack_lost(&st__pk, r->id, r->lost);
        st_wire_pack_region_end(&st__pk, r->id);
        token = ++tokens;
        st_wire_pack_flush(&st__pk, token);
    }
    st__batch_handoff();
    return st__sender_ok() ? token : 0;
}

void
st__region_free(struct st_region *r)
{
    size_t i;

    if (r == NULL)
        return;
    if (st__active == r)
        st__active = NULL;
    free(r->filter.workspace);
    for (i = 0; i < r->filter.nexcluded; i++)
        free(r->filter.excluded[i]);
    free(r->filter.excluded);
    free(r->filter.pkgdir);
    free(r->filter.cwd);
    Py_XDECREF(r->filter.functions);
    Py_XDECREF(r->hidden_types);
    Py_XDECREF(r->log_dir);
    free(r);
}
