/*
 * The query language's evaluation (query_expr.h) on a replayed step: a
 * walk of the tree (query_tree.h), each variable found by string id
 * among the frame's locals, then its module's globals (with a hint:
 * where it was found last), and at most one number parsed from a
 * value's text per comparison.
 */
#include "query_expr.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_tree.h"
#include "steptrace/error.h"

static const char *const qexpr_type_names[TYPE_COUNT] = {"int", "float",
                                                         "bool"};

static int
qexpr_sids_add(struct qexpr_sids *s, uint32_t sid)
{
    uint32_t *ids;
    size_t i;

    for (i = 0; i < s->n; i++)
        if (s->ids[i] == sid)
            return 0;
    ids = st_grow(s->ids, &s->cap, s->n + 1, sizeof(*ids), 2);
    if (ids == NULL)
        return ST_ENOMEM;
    s->ids = ids;
    s->ids[s->n++] = sid;
    return 0;
}

/* ---- string ids ---- */

void
rd_qexpr_reset(struct rd_qexpr *e)
{
    size_t i;

    for (i = 0; i < e->nnames; i++) {
        e->names[i].sids.n = 0;
        e->names[i].hint[0] = e->names[i].hint[1] = 0;
    }
    for (i = 0; i < TYPE_COUNT; i++)
        e->types[i].n = 0;
    /* The strings of the file are freed with it. */
    for (i = 0; i < e->nnodes; i++)
        e->nodes[i].seen = NULL;
}

int
rd_qexpr_on_str(struct rd_qexpr *e, const struct st_replay *rp, uint32_t sid)
{
    const struct st_rp_string *s = st_replay_str(rp, sid);
    size_t i;
    int r = 0;

    if (s == NULL)
        return 0;
    /* A variable may be called int: the text is looked for in both. */
    for (i = 0; i < e->nnames && r == 0; i++)
        if (e->names[i].n == s->n && memcmp(e->names[i].text, s->p, s->n) == 0)
            r = qexpr_sids_add(&e->names[i].sids, sid);
    for (i = 0; i < TYPE_COUNT && r == 0; i++)
        if (strcmp(qexpr_type_names[i], s->p) == 0)
            r = qexpr_sids_add(&e->types[i], sid);
    return r;
}

/* ---- evaluation ---- */

/* A side's value on a step: a number, a text, or both. */
struct qexpr_val {
    int has_num, has_text;
    struct qexpr_num num;
    const char *p;
    size_t n;
};

static const struct st_varent *
qexpr_find(struct qexpr_name *nm, const struct st_varstate *s, int which)
{
    size_t h = nm->hint[which], i;

    if (h < s->n && qexpr_sids_has(&nm->sids, s->ents[h].name_sid))
        return &s->ents[h];
    for (i = 0; i < s->n; i++)
        if (qexpr_sids_has(&nm->sids, s->ents[i].name_sid)) {
            nm->hint[which] = i;
            return &s->ents[i];
        }
    return NULL;
}

/* The variable in scope at the step: the frame's locals, then its
 * module's globals.  NULL when there is none. */
static const struct st_varent *
qexpr_lookup(struct qexpr_name *nm, const struct st_replay *rp)
{
    const struct st_rp_frame *f = rp->rec.f;
    const struct st_varent *v = NULL;

    if (nm->sids.n == 0)
        return NULL;
    if (!(f->flags & ST_FRAME_MODULE))
        v = qexpr_find(nm, &f->locals, 0);
    if (v == NULL && f->scope != NULL)
        v = qexpr_find(nm, &f->scope->vars, 1);
    return v;
}

/*
 * The fast path of a float's text (its str()): [-]digits[.digits] with
 * at most 15 digits, which a double holds exactly, as does 10^k for the
 * k <= 15 fraction digits, so one division rounds correctly (strtod's
 * answer) at a fraction of strtod's cost: the parse runs on every step a
 * comparison looks at.  @return 0 when the text needs strtod.
 */
static int
qexpr_quick_num(const char *s, size_t n, struct qexpr_num *num)
{
    static const double tens[16] = {1e0,  1e1,  1e2,  1e3, 1e4,  1e5,
                                    1e6,  1e7,  1e8,  1e9, 1e10, 1e11,
                                    1e12, 1e13, 1e14, 1e15};
    const char *end = s + n;
    int neg = 0, digits = 0, frac = -1;
    int64_t m = 0;

    if (s < end && *s == '-') {
        neg = 1;
        s++;
    }
    for (; s < end; s++) {
        if (*s >= '0' && *s <= '9') {
            if (++digits > 15)
                return 0;
            m = m * 10 + (*s - '0');
            if (frac >= 0)
                frac++;
        }
        else if (*s == '.' && frac < 0) {
            frac = 0;
        }
        else {
            return 0;
        }
    }
    if (digits == 0)
        return 0;
    if (neg)
        m = -m;
    num->is_int = frac < 0;
    num->i = m;
    num->d = frac > 0 ? (double)m / tens[frac] : (double)m;
    return 1;
}

