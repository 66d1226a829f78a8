/*
 * Blocked connections going on (resume.c): input.c and ring.c block a
 * connection (c->blocked) when memory is short or a frame waits for
 * room, ack.c when too many FLUSHes wait; the server's resume handle
 * lets them go on in turn once the cause is gone, and resumes their
 * input (input.c).
 */
#ifndef STEPTRACE_DAEMON_RESUME_H
#define STEPTRACE_DAEMON_RESUME_H

struct st_conn;
struct st_server;

/* c became blocked for pressure or memory: counted (pauses), and its
 * records go to the writers now, whatever their size. */
void st__resume_paused(struct st_server *srv, struct st_conn *c);
/* Blocks may be lifted (memory was given back, or a FLUSH block lifted):
 * schedules resumes, one connection per loop iteration. */
void st__resume_schedule(struct st_server *srv);

#endif /* STEPTRACE_DAEMON_RESUME_H */
