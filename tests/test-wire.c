/*
 * Tests for steptrace/wire.h: framing, the encoders, st_wire_validate()
 * against truncated, hostile and random input, and the decoder.
 *
 * Every input handed to st_wire_validate() or the decoder that could be
 * read past its end lives in a heap block of exactly its length
 * (test_dup_exact), so the AddressSanitizer build reports an over-read
 * instead of silently reading the neighbouring bytes.
 */
#include "test-common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"
#include "wire-pack.h"

/* A string literal as the (pointer, length) pair the encoders take. */
#define LIT(s) (s), (sizeof(s) - 1)

/*
 * Asserts that a decoded struct st_str holds exactly (ptr, len).  The
 * outer macro lets LIT() expand into its two arguments first.
 */
#define ck_assert_st_str_eq(...) ck_assert_st_str_eq_(__VA_ARGS__)
#define ck_assert_st_str_eq_(str, ptr, len)                                 \
    do {                                                                    \
        struct st_str ck_s_ = (str);                                        \
        size_t ck_n_ = (len);                                               \
        ck_assert_uint_eq(ck_s_.n, ck_n_);                                  \
        if (ck_n_ != 0)                                                     \
            ck_assert_mem_eq(ck_s_.p, (ptr), ck_n_);                        \
    } while (0)

/* A buffer with a msgpack packer writing into it. */
struct packed {
    struct st_buf b;
    msgpack_packer pk;
};

static void
packed_init(struct packed *p)
{
    st_buf_init(&p->b);
    msgpack_packer_init(&p->pk, &p->b, st_buf_msgpack_write);
}

static void
packed_close(struct packed *p)
{
    st_buf_close(&p->b);
}

/* Validates bytes copied to an exact-size heap block. */
static int
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
static int
decode_single(struct st_wire_decoder *d, const struct st_buf *b,
              struct st_msg *m)
{
    ck_assert_int_eq(st_wire_validate(b->data, b->len), 1);
    st_wire_decoder_init(d);
    st_wire_decoder_reset(d, b->data, b->len);
    return st_wire_decode_next(d, m);
}

/* ---- Frame header ---- */

