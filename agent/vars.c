/*
 * Variable snapshots and diffs.  A snapshot holds, per shown variable, its
 * rendered value (escaped and cut at repr_limit) and what shows cheaply
 * that it is unchanged: for values of exact immutable builtin types, a
 * reference to the value itself (the same object again cannot have
 * changed); for containers, the fingerprint of the items their text was
 * composed from (compose.c); for arrays, one of their bytes (vfp.h).  Mutable
 * values are never referenced between steps (object lifetimes stay as
 * untraced); others are rendered each step and compared as text.
 */
#include "compat.h"

#include "steptrace/record.h"

#include "agent.h"
#include "clock.h"
#include "render.h"
#include "vars.h"

#include <stdlib.h>
#include <string.h>

/* Is str(v) fixed by v's identity: a function, a default repr, a
 * generator or coroutine, or a str subclass whose str() is its
 * (immutable) text? */
static int
vars_text_by_identity(PyObject *v)
{
    return st__vfp_identity(v) || PyGen_CheckExact(v) ||
           PyCoro_CheckExact(v) || PyAsyncGen_CheckExact(v) ||
           (PyUnicode_Check(v) && Py_TYPE(v)->tp_str == PyUnicode_Type.tp_str);
}

/* Remembers what makes v's rendering cheap to recheck: the identity of an
 * immutable value or of one whose text is fixed by it, the fingerprint of
 * a composed container (made with no code of the program running between
 * the text and the fingerprint), the bytes of an array. */
static void
vars_snapent_keep(struct st_snapent *e, PyObject *v,
                  const struct st_stateprint *sp)
{
    st__vfp_clear(&e->fp);
    st__render_take_fp(&e->fp);
    e->has_bp = e->fp.ntok == 0 && st__vfp_buffer(v, &e->bp);
    Py_XSETREF(e->imm, st__vfp_immutable(v) ? Py_NewRef(v) : NULL);
    e->ident = vars_text_by_identity(v) ? (const void *)v : NULL;
    e->type = Py_TYPE(v);
    e->stable = e->imm != NULL || PyFunction_Check(v);
    /* An object whose str() is the program's code: its state, so that
     * str() runs again only when that changed. */
    e->has_sp = sp != NULL;
    if (sp != NULL)
        e->sp = *sp;
}

/* Is the entry shown for this very value, unchanged for sure? */
static int
vars_snapent_same(const struct st_snapent *e, PyObject *v)
{
    /* The type is checked again: a class can gain a __repr__ later. */
    return (e->imm != NULL && e->imm == v) ||
           (e->ident != NULL && e->ident == (const void *)v &&
            e->type == Py_TYPE(v) && vars_text_by_identity(v));
}

/* Does v show what the entry shows, though it may not be the same object
 * (a container walked over its shown items, an array's bytes)? */
static int
vars_snapent_same_shape(const struct st_snapent *e, PyObject *v)
{
    struct st_bufprint bp;

    if (e->type != Py_TYPE(v))
        return 0;
    if (e->fp.ntok > 0)
        return st__vfp_same(v, &e->fp);
    return e->has_bp && st__vfp_buffer(v, &bp) && bp.len == e->bp.len &&
           bp.hash == e->bp.hash;
}

/* Is a variable of this name hidden from the log, whatever its value
 * (docs/LOG-FORMAT.md section 5.4: dunders, the compiler's implicit names)? */
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
vars_hidden_value(PyObject *v, const struct st_trace_region *r)
{
    if (st__vfp_immutable(v))
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

static void
vars_snapent_clear(struct st_snapent *e)
{
    Py_CLEAR(e->name);
    Py_CLEAR(e->imm);
    st__vfp_clear(&e->fp);
    free(e->value);
    e->value = NULL;
}

void
st__vars_clear(struct st_snapshot *s)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        vars_snapent_clear(&s->ents[i]);
    free(s->ents);
    s->ents = NULL;
    s->n = s->cap = 0;
    s->nunstable = 0;
    s->has_version = 0;
}

void
st__vars_changes_reset(struct st_changes *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        free(c->c[i].old);
    c->n = 0;
}

