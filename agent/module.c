/*
 * steptrace._agent: the Python-facing side of the agent.  The package's
 * Tracer calls these; the per-event work lives in tracer.c.
 *
 * The agent's state is process-wide (one hook, one collector connection),
 * so the module is a singleton by nature and uses single-phase init; its
 * types are heap types.
 */
#include "agent.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config_py.h"
#include "steptrace/ring.h"

/* ---- Region: owns a struct st_trace_region ---- */

typedef struct {
    PyObject_HEAD
    struct st_trace_region *r; /* Owned. */
} RegionObject;

static PyObject *RegionType;  /* Owned heap type. */
static PyObject *HandleType;  /* Owned heap type. */
static PyObject *handle;      /* Owned: the object sys.gettrace() shows. */
static uint32_t next_region_id = 1;
static uint32_t next_filter_id = 1;

static void
region_dealloc(RegionObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    st__region_free(self->r);
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

/* ---- TraceHandle: what sys.gettrace() returns while we trace ---- */

/* Called only when someone re-installs us with sys.settrace(): forward the
 * event to the C hook (slower, but correct) and keep tracing the frame. */
static PyObject *
handle_call(PyObject *self, PyObject *args, PyObject *kw)
{
    PyObject *frame, *arg;
    const char *event;

    if (!PyArg_ParseTuple(args, "OsO", &frame, &event, &arg))
        return NULL;
    if (PyFrame_Check(frame))
        st__backend_dispatch((PyFrameObject *)frame, event, arg);
    return Py_NewRef(self);
}

static PyType_Slot handle_slots[] = {
    {Py_tp_call, handle_call},
    {Py_tp_doc, "steptrace's C trace function (as seen by sys.gettrace)."},
    {0, NULL},
};

static PyType_Spec handle_spec = {
    .name = "steptrace._agent.TraceHandle",
    .basicsize = sizeof(PyObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = handle_slots,
};

/* ---- functions ---- */

static PyObject *
agent_connect(PyObject *mod, PyObject *args)
{
    const char *path, *program;
    char err[512];

    if (!PyArg_ParseTuple(args, "ss", &path, &program))
        return NULL;
    if (st__collector_connect(path, program, err, sizeof(err)) != 0) {
        PyErr_SetString(PyExc_ConnectionError, err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
agent_connected(PyObject *mod, PyObject *unused)
{
    return PyBool_FromLong(st__sender_ok());
}

static PyObject *
agent_close(PyObject *mod, PyObject *unused)
{
    st__collector_close();
    Py_RETURN_NONE;
}

static char *
dup_utf8(PyObject *s)
{
    const char *p = PyUnicode_AsUTF8(s);

    return p ? strdup(p) : NULL;
}

static uint64_t
key_mix(uint64_t h, const char *s)
{
    /* FNV-1a over the string and its NUL (so "ab","c" != "a","bc"). */
    do {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    } while (*s++ != '\0');
    return h;
}

/* f->key: equal for filters that decide alike (what they were made of).
 * @return 0 or -1 (raised). */
static int
filter_key(struct st_filter *f)
{
    uint64_t h = 0xcbf29ce484222325ull;
    Py_hash_t fh = 0;
    size_t i;

    if (f->workspaces == NULL)
        h = key_mix(h, "\x01");
    for (i = 0; i < f->nworkspaces; i++)
        h = key_mix(h, f->workspaces[i]);
    h = key_mix(h, "\x02");
    for (i = 0; i < f->nexcluded; i++)
        h = key_mix(h, f->excluded[i]);
    h = key_mix(key_mix(h, f->pkgdir), f->cwd);
    if (f->functions != NULL && (fh = PyObject_Hash(f->functions)) == -1)
        return -1;
    h ^= (uint64_t)fh + (f->functions != NULL);
    f->key = h * 0x100000001b3ull;
    return 0;
}

/* Fills r->filter from the Python arguments.  @return 0 or -1 (raised). */
static int
region_set_filter(struct st_trace_region *r, PyObject *workspace,
                  PyObject *excluded, const char *pkgdir, const char *cwd,
                  PyObject *functions)
{
    struct st_filter *f = &r->filter;
    Py_ssize_t i, n;

    f->id = next_filter_id++;
    if (workspace != Py_None) {
        /* One directory, or a tuple of them (real paths). */
        int one = PyUnicode_Check(workspace);

        if (!one && !PyTuple_Check(workspace)) {
            PyErr_SetString(PyExc_TypeError,
                            "workspace: expected a str, a tuple or None");
            return -1;
        }
        n = one ? 1 : PyTuple_GET_SIZE(workspace);
        f->workspaces = calloc((size_t)n + 1, sizeof(char *));
        if (f->workspaces == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (i = 0; i < n; i++) {
            f->workspaces[i] =
                dup_utf8(one ? workspace : PyTuple_GET_ITEM(workspace, i));
            if (f->workspaces[i] == NULL)
                return -1;
            f->nworkspaces++;
        }
    }
    n = PyTuple_GET_SIZE(excluded);
    f->excluded = calloc((size_t)n + 1, sizeof(char *));
    if (f->excluded == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        f->excluded[i] = dup_utf8(PyTuple_GET_ITEM(excluded, i));
        if (f->excluded[i] == NULL)
            return -1;
        f->nexcluded++;
    }
    f->pkgdir = strdup(pkgdir);
    f->cwd = strdup(cwd);
    if (f->pkgdir == NULL || f->cwd == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    f->pkgdir_len = strlen(f->pkgdir);
    if (functions != Py_None) {
        f->functions = PyFrozenSet_New(functions);
        if (f->functions == NULL)
            return -1;
    }
    return filter_key(f);
}

static PyObject *
agent_region(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"tracer_id", "log_dir", "level", "var_mode",
                             "outputs", "repr_limit", "max_log_bytes",
                             "max_log_files", "workspace", "excluded",
                             "pkgdir", "cwd", "functions", "hidden_types",
                             "on_full_drop", "async_mode", "trace_tasks",
                             "await_threshold_ms", NULL};
    unsigned int tracer_id, max_files;
    PyObject *log_dir, *workspace, *excluded, *functions, *hidden;
    int level, var_mode, outputs, drop = 0, async_mode = 0, tasks = 1;
    double threshold_ms = 0.0;
    Py_ssize_t repr_limit;
    unsigned long long max_bytes;
    const char *pkgdir, *cwd;
    RegionObject *ro;
    struct st_trace_region *r;

    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "IUiiinKIOO!ssOO!|pppd:region", kwlist, &tracer_id,
            &log_dir, &level, &var_mode, &outputs, &repr_limit, &max_bytes,
            &max_files, &workspace, &PyTuple_Type, &excluded, &pkgdir, &cwd,
            &functions, &PyTuple_Type, &hidden, &drop, &async_mode,
            &tasks, &threshold_ms))
        return NULL;
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
    r->log_dir = Py_NewRef(log_dir);
    r->hidden_types = Py_NewRef(hidden);
    if (region_set_filter(r, workspace, excluded, pkgdir, cwd, functions)) {
        st__region_free(r);
        return NULL;
    }
    ro = PyObject_New(RegionObject, (PyTypeObject *)RegionType);
    if (ro == NULL) {
        st__region_free(r);
        return NULL;
    }
    ro->r = r;
    r->owner = (PyObject *)ro;
    return (PyObject *)ro;
}

struct st_trace_region *
st__region_of(PyObject *obj)
{
    return ((RegionObject *)obj)->r;
}

static int
check_region(PyObject *o)
{
    if (!PyObject_TypeCheck(o, (PyTypeObject *)RegionType)) {
        PyErr_SetString(PyExc_TypeError, "expected a Region");
        return -1;
    }
    return 0;
}

/* start(region) -> the region active before (or None): makes `region`
 * the active one and installs the hook in the calling thread. */
static PyObject *
agent_start(PyObject *mod, PyObject *region)
{
    PyObject *prev;

    if (check_region(region) < 0)
        return NULL;
    prev = st__region_enter(((RegionObject *)region)->r, region, 1);
    st__backend_start(handle);
    return prev != NULL ? prev : Py_NewRef(Py_None);
}

/* pause(prev): stops recording without ending the active region (a traced
 * generator between two resumptions); `prev` (a Region or None) becomes
 * active again. */
static PyObject *
agent_pause(PyObject *mod, PyObject *prev)
{
    if (prev != Py_None && check_region(prev) < 0)
        return NULL;
    if (prev == Py_None) {
        st__backend_stop();
        st__region_leave(NULL);
        st__backend_idle(0);
    }
    else {
        st__region_leave(prev);
        st__backend_start(handle);
    }
    Py_RETURN_NONE;
}

/* backend() -> "sys.monitoring" or "settrace". */
static PyObject *
agent_backend(PyObject *mod, PyObject *unused)
{
    return PyUnicode_FromString(st__backend_name());
}

/* current_region() -> the calling thread's Region, or None. */
static PyObject *
agent_current_region(PyObject *mod, PyObject *unused)
{
    struct st_trace_region *r = st__threads_region();

    if (r == NULL || r->owner == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(r->owner);
}

/* attach_thread(region): the calling thread (started inside `region` by
 * another thread) records into it too; installs the hook. */
static PyObject *
agent_attach_thread(PyObject *mod, PyObject *region)
{
    PyObject *prev;

    if (region == Py_None)
        Py_RETURN_NONE;
    if (check_region(region) < 0)
        return NULL;
    if (((RegionObject *)region)->r->finished)
        Py_RETURN_NONE;
    prev = st__region_enter(((RegionObject *)region)->r, region, 0);
    Py_XDECREF(prev);
    st__backend_start(handle);
    Py_RETURN_NONE;
}

/* stop(region): removes the hook, ends the region and waits until the
 * collector has written every record.  Returns (errors, message, lost). */
static PyObject *
agent_stop(PyObject *mod, PyObject *region)
{
    struct st_trace_region *r;
    uint64_t token, errors = 0;
    char msg[600] = "";

    if (check_region(region) < 0)
        return NULL;
    r = ((RegionObject *)region)->r;
    if (st__threads_region() == r) {
        st__backend_stop();
        st__region_leave(NULL);
    }
    token = st__region_finish(r);
    st__backend_idle(1);
    if (token != 0 &&
        st__sender_wait_ack(token, 10000, &errors, msg, sizeof(msg)) != 0)
        errors++;
    /* Frames lost after the LOST message went out are counted too. */
    r->lost += st__collector_dropped() - r->dropped_base;
    return Py_BuildValue("(Ksk)", (unsigned long long)(errors + r->errors),
                         msg, (unsigned long)r->lost);
}

/* note(region, text, at_step) -> bool: writes "[steptrace] TEXT" (with
 * at_step, "[steptrace] step N TEXT") into the region's log, in order with
 * its records.  False when the region writes no file or has no
 * collector. */
static PyObject *
agent_note(PyObject *mod, PyObject *args)
{
    PyObject *region;
    const char *text;
    Py_ssize_t n;
    int at_step;

    if (!PyArg_ParseTuple(args, "Os#p:note", &region, &text, &n, &at_step) ||
        check_region(region) < 0)
        return NULL;
    return PyBool_FromLong(
        st__emit_note(((RegionObject *)region)->r,
                      at_step ? ST_NOTE_AT_STEP : ST_NOTE_LINE, text,
                      (size_t)n) == 0);
}

/* set_origin(region, text or None): the line each of the region's files
 * begins with (who started this process). */
static PyObject *
agent_set_origin(PyObject *mod, PyObject *args)
{
    PyObject *region, *text;
    struct st_trace_region *r;

    if (!PyArg_ParseTuple(args, "OO:set_origin", &region, &text) ||
        check_region(region) < 0)
        return NULL;
    if (text != Py_None && !PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "set_origin needs a str or None");
        return NULL;
    }
    r = ((RegionObject *)region)->r;
    Py_XSETREF(r->origin, text == Py_None ? NULL : Py_NewRef(text));
    Py_RETURN_NONE;
}

/* place(region, wait) -> (steps, total_steps, path or None): the steps
 * in the region's current file, in all, and that file as the collector
 * named it.  With `wait`, when the region has records in a file whose
 * name has not come yet, waits for it (1 s at most). */
static PyObject *
agent_place(PyObject *mod, PyObject *args)
{
    PyObject *region;
    struct st_trace_region *r;
    char path[4096];
    int wait, known;

    if (!PyArg_ParseTuple(args, "Op:place", &region, &wait) ||
        check_region(region) < 0)
        return NULL;
    r = ((RegionObject *)region)->r;
    known = st__sender_file(r->tracer_id, path, sizeof(path));
    if (!known && wait && (r->outputs & ST_OUT_FILE) && r->file_announced &&
        r->announced_gen == st__sender_gen() && st__sender_ok()) {
        uint64_t token = st__outbox_flush(r->drop_when_full, 1), errors = 0;
        char msg[600];

        /* The FILE comes before the ACK of a FLUSH sent after the
         * record that claimed the file. */
        if (token != 0)
            (void)st__sender_wait_ack(token, 1000, &errors, msg,
                                      sizeof(msg));
        r->errors += errors;
        known = st__sender_file(r->tracer_id, path, sizeof(path));
    }
    if (!known)
        return Py_BuildValue("(KKO)", (unsigned long long)r->steps,
                             (unsigned long long)r->total_steps, Py_None);
    return Py_BuildValue("(KKs)", (unsigned long long)r->steps,
                         (unsigned long long)r->total_steps, path);
}

/* after_fork_child(): the sender thread is gone in a forked child; a
 * region in progress goes on there and reconnects at its next record. */
static PyObject *
agent_after_fork_child(PyObject *mod, PyObject *unused)
{
    /* The connection was reset inside fork() (sender.c). */
    st__tracer_after_fork_child();
    Py_RETURN_NONE;
}

/* before_fork(): see st__sender_before_fork. */
static PyObject *
agent_before_fork(PyObject *mod, PyObject *unused)
{
    st__sender_before_fork();
    Py_RETURN_NONE;
}

/* set_async_hooks(await_expression, watch_loop): the package's helpers
 * for async records (see async.c). */
static PyObject *
agent_set_async_hooks(PyObject *mod, PyObject *args)
{
    PyObject *expr, *loop;

    if (!PyArg_ParseTuple(args, "OO:set_async_hooks", &expr, &loop))
        return NULL;
    st__async_set_hooks(expr == Py_None ? NULL : expr,
                        loop == Py_None ? NULL : loop);
    Py_RETURN_NONE;
}

/* task_event(created, name, ok, duration_ns) -> bool: a TASK record in
 * the active region (if it records async events). */
static PyObject *
agent_task_event(PyObject *mod, PyObject *args)
{
    int created, ok;
    const char *name;
    Py_ssize_t n;
    unsigned long long dur;

    if (!PyArg_ParseTuple(args, "ps#pK:task_event", &created, &name, &n,
                          &ok, &dur))
        return NULL;
    return PyBool_FromLong(
        st__async_task_event(created, name, (size_t)n, ok, dur));
}

/* in_traced_code() -> bool: is a traced frame running in this thread of
 * the active region (so that what is being created was made by it)? */
static PyObject *
agent_in_traced_code(PyObject *mod, PyObject *unused)
{
    return PyBool_FromLong(st__threads_in_traced_code());
}

/* code_traced(code) -> bool: is this code traced by the active region? */
static PyObject *
agent_code_traced(PyObject *mod, PyObject *code)
{
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "code_traced needs a code object");
        return NULL;
    }
    struct st_trace_region *r = st__threads_region();

    return PyBool_FromLong(r != NULL &&
                           st__filter_codeinfo((PyCodeObject *)code, r) != NULL);
}

/* exit_flush(): the process is about to end without unwinding (os._exit,
 * as in forked multiprocessing children): end the active region and wait
 * (a few seconds at most) until its records are written. */
static PyObject *
agent_exit_flush(PyObject *mod, PyObject *unused)
{
    struct st_trace_region *r = st__threads_region();
    uint64_t token, errors = 0;
    char msg[600];

    if (r == NULL)
        Py_RETURN_NONE;
    st__backend_stop();
    token = st__region_finish(r);
    st__region_leave(NULL);
    st__backend_idle(1);
    if (token != 0)
        (void)st__sender_wait_ack(token, 5000, &errors, msg, sizeof(msg));
    Py_RETURN_NONE;
}

/* exec_note(program): the process is about to call exec; the collector
 * says so in the log of a region left open.  exec_note(None): the exec
 * failed, the process goes on. */
static PyObject *
agent_exec_note(PyObject *mod, PyObject *program)
{
    const char *p = NULL;

    if (program == Py_None) {
        st__outbox_set_end(ST_RING_END_NONE, 0, NULL);
        Py_RETURN_NONE;
    }
    if (PyUnicode_Check(program))
        p = PyUnicode_AsUTF8(program);
    else if (PyBytes_Check(program))
        p = PyBytes_AS_STRING(program);
    if (p == NULL) {
        PyErr_Clear();
        p = "?";
    }
    st__outbox_set_end(ST_RING_END_EXEC, 0, p);
    Py_RETURN_NONE;
}

/* set_reconnect(callable): called (at most once a second, from inside the
 * hook) when file records cannot be sent; it should reconnect. */
static PyObject *
agent_set_reconnect(PyObject *mod, PyObject *hook)
{
    if (hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_SetString(PyExc_TypeError, "set_reconnect needs a callable");
        return NULL;
    }
    st__collector_set_reconnect_hook(hook == Py_None ? NULL : hook);
    Py_RETURN_NONE;
}

static PyMethodDef agent_methods[] = {
    {"connect", agent_connect, METH_VARARGS,
     "connect(path, program): connect to the collector (ConnectionError)."},
    {"connected", agent_connected, METH_NOARGS,
     "connected() -> bool: is the collector connection healthy?"},
    {"close", agent_close, METH_NOARGS,
     "close(): send what is queued and close the connection."},
    {"region", (PyCFunction)(void (*)(void))agent_region,
     METH_VARARGS | METH_KEYWORDS, "region(...) -> Region (internal)."},
    {"start", agent_start, METH_O,
     "start(region) -> previous Region or None: trace this thread."},
    {"pause", agent_pause, METH_O,
     "pause(prev): stop recording, keep the region; prev becomes active."},
    {"attach_thread", agent_attach_thread, METH_O,
     "attach_thread(region): the calling (new) thread records into it."},
    {"backend", agent_backend, METH_NOARGS,
     "backend() -> the hook in use: 'sys.monitoring' or 'settrace'."},
    {"current_region", agent_current_region, METH_NOARGS,
     "current_region() -> the calling thread's Region or None."},
    {"stop", agent_stop, METH_O,
     "stop(region) -> (errors, message, lost): end and flush a region."},
    {"set_async_hooks", agent_set_async_hooks, METH_VARARGS,
     "set_async_hooks(await_expression, watch_loop) (internal)."},
    {"task_event", agent_task_event, METH_VARARGS,
     "task_event(created, name, ok, duration_ns) -> bool (internal)."},
    {"code_traced", agent_code_traced, METH_O,
     "code_traced(code) -> bool (internal)."},
    {"in_traced_code", agent_in_traced_code, METH_NOARGS,
     "in_traced_code() -> bool (internal)."},
    {"before_fork", agent_before_fork, METH_NOARGS,
     "before_fork(): stop the sender thread around os.fork()."},
    {"exit_flush", agent_exit_flush, METH_NOARGS,
     "exit_flush(): end the active region before os._exit."},
    {"exec_note", agent_exec_note, METH_O,
     "exec_note(program or None): the process is about to exec (or not)."},
    {"set_reconnect", agent_set_reconnect, METH_O,
     "set_reconnect(callable): how to reconnect when the collector is gone."},
    {"after_fork_child", agent_after_fork_child, METH_NOARGS,
     "Reset the agent in a forked child."},
    {"note", agent_note, METH_VARARGS,
     "note(region, text, at_step) -> bool: a line in the region's log."},
    {"set_origin", agent_set_origin, METH_VARARGS,
     "set_origin(region, text or None): the line its files begin with."},
    {"place", agent_place, METH_VARARGS,
     "place(region, wait) -> (steps, total_steps, log file or None)."},
    {"load_yaml", st__config_py_load_yaml, METH_O,
     "load_yaml(path) -> the YAML file as plain objects (ValueError)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef agent_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "steptrace._agent",
    .m_doc = "steptrace's in-process C agent.",
    .m_size = -1,
    .m_methods = agent_methods,
};

PyMODINIT_FUNC PyInit__agent(void);

__attribute__((visibility("default"))) PyMODINIT_FUNC
PyInit__agent(void)
{
    PyObject *m = PyModule_Create(&agent_module);

    if (m == NULL)
        return NULL;
    st__render_set_building(st__threads_being_built);
    if (st__tracer_init() != 0) {
        PyErr_SetString(PyExc_RuntimeError, "steptrace: cannot initialise");
        goto error;
    }
    RegionType = PyType_FromSpec(&region_spec);
    HandleType = PyType_FromSpec(&handle_spec);
    if (RegionType == NULL || HandleType == NULL)
        goto error;
    handle = PyObject_New(PyObject, (PyTypeObject *)HandleType);
    if (handle == NULL)
        goto error;
    if (PyModule_AddObjectRef(m, "handle", handle) < 0 ||
        PyModule_AddObjectRef(m, "Region", RegionType) < 0 ||
        PyModule_AddIntConstant(m, "PROTOCOL_VERSION", ST_WIRE_VERSION) < 0)
        goto error;
    return m;

error:
    Py_DECREF(m);
    return NULL;
}
