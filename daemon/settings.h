/*
 * The collector's own YAML config (steptraced --config FILE): read once
 * by main.c into the struct st_settings of its struct st_options, which
 * owns the strings; the server reads the values (and hands the rotation
 * limits to the sinks' env).  Error text is written only here (STYLE
 * item 12).
 */
#ifndef STEPTRACE_DAEMON_SETTINGS_H
#define STEPTRACE_DAEMON_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "fwdconf.h"

/* Default bound on the collector's memory (max_pending_bytes). */
#define ST_DEFAULT_MAX_PENDING (64u * 1024 * 1024)

struct st_settings {
    char *socket;           /* Owned or NULL. */
    char *pid_file;         /* Owned or NULL. */
    char *log_file;         /* Owned or NULL: the collector's log. */
    uint64_t max_pending;   /* Bytes; ST_DEFAULT_MAX_PENDING. */
    uint64_t max_log_bytes; /* 0: the regions decide. */
    uint32_t max_log_files; /* 0: the regions decide. */
    uint32_t formats;       /* log_format for tracers that leave it to
                               the collector (ST_FORMAT_*; 0: text). */
    uint32_t *allow_uids;   /* Owned: uids besides our own. */
    size_t nallow;
    struct st_fwdconf fwd; /* Owned: forwarding (fwdconf.h). */
};

/* Defaults: nothing set, max_pending = ST_DEFAULT_MAX_PENDING.  Pairs
 * with st__settings_close. */
void st__settings_init(struct st_settings *st);
/* Frees what the settings own and resets them to the defaults. */
void st__settings_close(struct st_settings *st);
/*
 * Reads the YAML file at path into *st.  On error, err holds one line
 * "FILE:LINE:COLUMN: message" (or "FILE: message").
 * @return 0, or a negative code (the caller exits with status 2).
 */
int st__settings_load(struct st_settings *st, const char *path, char *err,
                      size_t errlen);

#endif /* STEPTRACE_DAEMON_SETTINGS_H */
