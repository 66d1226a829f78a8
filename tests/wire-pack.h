/*
 * The msgpack-c encoders of the agent's per-line messages (STEP, LINE,
 * FRAME, FRAME_END and the diffs), for the tests and the load generator
 * (bench/collector/loadgen.c), which build these messages through a
 * packer.  The agent writes them with the st_wire_put_* encoders of
 * steptrace/wire.h instead; tests/test-wire.c checks that both write the
 * same bytes.  Compiled into each test executable and into st-loadgen,
 * not into the library.
 *
 * Each appends one message (or part of one) through a msgpack_packer,
 * usually one writing into a struct st_buf with st_buf_msgpack_write,
 * and returns the packer's result: 0 on success.  Strings are copied.
 */
#ifndef STEPTRACE_TESTS_WIRE_PACK_H
#define STEPTRACE_TESTS_WIRE_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "steptrace/wire.h"

/* FRAME, as st_wire_put_frame(). */
int st_wire_pack_frame(msgpack_packer *pk, uint32_t frame_id, uint32_t tid,
                       uint32_t parent_id, uint32_t file_sid,
                       uint32_t func_sid, uint32_t scope_id, uint32_t flags,
                       uint32_t region_id);
int st_wire_pack_frame_end(msgpack_packer *pk, uint32_t frame_id);
/* LINE, as st_wire_put_line(): the runtime in units of 100 ns. */
int st_wire_pack_line(msgpack_packer *pk, uint32_t frame_id, uint32_t lineno,
                      uint64_t runtime_ns);
/*
 * Starts a STEP message; follow it with the globals diff and the locals
 * diff, each either st_wire_pack_nil() or st_wire_pack_diff_begin(n)
 * followed by n st_wire_pack_var_set / st_wire_pack_var_del calls.
 */
int st_wire_pack_step_begin(msgpack_packer *pk, uint32_t region_id,
                            uint32_t frame_id, uint32_t lineno,
                            uint64_t runtime_ns);
int st_wire_pack_nil(msgpack_packer *pk);
int st_wire_pack_diff_begin(msgpack_packer *pk, size_t n);
int st_wire_pack_var_set(msgpack_packer *pk, uint32_t name_sid,
                         uint32_t type_sid, const char *value, size_t n);
int st_wire_pack_var_del(msgpack_packer *pk, uint32_t name_sid);

#endif /* STEPTRACE_TESTS_WIRE_PACK_H */
