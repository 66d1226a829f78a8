/*
 * The agent's direct encoders (st_wire_put_*) write what the msgpack-c
 * packer writes (tests/wire-pack.c), and the round trips of LINE, ASYNC,
 * NOTE and FILE.
 * Part of the wire suite (test-wire.c); see test-wire.h.
 */
#include "test-wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

/* Asserts that the direct encoder wrote what the packer did; frees both. */
static void
same_bytes_close(struct packed *p, struct st_buf *b)
{
    ck_assert_uint_eq(b->len, p->b.len);
    ck_assert_int_eq(memcmp(b->data, p->b.data, b->len), 0);
    st_buf_close(b);
    packed_close(p);
}

/* The agent's direct STEP encoder writes what the msgpack-c packer does. */
START_TEST(test_wire_put_step_head_matches_packer)
{
    static const uint64_t vals[] = {0,          1,
                                    127,        128,
                                    255,        256,
                                    65535,      65536,
                                    UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                                    UINT64_MAX};
    size_t i, j;

    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        for (j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) {
            struct packed p;
            struct st_buf b;
            uint32_t small = (uint32_t)(vals[i] > UINT32_MAX ? UINT32_MAX
                                                             : vals[i]);

            packed_init(&p);
            st_buf_init(&b);
            ck_assert_int_eq(st_wire_pack_step_begin(&p.pk, small, 3, small,
                                                     vals[j]),
                             0);
            ck_assert_int_eq(st_wire_pack_nil(&p.pk), 0);
            ck_assert_int_eq(st_wire_put_step_head(&b, small, 3, small,
                                                   vals[j]),
                             0);
            ck_assert_int_eq(st_wire_put_nil(&b), 0);
            same_bytes_close(&p, &b);
        }
    }
}
END_TEST

/* The agent's direct FRAME, FRAME_END and LINE encoders, likewise. */
START_TEST(test_wire_put_frame_matches_packer)
{
    static const uint32_t vals[] = {0,   1,     127,   128,       255,
                                    256, 65535, 65536, UINT32_MAX};
    size_t i, j;

    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        for (j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) {
            struct packed p;
            struct st_buf b;

            packed_init(&p);
            st_buf_init(&b);
            ck_assert_int_eq(st_wire_pack_frame(&p.pk, vals[i], vals[j], 7,
                                                vals[j], vals[i], 1, 2,
                                                vals[i]),
                             0);
            ck_assert_int_eq(st_wire_pack_frame_end(&p.pk, vals[j]), 0);
            ck_assert_int_eq(st_wire_pack_line(&p.pk, vals[i], vals[j],
                                               (uint64_t)vals[j] * 100 + 49),
                             0);
            ck_assert_int_eq(st_wire_put_frame(&b, vals[i], vals[j], 7,
                                               vals[j], vals[i], 1, 2,
                                               vals[i]),
                             0);
            ck_assert_int_eq(st_wire_put_frame_end(&b, vals[j]), 0);
            ck_assert_int_eq(st_wire_put_line(&b, vals[i], vals[j],
                                              (uint64_t)vals[j] * 100 + 49),
                             0);
            same_bytes_close(&p, &b);
        }
    }
}
END_TEST

/* The direct EVENT encoder writes what st_wire_pack_event() does, at
 * every size boundary of the integers and of the detail's str head. */
START_TEST(test_wire_put_event_matches_packer)
{
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
    static const uint64_t vals[] = {0,     1,          127,       128,
                                    65535, UINT32_MAX, UINT64_MAX};
    char *text = malloc(65536);
    size_t i, j;

    ck_assert_ptr_nonnull(text);
    memset(text, 'd', 65536);
    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) {
            uint32_t v32 = (uint32_t)vals[j];
            struct packed p;
            struct st_buf b;

            packed_init(&p);
            st_buf_init(&b);
            ck_assert_int_eq(st_wire_pack_event(&p.pk, v32, v32, 3, vals[j],
                                                ST_EVENT_RETURN, text,
                                                lens[i]),
                             0);
            ck_assert_int_eq(st_wire_put_event(&b, v32, v32, 3, vals[j],
                                               ST_EVENT_RETURN, text, lens[i]),
                             0);
            same_bytes_close(&p, &b);
        }
    }
    free(text);
}
END_TEST

