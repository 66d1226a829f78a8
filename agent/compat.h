/*
 * Every CPython version difference the agent needs, in one place (PEP 7;
 * coverage.py's util.h).  Supported: 3.10 to 3.13.
 */
#ifndef STEPTRACE_AGENT_COMPAT_H
#define STEPTRACE_AGENT_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
/* YIELD_VALUE (3.11), RETURN_VALUE and RETURN_CONST (3.12+), the
 * iteration opcodes. */
#include <opcode.h>

#if PY_VERSION_HEX < 0x030A0000
#error "steptrace needs CPython 3.10 or newer"
#endif

/* sys.monitoring (PEP 669): 3.12+.  Before, backend_monitoring.c only
 * passes the settrace backend on. */
#if PY_VERSION_HEX >= 0x030C0000
#define ST_HAVE_MONITORING 1
#else
#define ST_HAVE_MONITORING 0
#endif

/* PyMemberDef and its T_* types: in Python.h from 3.12. */
#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#endif

/* 3.13 stores an attribute into an object's inline values without moving
 * the version tag of the attribute dict made from them: that dict's tag
 * cannot be trusted to cover its items. */
#if PY_VERSION_HEX >= 0x030D0000
#define ST_DICT_TAG_MISSES_INLINE_VALUES 1
#else
#define ST_DICT_TAG_MISSES_INLINE_VALUES 0
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

/* Is the object behind weak reference `ref` alive, and (when `obj` is not
 * NULL) is it `obj`?  Never raises.  (PyWeakref_GetObject is deprecated
 * from 3.13 in favour of PyWeakref_GetRef.) */
static inline int
st_weakref_alive_is(PyObject *ref, PyObject *obj)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *o = NULL;
    int r = PyWeakref_GetRef(ref, &o);

    if (r < 0)
        PyErr_Clear();
    r = r == 1 && (obj == NULL || o == obj);
    Py_XDECREF(o);
    return r;
#else
    PyObject *o = PyWeakref_GetObject(ref);

    if (o == NULL) {
        PyErr_Clear();
        return 0;
    }
    return o != Py_None && (obj == NULL || o == obj);
#endif
}

/* Code that can suspend (yield or await) and be resumed. */
#define ST_CO_SUSPENDABLE                                                     \
    (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

/* The generator, coroutine or async generator running in f: a new
 * reference, or NULL (no exception set). */
static inline PyObject *
st_frame_get_generator(PyFrameObject *f)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetGenerator(f);
#else
    return Py_XNewRef(f->f_gen);
#endif
}

#if PY_VERSION_HEX >= 0x030B0000
/* The opcode the frame stopped at, from the code's (unspecialized) bytes,
 * or -1. */
static inline int
st_frame_last_opcode(PyFrameObject *f, PyCodeObject *co)
{
    PyObject *code = PyCode_GetCode(co);
    int lasti = PyFrame_GetLasti(f), op = -1;

    if (code != NULL && lasti >= 0 && lasti < (int)PyBytes_GET_SIZE(code))
        op = (unsigned char)PyBytes_AS_STRING(code)[lasti];
    Py_XDECREF(code);
    PyErr_Clear();
    return op;
}
#endif

/*
 * Is f at an instruction of the iteration protocol (a for loop, yield
 * from, await, async for), where StopIteration / StopAsyncIteration is
 * how an iterator says it is done rather than an error of the program?
 */
static inline int
st_frame_at_iteration(PyFrameObject *f)
{
    PyCodeObject *co = PyFrame_GetCode(f);
    int op;

#if PY_VERSION_HEX >= 0x030B0000
    op = st_frame_last_opcode(f, co);
#else
    op = -1;
    if (f->f_lasti >= 0 &&
        (Py_ssize_t)f->f_lasti * 2 < PyBytes_GET_SIZE(co->co_code))
        op = (unsigned char)PyBytes_AS_STRING(co->co_code)[f->f_lasti * 2];
#endif
    Py_DECREF(co);
    switch (op) {
    case FOR_ITER:
    case END_ASYNC_FOR:
#ifdef SEND
    case SEND:
#endif
#ifdef YIELD_FROM
    case YIELD_FROM:
#endif
#ifdef END_FOR
    case END_FOR:
#endif
#ifdef END_SEND
    case END_SEND: /* 3.12+ reports a finished SEND at its jump target. */
#endif
        return 1;
    default: return 0;
    }
}

/* The frame's last instruction offset in bytes (-1 before the first). */
static inline int
st_frame_lasti(PyFrameObject *f)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetLasti(f);
#else
    return f->f_lasti < 0 ? -1 : f->f_lasti * 2;
#endif
}

/*
 * At the CALL event of suspendable code: is this the code's first start,
 * rather than a resumption after a yield or an await?  (3.11+ starts at a
 * RESUME with argument 0; resumptions stop elsewhere.)
 */
