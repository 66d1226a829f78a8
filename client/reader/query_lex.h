/*
 * The query language's lexer (query_lex.c), shared with its parser
 * (query_parse.c): the parser's state, whose current token the lexer
 * reads, and the error every syntax error is reported through.  Internal
 * to client/reader.
 */
#ifndef STEPTRACE_READER_QUERY_LEX_H
#define STEPTRACE_READER_QUERY_LEX_H

#include <stddef.h>

#include "query_expr.h"
#include "query_tree.h"
#include "steptrace/buf.h"

enum qexpr_tok {
    TOK_END,
    TOK_LPAREN,
    TOK_RPAREN,
    TOK_OP,
    TOK_NUM,
    TOK_STR,
    TOK_NAME
};

/* A parse of src (rd_qexpr_parse): the lexer's place and current token,
 * then the parser's own state. */
struct qexpr_parser {
    const char *src; /* Borrowed: NUL-ended. */
    size_t pos;      /* The next byte to read. */
    /* The current token. */
    int tok;
    size_t start, len;
    int op;
    struct qexpr_num num;
    struct st_buf raw;  /* TOK_STR: the bytes the literal stands for. */
    struct st_buf text; /* ... escaped as the log writes them. */
    int depth;          /* Parentheses and 'not's open. */
    struct rd_qexpr *e; /* Owned until it is returned. */
    struct rd_qexpr_error *err; /* Borrowed: the caller's. */
};

/* Reads the next token into p (p->tok, p->start, p->len and, for its
 * kind, p->op, p->num or p->raw and p->text).  @return 0, -EINVAL (a
 * syntax error, in p->err) or ST_ENOMEM. */
int rd__qexpr_next(struct qexpr_parser *p);
/* Records the error in p->err: what is wrong, where (byte pos of
 * p->src), and a hint (or NULL).  @return -EINVAL. */
int rd__qexpr_fail(struct qexpr_parser *p, size_t pos, const char *hint,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The current token's text, for a message (cut at 40 bytes), in buf[n]
 * or a constant.  @return it. */
const char *rd__qexpr_tok_text(const struct qexpr_parser *p, char *buf,
                               size_t n);
/* The column (from 1, in characters) of byte `pos` of s. */
size_t rd__qexpr_column(const char *s, size_t pos);

#endif /* STEPTRACE_READER_QUERY_LEX_H */
