/*
 * st_wire_validate() and st_wire_validate_messages() against truncated
 * and hostile input, and the direct walk of the agent's STEP shapes.
 * Part of the wire suite (test-wire.c); see test-wire.h.
 */
#include "test-wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

/* ---- Validation: truncation ---- */

/*
 * Every proper prefix of a valid multi-message payload, each in a heap
 * block of exactly its length: a prefix cut inside a message is
 * ST_ETRUNCATED.  A prefix that ends exactly between two messages is
 * itself a well-formed payload of fewer messages, which no validator can
 * tell from a shorter frame, so there the count must be the number of
 * whole messages, never the full count.  The empty payload is rejected.
 */
START_TEST(test_wire_validate_truncated_prefixes)
{
    struct packed p;
    size_t bounds[CORPUS_COUNT + 1];
    size_t nb = 0, k, b = 0;

    packed_init(&p);
    ck_assert_int_eq(pack_corpus(&p.pk), CORPUS_COUNT);
    /* Find the message boundaries with msgpack-c's own parser. */
    {
        msgpack_unpacked u;
        size_t off = 0;

        msgpack_unpacked_init(&u);
        bounds[nb++] = 0;
        while (off < p.b.len) {
            ck_assert_int_eq(msgpack_unpack_next(&u, p.b.data, p.b.len, &off),
                             MSGPACK_UNPACK_SUCCESS);
            ck_assert_uint_lt(nb, CORPUS_COUNT + 1);
            bounds[nb++] = off;
        }
        msgpack_unpacked_destroy(&u);
    }
    ck_assert_uint_eq(nb, CORPUS_COUNT + 1);
    ck_assert_int_eq(st_wire_validate(p.b.data, 0), ST_ETRUNCATED);
    for (k = 1; k < p.b.len; k++) {
        int r = validate_exact(p.b.data, k);

        while (bounds[b + 1] <= k)
            b++;
        if (bounds[b] == k)
            ck_assert_int_eq(r, (int)b); /* Ends between messages. */
        else
            ck_assert_int_eq(r, ST_ETRUNCATED);
    }
    packed_close(&p);
}
END_TEST

/* ---- Validation: hostile input ---- */

