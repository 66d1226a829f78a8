/*
 * The expression language of `steptrace query` (docs/STEP-STORE.md
 * section 4): an expression is parsed once into a small tree, then
 * evaluated on each shown step of a replay (rp->rec, ST_RP_STEP) against
 * the step's variable state after its diff, its diff, and its location.
 *
 * Variable names are compared as string ids, never as text per step: the
 * ids a name has in a file are learnt as the file's STR messages are
 * applied (rd_qexpr_on_str) and forgotten when the next file starts
 * (rd_qexpr_reset), since each file has a string table of its own.
 *
 * Used by client/reader/query.c only.  Single-threaded.
 */
#ifndef STEPTRACE_READER_QUERY_EXPR_H
#define STEPTRACE_READER_QUERY_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/replay.h"

struct rd_qexpr;

/* Why an expression did not parse: `msg` ("expected a value after
 * '=='"), a hint ("use '==' to compare", or empty), and the place it
 * points at: a byte offset in the expression and its column (from 1,
 * in characters). */
struct rd_qexpr_error {
    char msg[160];
    char hint[96];
    size_t pos;
    size_t column;
};

/*
 * Parses `src` (NUL-terminated) into *out, which the caller frees with
 * rd_qexpr_free.  @return 0; -EINVAL for a syntax error, with *err
 * filled (nothing to free); or ST_ENOMEM.
 */
int rd_qexpr_parse(const char *src, struct rd_qexpr **out,
                   struct rd_qexpr_error *err);
void rd_qexpr_free(struct rd_qexpr *e);

/* Does the expression read variables (a comparison of one, changed())? */
int rd_qexpr_uses_vars(const struct rd_qexpr *e);

/* A new file starts: its string ids are its own. */
void rd_qexpr_reset(struct rd_qexpr *e);

/*
 * rp just applied an STR message defining `sid`: if its text is a name
 * the expression uses (or a numeric type's name), remember the id.
 * @return 0 or ST_ENOMEM.
 */
int rd_qexpr_on_str(struct rd_qexpr *e, const struct st_replay *rp,
                    uint32_t sid);

/* @return 1 when the expression holds on the step rp->rec (an
 * ST_RP_STEP record), else 0. */
int rd_qexpr_eval(struct rd_qexpr *e, const struct st_replay *rp);

#endif /* STEPTRACE_READER_QUERY_EXPR_H */
