/*
 * The text log format (docs/LOG-FORMAT.md sections 2 to 9) and the variable
 * state both sides keep.  The agent renders console output with
 * st_record_format_step(); the collector renders file output with the same
 * function, so the two-way destinations write identical bytes.
 */
#ifndef STEPTRACE_COMMON_RECORD_H
#define STEPTRACE_COMMON_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"
#include "steptrace/wire.h"

/* How a variable line is written. */
enum st_var_change {
    ST_VAR_PLAIN = 0, /* ALL mode: "name: type :: value" */
    ST_VAR_NEW,       /* "[NEW] name: type :: value" */
    ST_VAR_CHANGED,   /* "[CHANGED] name: type :: old -> value" */
    ST_VAR_DELETED    /* "[DELETED] name" */
};

/* One variable line.  All strings borrowed, already escaped and cut. */
struct st_var_view {
    struct st_str name;
    struct st_str type;
    struct st_str value;
    struct st_str old; /* Only for ST_VAR_CHANGED. */
    int change;        /* enum st_var_change */
};

/* One location line: "<file>::<func> -- line <line>". */
struct st_loc_view {
    struct st_str file;
    struct st_str func;
    uint32_t line;
};

/* Everything one record shows.  Borrowed throughout. */
struct st_step_view {
    int event;            /* enum st_event: ST_EVENT_STEP for a
                             line step. */
    struct st_str detail; /* Event text (see below). */
    uint64_t step;
    uint64_t runtime_ns;
    struct st_str thread;           /* p == NULL: no "| thread" suffix. */
    const struct st_loc_view *locs; /* Outermost first; current last. */
    size_t nlocs;
    int var_mode; /* enum st_varmode */
    const struct st_var_view *globals;
    size_t nglobals;
    const struct st_var_view *locals;
    size_t nlocals;
};

/*
 * Appends the text of one record to `out`, byte for byte as docs/LOG-FORMAT.md
 * sections 2 to 8 give it: header ("Step N" for a line step; "Event",
 * unnumbered, for an event), Runtime (ms, 4 decimals), location lines, a blank
 * line, then for a line step the Global and Local sections (each omitted when
 * empty; the "changes" headers in CHANGED mode; none in NONE mode), or for an
 * event one line and a blank line:
 *   ST_EVENT_CALL        "Call: <func>"
 *   ST_EVENT_RETURN      "Return: <func> -> <detail>"
 *   ST_EVENT_RETURN_EXC  "Return: <func> (raised)"
 *   ST_EVENT_EXCEPTION   "Exception: <detail>"   (detail "Type: message")
 * where <func> is the function of the last location line.
 * @return 0 or ST_ENOMEM.
 */
int st_record_format_step(struct st_buf *out, const struct st_step_view *v);

/* Appends "Runtime: %.4f ms" for a duration in ns, without a newline. */
int st_record_format_runtime(struct st_buf *out, uint64_t ns);

/* Appends a duration in ns as milliseconds with 4 decimals ("0.0841"),
 * rounded half up to 0.1 us. */
int st_record_put_ms(struct st_buf *out, uint64_t ns);

/*
 * Appends one async record (docs/LOG-FORMAT.md section 9):
 *   "--------------------- Async Step <step> ---------------------\n"
 *   "Time: <ms> ms | CORO|AWAIT|TASK\n" <body> "\n"
 * where `body` is the record's lines, each ending with a newline (for
 * example "⏳ AWAIT START: fetch\n   File: /a.py:15\n").
 * @return 0 or ST_ENOMEM.
 */
int st_record_format_async(struct st_buf *out, uint64_t step, uint64_t time_ns,
                           int kind, struct st_str body);

/*
 * Appends `s` to `out` with newlines and control characters escaped
 * (\n, \r, \t, \xNN) so that one value is one line.
 */
int st_record_escape(struct st_buf *out, const char *s, size_t n);

/*
 * Text safe for a log line through *out: `p` itself when it holds no
 * control characters ("" when n is 0), else an escaped copy in `scratch`
 * (emptied first), valid until its next use.  @return 0 or ST_ENOMEM
 * (scratch is then closed: its oom flag is sticky).
 */
int st_record_escaped(struct st_buf *scratch, const char *p, size_t n,
                      const char **out, size_t *outn);

/*
 * steptrace's own lines (docs/LOG-FORMAT.md section 10), which the
 * collector writes and the step store's reader renders alike.  Each
 * appends one line *without* its newline and a NUL after it (not counted
 * in out->len), so that out->data is a C string.  @return 0 or ST_ENOMEM.
 */
/* "[steptrace] TEXT", or with at_step "[steptrace] step N TEXT" (NOTE). */
int st_record_note_line(struct st_buf *out, int at_step, uint64_t step,
                        const char *text, size_t n);
/* "[steptrace] N records lost in this region" (REGION_END). */
int st_record_lost_line(struct st_buf *out, uint64_t lost);
/* The process ended with the region open (PROTOCOL.md section 3, "The
 * end"): kind ST_RING_END_SIGNAL (signal sig), ST_RING_END_EXEC (detail:
 * the program, escaped), else vanished; `steps` the region's count. */
int st_record_ended_line(struct st_buf *out, int kind, int sig,
                         const char *detail, size_t dn, uint64_t steps);
/* The line before it when the process ended inside a record. */
extern const char st_record_cut_line[];

/*
 * Variable state of one scope (a frame's locals or a module's globals), in
 * first-seen order.  The agent and the collector both keep one per scope
 * and apply the same diffs to it, so both render the same ALL-mode lines.
 */
struct st_varent {
    uint32_t name_sid;
    uint32_t type_sid;
    char *value; /* Owned. */
    size_t value_len;
};

struct st_varstate {
    struct st_varent *ents; /* Owned array. */
    size_t n;
    size_t cap;
};

void st_varstate_init(struct st_varstate *s);
void st_varstate_close(struct st_varstate *s);

/* Returns the index of name_sid, or -1. */
long st_varstate_find(const struct st_varstate *s, uint32_t name_sid);

/*
 * Sets name_sid to (type_sid, value).  When the name existed, its old value
 * is moved to *old_out (the caller frees it with free()) and 1 is returned;
 * a new name is appended and 0 returned.  old_out may be NULL.
 * @return 0 (new), 1 (changed) or ST_ENOMEM.
 */
int st_varstate_set(struct st_varstate *s, uint32_t name_sid,
                    uint32_t type_sid, const char *value, size_t n,
                    char **old_out, size_t *old_len_out);

/* Removes name_sid, keeping the order of the rest.  @return 1 or 0. */
int st_varstate_del(struct st_varstate *s, uint32_t name_sid);

#endif /* STEPTRACE_COMMON_RECORD_H */
