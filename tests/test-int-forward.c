/*
 * White-box tests of forwarding's lower half alone (daemon/syslog.c,
 * fwdconf.c, fwddest.c): RFC 5424 messages byte for byte, SD-PARAM and
 * JSON escaping, values cut to max_message_bytes, the framing, the
 * settings and URLs with their error lines, and one destination with a
 * real loop and a real loopback TCP peer: delivery, the queue bound and
 * the NOTE after drops.
 */
#include "test-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "steptrace/buf.h"
#include "steptrace/config.h"
#include "steptrace/error.h"

#include "../daemon/fwdconf.h"
#include "../daemon/fwddest.h"
#include "../daemon/syslog.h"

/* 2026-12-06T22:15:37.123456 UTC. */
#define T_US 1796595337123456ull

static struct st_str
str(const char *s)
{
    struct st_str v = {s, strlen(s)};

    return v;
}

static void
conf_fixed(struct st_syslog_conf *conf)
{
    setenv("TZ", "UTC", 1);
    tzset();
    st__syslog_conf_init(conf);
    strcpy(conf->hostname, "web1");
}

/* A step record at /app/x.py::f line 7 of region 2, with two locals. */
static void
rec_step(struct st_syslog_rec *rec, struct st_step_view *v,
         struct st_var_view *vars, const char *value)
{
    memset(rec, 0, sizeof(*rec));
    memset(v, 0, sizeof(*v));
    memset(vars, 0, 2 * sizeof(*vars));
    vars[0].name = str("x");
    vars[0].type = str("int");
    vars[0].value = str("5");
    vars[1].name = str("s");
    vars[1].type = str("str");
    vars[1].value = str(value);
    v->event = ST_EVENT_STEP;
    v->locals = vars;
    v->nlocals = 2;
    rec->kind = ST_SYSLOG_STEP;
    rec->severity = ST_SYSLOG_INFO;
    rec->time_us = T_US;
    rec->pid = 4242;
    rec->run = str("web1:4242:1796595337000000:2");
    rec->file = str("/app/x.py");
    rec->func = str("f");
    rec->line = 7;
    rec->step = 3;
    rec->thread = str("MainThread");
    rec->region = 2;
    rec->runtime_ns = 84100;
    rec->has_runtime = 1;
    rec->view = v;
}

/* The message of a frame "LEN SP MSG", checking LEN. */
static const char *
frame_msg(struct st_buf *b)
{
    char *sp;

    ck_assert_int_eq(st_buf_reserve(b, 1), 0);
    b->data[b->len] = '\0';
    sp = strchr(b->data, ' ');
    ck_assert_ptr_nonnull(sp);
    ck_assert_uint_eq(strtoul(b->data, NULL, 10),
                      b->len - (size_t)(sp + 1 - b->data));
    return sp + 1;
}

START_TEST(test_syslog_step_message)
{
    struct st_syslog_conf conf;
    struct st_syslog_rec rec;
    struct st_step_view v;
    struct st_var_view vars[2];
    struct st_buf b;

    conf_fixed(&conf);
    rec_step(&rec, &v, vars, "hi");
    st_buf_init(&b);
    ck_assert_int_eq(st__syslog_frame(&conf, &rec, &b), 0);
    ck_assert_str_eq(
        frame_msg(&b),
        "<14>1 2026-12-06T22:15:37.123456+00:00 web1 steptrace 4242 STEP "
        "[steptrace@32473 run=\"web1:4242:1796595337000000:2\" "
        "file=\"/app/x.py\" func=\"f\" line=\"7\" step=\"3\" "
        "thread=\"MainThread\" region=\"2\" runtime_ns=\"84100\"] "
        "{\"locals\":{\"x\":{\"type\":\"int\",\"value\":\"5\"},"
        "\"s\":{\"type\":\"str\",\"value\":\"hi\"}}}");
    st_buf_close(&b);
}
END_TEST