START_TEST(test_wire_header_round_trip)
{
    static const uint32_t lens[] = {1, 2, 255, 256, 65535, 65536,
                                    0x00abcdef, ST_WIRE_MAX_FRAME - 1,
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

/* ---- Encode, validate, decode: every message type ---- */

static const char exc_text[] = "division by zero: caf\xc3\xa9\n\tend";

/*
 * Packs one message of every type, with integers at every msgpack width
 * and at their extremes, empty strings, nil and empty diffs, and diffs
 * with both set and delete entries.  check_corpus() knows what to expect.
 * @return the number of messages packed.
 */
static int
pack_corpus(msgpack_packer *pk)
{
    int n = 0;

#define PACK(call)                                                          \
    do {                                                                    \
        ck_assert_int_eq((call), 0);                                        \
    } while (0)
    PACK(st_wire_pack_hello(pk, UINT64_MAX, LIT("prog.py"), 1u << 23));
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
                             ST_VARMODE_CHANGED, UINT64_MAX, UINT32_MAX));
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

#define CORPUS_COUNT 24

static void
next_msg(struct st_wire_decoder *d, struct st_msg *m, int type)
{
    ck_assert_int_eq(st_wire_decode_next(d, m), 1);
    ck_assert_int_eq(m->type, type);
}

static void
check_var_set(const struct st_wire_var *v, uint32_t name, uint32_t type,
              const char *value, size_t n)
{
    ck_assert_int_eq(v->deleted, 0);
    ck_assert_uint_eq(v->name_sid, name);
    ck_assert_uint_eq(v->type_sid, type);
    ck_assert_st_str_eq(v->value, value, n);
}

static void
check_var_del(const struct st_wire_var *v, uint32_t name)
{
    ck_assert_int_eq(v->deleted, 1);
    ck_assert_uint_eq(v->name_sid, name);
    ck_assert_uint_eq(v->type_sid, 0);
    ck_assert_uint_eq(v->value.n, 0);
}

/* Decodes what pack_corpus() packed and checks every field. */
static void
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
    ck_assert_int_eq(st_buf_append(&wire.b, payload.b.data, payload.b.len),
                     0);

    len = st_wire_frame_len((const unsigned char *)wire.b.data, 0);
    ck_assert_int_eq(len, (int64_t)payload.b.len);
    ck_assert_uint_eq(wire.b.len, ST_WIRE_HEADER_SIZE + (size_t)len);
    ck_assert_int_eq(st_wire_validate(wire.b.data + ST_WIRE_HEADER_SIZE,
                                      (size_t)len), 2);
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
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, ST_MSG_HELLO);
    msgpack_pack_uint8(pk, ST_WIRE_VERSION);
    msgpack_pack_uint32(pk, 1234);
    msgpack_pack_bin(pk, sizeof(raw) - 1);
    msgpack_pack_bin_body(pk, raw, sizeof(raw) - 1);
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
                ck_assert_int_eq(st_wire_pack_var_set(&p.pk, 1000 + i, i,
                                                      val, (size_t)n), 0);
        }
        ck_assert_int_eq(st_wire_pack_diff_begin(&p.pk, nl), 0);
        for (i = 0; i < nl; i++) {
            int n = snprintf(val, sizeof(val), "l%u", (unsigned)i);

            ck_assert_int_eq(st_wire_pack_var_set(&p.pk, 5000 + i, 7, val,
                                                  (size_t)n), 0);
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
    static const unsigned char ext32[] = {0x92, 0x09, 0xc9, 0xff, 0xff,
                                          0xff, 0xff, 0x01};

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
    static const unsigned char a32[] = {0xdd, 0x00, 0x00, 0x00, 0x10,
                                        0x01, 0x02, 0x03};
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
    ck_assert_int_eq(validate_exact(trailing, sizeof(trailing)),
                     ST_EBADTYPE);
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
    static const unsigned char str32[] = {0x92, 0x02, 0xdb, 0x00, 0x00,
                                          0x10, 0x00, 'a'};
    static const unsigned char bin32[] = {0x92, 0x02, 0xc6, 0xff, 0xff,
                                          0xff, 0xff, 'a'};
    static const unsigned char str8[] = {0x92, 0x02, 0xd9, 0x03, 'a', 'b'};
    static const unsigned char str16[] = {0x92, 0x02, 0xda, 0x00, 0x03,
                                          'a', 'b'};
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
        0xdc, 0x00, 0x18,
        0xc0, 0xc2, 0xc3, 0x05, 0xe0,
        0xcc, 0x01, 0xcd, 0x00, 0x01, 0xce, 0, 0, 0, 1,
        0xcf, 0, 0, 0, 0, 0, 0, 0, 1,
        0xd0, 0x80, 0xd1, 0x80, 0x00, 0xd2, 0x80, 0, 0, 0,
        0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0,
        0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0,
        0xd9, 0x01, 'a', 0xda, 0x00, 0x01, 'b', 0xdb, 0, 0, 0, 1, 'c',
        0xc4, 0x01, 'd', 0xc5, 0x00, 0x01, 'e', 0xc6, 0, 0, 0, 1, 'f',
        0x90, 0xdc, 0x00, 0x00, 0xdd, 0, 0, 0, 0,
    };

    ck_assert_int_eq(validate_exact(msg, sizeof(msg)), 1);
}
END_TEST

/* ---- Validation: random input ---- */

/*
 * An independent, recursive reference for what st_wire_validate() must
 * accept: a sequence of complete msgpack objects, each an array, with no
 * map, extension or 0xc1 byte, nesting at most ST_WIRE_MAX_DEPTH and
 * counts at most ST_WIRE_MAX_COUNT.  Recursion is fine here because the
 * depth is checked before descending.  @return 0 or -1.
 */
