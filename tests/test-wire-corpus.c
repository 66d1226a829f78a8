/*
 * Round trips through the msgpack-c encoders: one message of every type
 * (the corpus, which the validation tests reuse), framed payloads, bin
 * for str, long strings and large diffs.
 * Part of the wire suite (test-wire.c); see test-wire.h.
 */
#include "test-wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

/* ---- Encode, validate, decode: every message type ---- */

static const char exc_text[] = "division by zero: caf\xc3\xa9\n\tend";

/*
 * Packs one message of every type, with integers at every msgpack width
 * and at their extremes, empty strings, nil and empty diffs, and diffs
 * with both set and delete entries.  check_corpus() knows what to expect.
 * @return the number of messages packed.  It is one straight list, one
 * message after the other (81 lines): split, the corpus would be harder
 * to read against check_corpus().
 */
int
pack_corpus(msgpack_packer *pk)
{
    int n = 0;

#define PACK(call)                                                            \
    do {                                                                      \
        ck_assert_int_eq((call), 0);                                          \
    } while (0)
    PACK(st_wire_pack_hello(pk, UINT64_MAX, LIT("prog.py"), 1u << 23,
                            ST_FORMAT_STEPS));
    n++;
    PACK(st_wire_pack_str(pk, 1, LIT("/abs/path/to/file.py")));
    n++;
    PACK(st_wire_pack_str(pk, UINT32_MAX, "", 0));
    n++;
    /* 40 bytes: encoded as str8, not fixstr. */
    PACK(st_wire_pack_str(pk, 2,
                          LIT("0123456789012345678901234567890123456789")));
    n++;
    PACK(st_wire_pack_region(pk, 7, 3, LIT("/tmp/logs"), ST_LEVEL_DEBUG,
                             ST_VARMODE_CHANGED, UINT64_MAX, UINT32_MAX,
                             ST_FORMAT_TEXT | ST_FORMAT_STEPS));
    n++;
    PACK(st_wire_pack_thread(pk, 200, 60000));
    n++;
    PACK(st_wire_pack_thread(pk, 70000, UINT32_MAX));
    n++;
    PACK(st_wire_pack_frame(pk, 11, 2, 10, 1, 4, 9, ST_FRAME_MODULE, 12));
    n++;
    /* STEP with set and delete entries in both diffs. */
    PACK(st_wire_pack_step_begin(pk, 7, 11, 8, 84100));
    PACK(st_wire_pack_diff_begin(pk, 2));
    PACK(st_wire_pack_var_set(pk, 20, 21, LIT("5")));
    PACK(st_wire_pack_var_del(pk, 22));
    PACK(st_wire_pack_diff_begin(pk, 3));
    PACK(st_wire_pack_var_set(pk, 23, 24, "", 0));
    PACK(st_wire_pack_var_del(pk, UINT32_MAX));
    PACK(st_wire_pack_var_set(pk, UINT32_MAX, 25, LIT("[1, 2]")));
    n++;
    /* STEP with nil diffs and every integer at its maximum. */
    PACK(st_wire_pack_step_begin(pk, UINT32_MAX, UINT32_MAX, UINT32_MAX,
                                 UINT64_MAX));
    PACK(st_wire_pack_nil(pk));
    PACK(st_wire_pack_nil(pk));
    n++;
    /* STEP with empty (not nil) diffs and every integer at zero. */
    PACK(st_wire_pack_step_begin(pk, 0, 0, 0, 0));
    PACK(st_wire_pack_diff_begin(pk, 0));
    PACK(st_wire_pack_diff_begin(pk, 0));
    n++;
    PACK(st_wire_pack_frame_end(pk, 11));
    n++;
    PACK(st_wire_pack_region_end(pk, 7));
    n++;
    PACK(st_wire_pack_flush(pk, UINT64_MAX));
    n++;
    PACK(st_wire_pack_lost(pk, 7, 0));
    n++;
    PACK(st_wire_pack_lost(pk, 8, (uint64_t)1 << 40));
    n++;
    PACK(st_wire_pack_event(pk, 7, 11, 8, UINT64_MAX, ST_EVENT_EXCEPTION,
                            LIT(exc_text)));
    n++;
    PACK(st_wire_pack_event(pk, 7, 11, 9, 0, ST_EVENT_CALL, "", 0));
    n++;
    PACK(st_wire_pack_ack(pk, UINT64_MAX, 0, NULL, 0));
    n++;
    PACK(st_wire_pack_ack(pk, 5, 3, LIT("disk full")));
    n++;
    PACK(st_wire_pack_status(pk, UINT64_MAX));
    n++;
    PACK(st_wire_pack_stats_begin(pk, 6, 3));
    PACK(st_wire_pack_counter(pk, "records_in", UINT64_MAX));
    PACK(st_wire_pack_counter(pk, "", 0));
    PACK(st_wire_pack_counter(pk, "bytes_written", 70000));
    n++;
    PACK(st_wire_pack_tail(pk, 4321, LIT("*/tracer_*.log")));
    n++;
    PACK(st_wire_pack_text(pk, 0, "", 0, LIT("3 records skipped\n")));
    n++;
#undef PACK
    return n;
}