/* The direct diff encoders write what the packer does, at every size
 * boundary of the array and str heads. */
START_TEST(test_wire_put_diff_matches_packer)
{
    static const size_t lens[] = {0,   1,   15,    16,    31,   32,
                                  255, 256, 65535, 65536, 70000};
    static const uint32_t sids[] = {0, 127, 128, 65536, UINT32_MAX};
    char *text = malloc(70000);
    size_t i, j;

    ck_assert_ptr_nonnull(text);
    memset(text, 'v', 70000);
    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (j = 0; j < sizeof(sids) / sizeof(sids[0]); j++) {
            struct packed p;
            struct st_buf b;

            packed_init(&p);
            st_buf_init(&b);
            ck_assert_int_eq(st_wire_pack_diff_begin(&p.pk, lens[i]), 0);
            ck_assert_int_eq(st_wire_pack_var_set(&p.pk, sids[j], 7, text,
                                                  lens[i]),
                             0);
            ck_assert_int_eq(st_wire_pack_var_del(&p.pk, sids[j]), 0);
            ck_assert_int_eq(st_wire_put_diff_begin(&b, lens[i]), 0);
            ck_assert_int_eq(st_wire_put_var_set(&b, sids[j], 7, text,
                                                 lens[i]),
                             0);
            ck_assert_int_eq(st_wire_put_var_del(&b, sids[j]), 0);
            same_bytes_close(&p, &b);
        }
    }
    free(text);
}
END_TEST

/* LINE: runtime in 100 ns units, half up, decoded as ns; directly and
 * through msgpack-c (a non-canonical encoding), same fields. */
START_TEST(test_wire_line_round_trip)
{
    static const uint64_t ns[] = {
        0, 49, 50, 149, 150, 12345678, UINT64_MAX - 99};
    size_t i;

    for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        struct packed p;
        struct st_wire_decoder d;
        struct st_msg m;
        uint64_t units = ns[i] / 100 + (ns[i] % 100 >= 50);

        packed_init(&p);
        ck_assert_int_eq(st_wire_pack_line(&p.pk, 70000, 12, ns[i]), 0);
        ck_assert_int_gt(st_wire_validate_messages(p.b.data, p.b.len), 0);
        st_wire_decoder_init(&d);
        st_wire_decoder_reset(&d, p.b.data, p.b.len);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), 1);
        ck_assert_int_eq(m.type, ST_MSG_LINE);
        ck_assert_uint_eq(m.u.step.frame_id, 70000);
        ck_assert_uint_eq(m.u.step.lineno, 12);
        ck_assert_uint_eq(m.u.step.runtime_ns, units * 100);
        ck_assert_int_eq(m.u.step.has_globals, 0);
        ck_assert_int_eq(m.u.step.has_locals, 0);
        ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
        st_wire_decoder_close(&d);
        packed_close(&p);
    }
    /* uint16 where a fixint would do: msgpack-c's path. */
    ck_assert_int_eq(DECODE(0x94, 21, 0xcd, 0x00, 0x03, 4, 7), 1);
    /* A FRAME whose scope id (scope_flags >> 1) does not fit 32 bits. */
    ck_assert_int_eq(DECODE(0x98, 5, 1, 1, 0, 1, 1, 0xcf, 0, 0, 0, 2, 0, 0, 0,
                            0, 1),
                     ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x98, 5, 1, 1, 0, 1, 1, 0xcf, 0, 0, 0, 1, 0xff,
                            0xff, 0xff, 0xff, 1),
                     1);
    /* Wrong field count, wrong types, a runtime that overflows in ns. */
    ck_assert_int_eq(DECODE(0x93, 21, 3, 4), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x94, 21, 3, 0xa0, 7), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x94, 21, 3, 4, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff),
                     ST_EBADTYPE);
}
END_TEST

