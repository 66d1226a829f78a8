/*
 * The decoder's verdicts on bad messages (the codes of st_wire_decode_next),
 * STEPs in every encoding, and that it goes on after a bad message.
 * Part of the wire suite (test-wire.c); see test-wire.h.
 */
#include "test-wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

START_TEST(test_wire_decode_rejects_wrong_field_count)
{
    /* Sanity: the well-formed FLUSH decodes. */
    ck_assert_int_eq(DECODE(0x92, 0x09, 0x01), 1);
    ck_assert_int_eq(DECODE(0x91, 0x09), ST_EBADMSG); /* FLUSH */
    ck_assert_int_eq(DECODE(0x93, 0x09, 0x01, 0x02), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x93, 0x01, 0x01, 0x01), ST_EBADMSG); /* HELLO */
    ck_assert_int_eq(DECODE(0x94, 0x01, 0x01, 0x01, 0xa0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x97, 0x01, 0x01, 0x01, 0xa0, 0x00, 0x00, 0x00),
                     ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x96, 0x06, 1, 2, 3, 4, 0xc0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x98, 0x06, 1, 2, 3, 4, 0xc0, 0xc0, 0xc0),
                     ST_EBADMSG);               /* STEP */
    ck_assert_int_eq(DECODE(0x90), ST_EBADMSG); /* Empty message. */
}
END_TEST

START_TEST(test_wire_decode_rejects_unknown_type)
{
    ck_assert_int_eq(DECODE(0x92, 0x00, 0x01), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x92, 0x64, 0x01), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x92, 0x7f, 0x01), ST_EBADMSG);
    /* 256 + 9: must not alias FLUSH. */
    ck_assert_int_eq(DECODE(0x92, 0xcd, 0x01, 0x09, 0x01), ST_EBADMSG);
    /* 2^32 + 9 and 2^64 - 247 (low byte 9) likewise. */
    ck_assert_int_eq(DECODE(0x92, 0xcf, 0, 0, 0, 1, 0, 0, 0, 9, 0x01),
                     ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x92, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0x09, 0x01),
                     ST_EBADMSG);
    /* The type must be a positive integer. */
    ck_assert_int_eq(DECODE(0x92, 0xff, 0x01), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x92, 0xa1, 'x', 0x01), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x92, 0xc0, 0x01), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x92, 0x91, 0x09, 0x01), ST_EBADMSG);
}
END_TEST

START_TEST(test_wire_decode_rejects_wrong_field_type)
{
    /* FLUSH token: str, nil, negative, float, array. */
    ck_assert_int_eq(DECODE(0x92, 0x09, 0xa1, 'x'), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x92, 0x09, 0xc0), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x92, 0x09, 0xff), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x92, 0x09, 0xca, 0, 0, 0, 0), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x92, 0x09, 0x90), ST_EBADTYPE);
    /* A u32 field holding 2^32. */
    ck_assert_int_eq(DECODE(0x92, 0x07, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0),
                     ST_EBADTYPE);
    /* ... while UINT32_MAX sent as u64 is fine. */
    ck_assert_int_eq(DECODE(0x92, 0x07, 0xcf, 0, 0, 0, 0, 0xff, 0xff, 0xff,
                            0xff),
                     1);
    /* STR with an integer text; HELLO with an integer program. */
    ck_assert_int_eq(DECODE(0x93, 0x02, 0x01, 0x05), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x96, 0x01, 0x01, 0x01, 0x05, 0x00, 0x00),
                     ST_EBADTYPE);
    /* HELLO with a str ring size. */
    ck_assert_int_eq(DECODE(0x96, 0x01, 0x01, 0x01, 0xa0, 0xa1, '1', 0x00),
                     ST_EBADTYPE);
    /* EVENT detail nil (only ACK allows nil). */
    ck_assert_int_eq(DECODE(0x97, 0x0b, 1, 2, 3, 4, 4, 0xc0), ST_EBADTYPE);
    /* EVENT of an unknown kind. */
    ck_assert_int_eq(DECODE(0x97, 0x0b, 1, 2, 3, 4, 9, 0xa0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x97, 0x0b, 1, 2, 3, 4, 0, 0xa0), ST_EBADMSG);
    /* ACK message integer. */
    ck_assert_int_eq(DECODE(0x94, 0x0c, 1, 2, 3), ST_EBADTYPE);
    /* REGION level as str. */
    ck_assert_int_eq(DECODE(0x99, 0x03, 1, 2, 0xa1, '/', 0xa0, 2, 0, 0, 1),
                     ST_EBADTYPE);
}
END_TEST

