/*
 * The msgpack-c encoders of the agent's per-line messages, for the tests
 * and the load generator; see wire-pack.h.  They share the library's
 * message heads and field rules (common/wire_int.h), so what they write
 * is what the protocol says, through msgpack-c's packer.
 */
#include "wire-pack.h"

#include "../common/wire_int.h"

int
st_wire_pack_frame(msgpack_packer *pk, uint32_t frame_id, uint32_t tid,
                   uint32_t parent_id, uint32_t file_sid, uint32_t func_sid,
                   uint32_t scope_id, uint32_t flags, uint32_t region_id)
{
    if (st__wire_pack_head(pk, ST_MSG_FRAME) ||
        msgpack_pack_uint32(pk, frame_id) || msgpack_pack_uint32(pk, tid) ||
        msgpack_pack_uint32(pk, parent_id) ||
        msgpack_pack_uint32(pk, file_sid) ||
        msgpack_pack_uint32(pk, func_sid) ||
        msgpack_pack_uint64(pk, wire_scope_flags(scope_id, flags)))
        return -1;
    return msgpack_pack_uint32(pk, region_id);
}

int
st_wire_pack_frame_end(msgpack_packer *pk, uint32_t frame_id)
{
    if (st__wire_pack_head(pk, ST_MSG_FRAME_END))
        return -1;
    return msgpack_pack_uint32(pk, frame_id);
}

int
st_wire_pack_line(msgpack_packer *pk, uint32_t frame_id, uint32_t lineno,
                  uint64_t runtime_ns)
{
    if (st__wire_pack_head(pk, ST_MSG_LINE) ||
        msgpack_pack_uint32(pk, frame_id) || msgpack_pack_uint32(pk, lineno))
        return -1;
    return msgpack_pack_uint64(pk, wire_line_units(runtime_ns));
}

int
st_wire_pack_step_begin(msgpack_packer *pk, uint32_t region_id,
                        uint32_t frame_id, uint32_t lineno,
                        uint64_t runtime_ns)
{
    if (st__wire_pack_head(pk, ST_MSG_STEP) ||
        msgpack_pack_uint32(pk, region_id) ||
        msgpack_pack_uint32(pk, frame_id) || msgpack_pack_uint32(pk, lineno))
        return -1;
    return msgpack_pack_uint64(pk, runtime_ns);
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
st_wire_pack_var_set(msgpack_packer *pk, uint32_t name_sid, uint32_t type_sid,
                     const char *value, size_t n)
{
    if (msgpack_pack_array(pk, 3) || msgpack_pack_uint32(pk, name_sid) ||
        msgpack_pack_uint32(pk, type_sid))
        return -1;
    return st__wire_pack_bytes(pk, value, n);
}

int
st_wire_pack_var_del(msgpack_packer *pk, uint32_t name_sid)
{
    if (msgpack_pack_array(pk, 1))
        return -1;
    return msgpack_pack_uint32(pk, name_sid);
}
