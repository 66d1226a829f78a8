/*
 * The steptrace wire protocol: framing, message types, encoding (msgpack-c
 * packer) and validated decoding.  docs/PROTOCOL.md is the prose form of
 * this header; keep the two in step.  Both the agent and the collector
 * link the one implementation, common/wire_*.c (validate, decode,
 * decode_step, encode), which share common/wire_int.h.
 *
 * A frame is a 4-byte big-endian payload length followed by the payload:
 * one or more msgpack arrays, each a message whose first element is the
 * message type.  Frames are validated by st_wire_validate() before msgpack-c
 * ever sees their bytes.
 */
#ifndef STEPTRACE_COMMON_WIRE_H
#define STEPTRACE_COMMON_WIRE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "steptrace/buf.h"

#define ST_WIRE_VERSION 5
#define ST_WIRE_HEADER_SIZE 4
/* Largest payload a frame may announce. */
#define ST_WIRE_MAX_FRAME (16u * 1024 * 1024)
/* Deepest msgpack nesting any message uses (message, diff, entry). */
#define ST_WIRE_MAX_DEPTH 4
/* Largest element count of any array or map inside a frame. */
#define ST_WIRE_MAX_COUNT (1u << 20)
/* Largest encoded variable value; the agent cuts longer ones. */
#define ST_WIRE_MAX_VALUE (4u * 1024 * 1024)

/* Message types (first element of every message): name, value and field
 * count, the type included.  Every table of the types comes from here. */
#define ST_MSG_MAP(XX)                                                        \
    XX(HELLO, 1, 6)                                                           \
    XX(STR, 2, 3)                                                             \
    XX(REGION, 3, 9)                                                          \
    XX(THREAD, 4, 3)                                                          \
    XX(FRAME, 5, 8)                                                           \
    XX(STEP, 6, 7)                                                            \
    XX(FRAME_END, 7, 2)                                                       \
    XX(REGION_END, 8, 2)                                                      \
    XX(FLUSH, 9, 2)                                                           \
    XX(LOST, 10, 3)                                                           \
    XX(EVENT, 11, 7)                                                          \
    XX(ACK, 12, 4)                                                            \
    XX(STATUS, 13, 2)                                                         \
    XX(STATS, 14, 3)                                                          \
    XX(TAIL, 15, 3)                                                           \
    XX(TEXT, 16, 4)                                                           \
    XX(ASYNC, 20, 5)                                                          \
    XX(LINE, 21, 4)                                                           \
    XX(SKIP, 22, 2)                                                           \
    XX(NOTE, 23, 4)                                                           \
    XX(FILE, 24, 3)                                                           \
    XX(STORE, 30, 8)                                                          \
    XX(RSTATE, 31, 7)                                                         \
    XX(VARS, 32, 5)                                                           \
    XX(ENDED, 33, 5)                                                          \
    XX(SLOST, 34, 3)

enum st_msg_type {
#define XX(name, val, nfields) ST_MSG_##name = val,
    ST_MSG_MAP(XX)
#undef XX
};

/* Variable modes and levels, with the values of the Python enums. */
/* The first type of the step store's own records (docs/STEP-STORE.md):
 * never sent on a connection, which rejects them. */
#define ST_MSG_STORE_FIRST_ ST_MSG_STORE

/* VARS: whose variables. */
enum st_vars_kind { ST_VARS_SCOPE = 1, ST_VARS_FRAME = 2, ST_VARS_MAX_ = 2 };

/* RSTATE flags. */
#define ST_RSTATE_SEEN_TID 1u
#define ST_RSTATE_MULTI_THREAD 2u

enum st_varmode {
    ST_VARMODE_ALL = 1,
    ST_VARMODE_CHANGED = 2,
    ST_VARMODE_NONE = 3
};
enum st_level {
    ST_LEVEL_DEBUG = 10,
    ST_LEVEL_INFO = 20,
    ST_LEVEL_WARNING = 30,
    ST_LEVEL_ERROR = 40,
    ST_LEVEL_SILENT = 50
};

