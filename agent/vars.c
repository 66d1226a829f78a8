/*
 * Variable snapshots and diffs.  A snapshot holds, per shown variable, its
 * rendered value (escaped and cut at repr_limit) and, for values of exact
 * immutable builtin types, a reference to the value itself: the same object
 * again cannot have changed, so it is not rendered again.  Mutable values
 * are never referenced between steps (object lifetimes stay as untraced);
 * they are rendered each step and compared as text.
 */
#include "agent.h"

#include <stdlib.h>
#include <string.h>

/* Exact builtin types whose value cannot change while the object lives. */
static int
vars_is_immutable(PyObject *v)
{
    return PyLong_CheckExact(v) || PyUnicode_CheckExact(v) ||
           PyFloat_CheckExact(v) || PyBool_Check(v) || v == Py_None ||
           PyBytes_CheckExact(v) || PyComplex_CheckExact(v);
}

/*
 * Is str(v) fixed by v's identity and type?  A Python function's str is
 * "<function qualname at 0xADDR>", and an object whose type overrides
 * neither __str__ nor __repr__ shows "<module.T object at 0xADDR>": the
 * same object (same address, same type) again renders the same text, so
 * it is not rendered again.  Nothing is referenced: a new object at the
 * same address with the same type renders the same text anyway.
 */
static int
vars_str_is_identity(PyObject *v)
{
    PyTypeObject *t = Py_TYPE(v);

    if (PyFunction_Check(v))
        return 1;
    return t->tp_str == PyBaseObject_Type.tp_str &&
           t->tp_repr == PyBaseObject_Type.tp_repr;
}

/* Containers longer than this are rendered every step (no fingerprint). */
#define FP_MAX_ITEMS 4096

static uint64_t
fp_mix(uint64_t h, const void *p)
{
    h ^= (uint64_t)(uintptr_t)p;
    h *= 0x100000001b3ull;
    return h ^ (h >> 29);
}

/*
 * A fingerprint of an exact list, tuple or dict whose items (keys and
 * values) are all of exact immutable builtin types: the identities of the
 * items in order.  Equal fingerprints mean the same items, so the same
 * str() (an immutable item renders the same while it lives, and the
 * container keeps it alive).  @return 1 and *out, or 0 when v has no
 * fingerprint (another type, a mutable item, too long).
 */
static int
vars_fingerprint(PyObject *v, uint64_t *out)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(uintptr_t)Py_TYPE(v);
    Py_ssize_t i, n;

    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        PyObject **items = PySequence_Fast_ITEMS(v);

        n = PySequence_Fast_GET_SIZE(v);
        if (n > FP_MAX_ITEMS)
            return 0;
        for (i = 0; i < n; i++) {
            if (!vars_is_immutable(items[i]))
                return 0;
            h = fp_mix(h, items[i]);
        }
    }
    else if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *k, *val;

        if (PyDict_GET_SIZE(v) > FP_MAX_ITEMS)
            return 0;
        while (PyDict_Next(v, &pos, &k, &val)) {
            if (!vars_is_immutable(k) || !vars_is_immutable(val))
                return 0;
            h = fp_mix(fp_mix(h, k), val);
        }
    }
    else {
        return 0;
    }
    *out = fp_mix(h, (const void *)(uintptr_t)PyObject_Length(v));
    return 1;
}

/* Remembers what makes v's rendering cheap to recheck. */
static void
snapent_keep(struct st_snapent *e, PyObject *v)
{
    e->has_fp = vars_fingerprint(v, &e->fp);
    Py_XSETREF(e->imm, vars_is_immutable(v) ? Py_NewRef(v) : NULL);
    e->ident = vars_str_is_identity(v) ? (const void *)v : NULL;
    e->type = Py_TYPE(v);
    e->stable = e->imm != NULL || PyFunction_Check(v);
}

/* Is the entry shown for this very value, unchanged for sure? */
static int
snapent_same(const struct st_snapent *e, PyObject *v)
{
    /* The type is checked again: a class can gain a __repr__ later. */
    return (e->imm != NULL && e->imm == v) ||
           (e->ident != NULL && e->ident == (const void *)v &&
            e->type == Py_TYPE(v) && vars_str_is_identity(v));
}

