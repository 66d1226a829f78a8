/*
 * The collector connection as a whole; see collector.h.
 *
 * Loss accounting: outbox.c notes (sender.c) how many records a FLUSH
 * follows, and the collector's ACK confirms them written.  When the
 * connection dies, the records committed since the last confirmation are
 * counted as lost once ("settled"): at most that many, some may have been
 * written.  An orderly end loses nothing.
 */
#include "compat.h"

#include "steptrace/ring.h"

#include "clock.h"
#include "collector.h"
#include "outbox.h"
#include "sender.h"
#include "signals.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static int settled;              /* A failure's loss was counted. */
static PyObject *reconnect_hook; /* Owned callable, or NULL. */
static uint64_t reconnect_next_try;

/* The ring size to ask the collector for (STEPTRACE_PENDING_BYTES). */
static uint64_t
collector_ring_wanted(void)
{
    const char *env = getenv("STEPTRACE_PENDING_BYTES");
    char *end;
    unsigned long long v;

    if (env == NULL || *env == '\0')
        return ST_RING_DEFAULT;
    v = strtoull(env, &end, 10);
    if (*end != '\0')
        return ST_RING_DEFAULT;
    if (v < ST_RING_MIN)
        return ST_RING_MIN;
    return v > ST_RING_MAX ? ST_RING_MAX : v;
}

/* The records committed since the last confirmation are lost with a
 * failed connection: counted once. */
static void
collector_settle(void)
{
    uint64_t confirmed, committed = st__outbox_records();

    if (settled || st__sender_ok())
        return;
    confirmed = st__sender_confirmed();
    if (committed > confirmed)
        st__sender_count_lost(committed - confirmed);
    settled = 1;
}

uint64_t
st__collector_dropped(void)
{
    collector_settle();
    return st__sender_lost();
}

/*
 * In a forked child, inside fork() itself: only the forking thread exists
 * there, and the connection and its ring are the parent's.  The child
 * starts from a clean, disconnected state (see st__sender_atfork_child);
 * the parent's records are the parent's.  No Python call here.
 */
static void
collector_atfork_child(void)
{
    st__sender_atfork_child();
    st__outbox_forget();
    settled = 1;
}

/* The fork handler, once a process (at the first connection). */
static void
collector_atfork_install(void)
{
    static int done;

    if (!done && pthread_atfork(NULL, NULL, collector_atfork_child) == 0)
        done = 1;
}

/* The default log formats of the collector connected last. */
static uint32_t collector_formats;

uint32_t
st__collector_formats(void)
{
    return collector_formats;
}

int
st__collector_connect(const char *path, const char *program, char *err,
                      size_t errlen)
{
    struct st_hello_ring ring;
    int r;

    st__collector_close();
    r = st__sender_dial(path, program, collector_ring_wanted(), &ring, err,
                        errlen);
    if (r != 0)
        return r;
    collector_formats = ring.formats;
    r = st__outbox_attach(ring.memfd, ring.size, ring.efd, err, errlen);
    close(ring.memfd);
    if (r != 0) {
        close(ring.efd);
        st__sender_disconnect();
        return r;
    }
    settled = 0;
    r = st__sender_start(st__outbox_hot.hdr, err, errlen);
    if (r != 0) {
        st__outbox_detach();
        return r;
    }
    st__signals_install();
    collector_atfork_install();
    return 0;
}

void
st__collector_close(void)
{
    st__sender_use();
    if (!st__sender_dialed())
        return;
    /* Everything recorded is in the ring already: the collector takes it
     * once it sees the end of the connection.  Saying that this is an
     * orderly end keeps it from reporting a vanished process. */
    st__outbox_set_end(ST_RING_END_EXIT, 0, NULL);
    st__sender_stop();
    collector_settle();
    if (st__sender_ok())
        settled = 1; /* An orderly end loses nothing. */
    st__sender_disconnect();
    st__outbox_detach();
}

void
st__collector_set_reconnect_hook(PyObject *hook)
{
    Py_XSETREF(reconnect_hook, Py_XNewRef(hook));
}

int
st__collector_reconnect_due(int now)
{
    uint64_t t = st__clock_now_ns();

    if (reconnect_hook == NULL || (!now && t < reconnect_next_try))
        return 0;
    reconnect_next_try = t + 1000000000ull;
    return 1;
}

int
st__collector_reconnect(void)
{
    PyObject *res = PyObject_CallNoArgs(reconnect_hook);

    if (res == NULL)
        PyErr_Clear();
    Py_XDECREF(res);
    return st__sender_ok();
}

int
st__collector_after_fork_child(void)
{
    /* An earlier after-fork hook may have run traced code: the child then
     * reconnected already, its batch and wire state are its own. */
    int own = st__sender_reconnected_since_fork();

    if (!own) {
        /* The batch holds the parent's records, which the parent sends. */
        (void)st__outbox_discard();
        /* The child connects at once, whatever the parent tried
         * lately. */
        reconnect_next_try = 0;
    }
    return own;
}
