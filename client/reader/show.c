/*
 * `steptrace show FILE... [options]`: the text log of a step store at any
 * level and variable mode, byte for byte what a text run with those
 * settings writes (common/replay.c), with filters and the source lines.
 */
#include "reader.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"

static const char show_help[] =
    "usage: steptrace show FILE... [options]\n"
    "\n"
    "Prints the text log of .steps files (written with --log-format steps\n"
    "or both) at any level and variable mode: what a run with those\n"
    "settings would have written.  Each FILE (a rotated segment too) is\n"
    "read alone.  Pages through less when the output is a terminal.\n"
    "\n"
    "options:\n"
    "  --log-level LEVEL      DEBUG, INFO, WARNING or ERROR (default: as\n"
    "                         recorded)\n"
    "  --variable-mode MODE   ALL, CHANGED or NONE (default: as recorded)\n"
    "  --function NAME        only records of functions named NAME\n"
    "                         (repeatable)\n"
    "  --file GLOB            only records of files matching GLOB (the full\n"
    "                         path or the file name; repeatable)\n"
    "  --thread NAME          only records of this thread (repeatable)\n"
    "  --steps A:B            only steps A to B (either may be left out) and\n"
    "                         the events between them\n"
    "  --source               add each line's source text after its\n"
    "                         location\n"
    "\n"
    "steptrace's own lines ([steptrace] ...) are always shown; async\n"
    "records only without --function, --file, --thread and --steps.\n";

/* A filter list: a few names each. */
#define SHOW_MAX_NAMES 64

struct show_opts {
    int level, mode;
    const char *funcs[SHOW_MAX_NAMES];
    int nfuncs;
    const char *globs[SHOW_MAX_NAMES];
    int nglobs;
    const char *threads[SHOW_MAX_NAMES];
    int nthreads;
    int has_steps;
    uint64_t step_lo, step_hi;
    int source;
};

/* ---- source lines ---- */

/* The lines of one source file, read once (a few files are kept). */
struct show_src {
    char *path; /* Owned. */
    char *text; /* Owned: the file's bytes, lines ending in NUL. */
    char **lines;
    size_t nlines;
};

#define SHOW_MAX_SRC 64
static struct show_src show_srcs[SHOW_MAX_SRC];
static size_t show_nsrcs;

static void
show_src_free(struct show_src *s)
{
    free(s->path);
    free(s->text);
    free(s->lines);
    memset(s, 0, sizeof(*s));
}

/* Reads `path` (at most 64 MiB) into s.  A file that cannot be read has
 * no lines. */
static void
show_src_load(struct show_src *s, const char *path)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = 0, len = 0, n, i, k = 0;

    s->path = strdup(path);
    if (fp == NULL)
        return;
    for (;;) {
        char *nt;

        if (len + 4096 + 1 > cap) {
            if (cap >= (64u << 20))
                break;
            cap = cap ? cap * 2 : 65536;
            nt = realloc(s->text, cap);
            if (nt == NULL)
                break;
            s->text = nt;
        }
        n = fread(s->text + len, 1, cap - len - 1, fp);
        if (n == 0)
            break;
        len += n;
    }
    fclose(fp);
    if (s->text == NULL)
        return;
    s->text[len] = '\0';
    for (i = 0; i < len; i++)
        if (s->text[i] == '\n')
            k++;
    s->lines = malloc((k + 1) * sizeof(*s->lines));
    if (s->lines == NULL)
        return;
    s->lines[s->nlines++] = s->text;
    for (i = 0; i < len; i++)
        if (s->text[i] == '\n') {
            s->text[i] = '\0';
            if (i + 1 < len)
                s->lines[s->nlines++] = s->text + i + 1;
        }
}

