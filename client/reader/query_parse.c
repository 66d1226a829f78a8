/*
 * The query language's parser (query_expr.h): a lexer and a
 * recursive-descent parser into an array of nodes (query_tree.h).
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

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_tree.h"
#include "steptrace/error.h"
#include "steptrace/record.h"

/* Parentheses and 'not's nested at most this deep: an expression cannot
 * exhaust the stack. */
#define QEXPR_MAX_DEPTH 100

enum qexpr_tok {
    TOK_END,
    TOK_LPAREN,
    TOK_RPAREN,
    TOK_OP,
    TOK_NUM,
    TOK_STR,
    TOK_NAME
};

static const struct {
    const char *name;
    int field;
} qexpr_fields[] = {{"func", FIELD_FUNC}, {"file", FIELD_FILE},
                    {"line", FIELD_LINE}, {"thread", FIELD_THREAD},
                    {"pid", FIELD_PID},   {"step", FIELD_STEP}};

static const char *const qexpr_op_names[] = {"==", "!=", "<", "<=", ">", ">="};

struct qexpr_parser {
    const char *src;
    size_t pos; /* The next byte to read. */
    /* The current token. */
    int tok;
    size_t start, len;
    int op;
    struct qexpr_num num;
    struct st_buf raw;  /* TOK_STR: the bytes the literal stands for. */
    struct st_buf text; /* ... escaped as the log writes them. */
    int depth;
    struct rd_qexpr *e;
    struct rd_qexpr_error *err;
};

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

/* ---- the lexer ---- */

