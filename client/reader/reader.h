/*
 * steptrace-read: the readers of step stores behind `steptrace show`,
 * `query`, `export` and `stats` (docs/STEP-STORE.md, docs/CLI.md).  The
 * Python CLI (client/steptrace/cli.py) runs it with the same arguments;
 * it reads each FILE alone (common/store.c), replays its records at a
 * level and mode (common/replay.c) and hands each one to the command.
 *
 * Exit status: 0; 1 when a file could not be read or is damaged (one
 * line on stderr each, what could be read is still written); 2 for a bad
 * command line.  Warnings (a file cut short, records skipped) go to
 * stderr and leave the status 0.
 */
#ifndef STEPTRACE_READER_H
#define STEPTRACE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"
#include "steptrace/replay.h"

#define RD_EXIT_DATA 1
#define RD_EXIT_USAGE 2

/* Called after each record of a file is applied (rp->rec).  `file` is
 * the file's name.  @return 0 to go on, 1 to stop reading (every file),
 * or -1 on an output error (stop, status 1). */
typedef int (*rd_record_fn)(struct st_replay *rp, const char *file, void *ctx);

/*
 * Reads each of files[0..n-1] alone at `level` and `var_mode` (0: as
 * recorded), calling fn after every record.  Warns about cut files and
 * skipped records.  @return 0, RD_EXIT_DATA (some file unreadable or
 * damaged), or -1 when fn failed.
 */
int rd_each_file(char **files, int n, int level, int var_mode, rd_record_fn fn,
                 void *ctx);

/* Buffered standard output.  rd_out_flush writes what is buffered;
 * @return 0, or -1 (stdout closed: a pager that quit, a full disk). */
extern struct st_buf rd_out;
int rd_out_maybe_flush(void);
int rd_out_flush(void);

/* "prog: message" on stderr, printf-style. */
void rd_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: the message and a hint, status 2. */
int rd_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Option values: enum st_level / st_varmode from a name, any case.
 * @return the value, or -1. */
int rd_parse_level(const char *s);
int rd_parse_mode(const char *s);
/* The value of option argv[*i] ("--opt VALUE" or "--opt=VALUE"), or NULL
 * when argv[*i] is not option `name`; *missing is set when the value is
 * absent.  *i moves past a separate value. */
const char *rd_option_value(int argc, char **argv, int *i, const char *name,
                            int *missing);
/* A count (decimal, >= 0) into *out.  @return 0 or -1. */
int rd_parse_count(const char *s, uint64_t *out);

/* The commands (argv[0] is the command's name). */
int rd_show_main(int argc, char **argv);
int rd_query_main(int argc, char **argv);
int rd_export_main(int argc, char **argv);
int rd_stats_main(int argc, char **argv);

#endif /* STEPTRACE_READER_H */
