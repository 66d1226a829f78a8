/*
 * Which code is traced (filter.c, docs/CLI.md section 5).  A region's filter
 * (struct st_filter: workspaces, exclusions, functions) is built and
 * released here; its verdict for a code object is decided once and
 * cached in the code object's co_extra slot (struct st_codeinfo, owned by
 * the code object and freed with it), so the per-event cost is one
 * pointer read.
 *
 * Callers: region.c (a region's filter), tracer.c and backend_monitoring.c
 * (is this code traced?), module.c (code_traced, setup).  GIL held.
 */
#ifndef STEPTRACE_AGENT_FILTER_H
#define STEPTRACE_AGENT_FILTER_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

#include "strtab.h"

struct st_filter {
    char **workspaces; /* Owned array of owned real paths; NULL when
                          filter_workspace is off. */
    size_t nworkspaces;
    char **excluded; /* Owned array of owned prefixes. */
    size_t nexcluded;
    char *pkgdir; /* Owned: the steptrace package directory. */
    size_t pkgdir_len;
    char *cwd;           /* Owned: for relative co_filename values. */
    PyObject *functions; /* Owned frozenset of names, or NULL for all. */
    uint32_t id;         /* Distinct per filter: keys the code cache. */
    uint64_t key;        /* Equal for filters made of the same values. */
};

/* Cached per code object (in its co_extra slot): the filter verdict. */
struct st_codeinfo {
    uint32_t filter_id; /* Filter this verdict is for. */
    int traceable;
    PyObject *abs_file;       /* Owned: absolute co_filename. */
    struct st_strent *file_s; /* Borrowed from strtab. */
    struct st_strent *func_s;
    int fast_checked;     /* fast_names was decided. */
    PyObject *fast_names; /* Owned tuple: the locals' names when they
                             are read from the fast locals, else NULL. */
    int initialiser;      /* __init__, __post_init__ or __setstate__
                             with a first argument: the object it
                             builds is not str()'d meanwhile. */
};

/* Sets up the co_extra slot (once, at module init).  @return 0 or -1. */
int st__filter_setup(void);

/*
 * Fills the zeroed *f from the Python arguments: `workspace` a str, a
 * tuple of str (real paths) or None; `excluded` a tuple of str prefixes;
 * `functions` an iterable of names or None (all).  Release with
 * st__filter_close, also after a failure.
 * @return 0, or -1 with an exception raised.
 */
int st__filter_init(struct st_filter *f, PyObject *workspace,
                    PyObject *excluded, const char *pkgdir, const char *cwd,
                    PyObject *functions);

/* Releases what f owns. */
void st__filter_close(struct st_filter *f);

/* The code object's cached info under filter f (borrowed from co), or
 * NULL when it is not traced.  Never raises. */
struct st_codeinfo *st__filter_codeinfo(PyCodeObject *co,
                                        const struct st_filter *f);

#endif /* STEPTRACE_AGENT_FILTER_H */
