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
}

void
st_buf_close(struct st_buf *b)
{
    free(b->data);
    st_buf_init(b);
}

int
st_buf_reserve(struct st_buf *b, size_t extra)
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
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        goto err_nomem;
    b->data = p;
    b->cap = cap;
    return 0;

err_nomem:
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

int
st_buf_put_u64(struct st_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return st_buf_append(b, tmp + i, sizeof(tmp) - i);
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

int
st_buf_msgpack_write(void *data, const char *buf, size_t len)
{
    return st_buf_append((struct st_buf *)data, buf, len) == 0 ? 0 : -1;
}
