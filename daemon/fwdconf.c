/*
 * Forwarding settings (see fwdconf.h), in the collector's YAML config:
 *
 *   forward:                              # one URL or a list
 *     - syslog+tcp://127.0.0.1:514
 *     - syslog+unix:///run/relay.sock
 *   facility: user                        # or local0..local7, 0..23
 *   sd_id: steptrace@32473                # NAME@ENTERPRISE-NUMBER
 *   cee: false                            # "@cee:" before the JSON
 *   max_message_bytes: 65536              # values are cut beyond
 *   forward_queue_bytes: 67108864         # per destination
 *   forward_drain_ms: 2000                # at SIGTERM
 *   log_file: false                       # forward only: no .tracer files
 */
#include "fwdconf.h"

#include "syslog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "steptrace/config.h"
#include "steptrace/error.h"

#define FWDCONF_SUN_PATH sizeof(((struct sockaddr_un *)0)->sun_path)
#define FWDCONF_FORMS "syslog+tcp://HOST:PORT or syslog+unix:///PATH"

void
st__fwdconf_init(struct st_fwdconf *fc)
{
    memset(fc, 0, sizeof(*fc));
    fc->facility = 1;
    fc->max_message = ST_SYSLOG_MAX_MESSAGE;
    fc->queue_bytes = ST_FWD_QUEUE_BYTES;
    fc->drain_ms = ST_FWD_DRAIN_MS;
}

static void
fwdconf_free_urls(struct st_fwdconf *fc)
{
    size_t i;

    for (i = 0; i < fc->nurls; i++)
        free(fc->urls[i]);
    free(fc->urls);
    fc->urls = NULL;
    fc->nurls = 0;
}

void
st__fwdconf_close(struct st_fwdconf *fc)
{
    fwdconf_free_urls(fc);
    free(fc->sd_id);
    st__fwdconf_init(fc);
}

void
st__fwdconf_url_close(struct st_fwd_url *u)
{
    free(u->host);
    free(u->port);
    free(u->path);
    memset(u, 0, sizeof(*u));
}

static char *
fwdconf_strndup(const char *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* HOST:PORT of a syslog+tcp URL (IPv6 addresses in brackets). */
static int
fwdconf_host_port(const char *url, const char *hp, struct st_fwd_url *out,
                  char *err, size_t errlen)
{
    const char *colon, *hend, *h = hp;
    char *end;
    long port;

    if (hp[0] == '[') {
        hend = strchr(hp, ']');
        if (hend == NULL || hend[1] != ':') {
            snprintf(err, errlen,
                     "'%s': an IPv6 address is written [ADDR]:PORT", url);
            return ST_ECONFIG;
        }
        h = hp + 1;
        colon = hend + 1;
    }
    else {
        colon = strrchr(hp, ':');
        hend = colon;
    }
    if (colon == NULL || hend == h) {
        snprintf(err, errlen,
                 "'%s' names no %s; write syslog+tcp://HOST:PORT, e.g. "
                 "syslog+tcp://127.0.0.1:514",
                 url, colon == NULL ? "port" : "host");
        return ST_ECONFIG;
    }
    if (memchr(h, '/', (size_t)(hend - h)) != NULL ||
        (hp[0] != '[' && memchr(h, ':', (size_t)(hend - h)) != NULL)) {
        snprintf(err, errlen,
                 "'%s': the host may not contain '/' or ':'; write "
                 "syslog+tcp://HOST:PORT ([ADDR]:PORT for IPv6)",
                 url);
        return ST_ECONFIG;
    }
    port = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port < 1 ||
        port > 65535) {
        snprintf(err, errlen,
                 "'%s': the port must be a number from 1 to 65535 (and "
                 "nothing may follow it)",
                 url);
        return ST_ECONFIG;
    }
    out->scheme = ST_FWD_TCP;
    out->host = fwdconf_strndup(h, (size_t)(hend - h));
    out->port = fwdconf_strndup(colon + 1, strlen(colon + 1));
    return out->host != NULL && out->port != NULL ? 0 : ST_ENOMEM;
}

