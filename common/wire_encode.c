/*
 * The wire encoders (steptrace/wire.h): the frame and SKIP heads, the
 * msgpack-c encoders of the messages the agent, the collector and a
 * control client send (st_wire_pack_*), and the agent's per-line messages
 * written straight into a struct st_buf (st_wire_put_*), byte for byte as
 * msgpack-c would write them.  Nothing here keeps a pointer: the packer
 * and the buffer are the caller's.  The msgpack-c twins of the
 * st_wire_put_* encoders, which only the tests and the load generator
 * use, are in tests/wire-pack.c.
 */
#include "steptrace/wire.h"

#include <string.h>

#include "wire_int.h"
#include "steptrace/error.h"

void
st_wire_put_header(unsigned char hdr[ST_WIRE_HEADER_SIZE], uint32_t len)
{
    hdr[0] = (unsigned char)(len >> 24);
    hdr[1] = (unsigned char)(len >> 16);
    hdr[2] = (unsigned char)(len >> 8);
    hdr[3] = (unsigned char)len;
}

void
st_wire_put_skip_head(unsigned char *p, uint32_t n)
{
    p[0] = 0x92;
    p[1] = ST_MSG_SKIP;
    p[2] = 0xc6;
    st_wire_put_header(p + 3, n);
}

/* ---- Through a msgpack-c packer ---- */

int
st__wire_pack_head(msgpack_packer *pk, int type)
{
    size_t n = st__wire_nfields(type);

    if (msgpack_pack_array(pk, n) != 0)
        return -1;
    return msgpack_pack_uint8(pk, (uint8_t)type);
}

int
st__wire_pack_bytes(msgpack_packer *pk, const char *s, size_t n)
{
    if (msgpack_pack_str(pk, n) != 0)
        return -1;
    return msgpack_pack_str_body(pk, s, n);
}

int
st_wire_pack_hello(msgpack_packer *pk, uint64_t pid, const char *prog,
                   size_t prog_len, uint64_t ring_bytes, uint32_t formats)
{
    if (st__wire_pack_head(pk, ST_MSG_HELLO) ||
        msgpack_pack_uint32(pk, ST_WIRE_VERSION) ||
        msgpack_pack_uint64(pk, pid) ||
        st__wire_pack_bytes(pk, prog, prog_len) ||
        msgpack_pack_uint64(pk, ring_bytes))
        return -1;
    return msgpack_pack_uint32(pk, formats);
}

int
st_wire_pack_str(msgpack_packer *pk, uint32_t sid, const char *s, size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_STR) || msgpack_pack_uint32(pk, sid))
        return -1;
    return st__wire_pack_bytes(pk, s, n);
}

int
st_wire_pack_region(msgpack_packer *pk, uint32_t region_id, uint32_t tracer_id,
                    const char *log_dir, size_t log_dir_len, uint32_t level,
                    uint32_t var_mode, uint64_t max_log_bytes,
                    uint32_t max_log_files, uint32_t formats)
{
    if (st__wire_pack_head(pk, ST_MSG_REGION) ||
        msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint32(pk, tracer_id) ||
        st__wire_pack_bytes(pk, log_dir, log_dir_len) ||
        msgpack_pack_uint32(pk, level) || msgpack_pack_uint32(pk, var_mode) ||
        msgpack_pack_uint64(pk, max_log_bytes) ||
        msgpack_pack_uint32(pk, max_log_files))
        return -1;
    return msgpack_pack_uint32(pk, formats);
}

int
st_wire_pack_thread(msgpack_packer *pk, uint32_t tid, uint32_t name_sid)
{
    if (st__wire_pack_head(pk, ST_MSG_THREAD) || msgpack_pack_uint32(pk, tid))
        return -1;
    return msgpack_pack_uint32(pk, name_sid);
}

int
st_wire_pack_region_end(msgpack_packer *pk, uint32_t region_id)
{
    if (st__wire_pack_head(pk, ST_MSG_REGION_END))
        return -1;
    return msgpack_pack_uint32(pk, region_id);
}

