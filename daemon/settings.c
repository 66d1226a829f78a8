/*
 * The collector's own config file (steptraced --config FILE), YAML read
 * with the common loader:
 *
 *   socket: /run/user/1000/steptrace/steptraced.sock
 *   pid_file: /run/user/1000/steptrace/steptraced.pid
 *   log_file: /home/me/.local/state/steptrace/steptraced.log
 *   max_pending_bytes: 67108864   # memory for records not yet written
 *   max_log_bytes: 104857600      # rotate every file at this size at most
 *   max_log_files: 10             # keep at most this many backups
 *   allow_uids: [1001, alice]     # who else may connect (uids or names)
 *   forward: [syslog+tcp://127.0.0.1:514]   # and the keys of fwdconf.c
 *
 * Keys may use hyphens for underscores.  An unknown key, a value of the
 * wrong type or out of range is one error line "FILE:LINE:COLUMN: ...".
 */
#include "settings.h"

#include "sink.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "steptrace/config.h"
#include "steptrace/error.h"
#include "steptrace/wire.h"

#define SETTINGS_KEYS                                                         \
    "socket, pid_file, log_file, max_pending_bytes, max_log_bytes, "          \
    "max_log_files, allow_uids, log_format, forward, facility, sd_id, cee, "  \
    "max_message_bytes, forward_queue_bytes, forward_drain_ms"
/* max_pending_bytes below this could not hold one largest frame. */
#define SETTINGS_MIN_PENDING (1u << 20)

void
st__settings_init(struct st_settings *st)
{
    memset(st, 0, sizeof(*st));
    st->max_pending = ST_DEFAULT_MAX_PENDING;
    st__fwdconf_init(&st->fwd);
}

void
st__settings_close(struct st_settings *st)
{
    free(st->socket);
    free(st->pid_file);
    free(st->log_file);
    free(st->allow_uids);
    st__fwdconf_close(&st->fwd);
    st__settings_init(st);
}

/* Compares a key with hyphens and underscores as equals. */
static int
settings_key_is(const char *key, const char *name)
{
    for (; *key != '\0' && *name != '\0'; key++, name++) {
        char k = *key == '-' ? '_' : *key;

        if (k != *name)
            return 0;
    }
    return *key == '\0' && *name == '\0';
}

/* A non-empty string without NUL bytes, copied to *out. */
static int
settings_path(const struct st_config *cfg, const struct st_config_node *v,
              const char *key, char **out, char *err, size_t errlen)
{
    size_t n;
    const char *t = st_config_text(v, &n);

    if (t == NULL || st_config_resolve(v) != ST_CONFIG_STR || n == 0 ||
        memchr(t, '\0', n) != NULL)
        return st_config_errorf(cfg, v, err, errlen, "%s must be a file path",
                                key);
    free(*out);
    *out = strdup(t);
    return *out != NULL ? 0 : ST_ENOMEM;
}

/* log_format: text, steps or both (any case) into ST_FORMAT_* bits. */
static int
settings_formats(const struct st_config *cfg, const struct st_config_node *v,
                 uint32_t *out, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        uint32_t bits;
    } names[] = {{"text", ST_FORMAT_TEXT},
                 {"steps", ST_FORMAT_STEPS},
                 {"both", ST_FORMAT_TEXT | ST_FORMAT_STEPS}};
    const char *t = st_config_text(v, NULL);
    size_t i;

    for (i = 0; t != NULL && st_config_resolve(v) == ST_CONFIG_STR &&
                i < sizeof(names) / sizeof(names[0]);
         i++)
        if (strcasecmp(t, names[i].name) == 0) {
            *out = names[i].bits;
            return 0;
        }
    return st_config_errorf(cfg, v, err, errlen,
                            "log_format must be one of text, steps, both");
}

/* One uid: a number, or a user name looked up now. */
static int
settings_uid(const struct st_config *cfg, const struct st_config_node *v,
             uint32_t *out, char *err, size_t errlen)
{
    const char *t = st_config_text(v, NULL);
    const struct passwd *pw;
    long long x;

    if (st_config_kind(v) != ST_CONFIG_SCALAR)
        return st_config_errorf(cfg, v, err, errlen,
                                "allow_uids items must be uids or user "
                                "names");
    if (st_config_resolve(v) == ST_CONFIG_INT) {
        if (st_config_as_int(v, &x) != 0 || x < 0 || x > 0xfffffffeLL)
            return st_config_errorf(cfg, v, err, errlen,
                                    "allow_uids: %s is not a uid", t);
        *out = (uint32_t)x;
        return 0;
    }
    pw = t != NULL && t[0] != '\0' ? getpwnam(t) : NULL;
    if (pw == NULL)
        return st_config_errorf(cfg, v, err, errlen,
                                "allow_uids: no user named '%s'",
                                t != NULL ? t : "");
    *out = (uint32_t)pw->pw_uid;
    return 0;
}

