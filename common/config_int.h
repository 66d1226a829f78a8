/*
 * The tree a config file is loaded into (steptrace/config.h), shared by
 * config.c, which builds it from libyaml's events, and config_tree.c,
 * which reads and frees it.  Private to common/.
 */
#ifndef STEPTRACE_COMMON_CONFIG_INT_H
#define STEPTRACE_COMMON_CONFIG_INT_H

#include <stddef.h>

#include "steptrace/config.h"

struct st_config_node {
    int kind;                      /* enum st_config_kind. */
    int style;                     /* enum st_config_style; 0: collection. */
    unsigned long line;            /* 1-based. */
    unsigned long column;          /* 1-based. */
    char *text;                    /* Owned: a scalar's text, NUL-ended. */
    size_t len;                    /* Bytes of text, NUL excluded. */
    struct st_config_node **items; /* Owned array of owned children; a
                                    * mapping stores key, value, key, ... */
    size_t nitems;                 /* Entries used in items. */
    size_t cap;                    /* Entries allocated in items. */
};

struct st_config {
    char *name;                  /* Owned: the path, for messages. */
    struct st_config_node *root; /* Owned; NULL for an empty document. */
};

/* Frees n and everything under it (NULL: nothing). */
void st__config_node_free(struct st_config_node *n);

/* dst = src with its zero fields (or all, for a NULL src) given the
 * defaults of steptrace/config.h. */
void st__config_limits_fill(struct st_config_limits *dst,
                            const struct st_config_limits *src);

#endif /* STEPTRACE_COMMON_CONFIG_INT_H */
