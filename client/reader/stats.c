/*
 * `steptrace stats FILE... [--top N]` (docs/STEP-STORE.md section 6):
 * where the program's time went, per source line and per function, from
 * every step and event of the FILEs (added up across them).
 *
 * Time.  A record's runtime is the program time since the thread's
 * previous record, so it belongs to the line that was running then: the
 * last step's line; after a CALL, still the calling line (the time until
 * the callee's first line: the call itself); after a RETURN, the line of
 * the caller that made the call (the rest of that line); after an
 * EXCEPTION, the line that raised.  A function's time is the time of its
 * lines: its own time, without the functions it calls.  Hits are exact:
 * one per step record at the line.  Memory grows with the distinct
 * lines and functions, never with the steps.
 *
 * This file reads the records and adds them up (struct stats_ctx,
 * stats.h); stats_table.c prints the tables.
 */
#include "reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "steptrace/error.h"

static const char stats_help[] =
    "usage: steptrace stats FILE... [--top N]\n"
    "\n"
    "Prints where the time went in a run recorded with --log-format steps\n"
    "or both: per source line its hits (steps recorded there), total and\n"
    "mean time, slowest first; per function its calls and its own time\n"
    "(the time of its lines).  The FILEs are added up.\n"
    "\n"
    "options:\n"
    "  --top N   the N slowest lines and functions (default 20; 0: all)\n";

/* A key of a stats_map: two pointers and a line. */
struct stats_slot {
    const void *a, *b;
    uint32_t line;
    uint32_t val; /* Index + 1; 0: an empty slot. */
};

/* An interned string: its length, then its bytes and a NUL. */
struct stats_text {
    uint64_t hash;
    size_t n;
    char p[];
};

struct stats_thread {
    uint32_t cur; /* Index + 1 of the line running; 0: none. */
};

/* ---- maps ---- */

static size_t
stats_hash(const void *a, const void *b, uint32_t line)
{
    uint64_t h = (uint64_t)(uintptr_t)a * 0x9e3779b97f4a7c15ull;

    h ^= (uint64_t)(uintptr_t)b * 0xc2b2ae3d27d4eb4full;
    h ^= (uint64_t)line * 0x165667b19e3779f9ull;
    return (size_t)(h ^ (h >> 29));
}

/* The slot of key (a, b, line): its own, or the empty one to fill. */
static struct stats_slot *
stats_slot(const struct stats_map *m, const void *a, const void *b,
           uint32_t line)
{
    size_t i = stats_hash(a, b, line) & (m->cap - 1);

    for (;; i = (i + 1) & (m->cap - 1)) {
        struct stats_slot *s = &m->slots[i];

        if (s->val == 0 || (s->a == a && s->b == b && s->line == line))
            return s;
    }
}

/* The index the key maps to, or -1. */
static long
stats_map_get(const struct stats_map *m, const void *a, const void *b,
              uint32_t line)
{
    const struct stats_slot *s;

    if (m->cap == 0)
        return -1;
    s = stats_slot(m, a, b, line);
    return s->val != 0 ? (long)s->val - 1 : -1;
}

/* Maps the key (not yet present) to idx.  @return 0 or ST_ENOMEM. */
static int
stats_map_put(struct stats_map *m, const void *a, const void *b, uint32_t line,
              size_t idx)
{
    struct stats_slot *s;
    size_t i;

    if ((m->n + 1) * 2 > m->cap) {
        struct stats_map g = {NULL, m->cap ? m->cap * 2 : 256, m->n};

        g.slots = calloc(g.cap, sizeof(*g.slots));
        if (g.slots == NULL)
            return ST_ENOMEM;
        for (i = 0; i < m->cap; i++)
            if (m->slots[i].val != 0)
                *stats_slot(&g, m->slots[i].a, m->slots[i].b,
                            m->slots[i].line) = m->slots[i];
        free(m->slots);
        *m = g;
    }
    s = stats_slot(m, a, b, line);
    s->a = a;
    s->b = b;
    s->line = line;
    s->val = (uint32_t)idx + 1;
    m->n++;
    return 0;
}

