/*
 * The query language's parser (query_expr.h): a recursive-descent
 * parser, over the tokens of its lexer (query_lex.c), into an array of
 * nodes (query_tree.h).
 *
 *   expr     := and ('or' and)*
 *   and      := unary ('and' unary)*
 *   unary    := 'not' unary | primary
 *   primary  := '(' expr ')' | 'changed' '(' NAME ')' | value OP value
 *   value    := NUMBER | STRING | 'True' | 'False' | FIELD | NAME
 *             | 'var' '(' NAME ')'
 *   OP       := '==' | '!=' | '<' | '<=' | '>' | '>='
 *   FIELD    := 'func' | 'file' | 'line' | 'thread' | 'pid' | 'step'
 *
 * What each comparison compares is settled here (enum qexpr_how), so
 * that the evaluation (query_eval.c) decides nothing per step that it
 * could have decided once.
 */
#include "query_expr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_lex.h"
#include "query_tree.h"
#include "steptrace/error.h"

/* Parentheses and 'not's nested at most this deep: an expression cannot
 * exhaust the stack. */
#define QEXPR_MAX_DEPTH 100

static const struct {
    const char *name;
    int field;
} qexpr_fields[] = {{"func", FIELD_FUNC}, {"file", FIELD_FILE},
                    {"line", FIELD_LINE}, {"thread", FIELD_THREAD},
                    {"pid", FIELD_PID},   {"step", FIELD_STEP}};

static const char *const qexpr_op_names[] = {"==", "!=", "<", "<=", ">", ">="};

/* ---- the tree ---- */

static void
qexpr_sids_close(struct qexpr_sids *s)
{
    free(s->ids);
    memset(s, 0, sizeof(*s));
}

void
rd_qexpr_free(struct rd_qexpr *e)
{
    size_t i;

    if (e == NULL)
        return;
    for (i = 0; i < e->nnodes; i++) {
        free(e->nodes[i].l.text);
        free(e->nodes[i].r.text);
    }
    for (i = 0; i < e->nnames; i++) {
        free(e->names[i].text);
        qexpr_sids_close(&e->names[i].sids);
    }
    for (i = 0; i < TYPE_COUNT; i++)
        qexpr_sids_close(&e->types[i]);
    free(e->nodes);
    free(e->names);
    free(e);
}

/* A new node, zeroed, into *idx. */
static int
qexpr_node_new(struct rd_qexpr *e, int kind, size_t *idx)
{
    struct qexpr_node *nodes = st_grow(e->nodes, &e->cap, e->nnodes + 1,
                                       sizeof(*nodes), 8);

    if (nodes == NULL)
        return ST_ENOMEM;
    e->nodes = nodes;
    memset(&nodes[e->nnodes], 0, sizeof(nodes[0]));
    nodes[e->nnodes].kind = kind;
    *idx = e->nnodes++;
    return 0;
}

/* The index of the name p[0..n-1], added when new. */
static int
qexpr_name_index(struct rd_qexpr *e, const char *p, size_t n, size_t *idx)
{
    struct qexpr_name *names;
    size_t i;

    for (i = 0; i < e->nnames; i++)
        if (e->names[i].n == n && memcmp(e->names[i].text, p, n) == 0) {
            *idx = i;
            return 0;
        }
    names = st_grow(e->names, &e->namecap, e->nnames + 1, sizeof(*names), 4);
    if (names == NULL)
        return ST_ENOMEM;
    e->names = names;
    memset(&names[e->nnames], 0, sizeof(names[0]));
    names[e->nnames].text = strndup(p, n);
    if (names[e->nnames].text == NULL)
        return ST_ENOMEM;
    names[e->nnames].n = n;
    *idx = e->nnames++;
    e->uses_vars = 1;
    return 0;
}

/* ---- the parser ---- */

static int
qexpr_is(const struct qexpr_parser *p, const char *word)
{
    size_t n = strlen(word);

    return p->tok == TOK_NAME && p->len == n &&
           memcmp(p->src + p->start, word, n) == 0;
}

static int
qexpr_is_keyword(const struct qexpr_parser *p)
{
    return qexpr_is(p, "and") || qexpr_is(p, "or") || qexpr_is(p, "not") ||
           qexpr_is(p, "True") || qexpr_is(p, "False");
}

/* Is the next byte after the current token (past spaces) a '('? */
static int
qexpr_call_follows(const struct qexpr_parser *p)
{
    size_t i = p->pos;

    while (p->src[i] == ' ' || p->src[i] == '\t' || p->src[i] == '\n' ||
           p->src[i] == '\r')
        i++;
    return p->src[i] == '(';
}

/* "( NAME )" after changed or var: the name's index into *name. */
static int
qexpr_parse_call_name(struct qexpr_parser *p, const char *fn, size_t *name)
{
    int r;

    /* Past the name and its '('. */
    if ((r = rd__qexpr_next(p)) != 0 || (r = rd__qexpr_next(p)) != 0)
        return r;
    if (p->tok != TOK_NAME || qexpr_is_keyword(p))
        return rd__qexpr_fail(p, p->start, NULL,
                              "expected a variable's name in %s(...)", fn);
    r = qexpr_name_index(p->e, p->src + p->start, p->len, name);
    if (r == 0)
        r = rd__qexpr_next(p);
    if (r != 0)
        return r;
    if (p->tok != TOK_RPAREN)
        return rd__qexpr_fail(p, p->start, NULL,
                              "expected ')' after the name");
    return rd__qexpr_next(p);
}

