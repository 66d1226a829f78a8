/*
 * The collector connection as a whole (collector.c): connecting (the
 * socket and HELLO of sender.c, the ring of outbox.c), the orderly end,
 * what a forked child starts with, the count of records lost, and
 * reconnecting through the package's hook when the connection is gone.
 *
 * collector.c owns the reconnect hook (a Python callable) and the loss
 * accounting's "settled" state; it drives sender.c and outbox.c and is
 * called by module.c (connect, close), region.c (reconnection, losses,
 * fork) and emit.c (losses).  GIL held.
 */
#ifndef STEPTRACE_AGENT_COLLECTOR_H
#define STEPTRACE_AGENT_COLLECTOR_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Connects to the collector at `path` (after closing any connection),
 * exchanges HELLO, which brings the ring (attached to the outbox), starts
 * the watcher thread and installs the signal handlers and the fork
 * handler (once).  On failure writes a one-line reason into err.
 * @return 0 or a negative errno / ST_E* code.
 */
int st__collector_connect(const char *path, const char *program, char *err,
                          size_t errlen);

/* Closes the connection as an orderly end (at exit, or before another
 * connection); the collector applies what the ring holds. */
void st__collector_close(void);
/* The default ST_FORMAT_* bits the collector connected last said in its
 * HELLO (its config's log_format; 0 before any connection). */
uint32_t st__collector_formats(void);

/* Records lost so far: connections gone (those committed and not
 * confirmed), the drop policy. */
uint64_t st__collector_dropped(void);

/* The Python callable that reconnects (NULL: none); a new reference is
 * kept. */
void st__collector_set_reconnect_hook(PyObject *hook);

/* May a reconnection be tried now (a hook is set, and none was tried in
 * the last second, or `now`)?  When so, the next one may not be tried for
 * a second. */
int st__collector_reconnect_due(int now);

/* Calls the reconnect hook (it connects to STEPTRACE_SOCKET again or
 * starts a private collector).  Never raises.  @return 1 when connected
 * afterwards. */
int st__collector_reconnect(void);

/* In a forked child, from the package's after-fork hook: unless traced
 * code has connected already since the fork, what is staged is the
 * parent's (thrown away) and the child may reconnect at once.
 * @return 1 when the child has its own connection already. */
int st__collector_after_fork_child(void);

#endif /* STEPTRACE_AGENT_COLLECTOR_H */
