/* Growable byte buffer; see steptrace/buf.h. */
#include "steptrace/buf.h"

#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"

void
st_buf_init(struct st_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
    b->borrowed = 0;
}

void
st_buf_close(struct st_buf *b)
{
    if (!b->borrowed)
        free(b->data);
    st_buf_init(b);
}

void
st_buf_borrow(struct st_buf *b, char *p, size_t cap)
{
    st_buf_close(b);
    b->data = p;
    b->cap = cap;
    b->borrowed = 1;
}

int
st__buf_reserve_slow(struct st_buf *b, size_t extra)
{
    size_t want, cap;
    char *p;

    if (b->oom)
        return ST_ENOMEM;
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        goto err_nomem;
    want = b->len + extra;
    /* Borrowed room may be large: growing out of it starts small. */
    cap = b->cap && !b->borrowed ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    if (b->borrowed) {
        /* Out of the caller's memory: the bytes move into ours. */
        p = malloc(cap);
        if (p != NULL && b->len > 0)
            memcpy(p, b->data, b->len);
    }
    else {
        p = realloc(b->data, cap);
    }
    if (p == NULL)
        goto err_nomem;
    b->data = p;
    b->cap = cap;
    b->borrowed = 0;
    return 0;

err_nomem:
    if (b->borrowed) {
        /* What was written there is lost; nothing points there now. */
        b->data = NULL;
        b->len = b->cap = 0;
        b->borrowed = 0;
    }
    b->oom = 1;
    return ST_ENOMEM;
}

int
st_buf_append(struct st_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return b->oom ? ST_ENOMEM : 0;
    if (st_buf_reserve(b, n) != 0)
        return ST_ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
st_buf_puts(struct st_buf *b, const char *s)
{
    return st_buf_append(b, s, strlen(s));
}

/* "00" to "99": two digits per division (record numbers, lines). */
static const char buf_digits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";

static size_t
buf_u64_ndigits(uint64_t v)
{
    size_t n = 1;

    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

size_t
st_buf_format_u64(char *p, uint64_t v)
{
    size_t n = buf_u64_ndigits(v), i = n;

    /* Filled from the end, since the length is known. */
    while (v >= 100) {
        size_t d = (size_t)(v % 100) * 2;

        v /= 100;
        p[--i] = buf_digits2[d + 1];
        p[--i] = buf_digits2[d];
    }
    if (v >= 10) {
        p[1] = buf_digits2[v * 2 + 1];
        p[0] = buf_digits2[v * 2];
    }
    else {
        p[0] = (char)('0' + v);
    }
    return n;
}

int
st_buf_put_u64(struct st_buf *b, uint64_t v)
{
    if (st_buf_reserve(b, ST_BUF_U64_MAX) != 0)
        return ST_ENOMEM;
    b->len += st_buf_format_u64(b->data + b->len, v);
    return 0;
}

void
st_buf_consume(struct st_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void *
st_grow(void *p, size_t *cap, size_t want, size_t size, size_t first)
{
    size_t n = *cap ? *cap : first;
    void *np;

    if (p != NULL && want <= *cap)
        return p;
    while (n < want)
        n *= 2;
    if (n > SIZE_MAX / size)
        return NULL;
    np = realloc(p, n * size);
    if (np != NULL)
        *cap = n;
    return np;
}

int
st_buf_msgpack_write(void *data, const char *buf, size_t len)
{
    return st_buf_append((struct st_buf *)data, buf, len) == 0 ? 0 : -1;
}
