/* Tests for steptrace/config.h: the YAML loader, its tree, limits and
 * error text, and scalar resolution. */
#include "test-common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steptrace/config.h"
#include "steptrace/error.h"

/* Loads a NUL-terminated string named "t.yaml"; asserts success. */
static struct st_config *
load_ok(const char *text)
{
    struct st_config *cfg = NULL;
    char err[ST_CONFIG_ERRLEN];
    int rc;

    rc = st_config_load_string("t.yaml", text, strlen(text), NULL, &cfg, err,
                               sizeof(err));
    ck_assert_msg(rc == 0, "load failed (%d): %s", rc, err);
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

/* Loads a string expected to fail with `code` and the exact message. */
static void
load_fails(const char *text, const struct st_config_limits *lim, int code,
           const char *message)
{
    struct st_config *cfg = (struct st_config *)&cfg;
    char err[ST_CONFIG_ERRLEN];
    int rc;

    rc = st_config_load_string("t.yaml", text, strlen(text), lim, &cfg, err,
                               sizeof(err));
    ck_assert_msg(rc == code, "rc %d (%s), expected %d; text %s", rc, err,
                  code, text);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, message);
}

static const char *
text_of(const struct st_config_node *n)
{
    ck_assert_int_eq(st_config_kind(n), ST_CONFIG_SCALAR);
    return st_config_text(n, NULL);
}

START_TEST(test_config_mapping_tree)
{
    struct st_config *cfg = load_ok("# steptrace\n"
                                    "log_level: DEBUG\n"
                                    "filter-workspace: false\n"
                                    "traceable_functions:\n"
                                    "  - main\n"
                                    "  - 'work'\n"
                                    "nested: {a: 1, b: [x, \"y\"]}\n");
    const struct st_config_node *root = st_config_root(cfg), *v, *seq;

    ck_assert_str_eq(st_config_name(cfg), "t.yaml");
    ck_assert_int_eq(st_config_kind(root), ST_CONFIG_MAPPING);
    ck_assert_uint_eq(st_config_size(root), 4);
    ck_assert_uint_eq(st_config_line(root), 2);
    ck_assert_uint_eq(st_config_column(root), 1);

    /* Pairs in file order, keys with their positions. */
    ck_assert_str_eq(text_of(st_config_key(root, 0)), "log_level");
    ck_assert_str_eq(text_of(st_config_value(root, 0)), "DEBUG");
    ck_assert_uint_eq(st_config_line(st_config_value(root, 0)), 2);
    ck_assert_uint_eq(st_config_column(st_config_value(root, 0)), 12);
    ck_assert_str_eq(text_of(st_config_key(root, 1)), "filter-workspace");
    ck_assert_uint_eq(st_config_line(st_config_key(root, 1)), 3);
    ck_assert_ptr_null(st_config_key(root, 4));
    ck_assert_ptr_null(st_config_value(root, 4));
    ck_assert_ptr_null(st_config_item(root, 0));

    seq = st_config_lookup(root, "traceable_functions");
    ck_assert_int_eq(st_config_kind(seq), ST_CONFIG_SEQUENCE);
    ck_assert_uint_eq(st_config_size(seq), 2);
    ck_assert_str_eq(text_of(st_config_item(seq, 0)), "main");
    ck_assert_int_eq(st_config_style(st_config_item(seq, 0)), ST_CONFIG_PLAIN);
    ck_assert_str_eq(text_of(st_config_item(seq, 1)), "work");
    ck_assert_int_eq(st_config_style(st_config_item(seq, 1)),
                     ST_CONFIG_QUOTED);
    ck_assert_uint_eq(st_config_line(st_config_item(seq, 1)), 6);
    ck_assert_uint_eq(st_config_column(st_config_item(seq, 1)), 5);
    ck_assert_ptr_null(st_config_item(seq, 2));
    ck_assert_ptr_null(st_config_key(seq, 0));
    ck_assert_int_eq(st_config_style(seq), 0);
    ck_assert_ptr_null(st_config_text(seq, NULL));

    v = st_config_lookup(root, "nested");
    ck_assert_int_eq(st_config_kind(v), ST_CONFIG_MAPPING);
    ck_assert_str_eq(text_of(st_config_lookup(v, "a")), "1");
    v = st_config_lookup(v, "b");
    ck_assert_uint_eq(st_config_size(v), 2);
    ck_assert_int_eq(st_config_style(st_config_item(v, 1)), ST_CONFIG_QUOTED);

    ck_assert_ptr_null(st_config_lookup(root, "log-level"));
    ck_assert_ptr_null(st_config_lookup(root, "missing"));
    ck_assert_ptr_null(st_config_lookup(seq, "main"));
    ck_assert_ptr_null(st_config_lookup(NULL, "x"));
    ck_assert_uint_eq(st_config_size(NULL), 0);
    ck_assert_int_eq(st_config_kind(NULL), 0);
    st_config_free(cfg);
}
END_TEST

