/*
 * The record ring: memory shared by one traced process (the agent, the
 * only writer) and the collector (the only reader), so that what the
 * agent recorded is the collector's as soon as it is written, whatever
 * happens to the process next (PROTOCOL.md, "The ring").
 *
 * The collector makes it when an agent's HELLO asks for one: a sealed
 * memfd (it can be neither shrunk nor grown), mapped by both, and an
 * eventfd the agent writes to wake the collector.  Both descriptors travel
 * with the collector's HELLO reply (SCM_RIGHTS).
 *
 *   +-----------------------------+----------------------------------+
 *   | struct st_ring_hdr (4 KiB)  | data: `size` bytes, a power of 2 |
 *   +-----------------------------+----------------------------------+
 *
 * The data is a byte stream of wire messages (no frame headers).  The
 * positions are free-running byte counts: byte `pos` of the stream is at
 * data[pos & (size - 1)].  The agent writes at `commit` and publishes it
 * (release) after whole messages; the collector copies what lies between
 * its own read position and `commit`, then publishes `read` (release) so
 * that the agent may write there again.  A message larger than the free
 * room is written in pieces as room comes free, so `commit` may stop
 * inside one; the collector keeps a partial message until the rest comes.
 *
 * Neither side trusts the other's fields: the collector checks that
 * commit - read never exceeds size, and keeps its own read position.
 */
#ifndef STEPTRACE_COMMON_RING_H
#define STEPTRACE_COMMON_RING_H

#include <stdint.h>

#define ST_RING_MAGIC 0x53545247u /* "STRG" */
/* The layout's version (the header below), checked by the agent. */
#define ST_RING_VERSION 1u
/* Bytes before the data area: the header, padded to a page. */
#define ST_RING_HEADER 4096u
/* Data sizes a collector grants (rounded up to a power of two). */
#define ST_RING_MIN (64u * 1024)
#define ST_RING_MAX (256u * 1024 * 1024)
/* The agent's default request (STEPTRACE_PENDING_BYTES overrides it). */
#define ST_RING_DEFAULT (64u * 1024 * 1024)
/* Bytes of the exec'd program's path kept in the header. */
#define ST_RING_END_DETAIL 256u

/* How the process ended, as the agent said before it went (end_kind). */
enum st_ring_end {
    ST_RING_END_NONE = 0,   /* Running, or it vanished (SIGKILL). */
    ST_RING_END_EXIT = 1,   /* It closed the connection at exit. */
    ST_RING_END_SIGNAL = 2, /* It is dying of end_signal. */
    ST_RING_END_EXEC = 3    /* It is calling exec (end_detail). */
};

/*
 * The header.  Each side writes only its own cache line (magic, version,
 * size and pid are the collector's, written before the agent sees the
 * ring), with __atomic builtins; padding keeps the two lines apart.
 */
struct st_ring_hdr {
    uint32_t magic;
    uint32_t version;
    uint64_t size; /* Data bytes. */
    uint64_t pid;  /* The agent's pid (SO_PEERCRED). */
    char pad0[64 - 24];
    /* The agent's line. */
    uint64_t commit;         /* Stream bytes written. */
    uint32_t writer_waiting; /* 1: the agent waits for room (the
                                collector then sends an ACK 0 once it
                                has taken bytes). */
    uint32_t end_kind;       /* enum st_ring_end. */
    uint32_t end_signal;     /* With ST_RING_END_SIGNAL. */
    char pad1[64 - 20];
    /* The collector's line. */
    uint64_t read;        /* Stream bytes given back: the agent may
                             write up to read + size.  Pages the
                             collector frees (skipped ones) are freed
                             before they are given back. */
    uint32_t reader_idle; /* 1: the collector stopped looking; the
                             agent writes the eventfd after its next
                             commit (and clears this). */
    uint32_t pad_idle;
    uint64_t taken; /* Stream bytes taken (read <= taken <=
                       commit): progress, for waits. */
    char pad2[64 - 24];
    /* Written by the agent before an exec: the program (NUL-ended). */
    char end_detail[ST_RING_END_DETAIL];
};

#endif /* STEPTRACE_COMMON_RING_H */
