/*
 * String ids (strtab.c): every file, function, variable, type and thread
 * name a record refers to is sent once per connection (a STR message) and
 * then named by a small integer.  Entries are keyed by identity (a str
 * object, a static type), never freed, and owned by the table; callers
 * borrow them.  GIL held.
 *
 * Callers: filter.c (file and function names of traced code), vars.c
 * (variable and type names), emit.c (sends each entry once per
 * connection, marking sent_gen).
 */
#ifndef STEPTRACE_AGENT_STRTAB_H
#define STEPTRACE_AGENT_STRTAB_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

struct st_strent {
    const void *key;  /* Identity: a str object or a static type. */
    PyObject *ref;    /* Owned reference keeping key/text alive, or NULL. */
    const char *text; /* Borrowed from ref or static storage. */
    size_t len;
    uint32_t sid;
    uint32_t sent_gen; /* Connection generation it was sent on (emit.c). */
};

/* The entry for str object s (a new entry keeps a reference to it), or
 * NULL when out of memory.  Never raises. */
struct st_strent *st__strtab_str(PyObject *s);

/* The entry for the __name__ of type t, or NULL when out of memory. */
struct st_strent *st__strtab_type(PyTypeObject *t);

#endif /* STEPTRACE_AGENT_STRTAB_H */
