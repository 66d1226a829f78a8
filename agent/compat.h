/*
 * Every CPython version difference the agent needs, in one place (PEP 7;
 * coverage.py's util.h).  Supported: 3.10 to 3.13.
 */
#ifndef STEPTRACE_AGENT_COMPAT_H
#define STEPTRACE_AGENT_COMPAT_H

#include <Python.h>
#include <frameobject.h>

#if PY_VERSION_HEX < 0x030A0000
#error "steptrace needs CPython 3.10 or newer"
#endif

/* Per-code-object extra slots: public-unstable names from 3.12. */
#if PY_VERSION_HEX >= 0x030C0000
#define ST_REQUEST_CODE_EXTRA_INDEX PyUnstable_Eval_RequestCodeExtraIndex
#define ST_CODE_GET_EXTRA PyUnstable_Code_GetExtra
#define ST_CODE_SET_EXTRA PyUnstable_Code_SetExtra
#else
#define ST_REQUEST_CODE_EXTRA_INDEX _PyEval_RequestCodeExtraIndex
#define ST_CODE_GET_EXTRA _PyCode_GetExtra
#define ST_CODE_SET_EXTRA _PyCode_SetExtra
#endif

/* Globals of a frame: borrowed in 3.10, a new reference from 3.11.  This
 * helper always returns a new reference. */
static inline PyObject *
st_frame_get_globals(PyFrameObject *f)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetGlobals(f);
#else
    return Py_NewRef(f->f_globals);
#endif
}

/*
 * Locals of a frame as a mapping, new reference, or NULL with an exception
 * set.  3.10 syncs fast locals into f_locals first; 3.11 and 3.12 do that
 * inside PyFrame_GetLocals; 3.13 returns a write-through proxy (PEP 667)
 * for function frames and the dict itself for module and class frames.
 */
static inline PyObject *
st_frame_get_locals(PyFrameObject *f)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetLocals(f);
#else
    if (PyFrame_FastToLocalsWithError(f) < 0)
        return NULL;
    return Py_XNewRef(f->f_locals);
#endif
}

/* Saving and restoring the exception in flight around hook work. */
#if PY_VERSION_HEX >= 0x030C0000
typedef struct {
    PyObject *exc;
} st_exc_state;
#define ST_EXC_SAVE(s) ((s).exc = PyErr_GetRaisedException())
#define ST_EXC_RESTORE(s) PyErr_SetRaisedException((s).exc)
#else
typedef struct {
    PyObject *type, *value, *tb;
} st_exc_state;
#define ST_EXC_SAVE(s) PyErr_Fetch(&(s).type, &(s).value, &(s).tb)
#define ST_EXC_RESTORE(s) PyErr_Restore((s).type, (s).value, (s).tb)
#endif

#endif /* STEPTRACE_AGENT_COMPAT_H */