int
st_wire_pack_flush(msgpack_packer *pk, uint64_t token)
{
    if (st__wire_pack_head(pk, ST_MSG_FLUSH))
        return -1;
    return msgpack_pack_uint64(pk, token);
}

int
st_wire_pack_note(msgpack_packer *pk, uint32_t region_id, uint32_t kind,
                  const char *text, size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_NOTE) ||
        msgpack_pack_uint32(pk, region_id) || msgpack_pack_uint32(pk, kind))
        return -1;
    return st__wire_pack_bytes(pk, text, n);
}

int
st_wire_pack_file(msgpack_packer *pk, uint32_t tracer_id, const char *path,
                  size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_FILE) ||
        msgpack_pack_uint32(pk, tracer_id))
        return -1;
    return st__wire_pack_bytes(pk, path, n);
}

int
st_wire_pack_lost(msgpack_packer *pk, uint32_t region_id, uint64_t count)
{
    if (st__wire_pack_head(pk, ST_MSG_LOST) ||
        msgpack_pack_uint32(pk, region_id))
        return -1;
    return msgpack_pack_uint64(pk, count);
}

int
st_wire_pack_event(msgpack_packer *pk, uint32_t region_id, uint32_t frame_id,
                   uint32_t lineno, uint64_t runtime_ns, uint32_t kind,
                   const char *detail, size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_EVENT) ||
        msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint32(pk, frame_id) || msgpack_pack_uint32(pk, lineno) ||
        msgpack_pack_uint64(pk, runtime_ns) || msgpack_pack_uint32(pk, kind))
        return -1;
    return st__wire_pack_bytes(pk, detail, n);
}

int
st_wire_pack_ack(msgpack_packer *pk, uint64_t token, uint64_t errors,
                 const char *msg, size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_ACK) || msgpack_pack_uint64(pk, token) ||
        msgpack_pack_uint64(pk, errors))
        return -1;
    if (msg == NULL)
        return msgpack_pack_nil(pk);
    return st__wire_pack_bytes(pk, msg, n);
}

int
st_wire_pack_async(msgpack_packer *pk, uint32_t region_id, uint64_t time_ns,
                   uint32_t kind, const char *body, size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_ASYNC) ||
        msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint64(pk, time_ns) || msgpack_pack_uint32(pk, kind))
        return -1;
    return st__wire_pack_bytes(pk, body, n);
}

int
st_wire_pack_status(msgpack_packer *pk, uint64_t token)
{
    if (st__wire_pack_head(pk, ST_MSG_STATUS))
        return -1;
    return msgpack_pack_uint64(pk, token);
}

int
st_wire_pack_stats_begin(msgpack_packer *pk, uint64_t token, size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_STATS) || msgpack_pack_uint64(pk, token))
        return -1;
    return msgpack_pack_array(pk, n);
}

int
st_wire_pack_counter(msgpack_packer *pk, const char *name, uint64_t value)
{
    if (msgpack_pack_array(pk, 2) ||
        st__wire_pack_bytes(pk, name, strlen(name)))
        return -1;
    return msgpack_pack_uint64(pk, value);
}

int
st_wire_pack_tail(msgpack_packer *pk, uint64_t pid, const char *glob, size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_TAIL) || msgpack_pack_uint64(pk, pid))
        return -1;
    return st__wire_pack_bytes(pk, glob, n);
}

int
st_wire_pack_text(msgpack_packer *pk, uint64_t pid, const char *path,
                  size_t path_len, const char *text, size_t text_len)
{
    if (st__wire_pack_head(pk, ST_MSG_TEXT) || msgpack_pack_uint64(pk, pid) ||
        st__wire_pack_bytes(pk, path, path_len))
        return -1;
    return st__wire_pack_bytes(pk, text, text_len);
}

/* ---- Straight into a buffer ---- */

