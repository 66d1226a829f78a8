/*
 * RFC 5424 messages with RFC 6587 octet-counting framing (see syslog.h
 * and docs/COLLECTOR.md section 13):
 *
 *   LEN SP <PRI>1 TIMESTAMP HOSTNAME steptrace PROCID MSGID
 *          [SD-ID run="..." file="..." ...] MSG
 *
 * MSG is a JSON object (no BOM: rsyslog's mmjsonparse wants the "@cee:"
 * cookie or the "{" first).  Values are cut, never the header, when a
 * message would pass max_message.
 */
#include "syslog.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "steptrace/error.h"

/* Room kept at the end of a cut body for `,"truncated":true,...}}`. */
#define SYSLOG_CLOSE_RESERVE 64u

static const char syslog_hex[] = "0123456789abcdef";

/* st_buf_append with the common case (room enough) inline: a message is
 * made of many short pieces. */
static inline void
syslog_put(struct st_buf *out, const void *p, size_t n)
{
    if (out->cap - out->len >= n && out->data != NULL) {
        memcpy(out->data + out->len, p, n);
        out->len += n;
        return;
    }
    st_buf_append(out, p, n);
}

#define SYSLOG_LIT(out, s) syslog_put((out), (s), sizeof(s) - 1)

static inline void
syslog_puts(struct st_buf *out, const char *s)
{
    syslog_put(out, s, strlen(s));
}

void
st__syslog_conf_init(struct st_syslog_conf *conf)
{
    char *p;

    memset(conf, 0, sizeof(*conf));
    conf->facility = 1;
    conf->sd_id = ST_SYSLOG_SD_ID;
    conf->max_message = ST_SYSLOG_MAX_MESSAGE;
    conf->cached_sec = -1;
    if (gethostname(conf->hostname, sizeof(conf->hostname) - 1) != 0 ||
        conf->hostname[0] == '\0')
        strcpy(conf->hostname, "-");
    conf->hostname[sizeof(conf->hostname) - 1] = '\0';
    /* HOSTNAME is 1*255PRINTUSASCII (RFC 5424 section 6.2.4). */
    for (p = conf->hostname; *p != '\0'; p++)
        if ((unsigned char)*p < 33 || (unsigned char)*p > 126)
            *p = '-';
}

int
st__syslog_facility(const char *name)
{
    static const char *const names[] = {"kern",   "user",     "mail",
                                        "daemon", "auth",     "syslog",
                                        "lpr",    "news",     "uucp",
                                        "cron",   "authpriv", "ftp",
                                        "ntp",    "security", "console",
                                        "clock"};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    if (strncmp(name, "local", 5) == 0 && name[5] >= '0' && name[5] <= '7' &&
        name[6] == '\0')
        return 16 + (name[5] - '0');
    return -1;
}

int
st__syslog_sd_id_ok(const char *s)
{
    const char *at = strchr(s, '@');
    size_t n = strlen(s), i;

    /* SD-NAME is at most 32 characters; a private SD-ID is
     * NAME@ENTERPRISE-NUMBER (RFC 5424 section 7.2.2). */
    if (at == NULL || at == s || n > 32 || at[1] == '\0')
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch < 33 || ch > 126 || ch == '=' || ch == ']' || ch == '"')
            return 0;
        if (s + i > at && (ch < '0' || ch > '9'))
            return 0;
    }
    return 1;
}

