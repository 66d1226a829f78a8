/*
 * str() of values at the cost of what is shown (issue 15, "bounded
 * values").
 *
 * Exact lists, tuples, dicts, sets and frozensets are composed here the
 * way CPython's list_repr, tuple_repr, dict_repr and set_repr compose them
 * (the same repr() of each item, the same separators, "[...]" for a
 * container met again inside itself), item by item, and the composing
 * stops once repr_limit characters are there: a cut text ends with "...
 * (N items)", N being the container's length, known at no cost.  So a
 * 200,000-item list costs the few items that are shown, not 200,000
 * repr() calls.  Long strings and bytes inside a container are likewise
 * rendered from a prefix (with the quote the whole value would get).
 *
 * While composing, the shape and the items that made the text are noted:
 * each container's type and length, each immutable item's identity (a
 * reference is kept: immutable builtins only), each item whose text is
 * fixed by its identity (a function, a default repr) without a reference.
 * If no code of the program ran meanwhile, that fingerprint (vfp.h) shows
 * the value unchanged later at the cost of a walk over the same items,
 * with no rendering at all (vfp.c).
 */
#include "compat.h"

#include "steptrace/dtoa.h"
#include "steptrace/record.h"

#include "compose.h"
#include "stateprint.h"

#include <stdlib.h>
#include <string.h>

static st_compose_building_cb compose_building;

void
st__compose_set_building(st_compose_building_cb cb)
{
    compose_building = cb;
}

PyObject *
st__compose_text(PyObject *v, int repr)
{
    PyObject **dp, *dict = NULL, *saved = NULL, *s;
    uint64_t version = 0;

    st__stateprint_forget();
    if (compose_building != NULL && compose_building(v)) {
        dp = _PyObject_GetDictPtr(v);
        if (dp != NULL && *dp != NULL && PyDict_CheckExact(*dp)) {
            dict = Py_NewRef(*dp);
            saved = PyDict_Copy(dict);
            version = st_dict_version(dict);
        }
        PyErr_Clear();
    }
    s = repr ? PyObject_Repr(v) : PyObject_Str(v);
    if (saved != NULL && st_dict_version(dict) != version) {
        st_exc_state es;

        /* str() filled a cache (or worse) in the half-built object: put
         * its attributes back as the program left them. */
        ST_EXC_SAVE(es);
        PyDict_Clear(dict);
        if (PyDict_Update(dict, saved) < 0)
            PyErr_Clear();
        ST_EXC_RESTORE(es);
    }
    Py_XDECREF(saved);
    Py_XDECREF(dict);
    return s;
}

/* A copy of the n ASCII bytes at p, NUL-terminated, or NULL. */
static char *
compose_dup(const char *p, size_t n, size_t *len_out)
{
    char *d = malloc(n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    *len_out = n;
    return d;
}

size_t
st__compose_int(PyObject *v, size_t limit, char buf[24])
{
    char tmp[24];
    size_t i = sizeof(tmp), n;
    int overflow;
    long long x;
    unsigned long long u;

    if (!PyLong_CheckExact(v))
        return 0;
    x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow != 0 || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    u = x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (x < 0)
        tmp[--i] = '-';
    n = sizeof(tmp) - i;
    if (limit != 0 && n > limit)
        return 0;
    memcpy(buf, tmp + i, n);
    return n;
}

char *
st__compose_number(PyObject *v, size_t limit, size_t *len_out)
{
    char buf[24];
    size_t n;

    if (PyLong_CheckExact(v)) {
        n = st__compose_int(v, limit, buf);
        return n == 0 ? NULL : compose_dup(buf, n, len_out);
    }
    if (PyFloat_CheckExact(v)) {
        /* repr(), as PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0)
         * gives it, without its bignum arithmetic and allocations. */
        char s[ST_DOUBLE_REPR_MAX];

        n = st_double_repr(PyFloat_AS_DOUBLE(v), s);
        if (limit != 0 && n > limit)
            return NULL;
        return compose_dup(s, n, len_out);
    }
    return NULL;
}

/* Item texts kept by identity, for items that recur (floats are costly
 * to format). */
#define RC_SLOTS 4096   /* Power of two. */
#define RC_MAX_TEXT 256 /* Longer item texts are not kept. */

struct compose {
    struct st_buf b; /* Owned: the text so far (UTF-8). */
    size_t chars;    /* Characters in b. */
    size_t limit;
    int full;         /* More than `limit` characters: stop. */
    int failed;       /* An item's repr() raised. */
    int code_ran;     /* A repr() of the program's ran. */
    struct st_vfp fp; /* Owned tokens; leaves borrowed until
                         compose_finish takes references. */
    size_t tokcap, leafcap;
    int fp_broken; /* Out of memory: no fingerprint. */
};

static void compose_value(struct compose *c, PyObject *v, int depth);

/* ---- text ---- */

/* Appends UTF-8 text, up to the limit; past it, notes that there is more
 * and stops. */
static void
compose_text(struct compose *c, const char *p, size_t n)
{
    size_t i, take = n;

    if (c->full)
        return;
    for (i = 0; i < n; i++) {
        if (((unsigned char)p[i] & 0xc0) == 0x80)
            continue;
        if (c->chars == c->limit) {
            take = i;
            c->full = 1;
            break;
        }
        c->chars++;
    }
    st_buf_append(&c->b, p, take);
}

#define LIT(c, s) compose_text((c), (s), sizeof(s) - 1)

/* Appends str object s's text. */
static void
compose_unicode(struct compose *c, PyObject *s)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);

    if (p == NULL) {
        PyErr_Clear();
        c->failed = 1;
        return;
    }
    compose_text(c, p, (size_t)n);
}