/* The smallest msgpack form of an unsigned integer, as msgpack-c picks. */
static inline size_t
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
static inline __attribute__((always_inline)) int
wire_put_uints(struct st_buf *b, unsigned count, int type, const uint64_t *v,
               size_t n)
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
st_wire_put_step_head(struct st_buf *b, uint32_t region_id, uint32_t frame_id,
                      uint32_t lineno, uint64_t runtime_ns)
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
    const uint64_t v[7] = {frame_id,  tid,
                           parent_id, file_sid,
                           func_sid,  wire_scope_flags(scope_id, flags),
                           region_id};

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
st_wire_put_event(struct st_buf *b, uint32_t region_id, uint32_t frame_id,
                  uint32_t lineno, uint64_t runtime_ns, uint32_t kind,
                  const char *detail, size_t n)
{
    const uint64_t v[5] = {region_id, frame_id, lineno, runtime_ns, kind};

    if (n > UINT32_MAX || st_buf_reserve(b, 56 + n) != 0 ||
        wire_put_uints(b, 7, ST_MSG_EVENT, v, 5) != 0)
        return ST_ENOMEM;
    b->len += wire_put_head((unsigned char *)b->data + b->len, n, 1);
    if (n > 0)
        memcpy(b->data + b->len, detail, n);
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
    const uint64_t v[3] = {frame_id, lineno, wire_line_units(runtime_ns)};

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

/* ---- The step store's own records ---- */

int
st_wire_pack_store(msgpack_packer *pk, uint32_t version, uint64_t pid,
                   const char *program, size_t program_len, const char *argv,
                   size_t argv_len, uint64_t start_ns, const char *host,
                   size_t host_len, uint32_t tracer_id)
{
    if (st__wire_pack_head(pk, ST_MSG_STORE) ||
        msgpack_pack_uint32(pk, version) || msgpack_pack_uint64(pk, pid) ||
        st__wire_pack_bytes(pk, program, program_len) ||
        st__wire_pack_bytes(pk, argv, argv_len) ||
        msgpack_pack_uint64(pk, start_ns) ||
        st__wire_pack_bytes(pk, host, host_len))
        return -1;
    return msgpack_pack_uint32(pk, tracer_id);
}

int
st_wire_pack_rstate(msgpack_packer *pk, uint32_t region_id, uint64_t steps,
                    uint64_t async_steps, uint64_t lost, uint32_t first_tid,
                    uint32_t flags)
{
    if (st__wire_pack_head(pk, ST_MSG_RSTATE) ||
        msgpack_pack_uint32(pk, region_id) || msgpack_pack_uint64(pk, steps) ||
        msgpack_pack_uint64(pk, async_steps) ||
        msgpack_pack_uint64(pk, lost) || msgpack_pack_uint32(pk, first_tid))
        return -1;
    return msgpack_pack_uint32(pk, flags);
}

int
st_wire_put_vars_head(struct st_buf *b, uint32_t kind, uint32_t id,
                      uint32_t last_line)
{
    const uint64_t v[3] = {kind, id, last_line};

    /* The diff, the 5th element, follows. */
    return wire_put_uints(b, 5, ST_MSG_VARS, v, 3);
}

int
st_wire_pack_ended(msgpack_packer *pk, uint32_t kind, uint32_t sig,
                   const char *detail, size_t n, uint64_t partial)
{
    if (st__wire_pack_head(pk, ST_MSG_ENDED) ||
        msgpack_pack_uint32(pk, kind) || msgpack_pack_uint32(pk, sig) ||
        st__wire_pack_bytes(pk, detail, n))
        return -1;
    return msgpack_pack_uint64(pk, partial);
}

int
st_wire_pack_slost(msgpack_packer *pk, uint64_t count, const char *why,
                   size_t n)
{
    if (st__wire_pack_head(pk, ST_MSG_SLOST) || msgpack_pack_uint64(pk, count))
        return -1;
    return st__wire_pack_bytes(pk, why, n);
}
