/*
 * Tests for steptrace/record.h: the text log format of docs/LOG-FORMAT.md
 * sections 2 to 9, byte for byte, the runtime and escaping helpers, and the
 * per-scope variable state.
 */
#include "test-common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steptrace/error.h"
#include "steptrace/record.h"

/* Initializers of a struct st_str: a string literal, and no string. */
/* clang-format would take these macros' braces for blocks. */
/* clang-format off */
#define S(lit) {(lit), sizeof(lit) - 1}
#define NOSTR {NULL, 0}

#define DASHES "---------------------"

#define PLAIN(n, t, v) {S(n), S(t), S(v), NOSTR, ST_VAR_PLAIN}
#define NEW(n, t, v) {S(n), S(t), S(v), NOSTR, ST_VAR_NEW}
#define CHANGED(n, t, old, v) {S(n), S(t), S(v), S(old), ST_VAR_CHANGED}
#define DELETED(n) {S(n), NOSTR, NOSTR, NOSTR, ST_VAR_DELETED}
/* clang-format on */

static const struct st_loc_view main_loc[] = {
    {S("/abs/path/to/file.py"), S("main"), 8},
};

/* Formats one record into a fresh buffer and compares it with `want`. */
static void
check_step(const struct st_step_view *v, const char *want)
{
    struct st_buf b;

    st_buf_init(&b);
    ck_assert_int_eq(st_record_format_step(&b, v), 0);
    ck_assert_buf_str_eq(&b, want);
    st_buf_close(&b);
}

/* ---- st_record_format_step ---- */

START_TEST(test_record_format_all_mode)
{
    static const struct st_var_view globals[] = {PLAIN("x", "int", "5")};
    static const struct st_var_view locals[] = {PLAIN("y", "int", "10")};
    struct st_step_view v = {
        .step = 3,
        .runtime_ns = 84100,
        .thread = NOSTR,
        .locs = main_loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_ALL,
        .globals = globals,
        .nglobals = 1,
        .locals = locals,
        .nlocals = 1,
    };

    check_step(&v, "--------------------- Step 3 ---------------------\n"
                   "Runtime: 0.0841 ms\n"
                   "/abs/path/to/file.py::main -- line 8\n"
                   "\n"
                   "------> Global variables <------\n"
                   "x: int :: 5\n"
                   "\n"
                   "------> Local variables <------\n"
                   "y: int :: 10\n"
                   "\n");
}
END_TEST

START_TEST(test_record_format_all_mode_several_variables)
{
    static const struct st_var_view globals[] = {
        PLAIN("CONFIG", "dict", "{'a': 1}"),
        PLAIN("helper", "function", "<function helper at 0x7f00>"),
    };
    static const struct st_var_view locals[] = {
        PLAIN("xs", "list", "[1, 2, 3]"),
        PLAIN("name", "str", "caf\xc3\xa9"),
        PLAIN("empty", "str", ""),
    };
    struct st_step_view v = {
        .step = 12,
        .runtime_ns = 1500000,
        .locs = main_loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_ALL,
        .globals = globals,
        .nglobals = 2,
        .locals = locals,
        .nlocals = 3,
    };

    check_step(&v, DASHES " Step 12 " DASHES "\n"
                          "Runtime: 1.5000 ms\n"
                          "/abs/path/to/file.py::main -- line 8\n"
                          "\n"
                          "------> Global variables <------\n"
                          "CONFIG: dict :: {'a': 1}\n"
                          "helper: function :: <function helper at 0x7f00>\n"
                          "\n"
                          "------> Local variables <------\n"
                          "xs: list :: [1, 2, 3]\n"
                          "name: str :: caf\xc3\xa9\n"
                          "empty: str :: \n"
                          "\n");
}
END_TEST

/* Module level: the locals are the globals, so only one section. */
START_TEST(test_record_format_module_level)
{
    static const struct st_loc_view loc[] = {
        {S("/home/u/script.py"), S("<module>"), 1},
    };
    static const struct st_var_view globals[] = {
        PLAIN("a", "int", "1"),
        PLAIN("b", "float", "2.5"),
    };
    struct st_step_view v = {
        .step = 1,
        .runtime_ns = 0,
        .locs = loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_ALL,
        .globals = globals,
        .nglobals = 2,
    };

    check_step(&v, DASHES " Step 1 " DASHES "\n"
                          "Runtime: 0.0000 ms\n"
                          "/home/u/script.py::<module> -- line 1\n"
                          "\n"
                          "------> Global variables <------\n"
                          "a: int :: 1\n"
                          "b: float :: 2.5\n"
                          "\n");
}
END_TEST

