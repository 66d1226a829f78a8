/*
 * steptrace._agent.wire_encode() and wire_decode(); see wirepy.h.
 *
 * They cover the messages of a control connection (PROTOCOL.md "Control
 * connections"): HELLO, STATUS, STATS, TAIL and TEXT.  A message is a list
 * [type, field, ...] in wire order, so wire_encode(*message) gives back
 * the frame wire_decode() read it from.  Bytes from the peer go through
 * st_wire_validate_messages() before msgpack-c sees them, as in the
 * collector, so a hostile buffer is a ValueError and nothing else.
 */
#include "wirepy.h"

#include <string.h>

#include "steptrace/buf.h"
#include "steptrace/error.h"
#include "steptrace/wire.h"

/* Raises the exception for a common error code.  @return NULL. */
static PyObject *
wirepy_fail(int err)
{
    if (err == ST_ENOMEM)
        return PyErr_NoMemory();
    PyErr_SetString(PyExc_ValueError, st_strerror(err));
    return NULL;
}

/* An unsigned 64-bit field: an int (not a bool) in [0, 2**64).
 * @return 0, or -1 with TypeError or ValueError set. */
static int
wirepy_u64(PyObject *o, uint64_t *out)
{
    unsigned long long v;

    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "a wire number is an int, not %.100s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        /* Negative or too large: a bad value, not an arithmetic error. */
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "%R is not an unsigned 64-bit integer", o);
        }
        return -1;
    }
    *out = v;
    return 0;
}

/*
 * A string field as bytes, new reference: a str is encoded to UTF-8 with
 * surrogateescape (so a command-line argument that was not valid UTF-8
 * travels as its original bytes), bytes are taken as they are.
 * @return NULL with TypeError, ValueError or MemoryError set.
 */
static PyObject *
wirepy_bytes(PyObject *o)
{
    PyObject *b = NULL;

    if (PyUnicode_Check(o))
        b = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
    else if (PyBytes_Check(o))
        b = Py_NewRef(o);
    else
        PyErr_Format(PyExc_TypeError,
                     "a wire string is str or bytes, not %.100s",
                     Py_TYPE(o)->tp_name);
    /* msgpack-c writes str lengths as 32 bits: refuse what cannot fit in
     * a frame before it is cut. */
    if (b != NULL && (size_t)PyBytes_GET_SIZE(b) > ST_WIRE_MAX_FRAME) {
        PyErr_SetString(PyExc_ValueError,
                        "a wire string is larger than a frame");
        Py_CLEAR(b);
    }
    return b;
}

/* STATS: the token, then a sequence of (name, value) pairs whose names
 * hold no NUL (st_wire_pack_counter takes a C string).
 * @return 0, or -1 with an exception set. */
static int
wirepy_pack_stats(msgpack_packer *pk, uint64_t token, PyObject *counters)
{
    PyObject *seq = NULL, *pair = NULL, *name = NULL;
    Py_ssize_t i, n;
    uint64_t value;
    int r = -1;

    seq = PySequence_Fast(counters, "STATS counters are a sequence");
    if (seq == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    if ((size_t)n > ST_WIRE_MAX_COUNT) {
        PyErr_SetString(PyExc_ValueError, "too many STATS counters");
        goto done;
    }
    if (st_wire_pack_stats_begin(pk, token, (size_t)n) != 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        /* PySequence_Fast_GET_ITEM: a borrowed reference. */
        pair = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i),
                               "a STATS counter is a (name, value) pair");
        if (pair == NULL)
            goto done;
        if (PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError,
                            "a STATS counter is a (name, value) pair");
            goto done;
        }
        name = wirepy_bytes(PySequence_Fast_GET_ITEM(pair, 0));
        if (name == NULL ||
            wirepy_u64(PySequence_Fast_GET_ITEM(pair, 1), &value) != 0)
            goto done;
        if (strlen(PyBytes_AS_STRING(name)) !=
            (size_t)PyBytes_GET_SIZE(name)) {
            PyErr_SetString(PyExc_ValueError,
                            "a STATS counter name holds a NUL byte");
            goto done;
        }
        if (st_wire_pack_counter(pk, PyBytes_AS_STRING(name), value) != 0) {
            PyErr_NoMemory();
            goto done;
        }
        Py_CLEAR(name);
        Py_CLEAR(pair);
    }
    r = 0;

