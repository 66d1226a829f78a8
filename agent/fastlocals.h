/*
 * Reading a function frame's local variables straight from its fast
 * locals array, without building the f_locals mapping each line (which
 * costs a dict write per variable on 3.12, a proxy and a list of pairs on
 * 3.13).  Only for code whose locals are all plain (no cell or free
 * variables); other code goes through PyFrame_GetLocals.
 */
#ifndef STEPTRACE_AGENT_FASTLOCALS_H
#define STEPTRACE_AGENT_FASTLOCALS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Can frames of `co` be read with st__fastlocals_get()?  Then *names is set
 * to a new reference to the tuple of their names, in slot order. */
int st__fastlocals_ok(PyCodeObject *co, PyObject **names);

/* The fast locals of f (borrowed; NULL for an unbound one): as many as
 * the names st__fastlocals_ok() gave for f's code. */
PyObject *const *st__fastlocals_get(PyFrameObject *f);

/* The first argument of f, whose code takes at least one (the content of
 * its cell when a closure captures it), for identity only; or NULL. */
const void *st__fastlocals_first_arg(PyFrameObject *f, PyCodeObject *co);

#endif /* STEPTRACE_AGENT_FASTLOCALS_H */
