/*
 * Tests for steptrace/wire.h: framing, the encoders, st_wire_validate()
 * against truncated, hostile and random input, and the decoder.  This file
 * holds the frame header tests, the helpers the wire tests share
 * (test-wire.h) and wire_suite(); the other tests are in test-wire-*.c.
 *
 * Every input handed to st_wire_validate() or the decoder that could be
 * read past its end lives in a heap block of exactly its length
 * (test_dup_exact), so the AddressSanitizer build reports an over-read
 * instead of silently reading the neighbouring bytes.
 */
#include "test-wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

void
packed_init(struct packed *p)
{
    st_buf_init(&p->b);
    msgpack_packer_init(&p->pk, &p->b, st_buf_msgpack_write);
}

void
packed_close(struct packed *p)
{
    st_buf_close(&p->b);
}

/* Validates bytes copied to an exact-size heap block. */
int
validate_exact(const void *p, size_t len)
{
    char *copy = test_dup_exact(p, len);
    int r = st_wire_validate(copy, len);

    free(copy);
    return r;
}

/*
 * Decodes the only message of a payload (after checking that the payload
 * validates as one message) and returns st_wire_decode_next()'s result.
 * The decoder stays open so *m's borrowed strings remain valid; the caller
 * closes it.
 */
int
decode_single(struct st_wire_decoder *d, const struct st_buf *b,
              struct st_msg *m)
{
    ck_assert_int_eq(st_wire_validate(b->data, b->len), 1);
    st_wire_decoder_init(d);
    st_wire_decoder_reset(d, b->data, b->len);
    return st_wire_decode_next(d, m);
}

void
next_msg(struct st_wire_decoder *d, struct st_msg *m, int type)
{
    ck_assert_int_eq(st_wire_decode_next(d, m), 1);
    ck_assert_int_eq(m->type, type);
}

void
check_var_set(const struct st_wire_var *v, uint32_t name, uint32_t type,
              const char *value, size_t n)
{
    ck_assert_int_eq(v->deleted, 0);
    ck_assert_uint_eq(v->name_sid, name);
    ck_assert_uint_eq(v->type_sid, type);
    ck_assert_st_str_eq(v->value, value, n);
}

void
check_var_del(const struct st_wire_var *v, uint32_t name)
{
    ck_assert_int_eq(v->deleted, 1);
    ck_assert_uint_eq(v->name_sid, name);
    ck_assert_uint_eq(v->type_sid, 0);
    ck_assert_uint_eq(v->value.n, 0);
}

/* Packs one raw message with `pack` and returns the decoder's verdict. */
int
decode_raw(const unsigned char *bytes, size_t len)
{
    struct st_wire_decoder d;
    struct st_msg m;
    char *p = test_dup_exact(bytes, len);
    int r;

    ck_assert_int_eq(st_wire_validate(p, len), 1);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p, len);
    r = st_wire_decode_next(&d, &m);
    st_wire_decoder_close(&d);
    free(p);
    return r;
}

/* ---- Frame header ---- */

START_TEST(test_wire_header_round_trip)
{
    static const uint32_t lens[] = {1,
                                    2,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    0x00abcdef,
                                    ST_WIRE_MAX_FRAME - 1,
                                    ST_WIRE_MAX_FRAME};
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    size_t i;

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        st_wire_put_header(hdr, lens[i]);
        ck_assert_int_eq(st_wire_frame_len(hdr, 0), (int64_t)lens[i]);
        ck_assert_int_eq(st_wire_frame_len(hdr, lens[i]), (int64_t)lens[i]);
    }
}
END_TEST

START_TEST(test_wire_header_is_big_endian)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    static const unsigned char want[] = {0x00, 0xab, 0xcd, 0xef};

    st_wire_put_header(hdr, 0x00abcdefu);
    ck_assert_mem_eq(hdr, want, sizeof(want));
}
END_TEST

START_TEST(test_wire_header_rejects_zero)
{
    static const unsigned char zero[ST_WIRE_HEADER_SIZE] = {0, 0, 0, 0};

    ck_assert_int_eq(st_wire_frame_len(zero, 0), ST_EMALFORMED);
    ck_assert_int_eq(st_wire_frame_len(zero, 100), ST_EMALFORMED);
}
END_TEST

START_TEST(test_wire_header_rejects_too_big)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    static const unsigned char all_ones[ST_WIRE_HEADER_SIZE] = {0xff, 0xff,
                                                                0xff, 0xff};

    st_wire_put_header(hdr, ST_WIRE_MAX_FRAME + 1);
    ck_assert_int_eq(st_wire_frame_len(hdr, 0), ST_ETOOBIG);
    ck_assert_int_eq(st_wire_frame_len(all_ones, 0), ST_ETOOBIG);
    /* A caller-supplied limit is honoured too. */
    st_wire_put_header(hdr, 100);
    ck_assert_int_eq(st_wire_frame_len(hdr, 99), ST_ETOOBIG);
    ck_assert_int_eq(st_wire_frame_len(hdr, 100), 100);
}
END_TEST

Suite *
wire_suite(void)
{
    Suite *s = suite_create("wire");
    struct wire_tcases tc;

    tc.header = tcase_create("header");
    tc.round_trip = tcase_create("round_trip");
    tc.truncation = tcase_create("truncation");
    tc.hostile = tcase_create("hostile");
    tc.random = tcase_create("random");
    tc.decode_errors = tcase_create("decode_errors");
    tcase_add_test(tc.header, test_wire_header_round_trip);
    tcase_add_test(tc.header, test_wire_header_is_big_endian);
    tcase_add_test(tc.header, test_wire_header_rejects_zero);
    tcase_add_test(tc.header, test_wire_header_rejects_too_big);
    wire_corpus_tests(&tc);
    wire_put_tests(&tc);
    wire_validate_tests(&tc);
    wire_random_tests(&tc);
    wire_decode_tests(&tc);
    suite_add_tcase(s, tc.header);
    suite_add_tcase(s, tc.round_trip);
    suite_add_tcase(s, tc.truncation);
    suite_add_tcase(s, tc.hostile);
    suite_add_tcase(s, tc.random);
    suite_add_tcase(s, tc.decode_errors);
    return s;
}
