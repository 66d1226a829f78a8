/*
 * Replaying a step store (docs/STEP-STORE.md): the messages of a .steps
 * file applied, one at a time, to tables like the collector's (strings,
 * threads, frames, scopes, regions), as the collector applied them when
 * it wrote the text log; each record is then rendered at the *view's*
 * level and variable mode, byte for byte as a text run with those
 * settings writes it (st_record_format_step, the collector's formatter).
 *
 * Used by the readers (client/reader: show, query, export, stats) and the
 * tests.  Ids come from a file that may be hostile: an undefined id is an
 * error of that record (ST_ESTATE / ST_ENOSTR), which the caller reports
 * and skips; memory grows with the live entries, never with an id.
 * Single-threaded; one struct st_replay per file read.
 */
#ifndef STEPTRACE_COMMON_REPLAY_H
#define STEPTRACE_COMMON_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"
#include "steptrace/idmap.h"
#include "steptrace/record.h"
#include "steptrace/wire.h"

struct st_rp_string {
    size_t n;
    char p[]; /* n bytes, escaped, plus a NUL. */
};

struct st_rp_thread {
    uint32_t name_sid;
    uint64_t carry_ns; /* Runtime of hidden records (daemon/step.c). */
    uint64_t clock_ns; /* Sum of the runtimes of its records: the
                          thread's program time (export, stats). */
};

struct st_rp_scope {
    uint32_t id;
    struct st_varstate vars;
};

struct st_rp_frame {
    uint32_t id;
    uint32_t tid;
    uint32_t parent_id;
    uint32_t flags; /* ST_FRAME_* */
    uint32_t region_id;
    uint32_t last_line;
    const struct st_rp_string *file; /* Borrowed from the strings. */
    const struct st_rp_string *func;
    struct st_rp_scope *scope; /* Borrowed from the scopes. */
    struct st_varstate locals;
};

struct st_rp_region {
    uint32_t id;
    uint32_t tracer_id;
    uint32_t level;    /* As recorded. */
    uint32_t var_mode; /* As recorded. */
    uint32_t formats;
    /* As the view's level counts them. */
    uint64_t steps;
    uint64_t async_steps;
    uint64_t lost;
    uint32_t first_tid;
    int seen_tid;
    int multi_thread;
};

/* The file's STORE header (the latest one read). */
struct st_rp_header {
    int seen;
    uint32_t version;
    uint64_t pid;
    char *program; /* Owned, NUL-terminated (raw bytes). */
    char *argv;    /* Owned: arguments, each ending in NUL. */
    size_t argv_len;
    uint64_t start_ns;
    char *host; /* Owned. */
    uint32_t tracer_id;
};

/* What the message just applied was. */
enum st_rp_what {
    ST_RP_NONE = 0, /* A definition or state: nothing to show. */
    ST_RP_STEP,     /* STEP or LINE. */
    ST_RP_EVENT,    /* CALL, RETURN, EXCEPTION. */
    ST_RP_ASYNC,
    ST_RP_LINES /* steptrace's own lines (NOTE, losses, the end). */
};

/* The record just applied, for the caller (valid until the next apply). */
struct st_rp_record {
    int what;  /* enum st_rp_what */
    int shown; /* A text run at the view's level writes it. */
    const struct st_msg *m;
    struct st_rp_region *rg; /* NULL for ST_RP_NONE. */
    struct st_rp_frame *f;   /* STEP and EVENT only. */
    uint64_t step;           /* Its number (the last step's for an event;
                                the async counter for ASYNC). */
    uint64_t runtime_ns;     /* Shown: with hidden records' runtimes. */
    uint64_t clock_ns;       /* The thread's program time at its end. */
    int event;               /* enum st_event (ST_EVENT_STEP for steps). */
    /* The record's diffs (STEP): names of the changed variables. */
    const struct st_wire_var *gdiff;
    size_t ngdiff;
    const struct st_wire_var *ldiff;
    size_t nldiff;
};

struct st_replay {
    int level;    /* The view: enum st_level ... */
    int var_mode; /* ... and enum st_varmode; 0: each region's own. */
    /* Set (before the first STEP or VARS) by a caller that reads no
     * variables and renders none (`query --count` of an expression
     * without variables, a NONE view): diffs are checked but not
     * applied, so states stay empty and CHANGED and ALL renderings
     * show no variables (rp->rec still names the diff).  0 after
     * init. */
    int skip_vars;
    struct st_idmap strings; /* sid -> struct st_rp_string, owned. */
    /* The same for low sids, indexed directly (borrowed entries; NULL:
     * undefined); grown only while within twice the strings defined plus
     * 1024, so memory follows the strings, never an id's size. */
    const struct st_rp_string **dense;
    size_t dense_cap;
    struct st_idmap threads; /* tid -> struct st_rp_thread, owned. */
    struct st_idmap frames;  /* id -> struct st_rp_frame, owned. */
    struct st_idmap scopes;  /* id -> struct st_rp_scope, owned. */
    struct st_idmap regions; /* id -> struct st_rp_region, owned. */
    struct st_rp_header hdr;
    struct st_rp_record rec; /* The last record applied. */
    /* Scratch, owned. */
    char **dead; /* Values replaced by the last record, freed at the
                    next apply (CHANGED views point into them). */
    size_t ndead, deadcap;
    struct st_var_view *gviews, *lviews;
    size_t gcap, lcap, ngviews, nlviews;
    struct st_loc_view *locs;
    size_t loccap;
    struct st_buf esc;
    struct st_buf lines; /* ST_RP_LINES: the text. */
    char detail[160];    /* What the last error was about. */
};

/* A replay viewed at `level` and `var_mode` (0: as recorded). */
void st_replay_init(struct st_replay *rp, int level, int var_mode);
void st_replay_close(struct st_replay *rp);
/*
 * Applies one message of a store (any type a store holds) and describes
 * it in rp->rec.  @return 0; ST_ENOMEM; or ST_ESTATE / ST_ENOSTR /
 * ST_EBADMSG for a record that names what is not defined or has no place
 * in a store (rp->detail says which; the replay goes on without it).
 */
int st_replay_apply(struct st_replay *rp, const struct st_msg *m);
/*
 * Appends the text of rp->rec (when shown) as the text log has it: a
 * step or event record, an async record, or steptrace's own lines.
 * @return 0 or ST_ENOMEM.
 */
int st_replay_render(struct st_replay *rp, struct st_buf *out);
/* @return the string for sid, or NULL. */
const struct st_rp_string *st_replay_str(const struct st_replay *rp,
                                         uint32_t sid);
/* The thread's name (its THREAD string, else its number in tmp). */
struct st_str st_replay_thread_name(const struct st_replay *rp, uint32_t tid,
                                    char *tmp, size_t tmplen);
/* The variable mode records of region rg are shown in. */
int st_replay_mode(const struct st_replay *rp, const struct st_rp_region *rg);

#endif /* STEPTRACE_COMMON_REPLAY_H */