/* Is this name/value pair hidden from the log (SPEC section 3)? */
static int
vars_is_hidden(PyObject *name, PyObject *v, const struct st_region *r)
{
    Py_ssize_t n;
    const char *s;

    if (!PyUnicode_Check(name))
        return 1;
    s = PyUnicode_AsUTF8AndSize(name, &n);
    if (s == NULL) {
        PyErr_Clear();
        return 1;
    }
    if (n >= 4 && s[0] == '_' && s[1] == '_' && s[n - 1] == '_' &&
        s[n - 2] == '_')
        return 1;
    /* Implicit names the compiler makes (".0" in comprehensions). */
    if (n == 0 || s[0] == '.')
        return 1;
    if (PyModule_Check(v) || PyType_Check(v) || PyCFunction_Check(v))
        return 1;
    /* The hidden types are the tracer's own: never a builtin value. */
    if (r->hidden_types != NULL && !vars_is_immutable(v)) {
        int h = PyObject_IsInstance(v, r->hidden_types);

        if (h < 0) {
            PyErr_Clear();
            return 0;
        }
        if (h)
            return 1;
    }
    return 0;
}

/* type(v).__name__ as a C string, for messages. */
static const char *
vars_type_name(PyObject *v)
{
    struct st_strent *e = st__strtab_type(Py_TYPE(v));

    return e != NULL ? e->text : "?";
}

/* A copy of the n ASCII bytes at p, NUL-terminated, or NULL. */
static char *
vars_dup_ascii(const char *p, size_t n, size_t *len_out)
{
    char *d = malloc(n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    *len_out = n;
    return d;
}

/*
 * str() of an exact int or float without a str object: the same text
 * (decimal digits; float's shortest repr, as float.__repr__ makes it),
 * which needs no escaping.  @return NULL when v is not one of those or
 * its text is longer than repr_limit (the general path then cuts it).
 */
static char *
vars_render_number(PyObject *v, const struct st_region *r, size_t *len_out)
{
    char buf[24], *out = NULL;
    size_t i = sizeof(buf);

    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        unsigned long long u;

        if (overflow != 0 || (x == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return NULL;
        }
        u = x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x;
        do {
            buf[--i] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (x < 0)
            buf[--i] = '-';
        if (sizeof(buf) - i > r->repr_limit)
            return NULL;
        return vars_dup_ascii(buf + i, sizeof(buf) - i, len_out);
    }
    if (PyFloat_CheckExact(v)) {
        char *s = PyOS_double_to_string(PyFloat_AS_DOUBLE(v), 'r', 0,
                                        Py_DTSF_ADD_DOT_0, NULL);
        size_t n;

        if (s == NULL) {
            PyErr_Clear();
            return NULL;
        }
        n = strlen(s);
        if (n <= r->repr_limit)
            out = vars_dup_ascii(s, n, len_out);
        PyMem_Free(s);
        return out;
    }
    return NULL;
}

char *
st__render_value(PyObject *v, const struct st_region *r, size_t *len_out)
{
    struct st_buf b;
    PyObject *s;
    const char *text;
    Py_ssize_t n, nchars;
    char *quick = vars_render_number(v, r, len_out);

    if (quick != NULL)
        return quick;
    s = PyObject_Str(v);
    st_buf_init(&b);
    if (s == NULL) {
        PyObject *exc_s = NULL;
        st_exc_state es;

        ST_EXC_SAVE(es);
#if PY_VERSION_HEX >= 0x030C0000
        exc_s = es.exc ? PyObject_Str(es.exc) : NULL;
#else
        exc_s = es.value ? PyObject_Str(es.value) : NULL;
#endif
        st_buf_puts(&b, "<unprintable ");
        st_buf_puts(&b, vars_type_name(v));
        st_buf_puts(&b, ": ");
        if (exc_s != NULL && (text = PyUnicode_AsUTF8AndSize(exc_s, &n)))
            st_record_escape(&b, text, (size_t)n);
        st_buf_puts(&b, ">");
        Py_XDECREF(exc_s);
        ST_EXC_RESTORE(es);
        PyErr_Clear();
        goto done;
    }
    nchars = PyUnicode_GetLength(s);
    if ((size_t)nchars > r->repr_limit) {
        PyObject *cut = PyUnicode_Substring(s, 0, (Py_ssize_t)r->repr_limit);

        if (cut != NULL && (text = PyUnicode_AsUTF8AndSize(cut, &n))) {
            st_record_escape(&b, text, (size_t)n);
            st_buf_puts(&b, "... (");
            st_buf_put_u64(&b, (uint64_t)nchars);
            st_buf_puts(&b, " chars)");
        }
        Py_XDECREF(cut);
    }
    else {
        text = PyUnicode_AsUTF8AndSize(s, &n);
        if (text != NULL)
            st_record_escape(&b, text, (size_t)n);
    }
    if (PyErr_Occurred()) {
        /* Lone surrogates cannot be UTF-8 encoded: say so. */
        PyErr_Clear();
        b.len = 0;
        st_buf_puts(&b, "<unprintable ");
        st_buf_puts(&b, vars_type_name(v));
        st_buf_puts(&b, ": not encodable as UTF-8>");
    }
    Py_DECREF(s);
done:
    if (b.oom) {
        st_buf_close(&b);
        *len_out = 0;
        return strdup("");
    }
    st_buf_append(&b, "", 1); /* NUL for convenience; not counted. */
    *len_out = b.len - 1;
    return b.data;
}

static void
snapent_clear(struct st_snapent *e)
{
    Py_CLEAR(e->name);
    Py_CLEAR(e->imm);
    free(e->value);
    e->value = NULL;
}

void
st__snapshot_clear(struct st_snapshot *s)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        snapent_clear(&s->ents[i]);
    free(s->ents);
    s->ents = NULL;
    s->n = s->cap = 0;
    s->nunstable = 0;
    s->has_version = 0;
}

void
st__changes_reset(struct st_changes *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        free(c->c[i].old);
    c->n = 0;
}

static struct st_change *
changes_add(struct st_changes *c)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct st_change *p = realloc(c->c, cap * sizeof(*p));

        if (p == NULL)
            return NULL;
        c->c = p;
        c->cap = cap;
    }
    memset(&c->c[c->n], 0, sizeof(c->c[0]));
    return &c->c[c->n++];
}