static struct st_change *
vars_changes_add(struct st_changes *c)
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
vars_find(struct st_snapshot *s, PyObject *name, size_t hint)
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
vars_quick(struct st_snapshot *s, PyObject *name, PyObject *v, size_t *hint)
{
    size_t i = *hint < s->n && s->ents[*hint].name == name ? *hint : 0;

    for (; i < s->n; i++) {
        struct st_snapent *e = &s->ents[i];

        if (e->name != name)
            continue;
        if (!vars_snapent_same(e, v))
            return -1;
        e->seen = 1;
        *hint = i + 1;
        return 1;
    }
    return 0;
}

static int vars_visit(struct st_snapshot *s, PyObject *name, PyObject *v,
                      const struct st_trace_region *r, struct st_changes *out,
                      size_t *hint);

/*
 * One variable of a step: shown already for this very value (quick), or
 * hidden, or visited.  A name in the snapshot was not hidden by its name:
 * only its value's kind is checked again.  The caller holds references
 * to name and v.
 */
static void
vars_step_var(struct st_snapshot *s, PyObject *name, PyObject *v,
              const struct st_trace_region *r, struct st_changes *out,
              size_t *hint)
{
    int q = vars_quick(s, name, v, hint);

    if (q == 1)
        return;
    if ((q == 0 && vars_hidden_name(name)) || vars_hidden_value(v, r))
        return;
    vars_visit(s, name, v, r, out, hint);
}

/* Is v's text made by the program's own __str__ (so worth a print)? */
static int
vars_text_is_programs(PyObject *v)
{
    return !st__vfp_immutable(v) && !vars_text_by_identity(v);
}

#define SP_MISS_MAX 8

/*
 * Is e (the entry shown for this name, or NULL) still showing v's text,
 * known without str(): an object of the program's class whose state is
 * as it was (the print covers its identity and type), a container whose
 * shown items are the same immutable values, an array with the same
 * bytes?  *sp receives v's state print when it is worth taking one
 * (*has_sp).  @return 1 when unchanged.
 */
static int
vars_unchanged(struct st_snapent *e, PyObject *v, struct st_stateprint *sp,
               int *has_sp)
{
    /* An object that changes at every step (the one a loop builds) gains
     * nothing from a walk before its str(): after SP_MISS_MAX changes in
     * a row it is walked again from every 16th step on. */
    if (e != NULL && e->sp_miss >= SP_MISS_MAX && ++e->sp_tick % 16 == 0)
        e->sp_miss = SP_MISS_MAX - 1;
    *has_sp = vars_text_is_programs(v) &&
              (e == NULL || e->sp_miss < SP_MISS_MAX) &&
              st__stateprint_take(v, sp);
    if (e == NULL)
        return 0;
    if (e->type == Py_TYPE(v) && *has_sp && e->has_sp &&
        e->sp.hash == sp->hash && e->sp.nodes == sp->nodes) {
        st__stateprint_outcome(Py_TYPE(v), 1);
        e->sp_miss = 0;
        return 1;
    }
    if (*has_sp && e->has_sp)
        e->sp_miss += e->sp_miss < SP_MISS_MAX;
    else if (e->type == Py_TYPE(v) && !*has_sp &&
             vars_snapent_same_shape(e, v))
        return 1;
    return 0;
}

/* v's text (a new malloc'ed string; *len excludes the NUL): the one kept
 * for its state print sp (with has_sp), else rendered.  @return NULL when
 * out of memory. */
static char *
vars_text(PyObject *v, const struct st_trace_region *r,
          const struct st_stateprint *sp, int has_sp, size_t *len)
{
    char *value = has_sp ? st__render_cached(sp, r->repr_limit, len) : NULL;
    uint64_t t0;

    if (has_sp)
        st__stateprint_outcome(Py_TYPE(v), value != NULL);
    if (value != NULL)
        return value;
    t0 = st__clock_ticks();
    value = st__render_value(v, r->repr_limit, len);
    if (value == NULL)
        return NULL;
    if (vars_text_is_programs(v))
        st__stateprint_str_cost(Py_TYPE(v), st__clock_ticks() - t0);
    /* Kept by the state before str(): one that fills a cache of its own
     * is called once more, at the next step, then no more. */
    if (has_sp)
        st__render_keep(sp, r->repr_limit, value, *len);
    return value;
}

