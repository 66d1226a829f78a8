/* Names and messages for the error codes of steptrace/error.h. */
#include "steptrace/error.h"

#include <limits.h>
#include <string.h>

/* The symbolic name of a positive errno value ("ENOENT"), or "errno". */
static const char *
error_errno_name(int err)
{
#if defined(__GLIBC__) &&                                                     \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *name = strerrorname_np(err);

    if (name != NULL)
        return name;
#else
    (void)err;
#endif
    return "errno";
}

const char *
st_err_name(int err)
{
    switch (err) {
#define XX(code, msg)                                                         \
    case ST_E##code: return "ST_E" #code;
        ST_ERRNO_MAP(XX)
#undef XX
    default:
        if (err >= 0)
            return "OK";
        /* -INT_MIN overflows; no errno value is that large anyway. */
        return err == INT_MIN ? "errno" : error_errno_name(-err);
    }
}

const char *
st_strerror(int err)
{
    switch (err) {
#define XX(code, msg)                                                         \
    case ST_E##code: return msg;
        ST_ERRNO_MAP(XX)
#undef XX
    default:
        if (err >= 0)
            return "success";
        return err == INT_MIN ? "unknown error" : strerror(-err);
    }
}
