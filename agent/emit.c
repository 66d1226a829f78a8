/*
 * Records: encoded as wire messages into st__outbox_batch and committed
 * to the ring for the collector (file output, outbox.c), and formatted
 * here with the shared formatter for the console (stdout/stderr output);
 * see emit.h.
 */
#include "compat.h"

#include "steptrace/record.h"
#include "steptrace/wire.h"

#include "collector.h"
#include "emit.h"
#include "filter.h"
#include "outbox.h"
#include "sender.h"
#include "strtab.h"

#include <stdlib.h>
#include <string.h>

/* The thread's name (threading.current_thread().name), looked up once
 * (borrowed from ts). */
static PyObject *
emit_thread_name(struct st_tstate *ts)
{
    PyObject *mod, *cur = NULL;

    if (ts->name != NULL)
        return ts->name;
    mod = PyImport_ImportModule("threading");
    if (mod != NULL)
        cur = PyObject_CallMethod(mod, "current_thread", NULL);
    if (cur != NULL)
        ts->name = PyObject_GetAttrString(cur, "name");
    Py_XDECREF(cur);
    Py_XDECREF(mod);
    if (ts->name == NULL || !PyUnicode_Check(ts->name)) {
        PyErr_Clear();
        Py_XSETREF(ts->name, PyUnicode_FromFormat("%u", ts->tid));
        PyErr_Clear();
    }
    return ts->name;
}

/* ---- the collector ---- */

static void
emit_send_str(struct st_strent *e)
{
    uint32_t gen = st__sender_gen();

    if (e->sent_gen == gen)
        return;
    st_wire_pack_str(&st__outbox_pk, e->sid, e->text, e->len);
    e->sent_gen = gen;
}

static void
emit_announce_region(struct st_trace_region *r)
{
    uint32_t gen = st__sender_gen();
    Py_ssize_t n;
    const char *dir;

    if (r->file_announced && r->announced_gen == gen)
        return;
    dir = PyUnicode_AsUTF8AndSize(r->log_dir, &n);
    if (dir == NULL) {
        PyErr_Clear();
        dir = ".tracer";
        n = 7;
    }
    st_wire_pack_region(&st__outbox_pk, r->id, r->tracer_id, dir, (size_t)n,
                        (uint32_t)r->level, (uint32_t)r->var_mode,
                        r->max_log_bytes, r->max_log_files, r->formats);
    if (r->origin != NULL) {
        const char *o = PyUnicode_AsUTF8AndSize(r->origin, &n);

        if (o != NULL)
            st_wire_pack_note(&st__outbox_pk, r->id, ST_NOTE_LINE, o,
                              (size_t)n);
        else
            PyErr_Clear();
    }
    r->file_announced = 1;
    r->announced_gen = gen;
}

/* FRAME for ts->stack[idx], after its traced ancestors. */
static void
emit_announce_frame(const struct st_trace_region *r, struct st_tstate *ts,
                    size_t idx)
{
    uint32_t gen = st__sender_gen();
    struct st_fentry *e = &ts->stack[idx];
    uint32_t parent_id = 0;

    if (e->announced_gen == gen)
        return;
    if (e->parent != 0) {
        emit_announce_frame(r, ts, e->parent - 1);
        parent_id = ts->stack[e->parent - 1].id;
    }
    if (ts->announced_gen != gen) {
        struct st_strent *name = st__strtab_str(emit_thread_name(ts));

        if (name != NULL) {
            emit_send_str(name);
            st_wire_pack_thread(&st__outbox_pk, ts->tid, name->sid);
        }
        ts->announced_gen = gen;
    }
    emit_send_str(e->ci->file_s);
    emit_send_str(e->ci->func_s);
    st_wire_put_frame(&st__outbox_batch, e->id, ts->tid, parent_id,
                      e->ci->file_s->sid, e->ci->func_s->sid,
                      e->scope ? e->scope->id : 0,
                      e->module_level ? ST_FRAME_MODULE : 0, r->id);
    e->announced_gen = gen;
}