/* A value: a literal, a field, a variable.  `missing` and
 * `missing_hint` are the message when there is none. */
static int
qexpr_parse_value(struct qexpr_parser *p, struct qexpr_arg *a,
                  const char *missing, const char *missing_hint)
{
    size_t i;
    int r;

    memset(a, 0, sizeof(*a));
    if (p->tok == TOK_NUM) {
        a->kind = ARG_NUM;
        a->num = p->num;
        if (a->num.big != NULL) {
            /* The tree keeps its own copy of the digits. */
            a->text = strndup(a->num.big, a->num.nbig);
            if (a->text == NULL)
                return ST_ENOMEM;
            a->num.big = a->text;
        }
        return rd__qexpr_next(p);
    }
    if (p->tok == TOK_STR) {
        a->kind = ARG_TEXT;
        a->text = malloc(p->text.len + 1);
        if (a->text == NULL)
            return ST_ENOMEM;
        memcpy(a->text, p->text.data ? p->text.data : "", p->text.len);
        a->text[p->text.len] = '\0';
        a->n = p->text.len;
        return rd__qexpr_next(p);
    }
    if (p->tok != TOK_NAME || qexpr_is(p, "and") || qexpr_is(p, "or") ||
        qexpr_is(p, "not")) {
        if (p->tok == TOK_END && p->start == 0)
            return rd__qexpr_fail(p, 0, "write a condition, e.g. x == 1",
                                  "empty expression");
        return rd__qexpr_fail(p, p->start, missing_hint, "%s", missing);
    }
    if (qexpr_is(p, "True") || qexpr_is(p, "False")) {
        a->kind = ARG_NUM;
        a->num.is_int = 1;
        a->num.i = qexpr_is(p, "True");
        a->num.d = (double)a->num.i;
        a->num.has_d = 1;
        return rd__qexpr_next(p);
    }
    if (qexpr_call_follows(p)) {
        if (qexpr_is(p, "var")) {
            a->kind = ARG_VAR;
            return qexpr_parse_call_name(p, "var", &a->name);
        }
        if (qexpr_is(p, "changed"))
            return rd__qexpr_fail(p, p->start, "it is not compared",
                                  "changed(...) is a condition of its own");
        return rd__qexpr_fail(p, p->start,
                              "the functions are changed(NAME) and var(NAME)",
                              "unknown function '%.*s'",
                              (int)(p->len > 40 ? 40 : p->len),
                              p->src + p->start);
    }
    for (i = 0; i < sizeof(qexpr_fields) / sizeof(qexpr_fields[0]); i++)
        if (qexpr_is(p, qexpr_fields[i].name)) {
            a->kind = ARG_FIELD;
            a->field = qexpr_fields[i].field;
            return rd__qexpr_next(p);
        }
    a->kind = ARG_VAR;
    r = qexpr_name_index(p->e, p->src + p->start, p->len, &a->name);
    return r != 0 ? r : rd__qexpr_next(p);
}

static int
qexpr_how(const struct qexpr_node *n)
{
    if (n->l.kind == ARG_TEXT || n->r.kind == ARG_TEXT)
        return HOW_TEXT;
    if (n->l.kind == ARG_NUM || n->r.kind == ARG_NUM)
        return HOW_NUM;
    return HOW_ANY;
}

/* value OP value. */
static int
qexpr_parse_cmp(struct qexpr_parser *p, size_t *idx)
{
    struct qexpr_node n;
    size_t lstart = p->start, llen = p->len;
    char missing[64], tok[64], hint[80];
    int r;

    memset(&n, 0, sizeof(n));
    n.kind = NODE_CMP;
    r = qexpr_parse_value(p, &n.l, "expected a condition",
                          "a comparison, changed(NAME), 'not' or '('");
    if (r != 0)
        return r;
    if (p->tok != TOK_OP) {
        free(n.l.text);
        if ((n.l.kind == ARG_VAR || n.l.kind == ARG_FIELD) &&
            (p->tok == TOK_END || p->tok == TOK_RPAREN || qexpr_is(p, "and") ||
             qexpr_is(p, "or"))) {
            snprintf(hint, sizeof(hint), "compare it: %.*s == True",
                     (int)(llen > 40 ? 40 : llen), p->src + lstart);
            return rd__qexpr_fail(p, lstart, hint,
                                  "a name alone is no condition");
        }
        return rd__qexpr_fail(p, p->start, "== != < <= > >=",
                              "expected a comparison before %s",
                              rd__qexpr_tok_text(p, tok, sizeof(tok)));
    }
    n.op = p->op;
    snprintf(missing, sizeof(missing), "expected a value after '%s'",
             qexpr_op_names[n.op]);
    if ((r = rd__qexpr_next(p)) == 0)
        r = qexpr_parse_value(p, &n.r, missing, NULL);
    if (r == 0 && p->tok == TOK_OP)
        r = rd__qexpr_fail(p, p->start, "write a < x and x < b",
                           "comparisons do not chain");
    if (r == 0)
        r = qexpr_node_new(p->e, NODE_CMP, idx);
    if (r != 0) {
        free(n.l.text);
        free(n.r.text);
        return r;
    }
    n.how = qexpr_how(&n);
    p->e->nodes[*idx] = n;
    return 0;
}

