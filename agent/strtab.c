/*
 * String ids: every file, function, variable, type and thread name that a
 * record refers to is sent once per connection (STR) and then referred to
 * by a small integer.  Keys are object identities (a str object, a static
 * type), so a lookup is a pointer hash with no Python call.
 */
#include "strtab.h"

#include <stdlib.h>
#include <string.h>

/* Owned open-addressing table of owned entries (NULL: free slot).  The
 * entries are allocated one by one so that pointers to them stay valid
 * while the table grows. */
static struct st_strent **tab;
static size_t tab_cap; /* Power of two. */
static size_t tab_n;
static uint32_t next_sid = 1;

static size_t
strtab_hash(const void *key)
{
    uintptr_t k = (uintptr_t)key >> 3;

    return (size_t)(k * 0x9E3779B97F4A7C15ull);
}

static int
strtab_grow(void)
{
    size_t cap = tab_cap ? tab_cap * 2 : 1024;
    struct st_strent **t = calloc(cap, sizeof(*t));
    size_t i;

    if (t == NULL)
        return -1;
    for (i = 0; i < tab_cap; i++) {
        size_t j;

        if (tab[i] == NULL)
            continue;
        j = strtab_hash(tab[i]->key) & (cap - 1);
        while (t[j] != NULL)
            j = (j + 1) & (cap - 1);
        t[j] = tab[i];
    }
    free(tab);
    tab = t;
    tab_cap = cap;
    return 0;
}

/* Finds or inserts `key`; *fresh tells whether the entry is new. */
static struct st_strent *
strtab_slot(const void *key, int *fresh)
{
    struct st_strent *e;
    size_t j;

    *fresh = 0;
    if ((tab_n + 1) * 2 > tab_cap && strtab_grow() != 0)
        return NULL;
    j = strtab_hash(key) & (tab_cap - 1);
    while (tab[j] != NULL) {
        if (tab[j]->key == key)
            return tab[j];
        j = (j + 1) & (tab_cap - 1);
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->key = key;
    e->sid = next_sid++;
    tab[j] = e;
    tab_n++;
    *fresh = 1;
    return e;
}

struct st_strent *
st__strtab_str(PyObject *s)
{
    int fresh;
    struct st_strent *e = strtab_slot(s, &fresh);
    Py_ssize_t n;
    const char *text;

    if (e == NULL || !fresh)
        return e;
    text = PyUnicode_AsUTF8AndSize(s, &n);
    if (text == NULL) {
        /* Lone surrogates: keep the entry usable with a placeholder. */
        PyErr_Clear();
        text = "?";
        n = 1;
    }
    e->ref = Py_NewRef(s);
    e->text = text;
    e->len = (size_t)n;
    return e;
}

struct st_strent *
st__strtab_type(PyTypeObject *t)
{
    if (t->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        /* A class statement's type: its __name__ is a str we can key on,
         * so the table never keeps the class itself alive. */
        return st__strtab_str(((PyHeapTypeObject *)t)->ht_name);
    }
    else {
        int fresh;
        struct st_strent *e = strtab_slot(t, &fresh);
        const char *dot;

        if (e == NULL || !fresh)
            return e;
        /* Static types live forever; __name__ is tp_name after the last
         * dot ("collections.OrderedDict" -> "OrderedDict"). */
        dot = strrchr(t->tp_name, '.');
        e->text = dot ? dot + 1 : t->tp_name;
        e->len = strlen(e->text);
        return e;
    }
}
