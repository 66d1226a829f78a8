/*
 * Tests for steptrace/dtoa.h: st_double_repr against CPython's own repr,
 * PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL) from the
 * libpython this build is for, on the edge cases (zeros, infinities,
 * NaNs, every power of two and of ten and their neighbours, the
 * subnormal boundaries, integers around 2^53, 1e16 and 1e17) and on
 * random doubles: random bit patterns and "computational" ones (a
 * quotient of integers, a value times a power of ten, few digits).
 *
 *   ST_DTOA_SEED=N   seed of the random doubles (printed; default fixed)
 *   ST_DTOA_COUNT=N  random doubles of each kind (default 5,000,000, so
 *                    10,000,000 in all; 500,000 under a sanitizer)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "test-common.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/dtoa.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DTOA_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||    \
    __has_feature(undefined_behavior_sanitizer)
#define DTOA_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DTOA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DTOA_ASAN 1
#endif
#endif

#ifdef DTOA_ASAN
/*
 * LeakSanitizer's suppressions, taken with any ASAN_OPTIONS: what the
 * embedded interpreter allocates and keeps is no leak of ours (much of it
 * is referenced only from pymalloc's mmap'ed arenas, which LSan does not
 * scan).  Exported so that the runtime finds it.
 */
__attribute__((visibility("default"))) const char *
__lsan_default_suppressions(void);

__attribute__((visibility("default"))) const char *
__lsan_default_suppressions(void)
{
    return "leak:libpython\n";
}

/* And without the table of suppressions used at every exit. */
__attribute__((visibility("default"))) const char *
__lsan_default_options(void);

__attribute__((visibility("default"))) const char *
__lsan_default_options(void)
{
    return "print_suppressions=0";
}
#endif

#ifdef DTOA_SANITIZED
#define DTOA_DEFAULT_COUNT 500000ull
#else
#define DTOA_DEFAULT_COUNT 5000000ull
#endif
#define DTOA_DEFAULT_SEED 0x5eedd70aull
#define DTOA_SHOW 10 /* Mismatches printed. */

struct tally {
    unsigned long long compared;
    unsigned long long mismatches;
};

static void
dtoa_setup(void)
{
    if (!Py_IsInitialized())
        Py_InitializeEx(0);
}

static unsigned long long
env_ull(const char *name, unsigned long long dflt)
{
    const char *s = getenv(name);
    char *end;
    unsigned long long v;

    if (s == NULL || *s == '\0')
        return dflt;
    v = strtoull(s, &end, 0);
    ck_assert_msg(*end == '\0', "%s=%s is not a number", name, s);
    return v;
}

static double
from_bits(uint64_t u)
{
    double x;

    memcpy(&x, &u, sizeof(x));
    return x;
}

static uint64_t
to_bits(double x)
{
    uint64_t u;

    memcpy(&u, &x, sizeof(u));
    return u;
}

/* Compares st_double_repr(x) with CPython's repr(x), counting (and
 * printing the first few) mismatches. */
static void
check_one(struct tally *t, double x)
{
    char out[ST_DOUBLE_REPR_MAX + 8];
    char *ref;
    size_t n;

    memset(out, 'Z', sizeof(out));
    n = st_double_repr(x, out);
    ref = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    ck_assert_ptr_nonnull(ref);
    t->compared++;
    if (n >= ST_DOUBLE_REPR_MAX || out[n] != '\0' || strlen(out) != n ||
        strcmp(out, ref) != 0) {
        if (t->mismatches < DTOA_SHOW)
            fprintf(stderr,
                    "dtoa mismatch: bits 0x%016" PRIx64
                    " (%a): st_double_repr \"%.*s\" (length %zu), "
                    "CPython \"%s\"\n",
                    to_bits(x), x, (int)(n < sizeof(out) ? n : sizeof(out)),
                    out, n, ref);
        t->mismatches++;
    }
    PyMem_Free(ref);
}

/* x, -x and the k doubles on each side of each. */
static void
check_around(struct tally *t, double x, int k)
{
    double up = x, down = x;
    int i;

    check_one(t, x);
    check_one(t, -x);
    for (i = 0; i < k; i++) {
        up = nextafter(up, INFINITY);
        down = nextafter(down, -INFINITY);
        check_one(t, up);
        check_one(t, -up);
        check_one(t, down);
        check_one(t, -down);
    }
}

static void
report(const char *what, const struct tally *t)
{
    fprintf(stderr, "dtoa %s: %llu doubles compared, %llu mismatches\n", what,
            t->compared, t->mismatches);
    ck_assert_msg(t->mismatches == 0,
                  "%llu of %llu doubles differ from CPython's repr",
                  t->mismatches, t->compared);
}