START_TEST(test_config_scalar_styles)
{
    struct st_config *cfg = load_ok("plain: a b\n"
                                    "single: 'it''s'\n"
                                    "double: \"tab\\there\\0end\"\n"
                                    "literal: |\n"
                                    "  one\n"
                                    "  two\n"
                                    "folded: >\n"
                                    "  one\n"
                                    "  two\n"
                                    "tagged: !!str yes\n"
                                    "bang: ! 12\n"
                                    "empty:\n");
    const struct st_config_node *root = st_config_root(cfg), *n;
    size_t len;

    n = st_config_lookup(root, "plain");
    ck_assert_str_eq(text_of(n), "a b");
    ck_assert_int_eq(st_config_style(n), ST_CONFIG_PLAIN);
    n = st_config_lookup(root, "single");
    ck_assert_str_eq(text_of(n), "it's");
    ck_assert_int_eq(st_config_style(n), ST_CONFIG_QUOTED);
    n = st_config_lookup(root, "double");
    ck_assert_int_eq(st_config_style(n), ST_CONFIG_QUOTED);
    ck_assert_int_eq(memcmp(st_config_text(n, &len), "tab\there\0end", 13), 0);
    ck_assert_uint_eq(len, 12);
    n = st_config_lookup(root, "literal");
    ck_assert_str_eq(text_of(n), "one\ntwo\n");
    ck_assert_int_eq(st_config_style(n), ST_CONFIG_BLOCK);
    n = st_config_lookup(root, "folded");
    ck_assert_str_eq(text_of(n), "one two\n");
    ck_assert_int_eq(st_config_style(n), ST_CONFIG_BLOCK);
    n = st_config_lookup(root, "tagged");
    ck_assert_str_eq(text_of(n), "yes");
    ck_assert_int_eq(st_config_style(n), ST_CONFIG_QUOTED);
    ck_assert_int_eq(st_config_resolve(n), ST_CONFIG_STR);
    n = st_config_lookup(root, "bang");
    ck_assert_int_eq(st_config_resolve(n), ST_CONFIG_STR);
    n = st_config_lookup(root, "empty");
    ck_assert_str_eq(text_of(n), "");
    ck_assert_int_eq(st_config_style(n), ST_CONFIG_PLAIN);
    ck_assert_int_eq(st_config_resolve(n), ST_CONFIG_NULL);
    st_config_free(cfg);
}
END_TEST