done:
    Py_XDECREF(name);
    Py_XDECREF(pair);
    Py_DECREF(seq);
    return r;
}

/* Field counts of the message types, the type included (ST_MSG_MAP). */
static const unsigned char wirepy_fields[] = {
#define XX(name, val, nfields) [val] = nfields,
    ST_MSG_MAP(XX)
#undef XX
};

/* The field count, the type not counted, of a message wire_encode()
 * writes (the control messages); 0 for any other type. */
static Py_ssize_t
wirepy_nfields(uint64_t type)
{
    switch (type) {
    case ST_MSG_HELLO:
    case ST_MSG_STATUS:
    case ST_MSG_STATS:
    case ST_MSG_TAIL:
    case ST_MSG_TEXT: return (Py_ssize_t)wirepy_fields[type] - 1;
    default: return 0;
    }
}

/*
 * Packs one message through common's encoder: f holds its fields, as many
 * as wirepy_nfields(type) (the caller checked).  Each field is converted
 * before anything of it is packed.  @return 0, or -1 with an exception
 * set.
 */
static int
wirepy_pack(msgpack_packer *pk, uint64_t type, PyObject *const *f)
{
    PyObject *s1 = NULL, *s2 = NULL;
    uint64_t first = 0, pid = 0, ring = 0, formats = 0;
    int r = -1;

    /* The first field is HELLO's version, or a token or a pid. */
    if (wirepy_u64(f[0], &first) != 0)
        return -1;
    switch (type) {
    case ST_MSG_HELLO:
        /* st_wire_pack_hello() writes the version it speaks. */
        if (first != ST_WIRE_VERSION) {
            PyErr_Format(PyExc_ValueError, "HELLO carries version %d, not %R",
                         ST_WIRE_VERSION, f[0]);
            return -1;
        }
        if (wirepy_u64(f[1], &pid) != 0 || wirepy_u64(f[3], &ring) != 0 ||
            wirepy_u64(f[4], &formats) != 0 ||
            (s1 = wirepy_bytes(f[2])) == NULL)
            goto done;
        if (formats > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "HELLO formats too large");
            goto done;
        }
        r = st_wire_pack_hello(pk, pid, PyBytes_AS_STRING(s1),
                               (size_t)PyBytes_GET_SIZE(s1), ring,
                               (uint32_t)formats);
        break;
    case ST_MSG_STATUS: r = st_wire_pack_status(pk, first); break;
    case ST_MSG_STATS: return wirepy_pack_stats(pk, first, f[1]);
    case ST_MSG_TAIL:
        if ((s1 = wirepy_bytes(f[1])) == NULL)
            goto done;
        r = st_wire_pack_tail(pk, first, PyBytes_AS_STRING(s1),
                              (size_t)PyBytes_GET_SIZE(s1));
        break;
    case ST_MSG_TEXT:
        if ((s1 = wirepy_bytes(f[1])) == NULL ||
            (s2 = wirepy_bytes(f[2])) == NULL)
            goto done;
        r = st_wire_pack_text(pk, first, PyBytes_AS_STRING(s1),
                              (size_t)PyBytes_GET_SIZE(s1),
                              PyBytes_AS_STRING(s2),
                              (size_t)PyBytes_GET_SIZE(s2));
        break;
    default:
        PyErr_SetString(PyExc_SystemError, "wirepy_pack: unexpected type");
        goto done;
    }
    /* The packer fails only when the buffer cannot grow. */
    if (r != 0) {
        PyErr_NoMemory();
        r = -1;
    }

done:
    Py_XDECREF(s1);
    Py_XDECREF(s2);
    return r;
}

