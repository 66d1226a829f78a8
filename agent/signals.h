/*
 * A note in the ring's header when a signal ends the process (signals.c):
 * the collector writes it into the log once the connection ends.  The
 * handlers are installed once per process and never removed; the ring
 * they write to is borrowed from outbox.c, which says when it changes.
 *
 * Callers: collector.c (installs at the first connection), outbox.c
 * (attaches and detaches the ring).
 */
#ifndef STEPTRACE_AGENT_SIGNALS_H
#define STEPTRACE_AGENT_SIGNALS_H

struct st_ring_hdr;

/* Installs the handlers (once per process; GIL held). */
void st__signals_install(void);

/* The ring header the notes go to (NULL: none), owned by the calling
 * process; borrowed until the next call. */
void st__signals_ring(struct st_ring_hdr *h);

#endif /* STEPTRACE_AGENT_SIGNALS_H */
