/*
 * YAML config loader: libyaml events -> a small tree; see
 * steptrace/config.h for the contract.
 *
 * The event API (not libyaml's document loader) is used so that the limits
 * hold while parsing: a node is counted, and a collection's depth checked,
 * before anything is allocated for it, and an alias is refused as soon as
 * it is seen, so no input makes the tree grow past the limits.
 */
#include "steptrace/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "steptrace/buf.h"
#include "steptrace/error.h"

#include "config_int.h"

/* State of one parse. */
struct config_parse {
    struct st_config *cfg;         /* Borrowed: the document being built. */
    struct st_config_limits lim;   /* Limits with defaults filled in. */
    struct st_config_node **stack; /* Owned array of borrowed nodes: the
                                    * open collections, innermost last. */
    size_t depth;
    size_t stack_cap;
    size_t nodes;     /* Nodes created so far. */
    int docs;         /* Documents started so far. */
    const char *text; /* Borrowed: the input, for offsets. */
    size_t len;
    char *err; /* Borrowed: the caller's buffer. */
    size_t errlen;
};

/* ---- errors ---- */

/* Writes "NAME:LINE:COLUMN: message" (LINE 0: "NAME: message"). */
static void
config_vformat(char *err, size_t errlen, const char *name, unsigned long line,
               unsigned long column, const char *fmt, va_list ap)
{
    int n;

    if (err == NULL || errlen == 0)
        return;
    if (line > 0)
        n = snprintf(err, errlen, "%s:%lu:%lu: ", name, line, column);
    else
        n = snprintf(err, errlen, "%s: ", name);
    if (n < 0)
        n = 0;
    if ((size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

static int
config_error_at(struct config_parse *p, int code, unsigned long line,
                unsigned long column, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_vformat(p->err, p->errlen, p->cfg->name, line, column, fmt, ap);
    va_end(ap);
    return code;
}

/* The same for a libyaml mark, which counts from 0. */
static int
config_error_mark(struct config_parse *p, int code, yaml_mark_t mark,
                  const char *what)
{
    return config_error_at(p, code, (unsigned long)mark.line + 1,
                           (unsigned long)mark.column + 1, "%s", what);
}

int
st_config_errorf(const struct st_config *cfg, const struct st_config_node *n,
                 char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_vformat(err, errlen, cfg ? cfg->name : "<config>", n ? n->line : 0,
                   n ? n->column : 0, fmt, ap);
    va_end(ap);
    return ST_ECONFIG;
}

/*
 * Reports libyaml's error.  Reader errors (bad encoding, control
 * characters) carry a byte offset rather than a mark: the line and column
 * are counted here from the input (the column in bytes).
 */
static int
config_error_yaml(struct config_parse *p, const yaml_parser_t *yp)
{
    unsigned long line = 1, column = 1;
    size_t i, end;

    switch (yp->error) {
    case YAML_MEMORY_ERROR:
        return config_error_at(p, ST_ENOMEM, 0, 0, "out of memory");
    case YAML_READER_ERROR:
        end = yp->problem_offset < p->len ? yp->problem_offset : p->len;
        for (i = 0; i < end; i++) {
            if (p->text[i] == '\n') {
                line++;
                column = 1;
            }
            else {
                column++;
            }
        }
        if (yp->problem_value >= 0)
            return config_error_at(p, ST_ECONFIG, line, column,
                                   "%s (byte 0x%02x)", yp->problem,
                                   (unsigned)yp->problem_value & 0xffu);
        return config_error_at(p, ST_ECONFIG, line, column, "%s", yp->problem);
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
        if (yp->context != NULL)
            return config_error_at(p, ST_ECONFIG,
                                   (unsigned long)yp->problem_mark.line + 1,
                                   (unsigned long)yp->problem_mark.column + 1,
                                   "%s (%s at line %lu, column %lu)",
                                   yp->problem, yp->context,
                                   (unsigned long)yp->context_mark.line + 1,
                                   (unsigned long)yp->context_mark.column + 1);
        return config_error_mark(p, ST_ECONFIG, yp->problem_mark,
                                 yp->problem ? yp->problem : "invalid YAML");
    default:
        return config_error_at(p, ST_ECONFIG, 0, 0, "invalid YAML (%s)",
                               yp->problem ? yp->problem : "no detail");
    }
}

/* ---- the tree ---- */

/* Counts a new node against the limit and allocates it at `mark`. */
static int
config_node_new(struct config_parse *p, int kind, yaml_mark_t mark,
                struct st_config_node **out)
{
    struct st_config_node *n;

    *out = NULL;
    if (p->nodes >= p->lim.max_nodes)
        return config_error_at(p, ST_ELIMIT, (unsigned long)mark.line + 1,
                               (unsigned long)mark.column + 1,
                               "more than %zu nodes (values, lists and "
                               "mappings) in one file",
                               p->lim.max_nodes);
    if (kind != ST_CONFIG_SCALAR && p->depth >= p->lim.max_depth)
        return config_error_at(p, ST_ELIMIT, (unsigned long)mark.line + 1,
                               (unsigned long)mark.column + 1,
                               "lists and mappings nested more than %zu "
                               "levels deep",
                               p->lim.max_depth);
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return config_error_at(p, ST_ENOMEM, 0, 0, "out of memory");
    n->kind = kind;
    n->line = (unsigned long)mark.line + 1;
    n->column = (unsigned long)mark.column + 1;
    p->nodes++;
    *out = n;
    return 0;
}

/*
 * Adds n to the innermost open collection, or makes it the root.  Takes
 * ownership of n in every case: on failure n is freed here.
 */
static int
config_attach(struct config_parse *p, struct st_config_node *n)
{
    struct st_config_node *parent, **items;
    size_t cap;

    if (p->depth == 0) {
        p->cfg->root = n;
        return 0;
    }
    parent = p->stack[p->depth - 1];
    if (parent->kind == ST_CONFIG_MAPPING && parent->nitems % 2 == 0 &&
        n->kind != ST_CONFIG_SCALAR) {
        config_error_at(p, ST_ECONFIG, n->line, n->column,
                        "a mapping key must be a plain value, not a %s",
                        n->kind == ST_CONFIG_MAPPING ? "mapping" : "list");
        st__config_node_free(n);
        return ST_ECONFIG;
    }
    if (parent->nitems == parent->cap) {
        cap = parent->cap ? parent->cap * 2 : 8;
        items = realloc(parent->items, cap * sizeof(*items));
        if (items == NULL) {
            st__config_node_free(n);
            return config_error_at(p, ST_ENOMEM, 0, 0, "out of memory");
        }
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->nitems++] = n;
    return 0;
}

static int
config_push(struct config_parse *p, struct st_config_node *n)
{
    struct st_config_node **stack;
    size_t cap;

    if (p->depth == p->stack_cap) {
        cap = p->stack_cap ? p->stack_cap * 2 : 8;
        stack = realloc(p->stack, cap * sizeof(*stack));
        if (stack == NULL)
            return config_error_at(p, ST_ENOMEM, 0, 0, "out of memory");
        p->stack = stack;
        p->stack_cap = cap;
    }
    p->stack[p->depth++] = n;
    return 0;
}

/*
 * Copies at most 80 characters of s into dst (of dstlen bytes) for an
 * error message: control characters become \xNN, so that the message
 * stays on one line, and a longer text ends in "...".
 */
static const char *
config_quote(char *dst, size_t dstlen, const char *s, size_t n)
{
    size_t i, o = 0;
    unsigned char c;

    for (i = 0; i < n && i < 80 && o + 5 < dstlen; i++) {
        c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(dst + o, dstlen - o, "\\x%02x", c);
            o += 4;
        }
        else {
            dst[o++] = (char)c;
        }
    }
    if (i < n && o + 4 < dstlen) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

/* Orders keys by text, then by position, for the duplicate check. */
static int
config_key_cmp(const void *a, const void *b)
{
    const struct st_config_node *x = *(const struct st_config_node *const *)a;
    const struct st_config_node *y = *(const struct st_config_node *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);

    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return 0;
}

/*
 * Refuses a mapping that holds a key twice: YAML forbids it, and a config
 * whose second `log_level:` silently wins hides a mistake.  Sorting keeps
 * this O(n log n) for any mapping the node limit allows.
 */
static int
config_check_keys(struct config_parse *p, const struct st_config_node *map)
{
    const struct st_config_node **keys, *dup = NULL, *first = NULL;
    size_t i, run = 0, npairs = map->nitems / 2;
    char q[400];

    if (npairs < 2)
        return 0;
    keys = malloc(npairs * sizeof(*keys));
    if (keys == NULL)
        return config_error_at(p, ST_ENOMEM, 0, 0, "out of memory");
    for (i = 0; i < npairs; i++)
        keys[i] = map->items[2 * i];
    qsort(keys, npairs, sizeof(*keys), config_key_cmp);
    /* Equal keys are now adjacent, each run in file order: keys[run] is
     * the first occurrence of the current run's text.  Report the repeat
     * that comes first in the file. */
    for (i = 1; i < npairs; i++) {
        if (keys[i]->len != keys[run]->len ||
            memcmp(keys[i]->text, keys[run]->text, keys[i]->len) != 0) {
            run = i;
            continue;
        }
        if (dup == NULL || keys[i]->line < dup->line ||
            (keys[i]->line == dup->line && keys[i]->column < dup->column)) {
            dup = keys[i];
            first = keys[run];
        }
    }
    free(keys);
    if (dup == NULL)
        return 0;
    return config_error_at(p, ST_ECONFIG, dup->line, dup->column,
                           "duplicate key '%s' (first given at line %lu, "
                           "column %lu)",
                           config_quote(q, sizeof(q), dup->text, dup->len),
                           first->line, first->column);
}

/* ---- events ---- */

/* Is `tag` (NULL: none) acceptable on a node of this kind?  Sets *str
 * when the tag forces a scalar to be a string. */
static int
config_check_tag(struct config_parse *p, const yaml_char_t *tag, int kind,
                 yaml_mark_t mark, int *str)
{
    const char *t = (const char *)tag;
    char q[400];

    *str = 0;
    if (t == NULL)
        return 0;
    if (kind == ST_CONFIG_SCALAR &&
        (strcmp(t, "!") == 0 || strcmp(t, YAML_STR_TAG) == 0)) {
        *str = 1;
        return 0;
    }
    if ((kind == ST_CONFIG_SEQUENCE && strcmp(t, YAML_SEQ_TAG) == 0) ||
        (kind == ST_CONFIG_MAPPING && strcmp(t, YAML_MAP_TAG) == 0))
        return 0;
    return config_error_at(p, ST_ECONFIG, (unsigned long)mark.line + 1,
                           (unsigned long)mark.column + 1,
                           "the tag '%s' is not supported (only !!str)",
                           config_quote(q, sizeof(q), t, strlen(t)));
}

static int
config_on_scalar(struct config_parse *p, const yaml_event_t *ev)
{
    struct st_config_node *n;
    int rc, str;
    size_t len = ev->data.scalar.length;

    rc = config_check_tag(p, ev->data.scalar.tag, ST_CONFIG_SCALAR,
                          ev->start_mark, &str);
    if (rc != 0)
        return rc;
    rc = config_node_new(p, ST_CONFIG_SCALAR, ev->start_mark, &n);
    if (rc != 0)
        return rc;
    n->text = malloc(len + 1);
    if (n->text == NULL) {
        st__config_node_free(n);
        return config_error_at(p, ST_ENOMEM, 0, 0, "out of memory");
    }
    if (len > 0)
        memcpy(n->text, ev->data.scalar.value, len);
    n->text[len] = '\0';
    n->len = len;
    switch (ev->data.scalar.style) {
    case YAML_PLAIN_SCALAR_STYLE:
        n->style = str ? ST_CONFIG_QUOTED : ST_CONFIG_PLAIN;
        break;
    case YAML_LITERAL_SCALAR_STYLE:
    case YAML_FOLDED_SCALAR_STYLE: n->style = ST_CONFIG_BLOCK; break;
    default: n->style = ST_CONFIG_QUOTED; break;
    }
    return config_attach(p, n);
}

static int
config_on_start(struct config_parse *p, const yaml_event_t *ev, int kind)
{
    struct st_config_node *n;
    const yaml_char_t *tag = kind == ST_CONFIG_MAPPING
                                 ? ev->data.mapping_start.tag
                                 : ev->data.sequence_start.tag;
    int rc, str;

    rc = config_check_tag(p, tag, kind, ev->start_mark, &str);
    if (rc != 0)
        return rc;
    rc = config_node_new(p, kind, ev->start_mark, &n);
    if (rc != 0)
        return rc;
    rc = config_attach(p, n);
    if (rc != 0)
        return rc;
    /* n is in the tree now: a failing push leaves it to st_config_free. */
    return config_push(p, n);
}

static int
config_on_end(struct config_parse *p)
{
    struct st_config_node *n;

    if (p->depth == 0)
        return config_error_at(p, ST_ECONFIG, 0, 0, "unbalanced YAML events");
    n = p->stack[--p->depth];
    if (n->kind == ST_CONFIG_MAPPING)
        return config_check_keys(p, n);
    return 0;
}

/* Handles one event.  @return 0 to go on, 1 at the end, or an error. */
static int
config_on_event(struct config_parse *p, const yaml_event_t *ev)
{
    char q[400];

    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT: return 0;
    case YAML_STREAM_END_EVENT: return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (p->docs++ > 0)
            return config_error_mark(p, ST_ECONFIG, ev->start_mark,
                                     "a second YAML document (a config "
                                     "file holds one document: remove the "
                                     "'---')");
        return 0;
    case YAML_ALIAS_EVENT:
        return config_error_at(
            p, ST_ECONFIG, (unsigned long)ev->start_mark.line + 1,
            (unsigned long)ev->start_mark.column + 1,
            "aliases (*%s) are not supported in config files: write the "
            "value out",
            config_quote(q, sizeof(q), (const char *)ev->data.alias.anchor,
                         strlen((const char *)ev->data.alias.anchor)));
    case YAML_SCALAR_EVENT: return config_on_scalar(p, ev);
    case YAML_SEQUENCE_START_EVENT:
        return config_on_start(p, ev, ST_CONFIG_SEQUENCE);
    case YAML_MAPPING_START_EVENT:
        return config_on_start(p, ev, ST_CONFIG_MAPPING);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: return config_on_end(p);
    }
    return 0;
}

/* ---- loading ---- */

void
st__config_limits_fill(struct st_config_limits *dst,
                       const struct st_config_limits *src)
{
    dst->max_bytes = src && src->max_bytes ? src->max_bytes
                                           : ST_CONFIG_MAX_BYTES;
    dst->max_depth = src && src->max_depth ? src->max_depth
                                           : ST_CONFIG_MAX_DEPTH;
    dst->max_nodes = src && src->max_nodes ? src->max_nodes
                                           : ST_CONFIG_MAX_NODES;
}

int
st_config_load_string(const char *name, const char *text, size_t len,
                      const struct st_config_limits *limits,
                      struct st_config **out, char *err, size_t errlen)
{
    struct config_parse p;
    yaml_parser_t yp;
    yaml_event_t ev;
    struct st_config *cfg;
    char dummy[1];
    int rc = 0;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (name == NULL)
        name = "<string>";
    if (text == NULL && len > 0)
        return -EINVAL;
    memset(&p, 0, sizeof(p));
    st__config_limits_fill(&p.lim, limits);
    p.text = text ? text : "";
    p.len = len;
    p.err = err;
    p.errlen = errlen;

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->name = strdup(name)) == NULL) {
        free(cfg);
        snprintf(err, errlen, "%s: out of memory", name);
        return ST_ENOMEM;
    }
    p.cfg = cfg;
    if (len > p.lim.max_bytes) {
        rc = config_error_at(&p, ST_ELIMIT, 0, 0,
                             "larger than %zu bytes: not a config file?",
                             p.lim.max_bytes);
        goto err_cfg;
    }
    if (!yaml_parser_initialize(&yp)) {
        rc = config_error_at(&p, ST_ENOMEM, 0, 0, "out of memory");
        goto err_cfg;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)p.text, len);
    while (rc == 0) {
        if (!yaml_parser_parse(&yp, &ev)) {
            rc = config_error_yaml(&p, &yp);
            break;
        }
        rc = config_on_event(&p, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&yp);
    free(p.stack);
    if (rc < 0)
        goto err_cfg;
    *out = cfg;
    return 0;

err_cfg:
    st_config_free(cfg);
    return rc;
}