/* EVENT kinds: records other than line steps. */
enum st_event {
    ST_EVENT_STEP = 0,       /* Not on the wire: a STEP message. */
    ST_EVENT_CALL = 1,       /* DEBUG: a traced frame starts. */
    ST_EVENT_RETURN = 2,     /* DEBUG: it returns; detail = str(value). */
    ST_EVENT_RETURN_EXC = 3, /* DEBUG: it ends by an exception. */
    ST_EVENT_EXCEPTION = 4,  /* DEBUG..ERROR: raised; detail "T: msg". */
    ST_EVENT_MAX_ = 4
};

/* NOTE kinds: a line of the collector's in a region's log. */
enum st_note {
    ST_NOTE_LINE = 1,    /* "[steptrace] TEXT" */
    ST_NOTE_AT_STEP = 2, /* "[steptrace] step N TEXT", N the last
                            step written: the one whose line runs. */
    ST_NOTE_MAX_ = 2
};

/* ASYNC record kinds (docs/LOG-FORMAT.md section 9). */
enum st_async_kind {
    ST_ASYNC_CORO = 1,
    ST_ASYNC_AWAIT = 2,
    ST_ASYNC_TASK = 3,
    ST_ASYNC_MAX_ = 3
};

/* FRAME flags. */
/* The files a tracer writes (log_format: text, steps or both). */
#define ST_FORMAT_TEXT 1u
#define ST_FORMAT_STEPS 2u
#define ST_FORMAT_MASK_ 3u

#define ST_FRAME_MODULE 1u /* Module-level frame: locals are the globals. */

/* A length-delimited string, not NUL-terminated.  Borrowed. */
struct st_str {
    const char *p;
    size_t n;
};

/* One entry of a variable diff: a set (new or changed) or a delete. */
struct st_wire_var {
    uint32_t name_sid;
    uint32_t type_sid;   /* 0 for a delete. */
    struct st_str value; /* Borrowed from the frame; empty for a delete. */
    int deleted;
};

/* One counter of a STATS reply. */
struct st_wire_counter {
    struct st_str name; /* Borrowed from the frame. */
    uint64_t value;
};

/* A decoded message.  Strings and diff entries are borrowed from the
 * decoder and the frame bytes; they live until the next decode call. */
