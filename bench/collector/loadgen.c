/*
 * st-loadgen: collector throughput benchmark client.
 *
 * Starts --clients threads; each connects to a running steptraced, sends
 * HELLO and a prologue (strings, thread, one region and one frame), then
 * --records STEP messages as pre-encoded frames of --batch steps, then
 * REGION_END and FLUSH, and waits for the ACK.  The collector answers a
 * FLUSH only once everything before it has been written to the log file,
 * so the time from the first step sent to the last ACK received covers
 * decoding, rendering and write(2) of every record.
 *
 * The frames are encoded once, before the clock starts: what is measured
 * is the collector, not the encoder.  Modes:
 *   none     STEP with nil diffs (NONE mode: header, runtime, location)
 *   all      each STEP changes one of --vars locals; the collector
 *            rebuilds and prints the full state (ALL mode)
 *   changed  the same diffs in CHANGED mode
 * With --flush-per-frame every frame ends with a FLUSH, as the agent's
 * frames do; the ACKs are read at the end.
 *
 * Output: one line of "key=value" pairs, for bench/collector/run.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "wire-pack.h"
#include "steptrace/buf.h"
#include "steptrace/wire.h"

struct lg_opts {
    const char *socket;
    const char *log_dir;
    unsigned clients;
    uint64_t records; /* Per client. */
    unsigned batch;   /* Steps per frame. */
    unsigned vars;
    int mode;         /* enum st_varmode */
    int flush_frames; /* End every frame with a FLUSH, as the agent. */
};

struct lg_client {
    pthread_t thread;
    const struct lg_opts *o;
    unsigned index;
    int fd;
    int failed;
    char why[256];
};

static pthread_barrier_t lg_ready;

static double
lg_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
lg_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int
lg_recv_all(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Frames the packed messages in b (header in front) for sending. */
static int
lg_frame(struct st_buf *out, const struct st_buf *b)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];

    st_wire_put_header(hdr, (uint32_t)b->len);
    if (st_buf_append(out, hdr, sizeof(hdr)) != 0 ||
        st_buf_append(out, b->data, b->len) != 0)
        return -1;
    return 0;
}

/* Reads reply frames until one of this type (and, for an ACK, token 7:
 * the final FLUSH) arrives. */
static int
lg_expect(struct lg_client *c, int type, uint64_t *errors)
{
    unsigned char hdr[ST_WIRE_HEADER_SIZE];
    struct st_wire_decoder d;
    struct st_msg m;
    int64_t len;
    char *p;
    int r;

again:
    if (lg_recv_all(c->fd, (char *)hdr, sizeof(hdr)) != 0)
        return -1;
    len = st_wire_frame_len(hdr, 0);
    if (len <= 0 || (p = malloc((size_t)len)) == NULL)
        return -1;
    if (lg_recv_all(c->fd, p, (size_t)len) != 0 ||
        st_wire_validate(p, (size_t)len) < 1) {
        free(p);
        return -1;
    }
    st_wire_decoder_init(&d);
    st_wire_decoder_reset(&d, p, (size_t)len);
    r = st_wire_decode_next(&d, &m);
    if (r == 1 && m.type == ST_MSG_ACK && errors != NULL)
        *errors += m.u.ack.errors;
    st_wire_decoder_close(&d);
    free(p);
    if (r == 1 && type == ST_MSG_ACK && m.type == ST_MSG_ACK &&
        m.u.ack.token != 7)
        goto again;
    if (r == 1 && m.type == ST_MSG_FILE) /* The file opened: no news. */
        goto again;
    return r == 1 && m.type == type ? 0 : -1;
}

