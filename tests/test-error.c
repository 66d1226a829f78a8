/* Tests for steptrace/error.h: names and messages of the error codes. */
#include "test-common.h"

#include <errno.h>
#include <limits.h>

#include "steptrace/error.h"

/* The codes, their names and messages, from the header's own list. */
static const struct {
    int code;
    const char *name;
    const char *msg;
} codes[] = {
#define XX(code, msg) {ST_E##code, "ST_E" #code, msg},
    ST_ERRNO_MAP(XX)
#undef XX
};

#define NCODES (sizeof(codes) / sizeof(codes[0]))

START_TEST(test_error_codes_are_distinct_and_not_errno)
{
    size_t i, j;

    ck_assert_uint_eq(NCODES, (size_t)(ST_E_LAST_ - ST_E_FIRST_ - 1));
    for (i = 0; i < NCODES; i++) {
        /* Linux errno values are below 4096: a negative errno can never
         * be mistaken for an ST_E* code. */
        ck_assert_int_lt(codes[i].code, -4095);
        for (j = 0; j < i; j++)
            ck_assert_int_ne(codes[i].code, codes[j].code);
    }
}
END_TEST

START_TEST(test_error_names_and_messages)
{
    size_t i;

    for (i = 0; i < NCODES; i++) {
        ck_assert_str_eq(st_err_name(codes[i].code), codes[i].name);
        ck_assert_str_eq(st_strerror(codes[i].code), codes[i].msg);
    }
    /* Spot checks against the header text, not just its own list. */
    ck_assert_str_eq(st_err_name(ST_ETRUNCATED), "ST_ETRUNCATED");
    ck_assert_str_eq(st_err_name(ST_ENOMEM), "ST_ENOMEM");
    ck_assert_str_eq(st_strerror(ST_ENOMEM), "out of memory");
    ck_assert_str_eq(st_strerror(ST_EDEPTH),
                     "msgpack nesting deeper than the protocol allows");
}
END_TEST

START_TEST(test_error_negative_errno)
{
    ck_assert_str_eq(st_strerror(-ENOENT), strerror(ENOENT));
    ck_assert_str_eq(st_strerror(-EPIPE), strerror(EPIPE));
    ck_assert_str_eq(st_strerror(-ENOSPC), strerror(ENOSPC));
#if defined(__GLIBC__) &&                                                     \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    /* The names come from strerrorname_np(), new in glibc 2.32. */
    ck_assert_str_eq(st_err_name(-ENOENT), "ENOENT");
    ck_assert_str_eq(st_err_name(-EACCES), "EACCES");
    ck_assert_str_eq(st_err_name(-ECONNRESET), "ECONNRESET");
#else
    ck_assert_ptr_nonnull(st_err_name(-ENOENT));
#endif
    /* An errno value is never given an ST_E* name. */
    ck_assert_int_ne(strncmp(st_err_name(-ENOENT), "ST_E", 4), 0);
}
END_TEST

/* Anything else still gets a string, never NULL and never a crash. */
START_TEST(test_error_other_values)
{
    static const int values[] = {0,           1,      42,          INT_MAX,
                                 -4095,       -9000,  ST_E_FIRST_, ST_E_LAST_,
                                 INT_MIN + 1, INT_MIN};
    size_t i;

    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        ck_assert_ptr_nonnull(st_err_name(values[i]));
        ck_assert_ptr_nonnull(st_strerror(values[i]));
    }
}
END_TEST

Suite *
error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("error");

    tcase_add_test(tc, test_error_codes_are_distinct_and_not_errno);
    tcase_add_test(tc, test_error_names_and_messages);
    tcase_add_test(tc, test_error_negative_errno);
    tcase_add_test(tc, test_error_other_values);
    suite_add_tcase(s, tc);
    return s;
}