START_TEST(test_record_format_changed_mode)
{
    static const struct st_var_view globals[] = {
        NEW("counter", "int", "0"),
    };
    static const struct st_var_view locals[] = {
        NEW("y", "int", "10"),
        CHANGED("x", "str", "5", "five"),
        DELETED("tmp"),
        CHANGED("xs", "list", "[1]", "[1, 1]"),
    };
    struct st_step_view v = {
        .step = 4,
        .runtime_ns = 2049,
        .locs = main_loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_CHANGED,
        .globals = globals,
        .nglobals = 1,
        .locals = locals,
        .nlocals = 4,
    };

    check_step(&v, DASHES " Step 4 " DASHES "\n"
                          "Runtime: 0.0020 ms\n"
                          "/abs/path/to/file.py::main -- line 8\n"
                          "\n"
                          "------> Global variable changes <------\n"
                          "[NEW] counter: int :: 0\n"
                          "\n"
                          "------> Local variable changes <------\n"
                          "[NEW] y: int :: 10\n"
                          "[CHANGED] x: str :: 5 -> five\n"
                          "[DELETED] tmp\n"
                          "[CHANGED] xs: list :: [1] -> [1, 1]\n"
                          "\n");
}
END_TEST

/* A CHANGED-mode step with no changes is header, Runtime and location. */
START_TEST(test_record_format_changed_mode_no_changes)
{
    struct st_step_view v = {
        .step = 5,
        .runtime_ns = 100,
        .locs = main_loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_CHANGED,
    };

    check_step(&v, DASHES " Step 5 " DASHES "\n"
                          "Runtime: 0.0001 ms\n"
                          "/abs/path/to/file.py::main -- line 8\n"
                          "\n");
}
END_TEST

START_TEST(test_record_format_none_mode)
{
    /* Variables handed in by mistake are still not written. */
    static const struct st_var_view vars[] = {PLAIN("x", "int", "5")};
    struct st_step_view v = {
        .step = 7,
        .runtime_ns = 84100,
        .locs = main_loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_NONE,
        .globals = vars,
        .nglobals = 1,
        .locals = vars,
        .nlocals = 1,
    };
    struct st_buf b;

    check_step(&v, DASHES " Step 7 " DASHES "\n"
                          "Runtime: 0.0841 ms\n"
                          "/abs/path/to/file.py::main -- line 8\n"
                          "\n");
    st_buf_init(&b);
    ck_assert_int_eq(st_record_format_step(&b, &v), 0);
    ck_assert_int_eq(st_buf_append(&b, "", 1), 0);
    ck_assert_ptr_null(strstr(b.data, "variables"));
    ck_assert_ptr_null(strstr(b.data, "x: int"));
    st_buf_close(&b);
}
END_TEST

/* DEBUG: ancestor frames first, outermost first; the current frame last. */
START_TEST(test_record_format_debug_locations)
{
    static const struct st_loc_view locs[] = {
        {S("/abs/app/cli.py"), S("<module>"), 40},
        {S("/abs/app/cli.py"), S("run"), 31},
        {S("/abs/app/core.py"), S("outer"), 12},
        {S("/abs/path/to/file.py"), S("main"), 8},
    };
    static const struct st_var_view locals[] = {PLAIN("y", "int", "10")};
    struct st_step_view v = {
        .step = 3,
        .runtime_ns = 84100,
        .locs = locs,
        .nlocs = 4,
        .var_mode = ST_VARMODE_ALL,
        .locals = locals,
        .nlocals = 1,
    };

    check_step(&v, DASHES " Step 3 " DASHES "\n"
                          "Runtime: 0.0841 ms\n"
                          "/abs/app/cli.py::<module> -- line 40\n"
                          "/abs/app/cli.py::run -- line 31\n"
                          "/abs/app/core.py::outer -- line 12\n"
                          "/abs/path/to/file.py::main -- line 8\n"
                          "\n"
                          "------> Local variables <------\n"
                          "y: int :: 10\n"
                          "\n");
}
END_TEST