/* Decodes what pack_corpus() packed and checks every field.  One
 * straight list of assertions in the corpus's order (141 lines), so that
 * each message's checks stand where its packing does in pack_corpus(). */
void
check_corpus(struct st_wire_decoder *d)
{
    struct st_msg m;

    next_msg(d, &m, ST_MSG_HELLO);
    ck_assert_uint_eq(m.u.hello.version, ST_WIRE_VERSION);
    ck_assert_uint_eq(m.u.hello.pid, UINT64_MAX);
    ck_assert_st_str_eq(m.u.hello.program, LIT("prog.py"));
    ck_assert_uint_eq(m.u.hello.ring_bytes, 1u << 23);

    next_msg(d, &m, ST_MSG_STR);
    ck_assert_uint_eq(m.u.str.sid, 1);
    ck_assert_st_str_eq(m.u.str.text, LIT("/abs/path/to/file.py"));
    next_msg(d, &m, ST_MSG_STR);
    ck_assert_uint_eq(m.u.str.sid, UINT32_MAX);
    ck_assert_uint_eq(m.u.str.text.n, 0);
    next_msg(d, &m, ST_MSG_STR);
    ck_assert_uint_eq(m.u.str.sid, 2);
    ck_assert_st_str_eq(m.u.str.text,
                        LIT("0123456789012345678901234567890123456789"));

    next_msg(d, &m, ST_MSG_REGION);
    ck_assert_uint_eq(m.u.region.region_id, 7);
    ck_assert_uint_eq(m.u.region.tracer_id, 3);
    ck_assert_st_str_eq(m.u.region.log_dir, LIT("/tmp/logs"));
    ck_assert_uint_eq(m.u.region.level, ST_LEVEL_DEBUG);
    ck_assert_uint_eq(m.u.region.var_mode, ST_VARMODE_CHANGED);
    ck_assert_uint_eq(m.u.region.max_log_bytes, UINT64_MAX);
    ck_assert_uint_eq(m.u.region.max_log_files, UINT32_MAX);

    next_msg(d, &m, ST_MSG_THREAD);
    ck_assert_uint_eq(m.u.thread.tid, 200);
    ck_assert_uint_eq(m.u.thread.name_sid, 60000);
    next_msg(d, &m, ST_MSG_THREAD);
    ck_assert_uint_eq(m.u.thread.tid, 70000);
    ck_assert_uint_eq(m.u.thread.name_sid, UINT32_MAX);

    next_msg(d, &m, ST_MSG_FRAME);
    ck_assert_uint_eq(m.u.frame.frame_id, 11);
    ck_assert_uint_eq(m.u.frame.tid, 2);
    ck_assert_uint_eq(m.u.frame.parent_id, 10);
    ck_assert_uint_eq(m.u.frame.file_sid, 1);
    ck_assert_uint_eq(m.u.frame.func_sid, 4);
    ck_assert_uint_eq(m.u.frame.scope_id, 9);
    ck_assert_uint_eq(m.u.frame.region_id, 12);
    ck_assert_uint_eq(m.u.frame.flags, ST_FRAME_MODULE);

    next_msg(d, &m, ST_MSG_STEP);
    ck_assert_uint_eq(m.u.step.region_id, 7);
    ck_assert_uint_eq(m.u.step.frame_id, 11);
    ck_assert_uint_eq(m.u.step.lineno, 8);
    ck_assert_uint_eq(m.u.step.runtime_ns, 84100);
    ck_assert_int_eq(m.u.step.has_globals, 1);
    ck_assert_uint_eq(m.u.step.nglobals, 2);
    check_var_set(&m.u.step.globals[0], 20, 21, LIT("5"));
    check_var_del(&m.u.step.globals[1], 22);
    ck_assert_int_eq(m.u.step.has_locals, 1);
    ck_assert_uint_eq(m.u.step.nlocals, 3);
    check_var_set(&m.u.step.locals[0], 23, 24, "", 0);
    check_var_del(&m.u.step.locals[1], UINT32_MAX);
    check_var_set(&m.u.step.locals[2], UINT32_MAX, 25, LIT("[1, 2]"));

    next_msg(d, &m, ST_MSG_STEP);
    ck_assert_uint_eq(m.u.step.region_id, UINT32_MAX);
    ck_assert_uint_eq(m.u.step.frame_id, UINT32_MAX);
    ck_assert_uint_eq(m.u.step.lineno, UINT32_MAX);
    ck_assert_uint_eq(m.u.step.runtime_ns, UINT64_MAX);
    ck_assert_int_eq(m.u.step.has_globals, 0);
    ck_assert_uint_eq(m.u.step.nglobals, 0);
    ck_assert_int_eq(m.u.step.has_locals, 0);
    ck_assert_uint_eq(m.u.step.nlocals, 0);

    next_msg(d, &m, ST_MSG_STEP);
    ck_assert_uint_eq(m.u.step.region_id, 0);
    ck_assert_uint_eq(m.u.step.frame_id, 0);
    ck_assert_uint_eq(m.u.step.lineno, 0);
    ck_assert_uint_eq(m.u.step.runtime_ns, 0);
    ck_assert_int_eq(m.u.step.has_globals, 1);
    ck_assert_uint_eq(m.u.step.nglobals, 0);
    ck_assert_int_eq(m.u.step.has_locals, 1);
    ck_assert_uint_eq(m.u.step.nlocals, 0);

    next_msg(d, &m, ST_MSG_FRAME_END);
    ck_assert_uint_eq(m.u.frame_end.frame_id, 11);
    next_msg(d, &m, ST_MSG_REGION_END);
    ck_assert_uint_eq(m.u.region_end.region_id, 7);
    next_msg(d, &m, ST_MSG_FLUSH);
    ck_assert_uint_eq(m.u.flush.token, UINT64_MAX);
    next_msg(d, &m, ST_MSG_LOST);
    ck_assert_uint_eq(m.u.lost.region_id, 7);
    ck_assert_uint_eq(m.u.lost.count, 0);
    next_msg(d, &m, ST_MSG_LOST);
    ck_assert_uint_eq(m.u.lost.region_id, 8);
    ck_assert_uint_eq(m.u.lost.count, (uint64_t)1 << 40);

    next_msg(d, &m, ST_MSG_EVENT);
    ck_assert_uint_eq(m.u.event.region_id, 7);
    ck_assert_uint_eq(m.u.event.frame_id, 11);
    ck_assert_uint_eq(m.u.event.lineno, 8);
    ck_assert_uint_eq(m.u.event.runtime_ns, UINT64_MAX);
    ck_assert_uint_eq(m.u.event.kind, ST_EVENT_EXCEPTION);
    /* Bytes pass through unchanged: UTF-8 and control characters. */
    ck_assert_st_str_eq(m.u.event.detail, LIT(exc_text));
    next_msg(d, &m, ST_MSG_EVENT);
    ck_assert_uint_eq(m.u.event.lineno, 9);
    ck_assert_uint_eq(m.u.event.runtime_ns, 0);
    ck_assert_uint_eq(m.u.event.kind, ST_EVENT_CALL);
    ck_assert_uint_eq(m.u.event.detail.n, 0);

    next_msg(d, &m, ST_MSG_ACK);
    ck_assert_uint_eq(m.u.ack.token, UINT64_MAX);
    ck_assert_uint_eq(m.u.ack.errors, 0);
    ck_assert_ptr_null(m.u.ack.message.p);
    ck_assert_uint_eq(m.u.ack.message.n, 0);
    next_msg(d, &m, ST_MSG_ACK);
    ck_assert_uint_eq(m.u.ack.token, 5);
    ck_assert_uint_eq(m.u.ack.errors, 3);
    ck_assert_st_str_eq(m.u.ack.message, LIT("disk full"));
    next_msg(d, &m, ST_MSG_STATUS);
    ck_assert_uint_eq(m.u.status.token, UINT64_MAX);
    next_msg(d, &m, ST_MSG_STATS);
    ck_assert_uint_eq(m.u.stats.token, 6);
    ck_assert_uint_eq(m.u.stats.ncounters, 3);
    ck_assert_st_str_eq(m.u.stats.counters[0].name, LIT("records_in"));
    ck_assert_uint_eq(m.u.stats.counters[0].value, UINT64_MAX);
    ck_assert_uint_eq(m.u.stats.counters[1].name.n, 0);
    ck_assert_uint_eq(m.u.stats.counters[1].value, 0);
    ck_assert_st_str_eq(m.u.stats.counters[2].name, LIT("bytes_written"));
    ck_assert_uint_eq(m.u.stats.counters[2].value, 70000);
    next_msg(d, &m, ST_MSG_TAIL);
    ck_assert_uint_eq(m.u.tail.pid, 4321);
    ck_assert_st_str_eq(m.u.tail.glob, LIT("*/tracer_*.log"));
    next_msg(d, &m, ST_MSG_TEXT);
    ck_assert_uint_eq(m.u.text.pid, 0);
    ck_assert_uint_eq(m.u.text.path.n, 0);
    ck_assert_st_str_eq(m.u.text.text, LIT("3 records skipped\n"));

    /* End of frame, and it stays at the end. */
    ck_assert_int_eq(st_wire_decode_next(d, &m), 0);
    ck_assert_int_eq(st_wire_decode_next(d, &m), 0);
}

