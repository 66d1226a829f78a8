/*
 * The query language's lexer (query_lex.h): the tokens of an expression
 * (numbers, strings with their escapes, operators, names, parentheses),
 * one at a time into the parser's current token, and its error messages
 * with their column.
 */
#include "query_lex.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steptrace/error.h"
#include "steptrace/record.h"

/* The column (from 1, in characters) of byte `pos` of s. */
size_t
rd__qexpr_column(const char *s, size_t pos)
{
    size_t i, col = 1;

    for (i = 0; i < pos && s[i] != '\0'; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            col++;
    return col;
}

int
rd__qexpr_fail(struct qexpr_parser *p, size_t pos, const char *hint,
               const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
    snprintf(p->err->hint, sizeof(p->err->hint), "%s", hint ? hint : "");
    p->err->pos = pos;
    p->err->column = rd__qexpr_column(p->src, pos);
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
const char *
rd__qexpr_tok_text(const struct qexpr_parser *p, char *buf, size_t n)
{
    int len = p->len > 40 ? 40 : (int)p->len;

    if (p->tok == TOK_END)
        return "the end";
    snprintf(buf, n, "'%.*s%s'", len, p->src + p->start,
             p->len > 40 ? "..." : "");
    return buf;
}

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
        return rd__qexpr_fail(p, p->start, NULL, "bad number '%.*s'",
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
            return rd__qexpr_fail(p, p->start, NULL,
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
                    return rd__qexpr_fail(p, i, "\\x needs two hex digits",
                                          "bad escape in a string");
                out = (char)(qexpr_hex(s[i + 2]) * 16 + qexpr_hex(s[i + 3]));
                i += 2;
                break;
            case '\0':
                return rd__qexpr_fail(p, p->start, NULL,
                                      "unterminated string: no closing %c",
                                      quote);
            default:
                return rd__qexpr_fail(p, i,
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
            return rd__qexpr_fail(p, p->start, "use '==' to compare",
                                  "'=' is no comparison");
        p->op = OP_EQ;
        break;
    case '!':
        if (s[1] != '=')
            return rd__qexpr_fail(p, p->start, "use 'not' to negate",
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
int
rd__qexpr_next(struct qexpr_parser *p)
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
        return rd__qexpr_fail(p, p->start, "use 'and'", "unexpected '&'");
    if (c == '|')
        return rd__qexpr_fail(p, p->start, "use 'or'", "unexpected '|'");
    if (c < 0x20 || c == 0x7f)
        return rd__qexpr_fail(p, p->start, NULL, "unexpected byte 0x%02x", c);
    return rd__qexpr_fail(p, p->start, NULL, "unexpected '%c'", c);
}
