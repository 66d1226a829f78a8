/*
 * A file of arbitrary bytes through `steptrace show`'s reader: the store
 * reader (common/store.c, on a memfd, read in its bounded chunks) and the
 * replay (common/replay.c) at a level and variable mode the first byte
 * picks, every shown record rendered as client/reader/show.c renders it
 * (st_replay_render; the thread name its --thread filter asks for).
 *
 * Input: byte 0 = level (bits 0-2) and var_mode (bits 3-4, 0: as
 * recorded); the rest is the file, starting with the .steps magic.
 */
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include "steptrace/buf.h"
#include "steptrace/error.h"
#include "steptrace/replay.h"
#include "steptrace/store.h"

static const int store_levels[] = {ST_LEVEL_DEBUG, ST_LEVEL_INFO,
                                   ST_LEVEL_WARNING, ST_LEVEL_ERROR,
                                   ST_LEVEL_SILENT};

/* The file's bytes in a memfd, at offset 0.  @return the fd or -1. */
static int
store_file(const uint8_t *p, size_t n)
{
    int fd = memfd_create("fuzz.steps", MFD_CLOEXEC);
    size_t off = 0;

    if (fd < 0)
        return -1;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);

        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* What show_record does with a record that passes. */
static void
store_render(struct st_replay *rp, struct st_buf *out)
{
    if (rp->rec.f != NULL) {
        char tmp[16];
        struct st_str t = st_replay_thread_name(rp, rp->rec.f->tid, tmp,
                                                sizeof(tmp));

        FUZZ_CHECK(t.p != NULL || t.n == 0);
    }
    if (!rp->rec.shown)
        return;
    FUZZ_CHECK(st_replay_render(rp, out) == 0);
    /* The reader writes its buffer out now and then; so do we. */
    if (out->len > 65536)
        out->len = 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_store_reader r;
    struct st_replay rp;
    struct st_buf out;
    struct st_msg m;
    int fd, n, e, level, mode;

    if (size < 1)
        return 0;
    level = store_levels[(data[0] & 7) % 5];
    mode = (data[0] >> 3) & 3;
    fd = store_file(data + 1, size - 1);
    if (fd < 0)
        return 0;
    if (st_store_open_fd(&r, fd, "fuzz.steps") != 0) {
        FUZZ_CHECK(r.err[0] != '\0');
        st_store_close(&r);
        close(fd);
        return 0;
    }
    st_buf_init(&out);
    st_replay_init(&rp, level, mode);
    while ((n = st_store_next(&r, &m)) == 1) {
        e = st_replay_apply(&rp, &m);
        FUZZ_CHECK(e != ST_ENOMEM);
        /* A record naming what the file never defined: the reader
         * skips it (and says so). */
        if (e != 0)
            continue;
        store_render(&rp, &out);
    }
    FUZZ_CHECK(n == 0 || r.err[0] != '\0');
    FUZZ_CHECK(r.records <= size);
    st_replay_close(&rp);
    st_buf_close(&out);
    st_store_close(&r); /* Closes fd. */
    return 0;
}