static int
ref_object(const unsigned char *p, size_t len, size_t *o, int depth)
{
    unsigned char c;
    size_t skip = 0, count = 0, i;
    int lenbytes = 0, array = 0;

    if (*o >= len)
        return -1;
    c = p[(*o)++];
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 0;
    if ((c & 0xe0) == 0xa0) {
        skip = c & 0x1f;
    }
    else if ((c & 0xf0) == 0x90) {
        array = 1;
        count = c & 0x0f;
    }
    else {
        switch (c) {
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: case 0xca: skip = 4; break;
        case 0xcf: case 0xd3: case 0xcb: skip = 8; break;
        case 0xc4: case 0xd9: lenbytes = 1; break;
        case 0xc5: case 0xda: lenbytes = 2; break;
        case 0xc6: case 0xdb: lenbytes = 4; break;
        case 0xdc: array = 1; lenbytes = 2; break;
        case 0xdd: array = 1; lenbytes = 4; break;
        default: return -1;
        }
    }
    if (lenbytes) {
        size_t v = 0;
        int k;

        if (len - *o < (size_t)lenbytes)
            return -1;
        for (k = 0; k < lenbytes; k++)
            v = (v << 8) | p[(*o)++];
        if (array)
            count = v;
        else
            skip = v;
    }
    if (!array) {
        if (len - *o < skip)
            return -1;
        *o += skip;
        return 0;
    }
    if (depth + 1 > ST_WIRE_MAX_DEPTH || count > ST_WIRE_MAX_COUNT)
        return -1;
    for (i = 0; i < count; i++)
        if (ref_object(p, len, o, depth + 1) != 0)
            return -1;
    return 0;
}

/* @return the message count, or -1. */
static int
ref_validate(const unsigned char *p, size_t len)
{
    size_t o = 0;
    int n = 0;

    if (len == 0)
        return -1;
    while (o < len) {
        unsigned char c = p[o];

        if ((c & 0xf0) != 0x90 && c != 0xdc && c != 0xdd)
            return -1;
        if (ref_object(p, len, &o, 0) != 0)
            return -1;
        n++;
    }
    return n;
}

/* Walks a msgpack-c object tree with the protocol's rules. */
static void
check_msgpack_object(const msgpack_object *o, int depth)
{
    uint32_t i;

    switch (o->type) {
    case MSGPACK_OBJECT_MAP:
    case MSGPACK_OBJECT_EXT:
        ck_abort_msg("validator accepted a map or ext");
        break;
    case MSGPACK_OBJECT_ARRAY:
        ck_assert_int_le(depth + 1, ST_WIRE_MAX_DEPTH);
        ck_assert_uint_le(o->via.array.size, ST_WIRE_MAX_COUNT);
        for (i = 0; i < o->via.array.size; i++)
            check_msgpack_object(&o->via.array.ptr[i], depth + 1);
        break;
    default:
        break;
    }
}

/* Reads every byte of a borrowed string, so ASan checks its bounds. */
static unsigned
touch(struct st_str s)
{
    unsigned sum = 0;
    size_t i;

    for (i = 0; i < s.n; i++)
        sum += (unsigned char)s.p[i];
    return sum;
}

static unsigned
touch_msg(const struct st_msg *m)
{
    unsigned sum = 0;
    size_t i;

    switch (m->type) {
    case ST_MSG_HELLO: return touch(m->u.hello.program);
    case ST_MSG_STR: return touch(m->u.str.text);
    case ST_MSG_REGION: return touch(m->u.region.log_dir);
    case ST_MSG_EVENT: return touch(m->u.event.detail);
    case ST_MSG_ACK: return touch(m->u.ack.message);
    case ST_MSG_STEP:
        for (i = 0; i < m->u.step.nglobals; i++)
            sum += touch(m->u.step.globals[i].value);
        for (i = 0; i < m->u.step.nlocals; i++)
            sum += touch(m->u.step.locals[i].value);
        return sum;
    default:
        return 0;
    }
}

/*
 * Checks one input: st_wire_validate() must agree with the reference, and
 * an accepted payload must parse with msgpack-c into exactly that many
 * conforming arrays, and decode (to messages or clean errors) without
 * crashing.  @return 1 when the input was accepted.
 */