/* wire_encode(type, *fields) -> bytes; see the docstring below. */
static PyObject *
wirepy_encode(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE] = {0};
    PyObject *frame = NULL;
    msgpack_packer pk;
    struct st_buf b;
    uint64_t type;
    size_t payload;

    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "wire_encode() takes a message type and its fields");
        return NULL;
    }
    if (wirepy_u64(args[0], &type) != 0)
        return NULL;
    if (wirepy_nfields(type) == 0) {
        PyErr_Format(PyExc_ValueError,
                     "wire_encode() does not write messages of type %R",
                     args[0]);
        return NULL;
    }
    if (nargs - 1 != wirepy_nfields(type)) {
        PyErr_Format(PyExc_TypeError,
                     "a message of type %R has %zd fields, not %zd", args[0],
                     wirepy_nfields(type), nargs - 1);
        return NULL;
    }
    st_buf_init(&b);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    if (st_buf_append(&b, hdr, sizeof(hdr)) != 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (wirepy_pack(&pk, type, args + 1) != 0)
        goto done;
    payload = b.len - ST_WIRE_HEADER_SIZE;
    if (payload > ST_WIRE_MAX_FRAME) {
        PyErr_SetString(PyExc_ValueError,
                        "the message is larger than a frame");
        goto done;
    }
    st_wire_put_header((unsigned char *)b.data, (uint32_t)payload);
    frame = PyBytes_FromStringAndSize(b.data, (Py_ssize_t)b.len);

done:
    st_buf_close(&b);
    return frame;
}

/* A decoded string's pointer for "y#" ("" for an empty one, whose
 * pointer may be NULL: "y#" would make that None). */
static const char *
wirepy_str_p(const struct st_str *s)
{
    return s->p != NULL ? s->p : "";
}

