/*
 * The program's clock.  Runtime is measured around every event (program
 * time in, tracer time out), so the clock is read twice per traced line:
 * clock_gettime costs 20-40 ns here even through the vDSO, the TSC a few.
 * Where the CPU says its TSC is invariant (constant_tsc and nonstop_tsc on
 * x86-64) and the kernel keeps it as its clocksource, ticks are TSC
 * cycles, converted to ns with a factor measured against CLOCK_MONOTONIC;
 * elsewhere ticks are CLOCK_MONOTONIC ns.
 */
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int st__clock_tsc;
uint64_t st__clock_hook_ticks;

/* ns = ticks * mult >> 32. */
uint64_t st__clock_tick_mult = 1ull << 32;
static int calibrated;

uint64_t
st__clock_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
/* Does /proc/cpuinfo list both flags that make the TSC a clock? */
static int
clock_tsc_invariant(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    int constant = 0, nonstop = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
        break;
    }
    fclose(f);
    if (!constant || !nonstop)
        return 0;
    /* The kernel's own verdict: it stops using the TSC when it finds it
     * unreliable (unsynchronised between CPUs, say), whatever the flags. */
    f = fopen("/sys/devices/system/clocksource/clocksource0/"
              "current_clocksource",
              "r");
    if (f == NULL)
        return 0;
    constant = fgets(line, sizeof(line), f) != NULL &&
               strncmp(line, "tsc", 3) == 0 &&
               (line[3] == '\n' || line[3] == '\0');
    fclose(f);
    return constant;
}
#endif

void
st__clock_calibrate(void)
{
#if defined(__x86_64__)
    uint64_t n0, n1, t0, t1;

    if (calibrated)
        return;
    calibrated = 1;
    if (getenv("STEPTRACE_NO_TSC") != NULL || !clock_tsc_invariant())
        return;
    /* About a millisecond, once per process: the clock reads' own jitter
     * (tens of ns) makes the factor good to a few parts in 10^5. */
    n0 = st__clock_now_ns();
    t0 = __rdtsc();
    do {
        n1 = st__clock_now_ns();
        t1 = __rdtsc();
    } while (n1 - n0 < 1000000);
    if (t1 <= t0)
        return;
    st__clock_tick_mult =
        (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
    st__clock_tsc = st__clock_tick_mult != 0;
#else
    calibrated = 1;
#endif
}

uint64_t
st__clock_ns_ticks(uint64_t ns)
{
    if (!st__clock_tsc)
        return ns;
    return (uint64_t)(((unsigned __int128)ns << 32) / st__clock_tick_mult);
}

struct timespec
st__clock_deadline(long ms)
{
    struct timespec t;

    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += ms * 1000000L;
    while (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}