static int
check_input(struct st_wire_decoder *d, const unsigned char *bytes,
            size_t len)
{
    char *p = test_dup_exact(bytes, len);
    int n = st_wire_validate(p, len);
    int ref = ref_validate((const unsigned char *)p, len);
    int i, r = 0;

    if (n < 0) {
        ck_assert_msg(ref < 0, "rejected (%s) but valid, len %zu",
                      st_err_name(n), len);
        free(p);
        return 0;
    }
    ck_assert_int_eq(n, ref);
    {
        msgpack_unpacked u;
        size_t off = 0;

        msgpack_unpacked_init(&u);
        for (i = 0; i < n; i++) {
            ck_assert_int_eq(msgpack_unpack_next(&u, p, len, &off),
                             MSGPACK_UNPACK_SUCCESS);
            ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
            check_msgpack_object(&u.data, 0);
        }
        ck_assert_uint_eq(off, len);
        msgpack_unpacked_destroy(&u);
    }
    st_wire_decoder_reset(d, p, len);
    for (i = 0; i < n; i++) {
        struct st_msg m;

        r = st_wire_decode_next(d, &m);
        ck_assert_int_ne(r, 0);
        if (r == 1)
            (void)touch_msg(&m);
        else
            ck_assert_int_lt(r, 0);
    }
    ck_assert_int_eq(st_wire_decode_next(d, &(struct st_msg){0}), 0);
    free(p);
    return 1;
}

START_TEST(test_wire_validate_random_bytes)
{
    struct test_rng rng;
    struct st_wire_decoder d;
    unsigned char buf[64];
    int iter, accepted = 0;

    test_rng_seed(&rng, 0x5eedf00dull);
    st_wire_decoder_init(&d);
    for (iter = 0; iter < 200000; iter++) {
        size_t len = 1 + test_rng_below(&rng, sizeof(buf)), i;

        for (i = 0; i < len; i++)
            buf[i] = (unsigned char)test_rng_next(&rng);
        /* Start most inputs with an array header so that they get past
         * the first byte and exercise the walker. */
        if (iter % 4 != 0)
            buf[0] = (unsigned char)(0x90 | test_rng_below(&rng, 16));
        accepted += check_input(&d, buf, len);
    }
    /* The inputs must reach the accepting path, or the test proves little. */
    ck_assert_int_gt(accepted, 100);
    st_wire_decoder_close(&d);
}
END_TEST

START_TEST(test_wire_validate_mutated_frames)
{
    static const unsigned char interesting[] = {
        0x00, 0x01, 0x7f, 0x80, 0x90, 0x91, 0x9f, 0xa0, 0xbf, 0xc0,
        0xc1, 0xc4, 0xc6, 0xca, 0xcf, 0xd4, 0xd9, 0xdb, 0xdc, 0xdd,
        0xde, 0xdf, 0xe0, 0xff,
    };
    struct test_rng rng;
    struct st_wire_decoder d;
    struct packed p;
    unsigned char *buf;
    size_t cap;
    int iter, accepted = 0, decoded_errors = 0;

    packed_init(&p);
    ck_assert_int_eq(pack_corpus(&p.pk), CORPUS_COUNT);
    cap = p.b.len + 16;
    buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    test_rng_seed(&rng, 0xc0ffee11ull);
    st_wire_decoder_init(&d);
    for (iter = 0; iter < 20000; iter++) {
        size_t len = p.b.len;
        int k, nmut = 1 + (int)test_rng_below(&rng, 4);

        memcpy(buf, p.b.data, len);
        for (k = 0; k < nmut && len > 1; k++) {
            size_t at = test_rng_below(&rng, len);

            switch (test_rng_below(&rng, 5)) {
            case 0: /* Flip a bit. */
                buf[at] ^= (unsigned char)(1u << test_rng_below(&rng, 8));
                break;
            case 1: /* An interesting byte. */
                buf[at] = interesting[test_rng_below(&rng,
                                                     sizeof(interesting))];
                break;
            case 2: /* Delete a byte. */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            case 3: /* Insert a byte. */
                if (len < cap) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = (unsigned char)test_rng_next(&rng);
                    len++;
                }
                break;
            default: /* Truncate. */
                len = 1 + at;
                break;
            }
        }
        if (check_input(&d, buf, len)) {
            accepted++;
            /* Count frames that validate but fail to decode, so we know
             * the decoder's error paths ran too. */
            {
                struct st_msg m;
                int r;

                st_wire_decoder_reset(&d, (char *)buf, len);
                while ((r = st_wire_decode_next(&d, &m)) != 0)
                    if (r < 0) {
                        decoded_errors++;
                        break;
                    }
            }
        }
    }
    ck_assert_int_gt(accepted, 1000);
    ck_assert_int_gt(decoded_errors, 100);
    st_wire_decoder_close(&d);
    free(buf);
    packed_close(&p);
}
END_TEST

