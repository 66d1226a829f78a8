/*
 * File sinks (docs/LOG-FORMAT.md sections 11 and 12), the loop side: one log
 * file per (connection, tracer_id), claimed as tracer.log or tracer_N.log with
 * O_EXCL at the first record.  Records are rendered into a queue of chunks; a
 * write job (writer.c, in the threadpool) takes the head chunk, one job at a
 * time per sink, so a sink's records reach its file in order while the loop
 * goes on decoding.  Rotation is decided here, at record boundaries, from the
 * size the file will have once the queue is written: the record that would
 * push it past max_bytes starts a chunk marked "rotate first".  What the rest
 * of the collector learns goes through the callbacks of sink.h.
 *
 * Errors never stop the collector: a failed open or write is counted
 * (status counters, the owner's on_error for its next ACK), logged once
 * per distinct message, and the chunk's records are dropped so that
 * memory stays bounded.  The next write that succeeds starts with one
 * line saying how many records were lost and why.
 */
#include "sink.h"

#include "chunk.h"
#include "log.h"
#include "stats.h"
#include "writer.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steptrace/error.h"
#include "steptrace/wire.h"

static void sink_kick(struct st_sink *s);

/* Gives an error to the owner (for its next ACK) and logs it; the log
 * line is skipped when it repeats the previous one of this sink (a full
 * disk must not flood the log).  The message also becomes the cause of
 * the next loss line. */
