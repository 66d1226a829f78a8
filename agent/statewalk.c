/*
 * The walk behind a state print (see stateprint.h): what an object of a
 * class statement's class holds -- its attribute dict (by the dict's
 * version tag and its values), its __slots__, the lists, tuples, dicts
 * and sets reachable from them, the objects those hold -- hashed as met:
 * the identity and type of each object, the version tag of each dict, the
 * length and items of each list, the value of each str, int or float, the
 * version tag of each class.  No code of the program's runs.
 *
 * Compiled patterns, dates and decimals (immutable, written in C) are
 * covered by their identity and hash.  A dict at an unchanged version tag
 * holds the same objects, so its scalars need no visit, and a dict of
 * scalars only is not iterated again at the same tag -- except an
 * instance's attribute dict on 3.13, whose tag does not move when an
 * attribute is stored into the object's inline values: it is walked item
 * by item (compat.h).
 */
#include "compat.h"

#include "statewalk.h"

#include <stdlib.h>
#include <string.h>

/* PyMemberDef types of object slots (structmember.h's T_OBJECT and
 * T_OBJECT_EX, Py_T_OBJECT_EX from 3.12: the same values). */
#define SP_T_OBJECT 6
#define SP_T_OBJECT_EX 16

/* Objects walked at most; a bigger state is rendered at each step. */
#define SP_MAX_NODES 20000u

struct walk {
    uint64_t h;
    uint32_t nodes;
    int failed;
    PyObject **stack; /* Borrowed: to visit. */
    size_t nstack, capstack;
};

/* The visited set, reused by every walk: entries stamped with the walk's
 * generation, so it is never cleared. */
struct seen_ent {
    const void *p;
    uint32_t gen;
};
static struct seen_ent *seen;
static size_t seen_cap; /* Power of two, >= 2 * SP_MAX_NODES. */
static uint32_t seen_gen;
static PyObject **walk_stack;
static size_t walk_cap;

/* tp_dealloc of classes made by a class statement (subtype_dealloc). */
static destructor py_class_dealloc;

/* Immutable types written in C whose str() shows only what their hash
 * covers (compiled patterns, dates, decimals), looked up in modules the
 * program has imported; NULL until then. */
static struct {
    const char *module, *name;
    PyTypeObject *type; /* Owned once found. */
} opaque[] = {
    {"re", "Pattern", NULL},         {"datetime", "datetime", NULL},
    {"datetime", "date", NULL},      {"datetime", "time", NULL},
    {"datetime", "timedelta", NULL}, {"datetime", "timezone", NULL},
    {"decimal", "Decimal", NULL},
};
#define NOPAQUE (sizeof(opaque) / sizeof(opaque[0]))
static size_t nopaque_found;

static int statewalk_is_py_class(PyTypeObject *t);

/* Looks the opaque types up in sys.modules (never imports). */
static void
statewalk_opaque_find(void)
{
    size_t i;

    for (i = 0; i < NOPAQUE; i++) {
        PyObject *name, *m, *t;

        if (opaque[i].type != NULL)
            continue;
        name = PyUnicode_FromString(opaque[i].module);
        m = name != NULL ? PyImport_GetModule(name) : NULL;
        Py_XDECREF(name);
        t = m != NULL ? PyObject_GetAttrString(m, opaque[i].name) : NULL;
        Py_XDECREF(m);
        PyErr_Clear();
        if (t != NULL && PyType_Check(t) && py_class_dealloc != NULL &&
            !statewalk_is_py_class((PyTypeObject *)t)) {
            opaque[i].type = (PyTypeObject *)t;
            nopaque_found++;
        }
        else {
            Py_XDECREF(t);
        }
    }
}

static int
statewalk_is_opaque(PyTypeObject *t)
{
    size_t i;

    for (i = 0; i < NOPAQUE; i++)
        if (opaque[i].type == t)
            return 1;
    return 0;
}

static void
statewalk_mix(struct walk *w, uint64_t t)
{
    uint64_t h = (w->h ^ t) * 0x9e3779b97f4a7c15ull;

    w->h = h ^ (h >> 29);
}

