/* Helpers shared by the C tests; see test-common.h. */
#include "test-common.h"

#include <stdlib.h>

char *
test_dup_exact(const void *p, size_t n)
{
    char *d = malloc(n ? n : 1);

    ck_assert_ptr_nonnull(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

void
test_rng_seed(struct test_rng *r, unsigned long long seed)
{
    /* xorshift must not start from 0: it would stay there. */
    r->state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

unsigned long long
test_rng_next(struct test_rng *r)
{
    unsigned long long x = r->state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545f4914f6cdd1dull;
}

size_t
test_rng_below(struct test_rng *r, size_t bound)
{
    /* The modulo bias is irrelevant for test input generation. */
    return (size_t)(test_rng_next(r) >> 11) % bound;
}