int
st__fwdconf_parse_url(const char *url, struct st_fwd_url *out, char *err,
                      size_t errlen)
{
    static const char tcp[] = "syslog+tcp://", unx[] = "syslog+unix://";

    memset(out, 0, sizeof(*out));
    if (strncmp(url, tcp, sizeof(tcp) - 1) == 0)
        return fwdconf_host_port(url, url + sizeof(tcp) - 1, out, err, errlen);
    if (strncmp(url, unx, sizeof(unx) - 1) == 0) {
        const char *path = url + sizeof(unx) - 1;

        if (path[0] != '/') {
            snprintf(err, errlen,
                     "'%s' needs an absolute path: syslog+unix:///PATH "
                     "(three slashes)",
                     url);
            return ST_ECONFIG;
        }
        if (strlen(path) >= FWDCONF_SUN_PATH) {
            snprintf(err, errlen,
                     "'%s': the socket path is longer than %zu bytes; "
                     "choose a shorter one",
                     url, FWDCONF_SUN_PATH - 1);
            return ST_ECONFIG;
        }
        out->scheme = ST_FWD_UNIX;
        out->path = strdup(path);
        return out->path != NULL ? 0 : ST_ENOMEM;
    }
    snprintf(err, errlen, "'%s' is not a forward destination; write %s", url,
             FWDCONF_FORMS);
    return ST_ECONFIG;
}

int
st__fwdconf_set_urls(struct st_fwdconf *fc, char *const *urls, size_t n)
{
    size_t i;

    fwdconf_free_urls(fc);
    if (n == 0)
        return 0;
    fc->urls = calloc(n, sizeof(*fc->urls));
    if (fc->urls == NULL)
        return ST_ENOMEM;
    for (i = 0; i < n; i++) {
        fc->urls[i] = strdup(urls[i]);
        if (fc->urls[i] == NULL)
            return ST_ENOMEM;
        fc->nurls = i + 1;
    }
    return 0;
}

/* One URL of `forward:`, checked now so that the error has its line. */
static int
fwdconf_url(struct st_fwdconf *fc, const struct st_config *cfg,
            const struct st_config_node *v, char *err, size_t errlen)
{
    char why[512];
    struct st_fwd_url u;
    const char *t = st_config_text(v, NULL);
    int r;

    if (st_config_kind(v) != ST_CONFIG_SCALAR || t == NULL || t[0] == '\0')
        return st_config_errorf(cfg, v, err, errlen,
                                "forward items must be URLs: %s",
                                FWDCONF_FORMS);
    r = st__fwdconf_parse_url(t, &u, why, sizeof(why));
    st__fwdconf_url_close(&u);
    if (r == ST_ENOMEM)
        return r;
    if (r != 0)
        return st_config_errorf(cfg, v, err, errlen, "forward: %s", why);
    fc->urls[fc->nurls] = strdup(t);
    if (fc->urls[fc->nurls] == NULL)
        return ST_ENOMEM;
    fc->nurls++;
    return 0;
}

static int
fwdconf_urls(struct st_fwdconf *fc, const struct st_config *cfg,
             const struct st_config_node *v, char *err, size_t errlen)
{
    size_t n, i;
    int r;

    if (st_config_kind(v) == ST_CONFIG_SCALAR)
        n = 1;
    else if (st_config_kind(v) == ST_CONFIG_SEQUENCE)
        n = st_config_size(v);
    else
        return st_config_errorf(cfg, v, err, errlen,
                                "forward must be a URL or a list of URLs: "
                                "%s",
                                FWDCONF_FORMS);
    fwdconf_free_urls(fc);
    fc->urls = calloc(n ? n : 1, sizeof(*fc->urls));
    if (fc->urls == NULL)
        return ST_ENOMEM;
    for (i = 0; i < n; i++) {
        r = fwdconf_url(fc, cfg,
                        st_config_kind(v) == ST_CONFIG_SCALAR
                            ? v
                            : st_config_item(v, i),
                        err, errlen);
        if (r != 0)
            return r;
    }
    return 0;
}

static int
fwdconf_bool(const struct st_config *cfg, const struct st_config_node *v,
             const char *key, int *out, char *err, size_t errlen)
{
    if (st_config_kind(v) != ST_CONFIG_SCALAR ||
        st_config_resolve(v) != ST_CONFIG_BOOL || st_config_as_bool(v, out))
        return st_config_errorf(cfg, v, err, errlen,
                                "%s must be true or false", key);
    return 0;
}

