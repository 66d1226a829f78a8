/*
 * _stnoop: the floor for the benchmark (bench/run.py).
 *
 *   install()        PyEval_SetTrace with a C trace function that returns 0
 *                    for every event: the cost of a C settrace tracer that
 *                    does nothing.
 *   uninstall()      PyEval_SetTrace(NULL, NULL).
 *   line_callback    a METH_FASTCALL C function returning None, to register
 *                    with sys.monitoring.register_callback for LINE events
 *                    (3.12+): the cost of a C sys.monitoring LINE callback.
 *
 * Built by bench/run.py for each interpreter with that interpreter's
 * include directory and extension suffix (no meson needed).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int
noop_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj;
    (void)frame;
    (void)what;
    (void)arg;
    return 0;
}

static PyObject *
stnoop_install(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyEval_SetTrace(noop_trace, NULL);
    Py_RETURN_NONE;
}

static PyObject *
stnoop_uninstall(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyEval_SetTrace(NULL, NULL);
    Py_RETURN_NONE;
}

static PyObject *
stnoop_line_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    (void)args;
    (void)nargs;
    Py_RETURN_NONE;
}

static PyMethodDef stnoop_methods[] = {
    {"install", stnoop_install, METH_NOARGS,
     "Install a C trace function that does nothing (PyEval_SetTrace)."},
    {"uninstall", stnoop_uninstall, METH_NOARGS,
     "Remove the C trace function."},
    {"line_callback", (PyCFunction)(void (*)(void))stnoop_line_callback,
     METH_FASTCALL,
     "sys.monitoring LINE callback that does nothing and returns None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef stnoop_module = {
    PyModuleDef_HEAD_INIT,
    "_stnoop",
    "No-op C tracers: the floor for steptrace's benchmark.",
    -1,
    stnoop_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__stnoop(void)
{
    return PyModule_Create(&stnoop_module);
}
