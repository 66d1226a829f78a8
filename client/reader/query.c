/*
 * `steptrace query FILE... EXPR [options]`: the steps of step stores
 * where an expression holds (query_expr.h, docs/STEP-STORE.md section 4),
 * printed byte for byte as `steptrace show` prints them at the same level
 * and variable mode (st_replay_render), or counted.
 *
 * The expression is evaluated on every step the view level shows, on the
 * state after the step's diff; a step is rendered only when it matches,
 * so the scan costs the replay and a walk of the expression.
 */
#include "reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "query_expr.h"
#include "steptrace/error.h"

static const char query_help[] =
    "usage: steptrace query FILE... EXPR [options]\n"
    "\n"
    "Prints the steps of .steps files (written with --log-format steps or\n"
    "both) where EXPR holds, as `steptrace show` prints them.  EXPR is the\n"
    "last argument that is not an option (put it after -- when it starts\n"
    "with a - that is not a number's).\n"
    "\n"
    "EXPR:\n"
    "  x == 3, x != 3, x < 3, x <= 3, x > 3, x >= 3\n"
    "                         a variable (the frame's locals, then its\n"
    "                         module's globals) against a number (int,\n"
    "                         float and bool variables; True/False are 1/0)\n"
    "                         or a string (the value's text as the log\n"
    "                         shows it); false when x is not in scope\n"
    "  changed(x)             the step sets or deletes x\n"
    "  func, file, line, thread, pid, step\n"
    "                         the step's function, file, line, thread (its\n"
    "                         name, or its number against a number), the\n"
    "                         process id and the step's number; a field\n"
    "                         hides a variable of its name: var(line)\n"
    "                         reaches the variable\n"
    "  and, or, not, ( )      'not' binds tightest, then 'and', then 'or'\n"
    "  e.g. 'func == \"aggregate\" and changed(by_city)'\n"
    "       'total < 0 or (line >= 40 and not changed(rows))'\n"
    "\n"
    "options:\n"
    "  --first                print the first matching step and stop\n"
    "  --count                print only the number of matching steps\n"
    "  --limit N              stop after N matching steps\n"
    "  --log-level LEVEL      DEBUG, INFO or WARNING: the level the steps\n"
    "                         are numbered and printed at (default: as\n"
    "                         recorded)\n"
    "  --variable-mode MODE   ALL, CHANGED or NONE: the variables printed\n"
    "                         (default: as recorded); EXPR sees every\n"
    "                         variable whatever the mode\n"
    "\n"
    "A syntax error in EXPR is shown with a caret under it (status 2).\n";

struct query_opts {
    int level, mode;
    int count;
    uint64_t limit; /* 0: no limit. */
};

struct query_ctx {
    struct query_opts o;
    struct rd_qexpr *expr; /* Owned. */
    const char *file;      /* The file being read: its ids are its own. */
    uint64_t matches;
    uint64_t shown;  /* Steps evaluated. */
    uint64_t hidden; /* Steps the view's level does not show. */
    int skip_vars;   /* No variable is read or printed (replay.h). */
};

static int
query_record(struct st_replay *rp, const char *file, void *ctx)
{
    struct query_ctx *q = ctx;
    const struct st_rp_record *rec = &rp->rec;

    if (file != q->file) {
        /* A file's first record is its STORE header: no variable has
         * been applied yet. */
        rp->skip_vars = q->skip_vars;
        rd_qexpr_reset(q->expr);
        q->file = file;
    }
    if (rec->what != ST_RP_STEP) {
        if (rec->m->type == ST_MSG_STR &&
            rd_qexpr_on_str(q->expr, rp, rec->m->u.str.sid) != 0) {
            rd_warn("%s: out of memory", file);
            return -1;
        }
        return 0;
    }
    if (!rec->shown) {
        q->hidden++;
        return 0;
    }
    q->shown++;
    if (!rd_qexpr_eval(q->expr, rp))
        return 0;
    q->matches++;
    if (!q->o.count &&
        (st_replay_render(rp, &rd_out) != 0 || rd_out_maybe_flush() != 0))
        return -1;
    return q->o.limit != 0 && q->matches >= q->o.limit;
}

/*
 * A syntax error: the reason, the expression and a caret under the
 * place.  `last_is_file`: the expression names an existing file (the
 * arguments in the wrong order?).  @return RD_EXIT_USAGE.
 */
static int
query_syntax_error(const char *expr, const struct rd_qexpr_error *err,
                   int last_is_file)
{
    size_t i;

    if (err->hint[0] != '\0')
        rd_warn("query: %s at column %zu (%s)", err->msg, err->column,
                err->hint);
    else
        rd_warn("query: %s at column %zu", err->msg, err->column);
    fputs("  ", stderr);
    /* Control characters would move the caret: one space each. */
    for (i = 0; expr[i] != '\0'; i++)
        fputc((unsigned char)expr[i] < 0x20 ? ' ' : expr[i], stderr);
    fprintf(stderr, "\n  %*s^\n", (int)(err->column - 1), "");
    if (last_is_file)
        fputs("steptrace: the expression comes last: steptrace query "
              "FILE... EXPR\n",
              stderr);
    return RD_EXIT_USAGE;
}

