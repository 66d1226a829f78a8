/*
 * steptrace._agent: the Python-facing side of the agent.  The package's
 * Tracer calls these; the per-event work lives in tracer.c, regions in
 * region.c (which also builds them: region()).  The method table lists
 * every module function, one entry each.
 *
 * The agent's state is process-wide (one hook, one collector connection),
 * so the module is a singleton by nature and uses single-phase init; its
 * types are heap types.
 */
#include "compat.h"

#include "steptrace/ring.h"
#include "steptrace/wire.h"

#include "agent.h"
#include "async.h"
#include "backend.h"
#include "collector.h"
#include "compose.h"
#include "config_py.h"
#include "filter.h"
#include "outbox.h"
#include "region.h"
#include "sender.h"
#include "threads.h"
#include "wirepy.h"

static PyObject *HandleType; /* Owned heap type. */
static PyObject *handle;     /* Owned: the object sys.gettrace() shows. */

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
agent_collector_formats(PyObject *mod, PyObject *unused)
{
    return PyLong_FromUnsignedLong(st__collector_formats());
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

/* start(region) -> the region active before (or None): makes `region`
 * the active one and installs the hook in the calling thread. */
static PyObject *
agent_start(PyObject *mod, PyObject *region)
{
    PyObject *prev;

    if (st__region_of(region) == NULL)
        return NULL;
    prev = st__region_enter(region, 1);
    st__backend_start(handle);
    return prev != NULL ? prev : Py_NewRef(Py_None);
}

/* pause(prev): stops recording without ending the active region (a traced
 * generator between two resumptions); `prev` (a Region or None) becomes
 * active again. */
static PyObject *
agent_pause(PyObject *mod, PyObject *prev)
{
    if (prev != Py_None && st__region_of(prev) == NULL)
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
    struct st_trace_region *r;
    PyObject *prev;

    if (region == Py_None)
        Py_RETURN_NONE;
    r = st__region_of(region);
    if (r == NULL)
        return NULL;
    if (r->finished)
        Py_RETURN_NONE;
    prev = st__region_enter(region, 0);
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

    r = st__region_of(region);
    if (r == NULL)
        return NULL;
    if (st__threads_region() == r) {
        st__backend_stop();
        st__region_leave(NULL);
    }
    token = st__region_finish(r);
    st__backend_idle(1);
    if (token != 0 &&
        st__sender_wait_ack(token, 10000, &errors, msg, sizeof(msg)) != 0) {
        /* The collector died before it confirmed the end: what it did
         * not confirm is counted in a new file, as after any reconnection.
         * Only when that fails too does the count go to stderr. */
        token = st__region_end_again(r);
        if (token == 0 ||
            st__sender_wait_ack(token, 10000, &errors, msg, sizeof(msg)) != 0)
            errors++;
    }
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
    struct st_trace_region *r;
    const char *text;
    Py_ssize_t n;
    int at_step;

    if (!PyArg_ParseTuple(args, "Os#p:note", &region, &text, &n, &at_step) ||
        (r = st__region_of(region)) == NULL)
        return NULL;
    return PyBool_FromLong(
        st__region_note(r, at_step ? ST_NOTE_AT_STEP : ST_NOTE_LINE, text,
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
        (r = st__region_of(region)) == NULL)
        return NULL;
    if (text != Py_None && !PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "set_origin needs a str or None");
        return NULL;
    }
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
        (r = st__region_of(region)) == NULL)
        return NULL;
    known = st__sender_file(r->tracer_id, path, sizeof(path));
    if (!known && wait && (r->outputs & ST_OUT_FILE) && r->file_announced &&
        r->announced_gen == st__sender_gen() && st__sender_ok()) {
        uint64_t token = st__outbox_flush(r->drop_when_full, 1), errors = 0;
        char msg[600];

        /* The FILE comes before the ACK of a FLUSH sent after the
         * record that claimed the file. */
        if (token != 0)
            (void)st__sender_wait_ack(token, 1000, &errors, msg, sizeof(msg));
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
    /* The connection was reset inside fork() (collector.c). */
    st__region_after_fork_child();
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

    if (!PyArg_ParseTuple(args, "ps#pK:task_event", &created, &name, &n, &ok,
                          &dur))
        return NULL;
    return PyBool_FromLong(st__async_task_event(st__threads_region(), created,
                                                name, (size_t)n, ok, dur));
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

    return PyBool_FromLong(
        r != NULL &&
        st__filter_codeinfo((PyCodeObject *)code, &r->filter) != NULL);
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
    {"collector_formats", agent_collector_formats, METH_NOARGS,
     "collector_formats() -> int: the collector's default log formats "
     "(1 text, 2 steps, 3 both; 0 before a connection)."},
    {"close", agent_close, METH_NOARGS,
     "close(): send what is queued and close the connection."},
    {"region", (PyCFunction)(void (*)(void))st__region_py_new,
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
    st__compose_set_building(st__threads_being_built);
    if (st__filter_setup() != 0) {
        PyErr_SetString(PyExc_RuntimeError, "steptrace: cannot initialise");
        goto error;
    }
    st__outbox_init();
    HandleType = PyType_FromSpec(&handle_spec);
    if (HandleType == NULL)
        goto error;
    handle = PyObject_New(PyObject, (PyTypeObject *)HandleType);
    if (handle == NULL)
        goto error;
    if (PyModule_AddObjectRef(m, "handle", handle) < 0 ||
        st__region_add_type(m) < 0 ||
        PyModule_AddIntConstant(m, "PROTOCOL_VERSION", ST_WIRE_VERSION) < 0)
        goto error;
    if (st__wirepy_add(m) < 0)
        goto error;
    return m;

error:
    Py_DECREF(m);
    return NULL;
}