/* PRI, the SD-ID, @cee: and the local offset follow the settings. */
START_TEST(test_syslog_settings_and_event)
{
    struct st_syslog_conf conf;
    struct st_syslog_rec rec;
    struct st_step_view v;
    struct st_var_view vars[2];
    struct st_buf b;

    setenv("TZ", "EST5", 1);
    tzset();
    st__syslog_conf_init(&conf);
    strcpy(conf.hostname, "h");
    conf.facility = st__syslog_facility("local3");
    conf.sd_id = "st@1";
    conf.cee = 1;
    rec_step(&rec, &v, vars, "");
    rec.kind = ST_SYSLOG_EVENT;
    rec.severity = ST_SYSLOG_ERR;
    v.event = ST_EVENT_EXCEPTION;
    v.detail = str("ValueError: bad \"x\"");
    rec.thread.p = NULL;
    rec.has_runtime = 0;
    st_buf_init(&b);
    ck_assert_int_eq(st__syslog_frame(&conf, &rec, &b), 0);
    ck_assert_str_eq(
        frame_msg(&b),
        "<155>1 2026-12-06T17:15:37.123456-05:00 h steptrace 4242 EVENT "
        "[st@1 run=\"web1:4242:1796595337000000:2\" file=\"/app/x.py\" "
        "func=\"f\" line=\"7\" step=\"3\" region=\"2\"] "
        "@cee:{\"event\":\"exception\",\"func\":\"f\","
        "\"text\":\"ValueError: bad \\\"x\\\"\"}");
    st_buf_close(&b);
}
END_TEST

/* A NOTE of the forwarder's own names no region; NILVALUE PROCID. */
START_TEST(test_syslog_note_without_region)
{
    struct st_syslog_conf conf;
    struct st_syslog_rec rec;
    struct st_buf b;

    conf_fixed(&conf);
    memset(&rec, 0, sizeof(rec));
    rec.kind = ST_SYSLOG_NOTE;
    rec.severity = ST_SYSLOG_WARNING;
    rec.time_us = T_US;
    rec.text = str("[steptrace] 7 records dropped");
    st_buf_init(&b);
    ck_assert_int_eq(st__syslog_frame(&conf, &rec, &b), 0);
    ck_assert_str_eq(frame_msg(&b),
                     "<12>1 2026-12-06T22:15:37.123456+00:00 web1 steptrace "
                     "- NOTE [steptrace@32473] {\"note\":true,"
                     "\"text\":\"[steptrace] 7 records dropped\"}");
    st_buf_close(&b);
}
END_TEST

START_TEST(test_syslog_sd_escape)
{
    struct st_buf b;

    st_buf_init(&b);
    ck_assert_int_eq(st__syslog_sd_escape(&b, "a\"b\\c]d é\xff", 11), 0);
    ck_assert_buf_str_eq(&b, "a\\\"b\\\\c\\]d é?");
    st_buf_close(&b);
}
END_TEST

START_TEST(test_syslog_json_escape)
{
    struct st_buf b;
    /* Quote, backslash, newline, tab, a control character, DEL, UTF-8
     * of 2 and 4 bytes, a lone continuation byte, a surrogate. */
    static const char in[] = "\"\\\n\t\x01\x7f"
                             "é😀\x80\xed\xa0\x80";

    st_buf_init(&b);
    ck_assert_int_eq(st__syslog_json_escape(&b, in, sizeof(in) - 1,
                                            (size_t)-1),
                     0);
    ck_assert_buf_str_eq(&b, "\\\"\\\\\\n\\t\\u0001\\u007fé😀\\ufffd"
                             "\\ufffd\\ufffd\\ufffd");
    /* A cut never splits a character: 2 bytes of "aé" is "a". */
    b.len = 0;
    ck_assert_int_eq(st__syslog_json_escape(&b, "aé", 3, 2), 0);
    ck_assert_buf_str_eq(&b, "a");
    st_buf_close(&b);
}
END_TEST