static inline int
st_frame_is_first_start(PyFrameObject *f, PyCodeObject *co)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *code = PyCode_GetCode(co);
    int lasti = PyFrame_GetLasti(f), first = 0;

    if (code != NULL && lasti >= 0 && lasti + 1 < (int)PyBytes_GET_SIZE(code))
        first = (unsigned char)PyBytes_AS_STRING(code)[lasti] == RESUME &&
                PyBytes_AS_STRING(code)[lasti + 1] == 0;
    else if (lasti < 0)
        first = 1;
    Py_XDECREF(code);
    PyErr_Clear();
    return first;
#else
    (void)co;
    return f->f_lasti < 0;
#endif
}

/*
 * At a RETURN event: does an exception end the frame?  Before 3.12 the C
 * trace function gets arg NULL then; the 3.12+ settrace emulation passes
 * None for both, so the instruction tells: a real return stops at
 * RETURN_VALUE or RETURN_CONST.
 */
static inline int
st_return_is_exception(PyFrameObject *f, PyCodeObject *co, PyObject *arg)
{
#if PY_VERSION_HEX >= 0x030C0000
    int op;

    if (arg == NULL)
        return 1;
    if (arg != Py_None)
        return 0;
    op = st_frame_last_opcode(f, co);
    return op >= 0 && op != RETURN_VALUE && op != RETURN_CONST;
#else
    (void)f;
    (void)co;
    return arg == NULL;
#endif
}

/*
 * At a RETURN event of suspendable code: is the frame suspending (a yield,
 * or an await that waits) rather than ending?  Never raises.
 */
static inline int
st_frame_is_suspending(PyFrameObject *f, PyCodeObject *co)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *gen, *v;
    const char *attr;
    int r = 0;

    if (!(co->co_flags & ST_CO_SUSPENDABLE))
        return 0;
    gen = PyFrame_GetGenerator(f);
    if (gen == NULL)
        return 0;
    /* The generator's state is set to suspended before the event. */
    attr = (co->co_flags & CO_COROUTINE)         ? "cr_suspended"
           : (co->co_flags & CO_ASYNC_GENERATOR) ? "ag_suspended"
                                                 : "gi_suspended";
    v = PyObject_GetAttrString(gen, attr);
    if (v != NULL) {
        r = PyObject_IsTrue(v) == 1;
        Py_DECREF(v);
    }
#if PY_VERSION_HEX < 0x030C0000
    else {
        /* 3.11 async generators have no ag_suspended: look at the
         * instruction the frame stopped at. */
        PyErr_Clear();
        r = st_frame_last_opcode(f, co) == YIELD_VALUE;
    }
#endif
    PyErr_Clear();
    Py_DECREF(gen);
    return r;
#else
    if (!(co->co_flags & ST_CO_SUSPENDABLE))
        return 0;
    return f->f_state == FRAME_SUSPENDED;
#endif
}

/* The exception being handled (an except block is running), as a new
 * reference, or NULL. */
static inline PyObject *
st_handled_exception(void)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *e = PyErr_GetHandledException();

    if (e == Py_None) {
        Py_DECREF(e);
        return NULL;
    }
    return e;
#else
    PyObject *t, *v, *tb;

    PyErr_GetExcInfo(&t, &v, &tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    if (v == Py_None) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
#endif
}

/*
 * Stops line events for frame f (a frame that is not traced: library
 * code): the interpreter then skips the trace function for its lines.
 * Never raises.
 */
static inline void
st_frame_disable_lines(PyFrameObject *f)
{
#if PY_VERSION_HEX >= 0x030B0000
    static PyObject *name;

    if (name == NULL &&
        (name = PyUnicode_InternFromString("f_trace_lines")) == NULL) {
        PyErr_Clear();
        return;
    }
    if (PyObject_SetAttr((PyObject *)f, name, Py_False) < 0)
        PyErr_Clear();
#else
    f->f_trace_lines = 0;
#endif
}

/*
 * A dict's version tag: changes whenever an item is added, removed or
 * replaced by another object (PEP 509; deprecated in 3.12 but kept
 * through 3.13).  Equal tags: the same items.
 */
static inline uint64_t
st_dict_version(PyObject *d)
{
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    return ((PyDictObject *)d)->ma_version_tag;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

/* Saving and restoring the exception in flight around hook work;
 * ST_EXC_VALUE is the exception a saved state holds (borrowed; NULL: none
 * or not normalised). */
#if PY_VERSION_HEX >= 0x030C0000
typedef struct {
    PyObject *exc;
} st_exc_state;
#define ST_EXC_SAVE(s) ((s).exc = PyErr_GetRaisedException())
#define ST_EXC_RESTORE(s) PyErr_SetRaisedException((s).exc)
#define ST_EXC_VALUE(s) ((s).exc)
#else
typedef struct {
    PyObject *type, *value, *tb;
} st_exc_state;
#define ST_EXC_SAVE(s) PyErr_Fetch(&(s).type, &(s).value, &(s).tb)
#define ST_EXC_RESTORE(s) PyErr_Restore((s).type, (s).value, (s).tb)
#define ST_EXC_VALUE(s) ((s).value)
#endif

#endif /* STEPTRACE_AGENT_COMPAT_H */
