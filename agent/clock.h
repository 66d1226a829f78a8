/*
 * The agent's clocks (clock.c).  st__clock_now_ns() is CLOCK_MONOTONIC in
 * ns.  Runtimes are measured in ticks: TSC cycles where the TSC is
 * invariant (x86-64), else CLOCK_MONOTONIC ns; st__clock_calibrate() picks
 * one (once per process, before the first region) and the conversions
 * follow it.  No state is owned beyond the calibration; callable from any
 * thread, except st__clock_hook_ticks, which only the GIL holder touches.
 *
 * Callers: tracer.c (runtimes, the hook's entry), region.c (calibration),
 * outbox.c (FLUSH ages, waits), sender_wait.c (waits), stateprint.c and
 * vars.c (costs of walks and str()), async.c and sender.c (ns timestamps
 * and timeouts).
 */
#ifndef STEPTRACE_AGENT_CLOCK_H
#define STEPTRACE_AGENT_CLOCK_H

#include <stdint.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* Monotonic clock in ns (CLOCK_MONOTONIC). */
uint64_t st__clock_now_ns(void);

/* Chooses the ticks (once; later calls return at once). */
void st__clock_calibrate(void);

/* ns to ticks, for the calibrated clock (ticks to ns: inline below). */
uint64_t st__clock_ns_ticks(uint64_t ns);

/* A deadline `ms` from now on CLOCK_REALTIME, for
 * pthread_cond_timedwait (any thread). */
struct timespec st__clock_deadline(long ms);

/* 1 when ticks are TSC cycles (read by st__clock_ticks). */
extern int st__clock_tsc;

/* The ticks when the running hook was entered: set by tracer.c at each
 * event, read by outbox.c instead of the clock (GIL held). */
extern uint64_t st__clock_hook_ticks;

/* The clock runtimes are measured with, in ticks (inline: read twice
 * per traced line). */
static inline uint64_t
st__clock_ticks(void)
{
#if defined(__x86_64__)
    if (st__clock_tsc)
        return __rdtsc();
#endif
    return st__clock_now_ns();
}

/* ns per tick << 32, for the conversion below (clock.c sets it once). */
extern uint64_t st__clock_tick_mult;

/* Ticks to ns, for the calibrated clock (inline: once per record). */
static inline uint64_t
st__clock_ticks_ns(uint64_t ticks)
{
    if (!st__clock_tsc)
        return ticks;
    return (uint64_t)(((unsigned __int128)ticks * st__clock_tick_mult) >> 32);
}

#endif /* STEPTRACE_AGENT_CLOCK_H */
