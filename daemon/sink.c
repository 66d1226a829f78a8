/*
 * File sinks (SPEC section 4): one log file per (connection, tracer_id),
 * claimed as tracer.log or tracer_N.log with O_EXCL at the first record,
 * written with plain write(2) from the loop, rotated at record boundaries.
 *
 * Errors never stop the collector: each failed open or write is counted on
 * the connection (reported by the next ACK), logged once per distinct
 * message, and the affected buffered records are dropped so that memory
 * stays bounded.  A failed open is retried at the next flush.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steptrace/error.h"

#define SINK_DIR_MODE 0750
#define SINK_FILE_MODE 0640

/* Counts an error for the next ACK and logs it; the log line is skipped
 * when it repeats the previous one of this sink (a full disk must not
 * flood stderr). */
static void sink_fail(struct st_sink *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sink_fail(struct st_sink *s, const char *fmt, ...)
{
    char msg[PATH_MAX + 128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st__conn_note_error(s->conn, msg);
    if (s->logged != NULL && strcmp(s->logged, msg) == 0)
        return;
    st__log_info("%s", msg);
    free(s->logged);
    s->logged = strdup(msg);
}

/* After a success the next failure is worth a log line again. */
static void
sink_ok(struct st_sink *s)
{
    free(s->logged);
    s->logged = NULL;
}

int
st__sink_new(struct st_conn *c, uint32_t tracer_id, const char *dir,
             size_t dir_len, struct st_sink **out)
{
    struct st_sink *s;

    /* "/a/b///" names the directory "/a/b"; "/" stays "/". */
    while (dir_len > 1 && dir[dir_len - 1] == '/')
        dir_len--;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ST_ENOMEM;
    s->dir = malloc(dir_len + 1);
    if (s->dir == NULL) {
        free(s);
        return ST_ENOMEM;
    }
    memcpy(s->dir, dir, dir_len);
    s->dir[dir_len] = '\0';
    s->conn = c;
    s->tracer_id = tracer_id;
    s->fd = -1;
    st_buf_init(&s->buf);
    *out = s;
    return 0;
}

void
st__sink_free(struct st_sink *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0)
        close(s->fd);
    st_buf_close(&s->buf);
    free(s->dir);
    free(s->path);
    free(s->logged);
    free(s);
}

void
st__sink_configure(struct st_sink *s, uint64_t max_bytes, uint32_t max_files)
{
    s->max_bytes = max_bytes;
    /* Each backup costs a rename per rotation; a hostile count must not
     * turn one rotation into billions of system calls. */
    s->max_files = max_files > ST_MAX_LOG_FILES ? ST_MAX_LOG_FILES : max_files;
}

/* mkdir -p with mode 0750.  @return 0 or -errno. */
static int
sink_mkdirs(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir), i;

    /* Fast path: the directory usually exists already. */
    if (mkdir(dir, SINK_DIR_MODE) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -errno;
    if (len >= sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, SINK_DIR_MODE) != 0 && errno != EEXIST)
            return -errno;
        if (i < len)
            path[i] = '/';
    }
    return 0;
}

/* Size of the open file, for rotation decisions. */
static void
sink_stat(struct st_sink *s)
{
    struct stat st;

    s->file_size = fstat(s->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Claims tracer.log or the first free tracer_N.log in s->dir. */
static int
sink_claim(struct st_sink *s)
{
    char path[PATH_MAX];
    unsigned n;
    int r;

    r = sink_mkdirs(s->dir);
    if (r < 0) {
        sink_fail(s, "cannot create log directory %s: %s", s->dir,
                  st_strerror(r));
        return r;
    }
    for (n = 0; n < ST_MAX_CLAIM; n++) {
        int fd, len;

        if (n == 0)
            len = snprintf(path, sizeof(path), "%s/tracer.log", s->dir);
        else
            len = snprintf(path, sizeof(path), "%s/tracer_%u.log", s->dir, n);
        if (len < 0 || (size_t)len >= sizeof(path)) {
            sink_fail(s, "cannot create a log file in %s: %s", s->dir,
                      st_strerror(-ENAMETOOLONG));
            return -ENAMETOOLONG;
        }
        /* O_EXCL makes the claim atomic against every other tracer and
         * process using the same directory. */
        do {
            fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC,
                      SINK_FILE_MODE);
        } while (fd < 0 && errno == EINTR);
        if (fd >= 0) {
            s->path = strdup(path);
            if (s->path == NULL) {
                /* The empty file stays; a later attempt claims another. */
                close(fd);
                sink_fail(s, "cannot create %s: %s", path,
                          st_strerror(ST_ENOMEM));
                return ST_ENOMEM;
            }
            s->fd = fd;
            s->file_size = 0;
            return 0;
        }
        if (errno != EEXIST) {
            r = -errno;
            sink_fail(s, "cannot create %s: %s", path, st_strerror(r));
            return r;
        }
    }
    sink_fail(s, "cannot create a log file in %s: %u tracer files exist",
              s->dir, ST_MAX_CLAIM);
    return -EEXIST;
}

/* Opens the claimed name again for appending (after SIGHUP, a rotation or
 * a failed write), creating it if it was moved away. */
static int
sink_reopen_file(struct st_sink *s)
{
    int fd, r;

    r = sink_mkdirs(s->dir);
    if (r < 0) {
        sink_fail(s, "cannot create log directory %s: %s", s->dir,
                  st_strerror(r));
        return r;
    }
    do {
        fd = open(s->path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC,
                  SINK_FILE_MODE);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        r = -errno;
        sink_fail(s, "cannot open %s: %s", s->path, st_strerror(r));
        return r;
    }
    s->fd = fd;
    sink_stat(s);
    return 0;
}

/* Makes s->fd valid.  @return 0 or a counted, logged error. */
static int
sink_open(struct st_sink *s)
{
    int r;

    if (s->fd >= 0)
        return 0;
    r = s->path == NULL ? sink_claim(s) : sink_reopen_file(s);
    s->broken = r < 0;
    return r;
}

/* write(2) until done.  @return 0 or -errno. */
static int
sink_write_all(struct st_sink *s, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
        s->file_size += (uint64_t)w;
    }
    return 0;
}

