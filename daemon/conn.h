/*
 * One client connection (conn.c): the peer check at accept, replies, the
 * close sequence, and what is done for each of its sinks.  The struct
 * also holds the state other modules keep per connection: what was read
 * and how far it is processed (input.c), the protocol tables
 * (session.c), the ACKs owed (ack.c), the agent's ring (ring.c) and a
 * tail subscriber's frame (control.c).
 *
 * Ownership: the server keeps every connection in its list; a connection
 * is freed only in its close callback (STYLE item 11), after its sinks
 * were released and its ring given up.  Everything runs on the loop
 * thread.
 */
#ifndef STEPTRACE_DAEMON_CONN_H
#define STEPTRACE_DAEMON_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "steptrace/buf.h"
#include "steptrace/wire.h"

#include "steptrace/idmap.h"

/* Bytes a connection reads at a time when no large frame is pending. */
#define ST_READ_CHUNK (64u * 1024)

struct st_server;
struct st_ring;
struct st_string;

enum st_conn_state { ST_CONN_OPEN = 0, ST_CONN_CLOSING };

/* Why a connection is neither read nor processed (bits of c->blocked). */
enum {
    ST_BLOCK_PRESSURE = 1, /* Too much pending: wait for writes. */
    ST_BLOCK_FLUSH = 2,    /* Too many FLUSHes wait for their ACK. */
    ST_BLOCK_MEMORY = 4    /* A large frame waits for room. */
};

/* An ACK owed: sent once every record before its FLUSH is written. */
struct st_ack_wait {
    uint64_t token;
    uint64_t epoch;
};

/* What a connection is, as far as it told us. */
enum st_conn_kind { ST_CONN_AGENT = 0, ST_CONN_TAIL };

struct st_conn {
    uv_pipe_t pipe;             /* pipe.data points back here. */
    uv_shutdown_t shutdown_req; /* Used by a graceful close only. */
    struct st_server *srv;      /* Borrowed. */
    struct st_conn *prev;       /* Server's list of connections. */
    struct st_conn *next;
    int state;   /* enum st_conn_state */
    int kind;    /* enum st_conn_kind */
    int counted; /* Counts as a client for --idle-exit. */
    int got_hello;
    int reading;        /* uv_read_start is in effect. */
    unsigned blocked;   /* ST_BLOCK_* bits. */
    int resume_wanted;  /* A block was lifted: process again. */
    int eof;            /* The peer is done sending; close once
                           the ACKs owed are sent. */
    int peer_gone;      /* An agent with a ring ended: apply
                           its ring, send nothing, close. */
    int draining;       /* Stopping: read only stop_budget more. */
    size_t stop_budget; /* Bytes still to read while draining. */
    pid_t peer_pid;     /* From SO_PEERCRED; 0 if unknown. */
    char *rbuf;         /* Owned: bytes read, not yet consumed. */
    size_t rlen;        /* Bytes in rbuf. */
    size_t rcap;
    size_t roff;              /* Start of the first unprocessed frame. */
    size_t flen;              /* Payload length of the frame being
                                 decoded (from rbuf + roff), or 0. */
    int msgno;                /* Messages of that frame applied. */
    size_t big;               /* rbuf bytes beyond ST_READ_CHUNK held
                                 for a large frame (pressure.c). */
    uint64_t pause_seq;       /* When it was last paused (pressure.c). */
    uint64_t epoch;           /* FLUSHes seen so far, plus one. */
    struct st_ring *ring;     /* Owned (ring.c): the agent's ring, or
                                 NULL (records come on the socket). */
    int frame_from_ring;      /* The frame being applied is ring bytes
                                 (st__ring_take), not rbuf's. */
    size_t turn_bytes;        /* Ring bytes taken in this turn. */
    struct st_ack_wait *acks; /* Owned ring of ACKs owed, oldest first. */
    size_t acks_head;
    size_t nacks;
    size_t acks_cap;
    struct st_wire_decoder dec; /* Owned (init/close). */
    struct st_idmap strings;    /* sid -> struct st_string, owned. */
    /* The same for the low, dense sids agents use, indexed directly (a
     * cache in front of `strings`, whose entries it borrows; NULL:
     * undefined).  Grown by doubling only while it stays within twice the
     * strings defined plus ST_STR_DENSE_MIN, so that memory follows the
     * number of strings, never the size of an id. */
    const struct st_string **str_dense; /* Owned array. */
    size_t str_dense_cap;
    struct st_idmap threads; /* tid -> struct st_thread, owned. */
    struct st_idmap frames;  /* frame_id -> struct st_frame, owned. */
    struct st_idmap scopes;  /* scope_id -> struct st_scope, owned. */
    struct st_idmap regions; /* region_id -> struct st_region, owned. */
    struct st_idmap sinks;   /* tracer_id -> struct st_sink, released
                                (st__sink_release) at close. */
    struct st_idmap stores;  /* tracer_id -> struct st_store (store.h),
                                owned; their sinks are released with
                                the others. */
    const char *msg_raw;     /* The bytes of the message being applied
                                (borrowed from the frame), for the
                                step stores. */
    size_t msg_rawlen;
    char *program;    /* Owned: HELLO's program, or NULL. */
    uint64_t errors;  /* Sink errors since the last ACK. */
    char errmsg[512]; /* Latest of them, "" if none. */
    char detail[160]; /* Context for the protocol error log;
                         "" while a message is applied until
                         the session code says more. */
    /* A tail subscriber (kind ST_CONN_TAIL), control.c. */
    uint64_t tail_pid;      /* 0: every process. */
    char *tail_glob;        /* Owned; NULL: every file. */
    struct st_buf tail_out; /* Owned: TEXT frame being filled. */
    size_t tail_queued;     /* Bytes handed to uv_write, not done. */
    uint64_t tail_skipped;  /* Records skipped, not yet reported. */
};

/* Called by the server for each accepted connection.  @return 0 or < 0. */
int st__conn_accept(struct st_server *srv);
/*
 * Closes a connection: releases its sinks (their queues are still
 * written), then uv_close (abort != 0, or graceful: uv_shutdown first so
 * queued replies go out).  Memory is freed in the close callback.  Safe
 * to call again; an abort then also ends a pending graceful close.
 */
void st__conn_close(struct st_conn *c, int abort);
/* Hands every sink's queue of the connection to a write job. */
void st__conn_flush(struct st_conn *c);
/* SIGHUP for every sink of the connection. */
void st__conn_reopen(struct st_conn *c);
/* Frames `payload` with a header and queues it to the peer.
 * @return 0 or a libuv error (the connection is then closed). */
int st__conn_send(struct st_conn *c, const char *payload, size_t len);
/* Fills c->detail (printf-style) for the next protocol error line. */
void st__conn_detail(struct st_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* STEPTRACE_DAEMON_CONN_H */