START_TEST(test_config_empty_and_scalar_documents)
{
    static const char *const empties[] = {"", "\n\n", "# only a comment\n"};
    static const char *const nulls[] = {"---\n", "---\n...\n", "~\n"};
    struct st_config *cfg;
    size_t i;

    for (i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        cfg = load_ok(empties[i]);
        ck_assert_ptr_null(st_config_root(cfg));
        st_config_free(cfg);
    }
    /* A document with nothing after its "---" is a null scalar. */
    for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        cfg = load_ok(nulls[i]);
        ck_assert_int_eq(st_config_resolve(st_config_root(cfg)),
                         ST_CONFIG_NULL);
        st_config_free(cfg);
    }
    cfg = load_ok("--- just text\n...\n");
    ck_assert_str_eq(text_of(st_config_root(cfg)), "just text");
    st_config_free(cfg);
    cfg = load_ok("- a\n- b: c\n");
    ck_assert_int_eq(st_config_kind(st_config_root(cfg)), ST_CONFIG_SEQUENCE);
    st_config_free(cfg);
    /* Anchors are allowed (and ignored); only aliases are refused. */
    cfg = load_ok("a: &x 1\nb: &y [2]\n");
    ck_assert_str_eq(text_of(st_config_lookup(st_config_root(cfg), "a")), "1");
    st_config_free(cfg);
    st_config_free(NULL);
}
END_TEST

START_TEST(test_config_syntax_errors)
{
    load_fails("a: [1, 2\n", NULL, ST_ECONFIG,
               "t.yaml:2:1: did not find expected ',' or ']' (while "
               "parsing a flow sequence at line 1, column 4)");
    load_fails("a: 1\n b: 2\n", NULL, ST_ECONFIG,
               "t.yaml:2:3: mapping values are not allowed in this "
               "context");
    load_fails("a: 'open\n", NULL, ST_ECONFIG,
               "t.yaml:2:1: found unexpected end of stream (while "
               "scanning a quoted scalar at line 1, column 4)");
    load_fails("a: 1\n\tb: 2\n", NULL, ST_ECONFIG,
               "t.yaml:2:1: found a tab character that violates "
               "indentation (while scanning a plain scalar at line 1, "
               "column 4)");
    load_fails("key: val\nbad\n", NULL, ST_ECONFIG,
               "t.yaml:3:1: could not find expected ':' (while scanning "
               "a simple key at line 2, column 1)");
}
END_TEST

START_TEST(test_config_reader_errors)
{
    /* Invalid UTF-8 and control characters come with a position too. */
    load_fails("a: 1\nb: \xff\n", NULL, ST_ECONFIG,
               "t.yaml:2:4: invalid leading UTF-8 octet (byte 0xff)");
    load_fails("a: \x01\n", NULL, ST_ECONFIG,
               "t.yaml:1:4: control characters are not allowed (byte "
               "0x01)");
}
END_TEST

START_TEST(test_config_refused_constructs)
{
    load_fails("a: &x 1\nb: *x\n", NULL, ST_ECONFIG,
               "t.yaml:2:4: aliases (*x) are not supported in config "
               "files: write the value out");
    load_fails("base: &b {a: 1}\nother:\n  <<: *b\n", NULL, ST_ECONFIG,
               "t.yaml:3:7: aliases (*b) are not supported in config "
               "files: write the value out");
    load_fails("log_level: INFO\nx: 1\nlog_level: DEBUG\n", NULL, ST_ECONFIG,
               "t.yaml:3:1: duplicate key 'log_level' (first given at "
               "line 1, column 1)");
    load_fails("m:\n  b: 1\n  a: 2\n  b: 3\n  a: 4\n", NULL, ST_ECONFIG,
               "t.yaml:4:3: duplicate key 'b' (first given at line 2, "
               "column 3)");
    load_fails("? [a, b]\n: c\n", NULL, ST_ECONFIG,
               "t.yaml:1:3: a mapping key must be a plain value, not a "
               "list");
    load_fails("{x: 1}: 2\n", NULL, ST_ECONFIG,
               "t.yaml:1:1: a mapping key must be a plain value, not a "
               "mapping");
    load_fails("a: !!int 5\n", NULL, ST_ECONFIG,
               "t.yaml:1:4: the tag 'tag:yaml.org,2002:int' is not "
               "supported (only !!str)");
    load_fails("a: !custom {}\n", NULL, ST_ECONFIG,
               "t.yaml:1:4: the tag '!custom' is not supported (only "
               "!!str)");
    load_fails("a: 1\n---\nb: 2\n", NULL, ST_ECONFIG,
               "t.yaml:2:1: a second YAML document (a config file holds "
               "one document: remove the '---')");
    /* Duplicate check is on the exact text; a control character in a
     * key is escaped so that the message stays one line. */
    load_fails("\"a\\nb\": 1\n\"a\\nb\": 2\n", NULL, ST_ECONFIG,
               "t.yaml:2:1: duplicate key 'a\\x0ab' (first given at line "
               "1, column 1)");
}
END_TEST

