/*
 * Per-connection protocol state (PROTOCOL.md "Semantics"): the string,
 * thread, frame, scope, region and tracer tables of a struct st_conn,
 * and the application of each decoded message to them (input.c calls
 * st__session_apply for every message; records go on to step.c, region
 * messages to region.c).  The objects defined here are owned by their
 * connection's tables and freed by st__session_close; step.c reads them
 * to render records.
 */
#ifndef STEPTRACE_DAEMON_SESSION_H
#define STEPTRACE_DAEMON_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/record.h"
#include "steptrace/wire.h"

struct st_conn;
struct st_scratch;

/* A STR: escaped so that control characters never reach a log line. */
struct st_string {
    size_t n;
    char p[]; /* n bytes plus a NUL. */
};

struct st_thread {
    uint32_t name_sid;
    /* Runtime of its records the level hides (a step store's agent
     * sends every event), added to its next record shown. */
    uint64_t carry_ns;
};

/* The globals of one module, shared by every frame that names it. */
struct st_scope {
    uint32_t id;
    struct st_varstate vars;
};

struct st_frame {
    uint32_t id;
    uint32_t tid;
    uint32_t parent_id;
    uint32_t file_sid;
    uint32_t func_sid;
    uint32_t flags;     /* ST_FRAME_*. */
    uint32_t region_id; /* Where its LINE messages go. */
    uint32_t last_line; /* Line of its latest STEP (DEBUG ancestry). */
    /* Borrowed from conn->strings, looked up once at FRAME (strings are
     * never redefined and live as long as the connection). */
    const struct st_string *file;
    const struct st_string *func;
    struct st_scope *scope; /* Borrowed from conn->scopes. */
    struct st_varstate locals;
};

/* Creates the id tables of a new connection; pairs with
 * st__session_close (its close callback), which frees every object in
 * them and releases the sinks still held. */
void st__session_init(struct st_conn *c);
void st__session_close(struct st_conn *c);
/* @return the string defined for sid, or NULL (also for sid 0). */
const struct st_string *st__session_str(const struct st_conn *c, uint32_t sid);
/*
 * Returns text safe for a log line through *out: `p` itself when it holds
 * no control characters, else an escaped copy in the scratch buffer,
 * valid until the next call.  @return 0 or ST_ENOMEM.
 */
int st__session_escape(struct st_scratch *sc, const char *p, size_t n,
                       const char **out, size_t *outn);
/*
 * Applies one decoded message to the connection state.
 * @return 0, or ST_E* (protocol error: the caller closes the connection
 *         and logs c->detail).
 */
int st__session_apply(struct st_conn *c, const struct st_msg *m);

#endif /* STEPTRACE_DAEMON_SESSION_H */