static void
emit_pack_diff(const struct st_changes *c, int present)
{
    size_t i;

    if (!present) {
        st_wire_put_nil(&st__outbox_batch);
        return;
    }
    st_wire_put_diff_begin(&st__outbox_batch, c->n);
    for (i = 0; i < c->n; i++) {
        const struct st_change *ch = &c->c[i];

        if (ch->kind == ST_VAR_DELETED)
            st_wire_put_var_del(&st__outbox_batch, ch->name_s->sid);
        else
            st_wire_put_var_set(&st__outbox_batch, ch->name_s->sid,
                                ch->ent->type_s->sid, ch->ent->value,
                                ch->ent->value_len);
    }
}

static void
emit_send_change_strings(const struct st_changes *c)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        emit_send_str(c->c[i].name_s);
        if (c->c[i].kind != ST_VAR_DELETED)
            emit_send_str(c->c[i].ent->type_s);
    }
}

static void
emit_wire(struct st_trace_region *r, struct st_tstate *ts, size_t idx,
          const struct st_record *rec)
{
    struct st_fentry *e = &ts->stack[idx];
    uint32_t gen;
    size_t keep;

    /* A reconnection (which resets the variable states) is tried before
     * the record's diffs are computed, in the hook's entry. */
    if (!st__sender_ok()) {
        r->lost++;
        return;
    }
    gen = st__sender_gen();
    if (!r->file_announced || r->announced_gen != gen)
        emit_announce_region(r);
    if (e->announced_gen != gen)
        emit_announce_frame(r, ts, idx);
    if (rec->kind != ST_EVENT_STEP) {
        keep = st__outbox_batch.len;
        (void)st_wire_put_event(&st__outbox_batch, r->id, e->id, rec->line,
                                rec->runtime, (uint32_t)rec->kind,
                                rec->detail ? rec->detail : "",
                                rec->detail_len);
    }
    else if (rec->vars) {
        emit_send_change_strings(rec->gch);
        emit_send_change_strings(rec->lch);
        keep = st__outbox_batch.len;
        st_wire_put_step_head(&st__outbox_batch, r->id, e->id, rec->line,
                              rec->runtime);
        emit_pack_diff(rec->gch, 1);
        emit_pack_diff(rec->lch, !e->module_level);
    }
    else {
        /* NONE: a LINE, 4-6 bytes. */
        keep = st__outbox_batch.len;
        (void)st_wire_put_line(&st__outbox_batch, e->id, rec->line,
                               rec->runtime);
    }
    /* The definitions before `keep` are never dropped: later records
     * name them. */
    st__outbox_commit(r->drop_when_full, keep, 1);
}

void
st__emit_frame_end(struct st_trace_region *r, const struct st_fentry *e)
{
    if ((r->outputs & ST_OUT_FILE) && e->announced_gen == st__sender_gen() &&
        st__sender_ok()) {
        st_wire_put_frame_end(&st__outbox_batch, e->id);
        st__outbox_commit(r->drop_when_full, st__outbox_batch.len, 0);
    }
}

uint64_t
st__emit_region_end(struct st_trace_region *r)
{
    uint64_t token;
    int sent = 0;

    /* Records lost with a connection, or dropped by the drop policy. */
    r->lost += st__collector_dropped() - r->dropped_base;
    r->dropped_base = st__collector_dropped();
    if ((r->outputs & ST_OUT_FILE) && st__sender_ok() &&
        (r->file_announced || r->lost > 0)) {
        emit_announce_region(r);
        if (r->lost > 0)
            st_wire_pack_lost(&st__outbox_pk, r->id, r->lost);
        st_wire_pack_region_end(&st__outbox_pk, r->id);
        sent = 1;
    }
    if (!sent)
        return 0;
    /* The FLUSH that the caller waits for; the collector is woken now
     * rather than at its next look. */
    token = st__outbox_flush(r->drop_when_full, 1);
    return st__sender_ok() ? token : 0;
}

void
st__emit_note(struct st_trace_region *r, uint32_t kind, const char *text,
              size_t n)
{
    emit_announce_region(r);
    st_wire_pack_note(&st__outbox_pk, r->id, kind, text, n);
    /* Kept like a definition: a note is never dropped. */
    st__outbox_commit(r->drop_when_full, st__outbox_batch.len, 0);
}

/* ---- the console ---- */

static struct st_str
emit_strent_str(const struct st_strent *e)
{
    struct st_str s = {e->text, e->len};
    return s;
}

