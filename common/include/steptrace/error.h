/*
 * Error codes shared by every part of steptrace.
 *
 * Functions return 0 on success and a negative errno value or a negative
 * ST_E* code on failure.  The list below is the single source of the codes,
 * their names and their messages (the X-macro pattern of libuv's
 * UV_ERRNO_MAP).
 */
#ifndef STEPTRACE_COMMON_ERROR_H
#define STEPTRACE_COMMON_ERROR_H

#define ST_ERRNO_MAP(XX)                                                      \
    XX(TRUNCATED, "frame or message ends before its declared length")         \
    XX(TOOBIG, "frame or element larger than the protocol allows")            \
    XX(MALFORMED, "bytes are not valid msgpack")                              \
    XX(DEPTH, "msgpack nesting deeper than the protocol allows")              \
    XX(BADTYPE, "message field has the wrong type")                           \
    XX(BADMSG, "unknown message type or wrong number of fields")              \
    XX(VERSION, "peer speaks another protocol version")                       \
    XX(NOSTR, "string id used before it was defined")                         \
    XX(STATE, "message not valid in the current state")                       \
    XX(NOMEM, "out of memory")                                                \
    XX(CONFIG, "config file is not valid (see the error text)")               \
    XX(LIMIT, "config file exceeds a size, nesting or node limit")

/* clang-format cannot see the commas ST_ERRNO_MAP expands to. */
/* clang-format off */
enum st_errno {
    ST_E_FIRST_ = -10000,
#define XX(code, msg) ST_E##code,
    ST_ERRNO_MAP(XX)
#undef XX
    ST_E_LAST_
};
/* clang-format on */

/*
 * Returns the symbolic name of an error code ("ST_ETRUNCATED", "ENOENT"),
 * a static string.
 */
const char *st_err_name(int err);

/*
 * Returns a human-readable message for an error code: the ST_E* message
 * or strerror(-err) for negative errno values.  A static string.
 */
const char *st_strerror(int err);

#endif /* STEPTRACE_COMMON_ERROR_H */
