/*
 * Reading a step store file (docs/STEP-STORE.md): the magic, then whole
 * messages, read in bounded chunks (memory stays constant whatever the
 * file's size; no buffer ever exceeds the file's size), each validated
 * before it is decoded.  A file cut short ends at its last whole record
 * (st_store_reader.cut says where); bytes that are no store give an error
 * naming the offset.  The readers (client/reader) and the fuzz harness
 * use it; replay.h applies what it reads.
 */
#ifndef STEPTRACE_COMMON_STORE_H
#define STEPTRACE_COMMON_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/wire.h"

/* The first bytes of every .steps file. */
#define ST_STORE_MAGIC "\x89STEPS\r\n"
#define ST_STORE_MAGIC_LEN 8
/* The version of the format written (STORE's field 1). */
#define ST_STORE_VERSION 1u
/* The largest record a reader takes (a message the collector accepts is
 * at most a ring's worth; a frame at most ST_WIRE_MAX_FRAME). */
#define ST_STORE_MAX_RECORD (64u * 1024 * 1024)

struct st_store_reader {
    int fd;           /* Owned (st_store_open) or -1. */
    uint64_t size;    /* The file's size at open. */
    char *buf;        /* Owned: bytes read from file offset base. */
    size_t cap, len;  /* Its capacity and the bytes in it. */
    size_t off;       /* Next message in buf. */
    size_t complete;  /* buf bytes validated as whole messages. */
    uint64_t base;    /* File offset of buf[0]. */
    int eof;          /* read() said the file ends. */
    uint64_t cut;     /* > 0: the file ends inside a record that
                         starts at this offset. */
    uint64_t records; /* Messages returned. */
    uint64_t last;    /* File offset of the last one. */
    struct st_wire_decoder dec;
    char err[256]; /* The error, when st_store_next failed. */
};

/*
 * Opens `path` and checks the magic.  @return 0, or -1 with a one-line
 * message in r->err ("PATH: not a steptrace step store (...)").
 */
int st_store_open(struct st_store_reader *r, const char *path);
/* The same on a descriptor that is already open (not closed here). */
int st_store_open_fd(struct st_store_reader *r, int fd, const char *name);
void st_store_close(struct st_store_reader *r);
/*
 * The next message into *m (its strings borrowed until the next call).
 * @return 1; 0 at the end of the file (r->cut > 0 when it was cut
 *         short); or -1 with r->err (bytes that are no store record,
 *         a read error), naming the byte offset.
 */
int st_store_next(struct st_store_reader *r, struct st_msg *m);
/* The file offset of the message st_store_next returned last. */
uint64_t st_store_offset(const struct st_store_reader *r);

#endif /* STEPTRACE_COMMON_STORE_H */
