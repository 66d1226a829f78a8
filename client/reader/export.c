/*
 * `steptrace export FILE... --format perfetto|jsonl [-o OUT]`
 * (docs/STEP-STORE.md section 5): the command line, the output file, and
 * the jsonl writer, one JSON object per line for every record of every
 * FILE.  The perfetto writer is perfetto.c (and perfetto_async.c).  Both
 * stream: what is kept is the replay's own state (the live variables and
 * frames) and, for perfetto, the open slices; output goes through rd_out
 * in pieces.
 */
#include "reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export.h"
#include "json.h"
#include "steptrace/error.h"

static const char export_help[] =
    "usage: steptrace export FILE... --format perfetto|jsonl [-o OUT]\n"
    "\n"
    "Converts .steps files (written with --log-format steps or both) for\n"
    "other tools.  Every record is exported, whatever level the run was\n"
    "recorded at; each FILE (a rotated segment too) is read alone.\n"
    "\n"
    "options:\n"
    "  --format perfetto   Trace Event Format JSON: open it in\n"
    "                      https://ui.perfetto.dev (Open trace file) or\n"
    "                      chrome://tracing; a slice per call and per\n"
    "                      step, async slices for asyncio, instants for\n"
    "                      exceptions and steptrace's own lines\n"
    "  --format jsonl      one JSON object per line per step, event,\n"
    "                      async record and steptrace line, with the full\n"
    "                      variable state of each step\n"
    "  -o, --output OUT    write OUT (replaced when the export is done)\n"
    "                      instead of standard output\n";

enum { EXPORT_JSONL = 1, EXPORT_PERFETTO = 2 };

struct export_ctx {
    int format;
    struct rd_perfetto *perfetto; /* Owned, for EXPORT_PERFETTO. */
    struct st_buf esc;            /* Scratch, owned. */
    /* A one-entry cache of rd_export_depth: a run of steps of one
     * frame walks its ancestors once.  Valid while no frame was
     * defined or ended (gen counts those). */
    uint64_t gen, depth_gen;
    const struct st_rp_frame *depth_f;
    uint32_t depth;
};

/* ---- jsonl ---- */

/* The number of traced ancestors of f, as a DEBUG record's location
 * lines count them (common/replay.c replay_locations, the same bound). */
static uint32_t
export_depth(struct export_ctx *c, const struct st_replay *rp,
             const struct st_rp_frame *f)
{
    uint32_t n = 0, pid = f->parent_id;

    if (c->depth_f == f && c->depth_gen == c->gen)
        return c->depth;
    while (pid != 0 && n < 10000) {
        const struct st_rp_frame *p = st__idmap_get(&rp->frames, pid);

        if (p == NULL)
            break;
        n++;
        pid = p->parent_id;
    }
    c->depth_f = f;
    c->depth_gen = c->gen;
    c->depth = n;
    return n;
}

static void
export_str(struct st_buf *o, const struct st_rp_string *s)
{
    if (s == NULL)
        rd_json_raw(o, "\"\"", 2);
    else
        rd_json_str(o, s->p, s->n);
}

/* {"name": {"type": T, "value": V}, ...} of a variable state. */
static void
export_vars(struct st_buf *o, const struct st_replay *rp,
            const struct st_varstate *s)
{
    size_t i;

    rd_json_raw(o, "{", 1);
    for (i = 0; i < s->n; i++) {
        const struct st_varent *e = &s->ents[i];

        if (i > 0)
            rd_json_raw(o, ",", 1);
        export_str(o, st_replay_str(rp, e->name_sid));
        RD_JSON_LIT(o, ":{\"type\":");
        export_str(o, st_replay_str(rp, e->type_sid));
        RD_JSON_LIT(o, ",\"value\":");
        rd_json_str(o, e->value != NULL ? e->value : "", e->value_len);
        rd_json_raw(o, "}", 1);
    }
    rd_json_raw(o, "}", 1);
}

static void
export_kind(struct st_buf *o, const char *kind, const struct st_replay *rp)
{
    RD_JSON_LIT(o, "{\"kind\":\"");
    rd_json_raw(o, kind, strlen(kind));
    RD_JSON_LIT(o, "\",\"pid\":");
    rd_json_u64(o, rp->hdr.pid);
}