START_TEST(test_wire_decode_rejects_bad_diffs)
{
    /* Sanity: [6, 1, 2, 3, 4, [[5, 6, ""]], nil] decodes. */
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 5, 6, 0xa0,
                            0xc0),
                     1);
    /* Diff is an integer, a string. */
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x05, 0xc0), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0xc0, 0xa0), ST_EBADTYPE);
    /* Entry is not an array. */
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x05, 0xc0),
                     ST_EBADTYPE);
    /* Entries of 0, 2 and 4 elements: a wrong number of fields. */
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x90, 0xc0),
                     ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0xc0, 0x91, 0x92, 5, 6),
                     ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x94, 5, 6, 0xa0, 7,
                            0xc0),
                     ST_EBADMSG);
    /* Entry fields of the wrong type: str name, nil type, int value, str
     * name in a delete. */
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 0xa0, 6, 0xa0,
                            0xc0),
                     ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 5, 0xc0, 0xa0,
                            0xc0),
                     ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 5, 6, 7, 0xc0),
                     ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x91, 0xa0, 0xc0),
                     ST_EBADTYPE);
}
END_TEST

/* Decodes one STEP from raw bytes and checks what every test below
 * expects of it: [6, 1, 2, 3, 4, [[5, 6, "ab"], [7]], nil]. */
static void
check_step_raw(const unsigned char *bytes, size_t len)
{
    struct st_wire_decoder d;
    struct st_msg m;
    char *p = test_dup_exact(bytes, len);

    ck_assert_int_eq(st_wire_validate_messages(p, len), 1);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p, len);
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 1);
    ck_assert_int_eq(m.type, ST_MSG_STEP);
    ck_assert_uint_eq(m.u.step.region_id, 1);
    ck_assert_uint_eq(m.u.step.frame_id, 2);
    ck_assert_uint_eq(m.u.step.lineno, 3);
    ck_assert_uint_eq(m.u.step.runtime_ns, 4);
    ck_assert_int_eq(m.u.step.has_globals, 1);
    ck_assert_uint_eq(m.u.step.nglobals, 2);
    check_var_set(&m.u.step.globals[0], 5, 6, LIT("ab"));
    check_var_del(&m.u.step.globals[1], 7);
    ck_assert_int_eq(m.u.step.has_locals, 0);
    ck_assert_uint_eq(m.u.step.nlocals, 0);
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
    st_wire_decoder_close(&d);
    free(p);
}

#define CHECK_STEP(...)                                                       \
    check_step_raw((const unsigned char[]){__VA_ARGS__},                      \
                   sizeof((const unsigned char[]){__VA_ARGS__}))

/* STEP is decoded without msgpack-c in the forms the agent writes; every
 * other valid form still decodes to the same message. */
START_TEST(test_wire_decode_step_any_encoding)
{
    /* The agent's forms. */
    CHECK_STEP(0x97, 0x06, 1, 2, 3, 4, 0x92, 0x93, 5, 6, 0xa2, 'a', 'b', 0x91,
               7, 0xc0);
    /* Wider unsigned forms, str8/bin8/bin32 values, array16/32 diffs. */
    CHECK_STEP(0x97, 0x06, 0xcc, 1, 0xcd, 0, 2, 0xce, 0, 0, 0, 3, 0xcf, 0, 0,
               0, 0, 0, 0, 0, 4, 0xdc, 0, 2, 0x93, 5, 6, 0xd9, 2, 'a', 'b',
               0x91, 7, 0xc0);
    CHECK_STEP(0x97, 0x06, 1, 2, 3, 4, 0xdd, 0, 0, 0, 2, 0x93, 5, 6, 0xc4, 2,
               'a', 'b', 0xdc, 0, 1, 7, 0xc0);
    CHECK_STEP(0x97, 0x06, 1, 2, 3, 4, 0x92, 0x93, 5, 6, 0xc6, 0, 0, 0, 2, 'a',
               'b', 0x91, 7, 0xc0);
    /* Forms only msgpack-c reads here: an array16 message, the type as
     * u8, a positive int8 and int64 (msgpack-c reads them as unsigned). */
    CHECK_STEP(0xdc, 0, 7, 0x06, 1, 2, 3, 4, 0x92, 0x93, 5, 6, 0xa2, 'a', 'b',
               0x91, 7, 0xc0);
    CHECK_STEP(0x97, 0xcc, 0x06, 1, 2, 3, 4, 0x92, 0x93, 5, 6, 0xa2, 'a', 'b',
               0x91, 7, 0xc0);
    CHECK_STEP(0x97, 0x06, 0xd0, 1, 2, 3, 0xd3, 0, 0, 0, 0, 0, 0, 0, 4, 0x92,
               0x93, 5, 6, 0xa2, 'a', 'b', 0x91, 0xd1, 0, 7, 0xc0);
}
END_TEST

