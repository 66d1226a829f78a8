/*
 * uint32 id -> pointer map with open addressing and linear probing; see
 * idmap.h.  Ids come from the peer, so the table is sized by the number
 * of live entries, never by the value of an id.
 */
#include "steptrace/idmap.h"

#include <stdlib.h>

#include "steptrace/error.h"

/* Marks a deleted slot: probing continues past it, inserts may reuse it. */
static char tomb_marker;
#define TOMB ((void *)&tomb_marker)

static size_t
idmap_hash(uint32_t key)
{
    /* murmur3's finalizer: consecutive ids spread over the table. */
    key ^= key >> 16;
    key *= 0x85ebca6bu;
    key ^= key >> 13;
    key *= 0xc2b2ae35u;
    key ^= key >> 16;
    return key;
}

void
st__idmap_init(struct st_idmap *m)
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = 0;
    m->live = 0;
    m->filled = 0;
}

void
st__idmap_close(struct st_idmap *m)
{
    free(m->keys);
    free(m->vals);
    st__idmap_init(m);
}

/* Returns the slot holding key, or -1. */
static long
idmap_find(const struct st_idmap *m, uint32_t key)
{
    size_t mask, i;

    if (m->cap == 0)
        return -1;
    mask = m->cap - 1;
    /* Terminates: the load factor keeps at least one NULL slot. */
    for (i = idmap_hash(key) & mask;; i = (i + 1) & mask) {
        void *v = m->vals[i];

        if (v == NULL)
            return -1;
        if (v != TOMB && m->keys[i] == key)
            return (long)i;
    }
}

void *
st__idmap_get(const struct st_idmap *m, uint32_t key)
{
    long i = idmap_find(m, key);

    return i < 0 ? NULL : m->vals[i];
}

/* Moves every live entry into a table of `cap` slots, dropping tombs. */
static int
idmap_rehash(struct st_idmap *m, size_t cap)
{
    uint32_t *keys = malloc(cap * sizeof(*keys));
    void **vals = calloc(cap, sizeof(*vals));
    size_t i;

    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return ST_ENOMEM;
    }
    for (i = 0; i < m->cap; i++) {
        size_t j;

        if (m->vals[i] == NULL || m->vals[i] == TOMB)
            continue;
        j = idmap_hash(m->keys[i]) & (cap - 1);
        while (vals[j] != NULL)
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->filled = m->live;
    return 0;
}

int
st__idmap_put(struct st_idmap *m, uint32_t key, void *val)
{
    long found = idmap_find(m, key);
    size_t mask, i;
    long tomb = -1;

    if (found >= 0) {
        m->vals[found] = val;
        return 0;
    }
    if (m->live >= ST_MAX_ENTRIES)
        return ST_ETOOBIG;
    /* Keep the load (tombstones included) under 3/4; after a rehash the
     * live entries fill at most half, so churn (frames come and go all
     * the time) rehashes rarely. */
    if ((m->filled + 1) * 4 > m->cap * 3) {
        size_t cap = 16;

        while (cap < (m->live + 1) * 2)
            cap *= 2;
        if (idmap_rehash(m, cap) != 0)
            return ST_ENOMEM;
    }
    mask = m->cap - 1;
    for (i = idmap_hash(key) & mask; m->vals[i] != NULL; i = (i + 1) & mask)
        if (m->vals[i] == TOMB && tomb < 0)
            tomb = (long)i;
    if (tomb >= 0) {
        i = (size_t)tomb;
    }
    else {
        m->filled++;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->live++;
    return 0;
}

void *
st__idmap_del(struct st_idmap *m, uint32_t key)
{
    long i = idmap_find(m, key);
    void *v;

    if (i < 0)
        return NULL;
    v = m->vals[i];
    /* A slot followed by an empty one ends every probe chain through it,
     * so it can become empty instead of a tombstone. */
    if (m->vals[((size_t)i + 1) & (m->cap - 1)] == NULL) {
        m->vals[i] = NULL;
        m->filled--;
    }
    else {
        m->vals[i] = TOMB;
    }
    m->live--;
    return v;
}

void *
st__idmap_next_key(const struct st_idmap *m, size_t *it, uint32_t *key)
{
    while (*it < m->cap) {
        size_t i = (*it)++;
        void *v = m->vals[i];

        if (v != NULL && v != TOMB) {
            *key = m->keys[i];
            return v;
        }
    }
    return NULL;
}

void *
st__idmap_next(const struct st_idmap *m, size_t *it)
{
    while (*it < m->cap) {
        void *v = m->vals[(*it)++];

        if (v != NULL && v != TOMB)
            return v;
    }
    return NULL;
}
