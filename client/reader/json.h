/*
 * JSON output for the readers (`steptrace export`): strings escaped per
 * RFC 8259 whatever bytes they hold, numbers, and microsecond timestamps.
 * Each function appends to a struct st_buf the caller owns; a failed
 * growth sets the buffer's sticky oom flag (st_buf), which the output's
 * flush reports, so the appends return nothing to check.
 */
#ifndef STEPTRACE_READER_JSON_H
#define STEPTRACE_READER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"

/*
 * Appends p[0..n) as a JSON string, quotes included: '"' and '\' are
 * escaped, control characters written \n, \r, \t, \b, \f or \u00XX, and
 * each byte that is not part of a valid UTF-8 sequence (a stray
 * continuation byte, an overlong form, a surrogate, a code point past
 * U+10FFFF, a cut sequence) is written \ufffd.  Valid UTF-8 passes as it
 * is, so the output is valid UTF-8 and valid JSON for any input.
 */
void rd_json_str(struct st_buf *out, const char *p, size_t n);

/* The same without the quotes: a piece of a string being written. */
void rd_json_chars(struct st_buf *out, const char *p, size_t n);

/* rd_json_str for a NUL-terminated string. */
void rd_json_cstr(struct st_buf *out, const char *s);

/* Appends the bytes of a literal piece of JSON (a key, a brace). */
void rd_json_raw(struct st_buf *out, const char *s, size_t n);
#define RD_JSON_LIT(out, lit) rd_json_raw((out), (lit), sizeof(lit) - 1)

/* Appends v in decimal. */
void rd_json_u64(struct st_buf *out, uint64_t v);

/* Appends a duration or time in ns as microseconds with three decimals
 * ("12.345"): exact, no floating point, so equal times print equal. */
void rd_json_us(struct st_buf *out, uint64_t ns);

#endif /* STEPTRACE_READER_JSON_H */