START_TEST(test_config_limits)
{
    struct st_config_limits lim = {0, 3, 0};
    struct st_config *cfg;
    char *deep;
    char err[ST_CONFIG_ERRLEN];
    size_t i, n = 100000;

    cfg = NULL;
    ck_assert_int_eq(st_config_load_string("t.yaml", "a: {b: [1]}", 11, &lim,
                                           &cfg, err, sizeof(err)),
                     0);
    st_config_free(cfg);
    load_fails("a: {b: [[1]]}", &lim, ST_ELIMIT,
               "t.yaml:1:9: lists and mappings nested more than 3 levels "
               "deep");
    lim.max_depth = 0;
    lim.max_nodes = 5;
    load_fails("a: 1\nb: 2\nc: 3\n", &lim, ST_ELIMIT,
               "t.yaml:3:1: more than 5 nodes (values, lists and "
               "mappings) in one file");
    lim.max_nodes = 0;
    lim.max_bytes = 8;
    load_fails("a: 12345\n", &lim, ST_ELIMIT,
               "t.yaml: larger than 8 bytes: not a config file?");

    /* The default depth limit stops a hostile nesting early. */
    deep = malloc(2 * n + 1);
    ck_assert_ptr_nonnull(deep);
    for (i = 0; i < n; i++) {
        deep[i] = '[';
        deep[n + i] = ']';
    }
    deep[2 * n] = '\0';
    cfg = NULL;
    ck_assert_int_eq(st_config_load_string("t.yaml", deep, 2 * n, NULL, &cfg,
                                           err, sizeof(err)),
                     ST_ELIMIT);
    ck_assert_str_eq(err, "t.yaml:1:33: lists and mappings nested more "
                          "than 32 levels deep");
    ck_assert_ptr_null(cfg);
    free(deep);
}
END_TEST