START_TEST(test_wire_validate_rejects_huge_array32)
{
    static const unsigned char top[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char inner[] = {0x92, 0x01, 0xdd, 0xff,
                                          0xff, 0xff, 0xff};

    ck_assert_int_eq(validate_exact(top, sizeof(top)), ST_ETOOBIG);
    ck_assert_int_eq(validate_exact(inner, sizeof(inner)), ST_ETOOBIG);
}
END_TEST

START_TEST(test_wire_validate_rejects_maps)
{
    static const unsigned char map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char map16[] = {0xde, 0x00, 0x01, 0x01, 0x01};
    static const unsigned char fixmap[] = {0x81, 0x01, 0x01};
    static const unsigned char inner[] = {0x92, 0x09, 0x81, 0x01, 0x01};

    ck_assert_int_eq(validate_exact(map32, sizeof(map32)), ST_EBADTYPE);
    ck_assert_int_eq(validate_exact(map16, sizeof(map16)), ST_EBADTYPE);
    ck_assert_int_eq(validate_exact(fixmap, sizeof(fixmap)), ST_EBADTYPE);
    ck_assert_int_eq(validate_exact(inner, sizeof(inner)), ST_EBADTYPE);
}
END_TEST

START_TEST(test_wire_validate_rejects_ext)
{
    /* fixext1, ext8 and ext32 inside a message. */
    static const unsigned char fixext[] = {0x92, 0x09, 0xd4, 0x01, 0x00};
    static const unsigned char ext8[] = {0x92, 0x09, 0xc7, 0x01, 0x01, 0x00};
    static const unsigned char ext32[] = {0x92, 0x09, 0xc9, 0xff,
                                          0xff, 0xff, 0xff, 0x01};

    ck_assert_int_eq(validate_exact(fixext, sizeof(fixext)), ST_EBADTYPE);
    ck_assert_int_eq(validate_exact(ext8, sizeof(ext8)), ST_EBADTYPE);
    ck_assert_int_eq(validate_exact(ext32, sizeof(ext32)), ST_EBADTYPE);
}
END_TEST

START_TEST(test_wire_validate_rejects_deep_nesting)
{
    const size_t n = 100000;
    char *p = malloc(n);

    ck_assert_ptr_nonnull(p);
    memset(p, 0x91, n);
    ck_assert_int_eq(st_wire_validate(p, n), ST_EDEPTH);
    free(p);
}
END_TEST

START_TEST(test_wire_validate_depth_limit)
{
    /* Four nested arrays is the deepest any message goes. */
    static const unsigned char four[] = {0x91, 0x91, 0x91, 0x91, 0x01};
    static const unsigned char five[] = {0x91, 0x91, 0x91, 0x91, 0x91, 0x01};
    /* Depth is per message: siblings at depth 4 are fine. */
    static const unsigned char wide[] = {0x92, 0x91, 0x91, 0x91, 0x01,
                                         0x91, 0x91, 0x91, 0x02};

    ck_assert_int_eq(ST_WIRE_MAX_DEPTH, 4);
    ck_assert_int_eq(validate_exact(four, sizeof(four)), 1);
    ck_assert_int_eq(validate_exact(five, sizeof(five)), ST_EDEPTH);
    ck_assert_int_eq(validate_exact(wide, sizeof(wide)), 1);
}
END_TEST

START_TEST(test_wire_validate_count_limit)
{
    /* An array32 of exactly ST_WIRE_MAX_COUNT nils is allowed, one more
     * element is not, even with the bytes present. */
    size_t n = ST_WIRE_MAX_COUNT + 1;
    unsigned char *p = malloc(5 + n);

    ck_assert_ptr_nonnull(p);
    memset(p, 0xc0, 5 + n);
    p[0] = 0xdd;
    p[1] = (unsigned char)(ST_WIRE_MAX_COUNT >> 24);
    p[2] = (unsigned char)(ST_WIRE_MAX_COUNT >> 16);
    p[3] = (unsigned char)(ST_WIRE_MAX_COUNT >> 8);
    p[4] = (unsigned char)ST_WIRE_MAX_COUNT;
    ck_assert_int_eq(st_wire_validate((char *)p, 5 + ST_WIRE_MAX_COUNT), 1);
    p[1] = (unsigned char)((ST_WIRE_MAX_COUNT + 1) >> 24);
    p[2] = (unsigned char)((ST_WIRE_MAX_COUNT + 1) >> 16);
    p[3] = (unsigned char)((ST_WIRE_MAX_COUNT + 1) >> 8);
    p[4] = (unsigned char)(ST_WIRE_MAX_COUNT + 1);
    ck_assert_int_eq(st_wire_validate((char *)p, 5 + n), ST_ETOOBIG);
    free(p);
}
END_TEST

START_TEST(test_wire_validate_rejects_count_beyond_bytes)
{
    /* array32 of 16 elements, array16 of 3, fixarray of 15: too few bytes. */
    static const unsigned char a32[] = {0xdd, 0x00, 0x00, 0x00,
                                        0x10, 0x01, 0x02, 0x03};
    static const unsigned char a16[] = {0xdc, 0x00, 0x03, 0x01, 0x02};
    static const unsigned char fix[] = {0x9f, 0x01};

    ck_assert_int_eq(validate_exact(a32, sizeof(a32)), ST_ETRUNCATED);
    ck_assert_int_eq(validate_exact(a16, sizeof(a16)), ST_ETRUNCATED);
    ck_assert_int_eq(validate_exact(fix, sizeof(fix)), ST_ETRUNCATED);
}
END_TEST

START_TEST(test_wire_validate_rejects_top_level_non_array)
{
    static const unsigned char cases[][3] = {
        {0x01},             /* positive fixint */
        {0xff},             /* negative fixint */
        {0xc0},             /* nil */
        {0xc3},             /* true */
        {0xa1, 'x'},        /* fixstr */
        {0xc4, 0x01, 0x00}, /* bin8 */
        {0xcc, 0x80},       /* uint8 */
    };
    static const size_t lens[] = {1, 1, 1, 1, 2, 3, 2};
    /* A valid message followed by a stray scalar. */
    static const unsigned char trailing[] = {0x92, 0x09, 0x01, 0x07};
    size_t i;

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        ck_assert_int_eq(validate_exact(cases[i], lens[i]), ST_EBADTYPE);
    ck_assert_int_eq(validate_exact(trailing, sizeof(trailing)), ST_EBADTYPE);
}
END_TEST

START_TEST(test_wire_validate_rejects_never_used_byte)
{
    static const unsigned char top[] = {0xc1};
    static const unsigned char inner[] = {0x92, 0x09, 0xc1};

    ck_assert_int_eq(validate_exact(top, sizeof(top)), ST_EMALFORMED);
    ck_assert_int_eq(validate_exact(inner, sizeof(inner)), ST_EMALFORMED);
}
END_TEST

START_TEST(test_wire_validate_rejects_short_strings)
{
    /* str32 / bin32 announcing 4096 bytes with one present, str8 and str16
     * one byte short, and a length field itself cut off. */
    static const unsigned char str32[] = {0x92, 0x02, 0xdb, 0x00,
                                          0x00, 0x10, 0x00, 'a'};
    static const unsigned char bin32[] = {0x92, 0x02, 0xc6, 0xff,
                                          0xff, 0xff, 0xff, 'a'};
    static const unsigned char str8[] = {0x92, 0x02, 0xd9, 0x03, 'a', 'b'};
    static const unsigned char str16[] = {0x92, 0x02, 0xda, 0x00,
                                          0x03, 'a',  'b'};
    static const unsigned char fixstr[] = {0x92, 0x02, 0xa3, 'a', 'b'};
    static const unsigned char cut_len[] = {0x92, 0x02, 0xdb, 0x00, 0x00};
    static const unsigned char cut_u64[] = {0x92, 0x09, 0xcf, 0x00, 0x00};

    ck_assert_int_eq(validate_exact(str32, sizeof(str32)), ST_ETRUNCATED);
    ck_assert_int_eq(validate_exact(bin32, sizeof(bin32)), ST_ETRUNCATED);
    ck_assert_int_eq(validate_exact(str8, sizeof(str8)), ST_ETRUNCATED);
    ck_assert_int_eq(validate_exact(str16, sizeof(str16)), ST_ETRUNCATED);
    ck_assert_int_eq(validate_exact(fixstr, sizeof(fixstr)), ST_ETRUNCATED);
    ck_assert_int_eq(validate_exact(cut_len, sizeof(cut_len)), ST_ETRUNCATED);
    ck_assert_int_eq(validate_exact(cut_u64, sizeof(cut_u64)), ST_ETRUNCATED);
}
END_TEST

START_TEST(test_wire_validate_accepts_every_scalar)
{
    /* One message holding every scalar encoding the validator must skip:
     * nil, false, true, fixints, u8..u64, i8..i64, f32, f64, str8/16/32,
     * bin8/16/32, and empty arrays of all three widths. */
    static const unsigned char msg[] = {
        0xdc, 0x00, 0x18, 0xc0, 0xc2, 0xc3, 0x05, 0xe0, 0xcc, 0x01, 0xcd, 0x00,
        0x01, 0xce, 0,    0,    0,    1,    0xcf, 0,    0,    0,    0,    0,
        0,    0,    1,    0xd0, 0x80, 0xd1, 0x80, 0x00, 0xd2, 0x80, 0,    0,
        0,    0xd3, 0x80, 0,    0,    0,    0,    0,    0,    0,    0xca, 0,
        0,    0,    0,    0xcb, 0,    0,    0,    0,    0,    0,    0,    0,
        0xd9, 0x01, 'a',  0xda, 0x00, 0x01, 'b',  0xdb, 0,    0,    0,    1,
        'c',  0xc4, 0x01, 'd',  0xc5, 0x00, 0x01, 'e',  0xc6, 0,    0,    0,
        1,    'f',  0x90, 0xdc, 0x00, 0x00, 0xdd, 0,    0,    0,    0,
    };

    ck_assert_int_eq(validate_exact(msg, sizeof(msg)), 1);
}
END_TEST

static int
validate_messages_exact(const unsigned char *bytes, size_t len)
{
    char *copy = test_dup_exact(bytes, len);
    int r = st_wire_validate_messages(copy, len);

    free(copy);
    return r;
}

#define VALIDATE_MSGS(...)                                                    \
    validate_messages_exact((const unsigned char[]){__VA_ARGS__},             \
                            sizeof((const unsigned char[]){__VA_ARGS__}))

/* STEPs in the agent's forms are validated without the general walk;
 * hostile lengths inside them get the general walk's verdicts. */
START_TEST(test_wire_validate_step_shapes)
{
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 4, 0xc0, 0x90), 1);
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 0xcf, 0, 0, 0, 0, 0, 0,
                                   0, 4, 0x91, 0x93, 5, 6, 0xd9, 1, 'x', 0x91,
                                   0x91, 7),
                     1);
    /* A u64 cut short; a str longer than the frame; a diff announcing
     * more entries than bytes, or more than ST_WIRE_MAX_COUNT. */
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 0xcf, 0, 0, 0),
                     ST_ETRUNCATED);
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 5, 6,
                                   0xa5, 'x', 0xc0),
                     ST_ETRUNCATED);
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 4, 0xdc, 0x10, 0,
                                   0xc0),
                     ST_ETRUNCATED);
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 4, 0xdd, 0xff, 0xff,
                                   0xff, 0xff, 0xc0),
                     ST_ETOOBIG);
    /* An entry that is a map; a diff that is a map. */
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x80, 0xc0),
                     ST_EBADTYPE);
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 4, 0x80, 0xc0),
                     ST_EBADTYPE);
    /* A STEP with a field missing or one too many. */
    ck_assert_int_eq(VALIDATE_MSGS(0x96, 0x06, 1, 2, 3, 4, 0xc0), ST_EBADMSG);
    ck_assert_int_eq(VALIDATE_MSGS(0x98, 0x06, 1, 2, 3, 4, 0xc0, 0xc0, 0xc0),
                     ST_EBADMSG);
}
END_TEST