/* One option at argv[*i] into o.  @return 0, 1 when it is no option of
 * query (a positional argument), or RD_EXIT_USAGE (reported). */
static int
query_option(struct query_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    int missing = 0;

    if (strcmp(a, "--first") == 0) {
        o->limit = 1;
    }
    else if (strcmp(a, "--count") == 0) {
        o->count = 1;
    }
    else if ((v = rd_option_value(argc, argv, i, "--limit", &missing))) {
        uint64_t n;

        if (rd_parse_count(v, &n) != 0 || n == 0)
            return rd_usage("invalid --limit value '%s': a number of steps, "
                            "1 or more",
                            v);
        /* --first wins over any limit. */
        if (o->limit != 1)
            o->limit = n;
    }
    else if ((v = rd_option_value(argc, argv, i, "--log-level", &missing))) {
        o->level = rd_parse_level(v);
        if (o->level < 0)
            return rd_usage("invalid --log-level value '%s': choose one of "
                            "DEBUG, INFO, WARNING",
                            v);
        if (o->level == ST_LEVEL_ERROR)
            return rd_usage("query looks at steps, and --log-level ERROR "
                            "shows none: choose DEBUG, INFO or WARNING");
    }
    else if ((v = rd_option_value(argc, argv, i, "--variable-mode",
                                  &missing))) {
        o->mode = rd_parse_mode(v);
        if (o->mode < 0)
            return rd_usage("invalid --variable-mode value '%s': choose one "
                            "of ALL, CHANGED, NONE",
                            v);
    }
    else if (missing) {
        return rd_usage("%s needs a value", a);
    }
    else if (a[0] == '-' && a[1] != '\0' &&
             !((a[1] >= '0' && a[1] <= '9') || a[1] == '.')) {
        /* "-1 < x" is an expression, not an option. */
        return rd_usage("unknown option %s for query (an EXPR that starts "
                        "with - goes after --)",
                        a);
    }
    else {
        return 1;
    }
    return 0;
}

/* Reads the files and prints what matched.  @return the exit status. */
static int
query_run(struct query_ctx *q, char **files, int nfiles)
{
    int r;

    /* Counting steps by their location, or printing them without
     * variables: the replay need not keep the variables' state, which is
     * most of its cost. */
    q->skip_vars = !rd_qexpr_uses_vars(q->expr) &&
                   (q->o.count || q->o.mode == ST_VARMODE_NONE);
    r = rd_each_file(files, nfiles, q->o.level, q->o.mode, query_record, q);

    if (r >= 0 && q->o.count &&
        (st_buf_put_u64(&rd_out, q->matches) != 0 ||
         st_buf_puts(&rd_out, "\n") != 0))
        r = -1;
    if (q->shown == 0 && q->hidden > 0)
        rd_warn("query: no step is shown at the level the files were "
                "recorded at (ERROR): pass --log-level INFO to query "
                "their steps");
    return r < 0 ? RD_EXIT_DATA : r;
}

int
rd_query_main(int argc, char **argv)
{
    struct query_ctx q;
    struct rd_qexpr_error err;
    char **pos = calloc((size_t)argc, sizeof(*pos));
    int npos = 0, i, r, dashdash = 0;

    memset(&q, 0, sizeof(q));
    if (pos == NULL)
        return RD_EXIT_DATA;
    for (i = 1; i < argc; i++) {
        if (!dashdash &&
            (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            fputs(query_help, stdout);
            free(pos);
            return 0;
        }
        if (!dashdash && strcmp(argv[i], "--") == 0) {
            dashdash = 1;
            continue;
        }
        r = dashdash ? 1 : query_option(&q.o, argc, argv, &i);
        if (r == 1)
            pos[npos++] = argv[i];
        else if (r != 0) {
            free(pos);
            return r;
        }
    }
    if (npos < 2) {
        free(pos);
        return rd_usage(npos == 0 ? "query needs FILE... and then EXPR, e.g. "
                                    "steptrace query .tracer/tracer.steps "
                                    "'x > 3'"
                                  : "query needs FILE... and then EXPR: "
                                    "name a .steps file and an expression");
    }
    r = rd_qexpr_parse(pos[npos - 1], &q.expr, &err);
    if (r == -EINVAL)
        r = query_syntax_error(pos[npos - 1], &err,
                               access(pos[npos - 1], F_OK) == 0);
    else if (r != 0)
        r = RD_EXIT_DATA;
    else
        r = query_run(&q, pos, npos - 1);
    rd_qexpr_free(q.expr);
    free(pos);
    return r;
}
