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

/*
 * Fingerprints.  The text of an exact list, tuple or dict, nested up to
 * FP_MAX_DEPTH, whose leaves are all of exact immutable builtin types is
 * fixed by its shape (each container's type and length, in order) and the
 * identities of its leaves.  A fingerprint is that sequence; the entry
 * holds references to the leaves (immutable builtins only, as for `imm`),
 * so an address in it cannot be reused by another object while it is
 * kept: an equal sequence means the same leaves, the same text, and no
 * str() call.  Larger or deeper values are rendered every step.
 */
#define FP_MAX_TOKENS 4096
#define FP_MAX_DEPTH 4

struct fp_scratch {
    uintptr_t tok[FP_MAX_TOKENS];
    PyObject *leaf[FP_MAX_TOKENS]; /* Borrowed. */
    size_t ntok, nleaf;
};

/* Built with the GIL held and no Python code run meanwhile. */
static struct fp_scratch fp_cur;

static int
fp_push(struct fp_scratch *f, uintptr_t t)
{
    if (f->ntok == FP_MAX_TOKENS)
        return 0;
    f->tok[f->ntok++] = t;
    return 1;
}

static int
fp_walk(struct fp_scratch *f, PyObject *v, int depth)
{
    Py_ssize_t i, n;

    if (vars_is_immutable(v)) {
        f->leaf[f->nleaf++] = v;
        return fp_push(f, (uintptr_t)v);
    }
    if (depth == FP_MAX_DEPTH)
        return 0;
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        PyObject **items = PySequence_Fast_ITEMS(v);

        n = PySequence_Fast_GET_SIZE(v);
        if (!fp_push(f, (uintptr_t)Py_TYPE(v)) || !fp_push(f, (uintptr_t)n))
            return 0;
        for (i = 0; i < n; i++)
            if (!fp_walk(f, items[i], depth + 1))
                return 0;
        return 1;
    }
    if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *k, *val;

        if (!fp_push(f, (uintptr_t)Py_TYPE(v)) ||
            !fp_push(f, (uintptr_t)PyDict_GET_SIZE(v)))
            return 0;
        while (PyDict_Next(v, &pos, &k, &val))
            if (!fp_walk(f, k, depth + 1) || !fp_walk(f, val, depth + 1))
                return 0;
        return 1;
    }
    return 0;
}

/* What fp_cur was built for (the compare and the keep of one visit share
 * it); reset wherever the program's code may run in between. */
static PyObject *fp_for;
static int fp_for_ok;

/* Did the last st__render_value() compose its text (no code run)? */
static int render_composed;

/* Builds v's fingerprint into fp_cur.  @return 1, or 0 when v has none
 * (not a container, a mutable leaf, too large or deep). */
static int
vars_fingerprint(PyObject *v)
{
    if (fp_for == v)
        return fp_for_ok;
    fp_cur.ntok = fp_cur.nleaf = 0;
    fp_for = v;
    fp_for_ok = !vars_is_immutable(v) && fp_walk(&fp_cur, v, 0);
    return fp_for_ok;
}

static void
fp_clear(struct st_snapent *e)
{
    size_t i;

    for (i = 0; i < e->fp_nleaves; i++)
        Py_DECREF(e->fp_leaves[i]);
    free(e->fp_leaves);
    free(e->fp);
    e->fp_leaves = NULL;
    e->fp = NULL;
    e->fp_n = e->fp_nleaves = 0;
}

/* Does fp_cur (just built) equal e's fingerprint? */
static int
fp_same(const struct st_snapent *e)
{
    return e->fp != NULL && e->fp_n == fp_cur.ntok &&
           memcmp(e->fp, fp_cur.tok, fp_cur.ntok * sizeof(uintptr_t)) == 0;
}

/* Keeps fp_cur as e's fingerprint (or none when it cannot be kept). */
static void
fp_keep(struct st_snapent *e)
{
    size_t i;

    fp_clear(e);
    e->fp = malloc(fp_cur.ntok * sizeof(uintptr_t));
    e->fp_leaves = malloc((fp_cur.nleaf ? fp_cur.nleaf : 1) *
                          sizeof(PyObject *));
    if (e->fp == NULL || e->fp_leaves == NULL) {
        free(e->fp);
        free(e->fp_leaves);
        e->fp = NULL;
        e->fp_leaves = NULL;
        return;
    }
    memcpy(e->fp, fp_cur.tok, fp_cur.ntok * sizeof(uintptr_t));
    e->fp_n = fp_cur.ntok;
    for (i = 0; i < fp_cur.nleaf; i++)
        e->fp_leaves[i] = Py_NewRef(fp_cur.leaf[i]);
    e->fp_nleaves = fp_cur.nleaf;
}

