/*
 * Async records; see async.h.
 */
#include "compat.h"

#include "steptrace/record.h"

#include "async.h"
#include "clock.h"
#include "emit.h"

#include <stdlib.h>
#include <string.h>

/* Python hooks (set by the package): await_expression(frame) -> str,
 * loop_created_task_hook() -> None. */
static PyObject *expr_hook; /* Owned, or NULL. */
static PyObject *loop_hook; /* Owned, or NULL. */

void
st__async_set_hooks(PyObject *expr, PyObject *loop)
{
    Py_XSETREF(expr_hook, Py_XNewRef(expr));
    Py_XSETREF(loop_hook, Py_XNewRef(loop));
}

static uint64_t
async_since_start(const struct st_trace_region *r, uint64_t t)
{
    return t > r->start_ns ? t - r->start_ns : 0;
}

static void
async_put_status(struct st_buf *b, int ok)
{
    st_buf_puts(b, ok ? " \xe2\x9c\x93\n" : " \xe2\x9c\x97\n"); /* ✓ ✗ */
}

/* "   File: <path>:<line>\n" */
static void
async_put_file_line(struct st_buf *b, const struct st_fentry *e, uint32_t line)
{
    st_buf_puts(b, "   File: ");
    st_buf_append(b, e->ci->file_s->text, e->ci->file_s->len);
    st_buf_append(b, ":", 1);
    st_buf_put_u64(b, line);
    st_buf_append(b, "\n", 1);
}

static void
async_put_name(struct st_buf *b, const struct st_fentry *e)
{
    st_buf_append(b, e->ci->func_s->text, e->ci->func_s->len);
}

static void
async_emit_body(struct st_trace_region *r, int kind, uint64_t t,
                struct st_buf *b)
{
    if (!b->oom)
        st__emit_async(r, kind, async_since_start(r, t), b->data, b->len);
    st_buf_close(b);
}

/* The source text of the awaited expression, from the package's hook. */
static char *
async_await_expression(PyFrameObject *f)
{
    PyObject *res;
    const char *s;
    char *out = NULL;
    struct st_buf b;

    if (expr_hook == NULL)
        return NULL;
    res = PyObject_CallOneArg(expr_hook, (PyObject *)f);
    if (res != NULL && PyUnicode_Check(res) &&
        (s = PyUnicode_AsUTF8(res)) != NULL && s[0] != '\0') {
        st_buf_init(&b);
        st_record_escape(&b, s, strlen(s));
        st_buf_append(&b, "", 1);
        out = b.oom ? NULL : b.data;
        if (out == NULL)
            st_buf_close(&b);
    }
    Py_XDECREF(res);
    PyErr_Clear();
    return out;
}

static int
async_on(const struct st_trace_region *r)
{
    return r->async_mode && st__region_rec_level(r) < ST_LEVEL_ERROR;
}

void
st__async_coro_start(struct st_trace_region *r, struct st_fentry *e)
{
    struct st_buf b;
    PyObject *res;

    if (!async_on(r))
        return;
    e->coro = calloc(1, sizeof(*e->coro));
    if (e->coro == NULL)
        return;
    e->coro->start_ns = st__clock_now_ns();
    st_buf_init(&b);
    st_buf_puts(&b, "\xf0\x9f\x9a\x80 COROUTINE START: "); /* 🚀 */
    async_put_name(&b, e);
    st_buf_append(&b, "\n", 1);
    async_emit_body(r, ST_ASYNC_CORO, e->coro->start_ns, &b);
    if (r->trace_tasks && loop_hook != NULL) {
        /* Lets the package watch this loop's create_task. */
        res = PyObject_CallNoArgs(loop_hook);
        Py_XDECREF(res);
        PyErr_Clear();
    }
}

static void
async_write_await_start(struct st_trace_region *r, const struct st_fentry *e)
{
    struct st_coro *c = e->coro;
    struct st_buf b;

    st_buf_init(&b);
    st_buf_puts(&b, "\xe2\x8f\xb3 AWAIT START: "); /* ⏳ */
    async_put_name(&b, e);
    st_buf_append(&b, "\n", 1);
    async_put_file_line(&b, e, c->susp_line);
    if (c->expr != NULL) {
        st_buf_puts(&b, "   Expression: ");
        st_buf_puts(&b, c->expr);
        st_buf_append(&b, "\n", 1);
    }
    async_emit_body(r, ST_ASYNC_AWAIT, c->susp_ns, &b);
    c->start_written = 1;
}

void
st__async_suspend(struct st_trace_region *r, struct st_fentry *e,
                  PyFrameObject *f)
{
    struct st_coro *c = e->coro;

    if (c == NULL || !async_on(r))
        return;
    if (c->pending_end && st_frame_lasti(f) == c->susp_lasti) {
        /* Resumed and suspended again at the same await without running
         * a line: the awaited thing waits more than once (a coroutine that
         * sleeps twice, wait_for cancelling on a timeout; an exception
         * thrown in and handled below).  One await. */
        c->pending_end = 0;
        Py_CLEAR(c->exc);
        return;
    }
    st__async_settle(r, e, c->exc == NULL);
    c->awaits++;
    c->susp_ns = st__clock_now_ns();
    c->susp_lasti = st_frame_lasti(f);
    c->susp_line = (uint32_t)PyFrame_GetLineNumber(f);
    free(c->expr);
    c->expr = async_await_expression(f);
    c->start_written = 0;
    c->pending_end = 0;
    /* With a threshold, START waits until the await is known to last. */
    if (r->await_threshold_ns == 0)
        async_write_await_start(r, e);
}