/* Writes `text` to a fresh file in a temporary directory. */
static void
write_file(char *dir, char *path, size_t pathlen, const char *name,
           const char *text)
{
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, pathlen, "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_config_load_file)
{
    char dir[] = "/tmp/st-config-XXXXXX", path[512], missing[600];
    char err[ST_CONFIG_ERRLEN], want[1200];
    struct st_config_limits lim = {4, 0, 0};
    struct st_config *cfg = NULL;

    write_file(dir, path, sizeof(path), "steptrace.yaml",
               "log_output: STDOUT\nrepr_limit: 80\n");
    ck_assert_int_eq(st_config_load_file(path, NULL, &cfg, err, sizeof(err)),
                     0);
    ck_assert_str_eq(st_config_name(cfg), path);
    ck_assert_str_eq(text_of(
                         st_config_lookup(st_config_root(cfg), "repr_limit")),
                     "80");
    st_config_free(cfg);

    /* A semantic error reported by the caller, at a node. */
    ck_assert_int_eq(st_config_load_file(path, NULL, &cfg, err, sizeof(err)),
                     0);
    ck_assert_int_eq(
        st_config_errorf(cfg,
                         st_config_lookup(st_config_root(cfg), "repr_limit"),
                         err, sizeof(err), "expected %s", "a name"),
        ST_ECONFIG);
    snprintf(want, sizeof(want), "%s:2:13: expected a name", path);
    ck_assert_str_eq(err, want);
    st_config_errorf(cfg, NULL, err, sizeof(err), "no %d", 7);
    snprintf(want, sizeof(want), "%s: no 7", path);
    ck_assert_str_eq(err, want);
    st_config_free(cfg);

    /* Too large, read through the file path. */
    cfg = (struct st_config *)&cfg;
    ck_assert_int_eq(st_config_load_file(path, &lim, &cfg, err, sizeof(err)),
                     ST_ELIMIT);
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof(want),
             "%s: larger than 4 bytes: not a config "
             "file?",
             path);
    ck_assert_str_eq(err, want);

    snprintf(missing, sizeof(missing), "%s/nope.yaml", dir);
    ck_assert_int_eq(st_config_load_file(missing, NULL, &cfg, err,
                                         sizeof(err)),
                     -ENOENT);
    snprintf(want, sizeof(want), "%s: cannot open: %s", missing,
             strerror(ENOENT));
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(st_config_load_file(dir, NULL, &cfg, err, sizeof(err)),
                     -EISDIR);
    snprintf(want, sizeof(want), "%s: cannot read: %s", dir, strerror(EISDIR));
    ck_assert_str_eq(err, want);

    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_config_error_buffer)
{
    struct st_config *cfg = NULL;
    char small[12];

    /* Cut, NUL-terminated, never written past errlen (ASan checks). */
    memset(small, 'x', sizeof(small));
    ck_assert_int_eq(st_config_load_string("a-long-name.yaml", "a: [", 4, NULL,
                                           &cfg, small, sizeof(small)),
                     ST_ECONFIG);
    ck_assert_str_eq(small, "a-long-name");
    ck_assert_int_eq(st_config_load_string("t", "a: [", 4, NULL, &cfg, NULL,
                                           0),
                     ST_ECONFIG);
    ck_assert_int_eq(st_config_load_string("t", "a: [", 4, NULL, &cfg, small,
                                           1),
                     ST_ECONFIG);
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(st_config_load_string(NULL, "a: [", 4, NULL, &cfg, small,
                                           sizeof(small)),
                     ST_ECONFIG);
    ck_assert_str_eq(small, "<string>:2:");
    ck_assert_int_eq(st_config_load_string("t", "x", 1, NULL, NULL, small,
                                           sizeof(small)),
                     -EINVAL);
    ck_assert_int_eq(st_config_load_file("/nonexistent/x", NULL, &cfg, NULL,
                                         0),
                     -ENOENT);
}
END_TEST

/* A plain scalar's resolved type, from a one-key document. */
static int
resolve_text(const char *value, int quoted)
{
    char doc[256];
    struct st_config *cfg;
    int type;

    snprintf(doc, sizeof(doc), quoted ? "v: '%s'\n" : "v: %s\n", value);
    cfg = load_ok(doc);
    type = st_config_resolve(st_config_lookup(st_config_root(cfg), "v"));
    st_config_free(cfg);
    return type;
}

