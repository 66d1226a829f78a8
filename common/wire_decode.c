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
 * direct path does not take, goes through msgpack-c and a table of each
 * type's fields (wire_msgs, below).
 */
#include "steptrace/wire.h"

#include <stdlib.h>
#include <string.h>

#include "wire_int.h"
#include "steptrace/error.h"

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

/* One diff entry, [name, type, value] or [name], into *v. */
static int
decode_var(const msgpack_object *e, struct st_wire_var *v)
{
    const msgpack_object *f;

    if (e->type != MSGPACK_OBJECT_ARRAY)
        return ST_EBADTYPE;
    f = e->via.array.ptr;
    memset(v, 0, sizeof(*v));
    if (e->via.array.size == 1) {
        v->deleted = 1;
        return get_u32(&f[0], &v->name_sid);
    }
    if (e->via.array.size != 3)
        return ST_EBADMSG;
    if (get_u32(&f[0], &v->name_sid) != 0 ||
        get_u32(&f[1], &v->type_sid) != 0 || get_str(&f[2], &v->value) != 0)
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
    int r;

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
        r = decode_var(&a->ptr[i], &d->vars[*used + i]);
        if (r != 0)
            return r;
    }
    *count = a->size;
    *used += a->size;
    return 0;
}

/*
 * ---- The fields of each message type ----
 *
 * A message's fields after the type are read by kind into members of
 * struct st_msg (a table, wire_msgs); what is not a plain field (diffs,
 * counters, FRAME's packed scope, LINE's units, SKIP's bin) is read by the
 * type's finish function, after the plain fields.  A plain field of the
 * wrong type is ST_EBADTYPE; a kind outside its type's range ST_EBADMSG.
 */
enum wire_kind {
    WIRE_NONE = 0, /* Read by the finish function. */
    WIRE_U32,
    WIRE_U64,
    WIRE_STR,    /* str or bin. */
    WIRE_STR_NIL /* str, bin or nil (left empty). */
};

struct wire_field {
    unsigned char kind; /* enum wire_kind */
    unsigned short off; /* Of the member in struct st_msg. */
};

typedef int (*wire_finish_fn)(struct st_wire_decoder *d,
                              const msgpack_object *f, struct st_msg *m);

struct wire_msg {
    struct wire_field f[ST_WIRE_MAX_FIELDS - 1]; /* Fields 1, 2, ... */
    unsigned short kind_off; /* A u32 member that must lie in */
    unsigned char kind_min;  /* [kind_min, kind_max] (kind_max 0: none). */
    unsigned char kind_max;
    wire_finish_fn finish; /* NULL: none. */
};

/* STEP: the two diffs, fields 5 and 6. */
static int
decode_step_diffs(struct st_wire_decoder *d, const msgpack_object *f,
                  struct st_msg *m)
{
    size_t used = 0;
    int r;

    r = decode_diff(d, &f[5], &m->u.step.has_globals, &used,
                    &m->u.step.nglobals);
    if (r == 0)
        r = decode_diff(d, &f[6], &m->u.step.has_locals, &used,
                        &m->u.step.nlocals);
    if (r != 0)
        return r;
    /* Set the pointers only now: decode_diff may move the scratch. */
    m->u.step.globals = d->vars;
    m->u.step.locals = d->vars != NULL ? d->vars + m->u.step.nglobals
                                       : NULL; /* Not NULL+0. */
    return 0;
}

/* VARS: field 4, the variables (a diff of the empty state). */
static int
decode_vars_diff(struct st_wire_decoder *d, const msgpack_object *f,
                 struct st_msg *m)
{
    size_t used = 0;
    int has, r;

    r = decode_diff(d, &f[4], &has, &used, &m->u.vars.nvars);
    if (r != 0)
        return r;
    m->u.vars.vars = d->vars;
    return 0;
}

/* FRAME: field 6, the scope id and the module bit in one u64. */
static int
decode_frame_scope(struct st_wire_decoder *d, const msgpack_object *f,
                   struct st_msg *m)
{
    uint64_t scope_flags;

    if (get_u64(&f[6], &scope_flags) != 0 || (scope_flags >> 1) > UINT32_MAX)
        return ST_EBADTYPE;
    m->u.frame.scope_id = (uint32_t)(scope_flags >> 1);
    m->u.frame.flags = (uint32_t)(scope_flags & ST_FRAME_MODULE);
    return 0;
}

