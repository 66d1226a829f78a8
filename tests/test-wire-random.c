/*
 * st_wire_validate() on random and mutated bytes, against an independent
 * recursive reference; whatever it accepts must decode without an
 * over-read.
 * Part of the wire suite (test-wire.c); see test-wire.h.
 */
#include "test-wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

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
        /* A table of msgpack type bytes, one row per size. */
        /* clang-format off */
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
        /* clang-format on */
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
    default: break;
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
    default: return 0;
    }
}

/*
 * Checks one input: st_wire_validate() must agree with the reference, and
 * an accepted payload must parse with msgpack-c into exactly that many
 * conforming arrays, and decode (to messages or clean errors) without
 * crashing.  @return 1 when the input was accepted.
 */
static int
check_input(struct st_wire_decoder *d, const unsigned char *bytes, size_t len)
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
        0x00, 0x01, 0x7f, 0x80, 0x90, 0x91, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4,
        0xc6, 0xca, 0xcf, 0xd4, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff,
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
                buf[at] =
                    interesting[test_rng_below(&rng, sizeof(interesting))];
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
            default: /* Truncate. */ len = 1 + at; break;
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

void
wire_random_tests(const struct wire_tcases *tc)
{
    tcase_add_test(tc->random, test_wire_validate_random_bytes);
    tcase_add_test(tc->random, test_wire_validate_mutated_frames);
}