/* A message over max_message: values cut (and said), header whole. */
START_TEST(test_syslog_cut_values)
{
    struct st_syslog_conf conf;
    struct st_syslog_rec rec;
    struct st_step_view v;
    struct st_var_view vars[2];
    struct st_buf b;
    char *big = malloc(100001);
    const char *msg;

    ck_assert_ptr_nonnull(big);
    memset(big, 'v', 100000);
    big[100000] = '\0';
    conf_fixed(&conf);
    conf.max_message = 2048;
    rec_step(&rec, &v, vars, big);
    st_buf_init(&b);
    ck_assert_int_eq(st__syslog_frame(&conf, &rec, &b), 0);
    msg = frame_msg(&b);
    ck_assert_uint_le(strlen(msg), 2048);
    ck_assert_uint_gt(strlen(msg), 1024);
    ck_assert_ptr_nonnull(strstr(msg, "runtime_ns=\"84100\"] {\"locals\":"));
    ck_assert_ptr_nonnull(strstr(msg, "\"x\":{\"type\":\"int\",\"value\":"
                                      "\"5\"}"));
    ck_assert_ptr_nonnull(strstr(msg, "\"value_bytes\":100000}"));
    ck_assert_ptr_nonnull(strstr(msg, ",\"truncated\":true}"));
    /* Too small for even one value: the variables are left out and
     * counted, the header stays. */
    conf.max_message = 300;
    b.len = 0;
    ck_assert_int_eq(st__syslog_frame(&conf, &rec, &b), 0);
    msg = frame_msg(&b);
    ck_assert_ptr_nonnull(strstr(msg, "runtime_ns=\"84100\"] {"));
    ck_assert_ptr_nonnull(strstr(msg, "\"truncated\":true"));
    st_buf_close(&b);
    free(big);
}
END_TEST

START_TEST(test_syslog_names)
{
    ck_assert_int_eq(st__syslog_facility("user"), 1);
    ck_assert_int_eq(st__syslog_facility("daemon"), 3);
    ck_assert_int_eq(st__syslog_facility("local0"), 16);
    ck_assert_int_eq(st__syslog_facility("local7"), 23);
    ck_assert_int_eq(st__syslog_facility("local8"), -1);
    ck_assert_int_eq(st__syslog_facility("users"), -1);
    ck_assert_int_eq(st__syslog_sd_id_ok("steptrace@32473"), 1);
    ck_assert_int_eq(st__syslog_sd_id_ok("steptrace"), 0);
    ck_assert_int_eq(st__syslog_sd_id_ok("@1"), 0);
    ck_assert_int_eq(st__syslog_sd_id_ok("a@b"), 0);
    ck_assert_int_eq(st__syslog_sd_id_ok("a b@1"), 0);
    ck_assert_int_eq(st__syslog_sd_id_ok("a=b@1"), 0);
    ck_assert_int_eq(st__syslog_sd_id_ok("a-very-long-name-over-32@32473000"),
                     0);
}
END_TEST

/* ---- fwdconf.c ---- */

START_TEST(test_fwdconf_urls)
{
    struct st_fwd_url u;
    char err[512];

    ck_assert_int_eq(st__fwdconf_parse_url("syslog+tcp://127.0.0.1:514", &u,
                                           err, 512),
                     0);
    ck_assert_int_eq(u.scheme, ST_FWD_TCP);
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_str_eq(u.port, "514");
    st__fwdconf_url_close(&u);
    ck_assert_int_eq(st__fwdconf_parse_url("syslog+tcp://[::1]:6514", &u, err,
                                           512),
                     0);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_str_eq(u.port, "6514");
    st__fwdconf_url_close(&u);
    ck_assert_int_eq(st__fwdconf_parse_url("syslog+unix:///run/r.sock", &u,
                                           err, 512),
                     0);
    ck_assert_int_eq(u.scheme, ST_FWD_UNIX);
    ck_assert_str_eq(u.path, "/run/r.sock");
    st__fwdconf_url_close(&u);
    ck_assert_int_eq(st__fwdconf_parse_url("tcp://h:1", &u, err, 512),
                     ST_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "syslog+tcp://HOST:PORT or "
                                      "syslog+unix:///PATH"));
    st__fwdconf_url_close(&u);
    ck_assert_int_eq(st__fwdconf_parse_url("syslog+tcp://h", &u, err, 512),
                     ST_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "names no port"));
    st__fwdconf_url_close(&u);
    ck_assert_int_eq(st__fwdconf_parse_url("syslog+tcp://h:70000", &u, err,
                                           512),
                     ST_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "from 1 to 65535"));
    st__fwdconf_url_close(&u);
    ck_assert_int_eq(st__fwdconf_parse_url("syslog+tcp://:514", &u, err, 512),
                     ST_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "names no host"));
    st__fwdconf_url_close(&u);
    ck_assert_int_eq(st__fwdconf_parse_url("syslog+unix://relative", &u, err,
                                           512),
                     ST_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "absolute path"));
    st__fwdconf_url_close(&u);
}
END_TEST

