/*
 * Value fingerprints (vfp.c): is a variable's value still what its text
 * showed, found without rendering it again?
 *
 *  - Immutable builtins (st__vfp_immutable) are unchanged while they are
 *    the same object; objects whose str() is fixed by their identity and
 *    type (st__vfp_identity: a function, a default repr) too.
 *  - A container composed by compose.c leaves a fingerprint (struct
 *    st_vfp) of the shape and items its text was made of: the tokens
 *    below, one run per item, in the order compose.c visits them.
 *    st__vfp_same() walks the value again and matches them.
 *  - An object with the buffer protocol (an array) gets a hash of its
 *    bytes (struct st_bufprint).
 *
 * A fingerprint is made by compose.c, owned by whoever keeps it (vars.c's
 * snapshot entries) and released with st__vfp_clear.  Callers: compose.c,
 * render.c, vars.c.  GIL held; nothing here runs the program's code.
 */
#ifndef STEPTRACE_AGENT_VFP_H
#define STEPTRACE_AGENT_VFP_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

/* What a composed text showed.  tok and leaf owned; leaf holds
 * references (to immutable items only). */
struct st_vfp {
    uintptr_t *tok;
    size_t ntok;
    PyObject **leaf;
    size_t nleaf;
};

/* A fingerprint of the bytes of an object with the buffer protocol. */
struct st_bufprint {
    const PyTypeObject *type; /* Identity only. */
    size_t len;
    uint64_t hash;
};

/* Deeper containers are rendered by repr() itself (no fingerprint). */
#define ST_VFP_MAX_DEPTH 32

/* Tokens besides pointers (which are never 1 or 3): a container met again
 * inside itself; an item shown by identity (then its type and itself).
 * A container is its type and length, then its items. */
#define ST_VFP_TOK_REC ((uintptr_t)1)
#define ST_VFP_TOK_IDENT ((uintptr_t)3)

/* The containers compose.c composes (exact builtins only: iterating them
 * runs no code of the program's). */
static inline int
st__vfp_container(PyObject *v)
{
    return PyList_CheckExact(v) || PyTuple_CheckExact(v) ||
           PyDict_CheckExact(v) || PySet_CheckExact(v) ||
           PyFrozenSet_CheckExact(v);
}

/* The length of such a container. */
static inline Py_ssize_t
st__vfp_len(PyObject *v)
{
    if (PyDict_CheckExact(v))
        return PyDict_GET_SIZE(v);
    if (PySet_CheckExact(v) || PyFrozenSet_CheckExact(v))
        return PySet_GET_SIZE(v);
    return Py_SIZE(v);
}

/* Exact builtin types whose value cannot change while the object lives. */
int st__vfp_immutable(PyObject *v);

/* Is str(v) fixed by v's identity and type (a function, a default
 * repr)? */
int st__vfp_identity(PyObject *v);

/* Releases what fp holds and empties it. */
void st__vfp_clear(struct st_vfp *fp);

/* Does v still show what fp fingerprinted?  A walk over the same items. */
int st__vfp_same(PyObject *v, const struct st_vfp *fp);

/* Fills *out for an object with a contiguous buffer (not bytes, not str).
 * @return 1, or 0 when it has none. */
int st__vfp_buffer(PyObject *v, struct st_bufprint *out);

#endif /* STEPTRACE_AGENT_VFP_H */