/* LINE: field 3, the runtime in units of 100 ns. */
static int
decode_line_units(struct st_wire_decoder *d, const msgpack_object *f,
                  struct st_msg *m)
{
    uint64_t units;

    if (get_u64(&f[3], &units) != 0)
        return ST_EBADTYPE;
    return wire_line_runtime(units, &m->u.step.runtime_ns);
}

/* SKIP: field 1, a bin of which only the length matters. */
static int
decode_skip(struct st_wire_decoder *d, const msgpack_object *f,
            struct st_msg *m)
{
    if (f[1].type != MSGPACK_OBJECT_BIN)
        return ST_EBADTYPE;
    m->u.skip.n = f[1].via.bin.size;
    return 0;
}

/* STATS: field 2, the counter list, into the decoder's scratch array. */
static int
decode_counters(struct st_wire_decoder *d, const msgpack_object *f,
                struct st_msg *m)
{
    const msgpack_object_array *a;
    struct st_wire_counter *c;
    size_t i;

    if (f[2].type != MSGPACK_OBJECT_ARRAY)
        return ST_EBADTYPE;
    a = &f[2].via.array;
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

#define U32(member)                                                           \
    {                                                                         \
        WIRE_U32, offsetof(struct st_msg, u.member)                           \
    }
#define U64(member)                                                           \
    {                                                                         \
        WIRE_U64, offsetof(struct st_msg, u.member)                           \
    }
#define STR(member)                                                           \
    {                                                                         \
        WIRE_STR, offsetof(struct st_msg, u.member)                           \
    }
#define STR_NIL(member)                                                       \
    {                                                                         \
        WIRE_STR_NIL, offsetof(struct st_msg, u.member)                       \
    }
#define NONE                                                                  \
    {                                                                         \
        WIRE_NONE, 0                                                          \
    }
#define KIND(member, lo, hi)                                                  \
    .kind_off = offsetof(struct st_msg, u.member), .kind_min = (lo),          \
    .kind_max = (hi)

/* Field i of a message is .f[i - 1]; PROTOCOL.md "Messages" in C. */
static const struct wire_msg wire_msgs[] = {
    [ST_MSG_HELLO] = {.f = {U32(hello.version), U64(hello.pid),
                            STR(hello.program), U64(hello.ring_bytes),
                            U32(hello.formats)}},
    [ST_MSG_STR] = {.f = {U32(str.sid), STR(str.text)}},
    [ST_MSG_REGION] = {.f = {U32(region.region_id), U32(region.tracer_id),
                             STR(region.log_dir), U32(region.level),
                             U32(region.var_mode), U64(region.max_log_bytes),
                             U32(region.max_log_files), U32(region.formats)}},
    [ST_MSG_THREAD] = {.f = {U32(thread.tid), U32(thread.name_sid)}},
    [ST_MSG_FRAME] = {.f = {U32(frame.frame_id), U32(frame.tid),
                            U32(frame.parent_id), U32(frame.file_sid),
                            U32(frame.func_sid), NONE, U32(frame.region_id)},
                      .finish = decode_frame_scope},
    [ST_MSG_STEP] = {.f = {U32(step.region_id), U32(step.frame_id),
                           U32(step.lineno), U64(step.runtime_ns)},
                     .finish = decode_step_diffs},
    [ST_MSG_FRAME_END] = {.f = {U32(frame_end.frame_id)}},
    [ST_MSG_REGION_END] = {.f = {U32(region_end.region_id)}},
    [ST_MSG_FLUSH] = {.f = {U64(flush.token)}},
    [ST_MSG_LOST] = {.f = {U32(lost.region_id), U64(lost.count)}},
    [ST_MSG_EVENT] = {.f = {U32(event.region_id), U32(event.frame_id),
                            U32(event.lineno), U64(event.runtime_ns),
                            U32(event.kind), STR(event.detail)},
                      KIND(event.kind, ST_EVENT_CALL, ST_EVENT_MAX_)},
    [ST_MSG_ACK] = {.f = {U64(ack.token), U64(ack.errors),
                          STR_NIL(ack.message)}},
    [ST_MSG_STATUS] = {.f = {U64(status.token)}},
    [ST_MSG_STATS] = {.f = {U64(stats.token)}, .finish = decode_counters},
    [ST_MSG_TAIL] = {.f = {U64(tail.pid), STR(tail.glob)}},
    [ST_MSG_TEXT] = {.f = {U64(text.pid), STR(text.path), STR(text.text)}},
    [ST_MSG_ASYNC] = {.f = {U32(async.region_id), U64(async.time_ns),
                            U32(async.kind), STR(async.body)},
                      KIND(async.kind, ST_ASYNC_CORO, ST_ASYNC_MAX_)},
    [ST_MSG_LINE] = {.f = {U32(step.frame_id), U32(step.lineno)},
                     .finish = decode_line_units},
    [ST_MSG_SKIP] = {.f = {NONE}, .finish = decode_skip},
    [ST_MSG_NOTE] = {.f = {U32(note.region_id), U32(note.kind),
                           STR(note.text)},
                     KIND(note.kind, ST_NOTE_LINE, ST_NOTE_MAX_)},
    [ST_MSG_FILE] = {.f = {U32(file.tracer_id), STR(file.path)}},
    [ST_MSG_STORE] = {.f = {U32(store.version), U64(store.pid),
                            STR(store.program), STR(store.argv),
                            U64(store.start_ns), STR(store.host),
                            U32(store.tracer_id)}},
    [ST_MSG_RSTATE] = {.f = {U32(rstate.region_id), U64(rstate.steps),
                             U64(rstate.async_steps), U64(rstate.lost),
                             U32(rstate.first_tid), U32(rstate.flags)}},
    [ST_MSG_VARS] = {.f = {U32(vars.kind), U32(vars.id), U32(vars.last_line)},
                     KIND(vars.kind, ST_VARS_SCOPE, ST_VARS_MAX_),
                     .finish = decode_vars_diff},
    [ST_MSG_ENDED] = {.f = {U32(ended.kind), U32(ended.sig), STR(ended.detail),
                            U64(ended.partial)}},
    [ST_MSG_SLOST] = {.f = {U64(slost.count), STR(slost.why)}},
};

#undef U32
#undef U64
#undef STR
#undef STR_NIL
#undef NONE
#undef KIND

/* One plain field into its member of *m. */
static int
decode_field(const msgpack_object *o, const struct wire_field *w,
             struct st_msg *m)
{
    char *member = (char *)m + w->off;