/* ASYNC: the async records of docs/LOG-FORMAT.md section 9. */
START_TEST(test_wire_round_trip_async)
{
    static const char body[] = "\xe2\x8f\xb3 AWAIT START: fetch\n"
                               "   File: /a.py:15\n";
    struct packed p;
    struct st_wire_decoder d;
    struct st_msg m;

    packed_init(&p);
    ck_assert_int_eq(st_wire_pack_async(&p.pk, 3, UINT64_MAX, ST_ASYNC_AWAIT,
                                        LIT(body)),
                     0);
    ck_assert_int_eq(st_wire_pack_async(&p.pk, 3, 0, ST_ASYNC_TASK, "", 0), 0);
    ck_assert_int_eq(st_wire_validate(p.b.data, p.b.len), 2);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p.b.data, p.b.len);
    next_msg(&d, &m, ST_MSG_ASYNC);
    ck_assert_uint_eq(m.u.async.region_id, 3);
    ck_assert_uint_eq(m.u.async.time_ns, UINT64_MAX);
    ck_assert_uint_eq(m.u.async.kind, ST_ASYNC_AWAIT);
    ck_assert_st_str_eq(m.u.async.body, LIT(body));
    next_msg(&d, &m, ST_MSG_ASYNC);
    ck_assert_uint_eq(m.u.async.kind, ST_ASYNC_TASK);
    ck_assert_uint_eq(m.u.async.body.n, 0);
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
    st_wire_decoder_close(&d);
    packed_close(&p);
    /* Kinds outside 1..3 are protocol errors. */
    ck_assert_int_eq(DECODE(0x95, 0x14, 1, 2, 0, 0xa0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x95, 0x14, 1, 2, 4, 0xa0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x95, 0x14, 1, 2, 1, 0xa0), 1);
}
END_TEST

/* NOTE and FILE (version 4): the process tree's lines and the file a
 * tracer's records go to. */
START_TEST(test_wire_round_trip_note_and_file)
{
    static const char text[] = "started process 42: python child.py";
    static const char path[] = "/p/.tracer/tracer_1.log";
    struct packed p;
    struct st_wire_decoder d;
    struct st_msg m;

    packed_init(&p);
    ck_assert_int_eq(st_wire_pack_note(&p.pk, 7, ST_NOTE_AT_STEP, LIT(text)),
                     0);
    ck_assert_int_eq(st_wire_pack_note(&p.pk, 7, ST_NOTE_LINE, "", 0), 0);
    ck_assert_int_eq(st_wire_pack_file(&p.pk, UINT32_MAX, LIT(path)), 0);
    ck_assert_int_eq(st_wire_validate(p.b.data, p.b.len), 3);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p.b.data, p.b.len);
    next_msg(&d, &m, ST_MSG_NOTE);
    ck_assert_uint_eq(m.u.note.region_id, 7);
    ck_assert_uint_eq(m.u.note.kind, ST_NOTE_AT_STEP);
    ck_assert_st_str_eq(m.u.note.text, LIT(text));
    next_msg(&d, &m, ST_MSG_NOTE);
    ck_assert_uint_eq(m.u.note.kind, ST_NOTE_LINE);
    ck_assert_uint_eq(m.u.note.text.n, 0);
    next_msg(&d, &m, ST_MSG_FILE);
    ck_assert_uint_eq(m.u.file.tracer_id, UINT32_MAX);
    ck_assert_st_str_eq(m.u.file.path, LIT(path));
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
    st_wire_decoder_close(&d);
    packed_close(&p);
    /* NOTE kinds outside 1..2 and wrong field counts are protocol
     * errors. */
    ck_assert_int_eq(DECODE(0x94, 0x17, 1, 0, 0xa0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x94, 0x17, 1, 3, 0xa0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x94, 0x17, 1, 2, 0xa0), 1);
    ck_assert_int_eq(DECODE(0x93, 0x17, 1, 2), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x93, 0x18, 1, 0xa0), 1);
    ck_assert_int_eq(DECODE(0x93, 0x18, 1, 2), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x92, 0x18, 1), ST_EBADMSG);
}
END_TEST

void
wire_put_tests(const struct wire_tcases *tc)
{
    tcase_add_test(tc->round_trip, test_wire_round_trip_async);
    tcase_add_test(tc->round_trip, test_wire_round_trip_note_and_file);
    tcase_add_test(tc->round_trip, test_wire_put_step_head_matches_packer);
    tcase_add_test(tc->round_trip, test_wire_put_frame_matches_packer);
    tcase_add_test(tc->round_trip, test_wire_line_round_trip);
    tcase_add_test(tc->round_trip, test_wire_put_diff_matches_packer);
    tcase_add_test(tc->round_trip, test_wire_put_event_matches_packer);
}
