/*
 * What every harness of tests/fuzz/ shares: the two entry points libFuzzer
 * calls (declared here so that the gcc build, with -Wmissing-prototypes,
 * compiles the same files into their regression runners, run-corpus.c),
 * and a reader that takes typed values from the fuzzer's bytes.
 *
 * A harness aborts (FUZZ_CHECK) when an invariant it checks fails:
 * libFuzzer reports that as a crash and keeps the input.
 */
#ifndef STEPTRACE_TESTS_FUZZ_FUZZ_H
#define STEPTRACE_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: run once before the first input (run-corpus.c calls it when
 * the harness defines it). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* The input, consumed from the front.  Past its end every value is 0 and
 * every byte string empty. */
struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t
fuzz_u8(struct fuzz_in *in)
{
    uint8_t v = 0;

    if (in->n > 0) {
        v = in->p[0];
        in->p++;
        in->n--;
    }
    return v;
}

static inline uint32_t
fuzz_u32(struct fuzz_in *in)
{
    uint32_t v = 0;
    int i;

    for (i = 0; i < 4; i++)
        v = v << 8 | fuzz_u8(in);
    return v;
}

static inline uint64_t
fuzz_u64(struct fuzz_in *in)
{
    return (uint64_t)fuzz_u32(in) << 32 | fuzz_u32(in);
}

/* Up to `max` bytes, borrowed from the input: a length byte (scaled to
 * max) then that many bytes, or what is left. */
static inline const char *
fuzz_bytes(struct fuzz_in *in, size_t max, size_t *len)
{
    size_t want = fuzz_u8(in);
    const char *p = (const char *)in->p;

    if (max > 255)
        want = want * (max / 255);
    if (want > max)
        want = max;
    if (want > in->n)
        want = in->n;
    in->p += want;
    in->n -= want;
    *len = want;
    return p;
}

#endif /* STEPTRACE_TESTS_FUZZ_FUZZ_H */