static int
fwdconf_facility(struct st_fwdconf *fc, const struct st_config *cfg,
                 const struct st_config_node *v, char *err, size_t errlen)
{
    const char *t = st_config_text(v, NULL);
    long long x;
    int f;

    if (st_config_kind(v) == ST_CONFIG_SCALAR &&
        st_config_resolve(v) == ST_CONFIG_INT &&
        st_config_as_int(v, &x) == 0 && x >= 0 && x <= 23) {
        fc->facility = (int)x;
        return 0;
    }
    f = st_config_kind(v) == ST_CONFIG_SCALAR && t != NULL
            ? st__syslog_facility(t)
            : -1;
    if (f < 0)
        return st_config_errorf(cfg, v, err, errlen,
                                "facility must be a syslog facility: user, "
                                "daemon, local0 .. local7 (or 0 .. 23)");
    fc->facility = f;
    return 0;
}

static int
fwdconf_sd_id(struct st_fwdconf *fc, const struct st_config *cfg,
              const struct st_config_node *v, char *err, size_t errlen)
{
    const char *t = st_config_text(v, NULL);

    if (st_config_kind(v) != ST_CONFIG_SCALAR || t == NULL ||
        !st__syslog_sd_id_ok(t))
        return st_config_errorf(cfg, v, err, errlen,
                                "sd_id must be NAME@ENTERPRISE-NUMBER, at "
                                "most 32 printable characters without '=', "
                                "']', '\"' or spaces, e.g. "
                                "steptrace@32473");
    free(fc->sd_id);
    fc->sd_id = strdup(t);
    return fc->sd_id != NULL ? 0 : ST_ENOMEM;
}

/* Compares a key with hyphens and underscores as equals. */
static int
fwdconf_key_is(const char *key, const char *name)
{
    for (; *key != '\0' && *name != '\0'; key++, name++)
        if ((*key == '-' ? '_' : *key) != *name)
            return 0;
    return *key == '\0' && *name == '\0';
}

int
st__fwdconf_key(struct st_fwdconf *fc, const struct st_config *cfg,
                const struct st_config_node *k, const struct st_config_node *v,
                char *err, size_t errlen)
{
    const char *key = st_config_text(k, NULL);
    int on = 0, r;

    if (key == NULL)
        return ST_FWDCONF_NOT_MINE;
    if (fwdconf_key_is(key, "forward"))
        return fwdconf_urls(fc, cfg, v, err, errlen);
    if (fwdconf_key_is(key, "facility"))
        return fwdconf_facility(fc, cfg, v, err, errlen);
    if (fwdconf_key_is(key, "sd_id"))
        return fwdconf_sd_id(fc, cfg, v, err, errlen);
    if (fwdconf_key_is(key, "cee"))
        return fwdconf_bool(cfg, v, "cee", &fc->cee, err, errlen);
    if (fwdconf_key_is(key, "max_message_bytes"))
        return st_config_int_in(cfg, v, "max_message_bytes",
                                ST_SYSLOG_MIN_MESSAGE,
                                ST_SYSLOG_MAX_MESSAGE_LIMIT, &fc->max_message,
                                err, errlen);
    if (fwdconf_key_is(key, "forward_queue_bytes"))
        return st_config_int_in(cfg, v, "forward_queue_bytes",
                                ST_FWD_MIN_QUEUE_BYTES,
                                (long long)(SIZE_MAX / 4), &fc->queue_bytes,
                                err, errlen);
    if (fwdconf_key_is(key, "forward_drain_ms"))
        return st_config_int_in(cfg, v, "forward_drain_ms", 0, 3600000,
                                &fc->drain_ms, err, errlen);
    /* log_file: a path is the collector's own log (settings.c); a
     * boolean turns the .tracer files off (false) or leaves them on. */
    if (fwdconf_key_is(key, "log_file") &&
        st_config_kind(v) == ST_CONFIG_SCALAR &&
        st_config_resolve(v) == ST_CONFIG_BOOL) {
        r = fwdconf_bool(cfg, v, "log_file", &on, err, errlen);
        fc->files_off = !on;
        return r;
    }
    return ST_FWDCONF_NOT_MINE;
}

int
st__fwdconf_check(const struct st_fwdconf *fc, char *err, size_t errlen)
{
    if (fc->files_off && fc->nurls == 0) {
        snprintf(err, errlen,
                 "log_file: false turns the .tracer files off, but no "
                 "forward destination is set; add forward: [URL] or "
                 "--forward URL, or remove log_file: false");
        return -1;
    }
    if (fc->max_message + 16 > fc->queue_bytes) {
        snprintf(err, errlen,
                 "max_message_bytes (%llu) must be smaller than "
                 "forward_queue_bytes (%llu); raise forward_queue_bytes",
                 (unsigned long long)fc->max_message,
                 (unsigned long long)fc->queue_bytes);
        return -1;
    }
    return 0;
}