/* The column (from 1, in characters) of byte `pos` of s. */
static size_t
qexpr_column(const char *s, size_t pos)
{
    size_t i, col = 1;

    for (i = 0; i < pos && s[i] != '\0'; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            col++;
    return col;
}

/* Records the error: what is wrong, where, and a hint (or NULL).
 * @return -EINVAL. */
static int qexpr_fail(struct qexpr_parser *p, size_t pos, const char *hint,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
qexpr_fail(struct qexpr_parser *p, size_t pos, const char *hint,
           const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
    snprintf(p->err->hint, sizeof(p->err->hint), "%s", hint ? hint : "");
    p->err->pos = pos;
    p->err->column = qexpr_column(p->src, pos);
    return -EINVAL;
}

static int
qexpr_is_name_byte(unsigned char c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
        c >= 0x80)
        return 1;
    return !first && c >= '0' && c <= '9';
}

/* The current token's text, for a message (cut at 40 bytes). */
static const char *
qexpr_tok_text(const struct qexpr_parser *p, char *buf, size_t n)
{
    int len = p->len > 40 ? 40 : (int)p->len;

    if (p->tok == TOK_END)
        return "the end";
    snprintf(buf, n, "'%.*s%s'", len, p->src + p->start,
             p->len > 40 ? "..." : "");
    return buf;
}

/* Marks num, an integer text s[0..n-1] past 64 bits, as big. */

/* A number: [-] digits [. digits] [(e|E) [+|-] digits], not followed by
 * a name's byte. */
static int
qexpr_lex_number(struct qexpr_parser *p)
{
    const char *s = p->src + p->start, *q = s;
    int digits = 0, is_int = 1;
    char *end;

    if (*q == '-')
        q++;
    for (; *q >= '0' && *q <= '9'; q++)
        digits++;
    if (*q == '.') {
        is_int = 0;
        for (q++; *q >= '0' && *q <= '9'; q++)
            digits++;
    }
    if (digits > 0 && (*q == 'e' || *q == 'E')) {
        const char *x = q + 1;

        if (*x == '+' || *x == '-')
            x++;
        if (*x >= '0' && *x <= '9') {
            is_int = 0;
            for (q = x; *q >= '0' && *q <= '9'; q++)
                ;
        }
    }
    if (digits == 0 || qexpr_is_name_byte((unsigned char)*q, 0) || *q == '.') {
        const char *r = q;

        while (qexpr_is_name_byte((unsigned char)*r, 0) || *r == '.')
            r++;
        return qexpr_fail(p, p->start, NULL, "bad number '%.*s'",
                          (int)(r - s > 40 ? 40 : r - s), s);
    }
    p->len = (size_t)(q - s);
    p->pos = p->start + p->len;
    p->tok = TOK_NUM;
    memset(&p->num, 0, sizeof(p->num));
    errno = 0;
    if (is_int) {
        p->num.i = strtoll(s, &end, 10);
        p->num.is_int = errno == 0;
        /* Digits too: variables' ints are compared by theirs. */
        qexpr_set_big(&p->num, s, p->len);
    }
    p->num.d = p->num.is_int ? (double)p->num.i : strtod(s, &end);
    p->num.has_d = 1;
    return 0;
}

static int
qexpr_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string in ' or " with the escapes \\ \' \" \n \r \t \xHH. */
static int
qexpr_lex_string(struct qexpr_parser *p)
{
    const char *s = p->src;
    char quote = s[p->start];
    size_t i = p->start + 1;

    p->raw.len = 0;
    p->text.len = 0;
    for (;;) {
        char c = s[i], out;

        if (c == '\0')
            return qexpr_fail(p, p->start, NULL,
                              "unterminated string: no closing %c", quote);
        if (c == quote)
            break;
        out = c;
        if (c == '\\') {
            switch (s[i + 1]) {
            case '\\': out = '\\'; break;
            case '\'': out = '\''; break;
            case '"': out = '"'; break;
            case 'n': out = '\n'; break;
            case 'r': out = '\r'; break;
            case 't': out = '\t'; break;
            case 'x':
                if (qexpr_hex(s[i + 2]) < 0 || qexpr_hex(s[i + 3]) < 0)
                    return qexpr_fail(p, i, "\\x needs two hex digits",
                                      "bad escape in a string");
                out = (char)(qexpr_hex(s[i + 2]) * 16 + qexpr_hex(s[i + 3]));
                i += 2;
                break;
            case '\0':
                return qexpr_fail(p, p->start, NULL,
                                  "unterminated string: no closing %c", quote);
            default:
                return qexpr_fail(p, i,
                                  "\\\\ \\' \\\" \\n \\r \\t \\xHH are "
                                  "escapes; \\\\ is a backslash",
                                  "unknown escape '\\%c' in a string",
                                  s[i + 1]);
            }
            i++;
        }
        if (st_buf_append(&p->raw, &out, 1) != 0)
            return ST_ENOMEM;
        i++;
    }
    /* Values are compared as the log writes them: escaped. */
    if (st_record_escape(&p->text, p->raw.data ? p->raw.data : "",
                         p->raw.len) != 0)
        return ST_ENOMEM;
    p->tok = TOK_STR;
    p->len = i + 1 - p->start;
    p->pos = i + 1;
    return 0;
}

/* An operator: == != < <= > >=, with hints for = ! & |. */
static int
qexpr_lex_op(struct qexpr_parser *p)
{
    const char *s = p->src + p->start;

    p->tok = TOK_OP;
    p->len = s[1] == '=' ? 2 : 1;
    switch (s[0]) {
    case '=':
        if (s[1] != '=')
            return qexpr_fail(p, p->start, "use '==' to compare",
                              "'=' is no comparison");
        p->op = OP_EQ;
        break;
    case '!':
        if (s[1] != '=')
            return qexpr_fail(p, p->start, "use 'not' to negate",
                              "unexpected '!'");
        p->op = OP_NE;
        break;
    case '<': p->op = s[1] == '=' ? OP_LE : OP_LT; break;
    default: p->op = s[1] == '=' ? OP_GE : OP_GT; break;
    }
    p->pos = p->start + p->len;
    return 0;
}

/* Reads the next token into p. */
static int
qexpr_next(struct qexpr_parser *p)
{
    const char *s = p->src;
    unsigned char c;

    while (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' ||
           s[p->pos] == '\r')
        p->pos++;
    p->start = p->pos;
    p->len = 1;
    c = (unsigned char)s[p->pos];
    if (c == '\0') {
        p->tok = TOK_END;
        p->len = 0;
        return 0;
    }
    if (c == '(' || c == ')') {
        p->tok = c == '(' ? TOK_LPAREN : TOK_RPAREN;
        p->pos++;
        return 0;
    }
    if (c == '=' || c == '!' || c == '<' || c == '>')
        return qexpr_lex_op(p);
    if (c == '"' || c == '\'')
        return qexpr_lex_string(p);
    if ((c >= '0' && c <= '9') || c == '.' ||
        (c == '-' && ((s[p->pos + 1] >= '0' && s[p->pos + 1] <= '9') ||
                      s[p->pos + 1] == '.')))
        return qexpr_lex_number(p);
    if (qexpr_is_name_byte(c, 1)) {
        while (qexpr_is_name_byte((unsigned char)s[p->pos], 0))
            p->pos++;
        p->tok = TOK_NAME;
        p->len = p->pos - p->start;
        return 0;
    }
    if (c == '&')
        return qexpr_fail(p, p->start, "use 'and'", "unexpected '&'");
    if (c == '|')
        return qexpr_fail(p, p->start, "use 'or'", "unexpected '|'");
    if (c < 0x20 || c == 0x7f)
        return qexpr_fail(p, p->start, NULL, "unexpected byte 0x%02x", c);
    return qexpr_fail(p, p->start, NULL, "unexpected '%c'", c);
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
    if ((r = qexpr_next(p)) != 0 || (r = qexpr_next(p)) != 0)
        return r;
    if (p->tok != TOK_NAME || qexpr_is_keyword(p))
        return qexpr_fail(p, p->start, NULL,
                          "expected a variable's name in %s(...)", fn);
    r = qexpr_name_index(p->e, p->src + p->start, p->len, name);
    if (r == 0)
        r = qexpr_next(p);
    if (r != 0)
        return r;
    if (p->tok != TOK_RPAREN)
        return qexpr_fail(p, p->start, NULL, "expected ')' after the name");
    return qexpr_next(p);
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
        return qexpr_next(p);
    }
    if (p->tok == TOK_STR) {
        a->kind = ARG_TEXT;
        a->text = malloc(p->text.len + 1);
        if (a->text == NULL)
            return ST_ENOMEM;
        memcpy(a->text, p->text.data ? p->text.data : "", p->text.len);
        a->text[p->text.len] = '\0';
        a->n = p->text.len;
        return qexpr_next(p);
    }
    if (p->tok != TOK_NAME || qexpr_is(p, "and") || qexpr_is(p, "or") ||
        qexpr_is(p, "not")) {
        if (p->tok == TOK_END && p->start == 0)
            return qexpr_fail(p, 0, "write a condition, e.g. x == 1",
                              "empty expression");
        return qexpr_fail(p, p->start, missing_hint, "%s", missing);
    }
    if (qexpr_is(p, "True") || qexpr_is(p, "False")) {
        a->kind = ARG_NUM;
        a->num.is_int = 1;
        a->num.i = qexpr_is(p, "True");
        a->num.d = (double)a->num.i;
        a->num.has_d = 1;
        return qexpr_next(p);
    }
    if (qexpr_call_follows(p)) {
        if (qexpr_is(p, "var")) {
            a->kind = ARG_VAR;
            return qexpr_parse_call_name(p, "var", &a->name);
        }
        if (qexpr_is(p, "changed"))
            return qexpr_fail(p, p->start, "it is not compared",
                              "changed(...) is a condition of its own");
        return qexpr_fail(p, p->start,
                          "the functions are changed(NAME) and var(NAME)",
                          "unknown function '%.*s'",
                          (int)(p->len > 40 ? 40 : p->len), p->src + p->start);
    }
    for (i = 0; i < sizeof(qexpr_fields) / sizeof(qexpr_fields[0]); i++)
        if (qexpr_is(p, qexpr_fields[i].name)) {
            a->kind = ARG_FIELD;
            a->field = qexpr_fields[i].field;
            return qexpr_next(p);
        }
    a->kind = ARG_VAR;
    r = qexpr_name_index(p->e, p->src + p->start, p->len, &a->name);
    return r != 0 ? r : qexpr_next(p);
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
            return qexpr_fail(p, lstart, hint, "a name alone is no condition");
        }
        return qexpr_fail(p, p->start,
                          "== != < <= > >=", "expected a comparison before %s",
                          qexpr_tok_text(p, tok, sizeof(tok)));
    }
    n.op = p->op;
    snprintf(missing, sizeof(missing), "expected a value after '%s'",
             qexpr_op_names[n.op]);
    if ((r = qexpr_next(p)) == 0)
        r = qexpr_parse_value(p, &n.r, missing, NULL);
    if (r == 0 && p->tok == TOK_OP)
        r = qexpr_fail(p, p->start, "write a < x and x < b",
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
            return qexpr_fail(p, p->start, NULL, "nested too deeply");
        if ((r = qexpr_next(p)) != 0 || (r = qexpr_parse_or(p, idx)) != 0)
            return r;
        if (p->tok != TOK_RPAREN) {
            snprintf(hint, sizeof(hint), "to close the '(' at column %zu",
                     qexpr_column(p->src, open));
            return qexpr_fail(p, p->start, hint, "expected ')'");
        }
        p->depth--;
        return qexpr_next(p);
    }
    if (qexpr_is(p, "changed") && qexpr_call_follows(p)) {
        r = qexpr_parse_call_name(p, "changed", &name);
        if (r == 0)
            r = qexpr_node_new(p->e, NODE_CHANGED, idx);
        if (r == 0)
            p->e->nodes[*idx].name = name;
        if (r == 0 && p->tok == TOK_OP)
            r = qexpr_fail(p, p->start, "it is not compared",
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
        return qexpr_fail(p, p->start, NULL, "nested too deeply");
    if ((r = qexpr_next(p)) != 0 || (r = qexpr_parse_unary(p, &a)) != 0 ||
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
        if ((r = qexpr_next(p)) != 0 || (r = sub(p, &b)) != 0 ||
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
    r = qexpr_next(&p);
    if (r == 0)
        r = qexpr_parse_or(&p, &p.e->root);
    if (r == 0 && p.tok == TOK_RPAREN)
        r = qexpr_fail(&p, p.start, NULL, "unmatched ')'");
    else if (r == 0 && p.tok != TOK_END)
        r = qexpr_fail(&p, p.start, "join conditions with 'and' or 'or'",
                       "unexpected %s after a whole condition",
                       qexpr_tok_text(&p, tok, sizeof(tok)));
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