/* The texts themselves, so that a libpython that changed would show. */
START_TEST(test_dtoa_known_texts)
{
    static const struct {
        double x;
        const char *text;
    } cases[] = {
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {1.0, "1.0"},
        {-1.5, "-1.5"},
        {100.0, "100.0"},
        {1234567890123456.0, "1234567890123456.0"},
        {1e16, "1e+16"},
        {12345678901234567.0, "1.2345678901234568e+16"},
        {1.5e-5, "1.5e-05"},
        {1e-5, "1e-05"},
        {0.0001, "0.0001"},
        {0.00012345, "0.00012345"},
        {0.1, "0.1"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {2.0 / 3.0, "0.6666666666666666"},
        {1e22, "1e+22"},
        {1e23, "1e+23"},
        {9007199254740993.0, "9007199254740992.0"},
        {5e-324, "5e-324"},
        {-5e-324, "-5e-324"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {INFINITY, "inf"},
        {-INFINITY, "-inf"},
    };
    static const uint64_t nans[] = {
        0x7ff8000000000000ull, 0xfff8000000000000ull, 0x7ff0000000000001ull,
        0xfff0000000000001ull, 0x7fffffffffffffffull, 0xffffffffffffffffull,
        0x7ff4000000000000ull, 0x7ff00000deadbeefull,
    };
    struct tally t = {0, 0};
    char out[ST_DOUBLE_REPR_MAX];
    size_t i, n;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        n = st_double_repr(cases[i].x, out);
        ck_assert_str_eq(out, cases[i].text);
        ck_assert_uint_eq(n, strlen(cases[i].text));
        check_one(&t, cases[i].x);
    }
    for (i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        n = st_double_repr(from_bits(nans[i]), out);
        ck_assert_str_eq(out, "nan");
        ck_assert_uint_eq(n, 3);
        check_one(&t, from_bits(nans[i]));
    }
    report("known texts", &t);
}
END_TEST

/* Every power of two and of ten in range, each with 4 neighbours a side,
 * and both signs. */
START_TEST(test_dtoa_powers)
{
    struct tally t = {0, 0};
    char s[16];
    int e;

    for (e = -1074; e <= 1023; e++)
        check_around(&t, ldexp(1.0, e), 4);
    for (e = -323; e <= 308; e++) {
        snprintf(s, sizeof(s), "1e%d", e);
        check_around(&t, strtod(s, NULL), 4);
    }
    report("powers", &t);
}
END_TEST

/* For each exponent field (subnormals included), the mantissas at the
 * ends and around each power of two of the mantissa. */
START_TEST(test_dtoa_boundaries)
{
    struct tally t = {0, 0};
    uint64_t e, m, top = (1ull << 52) - 1;
    int b;

    for (e = 0; e < 2047; e++) {
        for (m = 0; m < 4; m++) {
            check_around(&t, from_bits(e << 52 | m), 0);
            check_around(&t, from_bits(e << 52 | (top - m)), 0);
        }
        if (e > 2 && e < 2044 && e % 8 != 0)
            continue; /* Every mantissa bit for 1 exponent field in 8. */
        for (b = 1; b < 52; b++) {
            for (m = (1ull << b) - 2; m <= (1ull << b) + 2; m++) {
                check_one(&t, from_bits(e << 52 | m));
                check_one(&t, from_bits(e << 52 | (top & ~m)));
            }
        }
    }
    report("boundaries", &t);
}
END_TEST

/* Integers around 2^53, 1e16 and 1e17, the numbers the brief names. */
START_TEST(test_dtoa_integers_and_named)
{
    static const double named[] = {
        0.1,
        0.2,
        0.3,
        0.7,
        1.0 / 3.0,
        2.0 / 3.0,
        1e23,
        9007199254740993.0,
        5e-324,
        2.2250738585072014e-308,
        2.2250738585072009e-308,
        4.9406564584124654e-324,
        1.7976931348623157e+308,
        123456789012345678.0,
        0.001,
        1e-4,
        9.999999999999999e-5,
        9.9999999999999999e15,
        9999999999999998.0,
        5e-5,
        1e21,
        299792458.0,
        6.02214076e23,
        6.62607015e-34,
        3.141592653589793,
        2.718281828459045,
    };
    struct tally t = {0, 0};
    double base[] = {9007199254740992.0, 1e16, 1e17, 4503599627370496.0, 1e15};
    size_t i;
    int k;

    for (i = 0; i < sizeof(named) / sizeof(named[0]); i++)
        check_around(&t, named[i], 3);
    for (i = 0; i < sizeof(base) / sizeof(base[0]); i++)
        check_around(&t, base[i], 2000);
    for (k = -3000; k <= 3000; k++) {
        check_one(&t, 9007199254740992.0 + k);
        check_one(&t, 1e16 + 2 * k);
        check_one(&t, 1e17 + 16 * k);
        check_one(&t, (double)k);
        check_one(&t, k / 1000.0);
    }
    report("integers and named", &t);
}
END_TEST

static unsigned long long
dtoa_seed(void)
{
    unsigned long long seed = env_ull("ST_DTOA_SEED", DTOA_DEFAULT_SEED);

    fprintf(stderr, "dtoa random: ST_DTOA_SEED=0x%llx\n", seed);
    return seed;
}

/* Uniformly random bit patterns: NaNs, infinities and subnormals too. */
START_TEST(test_dtoa_random_bits)
{
    unsigned long long count = env_ull("ST_DTOA_COUNT", DTOA_DEFAULT_COUNT);
    struct tally t = {0, 0};
    struct test_rng rng;
    unsigned long long i;

    test_rng_seed(&rng, dtoa_seed());
    for (i = 0; i < count; i++)
        check_one(&t, from_bits(test_rng_next(&rng)));
    report("random bits", &t);
}
END_TEST

/* A random integer of up to `bits` bits (bits random up to 64). */
static uint64_t
rng_int(struct test_rng *r)
{
    unsigned b = (unsigned)test_rng_below(r, 64) + 1;

    return test_rng_next(r) >> (64 - b);
}

/* A double a program would compute. */
static double
computational(struct test_rng *r, const double *pow10)
{
    char s[48];
    uint64_t a, b;
    double x;
    int d;

    switch (test_rng_below(r, 6)) {
    case 0: /* A quotient of integers. */
        a = rng_int(r);
        b = rng_int(r);
        x = (double)a / (double)(b ? b : 1);
        break;
    case 1: /* A value in [0, 1) times a power of ten. */
        x = (double)(test_rng_next(r) >> 11) * 0x1p-53;
        x *= pow10[test_rng_below(r, 631)];
        break;
    case 2: /* An integer times a power of ten. */
        x = (double)rng_int(r) * pow10[test_rng_below(r, 631)];
        break;
    case 3: /* Few digits: k / 10^d. */
        d = (int)test_rng_below(r, 7);
        x = (double)test_rng_below(r, 1000000) / pow10[323 + d];
        break;
    case 4: /* 1 to 17 random digits, a random exponent, read by strtod. */
        d = (int)test_rng_below(r, 17) + 1;
        a = test_rng_next(r) % 100000000000000000ull;
        snprintf(s, sizeof(s), "%.*llue%d", d,
                 (unsigned long long)(a % (uint64_t)pow10[323 + d]),
                 (int)test_rng_below(r, 650) - 340);
        x = strtod(s, NULL);
        break;
    default: /* Sums and products of small decimals. */
        x = (double)test_rng_below(r, 1000) * 0.1 +
            (double)test_rng_below(r, 1000) * 0.01;
        if (test_rng_below(r, 2))
            x *= (double)test_rng_below(r, 100) * 1.1;
        break;
    }
    return test_rng_below(r, 2) ? -x : x;
}

START_TEST(test_dtoa_random_computational)
{
    unsigned long long count = env_ull("ST_DTOA_COUNT", DTOA_DEFAULT_COUNT);
    struct tally t = {0, 0};
    struct test_rng rng;
    double pow10[631]; /* pow10[i] = 10^(i - 323), correctly rounded. */
    char s[16];
    unsigned long long i;
    int e;

    for (e = -323; e <= 307; e++) {
        snprintf(s, sizeof(s), "1e%d", e);
        pow10[e + 323] = strtod(s, NULL);
    }
    test_rng_seed(&rng, dtoa_seed() ^ 0xc0ffee);
    for (i = 0; i < count; i++)
        check_one(&t, computational(&rng, pow10));
    report("random computational", &t);
}
END_TEST

Suite *
dtoa_suite(void)
{
    Suite *s = suite_create("dtoa");
    TCase *tc = tcase_create("edges");
    TCase *rnd = tcase_create("random");

    tcase_add_checked_fixture(tc, dtoa_setup, NULL);
    tcase_add_test(tc, test_dtoa_known_texts);
    tcase_add_test(tc, test_dtoa_powers);
    tcase_add_test(tc, test_dtoa_boundaries);
    tcase_add_test(tc, test_dtoa_integers_and_named);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(rnd, dtoa_setup, NULL);
    tcase_set_timeout(rnd, 300);
    tcase_add_test(rnd, test_dtoa_random_bits);
    tcase_add_test(rnd, test_dtoa_random_computational);
    suite_add_tcase(s, rnd);
    return s;
}
