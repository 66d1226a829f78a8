/*
 * A value's text; see render.h.
 */
#include "compat.h"

#include "steptrace/record.h"

#include "compose.h"
#include "render.h"
#include "strtab.h"

#include <stdlib.h>
#include <string.h>

/* The fingerprint of the text st__render_value() last composed (moved
 * into the entry that keeps that text, else dropped at the next call). */
static struct st_vfp render_fp;

/* type(v).__name__ as a C string, for messages. */
static const char *
render_type_name(PyObject *v)
{
    struct st_strent *e = st__strtab_type(Py_TYPE(v));

    return e != NULL ? e->text : "?";
}

/* "<unprintable T: msg>" for v, whose str() raised the exception in
 * flight (cleared). */
static void
render_unprintable(struct st_buf *b, PyObject *v)
{
    PyObject *exc_s = NULL;
    const char *text;
    Py_ssize_t n;
    st_exc_state es;

    ST_EXC_SAVE(es);
    exc_s = ST_EXC_VALUE(es) ? PyObject_Str(ST_EXC_VALUE(es)) : NULL;
    st_buf_puts(b, "<unprintable ");
    st_buf_puts(b, render_type_name(v));
    st_buf_puts(b, ": ");
    if (exc_s != NULL && (text = PyUnicode_AsUTF8AndSize(exc_s, &n)))
        st_record_escape(b, text, (size_t)n);
    st_buf_puts(b, ">");
    Py_XDECREF(exc_s);
    ST_EXC_RESTORE(es);
    PyErr_Clear();
}

/* str s (v's text) escaped into b, cut at `limit` characters. */
static void
render_escaped(struct st_buf *b, PyObject *v, PyObject *s, size_t limit)
{
    Py_ssize_t n, nchars = PyUnicode_GetLength(s);
    const char *text;

    if ((size_t)nchars > limit) {
        PyObject *cut = PyUnicode_Substring(s, 0, (Py_ssize_t)limit);

        if (cut != NULL && (text = PyUnicode_AsUTF8AndSize(cut, &n))) {
            st_record_escape(b, text, (size_t)n);
            st_buf_puts(b, "... (");
            st_buf_put_u64(b, (uint64_t)nchars);
            st_buf_puts(b, " chars)");
        }
        Py_XDECREF(cut);
    }
    else {
        text = PyUnicode_AsUTF8AndSize(s, &n);
        if (text != NULL)
            st_record_escape(b, text, (size_t)n);
    }
    if (PyErr_Occurred()) {
        /* Lone surrogates cannot be UTF-8 encoded: say so. */
        PyErr_Clear();
        b->len = 0;
        st_buf_puts(b, "<unprintable ");
        st_buf_puts(b, render_type_name(v));
        st_buf_puts(b, ": not encodable as UTF-8>");
    }
}

char *
st__render_value(PyObject *v, size_t limit, size_t *len_out)
{
    struct st_buf b;
    PyObject *s;
    char *quick = st__compose_number(v, limit, len_out);

    st__vfp_clear(&render_fp);
    if (quick != NULL)
        return quick;
    quick = st__compose_value(v, limit, len_out, &render_fp);
    if (quick != NULL)
        return quick;
    s = st__compose_text(v, 0);
    st_buf_init(&b);
    if (s == NULL) {
        render_unprintable(&b, v);
    }
    else {
        render_escaped(&b, v, s, limit);
        Py_DECREF(s);
    }
    if (b.oom) {
        st_buf_close(&b);
        *len_out = 0;
        return strdup("");
    }
    st_buf_append(&b, "", 1); /* NUL for convenience; not counted. */
    *len_out = b.len - 1;
    return b.data;
}

void
st__render_take_fp(struct st_vfp *fp)
{
    *fp = render_fp;
    memset(&render_fp, 0, sizeof(render_fp));
}

char *
st__render_exception(PyObject *exc, size_t limit, size_t *len_out)
{
    const char *type = render_type_name(exc);
    size_t tlen = strlen(type), mlen = 0;
    char *msg, *out;

    st__stateprint_forget();
    msg = st__render_value(exc, limit, &mlen);
    out = malloc(tlen + 2 + mlen + 1);
    if (out == NULL) {
        free(msg);
        *len_out = 0;
        return NULL;
    }
    memcpy(out, type, tlen);
    *len_out = tlen;
    if (msg != NULL && mlen > 0) {
        memcpy(out + tlen, ": ", 2);
        memcpy(out + tlen + 2, msg, mlen);
        *len_out += 2 + mlen;
    }
    out[*len_out] = '\0';
    free(msg);
    return out;
}

/*
 * Texts of objects whose str() is the program's code, by the print of
 * their state (stateprint.c): a method called again and again on the same
 * object (a view's __getitem__, a node's property) shows its `self` as a
 * new variable in each new frame, and str() of it runs once per change of
 * the object, not once per call.  Direct-mapped; a slot holds the escaped,
 * cut text for one repr_limit.
 */
#define TEXTCACHE_SLOTS 1024u

struct textcache_ent {
    uint64_t hash;
    uint32_t nodes;
    size_t limit;
    char *text; /* Owned, or NULL when the slot is empty. */
    size_t len;
};
static struct textcache_ent textcache[TEXTCACHE_SLOTS];

static struct textcache_ent *
render_cache_slot(const struct st_stateprint *sp)
{
    return &textcache[(sp->hash ^ (sp->hash >> 32)) % TEXTCACHE_SLOTS];
}

char *
st__render_cached(const struct st_stateprint *sp, size_t limit, size_t *len)
{
    struct textcache_ent *t = render_cache_slot(sp);
    char *copy;

    if (t->text == NULL || t->hash != sp->hash || t->nodes != sp->nodes ||
        t->limit != limit)
        return NULL;
    copy = malloc(t->len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, t->text, t->len + 1);
    *len = t->len;
    return copy;
}

void
st__render_keep(const struct st_stateprint *sp, size_t limit, const char *text,
                size_t len)
{
    struct textcache_ent *t = render_cache_slot(sp);
    char *copy = malloc(len + 1);

    if (copy == NULL)
        return;
    memcpy(copy, text, len + 1);
    free(t->text);
    t->hash = sp->hash;
    t->nodes = sp->nodes;
    t->limit = limit;
    t->text = copy;
    t->len = len;
}
