/*
 * A growable byte buffer (the caller owns the struct, the buffer owns the
 * bytes): st_buf_init / st_buf_close.
 */
#ifndef STEPTRACE_COMMON_BUF_H
#define STEPTRACE_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct st_buf {
    char *data;   /* Owned; NULL until the first append (borrowed after
                     st_buf_borrow, until the first growth). */
    size_t len;   /* Bytes in use. */
    size_t cap;   /* Bytes allocated. */
    int oom;      /* Sticky: set when a growth failed; appends then no-op. */
    int borrowed; /* data is the caller's memory (st_buf_borrow). */
};

void st_buf_init(struct st_buf *b);

/* Frees the bytes (not borrowed ones); the struct may be initialised
 * again. */
void st_buf_close(struct st_buf *b);

/*
 * Makes b write into the caller's `cap` bytes at p (empty, len 0), which
 * it never frees: a growth past cap moves the bytes into memory of b's
 * own first.  Lets an encoder write straight into its destination (the
 * agent's ring) and fall back to a copy only when it does not fit.  What
 * b held before is dropped.
 */
void st_buf_borrow(struct st_buf *b, char *p, size_t cap);

/*
 * Makes room for at least `extra` more bytes.
 * @return 0, or ST_ENOMEM (and sets b->oom).
 */
int st__buf_reserve_slow(struct st_buf *b, size_t extra);

static inline int
st_buf_reserve(struct st_buf *b, size_t extra)
{
    /* Inline: the room is there (every record of a batch but the one
     * that fills it). */
    if (__builtin_expect(!b->oom && extra <= b->cap - b->len, 1))
        return 0;
    return st__buf_reserve_slow(b, extra);
}

/* Appends bytes.  @return 0 or ST_ENOMEM. */
int st_buf_append(struct st_buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string (without the NUL). */
int st_buf_puts(struct st_buf *b, const char *s);

/* Appends the decimal form of v. */
int st_buf_put_u64(struct st_buf *b, uint64_t v);

/* Most bytes st_buf_format_u64 writes (UINT64_MAX has 20 digits). */
#define ST_BUF_U64_MAX 20

/*
 * Writes the decimal form of v at p, which has room for ST_BUF_U64_MAX
 * bytes; no NUL.  For formatters that reserved room once and write with
 * a cursor.
 * @return the number of bytes written.
 */
size_t st_buf_format_u64(char *p, uint64_t v);

/* Drops the first n bytes, keeping the rest. */
void st_buf_consume(struct st_buf *b, size_t n);

/*
 * msgpack-c write callback: `data` is a struct st_buf *.  Lets a
 * msgpack_packer encode straight into the buffer.
 */
int st_buf_msgpack_write(void *data, const char *buf, size_t len);

/*
 * The growable arrays' one growth step: returns `p` grown to hold at least
 * `want` (and at least one) elements of `size` bytes, its capacity
 * doubling from `first`, with *cap updated; or NULL when out of memory
 * (`p` and *cap are then left as they were).
 */
void *st_grow(void *p, size_t *cap, size_t want, size_t size, size_t first);

#endif /* STEPTRACE_COMMON_BUF_H */