/* ---- the fingerprint ---- */

static void
compose_fp_tok(struct compose *c, uintptr_t t)
{
    uintptr_t *p;

    if (c->fp_broken)
        return;
    p = st_grow(c->fp.tok, &c->tokcap, c->fp.ntok + 1, sizeof(*p), 32);
    if (p == NULL) {
        c->fp_broken = 1;
        return;
    }
    c->fp.tok = p;
    p[c->fp.ntok++] = t;
}

static void
compose_fp_leaf(struct compose *c, PyObject *v)
{
    PyObject **p;

    compose_fp_tok(c, (uintptr_t)v);
    if (c->fp_broken)
        return;
    p = st_grow(c->fp.leaf, &c->leafcap, c->fp.nleaf + 1, sizeof(*p), 16);
    if (p == NULL) {
        c->fp_broken = 1;
        return;
    }
    c->fp.leaf = p;
    p[c->fp.nleaf++] = v;
}

/* ---- leaves ---- */

struct rc_ent {
    PyObject *obj; /* Owned, or NULL. */
    char *text;    /* Owned. */
    size_t len;
};

static struct rc_ent *rc_tab;
static size_t rc_used;

static void
compose_rc_clear(void)
{
    size_t i;

    for (i = 0; i < RC_SLOTS && rc_tab != NULL; i++) {
        Py_CLEAR(rc_tab[i].obj);
        free(rc_tab[i].text);
        rc_tab[i].text = NULL;
    }
    rc_used = 0;
}

/* Keeps text as v's repr (v immutable: it cannot change). */
static void
compose_rc_keep(PyObject *v, const char *p, size_t n)
{
    size_t i = ((uintptr_t)v >> 4) & (RC_SLOTS - 1);

    if (n > RC_MAX_TEXT || rc_tab == NULL)
        return;
    if (rc_used * 2 >= RC_SLOTS)
        compose_rc_clear();
    while (rc_tab[i].obj != NULL)
        i = (i + 1) & (RC_SLOTS - 1);
    rc_tab[i].text = malloc(n + 1);
    if (rc_tab[i].text == NULL)
        return;
    memcpy(rc_tab[i].text, p, n);
    rc_tab[i].len = n;
    rc_tab[i].obj = Py_NewRef(v);
    rc_used++;
}

static const struct rc_ent *
compose_rc_find(PyObject *v)
{
    size_t i = ((uintptr_t)v >> 4) & (RC_SLOTS - 1);

    if (rc_tab == NULL && (rc_tab = calloc(RC_SLOTS, sizeof(*rc_tab))) == NULL)
        return NULL;
    for (; rc_tab[i].obj != NULL; i = (i + 1) & (RC_SLOTS - 1))
        if (rc_tab[i].obj == v)
            return &rc_tab[i];
    return NULL;
}

/*
 * repr() of a str or bytes longer than what is left to show: the repr of
 * a prefix, made to choose the quote the whole value's repr chooses
 * (unicode_repr and bytes_repr take ' unless the value holds ' and no
 * "): a ' and a " are added to the prefix where the whole holds both, a '
 * where it holds ' only.  Its escapes are the whole's, so its start is
 * the whole repr's start; the added characters lie beyond what is shown.
 * @return a new str, or NULL (an error is set).
 */
