/*
 * Scalar resolution for the config tree (steptrace/config.h): which plain
 * scalars are null, booleans, integers and floats, and their values.
 *
 * The rules are YAML 1.1's, as PyYAML's safe loader (which python-steptrace
 * 0.3.0 used) applies them, with two deliberate widenings: booleans and
 * null are recognised in any case ("TRUE", "Yes", "oFF"), and floats need
 * not have both a '.' and a signed exponent ("1e3" is a float, as in YAML
 * 1.2, where PyYAML would keep it a string).  Sexagesimal numbers
 * ("1:30") stay strings.  Only the public accessors are used here.
 */
#include "steptrace/config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "steptrace/error.h"

static int
scalar_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

static int
scalar_is_null(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '~') || scalar_is(s, n, "null");
}

/* @return 1 and *v for a boolean spelling, else 0. */
static int
scalar_bool(const char *s, size_t n, int *v)
{
    if (scalar_is(s, n, "true") || scalar_is(s, n, "yes") ||
        scalar_is(s, n, "on")) {
        *v = 1;
        return 1;
    }
    if (scalar_is(s, n, "false") || scalar_is(s, n, "no") ||
        scalar_is(s, n, "off")) {
        *v = 0;
        return 1;
    }
    return 0;
}

static int
scalar_digit(char c, int base)
{
    int d;

    if (c >= '0' && c <= '9')
        d = c - '0';
    else if (c >= 'a' && c <= 'f')
        d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        d = c - 'A' + 10;
    else
        return -1;
    return d < base ? d : -1;
}

/*
 * Parses a YAML 1.1 integer.  @return 1 when s is one (*v set, or
 * *overflow set when it does not fit a long long), else 0.
 */
static int
scalar_int(const char *s, size_t n, long long *v, int *overflow)
{
    unsigned long long mag = 0, limit;
    size_t i = 0;
    int neg = 0, base = 10, digits = 0, d;

    *overflow = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i >= n)
        return 0;
    if (n - i >= 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'b')) {
        base = s[i + 1] == 'x' ? 16 : 2;
        i += 2;
    }
    else if (s[i] == '0' && n - i > 1) {
        base = 8; /* 0[0-7_]+ */
        i++;
    }
    else if (s[i] == '0') {
        *v = 0;
        return 1;
    }
    limit = neg ? (unsigned long long)LLONG_MAX + 1
                : (unsigned long long)LLONG_MAX;
    for (; i < n; i++) {
        if (s[i] == '_')
            continue;
        d = scalar_digit(s[i], base);
        if (d < 0)
            return 0;
        digits++;
        if (mag > (limit - (unsigned long long)d) / (unsigned long long)base)
            *overflow = 1;
        else
            mag = mag * (unsigned long long)base + (unsigned long long)d;
    }
    if (digits == 0)
        return 0;
    if (!*overflow) {
        if (neg)
            *v = mag == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN
                                                          : -(long long)mag;
        else
            *v = (long long)mag;
    }
    return 1;
}

/* Counts a run of digits (with '_' after the first) from s[*i]. */
static size_t
scalar_digits(const char *s, size_t n, size_t *i)
{
    size_t count = 0;

    while (*i < n &&
           ((s[*i] >= '0' && s[*i] <= '9') || (s[*i] == '_' && count > 0))) {
        if (s[*i] != '_')
            count++;
        (*i)++;
    }
    return count;
}

/* Is s a float: [-+]? (digits [. digits?] | . digits) [eE [-+]? digits],
 * with a '.' or an exponent, or .inf / .nan? */
static int
scalar_is_float(const char *s, size_t n)
{
    size_t i = 0, mant;
    int dot = 0, exp = 0;

    if (scalar_is(s, n, ".nan"))
        return 1;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    if (scalar_is(s + i, n - i, ".inf"))
        return 1;
    mant = scalar_digits(s, n, &i);
    if (i < n && s[i] == '.') {
        dot = 1;
        i++;
        mant += scalar_digits(s, n, &i);
    }
    if (mant == 0)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        exp = 1;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        if (scalar_digits(s, n, &i) == 0)
            return 0;
    }
    return i == n && (dot || exp);
}

int
st_config_resolve(const struct st_config_node *n)
{
    const char *s;
    size_t len;
    long long iv;
    int bv, overflow;

    if (st_config_kind(n) != ST_CONFIG_SCALAR)
        return 0;
    if (st_config_style(n) != ST_CONFIG_PLAIN)
        return ST_CONFIG_STR;
    s = st_config_text(n, &len);
    if (scalar_is_null(s, len))
        return ST_CONFIG_NULL;
    if (scalar_bool(s, len, &bv))
        return ST_CONFIG_BOOL;
    if (scalar_int(s, len, &iv, &overflow))
        return ST_CONFIG_INT;
    if (scalar_is_float(s, len))
        return ST_CONFIG_FLOAT;
    return ST_CONFIG_STR;
}

int
st_config_as_bool(const struct st_config_node *n, int *out)
{
    const char *s;
    size_t len;

    if (st_config_resolve(n) != ST_CONFIG_BOOL)
        return ST_ECONFIG;
    s = st_config_text(n, &len);
    scalar_bool(s, len, out);
    return 0;
}

int
st_config_as_int(const struct st_config_node *n, long long *out)
{
    const char *s;
    size_t len;
    int overflow;

    if (st_config_resolve(n) != ST_CONFIG_INT)
        return ST_ECONFIG;
    s = st_config_text(n, &len);
    scalar_int(s, len, out, &overflow);
    return overflow ? -ERANGE : 0;
}

int
st_config_int_in(const struct st_config *cfg, const struct st_config_node *v,
                 const char *key, long long min, long long max, uint64_t *out,
                 char *err, size_t errlen)
{
    long long x;

    if (st_config_kind(v) != ST_CONFIG_SCALAR ||
        st_config_resolve(v) != ST_CONFIG_INT || st_config_as_int(v, &x) != 0)
        return st_config_errorf(cfg, v, err, errlen,
                                "%s must be a whole number", key);
    if (x < min || x > max)
        return st_config_errorf(cfg, v, err, errlen,
                                "%s must be between %lld and %lld", key, min,
                                max);
    *out = (uint64_t)x;
    return 0;
}

int
st_config_as_double(const struct st_config_node *n, double *out)
{
    char small[128], *copy, *end;
    const char *s;
    size_t len, i, o = 0;
    long long iv;
    int type = st_config_resolve(n);

    if (type == ST_CONFIG_INT) {
        if (st_config_as_int(n, &iv) != 0)
            return -ERANGE;
        *out = (double)iv;
        return 0;
    }
    if (type != ST_CONFIG_FLOAT)
        return ST_ECONFIG;
    s = st_config_text(n, &len);
    copy = len < sizeof(small) ? small : malloc(len + 1);
    if (copy == NULL)
        return ST_ENOMEM;
    /* strtod knows neither '_' nor ".inf"/".nan" with the leading dot. */
    for (i = 0; i < len; i++) {
        if (s[i] == '_' || (s[i] == '.' && i + 1 < len &&
                            (s[i + 1] == 'i' || s[i + 1] == 'I' ||
                             s[i + 1] == 'n' || s[i + 1] == 'N')))
            continue;
        copy[o++] = s[i];
    }
    copy[o] = '\0';
    errno = 0;
    *out = strtod(copy, &end);
    i = (size_t)(end - copy);
    if (copy != small)
        free(copy);
    /* Overflow gives +-HUGE_VAL (inf), as Python's float("1e999") does. */
    return i == o ? 0 : ST_ECONFIG;
}