START_TEST(test_config_resolve_types)
{
    static const struct {
        const char *text;
        int type;
    } cases[] = {
        {"~", ST_CONFIG_NULL},       {"null", ST_CONFIG_NULL},
        {"NULL", ST_CONFIG_NULL},    {"Null", ST_CONFIG_NULL},
        {"true", ST_CONFIG_BOOL},    {"False", ST_CONFIG_BOOL},
        {"TRUE", ST_CONFIG_BOOL},    {"yes", ST_CONFIG_BOOL},
        {"No", ST_CONFIG_BOOL},      {"on", ST_CONFIG_BOOL},
        {"OFF", ST_CONFIG_BOOL},     {"tRuE", ST_CONFIG_BOOL},
        {"y", ST_CONFIG_STR},        {"n", ST_CONFIG_STR},
        {"0", ST_CONFIG_INT},        {"-0", ST_CONFIG_INT},
        {"42", ST_CONFIG_INT},       {"+42", ST_CONFIG_INT},
        {"-17", ST_CONFIG_INT},      {"1_000", ST_CONFIG_INT},
        {"0x1F", ST_CONFIG_INT},     {"0b101", ST_CONFIG_INT},
        {"017", ST_CONFIG_INT},      {"08", ST_CONFIG_STR},
        {"0x", ST_CONFIG_STR},       {"0xG", ST_CONFIG_STR},
        {"1.5", ST_CONFIG_FLOAT},    {"-.5", ST_CONFIG_FLOAT},
        {"1.", ST_CONFIG_FLOAT},     {"1e3", ST_CONFIG_FLOAT},
        {"1.5E-3", ST_CONFIG_FLOAT}, {"6.02e+23", ST_CONFIG_FLOAT},
        {".inf", ST_CONFIG_FLOAT},   {"-.Inf", ST_CONFIG_FLOAT},
        {".NaN", ST_CONFIG_FLOAT},   {"1_000.5", ST_CONFIG_FLOAT},
        {".", ST_CONFIG_STR},        {"1e", ST_CONFIG_STR},
        {"e3", ST_CONFIG_STR},       {"1.2.3", ST_CONFIG_STR},
        {"12abc", ST_CONFIG_STR},    {"1:30", ST_CONFIG_STR},
        {"DEBUG", ST_CONFIG_STR},    {"-x", ST_CONFIG_STR},
        {"nulls", ST_CONFIG_STR},    {"inf", ST_CONFIG_STR},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(resolve_text(cases[i].text, 0) == cases[i].type,
                      "%s resolves to %d, expected %d", cases[i].text,
                      resolve_text(cases[i].text, 0), cases[i].type);
        /* Quoted, every one of them is a string. */
        ck_assert_int_eq(resolve_text(cases[i].text, 1), ST_CONFIG_STR);
    }
}
END_TEST

START_TEST(test_config_scalar_values)
{
    struct st_config *cfg = load_ok(
        "b1: Yes\nb0: off\ni1: -17\ni2: 0x1F\ni3: 0b101\ni4: 017\n"
        "i5: 1_000\ni6: 9223372036854775807\ni7: -9223372036854775808\n"
        "big: 9223372036854775808\nf1: 1.5\nf2: 1e3\nf3: -.inf\nf4: .nan\n"
        "f5: 1_0.2_5\nf6: 1e999\ns: text\nq: '12'\nl: [1]\n");
    const struct st_config_node *root = st_config_root(cfg);
    long long iv;
    double dv;
    int bv;

#define GET(key) st_config_lookup(root, key)
    ck_assert_int_eq(st_config_as_bool(GET("b1"), &bv), 0);
    ck_assert_int_eq(bv, 1);
    ck_assert_int_eq(st_config_as_bool(GET("b0"), &bv), 0);
    ck_assert_int_eq(bv, 0);
    ck_assert_int_eq(st_config_as_bool(GET("i1"), &bv), ST_ECONFIG);
    ck_assert_int_eq(st_config_as_int(GET("i1"), &iv), 0);
    ck_assert_int_eq(iv, -17);
    ck_assert_int_eq(st_config_as_int(GET("i2"), &iv), 0);
    ck_assert_int_eq(iv, 31);
    ck_assert_int_eq(st_config_as_int(GET("i3"), &iv), 0);
    ck_assert_int_eq(iv, 5);
    ck_assert_int_eq(st_config_as_int(GET("i4"), &iv), 0);
    ck_assert_int_eq(iv, 15);
    ck_assert_int_eq(st_config_as_int(GET("i5"), &iv), 0);
    ck_assert_int_eq(iv, 1000);
    ck_assert_int_eq(st_config_as_int(GET("i6"), &iv), 0);
    ck_assert(iv == LLONG_MAX);
    ck_assert_int_eq(st_config_as_int(GET("i7"), &iv), 0);
    ck_assert(iv == LLONG_MIN);
    ck_assert_int_eq(st_config_resolve(GET("big")), ST_CONFIG_INT);
    ck_assert_int_eq(st_config_as_int(GET("big"), &iv), -ERANGE);
    ck_assert_int_eq(st_config_as_double(GET("big"), &dv), -ERANGE);
    ck_assert_int_eq(st_config_as_int(GET("f1"), &iv), ST_ECONFIG);
    ck_assert_int_eq(st_config_as_double(GET("f1"), &dv), 0);
    ck_assert(dv == 1.5);
    ck_assert_int_eq(st_config_as_double(GET("f2"), &dv), 0);
    ck_assert(dv == 1000.0);
    ck_assert_int_eq(st_config_as_double(GET("f3"), &dv), 0);
    ck_assert(isinf(dv) && dv < 0);
    ck_assert_int_eq(st_config_as_double(GET("f4"), &dv), 0);
    ck_assert(isnan(dv));
    ck_assert_int_eq(st_config_as_double(GET("f5"), &dv), 0);
    ck_assert(dv == 10.25);
    ck_assert_int_eq(st_config_as_double(GET("f6"), &dv), 0);
    ck_assert(isinf(dv) && dv > 0);
    ck_assert_int_eq(st_config_as_double(GET("i2"), &dv), 0);
    ck_assert(dv == 31.0);
    ck_assert_int_eq(st_config_as_double(GET("s"), &dv), ST_ECONFIG);
    ck_assert_int_eq(st_config_as_double(GET("q"), &dv), ST_ECONFIG);
    ck_assert_int_eq(st_config_as_int(GET("q"), &iv), ST_ECONFIG);
    ck_assert_int_eq(st_config_resolve(GET("l")), 0);
    ck_assert_int_eq(st_config_as_bool(GET("l"), &bv), ST_ECONFIG);
#undef GET
    st_config_free(cfg);
}
END_TEST