static void
statewalk_mix_bytes(struct walk *w, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;

    for (i = 0; i + 8 <= n; i += 8) {
        uint64_t x;

        memcpy(&x, b + i, 8);
        statewalk_mix(w, x);
    }
    for (; i < n; i++)
        statewalk_mix(w, b[i] | 0x100u);
    statewalk_mix(w, n);
}

/* Marks p visited.  @return 1 when it was already. */
static int
statewalk_seen_mark(const void *p)
{
    size_t i = ((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ull & (seen_cap - 1);

    for (;; i = (i + 1) & (seen_cap - 1)) {
        if (seen[i].gen != seen_gen) {
            seen[i].p = p;
            seen[i].gen = seen_gen;
            return 0;
        }
        if (seen[i].p == p)
            return 1;
    }
}

static void
statewalk_push(struct walk *w, PyObject *v)
{
    if (w->nstack == w->capstack) {
        size_t cap = w->capstack ? 2 * w->capstack : 256;
        PyObject **s = realloc(w->stack, cap * sizeof(*s));

        if (s == NULL) {
            w->failed = 1;
            return;
        }
        w->stack = s;
        w->capstack = cap;
    }
    w->stack[w->nstack++] = v;
}

/* Is t a class made by a class statement? */
static int
statewalk_is_py_class(PyTypeObject *t)
{
    return (t->tp_flags & Py_TPFLAGS_HEAPTYPE) &&
           t->tp_dealloc == py_class_dealloc;
}

/* The builtin a class statement may derive from whose contents the walk
 * reads directly (never through the program's methods), or NULL when the
 * class derives from anything else written in C. */
static PyTypeObject *
statewalk_native_base(PyTypeObject *t)
{
    static PyTypeObject *const ok[] = {
        &PyBaseObject_Type, &PyUnicode_Type,   &PyLong_Type, &PyFloat_Type,
        &PyBytes_Type,      &PyTuple_Type,     &PyList_Type, &PyDict_Type,
        &PySet_Type,        &PyFrozenSet_Type,
    };
    PyObject *mro = t->tp_mro;
    PyTypeObject *base = &PyBaseObject_Type;
    Py_ssize_t i;
    size_t k;

    if (mro == NULL || !PyTuple_Check(mro))
        return NULL;
    for (i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *b = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);

        if (statewalk_is_py_class(b))
            continue;
        for (k = 0; k < sizeof(ok) / sizeof(ok[0]); k++)
            if (b == ok[k])
                break;
        if (k == sizeof(ok) / sizeof(ok[0]))
            return NULL;
        if (b != &PyBaseObject_Type && base == &PyBaseObject_Type)
            base = b;
    }
    return base;
}

/* Objects whose text is fixed by their identity (or by nothing the
 * program can change): functions, classes, modules and the like. */
static int
statewalk_is_identity_leaf(PyObject *v)
{
    return PyFunction_Check(v) || PyCFunction_Check(v) || PyType_Check(v) ||
           PyModule_Check(v) || PyCode_Check(v) || PyMethod_Check(v) ||
           PyGen_Check(v) || PyCoro_CheckExact(v) || v == Py_Ellipsis ||
           v == Py_NotImplemented || PyRange_Check(v) || PySlice_Check(v) ||
           Py_IS_TYPE(v, &PyProperty_Type) ||
           Py_IS_TYPE(v, &PyClassMethodDescr_Type) ||
           Py_IS_TYPE(v, &PyMethodDescr_Type) ||
           Py_IS_TYPE(v, &PyWrapperDescr_Type) ||
           Py_IS_TYPE(v, &PyGetSetDescr_Type) ||
           Py_IS_TYPE(v, &PyMemberDescr_Type) ||
           Py_IS_TYPE(v, &PyClassMethod_Type) ||
           Py_IS_TYPE(v, &PyStaticMethod_Type);
}

/* A str's text, by its hash (computed once, kept in the str), with its
 * length. */
static void
statewalk_str(struct walk *w, PyObject *v)
{
    Py_hash_t h = PyUnicode_Type.tp_hash(v);

    if (h == -1) {
        PyErr_Clear();
        w->failed = 1;
        return;
    }
    statewalk_mix(w, (uint64_t)h);
    statewalk_mix(w, (uint64_t)PyUnicode_GET_LENGTH(v));
}

static void
statewalk_int(struct walk *w, PyObject *v)
{
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);

    if (overflow == 0 && !(x == -1 && PyErr_Occurred())) {
        statewalk_mix(w, (uint64_t)x);
        return;
    }
    PyErr_Clear();
    /* A big int: its hash, computed in C (PyLong_Type's own). */
    statewalk_mix(w, (uint64_t)PyLong_Type.tp_hash(v));
    PyErr_Clear();
}