/* Remembers what makes v's rendering cheap to recheck.  A fingerprint is
 * kept only for a text that was composed (no code of the program ran
 * between the text and the fingerprint: str() could have changed the
 * container meanwhile, and the text would then not be the fingerprint's). */
static void
snapent_keep(struct st_snapent *e, PyObject *v)
{
    if (render_composed && vars_fingerprint(v))
        fp_keep(e);
    else
        fp_clear(e);
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

/* Is a variable of this name hidden from the log, whatever its value
 * (SPEC section 3: dunders, the compiler's implicit names)? */
static int
vars_hidden_name(PyObject *name)
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
    return n == 0 || s[0] == '.';
}

/* Is a variable holding this value hidden (modules, classes, builtins,
 * the tracer's own objects)? */
static int
vars_hidden_value(PyObject *v, const struct st_region *r)
{
    if (vars_is_immutable(v))
        return 0;
    if (PyModule_Check(v) || PyType_Check(v) || PyCFunction_Check(v))
        return 1;
    /* The hidden types are the tracer's own plain classes (no
     * __instancecheck__): a subtype test, without isinstance()'s
     * attribute lookups. */
    if (r->hidden_types != NULL && PyTuple_Check(r->hidden_types)) {
        Py_ssize_t i;

        for (i = 0; i < PyTuple_GET_SIZE(r->hidden_types); i++) {
            PyObject *t = PyTuple_GET_ITEM(r->hidden_types, i);

            if (PyType_Check(t) &&
                PyType_IsSubtype(Py_TYPE(v), (PyTypeObject *)t))
                return 1;
        }
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
 * its text is longer than repr_limit (the general path then cuts it; no
 * limit when r is NULL).
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
        if (r != NULL && sizeof(buf) - i > r->repr_limit)
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
        if (r == NULL || n <= r->repr_limit)
            out = vars_dup_ascii(s, n, len_out);
        PyMem_Free(s);
        return out;
    }
    return NULL;
}

/*
 * Composed rendering of containers.  str() of an exact list, tuple or dict
 * of immutable values is its items' repr() joined the way list_repr,
 * tuple_repr and dict_repr join them; a container that changed usually
 * changed in one item, so the items' repr() texts are kept (keyed by
 * identity, with a reference: immutable builtins only) and the text is
 * put together without calling repr() again for the others.
 */
#define RC_SLOTS 4096        /* Power of two. */
#define RC_MAX_TEXT 256      /* Longer item texts are not kept. */

struct rc_ent {
    PyObject *obj;           /* Owned, or NULL. */
    char *text;              /* Owned. */
    size_t len;
};

static struct rc_ent *rc_tab;
static size_t rc_used;

static void
rc_clear(void)
{
    size_t i;

    for (i = 0; i < RC_SLOTS && rc_tab != NULL; i++) {
        Py_CLEAR(rc_tab[i].obj);
        free(rc_tab[i].text);
        rc_tab[i].text = NULL;
    }
    rc_used = 0;
}

/* repr() text of immutable leaf v into b.  @return 0, or -1 when it
 * cannot be made here (the caller falls back to str()). */
static int
rc_put_leaf(struct st_buf *b, PyObject *v)
{
    size_t h = ((uintptr_t)v >> 4) & (RC_SLOTS - 1), i;
    PyObject *s;
    const char *p;
    Py_ssize_t n;
    char num[24];
    size_t nlen;

    if (v == Py_None)
        return st_buf_append(b, "None", 4);
    if (v == Py_True)
        return st_buf_append(b, "True", 4);
    if (v == Py_False)
        return st_buf_append(b, "False", 5);
    if (rc_tab == NULL && (rc_tab = calloc(RC_SLOTS, sizeof(*rc_tab))) == NULL)
        return -1;
    for (i = h; rc_tab[i].obj != NULL; i = (i + 1) & (RC_SLOTS - 1))
        if (rc_tab[i].obj == v)
            return st_buf_append(b, rc_tab[i].text, rc_tab[i].len);
    if (PyLong_CheckExact(v) || PyFloat_CheckExact(v)) {
        /* The same text as repr() (see vars_render_number). */
        char *t = vars_render_number(v, NULL, &nlen);

        if (t == NULL)
            return -1;
        if (nlen < sizeof(num)) {
            memcpy(num, t, nlen);
            p = num;
            n = (Py_ssize_t)nlen;
            free(t);
            s = NULL;
            goto keep;
        }
        free(t);
        return -1;
    }
    s = PyObject_Repr(v);
    if (s == NULL || (p = PyUnicode_AsUTF8AndSize(s, &n)) == NULL) {
        Py_XDECREF(s);
        PyErr_Clear();
        return -1;
    }
keep:
    if (st_buf_append(b, p, (size_t)n) != 0) {
        Py_XDECREF(s);
        return -1;
    }
    if ((size_t)n <= RC_MAX_TEXT) {
        if (rc_used * 2 >= RC_SLOTS) {
            rc_clear();
            i = h;
        }
        rc_tab[i].text = malloc((size_t)n + 1);
        if (rc_tab[i].text != NULL) {
            memcpy(rc_tab[i].text, p, (size_t)n);
            rc_tab[i].len = (size_t)n;
            rc_tab[i].obj = Py_NewRef(v);
            rc_used++;
        }
    }
    Py_XDECREF(s);
    return 0;
}