/* ---- Decoder errors ---- */

/* Packs one raw message with `pack` and returns the decoder's verdict. */
static int
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

#define DECODE(...)                                                         \
    decode_raw((const unsigned char[]){__VA_ARGS__},                        \
               sizeof((const unsigned char[]){__VA_ARGS__}))

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
    static const uint64_t vals[] = {0, 1, 127, 128, 255, 256, 65535, 65536,
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
                                                     vals[j]), 0);
            ck_assert_int_eq(st_wire_pack_nil(&p.pk), 0);
            ck_assert_int_eq(st_wire_put_step_head(&b, small, 3, small,
                                                   vals[j]), 0);
            ck_assert_int_eq(st_wire_put_nil(&b), 0);
            same_bytes_close(&p, &b);
        }
    }
}
END_TEST

/* The agent's direct FRAME, FRAME_END and LINE encoders, likewise. */
START_TEST(test_wire_put_frame_matches_packer)
{
    static const uint32_t vals[] = {0, 1, 127, 128, 255, 256, 65535, 65536,
                                    UINT32_MAX};
    size_t i, j;

    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        for (j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) {
            struct packed p;
            struct st_buf b;

            packed_init(&p);
            st_buf_init(&b);
            ck_assert_int_eq(st_wire_pack_frame(&p.pk, vals[i], vals[j], 7,
                                                vals[j], vals[i], 1, 2,
                                                vals[i]), 0);
            ck_assert_int_eq(st_wire_pack_frame_end(&p.pk, vals[j]), 0);
            ck_assert_int_eq(st_wire_pack_line(&p.pk, vals[i], vals[j],
                                               (uint64_t)vals[j] * 100 + 49),
                             0);
            ck_assert_int_eq(st_wire_put_frame(&b, vals[i], vals[j], 7,
                                               vals[j], vals[i], 1, 2,
                                               vals[i]), 0);
            ck_assert_int_eq(st_wire_put_frame_end(&b, vals[j]), 0);
            ck_assert_int_eq(st_wire_put_line(&b, vals[i], vals[j],
                                              (uint64_t)vals[j] * 100 + 49),
                             0);
            same_bytes_close(&p, &b);
        }
    }
}
END_TEST

/* The direct diff encoders write what the packer does, at every size
 * boundary of the array and str heads. */
START_TEST(test_wire_put_diff_matches_packer)
{
    static const size_t lens[] = {0, 1, 15, 16, 31, 32, 255, 256, 65535,
                                  65536, 70000};
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
                                                  lens[i]), 0);
            ck_assert_int_eq(st_wire_pack_var_del(&p.pk, sids[j]), 0);
            ck_assert_int_eq(st_wire_put_diff_begin(&b, lens[i]), 0);
            ck_assert_int_eq(st_wire_put_var_set(&b, sids[j], 7, text,
                                                 lens[i]), 0);
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
    static const uint64_t ns[] = {0, 49, 50, 149, 150, 12345678,
                                  UINT64_MAX - 99};
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
    ck_assert_int_eq(DECODE(0x98, 5, 1, 1, 0, 1, 1, 0xcf, 0, 0, 0, 2, 0, 0,
                            0, 0, 1), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x98, 5, 1, 1, 0, 1, 1, 0xcf, 0, 0, 0, 1, 0xff,
                            0xff, 0xff, 0xff, 1), 1);
    /* Wrong field count, wrong types, a runtime that overflows in ns. */
    ck_assert_int_eq(DECODE(0x93, 21, 3, 4), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x94, 21, 3, 0xa0, 7), ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x94, 21, 3, 4, 0xcf, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff), ST_EBADTYPE);
}
END_TEST