static PyObject *
compose_long_repr(PyObject *v, Py_ssize_t k)
{
    PyObject *prefix, *out;
    int sq, dq;

    if (PyUnicode_Check(v)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);

        sq = PyUnicode_FindChar(v, '\'', 0, n, 1) >= 0;
        dq = PyUnicode_FindChar(v, '"', 0, n, 1) >= 0;
        prefix = PyUnicode_Substring(v, 0, k);
        if (prefix != NULL && sq)
            Py_SETREF(prefix,
                      PyUnicode_FromFormat("%U%s", prefix, dq ? "'\"" : "'"));
    }
    else {
        const char *p = PyBytes_AS_STRING(v);
        Py_ssize_t n = PyBytes_GET_SIZE(v);

        sq = memchr(p, '\'', (size_t)n) != NULL;
        dq = memchr(p, '"', (size_t)n) != NULL;
        prefix = PyBytes_FromStringAndSize(p, k);
        if (prefix != NULL && sq)
            PyBytes_ConcatAndDel(&prefix,
                                 PyBytes_FromString(dq ? "'\"" : "'"));
    }
    if (prefix == NULL)
        return NULL;
    out = PyObject_Repr(prefix);
    Py_DECREF(prefix);
    return out;
}

/* An immutable builtin: its repr(), from the cache, formatted in C, or
 * from a prefix when long.  @return 0, or -1 when it raised. */
static int
compose_leaf(struct compose *c, PyObject *v)
{
    const struct rc_ent *e;
    PyObject *s;
    char *num;
    size_t n;
    Py_ssize_t len = -1, left = (Py_ssize_t)(c->limit - c->chars) + 1;

    compose_fp_leaf(c, v);
    if (v == Py_None || v == Py_True || v == Py_False) {
        compose_text(c,
                     v == Py_None   ? "None"
                     : v == Py_True ? "True"
                                    : "False",
                     v == Py_False ? 5 : 4);
        return 0;
    }
    if ((e = compose_rc_find(v)) != NULL) {
        compose_text(c, e->text, e->len);
        return 0;
    }
    if ((num = st__compose_number(v, 0, &n)) != NULL) {
        compose_text(c, num, n);
        compose_rc_keep(v, num, n);
        free(num);
        return 0;
    }
    if (PyUnicode_CheckExact(v))
        len = PyUnicode_GET_LENGTH(v);
    else if (PyBytes_CheckExact(v))
        len = PyBytes_GET_SIZE(v);
    s = len > left ? compose_long_repr(v, left) : PyObject_Repr(v);
    if (s == NULL) {
        PyErr_Clear();
        return -1;
    }
    if (len <= left) {
        Py_ssize_t k;
        const char *p = PyUnicode_AsUTF8AndSize(s, &k);

        if (p != NULL)
            compose_rc_keep(v, p, (size_t)k);
    }
    compose_unicode(c, s);
    Py_DECREF(s);
    PyErr_Clear();
    return 0;
}

/* Anything else: its own repr() (the program's code, at times). */
static void
compose_other(struct compose *c, PyObject *v)
{
    PyObject *s;

    if (st__vfp_identity(v)) {
        compose_fp_tok(c, ST_VFP_TOK_IDENT);
        compose_fp_tok(c, (uintptr_t)Py_TYPE(v));
        compose_fp_tok(c, (uintptr_t)v);
    }
    else {
        c->code_ran = 1;
    }
    s = st__compose_text(v, 1);
    if (s == NULL) {
        PyErr_Clear();
        c->failed = 1;
        return;
    }
    compose_unicode(c, s);
    Py_DECREF(s);
}

/* ---- containers ---- */

/* The items of a list or tuple (re-read at each step, as list_repr does:
 * an item's repr may change the list). */
static void
compose_seq(struct compose *c, PyObject *v, int depth)
{
    Py_ssize_t i;
    int tuple = PyTuple_CheckExact(v);

    for (i = 0; i < Py_SIZE(v) && !c->full && !c->failed; i++) {
        PyObject *item = Py_NewRef(tuple ? PyTuple_GET_ITEM(v, i)
                                         : PyList_GET_ITEM(v, i));

        if (i > 0)
            LIT(c, ", ");
        compose_value(c, item, depth + 1);
        Py_DECREF(item);
    }
    if (tuple && Py_SIZE(v) == 1)
        LIT(c, ",");
}

static void
compose_dict(struct compose *c, PyObject *v, int depth)
{
    Py_ssize_t pos = 0;
    PyObject *k, *val;
    int first = 1;

    while (!c->full && !c->failed && PyDict_Next(v, &pos, &k, &val)) {
        Py_INCREF(k);
        Py_INCREF(val);
        if (!first)
            LIT(c, ", ");
        first = 0;
        compose_value(c, k, depth + 1);
        LIT(c, ": ");
        compose_value(c, val, depth + 1);
        Py_DECREF(val);
        Py_DECREF(k);
    }
}