/* The keys a step and an event share: thread, step, location, times. */
static void
export_where(struct export_ctx *c, struct st_buf *o,
             const struct st_replay *rp, uint32_t lineno)
{
    const struct st_rp_record *rec = &rp->rec;
    const struct st_rp_frame *f = rec->f;
    char tmp[16];
    struct st_str t = st_replay_thread_name(rp, f->tid, tmp, sizeof(tmp));

    RD_JSON_LIT(o, ",\"thread\":");
    rd_json_str(o, t.p, t.n);
    RD_JSON_LIT(o, ",\"step\":");
    rd_json_u64(o, rec->step);
    RD_JSON_LIT(o, ",\"file\":");
    export_str(o, f->file);
    RD_JSON_LIT(o, ",\"function\":");
    export_str(o, f->func);
    RD_JSON_LIT(o, ",\"line\":");
    rd_json_u64(o, lineno);
    RD_JSON_LIT(o, ",\"runtime_ns\":");
    rd_json_u64(o, rec->runtime_ns);
    RD_JSON_LIT(o, ",\"clock_ns\":");
    rd_json_u64(o, rec->clock_ns);
    RD_JSON_LIT(o, ",\"depth\":");
    rd_json_u64(o, export_depth(c, rp, f));
}

static void
export_jsonl_step(struct export_ctx *c, struct st_buf *o,
                  const struct st_replay *rp)
{
    const struct st_rp_frame *f = rp->rec.f;
    static const struct st_varstate none;

    export_kind(o, "step", rp);
    export_where(c, o, rp, rp->rec.m->u.step.lineno);
    /* ALL mode's sections: a module's locals are its globals. */
    if (rp->rec.rg->var_mode != ST_VARMODE_NONE) {
        RD_JSON_LIT(o, ",\"locals\":");
        export_vars(o, rp, (f->flags & ST_FRAME_MODULE) ? &none : &f->locals);
        RD_JSON_LIT(o, ",\"globals\":");
        export_vars(o, rp, &f->scope->vars);
    }
    RD_JSON_LIT(o, "}\n");
}

static void
export_jsonl_event(struct export_ctx *c, struct st_buf *o,
                   const struct st_replay *rp)
{
    const struct st_msg *m = rp->rec.m;
    static const char *const kinds[] = {"step", "call", "return", "return",
                                        "exception"};
    int ev = rp->rec.event;

    export_kind(o, kinds[ev >= 0 && ev <= ST_EVENT_MAX_ ? ev : 0], rp);
    export_where(c, o, rp, m->u.event.lineno);
    /* The event line's text as the log escapes it. */
    c->esc.len = 0;
    st_record_escape(&c->esc, m->u.event.detail.p, m->u.event.detail.n);
    RD_JSON_LIT(o, ",\"detail\":");
    rd_json_str(o, c->esc.data != NULL ? c->esc.data : "", c->esc.len);
    if (ev == ST_EVENT_RETURN)
        RD_JSON_LIT(o, ",\"raised\":false");
    else if (ev == ST_EVENT_RETURN_EXC)
        RD_JSON_LIT(o, ",\"raised\":true");
    RD_JSON_LIT(o, "}\n");
}

static void
export_jsonl_async(struct st_buf *o, const struct st_replay *rp)
{
    static const char *const kinds[] = {"?", "CORO", "AWAIT", "TASK"};
    const struct st_msg *m = rp->rec.m;
    uint32_t k = m->u.async.kind;

    export_kind(o, "async", rp);
    RD_JSON_LIT(o, ",\"step\":");
    rd_json_u64(o, rp->rec.step);
    RD_JSON_LIT(o, ",\"async_kind\":");
    rd_json_cstr(o, kinds[k <= ST_ASYNC_MAX_ ? k : 0]);
    RD_JSON_LIT(o, ",\"time_ns\":");
    rd_json_u64(o, m->u.async.time_ns);
    RD_JSON_LIT(o, ",\"text\":");
    rd_json_str(o, m->u.async.body.p, m->u.async.body.n);
    RD_JSON_LIT(o, "}\n");
}

/* steptrace's own lines: one object each. */
static void
export_jsonl_lines(struct st_buf *o, const struct st_replay *rp)
{
    const char *p = rp->lines.data, *end = p + rp->lines.len, *nl;

    while (p != NULL && p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            nl = end;
        export_kind(o, "steptrace", rp);
        RD_JSON_LIT(o, ",\"text\":");
        rd_json_str(o, p, (size_t)(nl - p));
        RD_JSON_LIT(o, "}\n");
        p = nl + 1;
    }
}

static int
export_record(struct st_replay *rp, const char *file, void *ctx)
{
    struct export_ctx *c = ctx;
    const struct st_rp_record *rec = &rp->rec;

    if (rec->what == ST_RP_NONE && rec->m != NULL &&
        (rec->m->type == ST_MSG_FRAME || rec->m->type == ST_MSG_FRAME_END))
        c->gen++;
    if (c->format == EXPORT_PERFETTO) {
        if (rd_perfetto_record(c->perfetto, rp, file) != 0)
            return -1;
        return rd_out_maybe_flush();
    }
    if (!rec->shown)
        return 0;
    switch (rec->what) {
    case ST_RP_STEP: export_jsonl_step(c, &rd_out, rp); break;
    case ST_RP_EVENT: export_jsonl_event(c, &rd_out, rp); break;
    case ST_RP_ASYNC: export_jsonl_async(&rd_out, rp); break;
    case ST_RP_LINES: export_jsonl_lines(&rd_out, rp); break;
    default: break;
    }
    return rd_out_maybe_flush();
}