/* HELLO, strings, thread, region and frame. */
static int
lg_prologue(struct lg_client *c, struct st_buf *out)
{
    const struct lg_opts *o = c->o;
    struct st_buf b;
    msgpack_packer pk;
    char name[32];
    unsigned i;
    int r = 0;

    st_buf_init(&b);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    r |= st_wire_pack_str(&pk, 1, "/bench/collector/workload.py", 28);
    r |= st_wire_pack_str(&pk, 2, "work", 4);
    r |= st_wire_pack_str(&pk, 3, "MainThread", 10);
    r |= st_wire_pack_str(&pk, 4, "int", 3);
    for (i = 0; i < o->vars; i++) {
        int n = snprintf(name, sizeof(name), "var_%u", i);

        r |= st_wire_pack_str(&pk, 5 + i, name, (size_t)n);
    }
    r |= st_wire_pack_thread(&pk, 1, 3);
    r |= st_wire_pack_region(&pk, 1, 1, o->log_dir, strlen(o->log_dir),
                             ST_LEVEL_INFO, (uint32_t)o->mode, 0, 10,
                             ST_FORMAT_TEXT);
    r |= st_wire_pack_frame(&pk, 1, 1, 0, 1, 2, 1, 0, 1);
    if (r != 0 || lg_frame(out, &b) != 0)
        r = -1;
    st_buf_close(&b);
    return r;
}

/* One frame of o->batch steps. */
static int
lg_steps(const struct lg_opts *o, struct st_buf *out)
{
    struct st_buf b;
    msgpack_packer pk;
    unsigned i;
    int r = 0;

    st_buf_init(&b);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    for (i = 0; i < o->batch; i++) {
        r |= st_wire_pack_step_begin(&pk, 1, 1, 10 + i % 50, 1234);
        r |= st_wire_pack_nil(&pk);
        if (o->mode == ST_VARMODE_NONE) {
            r |= st_wire_pack_nil(&pk);
            continue;
        }
        r |= st_wire_pack_diff_begin(&pk, 1);
        r |= st_wire_pack_var_set(&pk, 5 + i % o->vars, 4, "1234567", 7);
    }
    if (o->flush_frames)
        r |= st_wire_pack_flush(&pk, 1);
    if (r != 0 || lg_frame(out, &b) != 0)
        r = -1;
    st_buf_close(&b);
    return r;
}

static int
lg_fail(struct lg_client *c, const char *why)
{
    c->failed = 1;
    snprintf(c->why, sizeof(c->why), "client %u: %s: %s", c->index, why,
             errno ? strerror(errno) : "protocol");
    return -1;
}

static int
lg_connect(struct lg_client *c)
{
    struct sockaddr_un sa;
    struct st_buf b;
    msgpack_packer pk;
    struct st_buf out;
    int r;

    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->o->socket);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return lg_fail(c, "connect");
    st_buf_init(&b);
    st_buf_init(&out);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    r = st_wire_pack_hello(&pk, (uint64_t)getpid(), "st-loadgen", 10, 0, 0);
    if (r == 0)
        r = lg_frame(&out, &b);
    if (r == 0)
        r = lg_send_all(c->fd, out.data, out.len);
    st_buf_close(&b);
    st_buf_close(&out);
    if (r != 0 || lg_expect(c, ST_MSG_HELLO, NULL) != 0)
        return lg_fail(c, "HELLO");
    return 0;
}

static void *
lg_client_main(void *arg)
{
    struct lg_client *c = arg;
    const struct lg_opts *o = c->o;
    struct st_buf pro, steps, tail, b;
    msgpack_packer pk;
    uint64_t sent = 0, errors = 0;

    st_buf_init(&pro);
    st_buf_init(&steps);
    st_buf_init(&tail);
    st_buf_init(&b);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    if (st_wire_pack_region_end(&pk, 1) != 0 ||
        st_wire_pack_flush(&pk, 7) != 0 || lg_frame(&tail, &b) != 0 ||
        lg_steps(o, &steps) != 0)
        lg_fail(c, "encoding");
    else if (lg_connect(c) == 0 && lg_prologue(c, &pro) != 0)
        lg_fail(c, "encoding");
    pthread_barrier_wait(&lg_ready);
    if (c->failed)
        goto done;
    if (lg_send_all(c->fd, pro.data, pro.len) != 0) {
        lg_fail(c, "send");
        goto done;
    }
    while (sent < o->records) {
        if (lg_send_all(c->fd, steps.data, steps.len) != 0) {
            lg_fail(c, "send");
            goto done;
        }
        sent += o->batch;
    }
    if (lg_send_all(c->fd, tail.data, tail.len) != 0 ||
        lg_expect(c, ST_MSG_ACK, &errors) != 0)
        lg_fail(c, "FLUSH");
    else if (errors != 0)
        lg_fail(c, "the collector reported write errors");
done:
    if (c->fd >= 0)
        close(c->fd);
    st_buf_close(&pro);
    st_buf_close(&steps);
    st_buf_close(&tail);
    st_buf_close(&b);
    return NULL;
}