static void
stats_map_close(struct stats_map *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static uint64_t
stats_text_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Room in the text table for one more text.  @return 0 or ST_ENOMEM. */
static int
stats_text_room(struct stats_ctx *c)
{
    size_t cap = c->text_idx_cap ? c->text_idx_cap * 2 : 256, i, k;
    size_t *idx;

    if ((c->ntexts + 1) * 2 <= c->text_idx_cap)
        return 0;
    idx = calloc(cap, sizeof(*idx));
    if (idx == NULL)
        return ST_ENOMEM;
    for (k = 0; k < c->ntexts; k++) {
        for (i = c->texts[k]->hash & (cap - 1); idx[i] != 0;
             i = (i + 1) & (cap - 1))
            ;
        idx[i] = k + 1;
    }
    free(c->text_idx);
    c->text_idx = idx;
    c->text_idx_cap = cap;
    return 0;
}

/* The interned copy of p[0..n) (one per distinct text), or NULL when
 * out of memory.  Strings of different files meet here. */
static const char *
stats_intern(struct stats_ctx *c, const char *p, size_t n)
{
    uint64_t h = stats_text_hash(p, n);
    struct stats_text *t, **tx;
    size_t i;

    if (stats_text_room(c) != 0)
        return NULL;
    for (i = h & (c->text_idx_cap - 1); c->text_idx[i] != 0;
         i = (i + 1) & (c->text_idx_cap - 1)) {
        t = c->texts[c->text_idx[i] - 1];
        if (t->hash == h && t->n == n && memcmp(t->p, p, n) == 0)
            return t->p;
    }
    tx = st_grow(c->texts, &c->textcap, c->ntexts + 1, sizeof(*tx), 64);
    if (tx == NULL)
        return NULL;
    c->texts = tx;
    t = malloc(sizeof(*t) + n + 1);
    if (t == NULL)
        return NULL;
    t->hash = h;
    t->n = n;
    memcpy(t->p, p, n);
    t->p[n] = '\0';
    c->texts[c->ntexts++] = t;
    c->text_idx[i] = c->ntexts;
    return t->p;
}

/* ---- lines, functions, threads ---- */

static const char *
stats_intern_str(struct stats_ctx *c, const struct st_rp_string *s)
{
    return s != NULL ? stats_intern(c, s->p, s->n) : stats_intern(c, "", 0);
}

/* The index of the function (file, func), made with no calls.  @return
 * it or -1 (out of memory). */
static long
stats_func_of(struct stats_ctx *c, const char *file, const char *func)
{
    long i = stats_map_get(&c->func_map, file, func, 0);
    struct stats_func *fs;

    if (i >= 0)
        return i;
    fs = st_grow(c->funcs, &c->funccap, c->nfuncs + 1, sizeof(*fs), 64);
    if (fs == NULL)
        return -1;
    c->funcs = fs;
    if (stats_map_put(&c->func_map, file, func, 0, c->nfuncs) != 0)
        return -1;
    fs = &c->funcs[c->nfuncs];
    memset(fs, 0, sizeof(*fs));
    fs->file = file;
    fs->func = func;
    return (long)c->nfuncs++;
}

/* The index of f's line `line` (made with no hits), through this
 * file's cache of the replay's strings.  @return it or -1. */
static long
stats_line_of(struct stats_ctx *c, const struct st_rp_frame *f, uint32_t line)
{
    long i = stats_map_get(&c->cache, f->file, f->func, line), fn;
    const char *file, *func;
    struct stats_line *ls;

    if (i >= 0)
        return i;
    file = stats_intern_str(c, f->file);
    func = stats_intern_str(c, f->func);
    if (file == NULL || func == NULL)
        return -1;
    i = stats_map_get(&c->line_map, file, func, line);
    if (i < 0) {
        fn = stats_func_of(c, file, func);
        ls = st_grow(c->lines, &c->linecap, c->nlines + 1, sizeof(*ls), 256);
        if (fn < 0 || ls == NULL)
            return -1;
        c->lines = ls;
        if (stats_map_put(&c->line_map, file, func, line, c->nlines) != 0)
            return -1;
        ls = &c->lines[c->nlines];
        memset(ls, 0, sizeof(*ls));
        ls->file = file;
        ls->func = func;
        ls->line = line;
        ls->fn = (uint32_t)fn;
        i = (long)c->nlines++;
    }
    if (stats_map_put(&c->cache, f->file, f->func, line, (size_t)i) != 0)
        return -1;
    return i;
}

static struct stats_thread *
stats_thread(struct stats_ctx *c, uint32_t tid)
{
    struct stats_thread *t = st__idmap_get(&c->threads, tid);

    if (t != NULL)
        return t;
    t = calloc(1, sizeof(*t));
    if (t != NULL && st__idmap_put(&c->threads, tid, t) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

/* A new file: the replay's strings and threads are new. */
static void
stats_new_file(struct stats_ctx *c, const char *file)
{
    size_t it = 0;
    void *t;

    while ((t = st__idmap_next(&c->threads, &it)) != NULL)
        free(t);
    st__idmap_close(&c->threads);
    st__idmap_init(&c->threads);
    stats_map_close(&c->cache);
    stats_map_close(&c->fcache);
    c->file = file;
}

/* ---- records ---- */

static int
stats_record(struct st_replay *rp, const char *file, void *ctx)
{
    struct stats_ctx *c = ctx;
    const struct st_rp_record *rec = &rp->rec;
    const struct st_rp_frame *f = rec->f, *parent;
    struct stats_thread *t;
    long i;

    if (file != c->file)
        stats_new_file(c, file);
    if (rec->what != ST_RP_STEP && rec->what != ST_RP_EVENT)
        return 0;
    t = stats_thread(c, f->tid);
    if (t == NULL)
        return -1;
    /* The runtime goes to the line that ran until now. */
    if (t->cur != 0) {
        struct stats_line *l = &c->lines[t->cur - 1];

        l->ns += rec->runtime_ns;
        c->funcs[l->fn].ns += rec->runtime_ns;
    }
    c->runtime_ns += rec->runtime_ns;
    switch (rec->what == ST_RP_STEP ? ST_EVENT_STEP : rec->event) {
    case ST_EVENT_STEP:
        i = stats_line_of(c, f, rec->m->u.step.lineno);
        if (i < 0)
            return -1;
        c->lines[i].hits++;
        c->funcs[c->lines[i].fn].hits++;
        c->steps++;
        t->cur = (uint32_t)i + 1;
        break;
    case ST_EVENT_CALL:
        i = stats_map_get(&c->fcache, f->file, f->func, 0);
        if (i < 0) {
            const char *ffile = stats_intern_str(c, f->file);
            const char *ffunc = stats_intern_str(c, f->func);

            i = ffile && ffunc ? stats_func_of(c, ffile, ffunc) : -1;
            if (i < 0 ||
                stats_map_put(&c->fcache, f->file, f->func, 0, (size_t)i))
                return -1;
        }
        c->funcs[i].calls++;
        break;
    case ST_EVENT_RETURN:
    case ST_EVENT_RETURN_EXC:
        parent = f->parent_id != 0 ? st__idmap_get(&rp->frames, f->parent_id)
                                   : NULL;
        t->cur = 0;
        if (parent != NULL) {
            i = stats_line_of(c, parent, parent->last_line);
            if (i < 0)
                return -1;
            t->cur = (uint32_t)i + 1;
        }
        break;
    default: break;
    }
    return 0;
}

static void
stats_close(struct stats_ctx *c)
{
    size_t i;

    stats_new_file(c, NULL);
    st__idmap_close(&c->threads);
    stats_map_close(&c->line_map);
    stats_map_close(&c->func_map);
    for (i = 0; i < c->ntexts; i++)
        free(c->texts[i]);
    free(c->texts);
    free(c->text_idx);
    free(c->lines);
    free(c->funcs);
}

int
rd_stats_main(int argc, char **argv)
{
    struct stats_ctx c;
    char **files = calloc((size_t)argc, sizeof(*files));
    uint64_t top = 20;
    int nfiles = 0, i, r;

    memset(&c, 0, sizeof(c));
    if (files == NULL)
        return RD_EXIT_DATA;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(stats_help, stdout);
            free(files);
            return 0;
        }
        v = rd_option_value(argc, argv, &i, "--top", &missing);
        if (missing) {
            free(files);
            return rd_usage("--top needs a value");
        }
        if (v != NULL) {
            if (rd_parse_count(v, &top) != 0) {
                free(files);
                return rd_usage("invalid --top value '%s': use a count, 0 "
                                "for all",
                                v);
            }
        }
        else if (a[0] == '-' && a[1] != '\0') {
            free(files);
            return rd_usage("unknown option %s for stats", a);
        }
        else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0) {
        free(files);
        return rd_usage("stats needs a FILE: a .steps file, e.g. "
                        ".tracer/tracer.steps");
    }
    st__idmap_init(&c.threads);
    r = rd_each_file(files, nfiles, ST_LEVEL_DEBUG, 0, stats_record, &c);
    if (r >= 0 && rd__stats_print(&c, top) != 0)
        r = -1;
    stats_close(&c);
    free(files);
    return r;
}
