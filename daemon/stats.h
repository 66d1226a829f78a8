/*
 * The collector's counters (steptrace daemon status): one X-macro list,
 * from which struct st_stats and the STATS reply (control.c) are made.
 *
 * The one struct st_stats lives in the server (struct st_server.stats);
 * every module that counts something bumps its field directly, on the
 * loop thread.  The sink layer gets a pointer to it (struct
 * st_sink_env.stats), so that it can be tested alone with a struct of
 * its own.
 */
#ifndef STEPTRACE_DAEMON_STATS_H
#define STEPTRACE_DAEMON_STATS_H

#include <stdint.h>

/* Every counter, with its name on the wire (STATS) and its meaning. */
#define ST_STATS_MAP(XX)                                                      \
    XX(connections, "connections accepted (agents and control clients)")      \
    XX(refused, "peers refused: uid not allowed")                             \
    XX(protocol_errors, "connections closed for a bad frame or message")      \
    XX(bytes_in, "bytes read from clients")                                   \
    XX(records_in, "records received (steps, events, async records)")         \
    XX(records_rendered, "records rendered for a log file")                   \
    XX(records_written, "records written to a log file")                      \
    XX(bytes_written, "bytes written to log files")                           \
    XX(lost_agent, "records the agents reported lost (LOST)")                 \
    XX(dropped_write, "records lost: a write failed")                         \
    XX(dropped_open, "records lost: the log file could not be opened")        \
    XX(dropped_nomem, "records lost: out of memory while rendering")          \
    XX(dropped_tail, "records a slow tail subscriber did not get")            \
    XX(rotations, "log files rotated")                                        \
    XX(rotate_errors, "rotations that failed (the file kept growing)")        \
    XX(write_errors, "failed opens and writes of log files")                  \
    XX(pauses, "times a connection was paused by memory pressure")            \
    XX(ended_by_signal, "processes that died of a signal in a region")        \
    XX(ended_by_exec, "processes that called exec in a region")               \
    XX(vanished, "processes gone without ending their region (SIGKILL)")      \
    XX(lost_vanished, "records cut short when a process ended")               \
    XX(pending_peak, "most pending bytes seen")

struct st_stats {
#define XX(name, doc) uint64_t name;
    ST_STATS_MAP(XX)
#undef XX
};

#endif /* STEPTRACE_DAEMON_STATS_H */
