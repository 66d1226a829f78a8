/*
 * Wire protocol: framing, validation, encoding and decoding.  See
 * steptrace/wire.h and PROTOCOL.md.
 */
#include "steptrace/wire.h"

#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"

int64_t
st_wire_frame_len(const unsigned char hdr[ST_WIRE_HEADER_SIZE], uint32_t max)
{
    uint32_t len = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
                   ((uint32_t)hdr[2] << 8) | (uint32_t)hdr[3];

    if (max == 0)
        max = ST_WIRE_MAX_FRAME;
    if (len == 0)
        return ST_EMALFORMED;
    if (len > max)
        return ST_ETOOBIG;
    return (int64_t)len;
}

void
st_wire_put_header(unsigned char hdr[ST_WIRE_HEADER_SIZE], uint32_t len)
{
    hdr[0] = (unsigned char)(len >> 24);
    hdr[1] = (unsigned char)(len >> 16);
    hdr[2] = (unsigned char)(len >> 8);
    hdr[3] = (unsigned char)len;
}

/* Field counts per message type, the type included, from ST_MSG_MAP.
 * A type is one byte on the wire: the decoder maps larger ones to 0. */
#define XX(name, val, nfields)                                             \
    _Static_assert((val) > 0 && (val) < 256, "ST_MSG_" #name " fits a byte");
ST_MSG_MAP(XX)
#undef XX

static const unsigned char wire_nfields[256] = {
#define XX(name, val, nfields) [val] = (nfields),
    ST_MSG_MAP(XX)
#undef XX
};

static size_t
msg_nfields(int type)
{
    if (type <= 0 || type >= 256)
        return 0;
    return wire_nfields[type];
}

/* Big-endian read of n (1, 2, 4) bytes. */
static uint32_t
wire_be(const unsigned char *p, int n)
{
    uint32_t v = 0;
    int i;

    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * The message type at p[0..avail) if it is a positive integer (any
 * width), else 0.  A value that does not fit in 8 bits is no type.
 */
static size_t wire_fast_uint(const unsigned char *p, size_t avail);

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
    switch (p[0]) {
    case 0xcc: return avail < 2;
    case 0xcd: return avail < 3;
    case 0xce: return avail < 5;
    case 0xcf: return avail < 9;
    default: return 0;
    }
}

/*
 * Walks one msgpack object at *off, checking every declared length against
 * the bytes present.  Arrays are walked with an explicit stack of remaining
 * element counts, so hostile nesting costs no recursion.
 */
static int
wire_validate_one(const unsigned char *p, size_t len, size_t *off,
                  int strict)
{
    uint32_t remaining[ST_WIRE_MAX_DEPTH + 1];
    int depth = 0;
    size_t o = *off;
    int top = 1;
    uint64_t elements = 0;

    for (;;) {
        unsigned char c;
        size_t skip = 0; /* Payload bytes after the type byte(s). */
        uint32_t count = 0;
        int is_array = 0;
        int lenbytes = 0;

        if (o >= len)
            return ST_ETRUNCATED;
        c = p[o++];
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            skip = 0;
        }
        else if (c >= 0x90 && c <= 0x9f) {
            is_array = 1;
            count = c & 0x0f;
        }
        else if (c >= 0xa0 && c <= 0xbf) {
            skip = c & 0x1f;
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
            case 0xdc: is_array = 1; lenbytes = 2; break;
            case 0xdd: is_array = 1; lenbytes = 4; break;
            case 0xc1:
                return ST_EMALFORMED;
            default:
                /* Maps and extension types are never sent. */
                return ST_EBADTYPE;
            }
            if (lenbytes) {
                uint32_t n;

                if (len - o < (size_t)lenbytes)
                    return ST_ETRUNCATED;
                n = wire_be(p + o, lenbytes);
                o += (size_t)lenbytes;
                if (is_array)
                    count = n;
                else
                    skip = n;
            }
        }
        if (top && !is_array)
            return ST_EBADTYPE;
        top = 0;
        if (is_array) {
            if (count > ST_WIRE_MAX_COUNT)
                return ST_ETOOBIG;
            /* Each element takes at least one byte. */
            if (count > len - o)
                return ST_ETRUNCATED;
            if (depth == ST_WIRE_MAX_DEPTH)
                return ST_EDEPTH;
            elements += count;
            if (strict && elements > ST_WIRE_MAX_COUNT)
                return ST_ETOOBIG;
            /* The message's type and field count, before any of its
             * fields is looked at. */
            if (strict && depth == 0) {
                int type = wire_peek_type(p + o, len - o);

                if (type == 0 && count > 0 && wire_uint_cut(p + o, len - o))
                    return ST_ETRUNCATED;
                if (count == 0 || type == 0 || msg_nfields(type) != count)
                    return ST_EBADMSG;
            }
            remaining[depth++] = count;
        }
        else {
            if (skip > len - o)
                return ST_ETRUNCATED;
            o += skip;
        }
        /* One element of the enclosing array is done; pop finished ones. */
        if (!is_array && depth == 0)
            break;
        if (!is_array)
            remaining[depth - 1]--;
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
static size_t
wire_fast_uint(const unsigned char *p, size_t avail)
{
    size_t w;

    if (avail == 0)
        return 0;
    if (p[0] <= 0x7f)
        return 1;
    switch (p[0]) {
    case 0xcc: w = 1; break;
    case 0xcd: w = 2; break;
    case 0xce: w = 4; break;
    case 0xcf: w = 8; break;
    default: return 0;
    }
    return w < avail ? 1 + w : 0;
}

/* A str or bin: @return its bytes in all (0: not one, or not all
 * there); *hdr, when given, the bytes of its head. */
static size_t
wire_fast_str(const unsigned char *p, size_t avail, size_t *hdr)
{
    size_t w, n;

    if (avail == 0)
        return 0;
    if (p[0] >= 0xa0 && p[0] <= 0xbf) {
        w = 0;
        n = p[0] & 0x1f;
    }
    else {
        switch (p[0]) {
        case 0xc4: case 0xd9: w = 1; break;
        case 0xc5: case 0xda: w = 2; break;
        case 0xc6: case 0xdb: w = 4; break;
        default: return 0;
        }
        if (w >= avail)
            return 0;
        n = wire_be(p + 1, (int)w);
    }
    if (hdr != NULL)
        *hdr = 1 + w;
    return n < avail - w ? 1 + w + n : 0;
}

/* A diff; adds its elements (entries and their fields) to *elements. */
static size_t
wire_fast_diff(const unsigned char *p, size_t avail, uint64_t *elements)
{
    size_t o, count, i;

    if (avail == 0)
        return 0;
    if (p[0] == 0xc0)
        return 1;
    if (p[0] >= 0x90 && p[0] <= 0x9f) {
        count = p[0] & 0x0f;
        o = 1;
    }
    else if (p[0] == 0xdc && avail >= 3) {
        count = wire_be(p + 1, 2);
        o = 3;
    }
    else if (p[0] == 0xdd && avail >= 5) {
        count = wire_be(p + 1, 4);
        o = 5;
    }
    else {
        return 0;
    }
    if (count > ST_WIRE_MAX_COUNT || count > avail - o)
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

static size_t
wire_fast_step(const unsigned char *p, size_t avail)
{
    uint64_t elements = 7;
    size_t o = 2, n;
    int i;

    if (avail >= 5 && p[0] == (0x90 | 4) && p[1] == ST_MSG_LINE) {
        /* LINE: three unsigned integers. */
        for (i = 0; i < 3; i++) {
            n = wire_fast_uint(p + o, avail - o);
            if (n == 0)
                return 0;
            o += n;
        }
        return o;
    }
    if (avail < 8 || p[0] != (0x90 | 7) || p[1] != ST_MSG_STEP)
        return 0;
    for (i = 0; i < 4; i++) {
        n = wire_fast_uint(p + o, avail - o);
        if (n == 0)
            return 0;
        o += n;
    }
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
            r = wire_validate_one((const unsigned char *)p, len, &off,
                                  strict);
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

void
st_wire_decoder_init(struct st_wire_decoder *d)
{
    memset(d, 0, sizeof(*d));
}

void
st_wire_decoder_close(struct st_wire_decoder *d)
{
    if (d->zone_ready)
        msgpack_zone_destroy(&d->zone);
    d->zone_ready = 0;
    free(d->vars);
    d->vars = NULL;
    d->vars_cap = 0;
    free(d->counters);
    d->counters = NULL;
    d->counters_cap = 0;
}

void
st_wire_decoder_reset(struct st_wire_decoder *d, const char *p, size_t len)
{
    d->data = p;
    d->len = len;
    d->off = 0;
}

static int
get_u64(const msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return ST_EBADTYPE;
    *out = o->via.u64;
    return 0;
}

static int
get_u32(const msgpack_object *o, uint32_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return ST_EBADTYPE;
    *out = (uint32_t)o->via.u64;
    return 0;
}

static int
get_str(const msgpack_object *o, struct st_str *out)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        out->p = o->via.str.ptr;
        out->n = o->via.str.size;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        out->p = o->via.bin.ptr;
        out->n = o->via.bin.size;
        return 0;
    }
    return ST_EBADTYPE;
}

/* Reads the u32 fields f[first..first+n) into the pointers given. */
static int
get_u32s(const msgpack_object *f, uint32_t **outs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (get_u32(&f[i], outs[i]) != 0)
            return ST_EBADTYPE;
    return 0;
}

/* Decodes a diff (nil or array of [name, type, value] / [name]) into the
 * decoder's scratch array starting at index *used. */
static int
decode_diff(struct st_wire_decoder *d, const msgpack_object *o, int *has,
            size_t *used, size_t *count)
{
    const msgpack_object_array *a;
    struct st_wire_var *vars;
    size_t i;

    *count = 0;
    if (o->type == MSGPACK_OBJECT_NIL) {
        *has = 0;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return ST_EBADTYPE;
    *has = 1;
    a = &o->via.array;
    vars = st_grow(d->vars, &d->vars_cap, *used + a->size, sizeof(*vars), 16);
    if (vars == NULL)
        return ST_ENOMEM;
    d->vars = vars;
    for (i = 0; i < a->size; i++) {
        const msgpack_object *e = &a->ptr[i];
        struct st_wire_var *v = &d->vars[*used + i];

        if (e->type != MSGPACK_OBJECT_ARRAY)
            return ST_EBADTYPE;
        memset(v, 0, sizeof(*v));
        if (e->via.array.size == 1) {
            v->deleted = 1;
            if (get_u32(&e->via.array.ptr[0], &v->name_sid) != 0)
                return ST_EBADTYPE;
        }
        else if (e->via.array.size == 3) {
            if (get_u32(&e->via.array.ptr[0], &v->name_sid) != 0 ||
                get_u32(&e->via.array.ptr[1], &v->type_sid) != 0 ||
                get_str(&e->via.array.ptr[2], &v->value) != 0)
                return ST_EBADTYPE;
        }
        else {
            return ST_EBADMSG;
        }
    }
    *count = a->size;
    *used += a->size;
    return 0;
}

/* A LINE's runtime units (100 ns) as ns; one that overflows is refused. */
static int
line_runtime(uint64_t units, uint64_t *ns)
{
    if (units > UINT64_MAX / 100)
        return ST_EBADTYPE;
    *ns = units * 100;
    return 0;
}

static int
decode_fields(struct st_wire_decoder *d, const msgpack_object *f,
              struct st_msg *m)
{
    size_t used = 0;
    int r = 0;

    switch (m->type) {
    case ST_MSG_HELLO:
        if (get_u32(&f[1], &m->u.hello.version) != 0 ||
            get_u64(&f[2], &m->u.hello.pid) != 0 ||
            get_str(&f[3], &m->u.hello.program) != 0 ||
            get_u64(&f[4], &m->u.hello.ring_bytes) != 0)
            return ST_EBADTYPE;
        return 0;
    case ST_MSG_STR:
        if (get_u32(&f[1], &m->u.str.sid) != 0 ||
            get_str(&f[2], &m->u.str.text) != 0)
            return ST_EBADTYPE;
        return 0;
    case ST_MSG_REGION:
        if (get_u32(&f[1], &m->u.region.region_id) != 0 ||
            get_u32(&f[2], &m->u.region.tracer_id) != 0 ||
            get_str(&f[3], &m->u.region.log_dir) != 0 ||
            get_u32(&f[4], &m->u.region.level) != 0 ||
            get_u32(&f[5], &m->u.region.var_mode) != 0 ||
            get_u64(&f[6], &m->u.region.max_log_bytes) != 0 ||
            get_u32(&f[7], &m->u.region.max_log_files) != 0)
            return ST_EBADTYPE;
        return 0;
    case ST_MSG_THREAD: {
        uint32_t *outs[] = {&m->u.thread.tid, &m->u.thread.name_sid};
        return get_u32s(f + 1, outs, 2);
    }
    case ST_MSG_FRAME: {
        uint32_t *outs[] = {&m->u.frame.frame_id, &m->u.frame.tid,
                            &m->u.frame.parent_id, &m->u.frame.file_sid,
                            &m->u.frame.func_sid};
        uint64_t scope_flags;

        if (get_u32s(f + 1, outs, 5) != 0 ||
            get_u64(&f[6], &scope_flags) != 0 ||
            get_u32(&f[7], &m->u.frame.region_id) != 0 ||
            (scope_flags >> 1) > UINT32_MAX)
            return ST_EBADTYPE;
        m->u.frame.scope_id = (uint32_t)(scope_flags >> 1);
        m->u.frame.flags = (uint32_t)(scope_flags & ST_FRAME_MODULE);
        return 0;
    }
    case ST_MSG_LINE: {
        uint32_t *outs[] = {&m->u.step.frame_id, &m->u.step.lineno};
        uint64_t units;

        if (get_u32s(f + 1, outs, 2) != 0 || get_u64(&f[3], &units) != 0)
            return ST_EBADTYPE;
        return line_runtime(units, &m->u.step.runtime_ns);
    }
    case ST_MSG_STEP: {
        uint32_t *outs[] = {&m->u.step.region_id, &m->u.step.frame_id,
                            &m->u.step.lineno};
        size_t gstart;

        if (get_u32s(f + 1, outs, 3) != 0 ||
            get_u64(&f[4], &m->u.step.runtime_ns) != 0)
            return ST_EBADTYPE;
        r = decode_diff(d, &f[5], &m->u.step.has_globals, &used,
                        &m->u.step.nglobals);
        if (r != 0)
            return r;
        gstart = 0;
        r = decode_diff(d, &f[6], &m->u.step.has_locals, &used,
                        &m->u.step.nlocals);
        if (r != 0)
            return r;
        /* Set the pointers only now: decode_diff may move the scratch. */
        m->u.step.globals = d->vars + gstart;
        m->u.step.locals = d->vars + m->u.step.nglobals;
        return 0;
    }
    case ST_MSG_FRAME_END:
        return get_u32(&f[1], &m->u.frame_end.frame_id);
    case ST_MSG_REGION_END:
        return get_u32(&f[1], &m->u.region_end.region_id);
    case ST_MSG_FLUSH:
        return get_u64(&f[1], &m->u.flush.token);
    case ST_MSG_LOST:
        if (get_u32(&f[1], &m->u.lost.region_id) != 0 ||
            get_u64(&f[2], &m->u.lost.count) != 0)
            return ST_EBADTYPE;
        return 0;
    case ST_MSG_EVENT: {
        uint32_t *outs[] = {&m->u.event.region_id, &m->u.event.frame_id,
                            &m->u.event.lineno};
        if (get_u32s(f + 1, outs, 3) != 0 ||
            get_u64(&f[4], &m->u.event.runtime_ns) != 0 ||
            get_u32(&f[5], &m->u.event.kind) != 0 ||
            get_str(&f[6], &m->u.event.detail) != 0)
            return ST_EBADTYPE;
        if (m->u.event.kind < ST_EVENT_CALL ||
            m->u.event.kind > ST_EVENT_MAX_)
            return ST_EBADMSG;
        return 0;
    }
    case ST_MSG_ASYNC:
        if (get_u32(&f[1], &m->u.async.region_id) != 0 ||
            get_u64(&f[2], &m->u.async.time_ns) != 0 ||
            get_u32(&f[3], &m->u.async.kind) != 0 ||
            get_str(&f[4], &m->u.async.body) != 0)
            return ST_EBADTYPE;
        if (m->u.async.kind < ST_ASYNC_CORO || m->u.async.kind > ST_ASYNC_MAX_)
            return ST_EBADMSG;
        return 0;
    case ST_MSG_SKIP:
        if (f[1].type != MSGPACK_OBJECT_BIN)
            return ST_EBADTYPE;
        m->u.skip.n = f[1].via.bin.size;
        return 0;
    case ST_MSG_NOTE:
        if (get_u32(&f[1], &m->u.note.region_id) != 0 ||
            get_u32(&f[2], &m->u.note.kind) != 0 ||
            get_str(&f[3], &m->u.note.text) != 0)
            return ST_EBADTYPE;
        if (m->u.note.kind < ST_NOTE_LINE || m->u.note.kind > ST_NOTE_MAX_)
            return ST_EBADMSG;
        return 0;
    case ST_MSG_FILE:
        if (get_u32(&f[1], &m->u.file.tracer_id) != 0 ||
            get_str(&f[2], &m->u.file.path) != 0)
            return ST_EBADTYPE;
        return 0;
    case ST_MSG_ACK:
        if (get_u64(&f[1], &m->u.ack.token) != 0 ||
            get_u64(&f[2], &m->u.ack.errors) != 0)
            return ST_EBADTYPE;
        if (f[3].type == MSGPACK_OBJECT_NIL) {
            m->u.ack.message.p = NULL;
            m->u.ack.message.n = 0;
            return 0;
        }
        return get_str(&f[3], &m->u.ack.message);
    default:
        return ST_EBADMSG;
    }
}

/* Decodes a STATS counter list into the decoder's scratch array. */
static int
decode_counters(struct st_wire_decoder *d, const msgpack_object *o,
                struct st_msg *m)
{
    const msgpack_object_array *a;
    struct st_wire_counter *c;
    size_t i;

    if (o->type != MSGPACK_OBJECT_ARRAY)
        return ST_EBADTYPE;
    a = &o->via.array;
    c = st_grow(d->counters, &d->counters_cap, a->size, sizeof(*c), 16);
    if (c == NULL)
        return ST_ENOMEM;
    d->counters = c;
    for (i = 0; i < a->size; i++) {
        const msgpack_object *e = &a->ptr[i];

        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2)
            return ST_EBADTYPE;
        if (get_str(&e->via.array.ptr[0], &d->counters[i].name) != 0 ||
            get_u64(&e->via.array.ptr[1], &d->counters[i].value) != 0)
            return ST_EBADTYPE;
    }
    m->u.stats.counters = d->counters;
    m->u.stats.ncounters = a->size;
    return 0;
}

/* The control messages: STATUS, STATS, TAIL, TEXT. */
static int
decode_control(struct st_wire_decoder *d, const msgpack_object *f,
               struct st_msg *m)
{
    switch (m->type) {
    case ST_MSG_STATUS:
        return get_u64(&f[1], &m->u.status.token);
    case ST_MSG_STATS:
        if (get_u64(&f[1], &m->u.stats.token) != 0)
            return ST_EBADTYPE;
        return decode_counters(d, &f[2], m);
    case ST_MSG_TAIL:
        if (get_u64(&f[1], &m->u.tail.pid) != 0 ||
            get_str(&f[2], &m->u.tail.glob) != 0)
            return ST_EBADTYPE;
        return 0;
    case ST_MSG_TEXT:
        if (get_u64(&f[1], &m->u.text.pid) != 0 ||
            get_str(&f[2], &m->u.text.path) != 0 ||
            get_str(&f[3], &m->u.text.text) != 0)
            return ST_EBADTYPE;
        return 0;
    default:
        return ST_EBADMSG;
    }
}

/*
 * The direct STEP decoder.  STEP is nearly every message of a busy
 * connection, and its head is written by the agent without msgpack-c
 * (st_wire_put_step_head), so it is read here without msgpack-c too: no
 * zone, no object tree.  It takes only the forms it knows (unsigned
 * integers, str and bin, nil, arrays); on anything else it gives up
 * without a verdict and st_wire_decode_next() decodes the message with
 * msgpack-c as before, so errors and odd encodings are decided in one
 * place.  Every read is checked against the frame's length.
 */
/* What a diff decoded to. */
struct wire_decoder_diff_out {
    int has;      /* 0: the field was nil. */
    size_t count;
};

struct wire_cursor {
    const unsigned char *p;
    size_t len;
    size_t off;
};

/* An unsigned integer in any msgpack form.  @return 0 or -1 (give up). */
static int
cursor_uint(struct wire_cursor *c, uint64_t *v)
{
    const unsigned char *p = c->p + c->off;
    size_t n = wire_fast_uint(p, c->len - c->off), i;
    uint64_t x = 0;

    if (n == 0)
        return -1;
    if (n == 1) {
        *v = p[0];
    }
    else {
        for (i = 1; i < n; i++)
            x = (x << 8) | p[i];
        *v = x;
    }
    c->off += n;
    return 0;
}

static int
cursor_u32(struct wire_cursor *c, uint32_t *v)
{
    uint64_t x;

    if (cursor_uint(c, &x) != 0 || x > UINT32_MAX)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

/* A str or bin (both are text on this wire).  @return 0 or -1. */
static int
cursor_str(struct wire_cursor *c, struct st_str *s)
{
    const unsigned char *p = c->p + c->off;
    size_t hdr, total = wire_fast_str(p, c->len - c->off, &hdr);

    if (total == 0)
        return -1;
    s->p = (const char *)p + hdr;
    s->n = total - hdr;
    c->off += total;
    return 0;
}

/* An array header.  @return 0 or -1. */
static int
cursor_array(struct wire_cursor *c, size_t *count)
{
    const unsigned char *p = c->p + c->off;
    size_t avail = c->len - c->off;

    if (avail == 0)
        return -1;
    if (p[0] >= 0x90 && p[0] <= 0x9f) {
        *count = p[0] & 0x0f;
        c->off++;
    }
    else if (p[0] == 0xdc && avail >= 3) {
        *count = wire_be(p + 1, 2);
        c->off += 3;
    }
    else if (p[0] == 0xdd && avail >= 5) {
        *count = wire_be(p + 1, 4);
        c->off += 5;
    }
    else {
        return -1;
    }
    /* Each element takes at least one byte. */
    return *count <= c->len - c->off ? 0 : -1;
}

/* A diff, as decode_diff() reads it.  @return 0, ST_ENOMEM or -1. */
static int
cursor_diff(struct wire_decoder_diff_out *out, struct st_wire_decoder *d,
            struct wire_cursor *c, size_t *used)
{
    struct st_wire_var *vars;
    size_t n, i;

    out->count = 0;
    if (c->off < c->len && c->p[c->off] == 0xc0) {
        c->off++;
        out->has = 0;
        return 0;
    }
    if (cursor_array(c, &n) != 0)
        return -1;
    out->has = 1;
    vars = st_grow(d->vars, &d->vars_cap, *used + n, sizeof(*vars), 16);
    if (vars == NULL)
        return ST_ENOMEM;
    d->vars = vars;
    for (i = 0; i < n; i++) {
        struct st_wire_var *v = &d->vars[*used + i];
        size_t k;

        if (cursor_array(c, &k) != 0 || (k != 1 && k != 3))
            return -1;
        memset(v, 0, sizeof(*v));
        if (cursor_u32(c, &v->name_sid) != 0)
            return -1;
        if (k == 1)
            v->deleted = 1;
        else if (cursor_u32(c, &v->type_sid) != 0 ||
                 cursor_str(c, &v->value) != 0)
            return -1;
    }
    out->count = n;
    *used += n;
    return 0;
}

/*
 * Decodes a STEP at d->off directly.  @return 1 (decoded, d->off moved
 * past it), ST_ENOMEM, or 0: not a STEP in the forms this reads, nothing
 * moved; msgpack-c decides.
 */
static int
wire_decode_step(struct st_wire_decoder *d, struct st_msg *m)
{
    struct wire_cursor c;
    struct wire_decoder_diff_out g, l;
    size_t used = 0;
    int r;

    c.p = (const unsigned char *)d->data;
    c.len = d->len;
    c.off = d->off;
    if (c.len - c.off >= 2 && c.p[c.off] == (0x90 | 4) &&
        c.p[c.off + 1] == ST_MSG_LINE) {
        uint64_t units;

        c.off += 2;
        memset(m, 0, sizeof(*m));
        m->type = ST_MSG_LINE;
        if (cursor_u32(&c, &m->u.step.frame_id) != 0 ||
            cursor_u32(&c, &m->u.step.lineno) != 0 ||
            cursor_uint(&c, &units) != 0 ||
            line_runtime(units, &m->u.step.runtime_ns) != 0)
            return 0;
        d->off = c.off;
        return 1;
    }
    if (c.len - c.off < 2 || c.p[c.off] != (0x90 | 7) ||
        c.p[c.off + 1] != ST_MSG_STEP)
        return 0;
    c.off += 2;
    memset(m, 0, sizeof(*m));
    m->type = ST_MSG_STEP;
    if (cursor_u32(&c, &m->u.step.region_id) != 0 ||
        cursor_u32(&c, &m->u.step.frame_id) != 0 ||
        cursor_u32(&c, &m->u.step.lineno) != 0 ||
        cursor_uint(&c, &m->u.step.runtime_ns) != 0)
        return 0;
    r = cursor_diff(&g, d, &c, &used);
    if (r == 0)
        r = cursor_diff(&l, d, &c, &used);
    if (r != 0)
        return r == ST_ENOMEM ? ST_ENOMEM : 0;
    m->u.step.has_globals = g.has;
    m->u.step.nglobals = g.count;
    m->u.step.has_locals = l.has;
    m->u.step.nlocals = l.count;
    /* As decode_fields(): the pointers once the scratch is final. */
    m->u.step.globals = d->vars;
    m->u.step.locals = d->vars + g.count;
    d->off = c.off;
    return 1;
}

int
st_wire_decode_next(struct st_wire_decoder *d, struct st_msg *m)
{
    msgpack_unpack_return ret;
    msgpack_object obj;
    const msgpack_object *o = &obj;
    uint64_t type;
    int r;

    if (d->off >= d->len)
        return 0;
    r = wire_decode_step(d, m);
    if (r != 0)
        return r;
    /* One zone for the decoder's life, emptied before each message: its
     * first chunk is reused, so a message costs no allocation. */
    if (!d->zone_ready) {
        if (!msgpack_zone_init(&d->zone, MSGPACK_ZONE_CHUNK_SIZE))
            return ST_ENOMEM;
        d->zone_ready = 1;
    }
    else {
        msgpack_zone_clear(&d->zone);
    }
    ret = msgpack_unpack(d->data, d->len, &d->off, &d->zone, &obj);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
        return ST_ENOMEM;
    if (ret != MSGPACK_UNPACK_SUCCESS && ret != MSGPACK_UNPACK_EXTRA_BYTES)
        return ST_EMALFORMED;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0)
        return ST_EBADMSG;
    if (get_u64(&o->via.array.ptr[0], &type) != 0)
        return ST_EBADMSG;
    memset(m, 0, sizeof(*m));
    m->type = (int)(type > 255 ? 0 : type);
    if (msg_nfields(m->type) == 0 ||
        msg_nfields(m->type) != o->via.array.size)
        return ST_EBADMSG;
    /* Pass decode_fields()'s code through: ST_ENOMEM is not the peer's
     * fault, and a diff entry of the wrong length is ST_EBADMSG. */
    if (m->type >= ST_MSG_STATUS && m->type <= ST_MSG_TEXT)
        r = decode_control(d, o->via.array.ptr, m);
    else
        r = decode_fields(d, o->via.array.ptr, m);
    return r == 0 ? 1 : r;
}

/* ---- Encoders ---- */

static int
pack_head(msgpack_packer *pk, int type)
{
    size_t n = msg_nfields(type);

    if (msgpack_pack_array(pk, n) != 0)
        return -1;
    return msgpack_pack_uint8(pk, (uint8_t)type);
}

static int
pack_bytes(msgpack_packer *pk, const char *s, size_t n)
{
    if (msgpack_pack_str(pk, n) != 0)
        return -1;
    return msgpack_pack_str_body(pk, s, n);
}

int
st_wire_pack_hello(msgpack_packer *pk, uint64_t pid, const char *prog,
                   size_t prog_len, uint64_t ring_bytes)
{
    if (pack_head(pk, ST_MSG_HELLO) || msgpack_pack_uint32(pk, ST_WIRE_VERSION)
        || msgpack_pack_uint64(pk, pid) || pack_bytes(pk, prog, prog_len))
        return -1;
    return msgpack_pack_uint64(pk, ring_bytes);
}

int
st_wire_pack_str(msgpack_packer *pk, uint32_t sid, const char *s, size_t n)
{
    if (pack_head(pk, ST_MSG_STR) || msgpack_pack_uint32(pk, sid))
        return -1;
    return pack_bytes(pk, s, n);
}

int
st_wire_pack_region(msgpack_packer *pk, uint32_t region_id,
                    uint32_t tracer_id, const char *log_dir,
                    size_t log_dir_len, uint32_t level, uint32_t var_mode,
                    uint64_t max_log_bytes, uint32_t max_log_files)
{
    if (pack_head(pk, ST_MSG_REGION) || msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint32(pk, tracer_id) ||
        pack_bytes(pk, log_dir, log_dir_len) ||
        msgpack_pack_uint32(pk, level) || msgpack_pack_uint32(pk, var_mode) ||
        msgpack_pack_uint64(pk, max_log_bytes))
        return -1;
    return msgpack_pack_uint32(pk, max_log_files);
}

int
st_wire_pack_thread(msgpack_packer *pk, uint32_t tid, uint32_t name_sid)
{
    if (pack_head(pk, ST_MSG_THREAD) || msgpack_pack_uint32(pk, tid))
        return -1;
    return msgpack_pack_uint32(pk, name_sid);
}

/* FRAME's scope and flags field: the scope id and the module bit. */
static uint64_t
frame_scope_flags(uint32_t scope_id, uint32_t flags)
{
    return (uint64_t)scope_id << 1 | (flags & ST_FRAME_MODULE);
}

int
st_wire_pack_frame(msgpack_packer *pk, uint32_t frame_id, uint32_t tid,
                   uint32_t parent_id, uint32_t file_sid, uint32_t func_sid,
                   uint32_t scope_id, uint32_t flags, uint32_t region_id)
{
    if (pack_head(pk, ST_MSG_FRAME) || msgpack_pack_uint32(pk, frame_id) ||
        msgpack_pack_uint32(pk, tid) || msgpack_pack_uint32(pk, parent_id) ||
        msgpack_pack_uint32(pk, file_sid) || msgpack_pack_uint32(pk, func_sid)
        || msgpack_pack_uint64(pk, frame_scope_flags(scope_id, flags)))
        return -1;
    return msgpack_pack_uint32(pk, region_id);
}

/* ns to the 100 ns units of a LINE, half up, as the log rounds. */
static uint64_t
line_units(uint64_t ns)
{
    return ns / 100 + (ns % 100 >= 50);
}

int
st_wire_pack_line(msgpack_packer *pk, uint32_t frame_id, uint32_t lineno,
                  uint64_t runtime_ns)
{
    if (pack_head(pk, ST_MSG_LINE) || msgpack_pack_uint32(pk, frame_id) ||
        msgpack_pack_uint32(pk, lineno))
        return -1;
    return msgpack_pack_uint64(pk, line_units(runtime_ns));
}

int
st_wire_pack_step_begin(msgpack_packer *pk, uint32_t region_id,
                        uint32_t frame_id, uint32_t lineno,
                        uint64_t runtime_ns)
{
    if (pack_head(pk, ST_MSG_STEP) || msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint32(pk, frame_id) || msgpack_pack_uint32(pk, lineno))
        return -1;
    return msgpack_pack_uint64(pk, runtime_ns);
}

/* The smallest msgpack form of an unsigned integer, as msgpack-c picks. */
static size_t
wire_put_uint(unsigned char *p, uint64_t v)
{
    int i, n;

    if (v < 128) {
        p[0] = (unsigned char)v;
        return 1;
    }
    if (v <= UINT8_MAX) {
        p[0] = 0xcc;
        n = 1;
    }
    else if (v <= UINT16_MAX) {
        p[0] = 0xcd;
        n = 2;
    }
    else if (v <= UINT32_MAX) {
        p[0] = 0xce;
        n = 4;
    }
    else {
        p[0] = 0xcf;
        n = 8;
    }
    for (i = n; i >= 1; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
    return (size_t)n + 1;
}

/*
 * The direct encoders' common part: a fixarray head of `count` elements,
 * the message type (none when type < 0) and n unsigned integers, in the
 * smallest forms, as the msgpack-c packer writes them, with one check for
 * room.  The caller writes the rest of the array (if any) after them.
 */
static int
wire_put_uints(struct st_buf *b, unsigned count, int type,
               const uint64_t *v, size_t n)
{
    unsigned char *p;
    size_t o = 0, i;

    if (st_buf_reserve(b, 2 + 9 * n) != 0)
        return ST_ENOMEM;
    p = (unsigned char *)b->data + b->len;
    p[o++] = (unsigned char)(0x90 | count);
    if (type >= 0)
        p[o++] = (unsigned char)type;
    for (i = 0; i < n; i++)
        o += wire_put_uint(p + o, v[i]);
    b->len += o;
    return 0;
}

int
st_wire_put_step_head(struct st_buf *b, uint32_t region_id,
                      uint32_t frame_id, uint32_t lineno, uint64_t runtime_ns)
{
    const uint64_t v[4] = {region_id, frame_id, lineno, runtime_ns};

    /* The diffs, the 6th and 7th elements, follow. */
    return wire_put_uints(b, 7, ST_MSG_STEP, v, 4);
}

int
st_wire_put_frame(struct st_buf *b, uint32_t frame_id, uint32_t tid,
                  uint32_t parent_id, uint32_t file_sid, uint32_t func_sid,
                  uint32_t scope_id, uint32_t flags, uint32_t region_id)
{
    const uint64_t v[7] = {frame_id, tid, parent_id, file_sid, func_sid,
                           frame_scope_flags(scope_id, flags), region_id};

    return wire_put_uints(b, 8, ST_MSG_FRAME, v, 7);
}

/* An array or str head of n as msgpack-c writes it (fix, 8-bit for str
 * only, 16-bit, 32-bit).  @return the bytes written (at most 5). */
static size_t
wire_put_head(unsigned char *p, size_t n, int str)
{
    if (n < (str ? 32u : 16u)) {
        p[0] = (unsigned char)((str ? 0xa0 : 0x90) | n);
        return 1;
    }
    if (str && n < 256) {
        p[0] = 0xd9;
        p[1] = (unsigned char)n;
        return 2;
    }
    if (n < 65536) {
        p[0] = str ? 0xda : 0xdc;
        p[1] = (unsigned char)(n >> 8);
        p[2] = (unsigned char)n;
        return 3;
    }
    p[0] = str ? 0xdb : 0xdd;
    p[1] = (unsigned char)(n >> 24);
    p[2] = (unsigned char)(n >> 16);
    p[3] = (unsigned char)(n >> 8);
    p[4] = (unsigned char)n;
    return 5;
}

int
st_wire_put_diff_begin(struct st_buf *b, size_t n)
{
    if (st_buf_reserve(b, 5) != 0)
        return ST_ENOMEM;
    b->len += wire_put_head((unsigned char *)b->data + b->len, n, 0);
    return 0;
}

int
st_wire_put_var_set(struct st_buf *b, uint32_t name_sid, uint32_t type_sid,
                    const char *value, size_t n)
{
    const uint64_t v[2] = {name_sid, type_sid};

    if (n > UINT32_MAX || st_buf_reserve(b, 16 + n) != 0 ||
        wire_put_uints(b, 3, -1, v, 2) != 0)
        return ST_ENOMEM;
    b->len += wire_put_head((unsigned char *)b->data + b->len, n, 1);
    if (n > 0)
        memcpy(b->data + b->len, value, n);
    b->len += n;
    return 0;
}

int
st_wire_put_var_del(struct st_buf *b, uint32_t name_sid)
{
    const uint64_t v[1] = {name_sid};

    return wire_put_uints(b, 1, -1, v, 1);
}

int
st_wire_put_line(struct st_buf *b, uint32_t frame_id, uint32_t lineno,
                 uint64_t runtime_ns)
{
    const uint64_t v[3] = {frame_id, lineno, line_units(runtime_ns)};

    return wire_put_uints(b, 4, ST_MSG_LINE, v, 3);
}

int
st_wire_put_frame_end(struct st_buf *b, uint32_t frame_id)
{
    const uint64_t v[1] = {frame_id};

    return wire_put_uints(b, 2, ST_MSG_FRAME_END, v, 1);
}

int
st_wire_put_nil(struct st_buf *b)
{
    return st_buf_append(b, "\xc0", 1);
}

int
st_wire_pack_nil(msgpack_packer *pk)
{
    return msgpack_pack_nil(pk);
}

int
st_wire_pack_diff_begin(msgpack_packer *pk, size_t n)
{
    return msgpack_pack_array(pk, n);
}

int
st_wire_pack_var_set(msgpack_packer *pk, uint32_t name_sid,
                     uint32_t type_sid, const char *value, size_t n)
{
    if (msgpack_pack_array(pk, 3) || msgpack_pack_uint32(pk, name_sid) ||
        msgpack_pack_uint32(pk, type_sid))
        return -1;
    return pack_bytes(pk, value, n);
}

int
st_wire_pack_var_del(msgpack_packer *pk, uint32_t name_sid)
{
    if (msgpack_pack_array(pk, 1))
        return -1;
    return msgpack_pack_uint32(pk, name_sid);
}

int
st_wire_pack_frame_end(msgpack_packer *pk, uint32_t frame_id)
{
    if (pack_head(pk, ST_MSG_FRAME_END))
        return -1;
    return msgpack_pack_uint32(pk, frame_id);
}

int
st_wire_pack_region_end(msgpack_packer *pk, uint32_t region_id)
{
    if (pack_head(pk, ST_MSG_REGION_END))
        return -1;
    return msgpack_pack_uint32(pk, region_id);
}

int
st_wire_pack_flush(msgpack_packer *pk, uint64_t token)
{
    if (pack_head(pk, ST_MSG_FLUSH))
        return -1;
    return msgpack_pack_uint64(pk, token);
}

int
st_wire_pack_lost(msgpack_packer *pk, uint32_t region_id, uint64_t count)
{
    if (pack_head(pk, ST_MSG_LOST) || msgpack_pack_uint32(pk, region_id))
        return -1;
    return msgpack_pack_uint64(pk, count);
}

int
st_wire_pack_note(msgpack_packer *pk, uint32_t region_id, uint32_t kind,
                  const char *text, size_t n)
{
    if (pack_head(pk, ST_MSG_NOTE) || msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint32(pk, kind))
        return -1;
    return pack_bytes(pk, text, n);
}

int
st_wire_pack_file(msgpack_packer *pk, uint32_t tracer_id, const char *path,
                  size_t n)
{
    if (pack_head(pk, ST_MSG_FILE) || msgpack_pack_uint32(pk, tracer_id))
        return -1;
    return pack_bytes(pk, path, n);
}

int
st_wire_pack_event(msgpack_packer *pk, uint32_t region_id, uint32_t frame_id,
                   uint32_t lineno, uint64_t runtime_ns, uint32_t kind,
                   const char *detail, size_t n)
{
    if (pack_head(pk, ST_MSG_EVENT) || msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint32(pk, frame_id) || msgpack_pack_uint32(pk, lineno)
        || msgpack_pack_uint64(pk, runtime_ns) ||
        msgpack_pack_uint32(pk, kind))
        return -1;
    return pack_bytes(pk, detail, n);
}

int
st_wire_pack_ack(msgpack_packer *pk, uint64_t token, uint64_t errors,
                 const char *msg, size_t n)
{
    if (pack_head(pk, ST_MSG_ACK) || msgpack_pack_uint64(pk, token) ||
        msgpack_pack_uint64(pk, errors))
        return -1;
    if (msg == NULL)
        return msgpack_pack_nil(pk);
    return pack_bytes(pk, msg, n);
}

int
st_wire_pack_async(msgpack_packer *pk, uint32_t region_id, uint64_t time_ns,
                   uint32_t kind, const char *body, size_t n)
{
    if (pack_head(pk, ST_MSG_ASYNC) || msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint64(pk, time_ns) || msgpack_pack_uint32(pk, kind))
        return -1;
    return pack_bytes(pk, body, n);
}

int
st_wire_pack_status(msgpack_packer *pk, uint64_t token)
{
    if (pack_head(pk, ST_MSG_STATUS))
        return -1;
    return msgpack_pack_uint64(pk, token);
}

int
st_wire_pack_stats_begin(msgpack_packer *pk, uint64_t token, size_t n)
{
    if (pack_head(pk, ST_MSG_STATS) || msgpack_pack_uint64(pk, token))
        return -1;
    return msgpack_pack_array(pk, n);
}

int
st_wire_pack_counter(msgpack_packer *pk, const char *name, uint64_t value)
{
    if (msgpack_pack_array(pk, 2) || pack_bytes(pk, name, strlen(name)))
        return -1;
    return msgpack_pack_uint64(pk, value);
}

int
st_wire_pack_tail(msgpack_packer *pk, uint64_t pid, const char *glob,
                  size_t n)
{
    if (pack_head(pk, ST_MSG_TAIL) || msgpack_pack_uint64(pk, pid))
        return -1;
    return pack_bytes(pk, glob, n);
}

int
st_wire_pack_text(msgpack_packer *pk, uint64_t pid, const char *path,
                  size_t path_len, const char *text, size_t text_len)
{
    if (pack_head(pk, ST_MSG_TEXT) || msgpack_pack_uint64(pk, pid) ||
        pack_bytes(pk, path, path_len))
        return -1;
    return pack_bytes(pk, text, text_len);
}

void
st_wire_put_skip_head(unsigned char *p, uint32_t n)
{
    p[0] = 0x92;
    p[1] = ST_MSG_SKIP;
    p[2] = 0xc6;
    st_wire_put_header(p + 3, n);
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
