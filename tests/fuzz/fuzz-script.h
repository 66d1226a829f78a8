/*
 * A traced program's side of a connection, as the agent writes it, built
 * with common's encoders (fuzz-script.c): the traffic fuzz_control's agent
 * sends, and the seeds make-corpus.c writes for fuzz_session and
 * fuzz_control.
 */
#ifndef STEPTRACE_TESTS_FUZZ_FUZZ_SCRIPT_H
#define STEPTRACE_TESTS_FUZZ_FUZZ_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"

struct fuzz_script {
    uint64_t ring;     /* HELLO's ring_bytes; with a ring, the messages
                          after HELLO are written without frame headers. */
    uint32_t level;    /* ST_LEVEL_* */
    uint32_t var_mode; /* ST_VARMODE_* */
    uint32_t formats;  /* ST_FORMAT_* bits of the first region. */
    int per_frame;     /* Messages per frame (socket only; 0: one frame
                          for everything after HELLO). */
    uint64_t max_log_bytes;
    uint32_t max_log_files;
    int loops; /* Steps of the traced function's loop. */
    const char *log_dir;
};

/* Defaults: no ring, INFO, ALL, text, 1 message a frame, 3 loops,
 * log_dir "/logs". */
void fuzz_script_init(struct fuzz_script *s);
/* Appends the whole connection's bytes to out.  @return 0 or ST_ENOMEM. */
int fuzz_script_agent(const struct fuzz_script *s, struct st_buf *out);
/* Appends the payload p[0..n) framed (a header first) to out.
 * @return 0 or ST_ENOMEM. */
int fuzz_script_frame(struct st_buf *out, const char *p, size_t n);

#endif /* STEPTRACE_TESTS_FUZZ_FUZZ_SCRIPT_H */
