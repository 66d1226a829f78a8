/*
 * Which code is traced (docs/CLI.md section 5), decided once per code object
 * and cached in the code object's co_extra slot (the PEP 523 mechanism that
 * tools like coverage use), so the per-event cost is one pointer read;
 * see filter.h.
 */
#include "compat.h"

#include "filter.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int code_extra_index = -1;
static uint32_t next_filter_id = 1;

static void
filter_codeinfo_free(void *p)
{
    struct st_codeinfo *ci = p;

    if (ci == NULL)
        return;
    Py_XDECREF(ci->abs_file);
    Py_XDECREF(ci->fast_names);
    free(ci);
}

int
st__filter_setup(void)
{
    code_extra_index = (int)ST_REQUEST_CODE_EXTRA_INDEX(filter_codeinfo_free);
    return code_extra_index < 0 ? -1 : 0;
}

/* ---- building a filter ---- */

static char *
filter_dup_utf8(PyObject *s)
{
    const char *p = PyUnicode_AsUTF8(s);

    return p ? strdup(p) : NULL;
}

static uint64_t
filter_key_mix(uint64_t h, const char *s)
{
    /* FNV-1a over the string and its NUL (so "ab","c" != "a","bc"). */
    do {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    } while (*s++ != '\0');
    return h;
}

/* f->key: equal for filters that decide alike (what they were made of).
 * @return 0 or -1 (raised). */
static int
filter_key(struct st_filter *f)
{
    uint64_t h = 0xcbf29ce484222325ull;
    Py_hash_t fh = 0;
    size_t i;

    if (f->workspaces == NULL)
        h = filter_key_mix(h, "\x01");
    for (i = 0; i < f->nworkspaces; i++)
        h = filter_key_mix(h, f->workspaces[i]);
    h = filter_key_mix(h, "\x02");
    for (i = 0; i < f->nexcluded; i++)
        h = filter_key_mix(h, f->excluded[i]);
    h = filter_key_mix(filter_key_mix(h, f->pkgdir), f->cwd);
    if (f->functions != NULL && (fh = PyObject_Hash(f->functions)) == -1)
        return -1;
    h ^= (uint64_t)fh + (f->functions != NULL);
    f->key = h * 0x100000001b3ull;
    return 0;
}

/* Copies str v, or the strs of tuple v, into a new NULL-terminated array
 * *out (*n counts those copied).  @return 0 or -1 (raised). */
static int
filter_strings(PyObject *v, char ***out, size_t *n)
{
    int one = PyUnicode_Check(v);
    Py_ssize_t i, len = one ? 1 : PyTuple_GET_SIZE(v);

    *out = calloc((size_t)len + 1, sizeof(char *));
    if (*out == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < len; i++) {
        (*out)[i] = filter_dup_utf8(one ? v : PyTuple_GET_ITEM(v, i));
        if ((*out)[i] == NULL)
            return -1;
        (*n)++;
    }
    return 0;
}

int
st__filter_init(struct st_filter *f, PyObject *workspace, PyObject *excluded,
                const char *pkgdir, const char *cwd, PyObject *functions)
{
    f->id = next_filter_id++;
    if (workspace != Py_None) {
        /* One directory, or a tuple of them (real paths). */
        if (!PyUnicode_Check(workspace) && !PyTuple_Check(workspace)) {
            PyErr_SetString(PyExc_TypeError,
                            "workspace: expected a str, a tuple or None");
            return -1;
        }
        if (filter_strings(workspace, &f->workspaces, &f->nworkspaces) != 0)
            return -1;
    }
    if (filter_strings(excluded, &f->excluded, &f->nexcluded) != 0)
        return -1;
    f->pkgdir = strdup(pkgdir);
    f->cwd = strdup(cwd);
    if (f->pkgdir == NULL || f->cwd == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    f->pkgdir_len = strlen(f->pkgdir);
    if (functions != Py_None) {
        f->functions = PyFrozenSet_New(functions);
        if (f->functions == NULL)
            return -1;
    }
    return filter_key(f);
}

void
st__filter_close(struct st_filter *f)
{
    size_t i;

    for (i = 0; i < f->nworkspaces; i++)
        free(f->workspaces[i]);
    free(f->workspaces);
    for (i = 0; i < f->nexcluded; i++)
        free(f->excluded[i]);
    free(f->excluded);
    free(f->pkgdir);
    free(f->cwd);
    Py_XDECREF(f->functions);
}

/* ---- verdicts ---- */

/* Is `path` equal to `prefix` or below it, component-wise?  ("/a/proj"
 * contains "/a/proj/x.py" but not "/a/proj2/x.py".) */
static int
filter_path_under(const char *path, size_t n, const char *prefix, size_t pn)
{
    if (pn == 0 || n < pn || memcmp(path, prefix, pn) != 0)
        return 0;
    return n == pn || path[pn] == '/' || prefix[pn - 1] == '/';
}

static int
filter_path_has_component(const char *path, const char *comp)
{
    size_t cn = strlen(comp);
    const char *p = path;

    while ((p = strstr(p, comp)) != NULL) {
        if ((p == path || p[-1] == '/') && (p[cn] == '/' || p[cn] == '\0'))
            return 1;
        p += cn;
    }
    return 0;
}

/* `path` (absolute) with ".", ".." and repeated slashes taken out, as
 * text (for a file that is gone, so realpath() cannot see it), into buf
 * of PATH_MAX bytes. */
static const char *
filter_lexical_path(const char *path, char *buf)
{
    size_t n = 0;
    const char *p = path;

    while (*p != '\0') {
        const char *q;
        size_t len;

        while (*p == '/')
            p++;
        q = p;
        while (*q != '\0' && *q != '/')
            q++;
        len = (size_t)(q - p);
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* nothing */
        }
        else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 0 && buf[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
        }
        else {
            if (n + 1 + len >= PATH_MAX)
                return path;
            buf[n++] = '/';
            memcpy(buf + n, p, len);
            n += len;
        }
        p = q;
    }
    if (n == 0)
        buf[n++] = '/';
    buf[n] = '\0';
    return buf;
}