/* Length of the valid UTF-8 character at p (n bytes left), or 0. */
static size_t
syslog_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        /* Overlong forms and surrogates. */
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
            (p[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

int
st__syslog_sd_escape(struct st_buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < n) {
        size_t k;

        if (p[i] < 0x80 && p[i] != '"' && p[i] != '\\' && p[i] != ']') {
            run++;
            i++;
            continue;
        }
        k = syslog_utf8_len(p + i, n - i);
        if (k > 1) {
            run += k;
            i += k;
            continue;
        }
        syslog_put(out, p + i - run, run);
        run = 0;
        if (k == 0)
            syslog_put(out, "?", 1);
        else {
            syslog_put(out, "\\", 1);
            syslog_put(out, p + i, 1);
        }
        i++;
    }
    syslog_put(out, p + i - run, run);
    return out->oom ? ST_ENOMEM : 0;
}

int
st__syslog_json_escape(struct st_buf *out, const char *s, size_t n,
                       size_t limit)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    if (st_buf_reserve(out, n < limit ? n + 8 : limit + 8) != 0)
        return ST_ENOMEM;
    while (i < n) {
        size_t k = syslog_utf8_len(p + i, n - i);
        char esc[8];

        if (i + (k ? k : 1) > limit)
            break;
        if (k == 1 && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\' &&
            p[i] != 0x7f) {
            run++;
            i++;
            continue;
        }
        if (k > 1) {
            run += k;
            i += k;
            continue;
        }
        /* Flush the plain run before an escape. */
        syslog_put(out, p + i - run, run);
        run = 0;
        if (k == 0) {
            syslog_put(out, "\\ufffd", 6);
        }
        else if (p[i] == '"' || p[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)p[i];
            syslog_put(out, esc, 2);
        }
        else if (p[i] == '\n') {
            syslog_put(out, "\\n", 2);
        }
        else if (p[i] == '\r') {
            syslog_put(out, "\\r", 2);
        }
        else if (p[i] == '\t') {
            syslog_put(out, "\\t", 2);
        }
        else {
            memcpy(esc, "\\u00", 4);
            esc[4] = syslog_hex[p[i] >> 4];
            esc[5] = syslog_hex[p[i] & 15];
            syslog_put(out, esc, 6);
        }
        i++;
    }
    syslog_put(out, p + i - run, run);
    return out->oom ? ST_ENOMEM : 0;
}

/* "\"s\"" as a JSON string, cut at limit bytes of s. */
static void
syslog_json_str(struct st_buf *out, struct st_str s, size_t limit)
{
    syslog_put(out, "\"", 1);
    st__syslog_json_escape(out, s.p != NULL ? s.p : "", s.n, limit);
    syslog_put(out, "\"", 1);
}

/* `"key":"value"` with the value cut at limit, and its full length
 * when it was cut; sets *cut then. */
static void
syslog_json_value(struct st_buf *out, const char *key, struct st_str v,
                  size_t limit, int *cut)
{
    syslog_put(out, ",\"", 2);
    syslog_puts(out, key);
    syslog_put(out, "\":", 2);
    syslog_json_str(out, v, limit);
    if (v.n > limit) {
        *cut = 1;
        syslog_put(out, ",\"", 2);
        syslog_puts(out, key);
        syslog_puts(out, "_bytes\":");
        st_buf_put_u64(out, v.n);
    }
}

/* One variable: "name":{"type":...,"value":...[,"change":...]}. */
static void
syslog_json_var(struct st_buf *out, const struct st_var_view *v, size_t limit,
                int *cut)
{
    static const char *const changes[] = {NULL, "new", "changed", "deleted"};

    syslog_json_str(out, v->name, (size_t)-1);
    syslog_put(out, ":{\"change\":\"", 12);
    if (v->change == ST_VAR_PLAIN) {
        out->len -= 12;
        syslog_put(out, ":{\"type\":", 9);
        syslog_json_str(out, v->type, (size_t)-1);
    }
    else {
        syslog_puts(out, changes[v->change & 3]);
        syslog_put(out, "\"", 1);
        if (v->change != ST_VAR_DELETED) {
            syslog_put(out, ",\"type\":", 8);
            syslog_json_str(out, v->type, (size_t)-1);
        }
    }
    if (v->change != ST_VAR_DELETED)
        syslog_json_value(out, "value", v->value, limit, cut);
    if (v->change == ST_VAR_CHANGED)
        syslog_json_value(out, "old", v->old, limit, cut);
    syslog_put(out, "}", 1);
}

/* A section of variables; entries that would pass `end` (an offset in
 * out) are left out and counted in *omitted. */
static void
syslog_json_vars(struct st_buf *out, const char *name,
                 const struct st_var_view *vars, size_t n, size_t limit,
                 size_t end, int *cut, uint64_t *omitted, int *first)
{
    size_t i, mark = out->len;
    int any = 0;

    if (n == 0)
        return;
    syslog_puts(out, *first ? "\"" : ",\"");
    syslog_puts(out, name);
    syslog_put(out, "\":{", 3);
    for (i = 0; i < n; i++) {
        size_t at = out->len;

        if (any)
            syslog_put(out, ",", 1);
        syslog_json_var(out, &vars[i], limit, cut);
        if (out->len + SYSLOG_CLOSE_RESERVE > end) {
            out->len = at;
            (*omitted)++;
            continue;
        }
        any = 1;
    }
    if (!any) {
        out->len = mark;
        return;
    }
    syslog_put(out, "}", 1);
    *first = 0;
}