/* A new entry for `name` at the end of s, and its NEW change in out
 * (*cp).  @return the entry, or NULL (out of memory). */
static struct st_snapent *
vars_add(struct st_snapshot *s, PyObject *name, struct st_changes *out,
         struct st_change **cp)
{
    struct st_snapent *e,
        *p = st_grow(s->ents, &s->cap, s->n + 1, sizeof(*p), 8);

    if (p == NULL)
        return NULL;
    s->ents = p;
    *cp = vars_changes_add(out);
    if (*cp == NULL)
        return NULL;
    e = &s->ents[s->n++];
    memset(e, 0, sizeof(*e));
    e->name = Py_NewRef(name);
    e->name_s = st__strtab_str(name);
    e->seen = 1;
    (*cp)->kind = ST_VAR_NEW;
    return e;
}

/* Updates one variable; appends a change when it is new or changed. */
static int
vars_visit(struct st_snapshot *s, PyObject *name, PyObject *v,
           const struct st_trace_region *r, struct st_changes *out,
           size_t *hint)
{
    long i = vars_find(s, name, *hint);
    struct st_snapent *e = NULL;
    struct st_change *c;
    struct st_strent *type_s;
    struct st_stateprint sp;
    int has_sp;
    char *value;
    size_t len;

    if (i >= 0) {
        e = &s->ents[i];
        e->seen = 1;
        *hint = (size_t)i + 1;
        if (vars_snapent_same(e, v))
            return 0;
    }
    if (vars_unchanged(e, v, &sp, &has_sp))
        return 0;
    type_s = st__strtab_type(Py_TYPE(v));
    if (type_s == NULL)
        return -1;
    value = vars_text(v, r, &sp, has_sp, &len);
    if (value == NULL)
        return -1;
    if (e != NULL && e->type_s == type_s && e->value_len == len &&
        memcmp(e->value, value, len) == 0) {
        free(value);
        vars_snapent_keep(e, v, has_sp ? &sp : NULL);
        return 0;
    }
    c = NULL;
    if (e != NULL) {
        c = vars_changes_add(out);
        if (c != NULL) {
            c->kind = ST_VAR_CHANGED;
            c->old = e->value;
            c->old_len = e->value_len;
        }
    }
    else {
        e = vars_add(s, name, out, &c);
        if (e != NULL)
            *hint = (size_t)(e - s->ents) + 1;
    }
    if (e == NULL || c == NULL) {
        free(value);
        return -1;
    }
    e->type_s = type_s;
    e->value = value;
    e->value_len = len;
    vars_snapent_keep(e, v, has_sp ? &sp : NULL);
    c->ent = e;
    c->name_s = e->name_s;
    return 0;
}

/* Removes entries not seen this step, recording [DELETED] changes. */
static void
vars_sweep(struct st_snapshot *s, struct st_changes *out)
{
    size_t i, j = 0;

    for (i = 0; i < s->n; i++) {
        struct st_snapent *e = &s->ents[i];

        if (!e->seen) {
            struct st_change *c = vars_changes_add(out);

            if (c != NULL) {
                c->kind = ST_VAR_DELETED;
                c->name_s = e->name_s;
            }
            vars_snapent_clear(e);
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
vars_finish(struct st_snapshot *s, struct st_changes *out)
{
    size_t i;

    vars_sweep(s, out);
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
vars_recheck(struct st_snapshot *s, PyObject *vars,
             const struct st_trace_region *r, struct st_changes *out)
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
            vars_visit(s, name, v, r, out, &hint);
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
st__vars_update(struct st_snapshot *s, PyObject *vars,
                const struct st_trace_region *r, struct st_changes *out)
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
            (s->nunstable == 0 || vars_recheck(s, vars, r, out) == 0))
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
            vars_step_var(s, name, v, r, out, &hint);
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
            vars_step_var(s, name, v, r, out, &hint);
        }
        Py_DECREF(items);
    }
    vars_finish(s, out);
    return 0;
}

int
st__vars_update_slots(struct st_snapshot *s, PyObject *names,
                      PyObject *const *values, Py_ssize_t n,
                      const struct st_trace_region *r, struct st_changes *out)
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
        vars_step_var(s, name, v, r, out, &hint);
        Py_DECREF(v);
    }
    vars_finish(s, out);
    return 0;
}