START_TEST(test_wire_round_trip_every_type)
{
    struct packed p;
    struct st_wire_decoder d;
    char *frame;

    packed_init(&p);
    ck_assert_int_eq(pack_corpus(&p.pk), CORPUS_COUNT);
    frame = test_dup_exact(p.b.data, p.b.len);
    ck_assert_int_eq(st_wire_validate(frame, p.b.len), CORPUS_COUNT);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, frame, p.b.len);
    check_corpus(&d);
    /* The same decoder starts over on a new frame. */
    st_wire_decoder_reset(&d, frame, p.b.len);
    check_corpus(&d);
    st_wire_decoder_close(&d);
    free(frame);
    packed_close(&p);
}
END_TEST

/* One message per frame, each framed with a header: the collector's path. */
START_TEST(test_wire_round_trip_framed)
{
    struct packed payload, wire;
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct st_wire_decoder d;
    struct st_msg m;
    int64_t len;

    packed_init(&payload);
    packed_init(&wire);
    ck_assert_int_eq(st_wire_pack_flush(&payload.pk, 42), 0);
    ck_assert_int_eq(st_wire_pack_region_end(&payload.pk, 3), 0);
    st_wire_put_header(hdr, (uint32_t)payload.b.len);
    ck_assert_int_eq(st_buf_append(&wire.b, hdr, sizeof(hdr)), 0);
    ck_assert_int_eq(st_buf_append(&wire.b, payload.b.data, payload.b.len), 0);

    len = st_wire_frame_len((const unsigned char *)wire.b.data, 0);
    ck_assert_int_eq(len, (int64_t)payload.b.len);
    ck_assert_uint_eq(wire.b.len, ST_WIRE_HEADER_SIZE + (size_t)len);
    ck_assert_int_eq(st_wire_validate(wire.b.data + ST_WIRE_HEADER_SIZE,
                                      (size_t)len),
                     2);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, wire.b.data + ST_WIRE_HEADER_SIZE, (size_t)len);
    next_msg(&d, &m, ST_MSG_FLUSH);
    ck_assert_uint_eq(m.u.flush.token, 42);
    next_msg(&d, &m, ST_MSG_REGION_END);
    ck_assert_uint_eq(m.u.region_end.region_id, 3);
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
    st_wire_decoder_close(&d);
    packed_close(&wire);
    packed_close(&payload);
}
END_TEST