static int
settings_uids(struct st_settings *st, const struct st_config *cfg,
              const struct st_config_node *v, char *err, size_t errlen)
{
    size_t n, i;
    int r;

    /* A single uid is a list of one. */
    if (st_config_kind(v) == ST_CONFIG_SCALAR)
        n = 1;
    else if (st_config_kind(v) == ST_CONFIG_SEQUENCE)
        n = st_config_size(v);
    else
        return st_config_errorf(cfg, v, err, errlen,
                                "allow_uids must be a list of uids or user "
                                "names");
    free(st->allow_uids);
    st->allow_uids = calloc(n ? n : 1, sizeof(*st->allow_uids));
    if (st->allow_uids == NULL)
        return ST_ENOMEM;
    st->nallow = n;
    for (i = 0; i < n; i++) {
        const struct st_config_node *it =
            st_config_kind(v) == ST_CONFIG_SCALAR ? v : st_config_item(v, i);

        r = settings_uid(cfg, it, &st->allow_uids[i], err, errlen);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Applies one key of the top mapping. */
static int
settings_key(struct st_settings *st, const struct st_config *cfg,
             const struct st_config_node *k, const struct st_config_node *v,
             char *err, size_t errlen)
{
    const char *key = st_config_text(k, NULL);
    uint64_t x;
    int r;

    /* Forwarding's keys, and log_file: false (fwdconf.c). */
    r = st__fwdconf_key(&st->fwd, cfg, k, v, err, errlen);
    if (r != ST_FWDCONF_NOT_MINE)
        return r;
    if (settings_key_is(key, "socket"))
        return settings_path(cfg, v, "socket", &st->socket, err, errlen);
    if (settings_key_is(key, "pid_file"))
        return settings_path(cfg, v, "pid_file", &st->pid_file, err, errlen);
    if (settings_key_is(key, "log_file"))
        return settings_path(cfg, v, "log_file", &st->log_file, err, errlen);
    if (settings_key_is(key, "max_pending_bytes"))
        return st_config_int_in(cfg, v, "max_pending_bytes",
                                SETTINGS_MIN_PENDING,
                                (long long)(SIZE_MAX / 4), &st->max_pending,
                                err, errlen);
    if (settings_key_is(key, "max_log_bytes"))
        return st_config_int_in(cfg, v, "max_log_bytes", 0, INT64_MAX,
                                &st->max_log_bytes, err, errlen);
    if (settings_key_is(key, "max_log_files")) {
        r = st_config_int_in(cfg, v, "max_log_files", 0, ST_MAX_LOG_FILES, &x,
                             err, errlen);
        st->max_log_files = (uint32_t)x;
        return r;
    }
    if (settings_key_is(key, "allow_uids"))
        return settings_uids(st, cfg, v, err, errlen);
    if (settings_key_is(key, "log_format"))
        return settings_formats(cfg, v, &st->formats, err, errlen);
    return st_config_errorf(cfg, k, err, errlen,
                            "unknown key '%s' (valid keys: %s)", key,
                            SETTINGS_KEYS);
}

int
st__settings_load(struct st_settings *st, const char *path, char *err,
                  size_t errlen)
{
    struct st_config *cfg = NULL;
    const struct st_config_node *root;
    size_t i;
    int r;

    r = st_config_load_file(path, NULL, &cfg, err, errlen);
    if (r != 0)
        return r;
    root = st_config_root(cfg);
    if (root != NULL && st_config_kind(root) != ST_CONFIG_MAPPING) {
        r = st_config_errorf(cfg, root, err, errlen,
                             "expected a mapping of settings (keys: %s)",
                             SETTINGS_KEYS);
        goto done;
    }
    for (i = 0; root != NULL && i < st_config_size(root); i++) {
        r = settings_key(st, cfg, st_config_key(root, i),
                         st_config_value(root, i), err, errlen);
        if (r != 0)
            goto done;
    }
done:
    st_config_free(cfg);
    return r;
}