static const char *
syslog_event_name(int event)
{
    switch (event) {
    case ST_EVENT_CALL: return "call";
    case ST_EVENT_RETURN: return "return";
    case ST_EVENT_RETURN_EXC: return "return_exc";
    case ST_EVENT_EXCEPTION: return "exception";
    default: return "step";
    }
}

/* An event's text as its file line shows it ("Call: f", ...). */
static void
syslog_json_event(struct st_buf *out, const struct st_syslog_rec *rec,
                  size_t limit, int *cut)
{
    const struct st_step_view *v = rec->view;
    struct st_str func = rec->func;

    syslog_puts(out, "\"event\":\"");
    syslog_puts(out, syslog_event_name(v->event));
    syslog_puts(out, "\",\"func\":");
    syslog_json_str(out, func, (size_t)-1);
    if (v->event == ST_EVENT_RETURN)
        syslog_json_value(out, "text", v->detail, limit, cut);
    else if (v->event == ST_EVENT_EXCEPTION)
        syslog_json_value(out, "text", v->detail, limit, cut);
}

/* The JSON object of MSG, values cut at `limit` bytes, entries past `end`
 * left out. */
static void
syslog_body(const struct st_syslog_rec *rec, struct st_buf *out, size_t limit,
            size_t end)
{
    const struct st_step_view *v = rec->view;
    uint64_t omitted = 0;
    int cut = 0, first = 1;

    syslog_put(out, "{", 1);
    if (rec->kind == ST_SYSLOG_STEP) {
        syslog_json_vars(out, "globals", v->globals, v->nglobals, limit, end,
                         &cut, &omitted, &first);
        syslog_json_vars(out, "locals", v->locals, v->nlocals, limit, end,
                         &cut, &omitted, &first);
    }
    else if (rec->kind == ST_SYSLOG_EVENT) {
        syslog_json_event(out, rec, limit, &cut);
        first = 0;
    }
    else {
        if (rec->kind == ST_SYSLOG_ASYNC) {
            syslog_puts(out, "\"kind\":\"");
            syslog_puts(out, rec->async_kind);
            syslog_put(out, "\"", 1);
        }
        else {
            syslog_puts(out, "\"note\":true");
        }
        syslog_json_value(out, "text", rec->text, limit, &cut);
        first = 0;
    }
    if (cut || omitted > 0) {
        syslog_puts(out, first ? "\"truncated\":true" : ",\"truncated\":true");
        if (omitted > 0) {
            syslog_puts(out, ",\"omitted\":");
            st_buf_put_u64(out, omitted);
        }
    }
    syslog_put(out, "}", 1);
}

/* TIMESTAMP: RFC 3339 with microseconds and the local UTC offset. */
static void
syslog_timestamp(struct st_syslog_conf *conf, struct st_buf *out,
                 uint64_t time_us)
{
    int64_t sec = (int64_t)(time_us / 1000000u);
    unsigned us = (unsigned)(time_us % 1000000u);
    char frac[8];

    if (sec != conf->cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        long off, h, m;

        localtime_r(&t, &tm);
        strftime(conf->cached_date, sizeof(conf->cached_date),
                 "%Y-%m-%dT%H:%M:%S", &tm);
        off = tm.tm_gmtoff;
        h = (off < 0 ? -off : off) / 3600 % 24;
        m = (off < 0 ? -off : off) % 3600 / 60;
        conf->cached_off[0] = off < 0 ? '-' : '+';
        conf->cached_off[1] = (char)('0' + h / 10);
        conf->cached_off[2] = (char)('0' + h % 10);
        conf->cached_off[3] = ':';
        conf->cached_off[4] = (char)('0' + m / 10);
        conf->cached_off[5] = (char)('0' + m % 10);
        conf->cached_off[6] = '\0';
        conf->cached_sec = sec;
    }
    syslog_puts(out, conf->cached_date);
    snprintf(frac, sizeof(frac), ".%06u", us);
    syslog_put(out, frac, 7);
    syslog_puts(out, conf->cached_off);
}