/* The protocol allows bin wherever it says str; the agent may send either. */
START_TEST(test_wire_decode_accepts_bin_as_str)
{
    static const char raw[] = "\x00\xff\xfe\n bytes";
    struct packed p;
    msgpack_packer *pk = &p.pk;
    struct st_wire_decoder d;
    struct st_msg m;

    packed_init(&p);
    /* HELLO with the program name as bin. */
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, ST_MSG_HELLO);
    msgpack_pack_uint8(pk, ST_WIRE_VERSION);
    msgpack_pack_uint32(pk, 1234);
    msgpack_pack_bin(pk, sizeof(raw) - 1);
    msgpack_pack_bin_body(pk, raw, sizeof(raw) - 1);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 0);
    /* STR with empty bin text. */
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, ST_MSG_STR);
    msgpack_pack_uint8(pk, 9);
    msgpack_pack_bin(pk, 0);
    /* STEP whose locals value is bin. */
    ck_assert_int_eq(st_wire_pack_step_begin(pk, 1, 2, 3, 4), 0);
    ck_assert_int_eq(st_wire_pack_nil(pk), 0);
    ck_assert_int_eq(st_wire_pack_diff_begin(pk, 1), 0);
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 5);
    msgpack_pack_uint8(pk, 6);
    msgpack_pack_bin(pk, sizeof(raw) - 1);
    msgpack_pack_bin_body(pk, raw, sizeof(raw) - 1);
    /* EVENT and ACK with bin messages. */
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, ST_MSG_EVENT);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_uint8(pk, 3);
    msgpack_pack_uint8(pk, 4);
    msgpack_pack_uint8(pk, ST_EVENT_EXCEPTION);
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, "oops", 4);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, ST_MSG_ACK);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, "full", 4);
    ck_assert_int_eq(p.b.oom, 0);

    ck_assert_int_eq(st_wire_validate(p.b.data, p.b.len), 5);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p.b.data, p.b.len);
    next_msg(&d, &m, ST_MSG_HELLO);
    ck_assert_uint_eq(m.u.hello.pid, 1234);
    ck_assert_st_str_eq(m.u.hello.program, raw, sizeof(raw) - 1);
    next_msg(&d, &m, ST_MSG_STR);
    ck_assert_uint_eq(m.u.str.sid, 9);
    ck_assert_uint_eq(m.u.str.text.n, 0);
    next_msg(&d, &m, ST_MSG_STEP);
    ck_assert_int_eq(m.u.step.has_globals, 0);
    ck_assert_uint_eq(m.u.step.nlocals, 1);
    check_var_set(&m.u.step.locals[0], 5, 6, raw, sizeof(raw) - 1);
    next_msg(&d, &m, ST_MSG_EVENT);
    ck_assert_st_str_eq(m.u.event.detail, LIT("oops"));
    next_msg(&d, &m, ST_MSG_ACK);
    ck_assert_st_str_eq(m.u.ack.message, LIT("full"));
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
    st_wire_decoder_close(&d);
    packed_close(&p);
}
END_TEST