/* A frame mixing STEPs and other messages decodes in order, each STEP's
 * diffs pointing at its own entries. */
START_TEST(test_wire_decode_steps_in_a_frame)
{
    static const unsigned char frame[] = {0x97, 0x06, 1,    2,    3,    4,
                                          0x91, 0x93, 5,    6,    0xa1, 'x',
                                          0x91, 0x91, 8,    0x92, 0x09, 0x2a,
                                          0x97, 0x06, 9,    10,   11,   0xcd,
                                          0x01, 0x00, 0xc0, 0x90};
    struct st_wire_decoder d;
    struct st_msg m;
    char *p = test_dup_exact(frame, sizeof(frame));

    ck_assert_int_eq(st_wire_validate_messages(p, sizeof(frame)), 3);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p, sizeof(frame));
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 1);
    ck_assert_int_eq(m.type, ST_MSG_STEP);
    ck_assert_uint_eq(m.u.step.nglobals, 1);
    check_var_set(&m.u.step.globals[0], 5, 6, LIT("x"));
    ck_assert_uint_eq(m.u.step.nlocals, 1);
    check_var_del(&m.u.step.locals[0], 8);
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 1);
    ck_assert_int_eq(m.type, ST_MSG_FLUSH);
    ck_assert_uint_eq(m.u.flush.token, 42);
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 1);
    ck_assert_int_eq(m.type, ST_MSG_STEP);
    ck_assert_uint_eq(m.u.step.region_id, 9);
    ck_assert_uint_eq(m.u.step.runtime_ns, 256);
    ck_assert_int_eq(m.u.step.has_globals, 0);
    ck_assert_int_eq(m.u.step.has_locals, 1);
    ck_assert_uint_eq(m.u.step.nlocals, 0);
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
    st_wire_decoder_close(&d);
    free(p);
}
END_TEST

/* Validates exact-size bytes with st_wire_validate_messages(). */

/* A bad message does not stop the decoder: it moves on to the next one. */
START_TEST(test_wire_decode_continues_after_error)
{
    static const unsigned char frame[] = {0x92, 0x64, 0x01,  /* unknown */
                                          0x92, 0x09, 0x2a}; /* FLUSH 42 */
    struct st_wire_decoder d;
    struct st_msg m;
    char *p = test_dup_exact(frame, sizeof(frame));

    ck_assert_int_eq(st_wire_validate(p, sizeof(frame)), 2);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p, sizeof(frame));
    ck_assert_int_eq(st_wire_decode_next(&d, &m), ST_EBADMSG);
    next_msg(&d, &m, ST_MSG_FLUSH);
    ck_assert_uint_eq(m.u.flush.token, 42);
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
    st_wire_decoder_close(&d);
    free(p);
}
END_TEST

/* The first STEP of a decoder with both diffs nil (any NONE-mode
 * stream): the decoder has no scratch yet, and both diffs point at
 * nothing.  Both the direct path (canonical bytes) and the msgpack-c path
 * (an array16 head) are taken.  Under clang's UBSan this failed as
 * "applying zero offset to null pointer" before the fix. */
