/*
 * The file operations of the sinks.  On the loop: claiming a new file's
 * name.  In the threadpool, a sink's write job (see struct st_write_job):
 * rotate the file if the first chunk asks for it, open it if needed,
 * write the loss line and the chunks, and report what happened.  Nothing
 * here touches loop state; the loop applies the results in sink.c.
 *
 * A write that fails after writing part of the chunks is undone with
 * ftruncate(2), so that no record is ever split: the file ends at a
 * record boundary and every chunk of the job counts as lost.
 */
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define WRITER_DIR_MODE 0750
#define WRITER_FILE_MODE 0640

/* STEPTRACED_FAULT_FILE, read once by st__writer_init_faults(). */
static char *writer_fault_path;

void
st__writer_init_faults(void)
{
    const char *p = getenv("STEPTRACED_FAULT_FILE");

    if (p != NULL && p[0] != '\0')
        writer_fault_path = strdup(p);
}

/*
 * What the fault file asks for: an errno for every write (its name:
 * ENOSPC, EIO, EDQUOT, EFBIG; anything else is ENOSPC), or "DELAY <ms>":
 * each write job sleeps that long first (a slow disk).  @return the errno,
 * or 0 (with *delay_ms set for a delay, else 0).
 */
static int
writer_fault(unsigned *delay_ms)
{
    static const struct {
        const char *name;
        int err;
    } names[] = {
        {"ENOSPC", ENOSPC},
        {"EIO", EIO},
        {"EDQUOT", EDQUOT},
        {"EFBIG", EFBIG},
    };
    char text[32];
    ssize_t n;
    size_t i;
    int fd;

    *delay_ms = 0;
    if (writer_fault_path == NULL)
        return 0;
    fd = open(writer_fault_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    if (strncmp(text, "DELAY ", 6) == 0) {
        *delay_ms = (unsigned)strtoul(text + 6, NULL, 10);
        return 0;
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strncmp(text, names[i].name, strlen(names[i].name)) == 0)
            return names[i].err;
    return ENOSPC;
}

/* mkdir -p with mode 0750.  @return 0 or -errno. */
static int
writer_mkdirs(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir), i;

    /* Fast path: the directory usually exists already. */
    if (mkdir(dir, WRITER_DIR_MODE) == 0 || errno == EEXIST)
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
        if (mkdir(path, WRITER_DIR_MODE) != 0 && errno != EEXIST)
            return -errno;
        if (i < len)
            path[i] = '/';
    }
    return 0;
}

/* Creates `path` with O_EXCL.  @return the descriptor or -errno. */
static int
writer_create(const char *path)
{
    int fd;

    /* O_EXCL makes the claim atomic against every other tracer and
     * process using the same directory. */
    do {
        fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC,
                  WRITER_FILE_MODE);
    } while (fd < 0 && errno == EINTR);
    return fd >= 0 ? fd : -errno;
}

int
st__writer_claim_set(const char *dir, const char *const *exts, int n,
                     char (*paths)[PATH_MAX], int *fds, int *step)
{
    unsigned k;
    int i, j, len, r;

    *step = ST_CLAIM_DIR;
    r = writer_mkdirs(dir);
    if (r < 0)
        return r;
    for (k = 0; k < ST_MAX_CLAIM; k++) {
        for (i = 0; i < n; i++) {
            *step = ST_CLAIM_NAME;
            if (k == 0)
                len = snprintf(paths[i], PATH_MAX, "%s/tracer%s", dir,
                               exts[i]);
            else
                len = snprintf(paths[i], PATH_MAX, "%s/tracer_%u%s", dir, k,
                               exts[i]);
            if (len < 0 || len >= PATH_MAX)
                r = -ENAMETOOLONG;
            else
                r = writer_create(paths[i]);
            if (r < 0)
                break;
            fds[i] = r;
        }
        if (i == n)
            return 0;
        /* One name of the set is taken (or failed): give back the ones
         * made, and try the next number. */
        for (j = 0; j < i; j++) {
            close(fds[j]);
            (void)unlink(paths[j]);
        }
        if (r != -EEXIST) {
            *step = r == -ENAMETOOLONG ? ST_CLAIM_NAME : ST_CLAIM_OPEN;
            if (i > 0)
                memcpy(paths[0], paths[i], PATH_MAX);
            return r;
        }
    }
    *step = ST_CLAIM_NAME;
    return -EEXIST;
}

