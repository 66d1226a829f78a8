/*
 * The tree of a parsed query expression (query_expr.h), shared by its
 * lexer and parser (query_lex.c, query_parse.c) and its evaluation
 * (query_eval.c).  Internal to client/reader.
 */
#ifndef STEPTRACE_READER_QUERY_TREE_H
#define STEPTRACE_READER_QUERY_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "query_expr.h"
#include "steptrace/replay.h"

enum qexpr_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

enum qexpr_field {
    FIELD_FUNC,
    FIELD_FILE,
    FIELD_LINE,
    FIELD_THREAD,
    FIELD_PID,
    FIELD_STEP
};

enum qexpr_node_kind { NODE_OR, NODE_AND, NODE_NOT, NODE_CMP, NODE_CHANGED };

enum qexpr_arg_kind { ARG_NUM, ARG_TEXT, ARG_FIELD, ARG_VAR };

/* How a comparison compares. */
enum qexpr_how {
    HOW_TEXT, /* A string literal on a side: the texts. */
    HOW_NUM,  /* A number literal on a side: numbers, else false. */
    HOW_ANY   /* Numbers when both sides are, else their texts. */
};

/* The types whose text is read as a number. */
enum qexpr_type { TYPE_INT, TYPE_FLOAT, TYPE_BOOL, TYPE_COUNT };

/*
 * A number.  An integer is held by i (is_int: it fits in 64 bits) or by
 * its decimal digits (big), or both: a variable's int is compared by its
 * digits, without parsing them, unless it meets a float.
 */
struct qexpr_num {
    int is_int; /* i holds it exactly. */
    int64_t i;
    int has_d; /* d holds it (rounded for a large integer). */
    double d;
    /* An integer's digits (borrowed; no sign, no leading zeros), its
     * sign, and the whole text d is read from when needed (NUL-ended). */
    const char *big;
    size_t nbig;
    int neg;
    const char *text;
};

/* One side of a comparison. */
struct qexpr_arg {
    int kind;    /* enum qexpr_arg_kind */
    int field;   /* ARG_FIELD */
    size_t name; /* ARG_VAR: index in e->names. */
    struct qexpr_num num;
    char *text; /* ARG_TEXT: owned, escaped as the log writes text. */
    size_t n;
};

struct qexpr_node {
    int kind;    /* enum qexpr_node_kind */
    size_t a, b; /* Children: OR and AND (a, b), NOT (a). */
    int op;      /* CMP: enum qexpr_op */
    int how;     /* CMP: enum qexpr_how */
    struct qexpr_arg l, r;
    size_t name; /* CHANGED */
    /* CMP of func or file with a string: the answer for the string last
     * seen (borrowed from the replay's strings, which live as long as
     * the file and never change, so the same one gives the same answer;
     * forgotten with the file). */
    const struct st_rp_string *seen;
    int seen_answer;
};

/* A set of string ids (of one name, in the current file). */
struct qexpr_sids {
    uint32_t *ids; /* Owned. */
    size_t n, cap;
};

struct qexpr_name {
    char *text; /* Owned, NUL-terminated. */
    size_t n;
    struct qexpr_sids sids;
    size_t hint[2]; /* Index where it was found last: locals, globals. */
};

struct rd_qexpr {
    struct qexpr_node *nodes; /* Owned. */
    size_t nnodes, cap;
    size_t root;
    struct qexpr_name *names; /* Owned. */
    size_t nnames, namecap;
    struct qexpr_sids types[TYPE_COUNT];
    int uses_vars;
};

static inline int
qexpr_sids_has(const struct qexpr_sids *s, uint32_t sid)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (s->ids[i] == sid)
            return 1;
    return 0;
}

/* Gives num the digits and sign of s[0..n-1], an integer's text. */
static inline void
qexpr_set_big(struct qexpr_num *num, const char *s, size_t n)
{
    num->neg = n > 0 && *s == '-';
    if (num->neg) {
        s++;
        n--;
    }
    while (n > 1 && *s == '0') {
        s++;
        n--;
    }
    /* -0 is 0. */
    if (n == 1 && *s == '0')
        num->neg = 0;
    num->big = s;
    num->nbig = n;
}

#endif /* STEPTRACE_READER_QUERY_TREE_H */