static void
compose_set(struct compose *c, PyObject *v, int depth)
{
    PyObject *it = PyObject_GetIter(v), *item;
    int first = 1;

    if (it == NULL) {
        PyErr_Clear();
        c->failed = 1;
        return;
    }
    while (!c->full && !c->failed && (item = PyIter_Next(it)) != NULL) {
        if (!first)
            LIT(c, ", ");
        first = 0;
        compose_value(c, item, depth + 1);
        Py_DECREF(item);
    }
    if (PyErr_Occurred()) {
        /* The set changed while an item's repr ran. */
        PyErr_Clear();
        c->failed = 1;
    }
    Py_DECREF(it);
}

/* The opening and closing of each kind, empty and recursive forms. */
static void
compose_container(struct compose *c, PyObject *v, int depth)
{
    int set = PySet_CheckExact(v), fset = PyFrozenSet_CheckExact(v);
    int list = PyList_CheckExact(v), tuple = PyTuple_CheckExact(v);
    Py_ssize_t n = st__vfp_len(v);
    int rec;

    compose_fp_tok(c, (uintptr_t)Py_TYPE(v));
    compose_fp_tok(c, (uintptr_t)n);
    if (n == 0) {
        if (set || fset)
            compose_text(c, set ? "set()" : "frozenset()", set ? 5 : 11);
        else
            compose_text(c, list ? "[]" : tuple ? "()" : "{}", 2);
        return;
    }
    rec = Py_ReprEnter(v);
    if (rec != 0) {
        if (rec < 0) {
            PyErr_Clear();
            c->failed = 1;
            return;
        }
        compose_fp_tok(c, ST_VFP_TOK_REC);
        if (set || fset)
            compose_text(c, set ? "set(...)" : "frozenset(...)", set ? 8 : 14);
        else
            compose_text(c, list ? "[...]" : tuple ? "(...)" : "{...}", 5);
        return;
    }
    if (fset)
        LIT(c, "frozenset(");
    compose_text(c, list ? "[" : tuple ? "(" : "{", 1);
    if (list || tuple)
        compose_seq(c, v, depth);
    else if (set || fset)
        compose_set(c, v, depth);
    else
        compose_dict(c, v, depth);
    compose_text(c, list ? "]" : tuple ? ")" : "}", 1);
    if (fset)
        LIT(c, ")");
    Py_ReprLeave(v);
}

static void
compose_value(struct compose *c, PyObject *v, int depth)
{
    if (c->full || c->failed)
        return;
    if (st__vfp_immutable(v)) {
        if (compose_leaf(c, v) != 0)
            c->failed = 1;
        return;
    }
    if (st__vfp_container(v) && depth < ST_VFP_MAX_DEPTH) {
        compose_container(c, v, depth);
        return;
    }
    if (st__vfp_container(v))
        c->code_ran = 1;
    compose_other(c, v);
}

char *
st__compose_value(PyObject *v, size_t limit, size_t *len_out,
                  struct st_vfp *fp)
{
    struct compose c;
    struct st_buf esc;
    size_t i;

    memset(fp, 0, sizeof(*fp));
    if (!st__vfp_container(v))
        return NULL;
    memset(&c, 0, sizeof(c));
    st_buf_init(&c.b);
    c.limit = limit;
    compose_container(&c, v, 0);
    if (c.failed || c.b.oom) {
        /* str() itself says what went wrong. */
        st_buf_close(&c.b);
        free(c.fp.tok);
        free(c.fp.leaf);
        return NULL;
    }
    st_buf_init(&esc);
    st_record_escape(&esc, c.b.data ? c.b.data : "", c.b.len);
    if (c.full) {
        st_buf_puts(&esc, "... (");
        st_buf_put_u64(&esc, (uint64_t)st__vfp_len(v));
        st_buf_puts(&esc, " items)");
    }
    st_buf_append(&esc, "", 1);
    st_buf_close(&c.b);
    if (c.code_ran || c.fp_broken) {
        free(c.fp.tok);
        free(c.fp.leaf);
    }
    else {
        *fp = c.fp;
        for (i = 0; i < fp->nleaf; i++)
            Py_INCREF(fp->leaf[i]);
    }
    if (esc.oom) {
        st__vfp_clear(fp);
        st_buf_close(&esc);
        return NULL;
    }
    *len_out = esc.len - 1;
    return esc.data;
}
