/*
 * What the files of the wire code share, and nothing else uses but the
 * msgpack-c encoders of the tests and the load generator
 * (tests/wire-pack.c), which must write what the library writes:
 *
 *   wire_validate.c     frames and bytes checked before msgpack-c sees
 *                       them; owns the table of field counts
 *   wire_decode.c       the decoder: its state, and msgpack-c's path
 *   wire_decode_step.c  the decoder's direct STEP and LINE path
 *   wire_encode.c       the encoders: st_wire_put_* and st_wire_pack_*
 *
 * The byte readers below are static inline because the validator's and
 * the decoder's STEP paths call them for every field of every step.
 * Nothing here allocates or keeps a pointer.
 */
#ifndef STEPTRACE_COMMON_WIRE_INT_H
#define STEPTRACE_COMMON_WIRE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

/* Most fields of any message, the type included (REGION). */
#define ST_WIRE_MAX_FIELDS 9

/*
 * The field count of message type `type`, the type included, from
 * ST_MSG_MAP.  @return 0 when `type` is no message type.
 */
size_t st__wire_nfields(int type);

/*
 * Decodes a STEP or a LINE at d->off straight from the bytes, the first
 * path of st_wire_decode_next().  Diff entries go into the decoder's
 * scratch; strings are borrowed from the frame.
 * @return 1 (decoded, d->off moved past it), ST_ENOMEM, or 0: not a STEP
 *         or LINE in the forms it reads, d->off not moved; msgpack-c
 *         decides.
 */
int st__wire_decode_step(struct st_wire_decoder *d, struct st_msg *m);

/*
 * Starts a message of `type` through a packer: the array head of its
 * field count and the type.  @return 0, or -1 when the packer failed.
 */
int st__wire_pack_head(msgpack_packer *pk, int type);

/* Packs n bytes as a msgpack str.  @return 0, or -1. */
int st__wire_pack_bytes(msgpack_packer *pk, const char *s, size_t n);

/* FRAME's scope and flags field: the scope id and the module bit. */
static inline uint64_t
wire_scope_flags(uint32_t scope_id, uint32_t flags)
{
    return (uint64_t)scope_id << 1 | (flags & ST_FRAME_MODULE);
}

/* ns to the 100 ns units of a LINE, half up, as the log rounds. */
static inline uint64_t
wire_line_units(uint64_t ns)
{
    return ns / 100 + (ns % 100 >= 50);
}

/* A LINE's runtime units (100 ns) as ns.  @return 0, or ST_EBADTYPE for
 * one that overflows. */
static inline int
wire_line_runtime(uint64_t units, uint64_t *ns)
{
    if (units > UINT64_MAX / 100)
        return ST_EBADTYPE;
    *ns = units * 100;
    return 0;
}

/* Big-endian read of n (1, 2, 4) bytes. */
static inline uint32_t
wire_be(const unsigned char *p, int n)
{
    uint32_t v = 0;
    int i;

    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * An unsigned integer in any msgpack form at p[0..avail).  @return its
 * bytes in all, or 0 when it is not one or not all of it is there.
 */
static inline size_t
wire_fast_uint(const unsigned char *p, size_t avail)
{
    size_t w;

    if (avail == 0)
        return 0;
    if (p[0] <= 0x7f)
        return 1;
    /* A table of msgpack type bytes, one row per size. */
    /* clang-format off */
    switch (p[0]) {
    case 0xcc: w = 1; break;
    case 0xcd: w = 2; break;
    case 0xce: w = 4; break;
    case 0xcf: w = 8; break;
    default: return 0;
    }
    /* clang-format on */
    return w < avail ? 1 + w : 0;
}

/* A str or bin: @return its bytes in all (0: not one, or not all
 * there); *hdr, when given, the bytes of its head. */
static inline size_t
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
        /* A table of msgpack type bytes, one row per size. */
        /* clang-format off */
        switch (p[0]) {
        case 0xc4: case 0xd9: w = 1; break;
        case 0xc5: case 0xda: w = 2; break;
        case 0xc6: case 0xdb: w = 4; break;
        default: return 0;
        }
        /* clang-format on */
        if (w >= avail)
            return 0;
        n = wire_be(p + 1, (int)w);
    }
    if (hdr != NULL)
        *hdr = 1 + w;
    return n < avail - w ? 1 + w + n : 0;
}

/*
 * An array head at p[0..avail) in the forms msgpack-c writes (fixarray,
 * array16, array32).  @return the bytes of the head (*count its element
 * count), or 0 when it is not one or not all of it is there.
 */
static inline size_t
wire_fast_array(const unsigned char *p, size_t avail, size_t *count)
{
    if (avail == 0)
        return 0;
    if (p[0] >= 0x90 && p[0] <= 0x9f) {
        *count = p[0] & 0x0f;
        return 1;
    }
    if (p[0] == 0xdc && avail >= 3) {
        *count = wire_be(p + 1, 2);
        return 3;
    }
    if (p[0] == 0xdd && avail >= 5) {
        *count = wire_be(p + 1, 4);
        return 5;
    }
    return 0;
}

#endif /* STEPTRACE_COMMON_WIRE_INT_H */