/* Fills views for a full snapshot (ALL) or the changes (CHANGED). */
static struct st_var_view *
emit_make_views(const struct st_snapshot *snap, const struct st_changes *c,
                int var_mode, size_t *n_out)
{
    size_t n = var_mode == ST_VARMODE_ALL ? snap->n : c->n;
    struct st_var_view *v = calloc(n ? n : 1, sizeof(*v));
    size_t i;

    *n_out = 0;
    if (v == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        const struct st_snapent *e;

        if (var_mode == ST_VARMODE_ALL) {
            e = &snap->ents[i];
            v[i].change = ST_VAR_PLAIN;
        }
        else {
            e = c->c[i].ent;
            v[i].change = c->c[i].kind;
            v[i].name = emit_strent_str(c->c[i].name_s);
            v[i].old.p = c->c[i].old;
            v[i].old.n = c->c[i].old_len;
            if (e == NULL)
                continue;
        }
        v[i].name = emit_strent_str(e->name_s);
        v[i].type = emit_strent_str(e->type_s);
        v[i].value.p = e->value;
        v[i].value.n = e->value_len;
    }
    *n_out = n;
    return v;
}

/*
 * Location lines: at DEBUG the traced ancestors (outermost first, each at
 * the line of its latest record), then the frame itself.  The collector
 * walks the same parent links, so both print the same lines.
 */
static struct st_loc_view *
emit_make_locs(const struct st_trace_region *r, const struct st_tstate *ts,
               size_t idx, uint32_t line, size_t *n_out)
{
    size_t n = 1, i = idx, k;
    struct st_loc_view *locs;

    if (r->level == ST_LEVEL_DEBUG)
        for (i = idx; ts->stack[i].parent != 0; i = ts->stack[i].parent - 1)
            n++;
    locs = calloc(n, sizeof(*locs));
    if (locs == NULL)
        return NULL;
    k = n;
    locs[--k].line = line;
    locs[k].file = emit_strent_str(ts->stack[idx].ci->file_s);
    locs[k].func = emit_strent_str(ts->stack[idx].ci->func_s);
    for (i = idx; k > 0;) {
        const struct st_fentry *p;

        i = ts->stack[i].parent - 1;
        p = &ts->stack[i];
        locs[--k].line = p->last_line;
        locs[k].file = emit_strent_str(p->ci->file_s);
        locs[k].func = emit_strent_str(p->ci->func_s);
    }
    *n_out = n;
    return locs;
}

/*
 * Console output keeps record order across threads: a stream's write()
 * can release the GIL before it has taken the text (a full buffer is
 * flushed first), and another thread could then write a later record
 * first.  So records queue up in numbering order, and one thread at a
 * time writes the queue out.
 */
struct cqnode {
    struct cqnode *next;
    PyObject *text;            /* Owned str. */
    struct st_trace_region *r; /* Borrowed: for the stream choice and
                                  errors. */
    int to_stdout;
};

static struct cqnode *cq_head, *cq_tail;
static int cq_writing;

static void
emit_console_drain(void)
{
    cq_writing = 1;
    while (cq_head != NULL) {
        struct cqnode *n = cq_head;
        PyObject *stream, *res = NULL;

        cq_head = n->next;
        if (cq_head == NULL)
            cq_tail = NULL;
        stream = PySys_GetObject(n->to_stdout ? "stdout" : "stderr");
        if (stream != NULL && stream != Py_None)
            res = PyObject_CallMethod(stream, "write", "O", n->text);
        if (res == NULL) {
            PyErr_Clear();
            if (st__threads_region() == n->r)
                n->r->errors++;
        }
        Py_XDECREF(res);
        Py_DECREF(n->text);
        free(n);
    }
    cq_writing = 0;
}

/* Writes console text through the current sys.stdout / sys.stderr. */
static void
emit_console_write(struct st_trace_region *r, const struct st_buf *t)
{
    struct cqnode *n;

    if (t->oom || (n = calloc(1, sizeof(*n))) == NULL) {
        r->errors++;
        return;
    }
    n->text = PyUnicode_DecodeUTF8(t->data, (Py_ssize_t)t->len, "replace");
    if (n->text == NULL) {
        PyErr_Clear();
        free(n);
        r->errors++;
        return;
    }
    n->r = r;
    n->to_stdout = (r->outputs & ST_OUT_STDOUT) != 0;
    if (cq_tail != NULL)
        cq_tail->next = n;
    else
        cq_head = n;
    cq_tail = n;
    if (!cq_writing)
        emit_console_drain();
}