/* The collector's validation also checks each message's type and field
 * count, and the elements a message holds in all, before msgpack-c sees
 * the frame. */
START_TEST(test_wire_validate_messages_checks_headers)
{
    static const unsigned char flush[] = {0x92, 0x09, 0x01};
    static const unsigned char unknown[] = {0x92, 0x64, 0x01};
    static const unsigned char short_flush[] = {0x91, 0x09};
    static const unsigned char zero_type[] = {0x92, 0x00, 0x01};
    static const unsigned char str_type[] = {0x92, 0xa1, 0x09, 0x01};
    static const unsigned char empty[] = {0x90};
    static const unsigned char wide_type[] = {0x92, 0xcd, 0x00, 0x09, 0x01};
    static const unsigned char alias_type[] = {0x92, 0xcd, 0x01, 0x09, 0x01};
    struct packed p;

    ck_assert_int_eq(validate_exact(flush, sizeof(flush)), 1);
    ck_assert_int_eq(st_wire_validate_messages((const char *)flush,
                                               sizeof(flush)),
                     1);
    /* Structurally fine, so st_wire_validate() accepts them ... */
    ck_assert_int_eq(validate_exact(unknown, sizeof(unknown)), 1);
    /* ... but not as messages. */
    ck_assert_int_eq(st_wire_validate_messages((const char *)unknown,
                                               sizeof(unknown)),
                     ST_EBADMSG);
    ck_assert_int_eq(st_wire_validate_messages((const char *)short_flush,
                                               sizeof(short_flush)),
                     ST_EBADMSG);
    ck_assert_int_eq(st_wire_validate_messages((const char *)zero_type,
                                               sizeof(zero_type)),
                     ST_EBADMSG);
    ck_assert_int_eq(st_wire_validate_messages((const char *)str_type,
                                               sizeof(str_type)),
                     ST_EBADMSG);
    ck_assert_int_eq(st_wire_validate_messages((const char *)empty,
                                               sizeof(empty)),
                     ST_EBADMSG);
    ck_assert_int_eq(st_wire_validate_messages((const char *)wide_type,
                                               sizeof(wide_type)),
                     1);
    ck_assert_int_eq(st_wire_validate_messages((const char *)alias_type,
                                               sizeof(alias_type)),
                     ST_EBADMSG);
    /* The whole corpus passes. */
    packed_init(&p);
    ck_assert_int_eq(pack_corpus(&p.pk), CORPUS_COUNT);
    ck_assert_int_eq(st_wire_validate_messages(p.b.data, p.b.len),
                     CORPUS_COUNT);
    packed_close(&p);
}
END_TEST

