/*
 * Value fingerprints; see vfp.h.
 *
 * A composed container is recognised as unchanged by a walk over the same
 * items compose.c visited: what is beyond the shown part is not looked
 * at, except the lengths, so a change there that keeps every length is
 * not seen (README, "Values").
 *
 * Objects with the buffer protocol (arrays) get a fingerprint of their
 * bytes instead: whole up to 64 KiB, else sampled, so that an expensive
 * __repr__ is called once per change.
 */
#include "compat.h"

#include "vfp.h"

#include <stdlib.h>
#include <string.h>

int
st__vfp_immutable(PyObject *v)
{
    return PyLong_CheckExact(v) || PyUnicode_CheckExact(v) ||
           PyFloat_CheckExact(v) || PyBool_Check(v) || v == Py_None ||
           PyBytes_CheckExact(v) || PyComplex_CheckExact(v);
}

int
st__vfp_identity(PyObject *v)
{
    PyTypeObject *t = Py_TYPE(v);

    if (PyFunction_Check(v))
        return 1;
    return t->tp_str == PyBaseObject_Type.tp_str &&
           t->tp_repr == PyBaseObject_Type.tp_repr;
}

void
st__vfp_clear(struct st_vfp *fp)
{
    size_t i;

    for (i = 0; i < fp->nleaf; i++)
        Py_DECREF(fp->leaf[i]);
    free(fp->leaf);
    free(fp->tok);
    memset(fp, 0, sizeof(*fp));
}

/* ---- recognising an unchanged value ---- */

struct same {
    const struct st_vfp *fp;
    size_t k;                              /* Next token to match. */
    PyObject *stack[ST_VFP_MAX_DEPTH + 1]; /* Containers entered. */
    int depth;
};

/* @return 1 while the tokens match, 0 at a mismatch. */
static int
vfp_same_tok(struct same *s, uintptr_t t)
{
    if (s->k == s->fp->ntok)
        return 1;
    return s->fp->tok[s->k++] == t;
}

static int vfp_same_value(struct same *s, PyObject *v);

static int
vfp_same_items(struct same *s, PyObject *v)
{
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        PyObject **items = PySequence_Fast_ITEMS(v);
        Py_ssize_t i, n = PySequence_Fast_GET_SIZE(v);

        for (i = 0; i < n && s->k < s->fp->ntok; i++)
            if (!vfp_same_value(s, items[i]))
                return 0;
        return 1;
    }
    if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *k, *val;

        while (s->k < s->fp->ntok && PyDict_Next(v, &pos, &k, &val))
            if (!vfp_same_value(s, k) || !vfp_same_value(s, val))
                return 0;
        return 1;
    }
    {
        /* Sets: iterating an exact set runs no code. */
        PyObject *it = PyObject_GetIter(v), *item;
        int ok = 1;

        if (it == NULL) {
            PyErr_Clear();
            return 0;
        }
        while (ok && s->k < s->fp->ntok && (item = PyIter_Next(it))) {
            ok = vfp_same_value(s, item);
            Py_DECREF(item);
        }
        Py_DECREF(it);
        PyErr_Clear();
        return ok;
    }
}

/* Walks v as compose.c's compose_value() did, matching the tokens it noted. */
static int
vfp_same_value(struct same *s, PyObject *v)
{
    int i, ok;

    if (s->k == s->fp->ntok)
        return 1;
    if (st__vfp_immutable(v))
        return vfp_same_tok(s, (uintptr_t)v);
    if (!st__vfp_container(v) || s->depth >= ST_VFP_MAX_DEPTH) {
        /* An item rendered by identity. */
        return vfp_same_tok(s, ST_VFP_TOK_IDENT) &&
               vfp_same_tok(s, (uintptr_t)Py_TYPE(v)) &&
               vfp_same_tok(s, (uintptr_t)v) && st__vfp_identity(v);
    }
    if (!vfp_same_tok(s, (uintptr_t)Py_TYPE(v)) ||
        !vfp_same_tok(s, (uintptr_t)st__vfp_len(v)))
        return 0;
    if (st__vfp_len(v) == 0)
        return 1;
    for (i = 0; i < s->depth; i++)
        if (s->stack[i] == v)
            return vfp_same_tok(s, ST_VFP_TOK_REC);
    s->stack[s->depth++] = v;
    ok = vfp_same_items(s, v);
    s->depth--;
    return ok;
}

int
st__vfp_same(PyObject *v, const struct st_vfp *fp)
{
    struct same s;

    if (fp->ntok == 0 || !st__vfp_container(v))
        return 0;
    s.fp = fp;
    s.k = 0;
    s.depth = 0;
    return vfp_same_value(&s, v) && s.k == fp->ntok;
}

/* ---- the bytes of objects with the buffer protocol ---- */

/* Bytes hashed whole up to this size; above it, the first and last
 * BUF_EDGE bytes and BUF_BLOCKS blocks of BUF_BLOCK bytes between. */
#define BUF_WHOLE (64u * 1024)
#define BUF_EDGE (16u * 1024)
#define BUF_BLOCKS 512u
#define BUF_BLOCK 64u

static uint64_t
vfp_buf_mix(uint64_t h, const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i + 8 <= n; i += 8) {
        uint64_t w;

        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int
st__vfp_buffer(PyObject *v, struct st_bufprint *out)
{
    Py_buffer view;
    const unsigned char *p;
    size_t n, i;
    uint64_t h = 0xcbf29ce484222325ull;

    if (!PyObject_CheckBuffer(v) || PyBytes_CheckExact(v) ||
        PyUnicode_Check(v))
        return 0;
    if (PyObject_GetBuffer(v, &view, PyBUF_FULL_RO) != 0) {
        PyErr_Clear();
        if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) != 0) {
            PyErr_Clear();
            return 0;
        }
    }
    if (!PyBuffer_IsContiguous(&view, 'A')) {
        PyBuffer_Release(&view);
        return 0;
    }
    p = view.buf;
    n = (size_t)view.len;
    if (n <= BUF_WHOLE) {
        h = vfp_buf_mix(h, p, n);
    }
    else {
        size_t step = (n - 2 * BUF_EDGE) / BUF_BLOCKS;

        h = vfp_buf_mix(h, p, BUF_EDGE);
        for (i = 0; i < BUF_BLOCKS; i++)
            h = vfp_buf_mix(h, p + BUF_EDGE + i * step, BUF_BLOCK);
        h = vfp_buf_mix(h, p + n - BUF_EDGE, BUF_EDGE);
    }
    for (i = 0; i < (size_t)view.ndim && view.shape != NULL; i++)
        h = (h ^ (uint64_t)view.shape[i]) * 0x100000001b3ull;
    if (view.format != NULL)
        h = vfp_buf_mix(h, (const unsigned char *)view.format,
                        strlen(view.format));
    out->type = Py_TYPE(v);
    out->len = n;
    out->hash = h;
    PyBuffer_Release(&view);
    return 1;
}
