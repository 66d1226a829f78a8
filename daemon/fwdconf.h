/*
 * Forwarding settings (fwdconf.c): the collector config's forwarding keys
 * (forward, facility, sd_id, cee, max_message_bytes, forward_queue_bytes,
 * forward_drain_ms, and `log_file: false`), `steptraced --forward URL`,
 * and the destination URLs:
 *
 *   syslog+tcp://HOST:PORT      RFC 5424 over TCP, octet counting
 *   syslog+unix:///PATH         the same over a Unix stream socket
 *
 * settings.c hands each key of the config to st__fwdconf_key first; the
 * struct st_fwdconf lives in struct st_settings, which owns it.  Error
 * text is written only here and in settings.c (STYLE item 12).
 */
#ifndef STEPTRACE_DAEMON_FWDCONF_H
#define STEPTRACE_DAEMON_FWDCONF_H

#include <stddef.h>
#include <stdint.h>

struct st_config;
struct st_config_node;

/* Defaults (docs/COLLECTOR.md section 5). */
#define ST_FWD_QUEUE_BYTES (64u * 1024 * 1024)
#define ST_FWD_MIN_QUEUE_BYTES (16u * 1024)
#define ST_FWD_DRAIN_MS 2000u

/* st__fwdconf_key: the key is not one of forwarding's. */
#define ST_FWDCONF_NOT_MINE 1

enum st_fwd_scheme { ST_FWD_TCP = 1, ST_FWD_UNIX };

/* A destination URL, split.  Strings owned (st__fwdconf_url_close). */
struct st_fwd_url {
    int scheme; /* enum st_fwd_scheme */
    char *host; /* TCP: name or address, without IPv6 brackets. */
    char *port; /* TCP: decimal 1..65535. */
    char *path; /* UNIX: absolute socket path. */
};

struct st_fwdconf {
    char **urls; /* Owned: destinations as given; NULL if none. */
    size_t nurls;
    int facility;         /* 0..23; user (1) by default. */
    char *sd_id;          /* Owned or NULL: ST_SYSLOG_SD_ID. */
    int cee;              /* "@cee:" before MSG. */
    int files_off;        /* log_file: false: no .tracer files. */
    uint64_t max_message; /* max_message_bytes. */
    uint64_t queue_bytes; /* forward_queue_bytes, per destination. */
    uint64_t drain_ms;    /* forward_drain_ms. */
};

/* Defaults; pairs with st__fwdconf_close. */
void st__fwdconf_init(struct st_fwdconf *fc);
void st__fwdconf_close(struct st_fwdconf *fc);
/*
 * Applies one key of the config's top mapping if it is forwarding's.
 * @return ST_FWDCONF_NOT_MINE (settings.c goes on with it), 0, or a
 *         negative code with err holding "FILE:LINE:COLUMN: message".
 */
int st__fwdconf_key(struct st_fwdconf *fc, const struct st_config *cfg,
                    const struct st_config_node *k,
                    const struct st_config_node *v, char *err, size_t errlen);
/*
 * Parses url into *out (which the caller closes with
 * st__fwdconf_url_close, also after an error).  On error, err holds what
 * is wrong and how to write it.  @return 0 or ST_ECONFIG.
 */
int st__fwdconf_parse_url(const char *url, struct st_fwd_url *out, char *err,
                          size_t errlen);
void st__fwdconf_url_close(struct st_fwd_url *u);
/* Replaces the config's destinations with `urls` (--forward, checked by
 * the caller).  @return 0 or ST_ENOMEM. */
int st__fwdconf_set_urls(struct st_fwdconf *fc, char *const *urls, size_t n);
/* Checks what only the whole set can tell (files off with nowhere to
 * forward, a message larger than the queue).  @return 0, or -1 with err
 * holding one line. */
int st__fwdconf_check(const struct st_fwdconf *fc, char *err, size_t errlen);

#endif /* STEPTRACE_DAEMON_FWDCONF_H */