struct st_msg {
    int type;
    union {
        struct {
            uint32_t version;
            uint64_t pid;
            struct st_str program;
            uint64_t ring_bytes; /* Agent: the ring it asks for (0:
                                    none); collector: the ring it made. */
            uint32_t formats;    /* Agent: 0; collector: its default
                                    ST_FORMAT_* for tracers that leave
                                    log_format to it. */
        } hello;
        struct {
            uint32_t sid;
            struct st_str text;
        } str;
        struct {
            uint32_t region_id;
            uint32_t tracer_id;
            struct st_str log_dir; /* Absolute. */
            uint32_t level;
            uint32_t var_mode;
            uint64_t max_log_bytes;
            uint32_t max_log_files;
            uint32_t formats; /* ST_FORMAT_* bits: the files to write. */
        } region;
        struct {
            uint32_t tid;
            uint32_t name_sid;
        } thread;
        struct {
            uint32_t frame_id;
            uint32_t tid;
            uint32_t parent_id; /* 0: no traced parent. */
            uint32_t file_sid;
            uint32_t func_sid;
            uint32_t scope_id;  /* Identifies the module (globals). */
            uint32_t flags;     /* ST_FRAME_*. */
            uint32_t region_id; /* The region its records belong to. */
        } frame;
        struct {
            uint32_t region_id;
            uint32_t frame_id;
            uint32_t lineno;
            uint64_t runtime_ns;
            int has_globals; /* 0: the field was nil. */
            int has_locals;
            const struct st_wire_var *globals;
            size_t nglobals;
            const struct st_wire_var *locals;
            size_t nlocals;
        } step;
        struct {
            uint32_t frame_id;
        } frame_end;
        struct {
            uint32_t region_id;
        } region_end;
        struct {
            uint64_t token;
        } flush;
        struct {
            uint32_t region_id;
            uint64_t count;
        } lost;
        struct {
            uint32_t region_id;
            uint32_t frame_id;
            uint32_t lineno;
            uint64_t runtime_ns;
            uint32_t kind; /* enum st_event */
            struct st_str detail;
        } event;
        struct {
            uint64_t token;
            uint64_t errors;
            struct st_str message; /* Empty when errors == 0. */
        } ack;
        struct {
            uint32_t region_id;
            uint32_t kind; /* enum st_note */
            struct st_str text;
        } note;
        struct {
            uint32_t tracer_id;
            struct st_str path; /* The log file the collector opened. */
        } file;
        struct {
            uint64_t token;
        } status;
        struct {
            uint64_t token;
            const struct st_wire_counter *counters; /* Decoder scratch. */
            size_t ncounters;
        } stats;
        struct {
            uint64_t pid;       /* 0: every process. */
            struct st_str glob; /* Empty: every file. */
        } tail;
        struct {
            uint64_t pid;       /* 0: a note from the collector. */
            struct st_str path; /* The log file; empty for a note. */
            struct st_str text; /* Whole records, as written. */
        } text;
        struct {
            size_t n; /* Bytes skipped (the bin's length). */
        } skip;
        struct {
            uint32_t version; /* ST_STORE_VERSION of the writer. */
            uint64_t pid;     /* The traced process. */
            struct st_str program;
            struct st_str argv; /* Its arguments, each ending in NUL. */
            uint64_t start_ns;  /* Wall clock (ns since the epoch) at
                                   the tracer's first region. */
            struct st_str host;
            uint32_t tracer_id;
        } store;
        struct {
            uint32_t region_id;
            uint64_t steps;
            uint64_t async_steps;
            uint64_t lost;
            uint32_t first_tid;
            uint32_t flags; /* ST_RSTATE_* */
        } rstate;
        struct {
            uint32_t kind;                  /* enum st_vars_kind */
            uint32_t id;                    /* scope_id or frame_id. */
            uint32_t last_line;             /* A frame's; 0 for a scope. */
            const struct st_wire_var *vars; /* Decoder scratch. */
            size_t nvars;
        } vars;
        struct {
            uint32_t kind; /* enum st_ring_end */
            uint32_t sig;
            struct st_str detail;
            uint64_t partial;
        } ended;
        struct {
            uint64_t count;
            struct st_str why;
        } slost;
        struct {
            uint32_t region_id;
            uint64_t time_ns;   /* Since the region began. */
            uint32_t kind;      /* enum st_async_kind */
            struct st_str body; /* The record's lines, each ending \n. */
        } async;
    } u;
};

/* ---- Framing and validation (common/wire_validate.c) ---- */

/*
 * Reads a frame header.
 * @return the payload length (> 0), or ST_ETOOBIG when it is larger than
 *         `max` (pass 0 for ST_WIRE_MAX_FRAME), ST_EMALFORMED when it is 0.
 */
int64_t st_wire_frame_len(const unsigned char hdr[ST_WIRE_HEADER_SIZE],
                          uint32_t max);

/*
 * Checks that `len` bytes are a sequence of complete msgpack objects, each
 * an array, whose declared lengths fit in the bytes present, whose nesting
 * is at most ST_WIRE_MAX_DEPTH and whose counts are at most
 * ST_WIRE_MAX_COUNT.  Reads nothing past p + len and allocates nothing.
 * @return the number of messages (>= 1), or ST_ETRUNCATED, ST_EMALFORMED,
 *         ST_EDEPTH, ST_ETOOBIG, ST_EBADTYPE.
 */
int st_wire_validate(const char *p, size_t len);

/*
 * st_wire_validate() and, for each message, the checks that need no
 * decoding: its first element is a known message type (a positive
 * integer) and its field count is that type's, and it holds at most
 * ST_WIRE_MAX_COUNT array elements in all (which bounds what msgpack-c
 * allocates for it).  The collector calls this on every frame.
 * @return as st_wire_validate(), plus ST_EBADMSG.
 */
int st_wire_validate_messages(const char *p, size_t len);

/*
 * st_wire_validate_messages() on the longest prefix of `len` bytes made
 * of whole messages: a stream read from the ring, whose last message may
 * not have arrived whole yet.  *complete receives the prefix's length (0
 * when not even the first message is whole).
 * @return the number of whole messages (>= 0), or an error of
 *         st_wire_validate_messages() other than ST_ETRUNCATED for a
 *         message that can never become valid.
 */