static void
statewalk_float(struct walk *w, double d)
{
    uint64_t x;

    memcpy(&x, &d, sizeof(x));
    statewalk_mix(w, x);
}

/* An immutable scalar (int, str, float, bool, None) held by a container:
 * mixed in place, without a visit of its own.  @return 1 when x is one. */
static int
statewalk_scalar(struct walk *w, PyObject *x)
{
    PyTypeObject *t = Py_TYPE(x);

    if (x == Py_None || t == &PyBool_Type) {
        statewalk_mix(w, (uint64_t)(uintptr_t)x);
        return 1;
    }
    if (t == &PyLong_Type) {
        statewalk_mix(w, (uint64_t)(uintptr_t)x);
        statewalk_int(w, x);
        return 1;
    }
    if (t == &PyUnicode_Type) {
        statewalk_mix(w, (uint64_t)(uintptr_t)x);
        statewalk_str(w, x);
        return 1;
    }
    if (t == &PyFloat_Type) {
        statewalk_mix(w, (uint64_t)(uintptr_t)x);
        statewalk_float(w, PyFloat_AS_DOUBLE(x));
        return 1;
    }
    return 0;
}

static void
statewalk_seq(struct walk *w, PyObject *const *items, Py_ssize_t n)
{
    Py_ssize_t i;

    statewalk_mix(w, (uint64_t)n);
    for (i = n; i > 0; i--)
        if (!statewalk_scalar(w, items[i - 1]))
            statewalk_push(w, items[i - 1]);
}

/* Does the dict's version tag cover x entirely (an immutable scalar: the
 * same object again is the same value)? */
static int
statewalk_covered_by_version(PyObject *x)
{
    PyTypeObject *t = Py_TYPE(x);

    return x == Py_None || t == &PyLong_Type || t == &PyUnicode_Type ||
           t == &PyFloat_Type || t == &PyBool_Type;
}

/*
 * Dicts found to hold only scalars, by address and version tag: such a
 * dict at that version is wholly covered by the tag, and is not iterated
 * again (a graph's edge attributes, a record's fields).  Version tags are
 * never reused, so a hit cannot be another dict's state.  Direct-mapped.
 */
#define FLAT_SLOTS 8192u

static struct {
    const void *dict;
    uint64_t version;
} flat[FLAT_SLOTS];

/* The items of a dict whose version tag cannot be trusted: each key and
 * value by identity, scalars by value too. */
static void
statewalk_dict_items(struct walk *w, PyObject *d)
{
    Py_ssize_t pos = 0;
    PyObject *k, *val;

    statewalk_mix(w, (uint64_t)PyDict_GET_SIZE(d));
    while (PyDict_Next(d, &pos, &k, &val)) {
        if (!statewalk_scalar(w, k))
            statewalk_push(w, k);
        if (!statewalk_scalar(w, val))
            statewalk_push(w, val);
    }
}