/* ASYNC: the async records of SPEC section 8. */
START_TEST(test_wire_round_trip_async)
{
    static const char body[] = "\xe2\x8f\xb3 AWAIT START: fetch\n"
                               "   File: /a.py:15\n";
    struct packed p;
    struct st_wire_decoder d;
    struct st_msg m;

    packed_init(&p);
    ck_assert_int_eq(st_wire_pack_async(&p.pk, 3, UINT64_MAX, ST_ASYNC_AWAIT,
                                        LIT(body)), 0);
    ck_assert_int_eq(st_wire_pack_async(&p.pk, 3, 0, ST_ASYNC_TASK, "", 0),
                     0);
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

START_TEST(test_wire_decode_rejects_wrong_field_count)
{
    /* Sanity: the well-formed FLUSH decodes. */
    ck_assert_int_eq(DECODE(0x92, 0x09, 0x01), 1);
    ck_assert_int_eq(DECODE(0x91, 0x09), ST_EBADMSG);             /* FLUSH */
    ck_assert_int_eq(DECODE(0x93, 0x09, 0x01, 0x02), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x93, 0x01, 0x01, 0x01), ST_EBADMSG); /* HELLO */
    ck_assert_int_eq(DECODE(0x94, 0x01, 0x01, 0x01, 0xa0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x96, 0x01, 0x01, 0x01, 0xa0, 0x00, 0x00),
                     ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x96, 0x06, 1, 2, 3, 4, 0xc0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x98, 0x06, 1, 2, 3, 4, 0xc0, 0xc0, 0xc0),
                     ST_EBADMSG); /* STEP */
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
    ck_assert_int_eq(DECODE(0x95, 0x01, 0x01, 0x01, 0x05, 0x00),
                     ST_EBADTYPE);
    /* HELLO with a str ring size. */
    ck_assert_int_eq(DECODE(0x95, 0x01, 0x01, 0x01, 0xa0, 0xa1, '1'),
                     ST_EBADTYPE);
    /* EVENT detail nil (only ACK allows nil). */
    ck_assert_int_eq(DECODE(0x97, 0x0b, 1, 2, 3, 4, 4, 0xc0), ST_EBADTYPE);
    /* EVENT of an unknown kind. */
    ck_assert_int_eq(DECODE(0x97, 0x0b, 1, 2, 3, 4, 9, 0xa0), ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x97, 0x0b, 1, 2, 3, 4, 0, 0xa0), ST_EBADMSG);
    /* ACK message integer. */
    ck_assert_int_eq(DECODE(0x94, 0x0c, 1, 2, 3), ST_EBADTYPE);
    /* REGION level as str. */
    ck_assert_int_eq(DECODE(0x98, 0x03, 1, 2, 0xa1, '/', 0xa0, 2, 0, 0),
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
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x05, 0xc0),
                     ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0xc0, 0xa0),
                     ST_EBADTYPE);
    /* Entry is not an array. */
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x05, 0xc0),
                     ST_EBADTYPE);
    /* Entries of 0, 2 and 4 elements: a wrong number of fields. */
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x90, 0xc0),
                     ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0xc0, 0x91, 0x92, 5, 6),
                     ST_EBADMSG);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x94, 5, 6, 0xa0,
                            7, 0xc0),
                     ST_EBADMSG);
    /* Entry fields of the wrong type: str name, nil type, int value, str
     * name in a delete. */
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 0xa0, 6,
                            0xa0, 0xc0),
                     ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 5, 0xc0,
                            0xa0, 0xc0),
                     ST_EBADTYPE);
    ck_assert_int_eq(DECODE(0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 5, 6, 7,
                            0xc0),
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

#define CHECK_STEP(...)                                                     \
    check_step_raw((const unsigned char[]){__VA_ARGS__},                    \
                   sizeof((const unsigned char[]){__VA_ARGS__}))

/* STEP is decoded without msgpack-c in the forms the agent writes; every
 * other valid form still decodes to the same message. */
START_TEST(test_wire_decode_step_any_encoding)
{
    /* The agent's forms. */
    CHECK_STEP(0x97, 0x06, 1, 2, 3, 4, 0x92, 0x93, 5, 6, 0xa2, 'a', 'b',
               0x91, 7, 0xc0);
    /* Wider unsigned forms, str8/bin8/bin32 values, array16/32 diffs. */
    CHECK_STEP(0x97, 0x06, 0xcc, 1, 0xcd, 0, 2, 0xce, 0, 0, 0, 3, 0xcf, 0,
               0, 0, 0, 0, 0, 0, 4, 0xdc, 0, 2, 0x93, 5, 6, 0xd9, 2, 'a',
               'b', 0x91, 7, 0xc0);
    CHECK_STEP(0x97, 0x06, 1, 2, 3, 4, 0xdd, 0, 0, 0, 2, 0x93, 5, 6, 0xc4,
               2, 'a', 'b', 0xdc, 0, 1, 7, 0xc0);
    CHECK_STEP(0x97, 0x06, 1, 2, 3, 4, 0x92, 0x93, 5, 6, 0xc6, 0, 0, 0, 2,
               'a', 'b', 0x91, 7, 0xc0);
    /* Forms only msgpack-c reads here: an array16 message, the type as
     * u8, a positive int8 and int64 (msgpack-c reads them as unsigned). */
    CHECK_STEP(0xdc, 0, 7, 0x06, 1, 2, 3, 4, 0x92, 0x93, 5, 6, 0xa2, 'a',
               'b', 0x91, 7, 0xc0);
    CHECK_STEP(0x97, 0xcc, 0x06, 1, 2, 3, 4, 0x92, 0x93, 5, 6, 0xa2, 'a',
               'b', 0x91, 7, 0xc0);
    CHECK_STEP(0x97, 0x06, 0xd0, 1, 2, 3, 0xd3, 0, 0, 0, 0, 0, 0, 0, 4,
               0x92, 0x93, 5, 6, 0xa2, 'a', 'b', 0x91, 0xd1, 0, 7, 0xc0);
}
END_TEST

/* A frame mixing STEPs and other messages decodes in order, each STEP's
 * diffs pointing at its own entries. */
START_TEST(test_wire_decode_steps_in_a_frame)
{
    static const unsigned char frame[] = {
        0x97, 0x06, 1, 2, 3, 4, 0x91, 0x93, 5, 6, 0xa1, 'x', 0x91, 0x91, 8,
        0x92, 0x09, 0x2a,
        0x97, 0x06, 9, 10, 11, 0xcd, 0x01, 0x00, 0xc0, 0x90};
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
static int
validate_messages_exact(const unsigned char *bytes, size_t len)
{
    char *copy = test_dup_exact(bytes, len);
    int r = st_wire_validate_messages(copy, len);

    free(copy);
    return r;
}

#define VALIDATE_MSGS(...)                                                  \
    validate_messages_exact((const unsigned char[]){__VA_ARGS__},           \
                            sizeof((const unsigned char[]){__VA_ARGS__}))

/* STEPs in the agent's forms are validated without the general walk;
 * hostile lengths inside them get the general walk's verdicts. */
START_TEST(test_wire_validate_step_shapes)
{
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 4, 0xc0, 0x90), 1);
    ck_assert_int_eq(VALIDATE_MSGS(0x97, 0x06, 1, 2, 3, 0xcf, 0, 0, 0, 0, 0,
                                   0, 0, 4, 0x91, 0x93, 5, 6, 0xd9, 1, 'x',
                                   0x91, 0x91, 7),
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
    ck_assert_int_eq(VALIDATE_MSGS(0x96, 0x06, 1, 2, 3, 4, 0xc0),
                     ST_EBADMSG);
    ck_assert_int_eq(VALIDATE_MSGS(0x98, 0x06, 1, 2, 3, 4, 0xc0, 0xc0,
                                   0xc0),
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
                                               sizeof(flush)), 1);
    /* Structurally fine, so st_wire_validate() accepts them ... */
    ck_assert_int_eq(validate_exact(unknown, sizeof(unknown)), 1);
    /* ... but not as messages. */
    ck_assert_int_eq(st_wire_validate_messages((const char *)unknown,
                                               sizeof(unknown)), ST_EBADMSG);
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
                                               sizeof(empty)), ST_EBADMSG);
    ck_assert_int_eq(st_wire_validate_messages((const char *)wide_type,
                                               sizeof(wide_type)), 1);
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
    ck_assert_int_eq(st_wire_validate_messages(p.b.data, p.b.len),
                     ST_ETOOBIG);
    packed_close(&p);
}
END_TEST

