/*
 * RFC 5424 messages for the forward sink (syslog.c): one record of the
 * log as one syslog message, framed with RFC 6587 octet counting ("LEN SP
 * MSG"), the framing rsyslog's imtcp and syslog-ng's syslog() source
 * read.  docs/COLLECTOR.md section 13 gives the format field by field.
 *
 * Pure formatting: no loop, no state but the caller's struct
 * st_syslog_conf and the timestamp cache in it; everything is written
 * into a caller-owned struct st_buf.  forward.c fills a struct
 * st_syslog_rec per record (every string borrowed) and calls
 * st__syslog_frame; tests/test-daemon-forward.c tests it alone.
 */
#ifndef STEPTRACE_DAEMON_SYSLOG_H
#define STEPTRACE_DAEMON_SYSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"
#include "steptrace/record.h"
#include "steptrace/wire.h"

/* Severities of RFC 5424 section 6.2.1 that records use. */
enum {
    ST_SYSLOG_ERR = 3,
    ST_SYSLOG_WARNING = 4,
    ST_SYSLOG_NOTICE = 5,
    ST_SYSLOG_INFO = 6,
    ST_SYSLOG_DEBUG = 7
};

/* The MSGID of each kind of record. */
enum st_syslog_kind {
    ST_SYSLOG_STEP = 0, /* A line step: MSGID STEP. */
    ST_SYSLOG_EVENT,    /* Call, return, exception: EVENT. */
    ST_SYSLOG_ASYNC,    /* An async record: ASYNC. */
    ST_SYSLOG_NOTE      /* A "[steptrace] ..." line: NOTE. */
};

/* Default SD-ID: 32473 is the documentation enterprise number (RFC 5612). */
#define ST_SYSLOG_SD_ID "steptrace@32473"
/* Default and bounds of max_message_bytes (MSG and header, no frame). */
#define ST_SYSLOG_MAX_MESSAGE (64u * 1024)
#define ST_SYSLOG_MIN_MESSAGE 1024u
#define ST_SYSLOG_MAX_MESSAGE_LIMIT (16u * 1024 * 1024)

/* Settings every message shares; filled once by forward.c. */
struct st_syslog_conf {
    int facility;       /* 0..23 (user = 1). */
    const char *sd_id;  /* Borrowed; a valid SD-ID. */
    int cee;            /* Prefix MSG with "@cee:". */
    size_t max_message; /* Bytes of a message, frame length left
                           out; values are cut to fit. */
    char hostname[256]; /* HOSTNAME field: printable US-ASCII. */
    /* Timestamp cache: the text up to the seconds of `cached_sec`, and
     * its UTC offset ("+01:00"), so localtime_r runs once a second. */
    int64_t cached_sec;
    char cached_date[32];
    char cached_off[8];
    size_t gap; /* Bytes of the last "LEN SP" (syslog.c). */
};

/* One record, as forward.c found it.  Every string is borrowed; p == NULL
 * leaves the SD-PARAM out. */
struct st_syslog_rec {
    int kind;         /* enum st_syslog_kind */
    int severity;     /* ST_SYSLOG_* */
    uint64_t time_us; /* Wall clock, µs since the epoch. */
    uint32_t pid;     /* PROCID; 0: NILVALUE. */
    struct st_str run;
    struct st_str file;
    struct st_str func;
    uint32_t line; /* 0: left out. */
    uint64_t step;
    struct st_str thread;
    uint32_t region;
    uint64_t runtime_ns;
    int has_runtime;
    /* MSG: a step's variables (view), an event's line, an async
     * record's kind and text, a note's text. */
    const struct st_step_view *view; /* STEP and EVENT. */
    struct st_str text;              /* EVENT, ASYNC, NOTE. */
    const char *async_kind;          /* ASYNC: "CORO", "AWAIT", "TASK". */
};

/*
 * Sets conf to the defaults: facility user, SD-ID ST_SYSLOG_SD_ID, no
 * cee, max_message ST_SYSLOG_MAX_MESSAGE, the host's name (gethostname,
 * characters outside printable US-ASCII replaced by '-').  Nothing to
 * close.
 */
void st__syslog_conf_init(struct st_syslog_conf *conf);
/*
 * Appends one framed message for rec to out: "LEN SP MSG".  Values are
 * cut (and the JSON says so) to keep the message within
 * conf->max_message; the header and structured data are never cut, so a
 * message whose header alone is larger goes out as it is.
 * @return 0 or ST_ENOMEM.
 */
int st__syslog_frame(struct st_syslog_conf *conf,
                     const struct st_syslog_rec *rec, struct st_buf *out);
/* Appends s as an SD-PARAM value (RFC 5424 section 6.3.3): '"', '\' and
 * ']' escaped with a backslash, bytes that are not UTF-8 as '?'. */
int st__syslog_sd_escape(struct st_buf *out, const char *s, size_t n);
/* Appends s as the inside of a JSON string: '"', '\' and control
 * characters escaped, bytes that are not UTF-8 as U+FFFD.  At most
 * `limit` bytes of s are used, cut at a character boundary.
 * @return 0 or ST_ENOMEM. */
int st__syslog_json_escape(struct st_buf *out, const char *s, size_t n,
                           size_t limit);
/* The facility's number for a name ("user", "local0".."local7", ...), or
 * -1. */
int st__syslog_facility(const char *name);
/* @return 1 when s is a usable SD-ID: NAME@NUMBER, NAME 1 to 32
 * printable US-ASCII characters other than '=', ' ', ']', '"', '@'. */
int st__syslog_sd_id_ok(const char *s);

#endif /* STEPTRACE_DAEMON_SYSLOG_H */