void
st__async_resume(struct st_trace_region *r, struct st_fentry *e)
{
    struct st_coro *c = e->coro;
    uint64_t now = st__clock_now_ns();

    if (c == NULL || !async_on(r) || c->susp_ns == 0)
        return;
    c->resume_ns = now;
    c->pending_end = 1;
}

void
st__async_settle(struct st_trace_region *r, struct st_fentry *e, int ok)
{
    struct st_coro *c = e->coro;
    struct st_buf b;

    if (c == NULL || !c->pending_end)
        return;
    c->pending_end = 0;
    Py_CLEAR(c->exc);
    /* From the first suspension to the last resumption of this await. */
    c->pending_dur = c->resume_ns - c->susp_ns;
    c->await_total_ns += c->pending_dur;
    if (async_on(r) && c->pending_dur >= r->await_threshold_ns) {
        if (!c->start_written)
            async_write_await_start(r, e);
        st_buf_init(&b);
        st_buf_puts(&b, "\xe2\x8c\x9b AWAIT END: "); /* ⌛ */
        async_put_name(&b, e);
        async_put_status(&b, ok);
        async_put_file_line(&b, e, c->susp_line);
        st_buf_puts(&b, "   Duration: ");
        st_record_put_ms(&b, c->pending_dur);
        st_buf_puts(&b, " ms\n");
        async_emit_body(r, ST_ASYNC_AWAIT, st__clock_now_ns(), &b);
    }
    free(c->expr);
    c->expr = NULL;
}

void
st__async_exception(struct st_trace_region *r, struct st_fentry *e,
                    PyObject *value)
{
    struct st_coro *c = e->coro;

    if (c == NULL || !c->pending_end)
        return;
    /* Thrown in at the await: the awaited thing may handle it (a timeout
     * that cancels the task and is turned into a value below) or not.
     * Held (exceptions take no weak references) only until the frame's
     * next event, while it is in flight anyway. */
    Py_XSETREF(c->exc, Py_NewRef(value));
}

void
st__async_line(struct st_trace_region *r, struct st_fentry *e, uint32_t line)
{
    struct st_coro *c = e->coro;
    PyObject *handled;
    int raised = 0;

    if (c == NULL || !c->pending_end)
        return;
    /* 3.13 reports the await's own clean-up after a thrown exception as a
     * line of the await: the outcome shows at the line after it. */
    if (c->exc != NULL && line == c->susp_line)
        return;
    if (c->exc != NULL) {
        /* The await raised if this frame now handles that exception (a
         * line of its except block); a value came back otherwise. */
        handled = st_handled_exception();
        raised = handled != NULL && handled == c->exc;
        Py_XDECREF(handled);
    }
    st__async_settle(r, e, !raised);
}

void
st__async_coro_end(struct st_trace_region *r, struct st_fentry *e, int ok)
{
    struct st_coro *c = e->coro;
    struct st_buf b;
    uint64_t now;

    if (c == NULL)
        return;
    st__async_settle(r, e, ok);
    if (async_on(r)) {
        now = st__clock_now_ns();
        st_buf_init(&b);
        st_buf_puts(&b, "\xf0\x9f\x8f\x81 COROUTINE END: "); /* 🏁 */
        async_put_name(&b, e);
        async_put_status(&b, ok);
        st_buf_puts(&b, "   Total duration: ");
        st_record_put_ms(&b, now - c->start_ns);
        st_buf_puts(&b, " ms\n   Await points: ");
        st_buf_put_u64(&b, c->awaits);
        st_buf_puts(&b, "\n   Total await time: ");
        st_record_put_ms(&b, c->await_total_ns);
        st_buf_puts(&b, " ms\n");
        async_emit_body(r, ST_ASYNC_CORO, now, &b);
    }
    st__threads_coro_free(c);
    e->coro = NULL;
}

int
st__async_task_event(struct st_trace_region *r, int created, const char *name,
                     size_t n, int ok, uint64_t duration_ns)
{
    struct st_buf b;

    if (r == NULL || !async_on(r) || !r->trace_tasks)
        return 0;
    st_buf_init(&b);
    st_buf_puts(&b, "\xf0\x9f\x93\x8b TASK "); /* 📋 */
    st_buf_puts(&b, created ? "CREATED: " : "DONE: ");
    st_record_escape(&b, name, n);
    if (created) {
        st_buf_append(&b, "\n", 1);
    }
    else {
        async_put_status(&b, ok);
        st_buf_puts(&b, "   Duration: ");
        st_record_put_ms(&b, duration_ns);
        st_buf_puts(&b, " ms\n");
    }
    async_emit_body(r, ST_ASYNC_TASK, st__clock_now_ns(), &b);
    return 1;
}