/* Line `lineno` (from 1) of `path`, or NULL. */
static const char *
show_src_line(const char *path, uint32_t lineno)
{
    struct show_src *s = NULL;
    size_t i;

    for (i = 0; i < show_nsrcs; i++)
        if (show_srcs[i].path != NULL && strcmp(show_srcs[i].path, path) == 0)
            s = &show_srcs[i];
    if (s == NULL) {
        if (show_nsrcs == SHOW_MAX_SRC) {
            for (i = 0; i < show_nsrcs; i++)
                show_src_free(&show_srcs[i]);
            show_nsrcs = 0;
        }
        s = &show_srcs[show_nsrcs++];
        show_src_load(s, path);
    }
    if (lineno == 0 || lineno > s->nlines)
        return NULL;
    return s->lines[lineno - 1];
}

/*
 * Adds "    > <source>" after the record's last location line: the line
 * before the record's first blank line.  `start` is where the record
 * begins in rd_out.
 */
static int
show_add_source(size_t start, const char *file, uint32_t lineno)
{
    const char *line = show_src_line(file, lineno);
    struct st_buf add;
    char *p, *blank;
    size_t at;
    int r = 0;

    if (line == NULL)
        return 0;
    while (*line == ' ' || *line == '\t')
        line++;
    p = rd_out.data + start;
    blank = memmem(p, rd_out.len - start, "\n\n", 2);
    if (blank == NULL)
        return 0;
    at = (size_t)(blank - rd_out.data) + 1;
    st_buf_init(&add);
    if (st_buf_puts(&add, "    > ") != 0 ||
        st_record_escape(&add, line, strlen(line)) != 0 ||
        st_buf_puts(&add, "\n") != 0) {
        st_buf_close(&add);
        return ST_ENOMEM;
    }
    if (st_buf_reserve(&rd_out, add.len) != 0) {
        r = ST_ENOMEM;
    }
    else {
        memmove(rd_out.data + at + add.len, rd_out.data + at, rd_out.len - at);
        memcpy(rd_out.data + at, add.data, add.len);
        rd_out.len += add.len;
    }
    st_buf_close(&add);
    return r;
}

/* ---- filters ---- */

static int
show_in(const char *const *names, int n, const char *p, size_t len)
{
    int i;

    for (i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], p, len) == 0)
            return 1;
    return 0;
}

static int
show_file_matches(const struct show_opts *o, const char *path)
{
    const char *base = strrchr(path, '/');
    int i;

    base = base != NULL ? base + 1 : path;
    for (i = 0; i < o->nglobs; i++)
        if (fnmatch(o->globs[i], path, 0) == 0 ||
            fnmatch(o->globs[i], base, 0) == 0)
            return 1;
    return 0;
}

static int
show_filtered(const struct show_opts *o)
{
    return o->nfuncs > 0 || o->nglobs > 0 || o->nthreads > 0 || o->has_steps;
}

/* Does the record of rp pass the filters? */
static int
show_passes(const struct show_opts *o, struct st_replay *rp)
{
    const struct st_rp_record *rec = &rp->rec;
    const struct st_rp_frame *f = rec->f;

    if (rec->what == ST_RP_LINES)
        return 1;
    if (rec->what == ST_RP_ASYNC)
        return !show_filtered(o);
    if (f == NULL)
        return 0;
    if (o->nfuncs > 0 && (f->func == NULL || !show_in(o->funcs, o->nfuncs,
                                                      f->func->p, f->func->n)))
        return 0;
    if (o->nglobs > 0 &&
        (f->file == NULL || !show_file_matches(o, f->file->p)))
        return 0;
    if (o->nthreads > 0) {
        char tmp[16];
        struct st_str t = st_replay_thread_name(rp, f->tid, tmp, sizeof(tmp));

        if (!show_in(o->threads, o->nthreads, t.p, t.n))
            return 0;
    }
    if (o->has_steps && (rec->step < o->step_lo || rec->step > o->step_hi))
        return 0;
    return 1;
}