static int qexpr_parse_or(struct qexpr_parser *p, size_t *idx);

static int
qexpr_parse_primary(struct qexpr_parser *p, size_t *idx)
{
    size_t open = p->start, name;
    char hint[64];
    int r;

    if (p->tok == TOK_LPAREN) {
        if (++p->depth > QEXPR_MAX_DEPTH)
            return rd__qexpr_fail(p, p->start, NULL, "nested too deeply");
        if ((r = rd__qexpr_next(p)) != 0 || (r = qexpr_parse_or(p, idx)) != 0)
            return r;
        if (p->tok != TOK_RPAREN) {
            snprintf(hint, sizeof(hint), "to close the '(' at column %zu",
                     rd__qexpr_column(p->src, open));
            return rd__qexpr_fail(p, p->start, hint, "expected ')'");
        }
        p->depth--;
        return rd__qexpr_next(p);
    }
    if (qexpr_is(p, "changed") && qexpr_call_follows(p)) {
        r = qexpr_parse_call_name(p, "changed", &name);
        if (r == 0)
            r = qexpr_node_new(p->e, NODE_CHANGED, idx);
        if (r == 0)
            p->e->nodes[*idx].name = name;
        if (r == 0 && p->tok == TOK_OP)
            r = rd__qexpr_fail(p, p->start, "it is not compared",
                               "changed(...) is a condition of its own");
        return r;
    }
    return qexpr_parse_cmp(p, idx);
}

static int
qexpr_parse_unary(struct qexpr_parser *p, size_t *idx)
{
    size_t a;
    int r;

    if (!qexpr_is(p, "not"))
        return qexpr_parse_primary(p, idx);
    if (++p->depth > QEXPR_MAX_DEPTH)
        return rd__qexpr_fail(p, p->start, NULL, "nested too deeply");
    if ((r = rd__qexpr_next(p)) != 0 || (r = qexpr_parse_unary(p, &a)) != 0 ||
        (r = qexpr_node_new(p->e, NODE_NOT, idx)) != 0)
        return r;
    p->e->nodes[*idx].a = a;
    p->depth--;
    return 0;
}

/* left (word right)*, for 'and' (over unary) and 'or' (over and). */
static int
qexpr_parse_chain(struct qexpr_parser *p, size_t *idx, const char *word,
                  int kind, int (*sub)(struct qexpr_parser *, size_t *))
{
    size_t a, b;
    int r;

    if ((r = sub(p, &a)) != 0)
        return r;
    while (qexpr_is(p, word)) {
        if ((r = rd__qexpr_next(p)) != 0 || (r = sub(p, &b)) != 0 ||
            (r = qexpr_node_new(p->e, kind, idx)) != 0)
            return r;
        p->e->nodes[*idx].a = a;
        p->e->nodes[*idx].b = b;
        a = *idx;
    }
    *idx = a;
    return 0;
}

static int
qexpr_parse_and(struct qexpr_parser *p, size_t *idx)
{
    return qexpr_parse_chain(p, idx, "and", NODE_AND, qexpr_parse_unary);
}

static int
qexpr_parse_or(struct qexpr_parser *p, size_t *idx)
{
    return qexpr_parse_chain(p, idx, "or", NODE_OR, qexpr_parse_and);
}

int
rd_qexpr_parse(const char *src, struct rd_qexpr **out,
               struct rd_qexpr_error *err)
{
    struct qexpr_parser p;
    char tok[64];
    int r;

    *out = NULL;
    memset(err, 0, sizeof(*err));
    memset(&p, 0, sizeof(p));
    p.src = src;
    p.err = err;
    st_buf_init(&p.raw);
    st_buf_init(&p.text);
    p.e = calloc(1, sizeof(*p.e));
    if (p.e == NULL)
        return ST_ENOMEM;
    r = rd__qexpr_next(&p);
    if (r == 0)
        r = qexpr_parse_or(&p, &p.e->root);
    if (r == 0 && p.tok == TOK_RPAREN)
        r = rd__qexpr_fail(&p, p.start, NULL, "unmatched ')'");
    else if (r == 0 && p.tok != TOK_END)
        r = rd__qexpr_fail(&p, p.start, "join conditions with 'and' or 'or'",
                           "unexpected %s after a whole condition",
                           rd__qexpr_tok_text(&p, tok, sizeof(tok)));
    st_buf_close(&p.raw);
    st_buf_close(&p.text);
    if (r != 0) {
        rd_qexpr_free(p.e);
        return r;
    }
    *out = p.e;
    return 0;
}

int
rd_qexpr_uses_vars(const struct rd_qexpr *e)
{
    return e->uses_vars;
}
