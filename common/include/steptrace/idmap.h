/*
 * A hash map from uint32 ids to non-NULL pointers (open addressing,
 * linear probing), for the collector's per-connection id tables
 * (daemon/session.c) and sinks, and the step store reader's tables
 * (common/replay.c).  Ids come from the peer, so memory grows with the
 * number of live entries, never with the value of an id: hostile ids
 * cost nothing.
 *
 * The map never owns its values: whoever inserts frees them (usually by
 * iterating before st__idmap_close).  Standalone: it calls nothing else
 * (tests/test-int-idmap.c).
 */
#ifndef STEPTRACE_COMMON_IDMAP_H
#define STEPTRACE_COMMON_IDMAP_H

#include <stddef.h>
#include <stdint.h>

/* Live entries per id table and connection (strings, frames, ...). */
#define ST_MAX_ENTRIES (1u << 24)

struct st_idmap {
    uint32_t *keys; /* Owned. */
    void **vals;    /* Owned array; NULL = empty slot, else value or tomb. */
    size_t cap;     /* Power of two, or 0. */
    size_t live;    /* Entries present. */
    size_t filled;  /* Entries present plus tombstones. */
};

/* An empty map (allocates nothing); pairs with st__idmap_close. */
void st__idmap_init(struct st_idmap *m);
/* Frees the table, not the values; the map is empty again. */
void st__idmap_close(struct st_idmap *m);
/* @return the value for key, or NULL. */
void *st__idmap_get(const struct st_idmap *m, uint32_t key);
/*
 * Inserts or replaces key -> val (val != NULL).  A replaced value is not
 * freed: look it up first if it needs freeing.
 * @return 0, ST_ENOMEM, or ST_ETOOBIG when ST_MAX_ENTRIES are live.
 */
int st__idmap_put(struct st_idmap *m, uint32_t key, void *val);
/* Removes key.  @return its value (the caller frees it) or NULL. */
void *st__idmap_del(struct st_idmap *m, uint32_t key);
/*
 * Iterates: start with *it = 0; each call returns the next value or NULL
 * at the end.  Deleting the returned entry during the walk is allowed.
 */
void *st__idmap_next(const struct st_idmap *m, size_t *it);
/* The same, with the entry's key in *key. */
void *st__idmap_next_key(const struct st_idmap *m, size_t *it, uint32_t *key);

#endif /* STEPTRACE_COMMON_IDMAP_H */