START_TEST(test_record_format_omits_empty_sections)
{
    static const struct st_var_view vars[] = {PLAIN("x", "int", "5")};
    struct st_step_view only_locals = {
        .step = 2,
        .runtime_ns = 84100,
        .locs = main_loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_ALL,
        .locals = vars,
        .nlocals = 1,
    };
    struct st_step_view only_globals = only_locals;
    struct st_step_view neither = only_locals;

    only_globals.locals = NULL;
    only_globals.nlocals = 0;
    only_globals.globals = vars;
    only_globals.nglobals = 1;
    neither.locals = NULL;
    neither.nlocals = 0;

    check_step(&only_locals, DASHES " Step 2 " DASHES "\n"
                                    "Runtime: 0.0841 ms\n"
                                    "/abs/path/to/file.py::main -- line 8\n"
                                    "\n"
                                    "------> Local variables <------\n"
                                    "x: int :: 5\n"
                                    "\n");
    check_step(&only_globals, DASHES " Step 2 " DASHES "\n"
                                     "Runtime: 0.0841 ms\n"
                                     "/abs/path/to/file.py::main -- line 8\n"
                                     "\n"
                                     "------> Global variables <------\n"
                                     "x: int :: 5\n"
                                     "\n");
    check_step(&neither, DASHES " Step 2 " DASHES "\n"
                                "Runtime: 0.0841 ms\n"
                                "/abs/path/to/file.py::main -- line 8\n"
                                "\n");
}
END_TEST

START_TEST(test_record_format_thread_suffix)
{
    static const struct st_var_view locals[] = {PLAIN("y", "int", "10")};
    struct st_step_view v = {
        .step = 3,
        .runtime_ns = 84100,
        .thread = S("worker-1"),
        .locs = main_loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_ALL,
        .locals = locals,
        .nlocals = 1,
    };

    check_step(&v, DASHES " Step 3 " DASHES "\n"
                          "Runtime: 0.0841 ms | thread worker-1\n"
                          "/abs/path/to/file.py::main -- line 8\n"
                          "\n"
                          "------> Local variables <------\n"
                          "y: int :: 10\n"
                          "\n");
}
END_TEST

/* Records are appended: the caller batches several into one buffer. */
START_TEST(test_record_format_appends)
{
    struct st_step_view v = {
        .step = 1,
        .runtime_ns = 84100,
        .locs = main_loc,
        .nlocs = 1,
        .var_mode = ST_VARMODE_NONE,
    };
    struct st_buf b;

    st_buf_init(&b);
    ck_assert_int_eq(st_buf_puts(&b, "prefix\n"), 0);
    ck_assert_int_eq(st_record_format_step(&b, &v), 0);
    v.step = UINT64_MAX;
    v.runtime_ns = 0;
    ck_assert_int_eq(st_record_format_step(&b, &v), 0);
    ck_assert_buf_str_eq(&b,
                         "prefix\n" DASHES " Step 1 " DASHES "\n"
                         "Runtime: 0.0841 ms\n"
                         "/abs/path/to/file.py::main -- line 8\n"
                         "\n" DASHES " Step 18446744073709551615 " DASHES "\n"
                         "Runtime: 0.0000 ms\n"
                         "/abs/path/to/file.py::main -- line 8\n"
                         "\n");
    st_buf_close(&b);
}
END_TEST

/* ---- st_record_format_runtime ---- */