static void sink_fail(struct st_sink *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sink_fail(struct st_sink *s, const char *fmt, ...)
{
    char msg[PATH_MAX + 128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (s->owner != NULL)
        s->owner->on_error(s, msg);
    free(s->lost_why);
    s->lost_why = strdup(msg);
    if (s->logged != NULL && strcmp(s->logged, msg) == 0)
        return;
    st__log_info("%s", msg);
    free(s->logged);
    s->logged = strdup(msg);
}

/* After a success the next failure is worth a log line again. */
static void
sink_ok(struct st_sink *s)
{
    free(s->logged);
    s->logged = NULL;
}

void
st__sink_env_init(struct st_sink_env *env, uv_loop_t *loop,
                  struct st_stats *stats, const struct st_sink_hooks *hooks,
                  void *data)
{
    memset(env, 0, sizeof(*env));
    env->loop = loop;
    env->stats = stats;
    env->hooks = hooks;
    env->data = data;
}

void
st__sink_pool_free(struct st_sink_env *env)
{
    st__chunk_pool_free(env);
}

int
st__sink_new(struct st_sink_env *env, const struct st_sink_owner *owner,
             void *data, uint64_t epoch, uint32_t tracer_id, const char *dir,
             size_t dir_len, struct st_sink **out)
{
    struct st_sink *s;

    /* "/a/b///" names the directory "/a/b"; "/" stays "/". */
    while (dir_len > 1 && dir[dir_len - 1] == '/')
        dir_len--;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ST_ENOMEM;
    s->dir = malloc(dir_len + 1);
    if (s->dir == NULL) {
        free(s);
        return ST_ENOMEM;
    }
    memcpy(s->dir, dir, dir_len);
    s->dir[dir_len] = '\0';
    s->env = env;
    s->owner = owner;
    s->data = data;
    s->epoch = epoch;
    s->tracer_id = tracer_id;
    s->fd = -1;
    s->job.req.data = s;
    *out = s;
    return 0;
}

void
st__sink_free(struct st_sink *s)
{
    if (s == NULL)
        return;
    if (s->lost > 0)
        st__log("%llu records for %s were lost (%s)",
                (unsigned long long)s->lost,
                s->path != NULL ? s->path : s->dir,
                s->lost_why != NULL ? s->lost_why : "unknown cause");
    if (s->fd >= 0)
        close(s->fd);
    st__chunk_drop_all(s);
    free(s->dir);
    free(s->path);
    free(s->logged);
    free(s->lost_why);
    free(s->lost_line);
    free(s);
}

/* @return 1 when nothing is queued and no job is out. */
static int
sink_idle(const struct st_sink *s)
{
    return !s->busy &&
           (s->head == NULL || (s->head == s->tail && s->head->b.len == 0));
}

/* Sinks without an owner: kept in the env's list until their queue is
 * written (the flush timer and SIGHUP reach them there). */
static void
sink_adopt(struct st_sink *s)
{
    struct st_sink_env *env = s->env;

    s->oprev = NULL;
    s->onext = env->orphans;
    if (env->orphans != NULL)
        env->orphans->oprev = s;
    env->orphans = s;
}

static void
sink_forget(struct st_sink *s)
{
    struct st_sink_env *env = s->env;

    if (s->oprev != NULL)
        s->oprev->onext = s->onext;
    else
        env->orphans = s->onext;
    if (s->onext != NULL)
        s->onext->oprev = s->oprev;
    s->onext = s->oprev = NULL;
}

void
st__sink_pair(struct st_sink *text, struct st_sink *store)
{
    store->binary = 1;
    if (text != NULL) {
        text->partner = store;
        store->partner = text;
    }
}

void
st__sink_release(struct st_sink *s)
{
    if (s->partner != NULL) {
        s->partner->partner = NULL;
        s->partner = NULL;
    }
    s->owner = NULL;
    s->data = NULL;
    if (sink_idle(s)) {
        st__sink_free(s);
        return;
    }
    sink_adopt(s);
    st__sink_flush(s);
}

void
st__sink_configure(struct st_sink *s, uint64_t max_bytes, uint32_t max_files)
{
    const struct st_sink_env *env = s->env;
    uint32_t cap_files = env->max_log_files != 0 ? env->max_log_files
                                                 : ST_MAX_LOG_FILES;

    /* The collector's own limits win over what a region asks for: a
     * region that wants no rotation still rotates at the service's
     * max_log_bytes, keeping 10 backups unless told otherwise. */
    if (env->max_log_bytes != 0 &&
        (max_bytes == 0 || max_bytes > env->max_log_bytes)) {
        max_bytes = env->max_log_bytes;
        if (max_files == 0)
            max_files = 10;
    }
    /* Each backup costs a rename per rotation; a hostile count must not
     * turn one rotation into billions of system calls. */
    s->max_bytes = max_bytes;
    s->max_files = max_files > cap_files ? cap_files : max_files;
}

/* The path and descriptor of a file claimed for s.  @return 0 or
 * ST_ENOMEM (the descriptor is then closed, the empty file stays). */
static int
sink_take_claim(struct st_sink *s, const char *path, int fd)
{
    s->path = strdup(path);
    if (s->path == NULL) {
        close(fd);
        sink_fail(s, "cannot create %s: %s", path, st_strerror(ST_ENOMEM));
        return ST_ENOMEM;
    }
    s->fd = fd;
    s->logical_size = 0;
    return 0;
}

/* Claims the file of s, and of its partner if it has one without a
 * file yet, with one number (st__writer_claim_set), saying what failed.
 * @return 0 or a negative error. */
static int
sink_claim(struct st_sink *s)
{
    static const char *const exts[2] = {".log", ".steps"};
    char paths[2][PATH_MAX];
    const char *want[2];
    struct st_sink *set[2] = {s, NULL};
    int fds[2], step, i, n = 1, r;

    if (s->partner != NULL && s->partner->path == NULL) {
        /* The text file's name first. */
        set[s->binary ? 0 : 1] = s->partner;
        set[s->binary ? 1 : 0] = s;
        n = 2;
    }
    for (i = 0; i < n; i++)
        want[i] = exts[set[i]->binary];
    r = st__writer_claim_set(s->dir, want, n, paths, fds, &step);
    if (r == 0) {
        for (i = 0; i < n; i++)
            if (sink_take_claim(set[i], paths[i], fds[i]) != 0)
                r = ST_ENOMEM;
        return r;
    }
    if (step == ST_CLAIM_DIR)
        sink_fail(s, "cannot create log directory %s: %s", s->dir,
                  st_strerror(r));
    else if (step == ST_CLAIM_OPEN)
        sink_fail(s, "cannot create %s: %s", paths[0], st_strerror(r));
    else if (r == -EEXIST)
        sink_fail(s,
                  "cannot create a log file in %s: %u tracer files "
                  "exist",
                  s->dir, ST_MAX_CLAIM);
    else
        sink_fail(s, "cannot create a log file in %s: %s", s->dir,
                  st_strerror(r));
    return r;
}

void
st__sink_seal(struct st_sink *s, uint64_t epoch)
{
    if (s->tail != NULL && s->tail->b.len > 0)
        s->tail->sealed = 1;
    s->epoch = epoch;
}

int
st__sink_done_with(const struct st_sink *s, uint64_t epoch)
{
    const struct st_chunk *ch;

    /* Epochs never decrease along the queue: the head decides, unless it
     * is an empty chunk no job has. */
    for (ch = s->head; ch != NULL; ch = ch->next) {
        if (ch->epoch > epoch)
            return 1;
        if (ch->b.len > 0 || (s->busy && ch == s->head))
            return 0;
    }
    return 1;
}

struct st_buf *
st__sink_begin(struct st_sink *s)
{
    static struct st_buf oom_buf;
    struct st_chunk *ch = st__chunk_open(s);

    if (ch == NULL) {
        /* Rendering into a buffer marked out of memory does nothing, and
         * the commit drops the record. */
        oom_buf.oom = 1;
        s->mark = 0;
        return &oom_buf;
    }
    s->mark = ch->b.len;
    return &ch->b;
}

/* A record whose rendering ran out of memory (or found no chunk) is
 * dropped: a half-rendered record is never written.  @return ST_ENOMEM. */
static int
sink_drop_unrendered(struct st_sink *s, struct st_chunk *ch, int is_record)
{
    if (ch != NULL) {
        ch->b.len = s->mark;
        ch->b.oom = 0;
    }
    if (is_record) {
        s->env->stats->dropped_nomem++;
        s->lost++;
    }
    sink_fail(s, "cannot render a record for %s: %s",
              s->path != NULL ? s->path : s->dir, st_strerror(ST_ENOMEM));
    return ST_ENOMEM;
}

/* The first record claims the file; after a failed claim only the flush
 * tick retries, so that a read-only directory costs no system calls per
 * record.  On failure the record being committed in ch is dropped.
 * @return 0 or a negative error. */
static int
sink_claim_first(struct st_sink *s, struct st_chunk *ch, int is_record)
{
    int r = s->broken ? -EACCES : sink_claim(s);
    /* FILE names the text file when the tracer writes one. */
    struct st_sink *named = s->binary && s->partner != NULL ? s->partner : s;

    if (r == 0 && named->owner != NULL)
        named->owner->on_claimed(named, named->path);
    if (r < 0) {
        s->broken = 1;
        ch->b.len = s->mark;
        if (is_record) {
            s->env->stats->dropped_open++;
            s->lost++;
        }
        s->env->hooks->arm_flush(s->env);
    }
    return r;
}

/* The record at the end of ch begins a file: puts what the owner says
 * the file needs before it (on_segment).  @return the record's new
 * length; on failure the record alone stays. */
static size_t
sink_segment(struct st_sink *s, struct st_chunk *ch, size_t rec)
{
    char *copy = malloc(rec);
    size_t start = s->mark;

    if (copy == NULL)
        return rec;
    memcpy(copy, ch->b.data + start, rec);
    ch->b.len = start;
    s->owner->on_segment(s, &ch->b);
    if (ch->b.oom || st_buf_append(&ch->b, copy, rec) != 0) {
        ch->b.oom = 0;
        ch->b.len = start;
        (void)st_buf_append(&ch->b, copy, rec); /* Room was there. */
    }
    free(copy);
    return ch->b.len - start;
}

/* The common end of a record (is_record) or a note. */
static int
sink_commit(struct st_sink *s, int is_record)
{
    struct st_sink_env *env = s->env;
    struct st_chunk *ch = s->tail;
    size_t rec;
    int r;

    /* A tracer's record is counted once, by its text file if it has
     * one. */
    if (is_record && !(s->binary && s->partner != NULL))
        env->stats->records_rendered++;
    if (ch == NULL || ch->b.oom)
        return sink_drop_unrendered(s, ch, is_record);
    rec = ch->b.len - s->mark;
    if (s->path == NULL) {
        r = sink_claim_first(s, ch, is_record);
        if (r < 0)
            return r;
    }
    if (!s->binary)
        env->hooks->publish(s, ch->b.data + s->mark, rec);
    /* A record larger than the limit still goes into a fresh file: never
     * rotate an empty one, never split a record. */
    if (s->max_bytes > 0 && s->max_files > 0 && !s->rotate_off &&
        s->logical_size > 0 && s->logical_size + rec > s->max_bytes &&
        st__chunk_split_for_rotation(s) == 0) {
        s->logical_size = 0;
        ch = s->tail;
    }
    if (s->logical_size == 0 && s->owner != NULL &&
        s->owner->on_segment != NULL)
        rec = sink_segment(s, ch, rec);
    s->logical_size += rec;
    if (is_record)
        ch->nrecords++;
    s->queued += rec;
    env->hooks->pending(env, rec, 1);
    if (s->queued >= ST_SINK_FLUSH_BYTES)
        sink_kick(s);
    else
        env->hooks->arm_flush(env);
    return 0;
}

int
st__sink_commit(struct st_sink *s)
{
    return sink_commit(s, 1);
}

int
st__sink_note_end(struct st_sink *s)
{
    return sink_commit(s, 0);
}

void
st__sink_note(struct st_sink *s, const char *line)
{
    struct st_buf *b = st__sink_begin(s);

    st_buf_puts(b, line);
    st_buf_puts(b, "\n");
    sink_commit(s, 0);
}

/* A step store's loss line: an SLOST record (a cut record before it is
 * not repaired: the reader stops there, docs/STEP-STORE.md). */
static void
sink_prepare_lost_record(struct st_sink *s)
{
    struct st_buf b;
    msgpack_packer pk;
    const char *why = s->lost_why != NULL ? s->lost_why : "unknown cause";

    st_buf_init(&b);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    if (st_wire_pack_slost(&pk, s->lost, why, strlen(why)) != 0 ||
        st_buf_append(&b, "", 1) != 0) {
        st_buf_close(&b);
        return;
    }
    s->lost_line = b.data; /* Owned now: freed as a loss line is. */
    s->lost_line_len = b.len - 1;
    s->lost_sent = s->lost;
}

/* The loss line the next job writes first. */
static void
sink_prepare_lost_line(struct st_sink *s)
{
    char *line;
    int n;

    free(s->lost_line);
    s->lost_line = NULL;
    s->lost_sent = 0;
    if (s->lost == 0 && !s->split)
        return;
    if (s->binary) {
        sink_prepare_lost_record(s);
        return;
    }
    n = asprintf(&line, "%s[steptrace] %llu records lost: %s\n",
                 s->split ? "\n" : "", (unsigned long long)s->lost,
                 s->lost_why != NULL ? s->lost_why : "unknown cause");
    if (n < 0)
        return;
    s->lost_line = line;
    s->lost_line_len = (size_t)n;
    s->lost_sent = s->lost;
}

static void sink_after_work(uv_work_t *req, int status);

/* Fills the job's buffers with the chunks from the head: as many as one
 * writev takes, up to the next one that asks for a rotation. */
static void
sink_job_take(struct st_sink *s)
{
    struct st_write_job *j = &s->job;
    struct st_chunk *ch;
    int n = 0;

    j->rotate = s->head->rotate;
    s->job_chunks = 0;
    j->bytes = 0;
    s->job_records = 0;
    if (j->prefix_len > 0) {
        j->iov[n].iov_base = (void *)j->prefix;
        j->iov[n++].iov_len = j->prefix_len;
    }
    for (ch = s->head; ch != NULL && s->job_chunks < ST_WRITE_MAX_CHUNKS;
         ch = ch->next) {
        if (s->job_chunks > 0 && ch->rotate)
            break;
        if (ch->b.len > 0) {
            j->iov[n].iov_base = ch->b.data;
            j->iov[n++].iov_len = ch->b.len;
        }
        j->bytes += ch->b.len;
        s->job_records += ch->nrecords;
        s->job_last = ch;
        s->job_chunks++;
    }
    j->niov = n;
}

/* Hands the head chunks to a write job when there is enough of them, or
 * when everything is wanted (flush_all). */
static void
sink_kick(struct st_sink *s)
{
    struct st_write_job *j = &s->job;

    if (s->busy)
        return;
    /* Chunks emptied by dropped records need no job.  (Nothing is being
     * rendered now: kicks happen between records.) */
    while (s->head != NULL && s->head->b.len == 0)
        st__chunk_pop(s);
    if (s->head == NULL || s->path == NULL || s->head->b.len == 0)
        return;
    if (!s->flush_all && s->head == s->tail &&
        s->head->b.len < ST_SINK_FLUSH_BYTES)
        return;
    sink_prepare_lost_line(s);
    j->fd = s->fd;
    j->path = s->path;
    j->dir = s->dir;
    j->prefix = s->lost_line;
    j->prefix_len = s->lost_line != NULL ? s->lost_line_len : 0;
    j->max_files = s->max_files;
    sink_job_take(s);
    s->busy = 1;
    if (uv_queue_work(s->env->loop, &j->req, st__writer_work,
                      sink_after_work) != 0) {
        /* Cannot happen with a valid loop and callbacks; keep the chunks
         * for the next attempt. */
        s->busy = 0;
        s->job_last = NULL;
    }
}

/* Counts, logs and applies what a finished job did to the file. */
static void
sink_job_results(struct st_sink *s, int status)
{
    struct st_write_job *j = &s->job;
    struct st_stats *stats = s->env->stats;
    int opened = j->fd < 0;

    s->fd = j->fd_out;
    if (j->rotated)
        stats->rotations++;
    if (j->rotate_err != 0) {
        stats->rotate_errors++;
        s->rotate_off = 1;
        sink_fail(s, "cannot rotate %s: %s", s->path,
                  st_strerror(j->rotate_err));
    }
    if (status != 0 || j->open_err != 0 || j->write_err != 0) {
        int err = status != 0        ? status
                  : j->open_err != 0 ? j->open_err
                                     : j->write_err;

        stats->write_errors++;
        if (j->open_err != 0)
            stats->dropped_open += s->job_records;
        else
            stats->dropped_write += s->job_records;
        s->split = s->split || j->split;
        s->lost += s->job_records;
        sink_fail(s, "cannot %s %s: %s", j->open_err ? "open" : "write",
                  s->path, st_strerror(err));
        return;
    }
    stats->records_written += s->job_records;
    stats->bytes_written += j->prefix_len + j->bytes;
    if (j->prefix_len > 0) {
        s->env->hooks->publish(s, j->prefix, j->prefix_len);
        s->lost -= s->lost_sent;
        s->split = 0;
    }
    sink_ok(s);
    /* A file opened again may hold more than we counted. */
    if (opened)
        s->logical_size = j->size + (s->queued - j->bytes);
}

/* Applies a finished job's results (loop thread), then starts the next
 * job and tells the owner. */
static void
sink_after_work(uv_work_t *req, int status)
{
    struct st_sink *s = req->data;
    struct st_sink_env *env = s->env;
    size_t i;

    s->busy = 0;
    sink_job_results(s, status);
    free(s->lost_line);
    s->lost_line = NULL;
    s->lost_sent = 0;
    for (i = 0; i < s->job_chunks; i++)
        st__chunk_pop(s);
    s->job_last = NULL;
    if (s->reopen && s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->reopen = 0;
    if (s->head == NULL)
        s->flush_all = 0;
    sink_kick(s);
    if (s->owner != NULL) {
        /* The owner may release (and so free) the sink here: its
         * connection answers a FLUSH, fails to and closes.  s is not
         * used after it. */
        s->owner->on_done(s);
    }
    else if (sink_idle(s)) {
        sink_forget(s);
        st__sink_free(s);
    }
    env->hooks->job_done(env);
}

void
st__sink_flush(struct st_sink *s)
{
    /* A failed claim is retried at the next record after this tick. */
    s->broken = 0;
    if (s->head == NULL)
        return;
    s->flush_all = 1;
    sink_kick(s);
}

void
st__sink_reopen(struct st_sink *s)
{
    s->broken = 0;
    s->rotate_off = 0;
    if (s->busy) {
        s->reopen = 1;
        return;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}
