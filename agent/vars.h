/*
 * Variable snapshots and diffs (vars.c).  A snapshot is what was last
 * shown of a scope's variables (a frame's locals, a module's globals);
 * updating it from the scope's current mapping appends the changes (new,
 * changed, deleted) that a step record carries.
 *
 * A snapshot owns its entries (their names, values' texts, fingerprints)
 * and is released with st__vars_clear; a change list owns the old texts
 * of changed variables until st__vars_changes_reset, and borrows the
 * entries it points to until the snapshot is next updated.  Callers:
 * tracer.c (each step), threads.c and region.c (release), emit.c (reads
 * snapshots and changes).  GIL held; never raises (a value whose str()
 * fails is shown as <unprintable T: msg>).
 */
#ifndef STEPTRACE_AGENT_VARS_H
#define STEPTRACE_AGENT_VARS_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

#include "stateprint.h"
#include "strtab.h"
#include "vfp.h"

struct st_trace_region;

/* One shown variable of a scope, as last rendered. */
struct st_snapent {
    PyObject *name;           /* Owned. */
    struct st_strent *name_s; /* Borrowed from strtab. */
    struct st_strent *type_s;
    PyObject *imm;            /* Owned ref to an immutable value, or NULL. */
    const void *ident;        /* Identity only (no reference) of a value
                                 whose str() is fixed by its identity and
                                 type (a function, a default repr). */
    const PyTypeObject *type; /* Identity only: the value's type. */
    struct st_vfp fp;         /* Owned: what its composed text showed
                                 (compose.c), or empty. */
    struct st_bufprint bp;    /* Its bytes, with has_bp. */
    int has_bp;
    struct st_stateprint sp; /* Its state, with has_sp (stateprint.c). */
    int has_sp;
    uint8_t sp_miss; /* Steps in a row its state changed (up to
                        SP_MISS_MAX: then walked 1 step in 16). */
    uint8_t sp_tick;
    char *value; /* Owned, escaped and cut. */
    size_t value_len;
    int seen;
    int stable; /* Its text cannot change while the dict
                   holding it is unchanged (imm, function). */
};

struct st_snapshot {
    struct st_snapent *ents; /* Owned. */
    size_t n, cap;
    size_t nunstable; /* Entries that are not `stable`. */
    uint64_t version; /* The dict's version when last read... */
    int has_version;  /* ...when set. */
};

/* One change found by st__vars_update(). */
struct st_change {
    struct st_snapent *ent; /* Borrowed (NULL for a delete). */
    struct st_strent *name_s;
    int kind;  /* ST_VAR_NEW, ST_VAR_CHANGED, ST_VAR_DELETED */
    char *old; /* Owned old value for ST_VAR_CHANGED. */
    size_t old_len;
};

struct st_changes {
    struct st_change *c; /* Owned. */
    size_t n, cap;
};

/* Releases what s holds and empties it (it can be updated again). */
void st__vars_clear(struct st_snapshot *s);

/* Empties c, releasing the old texts (its array is kept for reuse). */
void st__vars_changes_reset(struct st_changes *c);

/*
 * Compares the mapping `vars` with the snapshot, updates the snapshot and
 * appends the differences to *out, under region r's repr_limit and
 * hidden types.  Never raises.
 * @return 0, or -1 when the mapping could not be read (exception cleared).
 */
int st__vars_update(struct st_snapshot *s, PyObject *vars,
                    const struct st_trace_region *r, struct st_changes *out);

/* Like st__vars_update, for n variables given as names and values in
 * slot order (a NULL value is unbound). */
int st__vars_update_slots(struct st_snapshot *s, PyObject *names,
                          PyObject *const *values, Py_ssize_t n,
                          const struct st_trace_region *r,
                          struct st_changes *out);

#endif /* STEPTRACE_AGENT_VARS_H */