static int
rc_put(struct st_buf *b, PyObject *v, int depth)
{
    Py_ssize_t i, n;

    if (vars_is_immutable(v))
        return rc_put_leaf(b, v);
    if (depth == FP_MAX_DEPTH)
        return -1;
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        int tuple = PyTuple_CheckExact(v);
        PyObject **items = PySequence_Fast_ITEMS(v);

        n = PySequence_Fast_GET_SIZE(v);
        st_buf_append(b, tuple ? "(" : "[", 1);
        for (i = 0; i < n; i++) {
            if (i > 0)
                st_buf_append(b, ", ", 2);
            if (rc_put(b, items[i], depth + 1) != 0)
                return -1;
        }
        if (tuple && n == 1)
            st_buf_append(b, ",", 1);
        return st_buf_append(b, tuple ? ")" : "]", 1);
    }
    if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *k, *val;
        int first = 1;

        st_buf_append(b, "{", 1);
        while (PyDict_Next(v, &pos, &k, &val)) {
            if (!first)
                st_buf_append(b, ", ", 2);
            first = 0;
            if (rc_put(b, k, depth + 1) != 0)
                return -1;
            st_buf_append(b, ": ", 2);
            if (rc_put(b, val, depth + 1) != 0)
                return -1;
        }
        return st_buf_append(b, "}", 1);
    }
    return -1;
}

/* str(v) of a container with a fingerprint, composed; NULL when it is not
 * one or the text would need cutting (the general path does that). */
static char *
vars_render_composed(PyObject *v, const struct st_region *r,
                     size_t *len_out)
{
    struct st_buf b, esc;

    /* rc_put() takes only what a fingerprint would (and says so). */
    if (!PyList_CheckExact(v) && !PyTuple_CheckExact(v) &&
        !PyDict_CheckExact(v))
        return NULL;
    st_buf_init(&b);
    /* Item texts are repr()s: no user code runs, the container cannot
     * change meanwhile. */
    if (rc_put(&b, v, 0) != 0 || b.oom || b.len > r->repr_limit) {
        /* (More bytes than the limit may still be fewer characters: the
         * general path decides.) */
        st_buf_close(&b);
        return NULL;
    }
    st_buf_init(&esc);
    st_record_escape(&esc, b.data, b.len);
    st_buf_close(&b);
    st_buf_append(&esc, "", 1);
    if (esc.oom) {
        st_buf_close(&esc);
        return NULL;
    }
    *len_out = esc.len - 1;
    return esc.data;
}

char *
st__render_value(PyObject *v, const struct st_region *r, size_t *len_out)
{
    struct st_buf b;
    PyObject *s;
    const char *text;
    Py_ssize_t n, nchars;
    char *quick = vars_render_number(v, r, len_out);

    render_composed = 0;
    if (quick != NULL)
        return quick;
    quick = vars_render_composed(v, r, len_out);
    if (quick != NULL) {
        render_composed = 1;
        return quick;
    }
    /* str() runs the program's code (and lets other threads in): no
     * fingerprint made before it is good after it. */
    fp_for = NULL;
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
    fp_for = NULL;
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
    fp_clear(e);
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
    struct st_change *p = st_grow(c->c, &c->cap, c->n + 1, sizeof(*p), 16);

    if (p == NULL)
        return NULL;
    c->c = p;
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
 * pointers, not of strings.  Marks the entry seen.  @return 1 when so,
 * -1 when the name is shown with another value, 0 when it is not shown.
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
            return -1;
        e->seen = 1;
        *hint = i + 1;
        return 1;
    }
    return 0;
}

static int snapshot_visit(struct st_snapshot *s, PyObject *name,
                          PyObject *v, const struct st_region *r,
                          struct st_changes *out, size_t *hint);

/*
 * One variable of a step: shown already for this very value (quick), or
 * hidden, or visited.  A name in the snapshot was not hidden by its name:
 * only its value's kind is checked again.  The caller holds references
 * to name and v.
 */
static void
snapshot_step_var(struct st_snapshot *s, PyObject *name, PyObject *v,
                  const struct st_region *r, struct st_changes *out,
                  size_t *hint)
{
    int q = snapshot_quick(s, name, v, hint);

    if (q == 1)
        return;
    if ((q == 0 && vars_hidden_name(name)) || vars_hidden_value(v, r))
        return;
    snapshot_visit(s, name, v, r, out, hint);
}