START_TEST(test_wire_decode_step_nil_diffs_first)
{
    static const unsigned char direct[] = {0x97, 0x06, 0x11, 0x27,
                                           0x00, 0x00, 0xc0, 0xc0};
    static const unsigned char generic[] = {0xdc, 0x00, 0x07, 0x06, 0x11,
                                            0x27, 0x00, 0x00, 0xc0, 0xc0};
    const unsigned char *frames[] = {direct, generic};
    const size_t lens[] = {sizeof(direct), sizeof(generic)};
    size_t i;

    for (i = 0; i < 2; i++) {
        struct st_wire_decoder d;
        struct st_msg m;
        char *p = test_dup_exact(frames[i], lens[i]);

        st_wire_decoder_init(&d);
        st_wire_decoder_reset(&d, p, lens[i]);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), 1);
        ck_assert_int_eq(m.type, ST_MSG_STEP);
        ck_assert_uint_eq(m.u.step.region_id, 0x11);
        ck_assert_uint_eq(m.u.step.lineno, 0);
        ck_assert_int_eq(m.u.step.has_globals, 0);
        ck_assert_int_eq(m.u.step.has_locals, 0);
        ck_assert_uint_eq(m.u.step.nglobals + m.u.step.nlocals, 0);
        ck_assert_ptr_null(m.u.step.locals);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
        st_wire_decoder_close(&d);
        free(p);
    }
}
END_TEST

/* EVENT, read by the direct decoder (fixarray head) and by msgpack-c (an
 * array16 head) alike: the same fields; a kind out of range, a field over
 * 32 bits and a frame cut in its detail are refused by both. */
START_TEST(test_wire_decode_event_both_paths)
{
    /* EVENT region 3, frame 0x1234, line 200, runtime 2^32 + 1, RETURN,
     * detail "ok" (str) and "xy" (bin 8). */
    static const unsigned char direct[] = {0x97, ST_MSG_EVENT, 0x03, 0xcd,
                                           0x12, 0x34,         0xcc, 0xc8,
                                           0xcf, 0x00,         0x00, 0x00,
                                           0x01, 0x00,         0x00, 0x00,
                                           0x01, 0x02,         0xa2, 'o',
                                           'k'};
    static const unsigned char generic[] = {0xdc, 0x00, 0x07, ST_MSG_EVENT,
                                            0x03, 0xcd, 0x12, 0x34,
                                            0xcc, 0xc8, 0xcf, 0x00,
                                            0x00, 0x00, 0x01, 0x00,
                                            0x00, 0x00, 0x01, 0x02,
                                            0xc4, 0x02, 'x',  'y'};
    static const unsigned char bad_kind[] = {0x97, ST_MSG_EVENT, 0x01, 0x01,
                                             0x01, 0x01,         0x09, 0xa0};
    static const unsigned char zero_kind[] = {0x97, ST_MSG_EVENT, 0x01, 0x01,
                                              0x01, 0x01,         0x00, 0xa0};
    static const unsigned char wide_line[] = {0x97, ST_MSG_EVENT, 0x01, 0x01,
                                              0xcf, 0x00,         0x00, 0x00,
                                              0x01, 0x00,         0x00, 0x00,
                                              0x00, 0x01,         0x01, 0xa0};
    static const unsigned char cut[] = {0x97, ST_MSG_EVENT, 0x01, 0x01, 0x01,
                                        0x01, 0x01,         0xa3, 'a'};
    const unsigned char *ok[] = {direct, generic};
    const size_t oklen[] = {sizeof(direct), sizeof(generic)};
    const unsigned char *bad[] = {bad_kind, zero_kind, wide_line};
    const size_t badlen[] = {sizeof(bad_kind), sizeof(zero_kind),
                             sizeof(wide_line)};
    const int why[] = {ST_EBADMSG, ST_EBADMSG, ST_EBADTYPE};
    struct st_wire_decoder d;
    struct st_msg m;
    size_t i;
    char *p;

    for (i = 0; i < 2; i++) {
        p = test_dup_exact(ok[i], oklen[i]);
        ck_assert_int_eq(st_wire_validate(p, oklen[i]), 1);
        st_wire_decoder_init(&d);
        st_wire_decoder_reset(&d, p, oklen[i]);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), 1);
        ck_assert_int_eq(m.type, ST_MSG_EVENT);
        ck_assert_uint_eq(m.u.event.region_id, 3);
        ck_assert_uint_eq(m.u.event.frame_id, 0x1234);
        ck_assert_uint_eq(m.u.event.lineno, 200);
        ck_assert_uint_eq(m.u.event.runtime_ns, (UINT64_C(1) << 32) + 1);
        ck_assert_uint_eq(m.u.event.kind, ST_EVENT_RETURN);
        ck_assert_uint_eq(m.u.event.detail.n, 2);
        ck_assert_mem_eq(m.u.event.detail.p, i == 0 ? "ok" : "xy", 2);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
        st_wire_decoder_close(&d);
        free(p);
    }
    for (i = 0; i < 3; i++) {
        p = test_dup_exact(bad[i], badlen[i]);
        ck_assert_int_eq(st_wire_validate(p, badlen[i]), 1);
        st_wire_decoder_init(&d);
        st_wire_decoder_reset(&d, p, badlen[i]);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), why[i]);
        st_wire_decoder_close(&d);
        free(p);
    }
    p = test_dup_exact(cut, sizeof(cut));
    ck_assert_int_eq(st_wire_validate(p, sizeof(cut)), ST_ETRUNCATED);
    free(p);
}
END_TEST

