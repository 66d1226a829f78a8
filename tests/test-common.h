/*
 * Shared declarations for the check-based C tests.
 *
 * Every test file ends with one `Suite *<area>_suite(void)`; the prototypes
 * live here so that each file and test-main.c agree on them (and
 * -Wmissing-prototypes stays quiet).  test-main.c holds the explicit list
 * of suites each test executable runs.
 */
#ifndef STEPTRACE_TESTS_TEST_COMMON_H
#define STEPTRACE_TESTS_TEST_COMMON_H

#include <check.h>
#include <stddef.h>
#include <string.h>

#include "steptrace/buf.h"

/* test-wire.c */
Suite *wire_suite(void);
/* test-record.c */
Suite *record_suite(void);
/* test-error.c */
Suite *error_suite(void);
/* test-config.c */
Suite *config_suite(void);
/* test-dtoa.c */
Suite *dtoa_suite(void);
/* test-daemon.c */
Suite *daemon_suite(void);
/* test-daemon-service.c */
Suite *service_suite(void);
/* test-daemon-ring.c */
Suite *ring_suite(void);
/* test-int-sink.c */
Suite *sink_suite(void);
/* test-int-idmap.c */
Suite *idmap_suite(void);
/* test-int-pressure.c */
Suite *pressure_suite(void);
/* test-int-forward.c */
Suite *forward_suite(void);

/*
 * Asserts that the bytes in a struct st_buf equal the string literal or
 * NUL-terminated string `expected`, byte for byte.  On failure both texts
 * are printed (control characters as check prints them), which is more
 * useful than a bare memcmp() for multi-line records.  The buffer gets a
 * NUL after its last byte (not counted in len), so `b` must be writable.
 */
#define ck_assert_buf_str_eq(b, expected)                                     \
    do {                                                                      \
        struct st_buf *ck_b_ = (b);                                           \
        const char *ck_e_ = (expected);                                       \
        ck_assert_int_eq(ck_b_->oom, 0);                                      \
        ck_assert_int_eq(st_buf_reserve(ck_b_, 1), 0);                        \
        ck_b_->data[ck_b_->len] = '\0';                                       \
        ck_assert_str_eq(ck_b_->data, ck_e_);                                 \
        ck_assert_uint_eq(ck_b_->len, strlen(ck_e_));                         \
    } while (0)

/*
 * Returns a malloc()ed copy of n bytes of p, of exactly n bytes (at least
 * one), so that AddressSanitizer reports any read past the end.  The
 * caller frees it with free().  Fails the test when out of memory.
 */
char *test_dup_exact(const void *p, size_t n);

/*
 * A small deterministic PRNG (xorshift64*), so that the randomised tests
 * see the same inputs on every run and on every machine.
 */
struct test_rng {
    unsigned long long state;
};

void test_rng_seed(struct test_rng *r, unsigned long long seed);
unsigned long long test_rng_next(struct test_rng *r);
/* Returns a value in [0, bound); bound must be > 0. */
size_t test_rng_below(struct test_rng *r, size_t bound);

#endif /* STEPTRACE_TESTS_TEST_COMMON_H */
