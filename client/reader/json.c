/*
 * JSON output helpers (json.h).  rd_json_str is on the export's hot path
 * (every name and value of every step): runs of plain bytes are copied
 * in one append, and only the bytes that need it are looked at closer.
 */
#include "json.h"

#include <string.h>

/* 1: the byte is printable ASCII other than '"' and '\', copied as is. */
static const unsigned char json_plain[256] = {
    /* clang-format off: a table of 0x20-0x7f by rows of 16. */
    [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    [0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* clang-format on */
};

/* The length of the valid UTF-8 sequence at p (of at most n bytes)
 * starting with a byte >= 0x80, or 0 (Unicode 15, table 3-7). */
static size_t
json_utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t len, i;

    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    /* The second byte's range excludes overlong forms, surrogates and
     * code points past U+10FFFF. */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* One byte that is not plain: an escape, a UTF-8 sequence or U+FFFD.
 * @return the bytes of p consumed. */
static size_t
json_special(struct st_buf *out, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0', 0, 0};
    size_t len;

    switch (p[0]) {
    case '"': rd_json_raw(out, "\\\"", 2); return 1;
    case '\\': rd_json_raw(out, "\\\\", 2); return 1;
    case '\n': rd_json_raw(out, "\\n", 2); return 1;
    case '\r': rd_json_raw(out, "\\r", 2); return 1;
    case '\t': rd_json_raw(out, "\\t", 2); return 1;
    case '\b': rd_json_raw(out, "\\b", 2); return 1;
    case '\f': rd_json_raw(out, "\\f", 2); return 1;
    default: break;
    }
    if (p[0] < 0x20) {
        esc[4] = hex[p[0] >> 4];
        esc[5] = hex[p[0] & 0xf];
        rd_json_raw(out, esc, sizeof(esc));
        return 1;
    }
    if (p[0] == 0x7f) {
        rd_json_raw(out, (const char *)p, 1);
        return 1;
    }
    len = json_utf8_len(p, n);
    if (len == 0) {
        rd_json_raw(out, "\\ufffd", 6);
        return 1;
    }
    rd_json_raw(out, (const char *)p, len);
    return len;
}

void
rd_json_chars(struct st_buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, start;

    while (i < n) {
        start = i;
        while (i < n && json_plain[p[i]])
            i++;
        if (i > start)
            rd_json_raw(out, s + start, i - start);
        if (i < n)
            i += json_special(out, p + i, n - i);
    }
}

void
rd_json_str(struct st_buf *out, const char *s, size_t n)
{
    /* Room for the common case at once: every byte plain. */
    if (st_buf_reserve(out, n + 2) != 0)
        return;
    out->data[out->len++] = '"';
    rd_json_chars(out, s, n);
    rd_json_raw(out, "\"", 1);
}

void
rd_json_cstr(struct st_buf *out, const char *s)
{
    rd_json_str(out, s, strlen(s));
}

void
rd_json_raw(struct st_buf *out, const char *s, size_t n)
{
    if (out->len + n <= out->cap) {
        memcpy(out->data + out->len, s, n);
        out->len += n;
        return;
    }
    st_buf_append(out, s, n);
}

void
rd_json_u64(struct st_buf *out, uint64_t v)
{
    if (st_buf_reserve(out, ST_BUF_U64_MAX) != 0)
        return;
    out->len += st_buf_format_u64(out->data + out->len, v);
}

void
rd_json_us(struct st_buf *out, uint64_t ns)
{
    char frac[4];
    uint64_t rest = ns % 1000;

    rd_json_u64(out, ns / 1000);
    frac[0] = '.';
    frac[1] = (char)('0' + rest / 100);
    frac[2] = (char)('0' + rest / 10 % 10);
    frac[3] = (char)('0' + rest % 10);
    rd_json_raw(out, frac, sizeof(frac));
}
