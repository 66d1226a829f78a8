/*
 * Control clients (control.c; PROTOCOL.md "Control connections"): STATUS
 * answered with the counters, and TAIL subscribers that get every record
 * as it is written.  A subscriber is a connection of kind ST_CONN_TAIL;
 * its frame being filled and its queue live in its struct st_conn.
 */
#ifndef STEPTRACE_DAEMON_CONTROL_H
#define STEPTRACE_DAEMON_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include "steptrace/wire.h"

struct st_conn;
struct st_server;

/* STATUS: replies with STATS.  @return 0 or ST_ENOMEM. */
int st__control_status(struct st_conn *c, const struct st_msg *m);
/* TAIL: makes c a subscriber.  @return 0 or ST_E*. */
int st__control_tail(struct st_conn *c, const struct st_msg *m);
/* A record (or note) was rendered for the file at `path` (NULL: not
 * claimed yet) of process `pid`: copies it to the matching subscribers.
 * Cheap when there are none. */
void st__control_publish(struct st_server *srv, pid_t pid, const char *path,
                         const char *text, size_t n);
/* A subscriber is closing: forget it. */
void st__control_forget(struct st_conn *c);

#endif /* STEPTRACE_DAEMON_CONTROL_H */