/* Events: one line after the locations, variables never shown. */
START_TEST(test_record_format_events)
{
    static const struct st_loc_view locs[] = {
        {S("/abs/caller.py"), S("outer"), 12},
        {S("/abs/path/to/file.py"), S("add"), 3},
    };
    static const struct st_var_view locals[] = {PLAIN("y", "int", "10")};
    struct st_step_view v = {
        .event = ST_EVENT_CALL,
        .step = 4,
        .runtime_ns = 800,
        .locs = locs,
        .nlocs = 2,
        .var_mode = ST_VARMODE_ALL,
        .locals = locals,
        .nlocals = 1,
    };
    /* Events are not numbered steps: an Event header, whatever .step. */
    static const char head[] =
        "--------------------- Event ---------------------\n"
        "Runtime: 0.0008 ms\n"
        "/abs/caller.py::outer -- line 12\n"
        "/abs/path/to/file.py::add -- line 3\n"
        "\n";

    check_step(&v, "--------------------- Event ---------------------\n"
                   "Runtime: 0.0008 ms\n"
                   "/abs/caller.py::outer -- line 12\n"
                   "/abs/path/to/file.py::add -- line 3\n"
                   "\n"
                   "Call: add\n"
                   "\n");
    v.event = ST_EVENT_RETURN;
    v.detail.p = "12";
    v.detail.n = 2;
    {
        char want[512];

        snprintf(want, sizeof(want), "%sReturn: add -> 12\n\n", head);
        check_step(&v, want);
        v.event = ST_EVENT_RETURN_EXC;
        snprintf(want, sizeof(want), "%sReturn: add (raised)\n\n", head);
        check_step(&v, want);
        v.event = ST_EVENT_EXCEPTION;
        v.detail.p = "ValueError: bad thing 4";
        v.detail.n = 23;
        snprintf(want, sizeof(want),
                 "%sException: ValueError: bad thing 4\n\n", head);
        check_step(&v, want);
    }
}
END_TEST

START_TEST(test_record_format_async)
{
    struct st_str body = S(
        "\xf0\x9f\x8f\x81 COROUTINE END: main \xe2\x9c\x93\n"
        "   Total duration: 1.5000 ms\n"
        "   Await points: 2\n"
        "   Total await time: 1.2000 ms\n");
    struct st_buf b;

    st_buf_init(&b);
    ck_assert_int_eq(st_record_format_async(&b, 7, 567800, ST_ASYNC_CORO,
                                            body),
                     0);
    ck_assert_buf_str_eq(
        &b, "--------------------- Async Step 7 ---------------------\n"
            "Time: 0.5678 ms | CORO\n"
            "\xf0\x9f\x8f\x81 COROUTINE END: main \xe2\x9c\x93\n"
            "   Total duration: 1.5000 ms\n"
            "   Await points: 2\n"
            "   Total await time: 1.2000 ms\n"
            "\n");
    b.len = 0;
    ck_assert_int_eq(st_record_format_async(&b, 1, 0, ST_ASYNC_AWAIT,
                                            (struct st_str)S("x\n")),
                     0);
    ck_assert_buf_str_eq(
        &b, "--------------------- Async Step 1 ---------------------\n"
            "Time: 0.0000 ms | AWAIT\nx\n\n");
    b.len = 0;
    ck_assert_int_eq(st_record_format_async(&b, 2, 100, ST_ASYNC_TASK,
                                            (struct st_str)S("t\n")),
                     0);
    ck_assert_buf_str_eq(
        &b, "--------------------- Async Step 2 ---------------------\n"
            "Time: 0.0001 ms | TASK\nt\n\n");
    st_buf_close(&b);
}
END_TEST

