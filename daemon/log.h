/*
 * The collector's own log: one line "steptraced: ..." on stderr per call,
 * written with a single write(2) so that lines never mix.  No state but
 * the quiet flag, set once at start-up; every daemon module may call it
 * (it calls nothing of theirs).
 */
#ifndef STEPTRACE_DAEMON_LOG_H
#define STEPTRACE_DAEMON_LOG_H

/* One line "steptraced: ..." on stderr, written with a single write(2). */
void st__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The same for lines nobody needs when the collector is private to one
 * process tree (--private, whose stderr is the traced program's): start
 * and stop, and file errors, which the agent learns from the ACK and
 * shows itself.  Such lines are dropped after st__log_set_quiet(1).
 */
void st__log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void st__log_set_quiet(int quiet);
/* Points the log at `path` (opened for appending, as stderr); NULL leaves
 * it where it is.  @return 0 or -errno. */
int st__log_open(const char *path);

#endif /* STEPTRACE_DAEMON_LOG_H */