int
st__writer_claim(const char *dir, char *path, size_t pathlen, int *step)
{
    static const char *const ext[1] = {".log"};
    char paths[1][PATH_MAX];
    int fd, r;

    r = st__writer_claim_set(dir, ext, 1, paths, &fd, step);
    snprintf(path, pathlen, "%s", paths[0]);
    return r < 0 ? r : fd;
}

/*
 * Renames name -> name.1 after shifting the backups up by one (the oldest
 * is replaced, hence removed).  @return 0, or -errno when the live file
 * could not be renamed (it then stays in place and keeps growing).
 */
static int
writer_rotate(const char *path, uint32_t max_files)
{
    char from[PATH_MAX], to[PATH_MAX];
    uint32_t i;

    if (strlen(path) + 16 >= sizeof(to))
        return -ENAMETOOLONG;
    for (i = max_files; i > 1; i--) {
        snprintf(from, sizeof(from), "%s.%u", path, i - 1);
        snprintf(to, sizeof(to), "%s.%u", path, i);
        /* Missing backups are the normal case: only the rename of the
         * live file below matters. */
        (void)rename(from, to);
    }
    snprintf(to, sizeof(to), "%s.1", path);
    if (rename(path, to) != 0)
        return -errno;
    return 0;
}

/* writev(2) of the job's buffers (the loss line and the chunks) until
 * done; *written counts the bytes that made it.  @return 0 or -errno. */
static int
writer_write(int fd, const struct iovec *job_iov, int niov, size_t *written)
{
    struct iovec iov[ST_WRITE_MAX_CHUNKS + 1];
    unsigned delay_ms;
    int i = 0, fault = writer_fault(&delay_ms);

    *written = 0;
    if (fault != 0)
        return -fault;
    if (delay_ms > 0)
        usleep(delay_ms * 1000u);
    /* A copy: a short write moves the bases. */
    memcpy(iov, job_iov, (size_t)niov * sizeof(iov[0]));
    while (i < niov) {
        ssize_t w = writev(fd, iov + i, niov - i);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -EIO;
        *written += (size_t)w;
        while (i < niov && (size_t)w >= iov[i].iov_len) {
            w -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < niov) {
            iov[i].iov_base = (char *)iov[i].iov_base + w;
            iov[i].iov_len -= (size_t)w;
        }
    }
    return 0;
}

void
st__writer_work(uv_work_t *req)
{
    struct st_write_job *j = (struct st_write_job *)req;
    struct stat st;
    uint64_t before;
    size_t written;
    int fd = j->fd, r;

    j->open_err = j->write_err = j->rotate_err = j->rotated = 0;
    j->split = 0;
    if (j->rotate && fd >= 0) {
        r = writer_rotate(j->path, j->max_files);
        if (r == 0) {
            close(fd);
            fd = -1;
            j->rotated = 1;
        }
        else {
            j->rotate_err = r;
        }
    }
    if (fd < 0) {
        r = writer_mkdirs(j->dir);
        if (r == 0) {
            do {
                fd = open(j->path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC,
                          WRITER_FILE_MODE);
            } while (fd < 0 && errno == EINTR);
            if (fd < 0)
                r = -errno;
        }
        if (r < 0) {
            j->open_err = r;
            j->fd_out = -1;
            return;
        }
    }
    before = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    r = writer_write(fd, j->iov, j->niov, &written);
    if (r < 0) {
        /* Take back a partial write: the file must end with a whole
         * record.  The descriptor may be the cause: reopen next time. */
        if (written > 0 && ftruncate(fd, (off_t)before) != 0) {
            /* Then the file ends inside a record; the loss line that
             * follows starts with a newline (sink.c) so that it still
             * stands on a line of its own. */
            j->split = 1;
        }
        close(fd);
        fd = -1;
        j->write_err = r;
        j->size = before;
    }
    else {
        j->size = before + j->prefix_len + j->bytes;
    }
    j->fd_out = fd;
}
