/*
 * See fastlocals.h.  The only file that looks inside frames: it is built
 * with CPython's internal headers (Py_BUILD_CORE), which every supported
 * version installs, and reads two fields whose layout 3.11-3.13 share
 * (PyFrameObject.f_frame, _PyInterpreterFrame.localsplus); 3.10 has the
 * array in the public PyFrameObject.
 */
#define Py_BUILD_CORE 1
#include "fastlocals.h"

#if PY_VERSION_HEX >= 0x030B0000
#include <internal/pycore_frame.h>
#else
#include <frameobject.h>
#endif

int
st__fastlocals_ok(PyCodeObject *co, PyObject **names)
{
    *names = NULL;
    if (!(co->co_flags & CO_OPTIMIZED))
        return 0;
#if PY_VERSION_HEX >= 0x030B0000
    if (co->co_ncellvars != 0 || co->co_nfreevars != 0)
        return 0;
    *names = PyCode_GetVarnames(co);
#else
    if (PyTuple_GET_SIZE(co->co_cellvars) != 0 ||
        PyTuple_GET_SIZE(co->co_freevars) != 0)
        return 0;
    *names = Py_NewRef(co->co_varnames);
#endif
    if (*names == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (!PyTuple_Check(*names) ||
        PyTuple_GET_SIZE(*names) != (Py_ssize_t)co->co_nlocals) {
        Py_CLEAR(*names);
        return 0;
    }
    return 1;
}

PyObject *const *
st__fastlocals_get(PyFrameObject *f)
{
#if PY_VERSION_HEX >= 0x030B0000
    return ((struct _frame *)f)->f_frame->localsplus;
#else
    return f->f_localsplus;
#endif
}

const void *
st__fastlocals_first_arg(PyFrameObject *f, PyCodeObject *co)
{
    PyObject *v = st__fastlocals_get(f)[0];

#if PY_VERSION_HEX < 0x030B0000
    /* 3.10 moves an argument that is a cell into the cell, after the
     * plain locals, and clears its own slot. */
    if (v == NULL && co->co_cell2arg != NULL) {
        Py_ssize_t i, n = PyTuple_GET_SIZE(co->co_cellvars);

        for (i = 0; i < n; i++)
            if (co->co_cell2arg[i] == 0)
                v = f->f_localsplus[co->co_nlocals + i];
    }
#else
    (void)co;
#endif
    /* 3.11+ makes the cell in the argument's own slot. */
    if (v != NULL && PyCell_Check(v))
        v = PyCell_GET(v);
    return v;
}