static void
lg_usage(FILE *f)
{
    fprintf(f, "usage: st-loadgen --socket PATH --log-dir DIR [--clients N]\n"
               "                  [--records N] [--batch N] [--vars N]\n"
               "                  [--mode none|all|changed]"
               " [--flush-per-frame]\n");
}

static int
lg_parse(int argc, char **argv, struct lg_opts *o)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"log-dir", required_argument, NULL, 'l'},
        {"clients", required_argument, NULL, 'c'},
        {"records", required_argument, NULL, 'n'},
        {"batch", required_argument, NULL, 'b'},
        {"vars", required_argument, NULL, 'v'},
        {"mode", required_argument, NULL, 'm'},
        {"flush-per-frame", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': o->socket = optarg; break;
        case 'l': o->log_dir = optarg; break;
        case 'c': o->clients = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'n': o->records = strtoull(optarg, NULL, 10); break;
        case 'b': o->batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'v': o->vars = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'm':
            if (strcmp(optarg, "none") == 0)
                o->mode = ST_VARMODE_NONE;
            else if (strcmp(optarg, "all") == 0)
                o->mode = ST_VARMODE_ALL;
            else if (strcmp(optarg, "changed") == 0)
                o->mode = ST_VARMODE_CHANGED;
            else
                return -1;
            break;
        case 'f': o->flush_frames = 1; break;
        case 'h': lg_usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (o->socket == NULL || o->log_dir == NULL || o->log_dir[0] != '/' ||
        o->clients == 0 || o->clients > 1024 || o->records == 0 ||
        o->batch == 0 || o->vars == 0 || o->vars > 10000)
        return -1;
    return 0;
}

int
main(int argc, char **argv)
{
    struct lg_opts o = {NULL, NULL, 8, 1000000, 1000, 8, ST_VARMODE_NONE, 0};
    struct lg_client *cl;
    double t0, t1;
    uint64_t total;
    unsigned i;
    int failed = 0;

    if (lg_parse(argc, argv, &o) != 0) {
        lg_usage(stderr);
        return 2;
    }
    /* Whole frames only: the record count is rounded up to them. */
    o.records = (o.records + o.batch - 1) / o.batch * o.batch;
    cl = calloc(o.clients, sizeof(*cl));
    if (cl == NULL)
        return 1;
    pthread_barrier_init(&lg_ready, NULL, o.clients + 1);
    for (i = 0; i < o.clients; i++) {
        cl[i].o = &o;
        cl[i].index = i;
        cl[i].fd = -1;
        if (pthread_create(&cl[i].thread, NULL, lg_client_main, &cl[i]) != 0)
            return 1;
    }
    pthread_barrier_wait(&lg_ready);
    t0 = lg_now();
    for (i = 0; i < o.clients; i++)
        pthread_join(cl[i].thread, NULL);
    t1 = lg_now();
    for (i = 0; i < o.clients; i++) {
        if (cl[i].failed) {
            fprintf(stderr, "st-loadgen: %s\n", cl[i].why);
            failed = 1;
        }
    }
    total = o.records * o.clients;
    printf("clients=%u records=%llu seconds=%.3f records_per_s=%.0f\n",
           o.clients, (unsigned long long)total, t1 - t0,
           (double)total / (t1 - t0));
    free(cl);
    return failed ? 1 : 0;
}
