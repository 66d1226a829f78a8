/* Names and messages for the error codes of steptrace/error.h. */
#include "steptrace/error.h"

#include <string.h>

const char *
st_err_name(int err)
{
    switch (err) {
#define XX(code, msg)                                                        \
    case ST_E##code:                                                         \
        return "ST_E" #code;
        ST_ERRNO_MAP(XX)
#undef XX
    default:
        return err < 0 ? "errno" : "OK";
    }
}

const char *
st_strerror(int err)
{
    switch (err) {
#define XX(code, msg)                                                        \
    case ST_E##code:                                                         \
        return msg;
        ST_ERRNO_MAP(XX)
#undef XX
    default:
        return err < 0 ? strerror(-err) : "success";
    }
}