/* FRAME, read by the direct decoder and by msgpack-c alike: the scope id
 * and the module bit out of one field; a scope over 32 bits is refused
 * by both. */
START_TEST(test_wire_decode_frame_both_paths)
{
    /* FRAME 5, thread 1, no parent, file 2, func 300, scope 7 + module,
     * region 4. */
    static const unsigned char direct[] = {0x98, ST_MSG_FRAME, 0x05, 0x01,
                                           0x00, 0x02,         0xcd, 0x01,
                                           0x2c, 0x0f,         0x04};
    static const unsigned char generic[] = {0xdc, 0x00, 0x08, ST_MSG_FRAME,
                                            0x05, 0x01, 0x00, 0x02,
                                            0xcd, 0x01, 0x2c, 0x0f,
                                            0x04};
    static const unsigned char wide_scope[] = {0x98, ST_MSG_FRAME, 0x05, 0x01,
                                               0x00, 0x02,         0x03, 0xcf,
                                               0x00, 0x00,         0x00, 0x02,
                                               0x00, 0x00,         0x00, 0x00,
                                               0x04};
    const unsigned char *ok[] = {direct, generic};
    const size_t oklen[] = {sizeof(direct), sizeof(generic)};
    struct st_wire_decoder d;
    struct st_msg m;
    size_t i;
    char *p;

    for (i = 0; i < 2; i++) {
        p = test_dup_exact(ok[i], oklen[i]);
        ck_assert_int_eq(st_wire_validate(p, oklen[i]), 1);
        st_wire_decoder_init(&d);
        st_wire_decoder_reset(&d, p, oklen[i]);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), 1);
        ck_assert_int_eq(m.type, ST_MSG_FRAME);
        ck_assert_uint_eq(m.u.frame.frame_id, 5);
        ck_assert_uint_eq(m.u.frame.tid, 1);
        ck_assert_uint_eq(m.u.frame.parent_id, 0);
        ck_assert_uint_eq(m.u.frame.file_sid, 2);
        ck_assert_uint_eq(m.u.frame.func_sid, 300);
        ck_assert_uint_eq(m.u.frame.scope_id, 7);
        ck_assert_uint_eq(m.u.frame.flags, ST_FRAME_MODULE);
        ck_assert_uint_eq(m.u.frame.region_id, 4);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
        st_wire_decoder_close(&d);
        free(p);
    }
    p = test_dup_exact(wide_scope, sizeof(wide_scope));
    ck_assert_int_eq(st_wire_validate(p, sizeof(wide_scope)), 1);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p, sizeof(wide_scope));
    ck_assert_int_eq(st_wire_decode_next(&d, &m), ST_EBADTYPE);
    st_wire_decoder_close(&d);
    free(p);
}
END_TEST

void
wire_decode_tests(const struct wire_tcases *tc)
{
    tcase_add_test(tc->decode_errors, test_wire_decode_frame_both_paths);
    tcase_add_test(tc->decode_errors, test_wire_decode_event_both_paths);
    tcase_add_test(tc->decode_errors, test_wire_decode_step_nil_diffs_first);
    tcase_add_test(tc->decode_errors,
                   test_wire_decode_rejects_wrong_field_count);
    tcase_add_test(tc->decode_errors, test_wire_decode_rejects_unknown_type);
    tcase_add_test(tc->decode_errors,
                   test_wire_decode_rejects_wrong_field_type);
    tcase_add_test(tc->decode_errors, test_wire_decode_rejects_bad_diffs);
    tcase_add_test(tc->decode_errors, test_wire_decode_continues_after_error);
    tcase_add_test(tc->decode_errors, test_wire_decode_step_any_encoding);
    tcase_add_test(tc->decode_errors, test_wire_decode_steps_in_a_frame);
}