static void
statewalk_dict(struct walk *w, PyObject *d)
{
    Py_ssize_t pos = 0;
    PyObject *k, *val;
    uint64_t version = st_dict_version(d);
    size_t slot = (((uintptr_t)d >> 4) * 0x9e3779b97f4a7c15ull >> 32) %
                  FLAT_SLOTS;
    int scalars_only = 1;

    statewalk_mix(w, (uint64_t)PyDict_GET_SIZE(d));
    statewalk_mix(w, version);
    if (flat[slot].dict == (const void *)d && flat[slot].version == version)
        return;
    /* An equal version tag means the same key and value objects: only
     * what can change inside them is visited. */
    while (PyDict_Next(d, &pos, &k, &val)) {
        if (!statewalk_covered_by_version(k)) {
            statewalk_push(w, k);
            scalars_only = 0;
        }
        if (!statewalk_covered_by_version(val)) {
            statewalk_push(w, val);
            scalars_only = 0;
        }
    }
    if (scalars_only) {
        flat[slot].dict = d;
        flat[slot].version = version;
    }
}

/* Sets and frozensets, through the set type's own iterator (never a
 * subclass's __iter__). */
static void
statewalk_set(struct walk *w, PyObject *v)
{
    PyObject *it, *item;

    statewalk_mix(w, (uint64_t)PySet_GET_SIZE(v));
    it = PySet_Type.tp_iter(v);
    if (it == NULL) {
        PyErr_Clear();
        w->failed = 1;
        return;
    }
    while ((item = Py_TYPE(it)->tp_iternext(it)) != NULL) {
        statewalk_push(w, item);
        /* The set holds it: the borrowed pointer stays valid. */
        Py_DECREF(item);
    }
    PyErr_Clear();
    Py_DECREF(it);
}

/* The contents a builtin base holds, read directly. */
static void
statewalk_payload(struct walk *w, PyObject *v, PyTypeObject *base)
{
    if (base == &PyUnicode_Type)
        statewalk_str(w, v);
    else if (base == &PyLong_Type)
        statewalk_int(w, v);
    else if (base == &PyFloat_Type)
        statewalk_float(w, PyFloat_AS_DOUBLE(v));
    else if (base == &PyBytes_Type)
        statewalk_mix_bytes(w, PyBytes_AS_STRING(v),
                            (size_t)PyBytes_GET_SIZE(v));
    else if (base == &PyTuple_Type)
        statewalk_seq(w, &PyTuple_GET_ITEM(v, 0), PyTuple_GET_SIZE(v));
    else if (base == &PyList_Type)
        statewalk_seq(w, PySequence_Fast_ITEMS(v), PyList_GET_SIZE(v));
    else if (base == &PyDict_Type)
        statewalk_dict(w, v);
    else if (base == &PySet_Type || base == &PyFrozenSet_Type)
        statewalk_set(w, v);
}

/* An instance of a class statement's class: its class's version, its
 * builtin contents, its attribute dict, its slots. */
static void
statewalk_instance(struct walk *w, PyObject *v, PyTypeObject *base)
{
    PyTypeObject *t = Py_TYPE(v);
    PyObject *mro = t->tp_mro, **dictptr;
    Py_ssize_t i;

    statewalk_mix(w, t->tp_version_tag);
    statewalk_payload(w, v, base);
    for (i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *b = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        PyMemberDef *m;

        if (!statewalk_is_py_class(b) || b->tp_members == NULL)
            continue;
        for (m = b->tp_members; m->name != NULL; m++) {
            PyObject *x;

            if ((m->type != SP_T_OBJECT_EX && m->type != SP_T_OBJECT) ||
                m->offset == t->tp_weaklistoffset ||
                m->offset == t->tp_dictoffset)
                continue;
            x = *(PyObject **)((char *)v + m->offset);
            if (x != NULL)
                statewalk_push(w, x);
            else
                statewalk_mix(w, 0);
        }
    }
    /* The attribute dict (made, when the object keeps its attributes
     * inline, as reading vars() would make it). */
    dictptr = _PyObject_GetDictPtr(v);
    if (dictptr != NULL && *dictptr != NULL && PyDict_Check(*dictptr)) {
        statewalk_mix(w, 1);
        if (ST_DICT_TAG_MISSES_INLINE_VALUES)
            statewalk_dict_items(w, *dictptr);
        else
            statewalk_dict(w, *dictptr);
    }
    else {
        PyErr_Clear();
        statewalk_mix(w, 0);
    }
}