static void
emit_console(struct st_trace_region *r, struct st_tstate *ts, size_t idx,
             const struct st_record *rec)
{
    static struct st_snapshot empty;
    struct st_fentry *e = &ts->stack[idx];
    struct st_step_view v;
    struct st_var_view *gv = NULL, *lv = NULL;
    struct st_loc_view *locs;
    struct st_buf text;

    memset(&v, 0, sizeof(v));
    v.event = rec->kind;
    v.detail.p = rec->detail ? rec->detail : "";
    v.detail.n = rec->detail_len;
    v.step = rec->step;
    v.runtime_ns = rec->runtime;
    if (rec->thread_suffix) {
        Py_ssize_t n;

        v.thread.p = PyUnicode_AsUTF8AndSize(emit_thread_name(ts), &n);
        v.thread.n = (size_t)n;
        if (v.thread.p == NULL) {
            PyErr_Clear();
            v.thread.p = "?";
            v.thread.n = 1;
        }
    }
    locs = emit_make_locs(r, ts, idx, rec->line, &v.nlocs);
    if (locs == NULL) {
        r->errors++;
        return;
    }
    v.locs = locs;
    v.var_mode = r->var_mode;
    if (rec->kind == ST_EVENT_STEP && rec->vars) {
        gv = emit_make_views(e->scope ? &e->scope->snap : &empty, rec->gch,
                             r->var_mode, &v.nglobals);
        if (!e->module_level)
            lv = emit_make_views(&e->locals, rec->lch, r->var_mode,
                                 &v.nlocals);
        v.globals = gv;
        v.locals = lv;
    }
    /* A buffer of its own: emit_console_write() can let another thread's hook
     * run (the stream's write may release the GIL). */
    st_buf_init(&text);
    st_record_format_step(&text, &v);
    free(gv);
    free(lv);
    free(locs);
    emit_console_write(r, &text);
    st_buf_close(&text);
}

void
st__emit_async(struct st_trace_region *r, int kind, uint64_t time_ns,
               const char *body, size_t n)
{
    struct st_str b = {body, n};

    r->async_steps++;
    if ((r->outputs & ST_OUT_FILE) && st__sender_ok()) {
        size_t keep;

        emit_announce_region(r);
        keep = st__outbox_batch.len;
        st_wire_pack_async(&st__outbox_pk, r->id, time_ns, (uint32_t)kind,
                           body, n);
        st__outbox_commit(r->drop_when_full, keep, 1);
    }
    else if (r->outputs & ST_OUT_FILE) {
        r->lost++;
    }
    /* A step store records them at ERROR too; the console shows them
     * below ERROR only. */
    if ((r->outputs & (ST_OUT_STDOUT | ST_OUT_STDERR)) &&
        r->level < ST_LEVEL_ERROR) {
        struct st_buf text;

        st_buf_init(&text);
        st_record_format_async(&text, r->async_steps, time_ns, kind, b);
        emit_console_write(r, &text);
        st_buf_close(&text);
    }
}

void
st__emit_record(struct st_trace_region *r, struct st_tstate *ts, size_t idx,
                struct st_record *rec)
{
    ts->stack[idx].last_line = rec->line;
    /* The thread's name is looked up (a Python call, which can let another
     * thread in) before the record gets its number; from the number to
     * the wire nothing lets another thread in, so the collector numbers
     * the records in this same order. */
    if (ts->name == NULL)
        (void)emit_thread_name(ts);
    /* Only line steps are numbered; an event shows none. */
    rec->step = rec->kind == ST_EVENT_STEP ? ++r->steps : r->steps;
    if (rec->kind == ST_EVENT_STEP)
        r->total_steps++;
    if (r->first_tid == 0)
        r->first_tid = ts->tid;
    else if (r->first_tid != ts->tid)
        r->multi_thread = 1;
    rec->thread_suffix = r->multi_thread;
    if (r->outputs & ST_OUT_FILE)
        emit_wire(r, ts, idx, rec);
    if ((r->outputs & (ST_OUT_STDOUT | ST_OUT_STDERR)) &&
        st__level_shows(r->level, rec->kind))
        emit_console(r, ts, idx, rec);
}