/* Applies every key of YAML text; @return the first error. */
static int
fwdconf_load(struct st_fwdconf *fc, const char *text, char *err, size_t n)
{
    struct st_config *cfg = NULL;
    const struct st_config_node *root;
    size_t i;
    int r;

    r = st_config_load_string("c.yaml", text, strlen(text), NULL, &cfg, err,
                              n);
    if (r != 0)
        return r;
    root = st_config_root(cfg);
    for (i = 0; r == 0 && i < st_config_size(root); i++) {
        r = st__fwdconf_key(fc, cfg, st_config_key(root, i),
                            st_config_value(root, i), err, n);
        if (r == ST_FWDCONF_NOT_MINE)
            r = 0;
    }
    st_config_free(cfg);
    return r;
}

START_TEST(test_fwdconf_keys)
{
    struct st_fwdconf fc;
    char err[ST_CONFIG_ERRLEN];

    st__fwdconf_init(&fc);
    ck_assert_int_eq(fwdconf_load(&fc,
                                  "forward:\n"
                                  "  - syslog+tcp://127.0.0.1:514\n"
                                  "  - syslog+unix:///run/r.sock\n"
                                  "facility: local2\n"
                                  "sd-id: st@99\n"
                                  "cee: true\n"
                                  "max_message_bytes: 8192\n"
                                  "forward_queue_bytes: 1048576\n"
                                  "forward_drain_ms: 0\n"
                                  "log_file: false\n",
                                  err, sizeof(err)),
                     0);
    ck_assert_uint_eq(fc.nurls, 2);
    ck_assert_str_eq(fc.urls[1], "syslog+unix:///run/r.sock");
    ck_assert_int_eq(fc.facility, 18);
    ck_assert_str_eq(fc.sd_id, "st@99");
    ck_assert_int_eq(fc.cee, 1);
    ck_assert_int_eq(fc.files_off, 1);
    ck_assert_uint_eq(fc.max_message, 8192);
    ck_assert_uint_eq(fc.queue_bytes, 1048576);
    ck_assert_uint_eq(fc.drain_ms, 0);
    ck_assert_int_eq(st__fwdconf_check(&fc, err, sizeof(err)), 0);
    st__fwdconf_close(&fc);
    /* One URL alone is a list of one; a path in log_file is not ours. */
    ck_assert_int_eq(fwdconf_load(&fc,
                                  "forward: syslog+tcp://h:1\n"
                                  "log_file: /tmp/own.log\n",
                                  err, sizeof(err)),
                     0);
    ck_assert_uint_eq(fc.nurls, 1);
    ck_assert_int_eq(fc.files_off, 0);
    st__fwdconf_close(&fc);
}
END_TEST

