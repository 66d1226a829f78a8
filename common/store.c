/*
 * Reading a step store file in bounded chunks (store.h).
 */
#include "steptrace/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steptrace/error.h"

/* Bytes read at a time. */
#define STORE_CHUNK (1u << 20)

static void
store_init(struct st_store_reader *r)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    st_wire_decoder_init(&r->dec);
}

int
st_store_open_fd(struct st_store_reader *r, int fd, const char *name)
{
    char magic[ST_STORE_MAGIC_LEN];
    struct stat stb;
    size_t got = 0;
    ssize_t n;

    store_init(r);
    if (fstat(fd, &stb) != 0) {
        snprintf(r->err, sizeof(r->err), "%s: %s", name, strerror(errno));
        return -1;
    }
    if (S_ISDIR(stb.st_mode)) {
        snprintf(r->err, sizeof(r->err),
                 "%s: is a directory; name a .steps file in it", name);
        return -1;
    }
    r->size = S_ISREG(stb.st_mode) ? (uint64_t)stb.st_size : UINT64_MAX;
    while (got < sizeof(magic)) {
        n = read(fd, magic + got, sizeof(magic) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(r->err, sizeof(r->err), "%s: %s", name, strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof(magic) || memcmp(magic, ST_STORE_MAGIC, got) != 0) {
        snprintf(r->err, sizeof(r->err),
                 "%s: not a steptrace step store (%s); give a .steps file "
                 "written with --log-format steps or both",
                 name,
                 got == 0 ? "empty file"
                 : memcmp(magic, ST_STORE_MAGIC, got) != 0
                     ? "it does not begin with the .steps magic"
                     : "cut short inside its first bytes");
        return -1;
    }
    r->fd = fd;
    r->base = ST_STORE_MAGIC_LEN;
    return 0;
}

int
st_store_open(struct st_store_reader *r, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        store_init(r);
        snprintf(r->err, sizeof(r->err), "%s: %s", path, strerror(errno));
        return -1;
    }
    if (st_store_open_fd(r, fd, path) != 0) {
        close(fd);
        r->fd = -1;
        return -1;
    }
    return 0;
}

void
st_store_close(struct st_store_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
    st_wire_decoder_close(&r->dec);
}

/* Reads more of the file after what buf holds (moving the unread bytes
 * to its start).  @return 0, or -1 with r->err. */
static int
store_fill(struct st_store_reader *r)
{
    ssize_t n;

    if (r->off > 0) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->complete -= r->off;
        r->base += r->off;
        r->off = 0;
    }
    if (r->len == r->cap &&
        (r->size == UINT64_MAX || r->base + r->len < r->size)) {
        /* A record larger than the buffer: grow, never past the file's
         * size nor the largest record.  (A buffer holding the rest of
         * the file is not grown: the next read says it ends.) */
        size_t cap = r->cap ? r->cap * 2 : STORE_CHUNK;
        char *nb;

        if (r->cap >= ST_STORE_MAX_RECORD) {
            snprintf(r->err, sizeof(r->err),
                     "byte %llu: a record longer than %u bytes: the file is "
                     "damaged",
                     (unsigned long long)r->base, ST_STORE_MAX_RECORD);
            return -1;
        }
        if (r->size != UINT64_MAX && cap > r->size - r->base)
            cap = (size_t)(r->size - r->base);
        nb = realloc(r->buf, cap);
        if (nb == NULL) {
            snprintf(r->err, sizeof(r->err), "out of memory");
            return -1;
        }
        r->buf = nb;
        r->cap = cap;
    }
    /* No room: the buffer holds the rest of the file, or there is no
     * buffer at all (a file of only the magic): the file ends here, and
     * r->buf may be NULL, which must not take an offset. */
    if (r->len == r->cap)
        n = 0;
    else
        do {
            n = read(r->fd, r->buf + r->len, r->cap - r->len);
        } while (n < 0 && errno == EINTR);
    if (n < 0) {
        snprintf(r->err, sizeof(r->err), "byte %llu: %s",
                 (unsigned long long)(r->base + r->len), strerror(errno));
        return -1;
    }
    if (n == 0)
        r->eof = 1;
    r->len += (size_t)n;
    return 0;
}

/* Makes r->complete > r->off (whole messages to decode), or finds the
 * end.  @return 1, 0 (end), or -1 with r->err. */
static int
store_more(struct st_store_reader *r)
{
    size_t complete;
    int n;

    while (r->complete <= r->off) {
        if (r->off == r->len && r->eof)
            return 0;
        if (r->len > r->off) {
            n = st_wire_validate_prefix(r->buf + r->off, r->len - r->off,
                                        &complete);
            if (n < 0) {
                snprintf(r->err, sizeof(r->err),
                         "byte %llu: the bytes are no step store record "
                         "(%s): the file is damaged",
                         (unsigned long long)(r->base + r->off),
                         st_strerror(n));
                return -1;
            }
            if (complete > 0) {
                r->complete = r->off + complete;
                break;
            }
        }
        if (r->eof) {
            /* Bytes that never become a whole record: cut short. */
            r->cut = r->base + r->off;
            return 0;
        }
        if (store_fill(r) != 0)
            return -1;
    }
    st_wire_decoder_reset(&r->dec, r->buf + r->off, r->complete - r->off);
    return 1;
}

int
st_store_next(struct st_store_reader *r, struct st_msg *m)
{
    int n;

    if (r->fd < 0)
        return 0;
    for (;;) {
        if (r->dec.data != NULL && r->dec.off < r->dec.len)
            break;
        /* The window of whole messages is used up: the next one. */
        if (r->dec.data != NULL) {
            r->off += r->dec.len;
            r->dec.data = NULL;
        }
        n = store_more(r);
        if (n <= 0)
            return n;
    }
    r->last = r->base + r->off + r->dec.off;
    n = st_wire_decode_next(&r->dec, m);
    if (n <= 0) {
        snprintf(r->err, sizeof(r->err),
                 "byte %llu: a record that cannot be read (%s): the file is "
                 "damaged",
                 (unsigned long long)r->last,
                 n == 0 ? "no message" : st_strerror(n));
        return -1;
    }
    r->records++;
    return 1;
}

uint64_t
st_store_offset(const struct st_store_reader *r)
{
    return r->last;
}