/* Long strings take the str16 and str32 encodings. */
START_TEST(test_wire_round_trip_long_strings)
{
    static const size_t sizes[] = {255, 256, 65535, 65536, 300000};
    struct packed p;
    struct st_wire_decoder d;
    struct st_msg m;
    char *value;
    size_t i, j;

    value = malloc(sizes[4]);
    ck_assert_ptr_nonnull(value);
    for (j = 0; j < sizes[4]; j++)
        value[j] = (char)('a' + j % 26);
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        packed_init(&p);
        ck_assert_int_eq(st_wire_pack_step_begin(&p.pk, 1, 1, 1, 1), 0);
        ck_assert_int_eq(st_wire_pack_diff_begin(&p.pk, 1), 0);
        ck_assert_int_eq(st_wire_pack_var_set(&p.pk, 1, 2, value, sizes[i]),
                         0);
        ck_assert_int_eq(st_wire_pack_nil(&p.pk), 0);
        ck_assert_int_eq(decode_single(&d, &p.b, &m), 1);
        ck_assert_int_eq(m.type, ST_MSG_STEP);
        ck_assert_uint_eq(m.u.step.nglobals, 1);
        check_var_set(&m.u.step.globals[0], 1, 2, value, sizes[i]);
        st_wire_decoder_close(&d);
        packed_close(&p);
    }
    free(value);
}
END_TEST