/* Finds name in the snapshot, trying `hint` first (dict order is stable,
 * so the next entry is usually the one). */
static long
snapshot_find(struct st_snapshot *s, PyObject *name, size_t hint)
{
    size_t i;

    if (hint < s->n && s->ents[hint].name == name)
        return (long)hint;
    for (i = 0; i < s->n; i++)
        if (s->ents[i].name == name)
            return (long)i;
    for (i = 0; i < s->n; i++) {
        int eq = PyUnicode_Compare(s->ents[i].name, name);

        if (eq == 0)
            return (long)i;
        if (eq == -1 && PyErr_Occurred())
            PyErr_Clear();
    }
    return -1;
}

/*
 * The fast path of a step: is `name` shown already for this very value
 * (same immutable object, or same identity-rendered object)?  Pointer
 * compares only, so a hidden name (never in the snapshot) costs a scan of
 * pointers, not of strings.  Marks the entry seen.
 */
static int
snapshot_quick(struct st_snapshot *s, PyObject *name, PyObject *v,
               size_t *hint)
{
    size_t i = *hint < s->n && s->ents[*hint].name == name ? *hint : 0;

    for (; i < s->n; i++) {
        struct st_snapent *e = &s->ents[i];

        if (e->name != name)
            continue;
        if (!snapent_same(e, v))
            return 0;
        e->seen = 1;
        *hint = i + 1;
        return 1;
    }
    return 0;
}

/* Updates one variable; appends a change when it is new or changed. */
static int
snapshot_visit(struct st_snapshot *s, PyObject *name, PyObject *v,
               const struct st_region *r, struct st_changes *out,
               size_t *hint)
{
    long i = snapshot_find(s, name, *hint);
    struct st_snapent *e = NULL;
    struct st_change *c;
    struct st_strent *type_s;
    char *value;
    size_t len;

    if (i >= 0) {
        e = &s->ents[i];
        e->seen = 1;
        *hint = (size_t)i + 1;
        if (snapent_same(e, v))
            return 0;
    }
    if (i >= 0 && e->has_fp && e->type == Py_TYPE(v)) {
        uint64_t fp;

        /* A container holding the same immutable items: same text. */
        if (vars_fingerprint(v, &fp) && fp == e->fp)
            return 0;
    }
    type_s = st__strtab_type(Py_TYPE(v));
    if (type_s == NULL)
        return -1;
    value = st__render_value(v, r, &len);
    if (value == NULL)
        return -1;
    if (i >= 0) {
        if (e->type_s == type_s && e->value_len == len &&
            memcmp(e->value, value, len) == 0) {
            free(value);
            snapent_keep(e, v);
            return 0;
        }
        c = changes_add(out);
        if (c == NULL) {
            free(value);
            return -1;
        }
        c->kind = ST_VAR_CHANGED;
        c->old = e->value;
        c->old_len = e->value_len;
    }
    else {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            struct st_snapent *p = realloc(s->ents, cap * sizeof(*p));

            if (p == NULL) {
                free(value);
                return -1;
            }
            s->ents = p;
            s->cap = cap;
        }
        c = changes_add(out);
        if (c == NULL) {
            free(value);
            return -1;
        }
        i = (long)s->n++;
        e = &s->ents[i];
        memset(e, 0, sizeof(*e));
        e->name = Py_NewRef(name);
        e->name_s = st__strtab_str(name);
        e->seen = 1;
        c->kind = ST_VAR_NEW;
        *hint = (size_t)i + 1;
    }
    e->type_s = type_s;
    e->value = value;
    e->value_len = len;
    snapent_keep(e, v);
    c->ent = e;
    c->name_s = e->name_s;
    return 0;
}

