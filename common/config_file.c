/*
 * Loading a config file: its bytes, read whole under a size limit, go to
 * st_config_load_string (config.c).  See steptrace/config.h.
 */
#include "steptrace/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steptrace/buf.h"
#include "steptrace/error.h"

#include "config_int.h"

/*
 * Reads the whole file into *buf (owned by the caller, freed with
 * st_buf_close), refusing more than `max` bytes.  Not a regular file is
 * fine (a pipe: `--config <(...)`), a directory is not.
 */
static int
config_read_file(const char *path, size_t max, struct st_buf *buf, char *err,
                 size_t errlen)
{
    char chunk[65536];
    struct stat st;
    ssize_t got;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(EISDIR));
        goto out_fd;
    }
    for (;;) {
        got = read(fd, chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
            goto out_fd;
        }
        if (got == 0)
            break;
        if ((size_t)got > max - buf->len) {
            rc = ST_ELIMIT;
            snprintf(err, errlen,
                     "%s: larger than %zu bytes: not a config file?", path,
                     max);
            goto out_fd;
        }
        if (st_buf_append(buf, chunk, (size_t)got) != 0) {
            rc = ST_ENOMEM;
            snprintf(err, errlen, "%s: out of memory", path);
            goto out_fd;
        }
    }

out_fd:
    close(fd);
    return rc;
}

int
st_config_load_file(const char *path, const struct st_config_limits *limits,
                    struct st_config **out, char *err, size_t errlen)
{
    struct st_config_limits lim;
    struct st_buf buf;
    char dummy[1];
    int rc;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (out == NULL || path == NULL)
        return -EINVAL;
    *out = NULL;
    st__config_limits_fill(&lim, limits);
    st_buf_init(&buf);
    rc = config_read_file(path, lim.max_bytes, &buf, err, errlen);
    if (rc == 0)
        rc = st_config_load_string(path, buf.data, buf.len, &lim, out, err,
                                   errlen);
    st_buf_close(&buf);
    return rc;
}