/*
 * Diffs larger than the decoder's initial scratch space: the scratch is
 * grown while the locals are decoded, after the globals were written into
 * it, so both lists must still be right.
 */
START_TEST(test_wire_decode_large_diffs)
{
    struct packed p;
    struct st_wire_decoder d;
    struct st_msg m;
    char val[16];
    uint32_t i;
    int round;

    packed_init(&p);
    for (round = 0; round < 2; round++) {
        uint32_t ng = round ? 100 : 20, nl = round ? 7 : 40;

        ck_assert_int_eq(st_wire_pack_step_begin(&p.pk, 1, 2, 3, 4), 0);
        ck_assert_int_eq(st_wire_pack_diff_begin(&p.pk, ng), 0);
        for (i = 0; i < ng; i++) {
            int n = snprintf(val, sizeof(val), "g%u", (unsigned)i);

            if (i % 3 == 2)
                ck_assert_int_eq(st_wire_pack_var_del(&p.pk, 1000 + i), 0);
            else
                ck_assert_int_eq(st_wire_pack_var_set(&p.pk, 1000 + i, i, val,
                                                      (size_t)n),
                                 0);
        }
        ck_assert_int_eq(st_wire_pack_diff_begin(&p.pk, nl), 0);
        for (i = 0; i < nl; i++) {
            int n = snprintf(val, sizeof(val), "l%u", (unsigned)i);

            ck_assert_int_eq(st_wire_pack_var_set(&p.pk, 5000 + i, 7, val,
                                                  (size_t)n),
                             0);
        }
    }
    ck_assert_int_eq(st_wire_validate(p.b.data, p.b.len), 2);
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p.b.data, p.b.len);
    for (round = 0; round < 2; round++) {
        uint32_t ng = round ? 100 : 20, nl = round ? 7 : 40;

        next_msg(&d, &m, ST_MSG_STEP);
        ck_assert_uint_eq(m.u.step.nglobals, ng);
        ck_assert_uint_eq(m.u.step.nlocals, nl);
        for (i = 0; i < ng; i++) {
            int n = snprintf(val, sizeof(val), "g%u", (unsigned)i);

            if (i % 3 == 2)
                check_var_del(&m.u.step.globals[i], 1000 + i);
            else
                check_var_set(&m.u.step.globals[i], 1000 + i, i, val,
                              (size_t)n);
        }
        for (i = 0; i < nl; i++) {
            int n = snprintf(val, sizeof(val), "l%u", (unsigned)i);

            check_var_set(&m.u.step.locals[i], 5000 + i, 7, val, (size_t)n);
        }
    }
    ck_assert_int_eq(st_wire_decode_next(&d, &m), 0);
    st_wire_decoder_close(&d);
    packed_close(&p);
}
END_TEST

void
wire_corpus_tests(const struct wire_tcases *tc)
{
    tcase_add_test(tc->round_trip, test_wire_round_trip_every_type);
    tcase_add_test(tc->round_trip, test_wire_round_trip_framed);
    tcase_add_test(tc->round_trip, test_wire_decode_accepts_bin_as_str);
    tcase_add_test(tc->round_trip, test_wire_round_trip_long_strings);
    tcase_add_test(tc->round_trip, test_wire_decode_large_diffs);
}