int st_wire_validate_prefix(const char *p, size_t len, size_t *complete);

/*
 * SKIP, as the agent writes it into the ring (PROTOCOL.md "The ring"):
 * [22, bin32 of n bytes], the bytes being whatever the ring holds there.
 * ST_WIRE_SKIP_HEAD is its size before those n bytes.
 */
#define ST_WIRE_SKIP_HEAD 7
/* @return 1 and *n when p[0..avail) starts with the head of a SKIP in
 * that form, 0 when not (or not all of the head is there). */
int st_wire_skip_head(const unsigned char *p, size_t avail, uint32_t *n);

/* ---- Decoding (common/wire_decode.c, wire_decode_step.c) ---- */

/* Decodes the messages of one validated frame, one at a time. */
struct st_wire_decoder {
    msgpack_zone zone;        /* Owned: msgpack-c's objects, reused. */
    int zone_ready;           /* zone was initialised. */
    struct st_wire_var *vars; /* Owned scratch for step diffs. */
    size_t vars_cap;
    struct st_wire_counter *counters; /* Owned scratch for STATS. */
    size_t counters_cap;
    const char *data; /* Borrowed: the current frame. */
    size_t len;
    size_t off;
};

void st_wire_decoder_init(struct st_wire_decoder *d);
void st_wire_decoder_close(struct st_wire_decoder *d);

/* Starts on a frame that st_wire_validate() accepted.  Borrows `p`. */
void st_wire_decoder_reset(struct st_wire_decoder *d, const char *p,
                           size_t len);

/*
 * Decodes the next message into *m.
 * @return 1 when a message was decoded, 0 at the end of the frame, or
 *         ST_EBADMSG / ST_EBADTYPE / ST_EMALFORMED / ST_ENOMEM.
 */
int st_wire_decode_next(struct st_wire_decoder *d, struct st_msg *m);

/* ---- Encoding (common/wire_encode.c) ---- */

/* Writes a frame header for a payload of `len` bytes; the head of a SKIP
 * of n bytes at p (ST_WIRE_SKIP_HEAD bytes). */
void st_wire_put_header(unsigned char hdr[ST_WIRE_HEADER_SIZE], uint32_t len);
void st_wire_put_skip_head(unsigned char *p, uint32_t n);

/*
 * Encoders: each appends one message through a msgpack_packer (usually one
 * writing into a struct st_buf with st_buf_msgpack_write) and returns the
 * packer's result: 0 on success.  STEP, LINE, FRAME and FRAME_END are
 * written by the st_wire_put_* encoders below.
 */
/* HELLO: `ring_bytes` is the ring an agent asks for (0: none, the
 * records travel on the socket), or the ring a collector made. */
int st_wire_pack_hello(msgpack_packer *pk, uint64_t pid, const char *prog,
                       size_t prog_len, uint64_t ring_bytes, uint32_t formats);
int st_wire_pack_str(msgpack_packer *pk, uint32_t sid, const char *s,
                     size_t n);
int st_wire_pack_region(msgpack_packer *pk, uint32_t region_id,
                        uint32_t tracer_id, const char *log_dir,
                        size_t log_dir_len, uint32_t level, uint32_t var_mode,
                        uint64_t max_log_bytes, uint32_t max_log_files,
                        uint32_t formats);
int st_wire_pack_thread(msgpack_packer *pk, uint32_t tid, uint32_t name_sid);
int st_wire_pack_region_end(msgpack_packer *pk, uint32_t region_id);
int st_wire_pack_flush(msgpack_packer *pk, uint64_t token);
int st_wire_pack_note(msgpack_packer *pk, uint32_t region_id, uint32_t kind,
                      const char *text, size_t n);
int st_wire_pack_file(msgpack_packer *pk, uint32_t tracer_id, const char *path,
                      size_t n);
int st_wire_pack_lost(msgpack_packer *pk, uint32_t region_id, uint64_t count);
int st_wire_pack_event(msgpack_packer *pk, uint32_t region_id,
                       uint32_t frame_id, uint32_t lineno, uint64_t runtime_ns,
                       uint32_t kind, const char *detail, size_t n);