/* Removes entries not seen this step, recording [DELETED] changes. */
static void
snapshot_sweep(struct st_snapshot *s, struct st_changes *out)
{
    size_t i, j = 0;

    for (i = 0; i < s->n; i++) {
        struct st_snapent *e = &s->ents[i];

        if (!e->seen) {
            struct st_change *c = changes_add(out);

            if (c != NULL) {
                c->kind = ST_VAR_DELETED;
                c->name_s = e->name_s;
            }
            snapent_clear(e);
            continue;
        }
        e->seen = 0;
        if (i != j)
            s->ents[j] = *e;
        j++;
    }
    s->n = j;
    /* Entries moved: fix the borrowed pointers the changes hold. */
    for (i = 0; i < out->n; i++) {
        struct st_change *c = &out->c[i];

        if (c->ent == NULL)
            continue;
        for (j = 0; j < s->n; j++)
            if (s->ents[j].name_s == c->name_s) {
                c->ent = &s->ents[j];
                break;
            }
    }
}

int
st__snapshot_update(struct st_snapshot *s, PyObject *vars,
                    const struct st_region *r, struct st_changes *out)
{
    size_t hint = 0, i;
    PyObject *items = NULL;
    Py_ssize_t pos = 0, k, n;
    PyObject *name, *v;

    if (PyDict_CheckExact(vars)) {
        uint64_t version = st_dict_version(vars);

        /* The same items as last time, each showing what it showed:
         * nothing to look at (a module's globals, most steps). */
        if (s->has_version && s->version == version && s->nunstable == 0)
            return 0;
        s->version = version;
        s->has_version = 1;
    }
    else {
        s->has_version = 0;
    }
    if (PyDict_Check(vars)) {
        while (PyDict_Next(vars, &pos, &name, &v)) {
            if (snapshot_quick(s, name, v, &hint) ||
                vars_is_hidden(name, v, r))
                continue;
            /* str() may run user code that mutates the dict: hold refs. */
            Py_INCREF(name);
            Py_INCREF(v);
            snapshot_visit(s, name, v, r, out, &hint);
            Py_DECREF(v);
            Py_DECREF(name);
        }
    }
    else {
        /* 3.13 frame-locals proxy: read a list of (name, value) pairs. */
        items = PyMapping_Items(vars);
        if (items == NULL) {
            PyErr_Clear();
            return -1;
        }
        n = PyList_GET_SIZE(items);
        for (k = 0; k < n; k++) {
            PyObject *pair = PyList_GET_ITEM(items, k);

            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2)
                continue;
            name = PyTuple_GET_ITEM(pair, 0);
            v = PyTuple_GET_ITEM(pair, 1);
            if (snapshot_quick(s, name, v, &hint) ||
                vars_is_hidden(name, v, r))
                continue;
            snapshot_visit(s, name, v, r, out, &hint);
        }
        Py_DECREF(items);
    }
    snapshot_sweep(s, out);
    s->nunstable = 0;
    for (i = 0; i < s->n; i++)
        s->nunstable += !s->ents[i].stable;
    return 0;
}

int
st__snapshot_update_slots(struct st_snapshot *s, PyObject *names,
                          PyObject *const *values, Py_ssize_t n,
                          const struct st_region *r, struct st_changes *out)
{
    size_t hint = 0, i;
    Py_ssize_t k;

    s->has_version = 0;
    for (k = 0; k < n; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k), *v = values[k];

        if (v == NULL || snapshot_quick(s, name, v, &hint) ||
            vars_is_hidden(name, v, r))
            continue;
        /* str() may run code that rebinds the frame's variables. */
        Py_INCREF(v);
        snapshot_visit(s, name, v, r, out, &hint);
        Py_DECREF(v);
    }
    snapshot_sweep(s, out);
    s->nunstable = 0;
    for (i = 0; i < s->n; i++)
        s->nunstable += !s->ents[i].stable;
    return 0;
}

char *
st__render_exception(PyObject *exc, const struct st_region *r,
                     size_t *len_out)
{
    const char *type = vars_type_name(exc);
    size_t tlen = strlen(type), mlen = 0;
    char *msg = st__render_value(exc, r, &mlen);
    char *out;

    out = malloc(tlen + 2 + mlen + 1);
    if (out == NULL) {
        free(msg);
        *len_out = 0;
        return NULL;
    }
    memcpy(out, type, tlen);
    *len_out = tlen;
    if (msg != NULL && mlen > 0) {
        memcpy(out + tlen, ": ", 2);
        memcpy(out + tlen + 2, msg, mlen);
        *len_out += 2 + mlen;
    }
    out[*len_out] = '\0';
    free(msg);
    return out;
}
