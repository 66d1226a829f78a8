/*
 * The wire decoder (steptrace/wire.h): the messages of a frame that
 * st_wire_validate() accepted, one at a time, into a struct st_msg whose
 * strings and diff entries are borrowed from the frame and from the
 * decoder's scratch arrays (owned by the decoder, freed by
 * st_wire_decoder_close()).  The collector decodes every frame it reads
 * with it, the agent the collector's replies.
 *
 * Two paths: STEP and LINE, nearly every message of a busy connection,
 * are read straight from the bytes (st__wire_decode_step, in
 * wire_decode_step.c); everything else, and any STEP or LINE in a form the
 * direct path does not take, goes through msgpack-c.
 */
#include "steptrace/wire.h"

#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"
#include "wire_int.h"

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

/* ---- msgpack-c objects ---- */

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
        return wire_line_runtime(units, &m->u.step.runtime_ns);
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

int
st_wire_decode_next(struct st_wire_decoder *d, struct st_msg *m)
{
    msgpack_unpack_return ret;
    msgpack_object obj;
    const msgpack_object *o = &obj;
    uint64_t type;
    size_t nfields;
    int r;

    if (d->off >= d->len)
        return 0;
    r = st__wire_decode_step(d, m);
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
    nfields = st__wire_nfields(m->type);
    if (nfields == 0 || nfields != o->via.array.size)
        return ST_EBADMSG;
    /* Pass decode_fields()'s code through: ST_ENOMEM is not the peer's
     * fault, and a diff entry of the wrong length is ST_EBADMSG. */
    if (m->type >= ST_MSG_STATUS && m->type <= ST_MSG_TEXT)
        r = decode_control(d, o->via.array.ptr, m);
    else
        r = decode_fields(d, o->via.array.ptr, m);
    return r == 0 ? 1 : r;
}