static int
show_record(struct st_replay *rp, const char *file, void *ctx)
{
    const struct show_opts *o = ctx;
    size_t start = rd_out.len;

    if (!rp->rec.shown || !show_passes(o, rp))
        return 0;
    if (st_replay_render(rp, &rd_out) != 0)
        return -1;
    if (o->source && rp->rec.f != NULL && rp->rec.f->file != NULL &&
        show_add_source(start, rp->rec.f->file->p,
                        rp->rec.what == ST_RP_EVENT
                            ? rp->rec.m->u.event.lineno
                            : rp->rec.m->u.step.lineno) != 0)
        return -1;
    return rd_out_maybe_flush();
}

/* "A:B", "A:", ":B" into the options. */
static int
show_parse_steps(struct show_opts *o, const char *s)
{
    const char *colon = strchr(s, ':');
    char lo[32];
    size_t n;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(lo))
        return -1;
    n = (size_t)(colon - s);
    memcpy(lo, s, n);
    lo[n] = '\0';
    o->step_lo = 0;
    o->step_hi = UINT64_MAX;
    if (n > 0 && rd_parse_count(lo, &o->step_lo) != 0)
        return -1;
    if (colon[1] != '\0' && rd_parse_count(colon + 1, &o->step_hi) != 0)
        return -1;
    if (o->step_lo > o->step_hi)
        return -1;
    o->has_steps = 1;
    return 0;
}

int
rd_show_main(int argc, char **argv)
{
    struct show_opts o;
    char **files = calloc((size_t)argc, sizeof(*files));
    int nfiles = 0, i, r, missing = 0;
    const char *v;

    memset(&o, 0, sizeof(o));
    if (files == NULL)
        return RD_EXIT_DATA;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(show_help, stdout);
            free(files);
            return 0;
        }
        if (strcmp(a, "--source") == 0) {
            o.source = 1;
        }
        else if ((v = rd_option_value(argc, argv, &i, "--log-level",
                                      &missing))) {
            o.level = rd_parse_level(v);
            if (o.level < 0) {
                free(files);
                return rd_usage("invalid --log-level value '%s': choose one "
                                "of DEBUG, INFO, WARNING, ERROR",
                                v);
            }
        }
        else if ((v = rd_option_value(argc, argv, &i, "--variable-mode",
                                      &missing))) {
            o.mode = rd_parse_mode(v);
            if (o.mode < 0) {
                free(files);
                return rd_usage("invalid --variable-mode value '%s': choose "
                                "one of ALL, CHANGED, NONE",
                                v);
            }
        }
        else if ((v = rd_option_value(argc, argv, &i, "--function",
                                      &missing))) {
            if (o.nfuncs < SHOW_MAX_NAMES)
                o.funcs[o.nfuncs++] = v;
        }
        else if ((v = rd_option_value(argc, argv, &i, "--file", &missing))) {
            if (o.nglobs < SHOW_MAX_NAMES)
                o.globs[o.nglobs++] = v;
        }
        else if ((v = rd_option_value(argc, argv, &i, "--thread", &missing))) {
            if (o.nthreads < SHOW_MAX_NAMES)
                o.threads[o.nthreads++] = v;
        }
        else if ((v = rd_option_value(argc, argv, &i, "--steps", &missing))) {
            if (show_parse_steps(&o, v) != 0) {
                free(files);
                return rd_usage("invalid --steps value '%s': use A:B, A: or "
                                ":B with step numbers, A <= B",
                                v);
            }
        }
        else if (missing) {
            free(files);
            return rd_usage("%s needs a value", a);
        }
        else if (a[0] == '-' && a[1] != '\0') {
            free(files);
            return rd_usage("unknown option %s for show", a);
        }
        else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0) {
        free(files);
        return rd_usage("show needs a FILE: a .steps file, e.g. "
                        ".tracer/tracer.steps");
    }
    r = rd_each_file(files, nfiles, o.level, o.mode, show_record, &o);
    for (i = 0; i < (int)show_nsrcs; i++)
        show_src_free(&show_srcs[i]);
    free(files);
    return r;
}
