/*
 * The last word of a process that dies of a signal: its records are in
 * the ring already (outbox.c), so a handler only has to say, in the ring's
 * header, which signal it is dying of; the collector writes that into the
 * log once the connection ends (PROTOCOL.md "The ring").
 *
 * Which signals, and how, so that the program behaves exactly as it would
 * untraced:
 *
 *  - Signals that end a process by default (SIGTERM, SIGHUP, SIGQUIT,
 *    SIGUSR1, ...): a handler is installed only where the disposition is
 *    still the default.  It notes the signal, puts the default back and
 *    raises the signal again, so the process dies of it (same wait
 *    status, same core dump).  Where the program (or Python: SIGINT,
 *    SIGPIPE) has its own disposition, nothing is touched; a handler the
 *    program installs later replaces ours, as it would replace the
 *    default.
 *  - Fatal signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS): the
 *    same where the disposition is the default; where a handler is there
 *    already (faulthandler, a C library's), ours notes the signal, then
 *    calls it, and takes the note back if it returns with the process
 *    going on.  A fault raised by the hardware is not raised again: the
 *    faulting instruction runs again with the default disposition and
 *    faults for good, as it would have.
 *
 * The handler is async-signal-safe: a few stores to shared memory,
 * getpid, sigaction, raise.  Python's own view (signal.getsignal) is its
 * table, filled from the dispositions at startup, so it still shows the
 * default.  Nothing is done for a process that is not the ring's owner
 * (a child forked by C code that has not reconnected yet).
 */
#include "compat.h"

#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "steptrace/ring.h"

/* Where the note goes (the attached ring's header) and whose it is. */
static struct st_ring_hdr *sig_ring;
static pid_t sig_pid;

/* The disposition each signal had when ours was installed. */
static struct sigaction sig_prev[65];
static int sig_ours[65];

/* Signals whose default action ends the process. */
static const int sig_term[] = {
    SIGTERM, SIGHUP,  SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM,   SIGVTALRM, SIGPROF,
    SIGXCPU, SIGXFSZ, SIGPIPE, SIGIO,   SIGPWR,  SIGSTKFLT, SIGINT,
};
/* Signals of a crash: chained to a handler that is there already. */
static const int sig_fatal[] = {
    SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS,
};

void
st__signals_ring(struct st_ring_hdr *h)
{
    sig_pid = getpid();
    __atomic_store_n(&sig_ring, h, __ATOMIC_RELEASE);
}

/* Is this a fault of the instruction being run (it faults again)? */
static int
signals_is_fault(int sig, const siginfo_t *si)
{
    return (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE ||
            sig == SIGILL) &&
           si != NULL && si->si_code > 0;
}

static void
signals_note(struct st_ring_hdr *h, int sig, int kind)
{
    if (h == NULL)
        return;
    __atomic_store_n(&h->end_signal, (uint32_t)sig, __ATOMIC_RELAXED);
    __atomic_store_n(&h->end_kind, (uint32_t)kind, __ATOMIC_RELEASE);
}

/* Is the process about to die of sig anyway (the handler we called put
 * the default back, or raised it again)? */
static int
signals_dying(int sig)
{
    struct sigaction now;
    sigset_t pending;

    if (sigaction(sig, NULL, &now) == 0 && now.sa_handler == SIG_DFL &&
        !(now.sa_flags & SA_SIGINFO))
        return 1;
    return sigpending(&pending) == 0 && sigismember(&pending, sig) == 1;
}

static void
signals_handler(int sig, siginfo_t *si, void *ctx)
{
    int saved = errno;
    struct st_ring_hdr *h = __atomic_load_n(&sig_ring, __ATOMIC_ACQUIRE);
    const struct sigaction *prev = &sig_prev[sig];

    if (h != NULL && getpid() != sig_pid)
        h = NULL;
    signals_note(h, sig, ST_RING_END_SIGNAL);
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        if (prev->sa_flags & SA_SIGINFO)
            prev->sa_sigaction(sig, si, ctx);
        else
            prev->sa_handler(sig);
        /* It returned.  Unless it is making the process die of sig, the
         * process goes on: take the note back. */
        if (!signals_dying(sig))
            signals_note(h, 0, ST_RING_END_NONE);
        errno = saved;
        return;
    }
    /* The default: die of it. */
    {
        struct sigaction dfl;

        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
    }
    if (!signals_is_fault(sig, si))
        raise(sig); /* Delivered once this handler returns. */
    errno = saved;
}

static void
signals_install_one(int sig, int chain)
{
    struct sigaction old, act;

    if (sig <= 0 || sig >= 65 || sig_ours[sig] ||
        sigaction(sig, NULL, &old) != 0)
        return;
    if (old.sa_handler == SIG_IGN && !(old.sa_flags & SA_SIGINFO))
        return;
    if (!(old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) && !chain)
        return;
    memset(&act, 0, sizeof(act));
    act.sa_sigaction = signals_handler;
    act.sa_mask = old.sa_mask;
    /* The program's restart behaviour is kept for a chained handler. */
    act.sa_flags = SA_SIGINFO | SA_ONSTACK | (old.sa_flags & SA_RESTART);
    sig_prev[sig] = old;
    if (sigaction(sig, &act, NULL) == 0)
        sig_ours[sig] = 1;
}

void
st__signals_install(void)
{
    static int done;
    PyObject *m;
    size_t i;

    if (done)
        return;
    done = 1;
    /* Python's table of handlers is filled from the dispositions when
     * _signal is first imported: let it see them before ours. */
    m = PyImport_ImportModule("_signal");
    Py_XDECREF(m);
    PyErr_Clear();
    /* An init process (a container's pid 1) is not ended by a signal it
     * has no handler for: raising it again would not end it either, and
     * the note would be false. */
    if (getpid() != 1)
        for (i = 0; i < sizeof(sig_term) / sizeof(sig_term[0]); i++)
            signals_install_one(sig_term[i], 0);
    for (i = 0; i < sizeof(sig_fatal) / sizeof(sig_fatal[0]); i++)
        signals_install_one(sig_fatal[i], 1);
}