/* ---- the command ---- */

/*
 * Points standard output at a new file beside `path` (*tmp, owned, to
 * be renamed over path when done), so that an export that fails never
 * leaves half a file under the name asked for.  @return 0 or
 * RD_EXIT_DATA (said on stderr).
 */
static int
export_open_output(const char *path, char **tmp)
{
    size_t n = strlen(path);
    mode_t mask;
    int fd;

    *tmp = malloc(n + sizeof(".XXXXXX"));
    if (*tmp == NULL)
        return RD_EXIT_DATA;
    memcpy(*tmp, path, n);
    memcpy(*tmp + n, ".XXXXXX", sizeof(".XXXXXX"));
    fd = mkstemp(*tmp);
    if (fd < 0) {
        rd_warn("cannot write %s: %s", path, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return RD_EXIT_DATA;
    }
    /* mkstemp makes it 0600: give it a new file's usual mode. */
    mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || dup2(fd, STDOUT_FILENO) < 0) {
        rd_warn("cannot write %s: %s", path, strerror(errno));
        close(fd);
        unlink(*tmp);
        free(*tmp);
        *tmp = NULL;
        return RD_EXIT_DATA;
    }
    close(fd);
    return 0;
}

/* Writes what is buffered and renames the file into place; @return the
 * status, given the export's own. */
static int
export_close_output(const char *path, char *tmp, int status)
{
    if (rd_out_flush() != 0 && status == 0)
        status = RD_EXIT_DATA;
    if (status < 0) {
        unlink(tmp);
    }
    else if (rename(tmp, path) != 0) {
        rd_warn("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        status = RD_EXIT_DATA;
    }
    free(tmp);
    return status;
}

static int
export_parse_format(const char *v)
{
    if (strcmp(v, "perfetto") == 0)
        return EXPORT_PERFETTO;
    if (strcmp(v, "jsonl") == 0)
        return EXPORT_JSONL;
    return -1;
}

int
rd_export_main(int argc, char **argv)
{
    struct export_ctx c;
    char **files = calloc((size_t)argc, sizeof(*files));
    const char *out = NULL, *v;
    char *tmp = NULL;
    int nfiles = 0, i, r, missing = 0;

    memset(&c, 0, sizeof(c));
    if (files == NULL)
        return RD_EXIT_DATA;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(export_help, stdout);
            free(files);
            return 0;
        }
        if ((v = rd_option_value(argc, argv, &i, "--format", &missing))) {
            c.format = export_parse_format(v);
            if (c.format < 0) {
                free(files);
                return rd_usage("invalid --format value '%s': choose one of "
                                "perfetto, jsonl",
                                v);
            }
        }
        else if ((v = rd_option_value(argc, argv, &i, "--output", &missing)) ||
                 (v = rd_option_value(argc, argv, &i, "-o", &missing))) {
            out = v;
        }
        else if (missing) {
            free(files);
            return rd_usage("%s needs a value", a);
        }
        else if (a[0] == '-' && a[1] != '\0') {
            free(files);
            return rd_usage("unknown option %s for export", a);
        }
        else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0 || c.format == 0) {
        free(files);
        return rd_usage(nfiles == 0 ? "export needs a FILE: a .steps file, "
                                      "e.g. .tracer/tracer.steps"
                                    : "export needs --format perfetto or "
                                      "--format jsonl");
    }
    if (out != NULL && strcmp(out, "-") == 0)
        out = NULL;
    if (out != NULL && export_open_output(out, &tmp) != 0) {
        free(files);
        return RD_EXIT_DATA;
    }
    st_buf_init(&c.esc);
    r = 0;
    if (c.format == EXPORT_PERFETTO && rd_perfetto_new(&c.perfetto) != 0)
        r = -1;
    if (r == 0)
        r = rd_each_file(files, nfiles, ST_LEVEL_DEBUG, 0, export_record, &c);
    if (c.perfetto != NULL) {
        if (r >= 0)
            rd_perfetto_finish(c.perfetto);
        rd_perfetto_free(c.perfetto);
    }
    st_buf_close(&c.esc);
    free(files);
    if (tmp != NULL)
        r = export_close_output(out, tmp, r);
    return r;
}