/* Many small arrays inside one message: each is within the per-array
 * limit, their sum is not. */
START_TEST(test_wire_validate_messages_bounds_elements)
{
    struct packed p;
    uint32_t i, n = ST_WIRE_MAX_COUNT / 2 + 1;

    packed_init(&p);
    ck_assert_int_eq(st_wire_pack_step_begin(&p.pk, 1, 1, 1, 1), 0);
    ck_assert_int_eq(st_wire_pack_diff_begin(&p.pk, n), 0);
    for (i = 0; i < n; i++)
        ck_assert_int_eq(st_wire_pack_var_del(&p.pk, 1), 0);
    ck_assert_int_eq(st_wire_pack_nil(&p.pk), 0);
    ck_assert_int_eq(p.b.oom, 0);
    ck_assert_int_eq(st_wire_validate(p.b.data, p.b.len), 1);
    ck_assert_int_eq(st_wire_validate_messages(p.b.data, p.b.len), ST_ETOOBIG);
    packed_close(&p);
}
END_TEST

void
wire_validate_tests(const struct wire_tcases *tc)
{
    tcase_add_test(tc->truncation, test_wire_validate_truncated_prefixes);
    tcase_add_test(tc->hostile, test_wire_validate_rejects_huge_array32);
    tcase_add_test(tc->hostile, test_wire_validate_rejects_maps);
    tcase_add_test(tc->hostile, test_wire_validate_rejects_ext);
    tcase_add_test(tc->hostile, test_wire_validate_rejects_deep_nesting);
    tcase_add_test(tc->hostile, test_wire_validate_depth_limit);
    tcase_add_test(tc->hostile, test_wire_validate_count_limit);
    tcase_add_test(tc->hostile, test_wire_validate_rejects_count_beyond_bytes);
    tcase_add_test(tc->hostile,
                   test_wire_validate_rejects_top_level_non_array);
    tcase_add_test(tc->hostile, test_wire_validate_rejects_never_used_byte);
    tcase_add_test(tc->hostile, test_wire_validate_rejects_short_strings);
    tcase_add_test(tc->hostile, test_wire_validate_accepts_every_scalar);
    tcase_add_test(tc->hostile, test_wire_validate_messages_checks_headers);
    tcase_add_test(tc->hostile, test_wire_validate_messages_bounds_elements);
    tcase_add_test(tc->decode_errors, test_wire_validate_step_shapes);
}