static void
statewalk_node(struct walk *w, PyObject *v)
{
    PyTypeObject *t = Py_TYPE(v), *base;

    if (statewalk_seen_mark(v)) {
        statewalk_mix(w, 0x5ee7);
        statewalk_mix(w, (uint64_t)(uintptr_t)v);
        return;
    }
    if (++w->nodes > SP_MAX_NODES) {
        w->failed = 1;
        return;
    }
    statewalk_mix(w, (uint64_t)(uintptr_t)v);
    statewalk_mix(w, (uint64_t)(uintptr_t)t);
    if (v == Py_None || PyBool_Check(v) || statewalk_is_identity_leaf(v))
        return;
    if (PyUnicode_CheckExact(v))
        statewalk_str(w, v);
    else if (PyLong_CheckExact(v))
        statewalk_int(w, v);
    else if (PyFloat_CheckExact(v))
        statewalk_float(w, PyFloat_AS_DOUBLE(v));
    else if (PyComplex_CheckExact(v)) {
        Py_complex c = PyComplex_AsCComplex(v);

        statewalk_float(w, c.real);
        statewalk_float(w, c.imag);
    }
    else if (PyBytes_CheckExact(v) || PyTuple_CheckExact(v) ||
             PyList_CheckExact(v) || PyDict_CheckExact(v) ||
             PySet_CheckExact(v) || PyFrozenSet_CheckExact(v))
        statewalk_payload(w, v, t);
    else if (statewalk_is_py_class(t) &&
             (base = statewalk_native_base(t)) != NULL)
        statewalk_instance(w, v, base);
    else if (statewalk_is_opaque(t) && t->tp_hash != NULL) {
        Py_hash_t h = t->tp_hash(v);

        if (h == -1) {
            PyErr_Clear();
            w->failed = 1;
        }
        statewalk_mix(w, (uint64_t)h);
    }
    else
        w->failed = 1;
}

int
st__statewalk_ready(PyTypeObject *t)
{
    if (nopaque_found < NOPAQUE && py_class_dealloc != NULL) {
        static uint32_t tries;

        /* Modules are imported as the program goes: look again now and
         * then (every 4096 calls). */
        if ((tries++ & 4095u) == 0)
            statewalk_opaque_find();
    }
    if (py_class_dealloc != NULL && !statewalk_is_py_class(t) &&
        !statewalk_is_opaque(t))
        return 0;
    if (py_class_dealloc == NULL) {
        /* A class statement's class, to learn its tp_dealloc. */
        PyObject *probe = PyObject_CallFunction((PyObject *)&PyType_Type,
                                                "s()N", "_st_probe",
                                                PyDict_New());

        if (probe == NULL) {
            PyErr_Clear();
            return 0;
        }
        py_class_dealloc = ((PyTypeObject *)probe)->tp_dealloc;
        Py_DECREF(probe);
    }
    if (seen == NULL) {
        seen_cap = 1;
        while (seen_cap < 2 * (size_t)SP_MAX_NODES + 2)
            seen_cap <<= 1;
        seen = calloc(seen_cap, sizeof(*seen));
        if (seen == NULL)
            return 0;
    }
    if (++seen_gen == 0) {
        memset(seen, 0, seen_cap * sizeof(*seen));
        seen_gen = 1;
    }
    return statewalk_is_py_class(t) || statewalk_is_opaque(t);
}

int
st__statewalk_run(PyObject *v, uint64_t *hash, uint32_t *nodes)
{
    struct walk w;
    int gc_was_on;

    memset(&w, 0, sizeof(w));
    w.h = 0xcbf29ce484222325ull;
    w.stack = walk_stack;
    w.capstack = walk_cap;
    /* Making an attribute dict allocates: no collection (and so no
     * finalizer, which could free what the stack points to) meanwhile. */
    gc_was_on = PyGC_Disable();
    statewalk_push(&w, v);
    while (w.nstack > 0 && !w.failed)
        statewalk_node(&w, w.stack[--w.nstack]);
    if (gc_was_on)
        PyGC_Enable();
    walk_stack = w.stack;
    walk_cap = w.capstack;
    if (w.failed)
        return -1;
    *hash = w.h;
    *nodes = w.nodes;
    return 0;
}