/* STATS counters as a new list of [name, value] lists. */
static PyObject *
wirepy_counters(const struct st_msg *m)
{
    PyObject *list = PyList_New((Py_ssize_t)m->u.stats.ncounters);
    size_t i;

    if (list == NULL)
        return NULL;
    for (i = 0; i < m->u.stats.ncounters; i++) {
        const struct st_wire_counter *c = &m->u.stats.counters[i];
        PyObject *pair = Py_BuildValue("[y#K]", wirepy_str_p(&c->name),
                                       (Py_ssize_t)c->name.n,
                                       (unsigned long long)c->value);

        if (pair == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        /* PyList_SET_ITEM steals the reference to pair. */
        PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list;
}

/* One decoded message as a new list [type, field, ...], strings as
 * bytes; ValueError for one a control connection does not carry. */
static PyObject *
wirepy_message(const struct st_msg *m)
{
    PyObject *counters = NULL, *msg = NULL;

    switch (m->type) {
    case ST_MSG_HELLO:
        return Py_BuildValue("[iIKy#KI]", m->type,
                             (unsigned int)m->u.hello.version,
                             (unsigned long long)m->u.hello.pid,
                             wirepy_str_p(&m->u.hello.program),
                             (Py_ssize_t)m->u.hello.program.n,
                             (unsigned long long)m->u.hello.ring_bytes,
                             (unsigned int)m->u.hello.formats);
    case ST_MSG_STATUS:
        return Py_BuildValue("[iK]", m->type,
                             (unsigned long long)m->u.status.token);
    case ST_MSG_STATS:
        counters = wirepy_counters(m);
        if (counters != NULL)
            msg = Py_BuildValue("[iKO]", m->type,
                                (unsigned long long)m->u.stats.token,
                                counters);
        Py_XDECREF(counters);
        return msg;
    case ST_MSG_TAIL:
        return Py_BuildValue("[iKy#]", m->type,
                             (unsigned long long)m->u.tail.pid,
                             wirepy_str_p(&m->u.tail.glob),
                             (Py_ssize_t)m->u.tail.glob.n);
    case ST_MSG_TEXT:
        return Py_BuildValue("[iKy#y#]", m->type,
                             (unsigned long long)m->u.text.pid,
                             wirepy_str_p(&m->u.text.path),
                             (Py_ssize_t)m->u.text.path.n,
                             wirepy_str_p(&m->u.text.text),
                             (Py_ssize_t)m->u.text.text.n);
    default:
        PyErr_Format(PyExc_ValueError,
                     "message type %d is not one of a control connection",
                     m->type);
        return NULL;
    }
}

/*
 * The messages of the frame at the start of p[0..len) as a new list, and
 * in *used its size with its header; an empty list and *used 0 while not
 * all of it is there.  @return NULL with an exception set.
 */
static PyObject *
wirepy_decode_frame(const char *p, size_t len, size_t *used)
{
    PyObject *list = NULL, *item = NULL;
    struct st_wire_decoder d;
    struct st_msg m;
    int64_t n;
    int r;

    *used = 0;
    if (len < ST_WIRE_HEADER_SIZE)
        return PyList_New(0);
    n = st_wire_frame_len((const unsigned char *)p, 0);
    if (n < 0)
        return wirepy_fail((int)n);
    if ((uint64_t)n > len - ST_WIRE_HEADER_SIZE)
        return PyList_New(0);
    p += ST_WIRE_HEADER_SIZE;
    r = st_wire_validate_messages(p, (size_t)n);
    if (r < 0)
        return wirepy_fail(r);
    list = PyList_New(0);
    if (list == NULL)
        return NULL;
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p, (size_t)n);
    while ((r = st_wire_decode_next(&d, &m)) == 1) {
        item = wirepy_message(&m);
        if (item == NULL || PyList_Append(list, item) < 0)
            goto error;
        Py_CLEAR(item);
    }
    if (r < 0) {
        wirepy_fail(r);
        goto error;
    }
    st_wire_decoder_close(&d);
    *used = ST_WIRE_HEADER_SIZE + (size_t)n;
    return list;

error:
    Py_XDECREF(item);
    Py_DECREF(list);
    st_wire_decoder_close(&d);
    return NULL;
}

/* wire_decode(buffer) -> (messages, consumed); see the docstring below. */
static PyObject *
wirepy_decode(PyObject *mod, PyObject *buffer)
{
    PyObject *msgs = NULL, *result = NULL;
    Py_buffer view;
    size_t used = 0;

    if (PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    msgs = wirepy_decode_frame(view.buf, (size_t)view.len, &used);
    if (msgs != NULL)
        result = Py_BuildValue("(On)", msgs, (Py_ssize_t)used);
    Py_XDECREF(msgs);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef wirepy_methods[] = {
    {"wire_encode", (PyCFunction)(void (*)(void))wirepy_encode, METH_FASTCALL,
     "wire_encode(type, *fields) -> bytes: one frame (its 4-byte length\n"
     "header and the message [type, *fields]) through common's encoder.\n"
     "HELLO (version, pid, program, ring_bytes; version is WIRE_VERSION),\n"
     "STATUS (token), STATS (token, [(name, value), ...]), TAIL (pid,\n"
     "glob), TEXT (pid, path, text).  Strings are str (UTF-8,\n"
     "surrogateescape) or bytes.  TypeError or ValueError otherwise."},
    {"wire_decode", wirepy_decode, METH_O,
     "wire_decode(buffer) -> (messages, consumed): the messages of the\n"
     "first frame in the bytes-like buffer, each a list [type, *fields]\n"
     "with strings as bytes, and the frame's size with its header;\n"
     "([], 0) while the buffer does not hold the whole frame.  ValueError\n"
     "for a frame that can never be valid or a message that is not one\n"
     "wire_encode() writes."},
    {NULL, NULL, 0, NULL},
};

/* The module's integer constants: one per message type, and the limits. */
static const struct {
    const char *name;
    long value;
} wirepy_constants[] = {
#define XX(name, val, nfields) {"MSG_" #name, val},
    ST_MSG_MAP(XX)
#undef XX
        {"WIRE_VERSION", ST_WIRE_VERSION},
    {"WIRE_HEADER_SIZE", ST_WIRE_HEADER_SIZE},
    {"WIRE_MAX_FRAME", ST_WIRE_MAX_FRAME},
    {"WIRE_MAX_DEPTH", ST_WIRE_MAX_DEPTH},
    {"WIRE_MAX_COUNT", ST_WIRE_MAX_COUNT},
    {"WIRE_MAX_VALUE", ST_WIRE_MAX_VALUE},
    {NULL, 0},
};

int
st__wirepy_add(PyObject *module)
{
    size_t i;

    if (PyModule_AddFunctions(module, wirepy_methods) < 0)
        return -1;
    for (i = 0; wirepy_constants[i].name != NULL; i++)
        if (PyModule_AddIntConstant(module, wirepy_constants[i].name,
                                    wirepy_constants[i].value) < 0)
            return -1;
    return 0;
}