/* Writes the first n buffered bytes and drops them from the buffer, also
 * on failure (the bytes cannot be kept forever). */
static int
sink_write_head(struct st_sink *s, size_t n)
{
    int r;

    if (n == 0)
        return 0;
    r = sink_open(s);
    if (r == 0) {
        r = sink_write_all(s, s->buf.data, n);
        if (r < 0) {
            sink_fail(s, "cannot write %s: %s", s->path, st_strerror(r));
            /* Reopen at the next write: the descriptor may be the cause. */
            close(s->fd);
            s->fd = -1;
        }
        else {
            sink_ok(s);
        }
    }
    st_buf_consume(&s->buf, n);
    if (s->mark >= n)
        s->mark -= n;
    return r;
}

/*
 * Renames name -> name.1 after shifting the backups up by one (the last
 * one is replaced, hence removed), then starts a fresh file.  If the
 * final rename fails, the current file stays open and keeps growing:
 * nothing is ever truncated.
 */
static void
sink_rotate(struct st_sink *s)
{
    char from[PATH_MAX], to[PATH_MAX];
    uint32_t i;
    int r;

    /* Session checks keep log_dir short enough for these names; refuse
     * rather than rename to a truncated name if that ever changes. */
    if (strlen(s->path) + 16 >= sizeof(to)) {
        sink_fail(s, "cannot rotate %s: %s", s->path,
                  st_strerror(-ENAMETOOLONG));
        s->rotate_off = 1;
        return;
    }
    for (i = s->max_files; i > 1; i--) {
        snprintf(from, sizeof(from), "%s.%u", s->path, i - 1);
        snprintf(to, sizeof(to), "%s.%u", s->path, i);
        /* Missing backups are the normal case: ignore ENOENT and the
         * like, the rename of the live file below is what matters. */
        (void)rename(from, to);
    }
    snprintf(to, sizeof(to), "%s.1", s->path);
    if (rename(s->path, to) != 0) {
        r = -errno;
        sink_fail(s, "cannot rotate %s: %s", s->path, st_strerror(r));
        s->rotate_off = 1;
        return;
    }
    close(s->fd);
    s->fd = -1;
    sink_open(s);
}

struct st_buf *
st__sink_begin(struct st_sink *s)
{
    s->mark = s->buf.len;
    return &s->buf;
}

int
st__sink_commit(struct st_sink *s)
{
    size_t rec;
    int r = 0;

    if (s->buf.oom) {
        /* A half-rendered record is never written: drop it. */
        s->buf.len = s->mark;
        s->buf.oom = 0;
        sink_fail(s, "cannot render a record for %s: %s",
                  s->path != NULL ? s->path : s->dir,
                  st_strerror(ST_ENOMEM));
        return ST_ENOMEM;
    }
    rec = s->buf.len - s->mark;
    /* The first record claims the file; after a failed open only flushes
     * retry, so that a read-only directory costs no syscalls per record. */
    if (s->fd < 0 && !s->broken) {
        r = sink_open(s);
        if (r < 0) {
            st_buf_consume(&s->buf, s->buf.len);
            s->mark = 0;
            return r;
        }
    }
    if (s->max_bytes > 0 && s->max_files > 0 && !s->rotate_off &&
        s->fd >= 0) {
        uint64_t before = s->file_size + s->mark;

        /* A record larger than the limit still goes into a fresh file:
         * never rotate an empty one, never split a record. */
        if (before > 0 && before + rec > s->max_bytes) {
            r = sink_write_head(s, s->mark);
            if (s->fd >= 0)
                sink_rotate(s);
        }
    }
    s->mark = s->buf.len;
    if (s->buf.len >= ST_SINK_FLUSH_BYTES)
        return st__sink_flush(s);
    if (s->buf.len > 0)
        st__server_arm_flush(s->conn->srv);
    return r;
}

int
st__sink_flush(struct st_sink *s)
{
    return sink_write_head(s, s->buf.len);
}

void
st__sink_reopen(struct st_sink *s)
{
    st__sink_flush(s);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->broken = 0;
    s->rotate_off = 0;
}