/* Updates one variable; appends a change when it is new or changed. */
static int
snapshot_visit(struct st_snapshot *s, PyObject *name, PyObject *v,
               const struct st_region *r, struct st_changes *out,
               size_t *hint)
{
    long i;
    struct st_snapent *e = NULL;
    struct st_change *c;
    struct st_strent *type_s;
    char *value;
    size_t len;

    /* A fingerprint of an earlier visit may be of a freed object. */
    fp_for = NULL;
    i = snapshot_find(s, name, *hint);

    if (i >= 0) {
        e = &s->ents[i];
        e->seen = 1;
        *hint = (size_t)i + 1;
        if (snapent_same(e, v))
            return 0;
    }
    /* A container of the same shape holding the same immutable values:
     * the same text. */
    if (i >= 0 && e->fp != NULL && e->type == Py_TYPE(v) &&
        vars_fingerprint(v) && fp_same(e))
        return 0;
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
        struct st_snapent *p = st_grow(s->ents, &s->cap, s->n + 1,
                                       sizeof(*p), 8);

        if (p == NULL) {
            free(value);
            return -1;
        }
        s->ents = p;
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

/* The end of an update: deleted variables, and what may change. */
static void
snapshot_finish(struct st_snapshot *s, struct st_changes *out)
{
    size_t i;

    snapshot_sweep(s, out);
    s->nunstable = 0;
    for (i = 0; i < s->n; i++)
        s->nunstable += !s->ents[i].stable;
}

/*
 * The dict holds the same items as when s was last updated: only entries
 * whose text can change without the dict changing (containers, objects)
 * are looked at again.  @return 0, or -1 when the dict must be walked
 * (nothing changed in s then).
 */
static int
snapshot_recheck(struct st_snapshot *s, PyObject *vars,
                 const struct st_region *r, struct st_changes *out)
{
    size_t i, hint;

    for (i = 0; i < s->n; i++) {
        if (s->ents[i].stable)
            continue;
        if (PyDict_GetItemWithError(vars, s->ents[i].name) == NULL) {
            PyErr_Clear();
            return -1;
        }
    }
    for (i = 0; i < s->n; i++) {
        PyObject *name, *v;

        if (s->ents[i].stable)
            continue;
        name = Py_NewRef(s->ents[i].name);
        v = PyDict_GetItemWithError(vars, name);
        if (v != NULL) {
            hint = i;
            Py_INCREF(v);
            snapshot_visit(s, name, v, r, out, &hint);
            Py_DECREF(v);
        }
        PyErr_Clear();
        Py_DECREF(name);
    }
    s->nunstable = 0;
    for (i = 0; i < s->n; i++) {
        s->ents[i].seen = 0;
        s->nunstable += !s->ents[i].stable;
    }
    return 0;
}

int
st__snapshot_update(struct st_snapshot *s, PyObject *vars,
                    const struct st_region *r, struct st_changes *out)
{
    size_t hint = 0;
    PyObject *items = NULL;
    Py_ssize_t pos = 0, k, n;
    PyObject *name, *v;

    if (PyDict_CheckExact(vars)) {
        uint64_t version = st_dict_version(vars);

        /* The same items as last time, each showing what it showed:
         * nothing to look at (a module's globals, most steps). */
        if (s->has_version && s->version == version &&
            (s->nunstable == 0 || snapshot_recheck(s, vars, r, out) == 0))
            return 0;
        s->version = version;
        s->has_version = 1;
    }
    else {
        s->has_version = 0;
    }
    if (PyDict_Check(vars)) {
        while (PyDict_Next(vars, &pos, &name, &v)) {
            /* str() may run user code that mutates the dict: hold refs. */
            Py_INCREF(name);
            Py_INCREF(v);
            snapshot_step_var(s, name, v, r, out, &hint);
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
            snapshot_step_var(s, name, v, r, out, &hint);
        }
        Py_DECREF(items);
    }
    snapshot_finish(s, out);
    return 0;
}

int
st__snapshot_update_slots(struct st_snapshot *s, PyObject *names,
                          PyObject *const *values, Py_ssize_t n,
                          const struct st_region *r, struct st_changes *out)
{
    size_t hint = 0;
    Py_ssize_t k;

    s->has_version = 0;
    for (k = 0; k < n; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k), *v = values[k];

        if (v == NULL)
            continue;
        /* str() may run code that rebinds the frame's variables. */
        Py_INCREF(v);
        snapshot_step_var(s, name, v, r, out, &hint);
        Py_DECREF(v);
    }
    snapshot_finish(s, out);
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