/* Is s[0..n-1] an integer's text: [-]digits? */
static int
qexpr_int_text(const char *s, size_t n)
{
    size_t i = n > 0 && s[0] == '-';

    if (i == n)
        return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* d of a number, read from its text when it was not yet. */
static void
qexpr_need_d(struct qexpr_num *num)
{
    if (num->has_d)
        return;
    num->d = strtod(num->text, NULL);
    num->has_d = 1;
}

/*
 * A variable's text as a number, when its type is int, float or bool.
 * An int is not parsed: its digits are compared, which is exact at any
 * size and costs less than reading it (qexpr_cmp_num).
 */
static int
qexpr_var_num(const struct rd_qexpr *e, const struct st_varent *v,
              struct qexpr_num *num)
{
    const char *s = v->value;
    char *end;

    if (s == NULL || v->value_len == 0)
        return 0;
    if (qexpr_sids_has(&e->types[TYPE_INT], v->type_sid)) {
        /* A value cut at repr_limit is no number. */
        if (!qexpr_int_text(s, v->value_len))
            return 0;
        qexpr_set_big(num, s, v->value_len);
        num->text = s;
        return 1;
    }
    if (qexpr_sids_has(&e->types[TYPE_FLOAT], v->type_sid)) {
        if (qexpr_quick_num(s, v->value_len, num)) {
            num->is_int = 0;
            num->has_d = 1;
            return 1;
        }
        num->d = strtod(s, &end);
        num->has_d = 1;
        return *end == '\0' && end != s;
    }
    if (!qexpr_sids_has(&e->types[TYPE_BOOL], v->type_sid))
        return 0;
    num->is_int = 1;
    if (strcmp(s, "True") == 0)
        num->i = 1;
    else if (strcmp(s, "False") == 0)
        num->i = 0;
    else
        return 0;
    num->d = (double)num->i;
    num->has_d = 1;
    return 1;
}

/* The value of a comparison's side on the step.  @return 0 when it has
 * none (a variable not in scope). */
static int
qexpr_value(struct rd_qexpr *e, const struct st_replay *rp,
            const struct qexpr_arg *a, int how, struct qexpr_val *v, char *buf,
            size_t buflen)
{
    const struct st_rp_frame *f = rp->rec.f;
    const struct st_varent *ent;
    struct st_str t;

    memset(v, 0, sizeof(*v));
    switch (a->kind) {
    case ARG_NUM:
        v->has_num = 1;
        v->num = a->num;
        return 1;
    case ARG_TEXT:
        v->has_text = 1;
        v->p = a->text;
        v->n = a->n;
        return 1;
    case ARG_VAR:
        ent = qexpr_lookup(&e->names[a->name], rp);
        if (ent == NULL)
            return 0;
        v->has_text = 1;
        v->p = ent->value != NULL ? ent->value : "";
        v->n = ent->value_len;
        if (how != HOW_TEXT)
            v->has_num = qexpr_var_num(e, ent, &v->num);
        return 1;
    default: break;
    }
    switch (a->field) {
    case FIELD_FUNC:
    case FIELD_FILE: {
        const struct st_rp_string *s = a->field == FIELD_FUNC ? f->func
                                                              : f->file;

        v->has_text = 1;
        v->p = s != NULL ? s->p : "";
        v->n = s != NULL ? s->n : 0;
        return 1;
    }
    case FIELD_THREAD:
        v->num.i = f->tid;
        if (how != HOW_NUM) {
            t = st_replay_thread_name(rp, f->tid, buf, buflen);
            v->has_text = 1;
            v->p = t.p;
            v->n = t.n;
        }
        break;
    case FIELD_LINE: v->num.i = rp->rec.m->u.step.lineno; break;
    case FIELD_PID: v->num.i = (int64_t)rp->hdr.pid; break;
    default: v->num.i = (int64_t)rp->rec.step; break;
    }
    v->has_num = 1;
    v->num.is_int = 1;
    v->num.d = (double)v->num.i;
    v->num.has_d = 1;
    if (how == HOW_TEXT && !v->has_text) {
        v->has_text = 1;
        v->p = buf;
        v->n = (size_t)snprintf(buf, buflen, "%lld", (long long)v->num.i);
    }
    return 1;
}

static int
qexpr_order(int c, int op)
{
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

/* An integer's sign and digits, for qexpr_cmp_big. */
static void
qexpr_digits(const struct qexpr_num *a, char *buf, size_t n, int *neg,
             const char **d, size_t *nd)
{
    uint64_t m;
    size_t i = n;

    if (a->big != NULL) {
        *neg = a->neg;
        *d = a->big;
        *nd = a->nbig;
        return;
    }
    *neg = a->i < 0;
    m = a->i < 0 ? 0 - (uint64_t)a->i : (uint64_t)a->i;
    do {
        buf[--i] = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0 && i > 0);
    *d = buf + i;
    *nd = n - i;
}

/* Two integers, one of them known by its digits only: by their
 * digits. */
static int
qexpr_cmp_big(const struct qexpr_num *a, const struct qexpr_num *b)
{
    char abuf[24], bbuf[24];
    const char *ad, *bd;
    size_t an, bn;
    int aneg, bneg, c;

    qexpr_digits(a, abuf, sizeof(abuf), &aneg, &ad, &an);
    qexpr_digits(b, bbuf, sizeof(bbuf), &bneg, &bd, &bn);
    if (aneg != bneg)
        return aneg ? -1 : 1;
    c = an != bn ? (an < bn ? -1 : 1) : memcmp(ad, bd, an);
    c = c < 0 ? -1 : c > 0;
    return aneg ? -c : c;
}

static int
qexpr_cmp_num(struct qexpr_num *a, struct qexpr_num *b, int op)
{
    if (a->is_int && b->is_int)
        return qexpr_order(a->i < b->i ? -1 : a->i > b->i, op);
    if ((a->is_int || a->big != NULL) && (b->is_int || b->big != NULL))
        return qexpr_order(qexpr_cmp_big(a, b), op);
    qexpr_need_d(a);
    qexpr_need_d(b);
    /* NaN equals nothing, as in Python. */
    if (isnan(a->d) || isnan(b->d))
        return op == OP_NE;
    return qexpr_order(a->d < b->d ? -1 : a->d > b->d, op);
}

static int
qexpr_cmp_text(const struct qexpr_val *a, const struct qexpr_val *b, int op)
{
    size_t n = a->n < b->n ? a->n : b->n;
    int c = n > 0 ? memcmp(a->p, b->p, n) : 0;

    if (c == 0)
        c = a->n < b->n ? -1 : a->n > b->n;
    return qexpr_order(c, op);
}

static int
qexpr_eval_cmp(struct rd_qexpr *e, const struct st_replay *rp,
               const struct qexpr_node *n)
{
    struct qexpr_val l, r;
    char lbuf[32], rbuf[32];

    if (!qexpr_value(e, rp, &n->l, n->how, &l, lbuf, sizeof(lbuf)) ||
        !qexpr_value(e, rp, &n->r, n->how, &r, rbuf, sizeof(rbuf)))
        return 0;
    if (n->how != HOW_TEXT && l.has_num && r.has_num)
        return qexpr_cmp_num(&l.num, &r.num, n->op);
    if (n->how != HOW_NUM && l.has_text && r.has_text)
        return qexpr_cmp_text(&l, &r, n->op);
    return 0;
}

/* The string of func or file a comparison reads, or NULL. */
static const struct st_rp_string *
qexpr_location(const struct qexpr_arg *a, const struct st_rp_frame *f)
{
    if (a->kind != ARG_FIELD)
        return NULL;
    if (a->field == FIELD_FUNC)
        return f->func;
    return a->field == FIELD_FILE ? f->file : NULL;
}

/* A comparison, with the answer of `func == "name"` (and of file) kept
 * per string: a loop's steps ask it of the same function each time. */
static int
qexpr_eval_cmp_cached(struct rd_qexpr *e, const struct st_replay *rp,
                      struct qexpr_node *n)
{
    const struct st_rp_string *s = NULL;

    if (n->how == HOW_TEXT) {
        s = qexpr_location(&n->l, rp->rec.f);
        if (s == NULL)
            s = qexpr_location(&n->r, rp->rec.f);
    }
    if (s == NULL)
        return qexpr_eval_cmp(e, rp, n);
    if (s != n->seen) {
        n->seen_answer = qexpr_eval_cmp(e, rp, n);
        n->seen = s;
    }
    return n->seen_answer;
}

/* Does the step's diff set or delete the name? */
static int
qexpr_eval_changed(const struct rd_qexpr *e, const struct st_replay *rp,
                   size_t name)
{
    const struct qexpr_sids *sids = &e->names[name].sids;
    const struct st_rp_record *rec = &rp->rec;
    size_t i;

    if (sids->n == 0)
        return 0;
    for (i = 0; i < rec->ngdiff; i++)
        if (qexpr_sids_has(sids, rec->gdiff[i].name_sid))
            return 1;
    /* A module's frame shows no locals (replay.c). */
    if (rec->f->flags & ST_FRAME_MODULE)
        return 0;
    for (i = 0; i < rec->nldiff; i++)
        if (qexpr_sids_has(sids, rec->ldiff[i].name_sid))
            return 1;
    return 0;
}

static int
qexpr_eval_node(struct rd_qexpr *e, const struct st_replay *rp, size_t idx)
{
    struct qexpr_node *n = &e->nodes[idx];

    switch (n->kind) {
    case NODE_OR:
        return qexpr_eval_node(e, rp, n->a) || qexpr_eval_node(e, rp, n->b);
    case NODE_AND:
        return qexpr_eval_node(e, rp, n->a) && qexpr_eval_node(e, rp, n->b);
    case NODE_NOT: return !qexpr_eval_node(e, rp, n->a);
    case NODE_CHANGED: return qexpr_eval_changed(e, rp, n->name);
    default: return qexpr_eval_cmp_cached(e, rp, n);
    }
}

int
rd_qexpr_eval(struct rd_qexpr *e, const struct st_replay *rp)
{
    if (rp->rec.what != ST_RP_STEP || rp->rec.f == NULL)
        return 0;
    return qexpr_eval_node(e, rp, e->root);
}
