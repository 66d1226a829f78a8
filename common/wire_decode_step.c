/*
 * The direct STEP, LINE, EVENT and FRAME decoder, the first path of
 * st_wire_decode_next() (common/wire_decode.c).
 *
 * STEP is nearly every message of a busy connection, and its head is
 * written by the agent without msgpack-c (st_wire_put_step_head), so it is
 * read here without msgpack-c too: no zone, no object tree.  It takes only
 * the forms it knows (unsigned integers, str and bin, nil, arrays); on
 * anything else it gives up without a verdict and st_wire_decode_next()
 * decodes the message with msgpack-c as before, so errors and odd
 * encodings are decided in one place.  Every read is checked against the
 * frame's length.  Diff entries go into the decoder's scratch array
 * (d->vars, owned by the decoder); strings are borrowed from the frame.
 */
#include "steptrace/wire.h"

#include <string.h>

#include "wire_int.h"
#include "steptrace/error.h"

/* What a diff decoded to. */
struct wire_decoder_diff_out {
    int has; /* 0: the field was nil. */
    size_t count;
};

struct wire_cursor {
    const unsigned char *p;
    size_t len;
    size_t off;
};

/* An unsigned integer in any msgpack form.  @return 0 or -1 (give up). */
static inline int
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

static inline int
cursor_u32(struct wire_cursor *c, uint32_t *v)
{
    uint64_t x;

    if (cursor_uint(c, &x) != 0 || x > UINT32_MAX)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

/* A str or bin (both are text on this wire).  @return 0 or -1. */
static inline int
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
static inline int
cursor_array(struct wire_cursor *c, size_t *count)
{
    size_t n = wire_fast_array(c->p + c->off, c->len - c->off, count);

    if (n == 0)
        return -1;
    c->off += n;
    /* Each element takes at least one byte. */
    return *count <= c->len - c->off ? 0 : -1;
}

/* A diff, as decode_diff() (wire_decode.c) reads it.  @return 0,
 * ST_ENOMEM or -1. */
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

/* A LINE's fields after its head.  @return 1 or 0 (give up). */
static int
cursor_line(struct wire_cursor *c, struct st_msg *m)
{
    uint64_t units;

    memset(m, 0, sizeof(*m));
    m->type = ST_MSG_LINE;
    if (cursor_u32(c, &m->u.step.frame_id) != 0 ||
        cursor_u32(c, &m->u.step.lineno) != 0 || cursor_uint(c, &units) != 0 ||
        wire_line_runtime(units, &m->u.step.runtime_ns) != 0)
        return 0;
    return 1;
}

/* A STEP's fields after its head.  @return 1, 0 (give up) or
 * ST_ENOMEM. */
static int
cursor_step(struct wire_cursor *c, struct st_wire_decoder *d, struct st_msg *m)
{
    struct wire_decoder_diff_out g, l;
    size_t used = 0;
    int r;

    memset(m, 0, sizeof(*m));
    m->type = ST_MSG_STEP;
    if (cursor_u32(c, &m->u.step.region_id) != 0 ||
        cursor_u32(c, &m->u.step.frame_id) != 0 ||
        cursor_u32(c, &m->u.step.lineno) != 0 ||
        cursor_uint(c, &m->u.step.runtime_ns) != 0)
        return 0;
    r = cursor_diff(&g, d, c, &used);
    if (r == 0)
        r = cursor_diff(&l, d, c, &used);
    if (r != 0)
        return r == ST_ENOMEM ? ST_ENOMEM : 0;
    m->u.step.has_globals = g.has;
    m->u.step.nglobals = g.count;
    m->u.step.has_locals = l.has;
    m->u.step.nlocals = l.count;
    /* As decode_step_diffs() in wire_decode.c: the pointers once the
     * scratch is final. */
    m->u.step.globals = d->vars;
    /* No scratch yet (both diffs nil or empty): no pointer arithmetic on
     * NULL, which is undefined even with 0. */
    m->u.step.locals = d->vars != NULL ? d->vars + g.count : NULL;
    return 1;
}

/* An EVENT's fields after its head (CALL and RETURN records: half the
 * messages of a call-heavy program recorded with a step store).  @return
 * 1 or 0 (give up). */
static int
cursor_event(struct wire_cursor *c, struct st_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = ST_MSG_EVENT;
    if (cursor_u32(c, &m->u.event.region_id) != 0 ||
        cursor_u32(c, &m->u.event.frame_id) != 0 ||
        cursor_u32(c, &m->u.event.lineno) != 0 ||
        cursor_uint(c, &m->u.event.runtime_ns) != 0 ||
        cursor_u32(c, &m->u.event.kind) != 0 ||
        cursor_str(c, &m->u.event.detail) != 0)
        return 0;
    /* A kind out of range: msgpack-c's path gives the verdict. */
    return m->u.event.kind >= ST_EVENT_CALL &&
           m->u.event.kind <= ST_EVENT_MAX_;
}

/* A FRAME's fields after its head (one per traced call).  @return 1 or 0
 * (give up). */
static int
cursor_frame(struct wire_cursor *c, struct st_msg *m)
{
    uint64_t scope_flags;

    memset(m, 0, sizeof(*m));
    m->type = ST_MSG_FRAME;
    if (cursor_u32(c, &m->u.frame.frame_id) != 0 ||
        cursor_u32(c, &m->u.frame.tid) != 0 ||
        cursor_u32(c, &m->u.frame.parent_id) != 0 ||
        cursor_u32(c, &m->u.frame.file_sid) != 0 ||
        cursor_u32(c, &m->u.frame.func_sid) != 0 ||
        cursor_uint(c, &scope_flags) != 0 || (scope_flags >> 1) > UINT32_MAX ||
        cursor_u32(c, &m->u.frame.region_id) != 0)
        return 0;
    /* As decode_frame_scope() in wire_decode.c. */
    m->u.frame.scope_id = (uint32_t)(scope_flags >> 1);
    m->u.frame.flags = (uint32_t)(scope_flags & ST_FRAME_MODULE);
    return 1;
}

int
st__wire_decode_step(struct st_wire_decoder *d, struct st_msg *m)
{
    struct wire_cursor c;
    int r;

    c.p = (const unsigned char *)d->data;
    c.len = d->len;
    c.off = d->off;
    if (c.len - c.off < 2)
        return 0;
    if (c.p[c.off] == (0x90 | 4) && c.p[c.off + 1] == ST_MSG_LINE) {
        c.off += 2;
        r = cursor_line(&c, m);
    }
    else if (c.p[c.off] == (0x90 | 7) && c.p[c.off + 1] == ST_MSG_STEP) {
        c.off += 2;
        r = cursor_step(&c, d, m);
    }
    else if (c.p[c.off] == (0x90 | 7) && c.p[c.off + 1] == ST_MSG_EVENT) {
        c.off += 2;
        r = cursor_event(&c, m);
    }
    else if (c.p[c.off] == (0x90 | 8) && c.p[c.off + 1] == ST_MSG_FRAME) {
        c.off += 2;
        r = cursor_frame(&c, m);
    }
    else {
        return 0;
    }
    if (r == 1)
        d->off = c.off;
    return r;
}