START_TEST(test_fwdconf_errors)
{
    static const struct {
        const char *yaml;
        const char *says;
    } cases[] = {
        {"forward: [tcp://h:1]\n",
         "c.yaml:1:11: forward: 'tcp://h:1' is not a forward destination"},
        {"forward: {a: 1}\n", "c.yaml:1:10: forward must be a URL or a list"},
        {"facility: mail2\n", "c.yaml:1:11: facility must be a syslog"},
        {"facility: 24\n", "c.yaml:1:11: facility must be"},
        {"sd_id: steptrace\n", "c.yaml:1:8: sd_id must be NAME@"},
        {"cee: 1\n", "c.yaml:1:6: cee must be true or false"},
        {"max_message_bytes: 100\n",
         "c.yaml:1:20: max_message_bytes must be between 1024"},
        {"forward_queue_bytes: 10\n",
         "c.yaml:1:22: forward_queue_bytes must be between 16384"},
    };
    struct st_fwdconf fc;
    char err[ST_CONFIG_ERRLEN];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st__fwdconf_init(&fc);
        ck_assert_int_eq(fwdconf_load(&fc, cases[i].yaml, err, sizeof(err)),
                         ST_ECONFIG);
        ck_assert_msg(strncmp(err, cases[i].says, strlen(cases[i].says)) == 0,
                      "%s: %s", cases[i].yaml, err);
        st__fwdconf_close(&fc);
    }
    /* What only the whole set tells. */
    st__fwdconf_init(&fc);
    fc.files_off = 1;
    ck_assert_int_eq(st__fwdconf_check(&fc, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "no forward destination is set"));
    fc.files_off = 0;
    fc.queue_bytes = 32768;
    fc.max_message = 65536;
    ck_assert_int_eq(st__fwdconf_check(&fc, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "raise forward_queue_bytes"));
    st__fwdconf_close(&fc);
}
END_TEST

/* ---- fwddest.c, with a real loop and a loopback TCP peer ---- */

static struct {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_tcp_t peer;
    int accepted;
    struct st_buf got;
    uv_timer_t timer;
    int notes;
} t;

static void
peer_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char b[65536];

    *buf = uv_buf_init(b, sizeof(b));
}

static void
peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0)
        st_buf_append(&t.got, buf->base, (size_t)n);
}

static void
on_accept(uv_stream_t *server, int status)
{
    ck_assert_int_eq(status, 0);
    uv_tcp_init(&t.loop, &t.peer);
    ck_assert_int_eq(uv_accept(server, (uv_stream_t *)&t.peer), 0);
    t.accepted = 1;
    uv_read_start((uv_stream_t *)&t.peer, peer_alloc, peer_read);
}

static int
test_note(struct st_fwddest *d, uint64_t dropped, struct st_buf *out)
{
    char m[64];
    int n = snprintf(m, sizeof(m), "NOTE %llu", (unsigned long long)dropped);

    t.notes++;
    st_buf_put_u64(out, (uint64_t)n);
    st_buf_append(out, " ", 1);
    return st_buf_append(out, m, (size_t)n);
}

static void
run_until(int (*done)(void *), void *arg)
{
    int i;

    for (i = 0; i < 5000 && !done(arg); i++)
        uv_run(&t.loop, UV_RUN_ONCE);
    ck_assert_msg(done(arg), "timed out");
}

static int
got_at_least(void *arg)
{
    return t.got.len >= *(size_t *)arg;
}

static void
tick(uv_timer_t *h)
{
}

/* Port 0 bound, the port the kernel chose. */
static int
listen_any(void)
{
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&t.loop, &t.server);
    ck_assert_int_eq(uv_tcp_bind(&t.server, (struct sockaddr *)&sa, 0), 0);
    ck_assert_int_eq(uv_listen((uv_stream_t *)&t.server, 8, on_accept), 0);
    uv_tcp_getsockname(&t.server, (struct sockaddr *)&ss, &len);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void
loop_finish(struct st_fwddest *d)
{
    st__fwddest_close(d);
    if (t.accepted)
        uv_close((uv_handle_t *)&t.peer, NULL);
    uv_close((uv_handle_t *)&t.server, NULL);
    uv_close((uv_handle_t *)&t.timer, NULL);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t.loop), 0);
    st__fwddest_free(d);
    st_buf_close(&t.got);
}