    switch (w->kind) {
    case WIRE_U32: return get_u32(o, (uint32_t *)(void *)member);
    case WIRE_U64: return get_u64(o, (uint64_t *)(void *)member);
    case WIRE_STR_NIL:
        if (o->type == MSGPACK_OBJECT_NIL)
            return 0; /* *m was zeroed: the string is {NULL, 0}. */
        return get_str(o, (struct st_str *)(void *)member);
    case WIRE_STR: return get_str(o, (struct st_str *)(void *)member);
    default: return 0;
    }
}

/*
 * Decodes the nfields fields f[0..nfields) of a message whose type
 * (m->type) has that field count, into *m (zeroed).
 * @return 0, ST_EBADTYPE, ST_EBADMSG or ST_ENOMEM.
 */
static int
decode_fields(struct st_wire_decoder *d, const msgpack_object *f,
              size_t nfields, struct st_msg *m)
{
    const struct wire_msg *w;
    size_t i;
    int r;

    if ((size_t)m->type >= sizeof(wire_msgs) / sizeof(wire_msgs[0]))
        return ST_EBADMSG;
    w = &wire_msgs[m->type];
    /* A type of ST_MSG_MAP that the table does not describe. */
    if (w->f[0].kind == WIRE_NONE && w->finish == NULL)
        return ST_EBADMSG;
    for (i = 1; i < nfields && i < ST_WIRE_MAX_FIELDS; i++) {
        r = decode_field(&f[i], &w->f[i - 1], m);
        if (r != 0)
            return r;
    }
    if (w->kind_max != 0) {
        uint32_t kind;

        memcpy(&kind, (const char *)m + w->kind_off, sizeof(kind));
        if (kind < w->kind_min || kind > w->kind_max)
            return ST_EBADMSG;
    }
    return w->finish != NULL ? w->finish(d, f, m) : 0;
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
    r = decode_fields(d, o->via.array.ptr, nfields, m);
    return r == 0 ? 1 : r;
}
