/*
 * What `steptrace stats` adds up (stats.c, the command and its
 * accounting), shared with the printing of its tables (stats_table.c).
 * Internal to client/reader.
 */
#ifndef STEPTRACE_READER_STATS_H
#define STEPTRACE_READER_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/idmap.h"

struct stats_slot; /* stats.c */
struct stats_text; /* stats.c */

/* Open addressing, linear probing; never shrinks. */
struct stats_map {
    struct stats_slot *slots; /* Owned. */
    size_t cap, n;
};

struct stats_line {
    const char *file, *func; /* Interned. */
    uint32_t line;
    uint32_t fn; /* Its function's index. */
    uint64_t hits, ns;
};

struct stats_func {
    const char *file, *func; /* Interned. */
    uint64_t calls, hits, ns;
};

struct stats_ctx {
    struct stats_line *lines; /* Owned. */
    size_t nlines, linecap;
    struct stats_func *funcs; /* Owned. */
    size_t nfuncs, funccap;
    struct stats_map line_map; /* (file, func, line) interned. */
    struct stats_map func_map; /* (file, func) interned. */
    struct stats_text **texts; /* Owned: the interned strings. */
    size_t ntexts, textcap;
    size_t *text_idx; /* Owned: hash table of texts, index + 1. */
    size_t text_idx_cap;
    /* This file's: */
    const char *file;
    struct stats_map cache;  /* (st_rp_string *file, *func, line). */
    struct stats_map fcache; /* (st_rp_string *file, *func). */
    struct st_idmap threads; /* tid -> struct stats_thread, owned. */
    uint64_t steps, runtime_ns;
};

/* Prints the table of lines and then the table of functions, slowest
 * first, the top of each (0: all), into rd_out.  @return 0 or -1 (out of
 * memory). */
int rd__stats_print(const struct stats_ctx *c, uint64_t top);

#endif /* STEPTRACE_READER_STATS_H */