int st_wire_pack_ack(msgpack_packer *pk, uint64_t token, uint64_t errors,
                     const char *msg, size_t n);
int st_wire_pack_async(msgpack_packer *pk, uint32_t region_id,
                       uint64_t time_ns, uint32_t kind, const char *body,
                       size_t n);

/* Control messages (steptrace daemon status, steptrace tail). */
int st_wire_pack_status(msgpack_packer *pk, uint64_t token);
/* Starts a STATS reply; follow it with n st_wire_pack_counter calls. */
int st_wire_pack_stats_begin(msgpack_packer *pk, uint64_t token, size_t n);
int st_wire_pack_counter(msgpack_packer *pk, const char *name, uint64_t value);
int st_wire_pack_tail(msgpack_packer *pk, uint64_t pid, const char *glob,
                      size_t n);
int st_wire_pack_text(msgpack_packer *pk, uint64_t pid, const char *path,
                      size_t path_len, const char *text, size_t text_len);

/*
 * The agent's per-line messages written straight into a buffer, each with
 * one size check: byte for byte what the msgpack-c packer writes (the
 * smallest form of every integer and head).  @return 0 or ST_ENOMEM.
 *
 * A STEP: st_wire_put_step_head(), then the globals diff and the locals
 * diff, each either st_wire_put_nil() or st_wire_put_diff_begin(n)
 * followed by n st_wire_put_var_set / st_wire_put_var_del calls.
 */
int st_wire_put_step_head(struct st_buf *b, uint32_t region_id,
                          uint32_t frame_id, uint32_t lineno,
                          uint64_t runtime_ns);
int st_wire_put_nil(struct st_buf *b);
int st_wire_put_diff_begin(struct st_buf *b, size_t n);
int st_wire_put_var_set(struct st_buf *b, uint32_t name_sid, uint32_t type_sid,
                        const char *value, size_t n);
int st_wire_put_var_del(struct st_buf *b, uint32_t name_sid);
/* FRAME and FRAME_END (a traced call's path).  FRAME's scope id and
 * flags travel as one field, scope_id << 1 | (flags & ST_FRAME_MODULE). */
int st_wire_put_frame(struct st_buf *b, uint32_t frame_id, uint32_t tid,
                      uint32_t parent_id, uint32_t file_sid, uint32_t func_sid,
                      uint32_t scope_id, uint32_t flags, uint32_t region_id);
int st_wire_put_frame_end(struct st_buf *b, uint32_t frame_id);
/* LINE: a STEP without variables (NONE mode), in its FRAME's region; the
 * runtime travels in 100 ns units, rounded half up, decoded as ns. */
int st_wire_put_line(struct st_buf *b, uint32_t frame_id, uint32_t lineno,
                     uint64_t runtime_ns);
/* EVENT, byte for byte as st_wire_pack_event() writes it. */
int st_wire_put_event(struct st_buf *b, uint32_t region_id, uint32_t frame_id,
                      uint32_t lineno, uint64_t runtime_ns, uint32_t kind,
                      const char *detail, size_t n);

/* ---- The step store's own records (docs/STEP-STORE.md) ---- */

int st_wire_pack_store(msgpack_packer *pk, uint32_t version, uint64_t pid,
                       const char *program, size_t program_len,
                       const char *argv, size_t argv_len, uint64_t start_ns,
                       const char *host, size_t host_len, uint32_t tracer_id);
int st_wire_pack_rstate(msgpack_packer *pk, uint32_t region_id, uint64_t steps,
                        uint64_t async_steps, uint64_t lost,
                        uint32_t first_tid, uint32_t flags);
/* VARS head: its diff follows (st_wire_put_diff_begin, _var_set). */
int st_wire_put_vars_head(struct st_buf *b, uint32_t kind, uint32_t id,
                          uint32_t last_line);
int st_wire_pack_ended(msgpack_packer *pk, uint32_t kind, uint32_t sig,
                       const char *detail, size_t n, uint64_t partial);
int st_wire_pack_slost(msgpack_packer *pk, uint64_t count, const char *why,
                       size_t n);

#endif /* STEPTRACE_COMMON_WIRE_H */