START_TEST(test_fwddest_delivers_in_order)
{
    struct st_fwddest *d;
    char url[64];
    size_t want = 0;
    int i;

    memset(&t, 0, sizeof(t));
    uv_loop_init(&t.loop);
    uv_timer_init(&t.loop, &t.timer);
    uv_timer_start(&t.timer, tick, 10, 10);
    snprintf(url, sizeof(url), "syslog+tcp://127.0.0.1:%d", listen_any());
    ck_assert_int_eq(st__fwddest_new(&t.loop, url, 1 << 20, test_note, NULL,
                                     &d),
                     0);
    /* Queued before the connection is up: kept, then sent in order. */
    for (i = 0; i < 1000; i++) {
        char m[32];
        int n = snprintf(m, sizeof(m), "7 msg%04d", i);

        ck_assert_int_eq(st__fwddest_push(d, m, (size_t)n), 0);
        want += (size_t)n;
    }
    ck_assert_uint_eq(d->queued, 1000);
    st__fwddest_start(d);
    run_until(got_at_least, &want);
    ck_assert_uint_eq(t.got.len, want);
    ck_assert_int_eq(memcmp(t.got.data, "7 msg00007 msg0001", 18), 0);
    ck_assert_int_eq(memcmp(t.got.data + want - 9, "7 msg0999", 9), 0);
    ck_assert_uint_eq(d->sent, 1000);
    ck_assert_uint_eq(d->queued, 0);
    ck_assert_uint_eq(d->queued_bytes, 0);
    ck_assert_uint_eq(d->dropped, 0);
    ck_assert_int_eq(d->connected, 1);
    loop_finish(d);
}
END_TEST

/* A full queue drops and counts; once there is room the destination
 * gets one NOTE with the count, before the next message. */
START_TEST(test_fwddest_drops_then_notes)
{
    struct st_fwddest *d;
    char url[64], msg[1000];
    size_t want, i;

    memset(&t, 0, sizeof(t));
    memset(msg, 'm', sizeof(msg));
    memcpy(msg, "996 ", 4);
    uv_loop_init(&t.loop);
    uv_timer_init(&t.loop, &t.timer);
    uv_timer_start(&t.timer, tick, 10, 10);
    snprintf(url, sizeof(url), "syslog+tcp://127.0.0.1:%d", listen_any());
    ck_assert_int_eq(st__fwddest_new(&t.loop, url, 16384, test_note, NULL, &d),
                     0);
    for (i = 0; i < 20; i++)
        st__fwddest_push(d, msg, sizeof(msg));
    ck_assert_uint_eq(d->queued, 16);
    ck_assert_uint_eq(d->dropped, 4);
    st__fwddest_start(d);
    want = 16 * sizeof(msg);
    run_until(got_at_least, &want);
    ck_assert_int_eq(t.notes, 1);
    want += strlen("6 NOTE 4");
    run_until(got_at_least, &want);
    ck_assert_int_eq(memcmp(t.got.data + 16 * sizeof(msg), "6 NOTE 4", 8), 0);
    ck_assert_int_eq(st__fwddest_push(d, msg, sizeof(msg)), 0);
    want += sizeof(msg);
    run_until(got_at_least, &want);
    ck_assert_int_eq(t.notes, 1);
    ck_assert_uint_eq(d->sent, 18);
    ck_assert_uint_eq(d->dropped, 4);
    loop_finish(d);
}
END_TEST

Suite *
forward_suite(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("syslog");

    tcase_add_test(tc, test_syslog_step_message);
    tcase_add_test(tc, test_syslog_settings_and_event);
    tcase_add_test(tc, test_syslog_note_without_region);
    tcase_add_test(tc, test_syslog_sd_escape);
    tcase_add_test(tc, test_syslog_json_escape);
    tcase_add_test(tc, test_syslog_cut_values);
    tcase_add_test(tc, test_syslog_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("fwdconf");
    tcase_add_test(tc, test_fwdconf_urls);
    tcase_add_test(tc, test_fwdconf_keys);
    tcase_add_test(tc, test_fwdconf_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("fwddest");
    tcase_add_test(tc, test_fwddest_delivers_in_order);
    tcase_add_test(tc, test_fwddest_drops_then_notes);
    suite_add_tcase(s, tc);
    return s;
}
