/*
 * Wire validation: frame headers, and the bytes of a payload checked
 * before msgpack-c ever sees them (steptrace/wire.h, PROTOCOL.md
 * "Framing").  Nothing here allocates or reads past the length it is
 * given; every function is safe on hostile input.  The collector calls
 * st_wire_validate_messages() on every frame and st_wire_validate_prefix()
 * on the ring; the agent calls st_wire_validate() on the collector's
 * frames.  This file also owns the table of field counts that the decoder
 * and the encoders share (st__wire_nfields, common/wire_int.h).
 */
#include "steptrace/wire.h"

#include "wire_int.h"
#include "steptrace/error.h"

/* Field counts per message type, the type included, from ST_MSG_MAP.
 * A type is one byte on the wire: the decoder maps larger ones to 0. */
#define XX(name, val, nfields)                                                \
    _Static_assert((val) > 0 && (val) < 256, "ST_MSG_" #name " fits a byte"); \
    _Static_assert((nfields) >= 2 && (nfields) <= ST_WIRE_MAX_FIELDS,         \
                   "ST_MSG_" #name                                            \
                   " has 1 to ST_WIRE_MAX_FIELDS - 1 fields");
ST_MSG_MAP(XX)
#undef XX

static const unsigned char wire_nfields[256] = {
#define XX(name, val, nfields) [val] = (nfields),
    ST_MSG_MAP(XX)
#undef XX
};

size_t
st__wire_nfields(int type)
{
    if (type <= 0 || type >= 256)
        return 0;
    return wire_nfields[type];
}

int64_t
st_wire_frame_len(const unsigned char hdr[ST_WIRE_HEADER_SIZE], uint32_t max)
{
    uint32_t len = wire_be(hdr, ST_WIRE_HEADER_SIZE);

    if (max == 0)
        max = ST_WIRE_MAX_FRAME;
    if (len == 0)
        return ST_EMALFORMED;
    if (len > max)
        return ST_ETOOBIG;
    return (int64_t)len;
}

int
st_wire_skip_head(const unsigned char *p, size_t avail, uint32_t *n)
{
    if (avail < ST_WIRE_SKIP_HEAD || p[0] != 0x92 || p[1] != ST_MSG_SKIP ||
        p[2] != 0xc6)
        return 0;
    *n = wire_be(p + 3, 4);
    return 1;
}

/*
 * The message type at p[0..avail) if it is a positive integer (any
 * width), else 0.  A value that does not fit in 8 bits is no type.
 */
static int
wire_peek_type(const unsigned char *p, size_t avail)
{
    size_t n = wire_fast_uint(p, avail), i;

    if (n == 0)
        return 0;
    if (n == 1)
        return p[0];
    /* A wider form: every byte but the last must be 0. */
    for (i = 1; i + 1 < n; i++)
        if (p[i] != 0)
            return 0;
    return p[n - 1];
}

/* Is p[0..avail) an unsigned integer whose bytes are not all there? */
static int
wire_uint_cut(const unsigned char *p, size_t avail)
{
    if (avail == 0)
        return 1;
    /* A table of msgpack type bytes, one row per size. */
    /* clang-format off */
    switch (p[0]) {
    case 0xcc: return avail < 2;
    case 0xcd: return avail < 3;
    case 0xce: return avail < 5;
    case 0xcf: return avail < 9;
    default: return 0;
    }
    /* clang-format on */
}

/* The head of one msgpack object: an array's element count, or the
 * payload bytes after the head of anything else. */
struct wire_head {
    int is_array;
    uint32_t count;
    size_t skip;
};

/*
 * Reads the head of the object at p[*o..len) into *h and moves *o past
 * it.  @return 0, or ST_ETRUNCATED, ST_EMALFORMED (the never-used byte),
 * ST_EBADTYPE (a map or an extension type: never sent).
 */
static int
wire_read_head(const unsigned char *p, size_t len, size_t *o,
               struct wire_head *h)
{
    unsigned char c;
    int lenbytes = 0;

    h->is_array = 0;
    h->count = 0;
    h->skip = 0;
    if (*o >= len)
        return ST_ETRUNCATED;
    c = p[(*o)++];
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 0;
    if (c >= 0x90 && c <= 0x9f) {
        h->is_array = 1;
        h->count = c & 0x0f;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        h->skip = c & 0x1f;
        return 0;
    }
    /* A table of msgpack type bytes, one row per size. */
    /* clang-format off */
    switch (c) {
    case 0xcc: case 0xd0: h->skip = 1; return 0;
    case 0xcd: case 0xd1: h->skip = 2; return 0;
    case 0xce: case 0xd2: case 0xca: h->skip = 4; return 0;
    case 0xcf: case 0xd3: case 0xcb: h->skip = 8; return 0;
    case 0xc4: case 0xd9: lenbytes = 1; break;
    case 0xc5: case 0xda: lenbytes = 2; break;
    case 0xc6: case 0xdb: lenbytes = 4; break;
    case 0xdc: h->is_array = 1; lenbytes = 2; break;
    case 0xdd: h->is_array = 1; lenbytes = 4; break;
    case 0xc1:
        return ST_EMALFORMED;
    default:
        return ST_EBADTYPE;
    }
    /* clang-format on */
    if (len - *o < (size_t)lenbytes)
        return ST_ETRUNCATED;
    if (h->is_array)
        h->count = wire_be(p + *o, lenbytes);
    else
        h->skip = wire_be(p + *o, lenbytes);
    *o += (size_t)lenbytes;
    return 0;
}

/*
 * The checks of an array of `count` elements whose head ends at p + o,
 * at nesting `depth` (0: the message itself).  *elements counts the
 * message's array elements so far.  With `strict`, the message's type and
 * field count are checked before any of its fields is looked at.
 */
static int
wire_check_array(const unsigned char *p, size_t len, size_t o, int depth,
                 int strict, uint32_t count, uint64_t *elements)
{
    int type;

    if (count > ST_WIRE_MAX_COUNT)
        return ST_ETOOBIG;
    /* Each element takes at least one byte. */
    if (count > len - o)
        return ST_ETRUNCATED;
    if (depth == ST_WIRE_MAX_DEPTH)
        return ST_EDEPTH;
    *elements += count;
    if (strict && *elements > ST_WIRE_MAX_COUNT)
        return ST_ETOOBIG;
    if (!strict || depth > 0)
        return 0;
    type = wire_peek_type(p + o, len - o);
    if (type == 0 && count > 0 && wire_uint_cut(p + o, len - o))
        return ST_ETRUNCATED;
    if (count == 0 || type == 0 || st__wire_nfields(type) != count)
        return ST_EBADMSG;
    return 0;
}

/*
 * Walks one msgpack object at *off, checking every declared length against
 * the bytes present.  Arrays are walked with an explicit stack of remaining
 * element counts, so hostile nesting costs no recursion.
 */
static int
wire_validate_one(const unsigned char *p, size_t len, size_t *off, int strict)
{
    uint32_t remaining[ST_WIRE_MAX_DEPTH + 1];
    int depth = 0;
    size_t o = *off;
    uint64_t elements = 0;
    int r;

    for (;;) {
        struct wire_head h;

        r = wire_read_head(p, len, &o, &h);
        if (r != 0)
            return r;
        /* Depth 0 is only ever the first object: a message is an array. */
        if (depth == 0 && !h.is_array)
            return ST_EBADTYPE;
        if (h.is_array) {
            r = wire_check_array(p, len, o, depth, strict, h.count, &elements);
            if (r != 0)
                return r;
            remaining[depth++] = h.count;
        }
        else {
            if (h.skip > len - o)
                return ST_ETRUNCATED;
            o += h.skip;
            remaining[depth - 1]--;
        }
        /* One element of the enclosing array is done; pop finished ones. */
        while (depth > 0 && remaining[depth - 1] == 0) {
            depth--;
            if (depth > 0)
                remaining[depth - 1]--;
        }
        if (depth == 0)
            break;
    }
    *off = o;
    return 0;
}

/*
 * The fast walk of the messages nearly every frame is made of: STEPs
 * whose integers are unsigned and whose diffs are nil or arrays of
 * [name, type, str] / [name] entries, in the forms the agent writes.
 * Each helper returns the bytes taken, or 0 when the bytes are anything
 * else (then the general walk decides).  What they take passes every
 * check of wire_validate_one(), strict or not: each array's count is
 * within ST_WIRE_MAX_COUNT and the bytes present, the nesting is three
 * deep, and the message's elements stay within ST_WIRE_MAX_COUNT.  So
 * taking a message here changes no verdict; it only skips the general
 * walk's bookkeeping.
 */
/* A diff; adds its elements (entries and their fields) to *elements. */
static size_t
wire_fast_diff(const unsigned char *p, size_t avail, uint64_t *elements)
{
    size_t o, count, i;

    if (avail == 0)
        return 0;
    if (p[0] == 0xc0)
        return 1;
    o = wire_fast_array(p, avail, &count);
    if (o == 0 || count > ST_WIRE_MAX_COUNT || count > avail - o)
        return 0;
    *elements += count;
    for (i = 0; i < count; i++) {
        size_t k, n;

        if (o >= avail || (p[o] != (0x90 | 1) && p[o] != (0x90 | 3)))
            return 0;
        k = p[o++] & 0x0f;
        *elements += k;
        n = wire_fast_uint(p + o, avail - o);
        if (n == 0)
            return 0;
        o += n;
        if (k == 3) {
            n = wire_fast_uint(p + o, avail - o);
            if (n == 0)
                return 0;
            o += n;
            n = wire_fast_str(p + o, avail - o, NULL);
            if (n == 0)
                return 0;
            o += n;
        }
    }
    return o;
}

/* `count` unsigned integers; @return their bytes, or 0. */
static size_t
wire_fast_uints(const unsigned char *p, size_t avail, int count)
{
    size_t o = 0, n;
    int i;

    for (i = 0; i < count; i++) {
        n = wire_fast_uint(p + o, avail - o);
        if (n == 0)
            return 0;
        o += n;
    }
    return o;
}

/* A LINE (three unsigned integers), an EVENT, a FRAME or a STEP;
 * @return its bytes, or 0. */
static size_t
wire_fast_step(const unsigned char *p, size_t avail)
{
    uint64_t elements = 7;
    size_t o = 2, n;
    int i;

    if (avail >= 5 && p[0] == (0x90 | 4) && p[1] == ST_MSG_LINE) {
        n = wire_fast_uints(p + o, avail - o, 3);
        return n == 0 ? 0 : o + n;
    }
    if (avail >= 9 && p[0] == (0x90 | 7) && p[1] == ST_MSG_EVENT) {
        /* An EVENT: five unsigned integers and a str. */
        n = wire_fast_uints(p + o, avail - o, 5);
        if (n == 0)
            return 0;
        o += n;
        n = wire_fast_str(p + o, avail - o, NULL);
        return n == 0 ? 0 : o + n;
    }
    if (avail >= 9 && p[0] == (0x90 | 8) && p[1] == ST_MSG_FRAME) {
        /* A FRAME: seven unsigned integers. */
        n = wire_fast_uints(p + o, avail - o, 7);
        return n == 0 ? 0 : o + n;
    }
    if (avail < 8 || p[0] != (0x90 | 7) || p[1] != ST_MSG_STEP)
        return 0;
    n = wire_fast_uints(p + o, avail - o, 4);
    if (n == 0)
        return 0;
    o += n;
    for (i = 0; i < 2; i++) {
        n = wire_fast_diff(p + o, avail - o, &elements);
        if (n == 0)
            return 0;
        o += n;
    }
    return elements <= ST_WIRE_MAX_COUNT ? o : 0;
}

/*
 * Walks the messages of p[0..len).  With `prefix` (not NULL), a last
 * message cut short ends the walk instead of failing it: *prefix gets the
 * bytes of the whole messages before it.
 */
static int
wire_validate(const char *p, size_t len, int strict, size_t *prefix)
{
    size_t off = 0;
    int n = 0;

    if (len == 0 && prefix == NULL)
        return ST_ETRUNCATED;
    while (off < len) {
        size_t start = off;
        size_t fast = wire_fast_step((const unsigned char *)p + off,
                                     len - off);
        int r = 0;

        if (fast > 0)
            off += fast;
        else
            r = wire_validate_one((const unsigned char *)p, len, &off, strict);
        if (r == ST_ETRUNCATED && prefix != NULL) {
            *prefix = start;
            return n;
        }
        if (r < 0)
            return r;
        if (n == INT32_MAX)
            return ST_ETOOBIG;
        n++;
    }
    if (prefix != NULL)
        *prefix = off;
    return n;
}

int
st_wire_validate(const char *p, size_t len)
{
    return wire_validate(p, len, 0, NULL);
}

int
st_wire_validate_messages(const char *p, size_t len)
{
    return wire_validate(p, len, 1, NULL);
}

int
st_wire_validate_prefix(const char *p, size_t len, size_t *complete)
{
    *complete = 0;
    return wire_validate(p, len, 1, complete);
}
