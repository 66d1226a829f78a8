/*
 * A loaded config's tree: freeing it and reading it (the accessors of
 * steptrace/config.h).  config.c builds it.
 */
#include "steptrace/config.h"

#include <stdlib.h>
#include <string.h>

#include "config_int.h"

void
st__config_node_free(struct st_config_node *n)
{
    size_t i;

    if (n == NULL)
        return;
    /* Recursion is bounded by the depth limit the tree was built under. */
    for (i = 0; i < n->nitems; i++)
        st__config_node_free(n->items[i]);
    free(n->items);
    free(n->text);
    free(n);
}

void
st_config_free(struct st_config *cfg)
{
    if (cfg == NULL)
        return;
    st__config_node_free(cfg->root);
    free(cfg->name);
    free(cfg);
}

/* ---- accessors ---- */

const char *
st_config_name(const struct st_config *cfg)
{
    return cfg ? cfg->name : NULL;
}

const struct st_config_node *
st_config_root(const struct st_config *cfg)
{
    return cfg ? cfg->root : NULL;
}

int
st_config_kind(const struct st_config_node *n)
{
    return n ? n->kind : 0;
}

int
st_config_style(const struct st_config_node *n)
{
    return n ? n->style : 0;
}

unsigned long
st_config_line(const struct st_config_node *n)
{
    return n ? n->line : 0;
}

unsigned long
st_config_column(const struct st_config_node *n)
{
    return n ? n->column : 0;
}

const char *
st_config_text(const struct st_config_node *n, size_t *len)
{
    if (n == NULL || n->kind != ST_CONFIG_SCALAR) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = n->len;
    return n->text;
}

size_t
st_config_size(const struct st_config_node *n)
{
    if (n == NULL)
        return 0;
    if (n->kind == ST_CONFIG_MAPPING)
        return n->nitems / 2;
    return n->kind == ST_CONFIG_SEQUENCE ? n->nitems : 0;
}

const struct st_config_node *
st_config_item(const struct st_config_node *n, size_t i)
{
    if (n == NULL || n->kind != ST_CONFIG_SEQUENCE || i >= n->nitems)
        return NULL;
    return n->items[i];
}

const struct st_config_node *
st_config_key(const struct st_config_node *n, size_t i)
{
    if (n == NULL || n->kind != ST_CONFIG_MAPPING || i >= n->nitems / 2)
        return NULL;
    return n->items[2 * i];
}

const struct st_config_node *
st_config_value(const struct st_config_node *n, size_t i)
{
    if (n == NULL || n->kind != ST_CONFIG_MAPPING || i >= n->nitems / 2)
        return NULL;
    return n->items[2 * i + 1];
}

const struct st_config_node *
st_config_lookup(const struct st_config_node *n, const char *key)
{
    size_t i, klen;

    if (n == NULL || n->kind != ST_CONFIG_MAPPING || key == NULL)
        return NULL;
    klen = strlen(key);
    for (i = 0; i + 1 < n->nitems; i += 2) {
        if (n->items[i]->len == klen &&
            memcmp(n->items[i]->text, key, klen) == 0)
            return n->items[i + 1];
    }
    return NULL;
}