/* ` name="value"` for a string SD-PARAM (left out when p is NULL). */
static void
syslog_sd_str(struct st_buf *out, const char *name, struct st_str v)
{
    if (v.p == NULL)
        return;
    syslog_put(out, " ", 1);
    syslog_puts(out, name);
    syslog_put(out, "=\"", 2);
    st__syslog_sd_escape(out, v.p, v.n);
    syslog_put(out, "\"", 1);
}

static void
syslog_sd_u64(struct st_buf *out, const char *name, uint64_t v)
{
    syslog_put(out, " ", 1);
    syslog_puts(out, name);
    syslog_put(out, "=\"", 2);
    st_buf_put_u64(out, v);
    syslog_put(out, "\"", 1);
}

static void
syslog_header(struct st_syslog_conf *conf, const struct st_syslog_rec *rec,
              struct st_buf *out)
{
    static const char *const msgids[] = {"STEP", "EVENT", "ASYNC", "NOTE"};

    syslog_put(out, "<", 1);
    st_buf_put_u64(out, (uint64_t)(conf->facility * 8 + rec->severity));
    syslog_put(out, ">1 ", 3);
    syslog_timestamp(conf, out, rec->time_us);
    syslog_put(out, " ", 1);
    syslog_puts(out, conf->hostname);
    SYSLOG_LIT(out, " steptrace ");
    if (rec->pid != 0)
        st_buf_put_u64(out, rec->pid);
    else
        syslog_put(out, "-", 1);
    syslog_put(out, " ", 1);
    syslog_puts(out, msgids[rec->kind & 3]);
    syslog_put(out, " [", 2);
    syslog_puts(out, conf->sd_id);
    syslog_sd_str(out, "run", rec->run);
    syslog_sd_str(out, "file", rec->file);
    syslog_sd_str(out, "func", rec->func);
    if (rec->line != 0)
        syslog_sd_u64(out, "line", rec->line);
    /* Only a record of a region has a step and a region (a NOTE of the
     * forwarder's own has neither). */
    if (rec->run.p != NULL)
        syslog_sd_u64(out, "step", rec->step);
    syslog_sd_str(out, "thread", rec->thread);
    if (rec->run.p != NULL)
        syslog_sd_u64(out, "region", rec->region);
    if (rec->has_runtime)
        syslog_sd_u64(out, "runtime_ns", rec->runtime_ns);
    syslog_put(out, "] ", 2);
    if (conf->cee)
        SYSLOG_LIT(out, "@cee:");
}

int
st__syslog_frame(struct st_syslog_conf *conf, const struct st_syslog_rec *rec,
                 struct st_buf *out)
{
    size_t frame = out->len, gap = conf->gap, start, body, end, limit, len, nd;
    char digits[ST_BUF_U64_MAX + 1];

    /* Room for "LEN SP", as long as the last message's: moved only when
     * the length has another number of digits. */
    if (gap == 0 || gap > ST_BUF_U64_MAX + 1)
        gap = 4;
    if (st_buf_reserve(out, gap + 512) != 0)
        return ST_ENOMEM;
    out->len += gap;
    start = out->len;
    syslog_header(conf, rec, out);
    body = out->len;
    /* The header is never cut: a body gets what is left, at least room
     * for "{}" and the truncation mark. */
    end = start + conf->max_message;
    if (end < body + 2 * SYSLOG_CLOSE_RESERVE)
        end = body + 2 * SYSLOG_CLOSE_RESERVE;
    syslog_body(rec, out, (size_t)-1, (size_t)-1);
    /* Too long: cut every value at `limit` bytes, halving it until the
     * message fits; entries that still do not fit are left out. */
    limit = (end - body) / 2;
    while (!out->oom && out->len > end) {
        out->len = body;
        syslog_body(rec, out, limit, end);
        if (limit == 0)
            break;
        limit /= 2;
    }
    if (out->oom)
        return ST_ENOMEM;
    /* The frame: "LEN SP" before the message (RFC 6587 section 3.4.1). */
    len = out->len - start;
    nd = st_buf_format_u64(digits, len);
    digits[nd++] = ' ';
    if (nd > gap && st_buf_reserve(out, nd - gap) != 0)
        return ST_ENOMEM;
    if (nd != gap)
        memmove(out->data + frame + nd, out->data + start, len);
    memcpy(out->data + frame, digits, nd);
    out->len = frame + nd + len;
    conf->gap = nd;
    return 0;
}
