/*
 * steptrace-read's entry, the file loop every command shares, output and
 * option helpers (reader.h).
 */
#include "reader.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "steptrace/error.h"
#include "steptrace/store.h"

/* Output is written in pieces of this size. */
#define RD_OUT_CHUNK (256u * 1024)

struct st_buf rd_out;

void
rd_warn(const char *fmt, ...)
{
    va_list ap;

    fputs("steptrace: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int
rd_usage(const char *fmt, ...)
{
    va_list ap;

    fputs("steptrace: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (steptrace show|query|export|stats --help)\n", stderr);
    return RD_EXIT_USAGE;
}

int
rd_out_flush(void)
{
    size_t done = 0;
    ssize_t n;

    if (rd_out.oom) {
        rd_warn("out of memory while writing the output");
        return -1;
    }
    while (done < rd_out.len) {
        n = write(STDOUT_FILENO, rd_out.data + done, rd_out.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            /* A pager that quit is no error worth a line. */
            if (errno != EPIPE)
                rd_warn("cannot write the output: %s", strerror(errno));
            rd_out.len = 0;
            return -1;
        }
        done += (size_t)n;
    }
    rd_out.len = 0;
    return 0;
}

int
rd_out_maybe_flush(void)
{
    return rd_out.len >= RD_OUT_CHUNK || rd_out.oom ? rd_out_flush() : 0;
}

int
rd_parse_level(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"DEBUG", ST_LEVEL_DEBUG},
                  {"INFO", ST_LEVEL_INFO},
                  {"WARNING", ST_LEVEL_WARNING},
                  {"ERROR", ST_LEVEL_ERROR}};
    size_t i;

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcasecmp(s, levels[i].name) == 0)
            return levels[i].level;
    return -1;
}

int
rd_parse_mode(const char *s)
{
    if (strcasecmp(s, "ALL") == 0)
        return ST_VARMODE_ALL;
    if (strcasecmp(s, "CHANGED") == 0)
        return ST_VARMODE_CHANGED;
    if (strcasecmp(s, "NONE") == 0)
        return ST_VARMODE_NONE;
    return -1;
}

const char *
rd_option_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int
rd_parse_count(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* One file: every record applied and handed to fn.  @return 0,
 * RD_EXIT_DATA or -1; *stop set when fn asked to stop. */
static int
rd_one_file(const char *path, int level, int var_mode, rd_record_fn fn,
            void *ctx, int *stop)
{
    struct st_store_reader r;
    struct st_replay rp;
    struct st_msg m;
    uint64_t skipped = 0, first_skip = 0;
    char first_detail[160] = "";
    int n, rc = 0, e;

    if (st_store_open(&r, path) != 0) {
        rd_warn("%s", r.err);
        st_store_close(&r);
        return RD_EXIT_DATA;
    }
    st_replay_init(&rp, level, var_mode);
    while ((n = st_store_next(&r, &m)) == 1) {
        e = st_replay_apply(&rp, &m);
        if (e == ST_ENOMEM) {
            rd_warn("%s: out of memory at byte %llu", path,
                    (unsigned long long)st_store_offset(&r));
            rc = RD_EXIT_DATA;
            break;
        }
        if (e != 0) {
            /* A record naming what the file never defined: skipped. */
            if (skipped++ == 0) {
                first_skip = st_store_offset(&r);
                snprintf(first_detail, sizeof(first_detail), "%s",
                         rp.detail[0] ? rp.detail : st_strerror(e));
            }
            continue;
        }
        e = fn(&rp, path, ctx);
        if (e != 0) {
            if (e > 0)
                *stop = 1;
            else
                rc = -1;
            break;
        }
    }
    if (n < 0) {
        rd_warn("%s: %s", path, r.err);
        rc = RD_EXIT_DATA;
    }
    if (n == 0 && r.cut > 0)
        rd_warn("%s: the file ends inside a record at byte %llu (cut short "
                "by a crash or a full disk?): read up to its last whole "
                "record",
                path, (unsigned long long)r.cut);
    if (skipped > 0)
        rd_warn("%s: %llu record%s skipped: %s (first at byte %llu)", path,
                (unsigned long long)skipped, skipped == 1 ? "" : "s",
                first_detail, (unsigned long long)first_skip);
    st_replay_close(&rp);
    st_store_close(&r);
    return rc;
}

int
rd_each_file(char **files, int n, int level, int var_mode, rd_record_fn fn,
             void *ctx)
{
    int i, r, status = 0, stop = 0;

    for (i = 0; i < n && !stop; i++) {
        r = rd_one_file(files[i], level, var_mode, fn, ctx, &stop);
        if (r < 0)
            return -1;
        if (r == RD_EXIT_DATA)
            status = RD_EXIT_DATA;
    }
    return status;
}

static int
rd_help(void)
{
    fputs("usage: steptrace-read show|query|export|stats ARGS...\n"
          "  (run as `steptrace show ...`: see steptrace show --help)\n",
          stdout);
    return 0;
}

int
main(int argc, char **argv)
{
    int r;

    /* A pager that quits early ends the output quietly. */
    signal(SIGPIPE, SIG_IGN);
    st_buf_init(&rd_out);
    if (argc < 2)
        return rd_usage("name a command: show, query, export or stats");
    if (strcmp(argv[1], "show") == 0)
        r = rd_show_main(argc - 1, argv + 1);
    else if (strcmp(argv[1], "query") == 0)
        r = rd_query_main(argc - 1, argv + 1);
    else if (strcmp(argv[1], "export") == 0)
        r = rd_export_main(argc - 1, argv + 1);
    else if (strcmp(argv[1], "stats") == 0)
        r = rd_stats_main(argc - 1, argv + 1);
    else if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        r = rd_help();
    else
        r = rd_usage("unknown command %s: use show, query, export or stats",
                     argv[1]);
    if (rd_out_flush() != 0 && r == 0)
        r = RD_EXIT_DATA;
    st_buf_close(&rd_out);
    return r < 0 ? RD_EXIT_DATA : r;
}