START_TEST(test_record_runtime_rounding)
{
    static const struct {
        uint64_t ns;
        const char *want;
    } cases[] = {
        {84100, "Runtime: 0.0841 ms"},
        {0, "Runtime: 0.0000 ms"},
        {49, "Runtime: 0.0000 ms"},
        {50, "Runtime: 0.0001 ms"}, /* Half up. */
        {149, "Runtime: 0.0001 ms"},
        {150, "Runtime: 0.0002 ms"},
        {99950, "Runtime: 0.1000 ms"},  /* Carry into the next digit. */
        {999950, "Runtime: 1.0000 ms"}, /* Carry into the integer part. */
        {999949, "Runtime: 0.9999 ms"},
        {1000000, "Runtime: 1.0000 ms"},
        {1234567890123ull, "Runtime: 1234567.8901 ms"},
        {UINT64_MAX, "Runtime: 18446744073709.5516 ms"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct st_buf b;

        st_buf_init(&b);
        ck_assert_int_eq(st_record_format_runtime(&b, cases[i].ns), 0);
        ck_assert_buf_str_eq(&b, cases[i].want);
        st_buf_close(&b);
    }
}
END_TEST

/* ---- st_record_escape ---- */

static void
check_escape(const char *in, size_t n, const char *want)
{
    struct st_buf b;

    st_buf_init(&b);
    ck_assert_int_eq(st_record_escape(&b, in, n), 0);
    ck_assert_buf_str_eq(&b, want);
    st_buf_close(&b);
}

#define CHECK_ESCAPE(lit, want) check_escape((lit), sizeof(lit) - 1, (want))

START_TEST(test_record_escape_control_characters)
{
    CHECK_ESCAPE("\n", "\\n");
    CHECK_ESCAPE("\t", "\\t");
    CHECK_ESCAPE("\r", "\\r");
    CHECK_ESCAPE("\x01", "\\x01");
    CHECK_ESCAPE("\x1f", "\\x1f");
    CHECK_ESCAPE("\x1b[0m", "\\x1b[0m");
    CHECK_ESCAPE("\x7f", "\\x7f");
    CHECK_ESCAPE("\0", "\\x00");
    CHECK_ESCAPE("line1\nline2\r\n\tend", "line1\\nline2\\r\\n\\tend");
    CHECK_ESCAPE("\n\n", "\\n\\n");
}
END_TEST

START_TEST(test_record_escape_passes_text_through)
{
    CHECK_ESCAPE("", "");
    CHECK_ESCAPE("plain text 123 ~!@#$%^&*()_+{}|:<>?",
                 "plain text 123 ~!@#$%^&*()_+{}|:<>?");
    /* UTF-8 (and any byte >= 0x80) is not escaped. */
    CHECK_ESCAPE("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d",
                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d");
    CHECK_ESCAPE("\x80\xff", "\x80\xff");
    /* A backslash is not a control character. */
    CHECK_ESCAPE("a\\nb", "a\\nb");
}
END_TEST

START_TEST(test_record_escape_every_byte)
{
    static const char hex[] = "0123456789abcdef";
    int c;

    for (c = 0; c < 256; c++) {
        char in = (char)c;
        char want[5];

        if (c == '\n')
            strcpy(want, "\\n");
        else if (c == '\r')
            strcpy(want, "\\r");
        else if (c == '\t')
            strcpy(want, "\\t");
        else if (c < 0x20 || c == 0x7f) {
            want[0] = '\\';
            want[1] = 'x';
            want[2] = hex[c >> 4];
            want[3] = hex[c & 15];
            want[4] = '\0';
        }
        else {
            want[0] = in;
            want[1] = '\0';
        }
        check_escape(&in, 1, want);
    }
}
END_TEST

/* The escaped text is appended after what the buffer holds. */
START_TEST(test_record_escape_appends)
{
    struct st_buf b;

    st_buf_init(&b);
    ck_assert_int_eq(st_buf_puts(&b, "x: str :: "), 0);
    ck_assert_int_eq(st_record_escape(&b, "a\nb", 3), 0);
    ck_assert_buf_str_eq(&b, "x: str :: a\\nb");
    st_buf_close(&b);
}
END_TEST

/* ---- st_varstate ---- */

static void
check_entry(const struct st_varstate *s, size_t i, uint32_t name,
            uint32_t type, const char *value)
{
    size_t n = strlen(value);

    ck_assert_uint_lt(i, s->n);
    ck_assert_uint_eq(s->ents[i].name_sid, name);
    ck_assert_uint_eq(s->ents[i].type_sid, type);
    ck_assert_uint_eq(s->ents[i].value_len, n);
    if (n)
        ck_assert_mem_eq(s->ents[i].value, value, n);
}

START_TEST(test_record_varstate_set_new)
{
    struct st_varstate s;
    char *old = (char *)"untouched";
    size_t old_len = 99;

    st_varstate_init(&s);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_int_eq(st_varstate_set(&s, 10, 1, "5", 1, &old, &old_len), 0);
    /* A new name hands nothing out. */
    ck_assert_str_eq(old, "untouched");
    ck_assert_uint_eq(old_len, 99);
    ck_assert_uint_eq(s.n, 1);
    check_entry(&s, 0, 10, 1, "5");
    ck_assert_int_eq(st_varstate_set(&s, 11, 2, "", 0, NULL, NULL), 0);
    ck_assert_uint_eq(s.n, 2);
    check_entry(&s, 1, 11, 2, "");
    st_varstate_close(&s);
    ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(test_record_varstate_set_existing)
{
    struct st_varstate s;
    char *old = NULL;
    size_t old_len = 0;

    st_varstate_init(&s);
    ck_assert_int_eq(st_varstate_set(&s, 10, 1, "5", 1, NULL, NULL), 0);
    ck_assert_int_eq(st_varstate_set(&s, 11, 1, "6", 1, NULL, NULL), 0);
    ck_assert_int_eq(st_varstate_set(&s, 10, 2, "five", 4, &old, &old_len), 1);
    /* The old value is handed out, and the caller frees it. */
    ck_assert_ptr_nonnull(old);
    ck_assert_uint_eq(old_len, 1);
    ck_assert_mem_eq(old, "5", 1);
    free(old);
    ck_assert_uint_eq(s.n, 2);
    check_entry(&s, 0, 10, 2, "five");
    check_entry(&s, 1, 11, 1, "6");
    /* Without old_out the old value is freed (LeakSanitizer checks). */
    ck_assert_int_eq(st_varstate_set(&s, 11, 3, "six", 3, NULL, NULL), 1);
    check_entry(&s, 1, 11, 3, "six");
    st_varstate_close(&s);
}
END_TEST

/* Values are bytes: embedded NULs and high bytes are kept. */
START_TEST(test_record_varstate_binary_values)
{
    static const char v[] = {'a', '\0', 'b', (char)0xff};
    struct st_varstate s;

    st_varstate_init(&s);
    ck_assert_int_eq(st_varstate_set(&s, 1, 1, v, sizeof(v), NULL, NULL), 0);
    ck_assert_uint_eq(s.ents[0].value_len, sizeof(v));
    ck_assert_mem_eq(s.ents[0].value, v, sizeof(v));
    st_varstate_close(&s);
}
END_TEST

START_TEST(test_record_varstate_first_seen_order)
{
    struct st_varstate s;
    char val[16];
    uint32_t i;

    st_varstate_init(&s);
    /* Enough names to grow the array several times, in a non-sorted
     * order, and changes along the way: order is that of first sight. */
    for (i = 0; i < 50; i++) {
        uint32_t name = (i * 37) % 101 + 1;

        snprintf(val, sizeof(val), "%u", (unsigned)i);
        ck_assert_int_eq(st_varstate_set(&s, name, 1, val, strlen(val), NULL,
                                         NULL),
                         0);
        /* Keep changing the first name (that of i == 0): it stays first. */
        if (i % 5 == 0)
            ck_assert_int_eq(st_varstate_set(&s, 1, 1, "x", 1, NULL, NULL), 1);
    }
    ck_assert_uint_eq(s.n, 50);
    for (i = 0; i < 50; i++) {
        snprintf(val, sizeof(val), "%u", (unsigned)i);
        check_entry(&s, i, (i * 37) % 101 + 1, 1, i == 0 ? "x" : val);
        ck_assert_int_eq(st_varstate_find(&s, (i * 37) % 101 + 1), (long)i);
    }
    st_varstate_close(&s);
}
END_TEST

START_TEST(test_record_varstate_find)
{
    struct st_varstate s;

    st_varstate_init(&s);
    ck_assert_int_eq(st_varstate_find(&s, 1), -1);
    ck_assert_int_eq(st_varstate_set(&s, 7, 1, "a", 1, NULL, NULL), 0);
    ck_assert_int_eq(st_varstate_set(&s, UINT32_MAX, 1, "b", 1, NULL, NULL),
                     0);
    ck_assert_int_eq(st_varstate_set(&s, 3, 1, "c", 1, NULL, NULL), 0);
    ck_assert_int_eq(st_varstate_find(&s, 7), 0);
    ck_assert_int_eq(st_varstate_find(&s, UINT32_MAX), 1);
    ck_assert_int_eq(st_varstate_find(&s, 3), 2);
    ck_assert_int_eq(st_varstate_find(&s, 4), -1);
    ck_assert_int_eq(st_varstate_find(&s, 0), -1);
    st_varstate_close(&s);
}
END_TEST

START_TEST(test_record_varstate_delete_keeps_order)
{
    struct st_varstate s;
    uint32_t name;

    st_varstate_init(&s);
    for (name = 1; name <= 5; name++) {
        char v = (char)('a' + name - 1);

        ck_assert_int_eq(st_varstate_set(&s, name, 1, &v, 1, NULL, NULL), 0);
    }
    /* Middle, first, last. */
    ck_assert_int_eq(st_varstate_del(&s, 3), 1);
    ck_assert_int_eq(st_varstate_del(&s, 1), 1);
    ck_assert_int_eq(st_varstate_del(&s, 5), 1);
    ck_assert_uint_eq(s.n, 2);
    check_entry(&s, 0, 2, 1, "b");
    check_entry(&s, 1, 4, 1, "d");
    ck_assert_int_eq(st_varstate_find(&s, 3), -1);
    ck_assert_int_eq(st_varstate_find(&s, 4), 1);
    /* Deleting what is not there. */
    ck_assert_int_eq(st_varstate_del(&s, 3), 0);
    ck_assert_int_eq(st_varstate_del(&s, 99), 0);
    ck_assert_uint_eq(s.n, 2);
    /* A deleted name that comes back is new again, and goes last. */
    ck_assert_int_eq(st_varstate_set(&s, 1, 2, "A", 1, NULL, NULL), 0);
    check_entry(&s, 2, 1, 2, "A");
    /* Down to empty and up again. */
    ck_assert_int_eq(st_varstate_del(&s, 2), 1);
    ck_assert_int_eq(st_varstate_del(&s, 4), 1);
    ck_assert_int_eq(st_varstate_del(&s, 1), 1);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_int_eq(st_varstate_set(&s, 9, 1, "z", 1, NULL, NULL), 0);
    check_entry(&s, 0, 9, 1, "z");
    st_varstate_close(&s);
}
END_TEST

/* A closed state can be used again, as after st_varstate_init(). */
START_TEST(test_record_varstate_close_reinitialises)
{
    struct st_varstate s;

    st_varstate_init(&s);
    ck_assert_int_eq(st_varstate_set(&s, 1, 1, "a", 1, NULL, NULL), 0);
    st_varstate_close(&s);
    ck_assert_ptr_null(s.ents);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_int_eq(st_varstate_find(&s, 1), -1);
    ck_assert_int_eq(st_varstate_set(&s, 1, 1, "b", 1, NULL, NULL), 0);
    check_entry(&s, 0, 1, 1, "b");
    st_varstate_close(&s);
    st_varstate_close(&s);
}
END_TEST

Suite *
record_suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc;

    tc = tcase_create("format_step");
    tcase_add_test(tc, test_record_format_all_mode);
    tcase_add_test(tc, test_record_format_all_mode_several_variables);
    tcase_add_test(tc, test_record_format_module_level);
    tcase_add_test(tc, test_record_format_changed_mode);
    tcase_add_test(tc, test_record_format_changed_mode_no_changes);
    tcase_add_test(tc, test_record_format_none_mode);
    tcase_add_test(tc, test_record_format_debug_locations);
    tcase_add_test(tc, test_record_format_omits_empty_sections);
    tcase_add_test(tc, test_record_format_thread_suffix);
    tcase_add_test(tc, test_record_format_appends);
    tcase_add_test(tc, test_record_format_events);
    tcase_add_test(tc, test_record_format_async);
    suite_add_tcase(s, tc);

    tc = tcase_create("runtime");
    tcase_add_test(tc, test_record_runtime_rounding);
    suite_add_tcase(s, tc);

    tc = tcase_create("escape");
    tcase_add_test(tc, test_record_escape_control_characters);
    tcase_add_test(tc, test_record_escape_passes_text_through);
    tcase_add_test(tc, test_record_escape_every_byte);
    tcase_add_test(tc, test_record_escape_appends);
    suite_add_tcase(s, tc);

    tc = tcase_create("varstate");
    tcase_add_test(tc, test_record_varstate_set_new);
    tcase_add_test(tc, test_record_varstate_set_existing);
    tcase_add_test(tc, test_record_varstate_binary_values);
    tcase_add_test(tc, test_record_varstate_first_seen_order);
    tcase_add_test(tc, test_record_varstate_find);
    tcase_add_test(tc, test_record_varstate_delete_keeps_order);
    tcase_add_test(tc, test_record_varstate_close_reinitialises);
    suite_add_tcase(s, tc);

    return s;
}