/* Is the file at `path` in one of the workspaces?  Decided on its real
 * path ("..", symlinks resolved), as a component-wise prefix. */
static int
filter_in_workspace(const struct st_filter *f, const char *path)
{
    char buf[PATH_MAX];
    const char *real = realpath(path, buf);
    size_t i, n;

    if (real == NULL)
        real = filter_lexical_path(path, buf);
    n = strlen(real);
    for (i = 0; i < f->nworkspaces; i++)
        if (filter_path_under(real, n, f->workspaces[i],
                              strlen(f->workspaces[i])))
            return 1;
    return 0;
}

/* The absolute form of co_filename, kept in the cache.  @return 0/-1. */
static int
filter_abs_file(const struct st_filter *f, PyCodeObject *co,
                struct st_codeinfo *ci)
{
    Py_ssize_t n;
    const char *fn;

    if (ci->abs_file != NULL)
        return 0;
    fn = PyUnicode_AsUTF8AndSize(co->co_filename, &n);
    if (fn == NULL || n == 0 || fn[0] == '<') {
        PyErr_Clear();
        return -1;
    }
    if (fn[0] == '/')
        ci->abs_file = Py_NewRef(co->co_filename);
    else
        ci->abs_file = PyUnicode_FromFormat("%s/%U", f->cwd, co->co_filename);
    if (ci->abs_file == NULL) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* Computes the verdict for a code object under filter f. */
static int
filter_code(const struct st_filter *f, PyCodeObject *co,
            struct st_codeinfo *ci)
{
    Py_ssize_t n;
    const char *path;
    struct stat sb;
    size_t i, pn;

    /* Source made up by exec() or a loader ("<string>", "<frozen ...>")
     * is not a real file. */
    if (filter_abs_file(f, co, ci) != 0)
        return 0;
    path = PyUnicode_AsUTF8AndSize(ci->abs_file, &n);
    if (path == NULL) {
        PyErr_Clear();
        return 0;
    }
    pn = (size_t)n;
    if (filter_path_under(path, pn, f->pkgdir, f->pkgdir_len))
        return 0;
    for (i = 0; i < f->nexcluded; i++)
        if (filter_path_under(path, pn, f->excluded[i],
                              strlen(f->excluded[i])))
            return 0;
    if (filter_path_has_component(path, "site-packages") ||
        filter_path_has_component(path, "dist-packages"))
        return 0;
    if (f->workspaces != NULL && !filter_in_workspace(f, path))
        return 0;
    if (f->functions != NULL) {
        int in = PySet_Contains(f->functions, co->co_name);

        if (in < 0)
            PyErr_Clear();
        if (in != 1)
            return 0;
    }
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Does co build its first argument (an __init__ and the like)? */
static int
filter_is_initialiser(PyCodeObject *co)
{
    static const char *const names[] = {"__init__", "__post_init__",
                                        "__setstate__"};
    size_t i;

    if (co->co_argcount < 1 || (co->co_flags & ST_CO_SUSPENDABLE))
        return 0;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (PyUnicode_CompareWithASCIIString(co->co_name, names[i]) == 0)
            return 1;
    return 0;
}

struct st_codeinfo *
st__filter_codeinfo(PyCodeObject *co, const struct st_filter *f)
{
    struct st_codeinfo *ci = NULL;

    if (ST_CODE_GET_EXTRA((PyObject *)co, code_extra_index, (void **)&ci) <
        0) {
        PyErr_Clear();
        return NULL;
    }
    if (ci == NULL) {
        ci = calloc(1, sizeof(*ci));
        if (ci == NULL)
            return NULL;
        ci->initialiser = filter_is_initialiser(co);
        if (ST_CODE_SET_EXTRA((PyObject *)co, code_extra_index, ci) < 0) {
            PyErr_Clear();
            free(ci);
            return NULL;
        }
    }
    if (ci->filter_id != f->id) {
        ci->filter_id = f->id;
        ci->traceable = filter_code(f, co, ci);
    }
    if (!ci->traceable)
        return NULL;
    /* String table entries are never freed: looked up once. */
    if (ci->file_s == NULL || ci->func_s == NULL) {
        ci->file_s = st__strtab_str(ci->abs_file);
        ci->func_s = st__strtab_str(co->co_name);
        if (ci->file_s == NULL || ci->func_s == NULL)
            return NULL;
    }
    return ci;
}
