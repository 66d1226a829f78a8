/*
 * steptrace._agent.load_yaml(); see config_py.h.
 *
 * The file is parsed without the GIL into the common tree, which is then
 * converted in one pass.  Nesting is bounded by the loader's depth limit,
 * so the conversion may recurse.
 */
#include "config_py.h"

#include <errno.h>

#include "steptrace/config.h"
#include "steptrace/error.h"

/* Raises ValueError("FILE:LINE:COLUMN: ...") for node n.  @return NULL. */
static PyObject *
config_py_fail(const struct st_config *cfg, const struct st_config_node *n,
               const char *what)
{
    char err[ST_CONFIG_ERRLEN];
    PyObject *msg = NULL;

    st_config_errorf(cfg, n, err, sizeof(err), "%s", what);
    /* The name is a filesystem path: decode it the way os.fsdecode does. */
    msg = PyUnicode_DecodeFSDefault(err);
    if (msg != NULL) {
        PyErr_SetObject(PyExc_ValueError, msg);
        Py_DECREF(msg);
    }
    return NULL;
}

/* A scalar's text as str, new reference (NULL with ValueError when it is
 * not valid UTF-8, which libyaml should never hand out). */
static PyObject *
config_py_text(const struct st_config *cfg, const struct st_config_node *n)
{
    size_t len;
    const char *s = st_config_text(n, &len);
    PyObject *str = PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "strict");

    if (str == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return config_py_fail(cfg, n, "text is not valid UTF-8");
    }
    return str;
}

/* A resolved scalar, new reference. */
static PyObject *
config_py_scalar(const struct st_config *cfg, const struct st_config_node *n)
{
    long long iv;
    double dv;
    int bv;

    switch (st_config_resolve(n)) {
    case ST_CONFIG_NULL: Py_RETURN_NONE;
    case ST_CONFIG_BOOL: st_config_as_bool(n, &bv); return PyBool_FromLong(bv);
    case ST_CONFIG_INT:
        if (st_config_as_int(n, &iv) != 0)
            return config_py_fail(cfg, n,
                                  "integer out of range (more than 64 bits)");
        return PyLong_FromLongLong(iv);
    case ST_CONFIG_FLOAT:
        if (st_config_as_double(n, &dv) != 0)
            return config_py_fail(cfg, n, "not a valid number");
        return PyFloat_FromDouble(dv);
    default: return config_py_text(cfg, n);
    }
}

static PyObject *config_py_node(const struct st_config *cfg,
                                const struct st_config_node *n);

/* A mapping as a dict with str keys, new reference. */
static PyObject *
config_py_mapping(const struct st_config *cfg, const struct st_config_node *n)
{
    PyObject *dict = NULL, *key = NULL, *value = NULL;
    size_t i, count = st_config_size(n);

    dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    for (i = 0; i < count; i++) {
        /* Keys are names: `on:` or `1:` stay the strings "on" and "1"
         * (PyYAML would make them True and 1). */
        key = config_py_text(cfg, st_config_key(n, i));
        if (key == NULL)
            goto error;
        value = config_py_node(cfg, st_config_value(n, i));
        if (value == NULL)
            goto error;
        if (PyDict_SetItem(dict, key, value) < 0)
            goto error;
        Py_CLEAR(key);
        Py_CLEAR(value);
    }
    return dict;

error:
    Py_XDECREF(key);
    Py_XDECREF(value);
    Py_DECREF(dict);
    return NULL;
}

/* A sequence as a list, new reference. */
static PyObject *
config_py_sequence(const struct st_config *cfg, const struct st_config_node *n)
{
    PyObject *list = NULL, *item = NULL;
    size_t i, count = st_config_size(n);

    list = PyList_New((Py_ssize_t)count);
    if (list == NULL)
        return NULL;
    for (i = 0; i < count; i++) {
        item = config_py_node(cfg, st_config_item(n, i));
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        /* Steals the reference to item. */
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* Any node, new reference. */
static PyObject *
config_py_node(const struct st_config *cfg, const struct st_config_node *n)
{
    switch (st_config_kind(n)) {
    case ST_CONFIG_MAPPING: return config_py_mapping(cfg, n);
    case ST_CONFIG_SEQUENCE: return config_py_sequence(cfg, n);
    default: return config_py_scalar(cfg, n);
    }
}

PyObject *
st__config_py_load_yaml(PyObject *mod, PyObject *path)
{
    PyObject *fspath = NULL, *msg = NULL, *result = NULL;
    struct st_config *cfg = NULL;
    char err[ST_CONFIG_ERRLEN];
    int rc;

    if (!PyUnicode_FSConverter(path, &fspath))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = st_config_load_file(PyBytes_AS_STRING(fspath), NULL, &cfg, err,
                             sizeof(err));
    Py_END_ALLOW_THREADS
    if (rc == ST_ENOMEM) {
        PyErr_NoMemory();
    }
    else if (rc < 0 && rc != ST_ECONFIG && rc != ST_ELIMIT) {
        /* A negative errno: the file could not be opened or read. */
        msg = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(fspath));
        if (msg != NULL) {
            errno = -rc;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, msg);
        }
    }
    else if (rc < 0) {
        msg = PyUnicode_DecodeFSDefault(err);
        if (msg != NULL)
            PyErr_SetObject(PyExc_ValueError, msg);
    }
    else if (st_config_root(cfg) == NULL) {
        result = Py_NewRef(Py_None);
    }
    else {
        result = config_py_node(cfg, st_config_root(cfg));
    }
    st_config_free(cfg);
    Py_XDECREF(msg);
    Py_XDECREF(fspath);
    return result;
}
