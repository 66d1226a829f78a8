/*
 * What the wire tests (tests/test-wire*.c, one suite: wire_suite() in
 * test-wire.c) share: assertions on decoded strings, a packer writing
 * into a buffer, exact-size validation and decoding, and the corpus of
 * one message of every type.  Each test-wire-*.c file adds its tests to
 * the suite's test cases through its wire_<file>_tests().
 */
#ifndef STEPTRACE_TESTS_TEST_WIRE_H
#define STEPTRACE_TESTS_TEST_WIRE_H

#include "test-common.h"

#include <stddef.h>
#include <stdint.h>

#include "wire-pack.h"
#include "steptrace/buf.h"
#include "steptrace/wire.h"

/* A string literal as the (pointer, length) pair the encoders take. */
#define LIT(s) (s), (sizeof(s) - 1)

/*
 * Asserts that a decoded struct st_str holds exactly (ptr, len).  The
 * outer macro lets LIT() expand into its two arguments first.
 */
#define ck_assert_st_str_eq(...) ck_assert_st_str_eq_(__VA_ARGS__)
#define ck_assert_st_str_eq_(str, ptr, len)                                   \
    do {                                                                      \
        struct st_str ck_s_ = (str);                                          \
        size_t ck_n_ = (len);                                                 \
        ck_assert_uint_eq(ck_s_.n, ck_n_);                                    \
        if (ck_n_ != 0)                                                       \
            ck_assert_mem_eq(ck_s_.p, (ptr), ck_n_);                          \
    } while (0)

/* A buffer with a msgpack packer writing into it. */
struct packed {
    struct st_buf b;
    msgpack_packer pk;
};

void packed_init(struct packed *p);
void packed_close(struct packed *p);

/* Validates bytes copied to an exact-size heap block. */
int validate_exact(const void *p, size_t len);

/*
 * Decodes the only message of a payload (after checking that the payload
 * validates as one message) and returns st_wire_decode_next()'s result.
 * The decoder stays open so *m's borrowed strings remain valid; the caller
 * closes it.
 */
int decode_single(struct st_wire_decoder *d, const struct st_buf *b,
                  struct st_msg *m);

/* Asserts that the next message decodes and is of `type`. */
void next_msg(struct st_wire_decoder *d, struct st_msg *m, int type);
/* Assert a diff entry: a set of `value`, or a delete. */
void check_var_set(const struct st_wire_var *v, uint32_t name, uint32_t type,
                   const char *value, size_t n);
void check_var_del(const struct st_wire_var *v, uint32_t name);

/* Decodes one message of raw bytes (copied to an exact-size block, and
 * validated first) and returns the decoder's verdict. */
int decode_raw(const unsigned char *bytes, size_t len);
#define DECODE(...)                                                           \
    decode_raw((const unsigned char[]){__VA_ARGS__},                          \
               sizeof((const unsigned char[]){__VA_ARGS__}))

/* test-wire-corpus.c: packs one message of every type (CORPUS_COUNT
 * messages); check_corpus() decodes them and checks every field. */
#define CORPUS_COUNT 24
int pack_corpus(msgpack_packer *pk);
void check_corpus(struct st_wire_decoder *d);

/* The wire suite's test cases, which each file adds its tests to. */
struct wire_tcases {
    TCase *header;
    TCase *round_trip;
    TCase *truncation;
    TCase *hostile;
    TCase *random;
    TCase *decode_errors;
};

void wire_corpus_tests(const struct wire_tcases *tc);
void wire_put_tests(const struct wire_tcases *tc);
void wire_validate_tests(const struct wire_tcases *tc);
void wire_random_tests(const struct wire_tcases *tc);
void wire_decode_tests(const struct wire_tcases *tc);

#endif /* STEPTRACE_TESTS_TEST_WIRE_H */