/* A bad message does not stop the decoder: it moves on to the next one. */
START_TEST(test_wire_decode_continues_after_error)
{
    static const unsigned char frame[] = {0x92, 0x64, 0x01, /* unknown */
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

Suite *
wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc;

    tc = tcase_create("header");
    tcase_add_test(tc, test_wire_header_round_trip);
    tcase_add_test(tc, test_wire_header_is_big_endian);
    tcase_add_test(tc, test_wire_header_rejects_zero);
    tcase_add_test(tc, test_wire_header_rejects_too_big);
    suite_add_tcase(s, tc);

    tc = tcase_create("round_trip");
    tcase_add_test(tc, test_wire_round_trip_every_type);
    tcase_add_test(tc, test_wire_round_trip_async);
    tcase_add_test(tc, test_wire_round_trip_note_and_file);
    tcase_add_test(tc, test_wire_put_step_head_matches_packer);
    tcase_add_test(tc, test_wire_put_frame_matches_packer);
    tcase_add_test(tc, test_wire_line_round_trip);
    tcase_add_test(tc, test_wire_put_diff_matches_packer);
    tcase_add_test(tc, test_wire_round_trip_framed);
    tcase_add_test(tc, test_wire_decode_accepts_bin_as_str);
    tcase_add_test(tc, test_wire_round_trip_long_strings);
    tcase_add_test(tc, test_wire_decode_large_diffs);
    suite_add_tcase(s, tc);

    tc = tcase_create("truncation");
    tcase_add_test(tc, test_wire_validate_truncated_prefixes);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_add_test(tc, test_wire_validate_rejects_huge_array32);
    tcase_add_test(tc, test_wire_validate_rejects_maps);
    tcase_add_test(tc, test_wire_validate_rejects_ext);
    tcase_add_test(tc, test_wire_validate_rejects_deep_nesting);
    tcase_add_test(tc, test_wire_validate_depth_limit);
    tcase_add_test(tc, test_wire_validate_count_limit);
    tcase_add_test(tc, test_wire_validate_rejects_count_beyond_bytes);
    tcase_add_test(tc, test_wire_validate_rejects_top_level_non_array);
    tcase_add_test(tc, test_wire_validate_rejects_never_used_byte);
    tcase_add_test(tc, test_wire_validate_rejects_short_strings);
    tcase_add_test(tc, test_wire_validate_accepts_every_scalar);
    tcase_add_test(tc, test_wire_validate_messages_checks_headers);
    tcase_add_test(tc, test_wire_validate_messages_bounds_elements);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_test(tc, test_wire_validate_random_bytes);
    tcase_add_test(tc, test_wire_validate_mutated_frames);
    suite_add_tcase(s, tc);

    tc = tcase_create("decode_errors");
    tcase_add_test(tc, test_wire_decode_rejects_wrong_field_count);
    tcase_add_test(tc, test_wire_decode_rejects_unknown_type);
    tcase_add_test(tc, test_wire_decode_rejects_wrong_field_type);
    tcase_add_test(tc, test_wire_decode_rejects_bad_diffs);
    tcase_add_test(tc, test_wire_decode_continues_after_error);
    tcase_add_test(tc, test_wire_decode_step_any_encoding);
    tcase_add_test(tc, test_wire_decode_steps_in_a_frame);
    tcase_add_test(tc, test_wire_validate_step_shapes);
    suite_add_tcase(s, tc);

    return s;
}
