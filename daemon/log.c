/*
 * The collector's own log lines (see log.h).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_quiet;

void
st__log_set_quiet(int quiet)
{
    log_quiet = quiet;
}

static void
log_line(const char *fmt, va_list ap)
{
    char line[1024];
    const char *p = line;
    size_t len;
    int n;

    memcpy(line, "steptraced: ", 12);
    n = vsnprintf(line + 12, sizeof(line) - 13, fmt, ap);
    if (n < 0)
        n = 0;
    len = 12 + ((size_t)n < sizeof(line) - 13 ? (size_t)n : sizeof(line) - 14);
    line[len++] = '\n';
    /* One write per line, so lines from concurrent writers never mix. */
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        len -= (size_t)w;
    }
}

void
st__log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_line(fmt, ap);
    va_end(ap);
}

void
st__log_info(const char *fmt, ...)
{
    va_list ap;

    if (log_quiet)
        return;
    va_start(ap, fmt);
    log_line(fmt, ap);
    va_end(ap);
}

int
st__log_open(const char *path)
{
    int fd;

    if (path == NULL)
        return 0;
    do {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    if (fd != STDERR_FILENO) {
        if (dup2(fd, STDERR_FILENO) < 0) {
            int r = -errno;

            close(fd);
            return r;
        }
        close(fd);
    }
    return 0;
}