/*
 * Random damage to a valid document never crashes or leaks (ASan and
 * valgrind runs check that): every load either succeeds or fails with a
 * code and a message that starts with the name.
 */
START_TEST(test_config_random_inputs)
{
    static const char base[] =
        "log_level: DEBUG\nlog_output: 'FILE_STDOUT'\n"
        "traceable_functions: [main, \"work\"]\nnested:\n  - {a: 1}\n"
        "  - |\n    text\nanchor: &a 1\n";
    static const char bytes[] = "[]{}:,-?'\"&*!|>#%@` \n\t\\\x01\xc3\xff";
    struct test_rng rng;
    struct st_config *cfg;
    char buf[sizeof(base)], err[64];
    size_t i, k, len;
    int rc;

    test_rng_seed(&rng, 20240611);
    for (i = 0; i < 20000; i++) {
        memcpy(buf, base, sizeof(base));
        len = sizeof(base) - 1 - test_rng_below(&rng, 8);
        for (k = test_rng_below(&rng, 4) + 1; k > 0; k--)
            buf[test_rng_below(&rng, len)] =
                bytes[test_rng_below(&rng, sizeof(bytes) - 1)];
        cfg = NULL;
        rc = st_config_load_string("r.yaml", buf, len, NULL, &cfg, err,
                                   sizeof(err));
        if (rc == 0) {
            st_config_free(cfg);
            continue;
        }
        ck_assert_ptr_null(cfg);
        ck_assert(rc == ST_ECONFIG || rc == ST_ELIMIT);
        ck_assert_int_eq(strncmp(err, "r.yaml:", 7), 0);
    }
}
END_TEST

Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("tree");
    tcase_add_test(tc, test_config_mapping_tree);
    tcase_add_test(tc, test_config_scalar_styles);
    tcase_add_test(tc, test_config_empty_and_scalar_documents);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_config_syntax_errors);
    tcase_add_test(tc, test_config_reader_errors);
    tcase_add_test(tc, test_config_refused_constructs);
    tcase_add_test(tc, test_config_limits);
    tcase_add_test(tc, test_config_load_file);
    tcase_add_test(tc, test_config_error_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("resolve");
    tcase_add_test(tc, test_config_resolve_types);
    tcase_add_test(tc, test_config_scalar_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_test(tc, test_config_random_inputs);
    suite_add_tcase(s, tc);
    return s;
}
