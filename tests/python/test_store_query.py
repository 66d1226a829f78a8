"""`steptrace query FILE... EXPR` (docs/STEP-STORE.md section 4): real
programs recorded with --log-format steps, queried, and the answers checked
against what `steptrace show` prints for the same file: the records query
prints are show's records of the steps where the expression holds, byte for
byte, which the tests compute from show's own output (the full state from
its ALL view, the changes from its CHANGED view)."""
import os
import re
import unittest

import helpers
from helpers import TempDirTest

HEADER_RE = re.compile(r"^-{21} Step ([1-9][0-9]*) -{21}$")
EVENT_RE = re.compile(r"^-{21} Event -{21}$")
LOC_RE = re.compile(r"^(/.*)::(\S+) -- line ([0-9]+)$")
SECTION_RE = re.compile(
    r"^------> (Global|Local) (?:variables|variable changes) <------$")
VAR_RE = re.compile(r"^(?:\[(NEW|CHANGED)\] )?([A-Za-z_]\w*): (\w+) :: (.*)$")
DELETED_RE = re.compile(r"^\[DELETED\] ([A-Za-z_]\w*)$")

# Locals shadow globals (count, label), an int that becomes a float and a
# str, a list appended to in a loop, a bool, a string with a tab, a
# variable named like a field (line), a None.
PROGRAM = """\
import os
count = 0
ratio = 0.5
flag = False
label = "start"
items = []
big = 12345678901234567890
line = 7
nothing = None
print(os.getpid())

def work(n):
    count = n * 2
    label = "loc%d" % n
    items.append(n)
    return count

for k in range(4):
    work(k)
    ratio = ratio * 2
flag = True
label = "tab\\there"
count = -3
count = 2.5
count = "text"
del nothing
"""


def split_records(text):
    """[(step number or None for an event, the record's text)] of show's
    output, in order; steptrace's own lines are left out."""
    out = []
    cur = None
    for line in text.splitlines(keepends=True):
        if HEADER_RE.match(line.rstrip("\n")) or EVENT_RE.match(line.rstrip("\n")):
            cur = [line]
            out.append(cur)
        elif line.startswith("[steptrace]"):
            cur = None
        elif cur is not None:
            cur.append(line)
    recs = []
    for lines in out:
        m = HEADER_RE.match(lines[0].rstrip("\n"))
        recs.append((int(m.group(1)) if m else None, "".join(lines)))
    return recs


class Step:
    """One step of show's ALL view (and its CHANGED view's changes)."""

    def __init__(self, number, text):
        self.step = number
        self.text = text
        self.file = self.func = None
        self.line = 0
        self.globals, self.locals = {}, {}
        self.changed = set()
        section = None
        for line in text.splitlines():
            m = LOC_RE.match(line)
            if m:
                self.file, self.func, self.line = m.group(1), m.group(2), int(m.group(3))
                continue
            m = SECTION_RE.match(line)
            if m:
                section = self.globals if m.group(1) == "Global" else self.locals
                continue
            m = VAR_RE.match(line)
            if m and section is not None:
                section[m.group(2)] = (m.group(3), m.group(4))

    def var(self, name):
        """(type, text) of a variable in scope, or None."""
        if self.func != "<module>" and name in self.locals:
            return self.locals[name]
        return self.globals.get(name)

    def num(self, name):
        v = self.var(name)
        if v is None or v[0] not in ("int", "float", "bool"):
            return None
        if v[0] == "bool":
            return {"True": 1, "False": 0}.get(v[1])
        return float(v[1]) if v[0] == "float" else int(v[1])

    def text_of(self, name):
        v = self.var(name)
        return None if v is None else v[1]


def changes(text):
    """{step: names set or deleted} from show's CHANGED view."""
    out = {}
    for number, rec in split_records(text):
        if number is None:
            continue
        names = set()
        for line in rec.splitlines():
            m = VAR_RE.match(line)
            if m and m.group(1):
                names.add(m.group(2))
            m = DELETED_RE.match(line)
            if m:
                names.add(m.group(1))
        out[number] = names
    return out


class QueryTest(TempDirTest):

    def setUp(self):
        super().setUp()
        self.prog = self.script("prog.py", PROGRAM)

    def record(self, *opts, log_dir=".tracer"):
        """Runs the program with a step store; returns (store path, pid)."""
        r = helpers.steptrace_run(self.tmp, "--log-format", "steps",
                                  "--log-dir", log_dir, *opts, "prog.py")
        self.assertEqual(r.returncode, 0, r)
        path = os.path.join(self.tmp, log_dir, "tracer.steps")
        self.assertTrue(os.path.isfile(path), r)
        return path, int(r.stdout.split()[0])

    def reader(self, cmd, *args):
        return helpers.run([helpers.PYTHON, "-m", "steptrace", cmd] + list(args),
                           self.tmp)

    def query(self, *args, status=0):
        r = self.reader("query", *args)
        self.assertEqual(r.returncode, status, r)
        return r

    def steps(self, path, *opts):
        """The steps of show's ALL view, with their changes."""
        r = self.reader("show", path, "--variable-mode", "ALL", *opts)
        self.assertEqual(r.returncode, 0, r)
        steps = [Step(n, t) for n, t in split_records(r.stdout) if n is not None]
        r = self.reader("show", path, "--variable-mode", "CHANGED", *opts)
        self.assertEqual(r.returncode, 0, r)
        ch = changes(r.stdout)
        for s in steps:
            s.changed = ch.get(s.step, set())
        return steps

    def show_records(self, path, *opts):
        """{step: record text} of show with these options."""
        r = self.reader("show", path, *opts)
        self.assertEqual(r.returncode, 0, r)
        return {n: t for n, t in split_records(r.stdout) if n is not None}

    def check(self, path, steps, expr, pred, *opts):
        """query prints exactly show's records of the steps where pred
        holds; returns those steps' numbers."""
        want = [s.step for s in steps if pred(s)]
        shown = self.show_records(path, *opts)
        r = self.query(path, expr, *opts)
        self.assertEqual(r.stdout, "".join(shown[n] for n in want),
                         "query %r %r" % (expr, opts))
        self.assertEqual(r.stderr, "")
        r = self.query(path, expr, "--count", *opts)
        self.assertEqual(r.stdout, "%d\n" % len(want), expr)
        return want

    # -- comparisons ---------------------------------------------------

    def test_operators_on_ints_floats_bools_and_strings(self):
        path, _ = self.record("--variable-mode", "CHANGED")
        steps = self.steps(path)
        n = lambda s, name: s.num(name)
        t = lambda s, name: s.text_of(name)

        def two(s, a, b, op):
            if n(s, a) is not None and n(s, b) is not None:
                return op(n(s, a), n(s, b))
            if t(s, a) is None or t(s, b) is None:
                return False
            return op(t(s, a).encode(), t(s, b).encode())
        cases = [
            ("count == 4", lambda s: n(s, "count") == 4),
            ("count != 4", lambda s: n(s, "count") is not None and n(s, "count") != 4),
            ("count < 2", lambda s: n(s, "count") is not None and n(s, "count") < 2),
            ("count <= 2", lambda s: n(s, "count") is not None and n(s, "count") <= 2),
            ("count > 2", lambda s: n(s, "count") is not None and n(s, "count") > 2),
            ("count >= 2", lambda s: n(s, "count") is not None and n(s, "count") >= 2),
            ("count == -3", lambda s: n(s, "count") == -3),
            ("count == 2.5", lambda s: n(s, "count") == 2.5),
            ("count > 2.25", lambda s: n(s, "count") is not None and n(s, "count") > 2.25),
            ("ratio == 4.0", lambda s: n(s, "ratio") == 4.0),
            ("ratio == 4", lambda s: n(s, "ratio") == 4),
            ("count == -0", lambda s: n(s, "count") == 0),
            ("count == 0.0", lambda s: n(s, "count") == 0),
            # Two variables: as numbers when both are, else as texts.
            ("count < ratio", lambda s: two(s, "count", "ratio", lambda a, b: a < b)),
            ("count >= flag", lambda s: two(s, "count", "flag", lambda a, b: a >= b)),
            ("ratio >= 1", lambda s: n(s, "ratio") is not None and n(s, "ratio") >= 1),
            ("ratio < 1e0", lambda s: n(s, "ratio") is not None and n(s, "ratio") < 1),
            ("flag == True", lambda s: n(s, "flag") == 1),
            ("flag == 0", lambda s: n(s, "flag") == 0),
            ("flag != False", lambda s: n(s, "flag") == 1),
            # Past 64 bits, exactly.
            ("big > 12345678901234567889", lambda s: n(s, "big") is not None),
            ("big == 12345678901234567890", lambda s: n(s, "big") is not None),
            ("big < 12345678901234567891", lambda s: n(s, "big") is not None),
            ("big != 12345678901234567890", lambda s: False),
            ("big > 9223372036854775807", lambda s: n(s, "big") is not None),
            ("big < -99999999999999999999", lambda s: False),
            ("big > 1.2e19", lambda s: n(s, "big") is not None),
            ('label == "start"', lambda s: t(s, "label") == "start"),
            ("label == 'loc2'", lambda s: t(s, "label") == "loc2"),
            ('label != "start"', lambda s: t(s, "label") not in (None, "start")),
            ('label >= "loc"', lambda s: t(s, "label") is not None and t(s, "label") >= "loc"),
            ('label < "m"', lambda s: t(s, "label") is not None and t(s, "label") < "m"),
            (r'label == "tab\there"', lambda s: t(s, "label") == r"tab\there"),
            (r"label == 'tab\\there'", lambda s: t(s, "label") == r"tab\there"),
            ('count == "text"', lambda s: t(s, "count") == "text"),
            ('count == "4"', lambda s: t(s, "count") == "4"),
            ('items == "[0, 1]"', lambda s: t(s, "items") == "[0, 1]"),
            ('nothing == "None"', lambda s: t(s, "nothing") == "None"),
            ('work > 3', lambda s: False),           # a function: no number
            ('nosuch == 1 or nosuch != 1', lambda s: False),  # not in scope
            ('-1 < count', lambda s: n(s, "count") is not None and n(s, "count") > -1),
        ]
        for expr, pred in cases:
            with self.subTest(expr=expr):
                self.check(path, steps, expr, pred)
        # The cases are not vacuous.
        self.assertTrue([s for s in steps if n(s, "count") == 4])
        self.assertTrue([s for s in steps if t(s, "label") == r"tab\there"])

    def test_locals_shadow_globals_and_var_reaches_a_field_name(self):
        path, _ = self.record()
        steps = self.steps(path)
        inside = self.check(path, steps, "count == 6",
                            lambda s: s.func == "work" and s.locals.get("count") == ("int", "6"))
        self.assertTrue(inside)
        # In work(), count is the module's (0) until the local is set:
        # locals come first, then globals.
        got = self.check(path, steps, 'func == "work" and count == 0',
                         lambda s: s.func == "work" and s.var("count") == ("int", "0"))
        by_step = {s.step: s for s in steps}
        self.assertTrue([n for n in got if "count" not in by_step[n].locals])
        self.assertTrue([n for n in got if "count" in by_step[n].locals])
        # line is the field; var(line) the variable (7).
        self.check(path, steps, "var(line) == 7",
                   lambda s: s.var("line") == ("int", "7"))
        self.check(path, steps, "line == 7", lambda s: s.line == 7)

    def test_changed(self):
        path, _ = self.record("--variable-mode", "CHANGED")
        steps = self.steps(path)
        got = self.check(path, steps, "changed(items)", lambda s: "items" in s.changed)
        # NEW at its assignment, then one change per append.
        self.assertEqual(len(got), 5)
        self.check(path, steps, "changed(count)", lambda s: "count" in s.changed)
        self.check(path, steps, "changed(nothing)", lambda s: "nothing" in s.changed)
        # A frame's first step reports its variables as new.
        firsts = self.check(path, steps, 'changed(n) and func == "work"',
                            lambda s: "n" in s.changed and s.func == "work")
        self.assertEqual(len(firsts), 4)
        self.check(path, steps, "changed(nosuch)", lambda s: False)

    def test_fields(self):
        path, pid = self.record()
        steps = self.steps(path)
        self.check(path, steps, 'func == "work"', lambda s: s.func == "work")
        self.check(path, steps, 'func != "<module>"', lambda s: s.func != "<module>")
        self.check(path, steps, 'file == "%s"' % self.prog, lambda s: s.file == self.prog)
        self.check(path, steps, 'file == "/elsewhere.py"', lambda s: False)
        self.check(path, steps, "line >= 13 and line <= 15", lambda s: 13 <= s.line <= 15)
        self.check(path, steps, "step == 5", lambda s: s.step == 5)
        self.check(path, steps, "step > 3 and step < 7", lambda s: 3 < s.step < 7)
        self.check(path, steps, "pid == %d" % pid, lambda s: True)
        self.check(path, steps, "pid != %d" % pid, lambda s: False)
        self.check(path, steps, 'thread == "MainThread"', lambda s: True)
        self.check(path, steps, "thread == 1", lambda s: True)
        self.check(path, steps, 'thread == "other"', lambda s: False)

    def test_and_or_not_and_parentheses(self):
        path, _ = self.record()
        steps = self.steps(path)
        work = lambda s: s.func == "work"
        l13 = lambda s: s.line == 13
        l14 = lambda s: s.line == 14
        cases = [
            ('func == "work" and line == 13 or line == 14',
             lambda s: (work(s) and l13(s)) or l14(s)),
            ('line == 14 or func == "work" and line == 13',
             lambda s: l14(s) or (work(s) and l13(s))),
            ('func == "work" and (line == 13 or line == 14)',
             lambda s: work(s) and (l13(s) or l14(s))),
            ('not func == "work" or line == 13',
             lambda s: (not work(s)) or l13(s)),
            ('not (func == "work" or line == 13)',
             lambda s: not (work(s) or l13(s))),
            ('not not line == 13', l13),
            ('((line == 13))', l13),
            # not of a comparison with a missing variable is true.
            ('not nosuch == 1', lambda s: True),
        ]
        for expr, pred in cases:
            with self.subTest(expr=expr):
                self.check(path, steps, expr, pred)

    # -- options and output --------------------------------------------

    def test_first_count_limit(self):
        path, _ = self.record()
        steps = self.steps(path)
        shown = self.show_records(path)
        want = [s.step for s in steps if s.func == "work"]
        self.assertGreater(len(want), 3)
        r = self.query(path, 'func == "work"', "--first")
        self.assertEqual(r.stdout, shown[want[0]])
        r = self.query(path, 'func == "work"', "--limit", "3")
        self.assertEqual(r.stdout, "".join(shown[n] for n in want[:3]))
        r = self.query(path, 'func == "work"', "--limit=2", "--count")
        self.assertEqual(r.stdout, "2\n")
        r = self.query(path, 'func == "work"', "--count")
        self.assertEqual(r.stdout, "%d\n" % len(want))
        r = self.query(path, 'func == "nowhere"', "--count")
        self.assertEqual(r.stdout, "0\n")
        r = self.query(path, 'func == "nowhere"')
        self.assertEqual(r.stdout, "")
        self.query(path, "x == 1", "--limit", "0", status=2)
        self.query(path, "x == 1", "--bogus", status=2)
        self.query(path, "x == 1", "--log-level", "ERROR", status=2)
        # An expression that starts with '-' goes after --.
        r = self.query(path, "--count", "--", "-1 < step")
        self.assertEqual(r.stdout, "%d\n" % len(steps))
        r = self.query(path, "--help")
        self.assertIn("changed(x)", r.stdout)

    def test_levels_and_modes_render_as_show(self):
        path, _ = self.record("--variable-mode", "ALL")
        for level, mode in [("DEBUG", None), (None, "CHANGED"), (None, "NONE"),
                            ("WARNING", "ALL"), ("DEBUG", "CHANGED")]:
            lopts = ("--log-level", level) if level else ()
            opts = lopts + (("--variable-mode", mode) if mode else ())
            with self.subTest(opts=opts):
                steps = self.steps(path, *lopts)
                self.check(path, steps, 'changed(items) or label == "loc1"',
                           lambda s: "items" in s.changed
                           or s.text_of("label") == "loc1", *opts)

    def test_without_variables(self):
        # Nothing variable read or printed: the replay keeps no state
        # (replay.h skip_vars); the answers are the same.
        path, _ = self.record("--variable-mode", "ALL")
        steps = self.steps(path)
        self.check(path, steps, 'func == "work" or line == 22',
                   lambda s: s.func == "work" or s.line == 22,
                   "--variable-mode", "NONE")
        self.check(path, steps, 'step >= 3 and not file == "x"',
                   lambda s: s.step >= 3, "--log-level", "DEBUG")

    def test_two_files(self):
        a, _ = self.record(log_dir="one")
        b, _ = self.record(log_dir="two")
        expr = 'func == "work" and count >= 4'
        ra = self.query(a, expr).stdout
        rb = self.query(b, expr).stdout
        self.assertTrue(ra)
        self.assertEqual(self.query(a, b, expr).stdout, ra + rb)
        na = int(self.query(a, expr, "--count").stdout)
        self.assertEqual(self.query(a, b, expr, "--count").stdout, "%d\n" % (2 * na))
        # --first stops after the first match of all the files.
        self.assertEqual(self.query(a, b, expr, "--first").stdout,
                         self.query(a, expr, "--first").stdout)
        # A name in the second file only (its string ids are its own).
        self.assertEqual(self.query(a, b, "k == 3", "--count").stdout,
                         "%d\n" % (2 * int(self.query(a, "k == 3", "--count").stdout)))

    def test_none_mode_recording(self):
        path, _ = self.record("--variable-mode", "NONE")
        shown = self.show_records(path)
        steps = self.steps(path)
        self.assertTrue(steps)
        self.assertEqual(self.query(path, "count == 0", "--count").stdout, "0\n")
        self.assertEqual(self.query(path, "changed(items)", "--count").stdout, "0\n")
        self.assertEqual(self.query(path, "not count == 0", "--count").stdout,
                         "%d\n" % len(steps))
        self.check(path, steps, 'func == "work"', lambda s: s.func == "work")
        want = [s.step for s in steps if s.line == 14]
        self.assertEqual(self.query(path, "line == 14").stdout,
                         "".join(shown[n] for n in want))

    def test_threads(self):
        self.script("threads.py", """\
            import threading
            def worker(n):
                total = n
                return total
            t = threading.Thread(target=worker, args=(5,), name="worker")
            t.start()
            t.join()
            """)
        r = helpers.steptrace_run(self.tmp, "--log-format", "steps", "threads.py")
        self.assertEqual(r.returncode, 0, r)
        path = self.path(".tracer", "tracer.steps")
        shown = self.show_records(path)
        mine = [n for n, t in shown.items() if "| thread worker\n" in t]
        self.assertTrue(mine)
        r = self.query(path, 'thread == "worker"')
        self.assertEqual(r.stdout, "".join(shown[n] for n in mine))
        # The main thread's first records have no "| thread" suffix yet
        # (docs/LOG-FORMAT.md): the field is the thread all the same.
        main = [n for n in shown if n not in mine]
        r = self.query(path, 'thread == "MainThread"', "--count")
        self.assertEqual(r.stdout, "%d\n" % len(main))
        r = self.query(path, 'thread == 2 and total == 5', "--count")
        self.assertEqual(r.stdout, "1\n")

    def test_recorded_at_error(self):
        path, _ = self.record("--log-level", "ERROR")
        r = self.query(path, 'func == "work"', "--count")
        self.assertEqual(r.stdout, "0\n")
        self.assertIn("--log-level INFO", r.stderr)
        steps = self.steps(path, "--log-level", "INFO")
        self.check(path, steps, 'func == "work"', lambda s: s.func == "work",
                   "--log-level", "INFO")

    def test_all_and_changed_recordings_agree(self):
        a, _ = self.record("--variable-mode", "ALL", log_dir="all")
        c, _ = self.record("--variable-mode", "CHANGED", log_dir="changed")
        for expr in ("count > 2", "changed(label)", 'label == "loc3"'):
            qa = self.query(a, expr, "--variable-mode", "ALL").stdout
            qc = self.query(c, expr, "--variable-mode", "ALL").stdout
            strip = lambda t: [l for l in t.splitlines()
                               if not l.startswith("Runtime:") and " at 0x" not in l]
            self.assertEqual(strip(qa), strip(qc), expr)
            self.assertTrue(qa, expr)

    # -- errors --------------------------------------------------------

    def test_syntax_errors_show_a_caret(self):
        path, _ = self.record()
        cases = [
            ("func == and x", "expected a value after '=='", 9),
            ("flag", "a name alone is no condition", 1),
            ('x == "abc', "unterminated string", 6),
            ("len(x) > 3", "unknown function 'len'", 1),
            ("x == 1.2.3", "bad number '1.2.3'", 6),
            ("x = 3", "'=' is no comparison", 3),
            ("(x == 1", "expected ')'", 8),
            ("x == 1)", "unmatched ')'", 7),
            ("", "empty expression", 1),
            ("1 < x < 3", "comparisons do not chain", 7),
            ("x == 1 && y == 2", "unexpected '&'", 8),
            (r'x == "\q"', r"unknown escape '\q'", 7),
            ("x == 1 y == 2", "unexpected 'y' after a whole condition", 8),
        ]
        for expr, msg, col in cases:
            with self.subTest(expr=expr):
                r = self.query(path, expr, status=2)
                self.assertEqual(r.stdout, "")
                lines = r.stderr.splitlines()
                self.assertRegex(lines[0], r"^steptrace: query: %s.* at column %d\b"
                                 % (re.escape(msg), col))
                self.assertEqual(lines[1], "  " + expr)
                self.assertEqual(lines[2], "  " + " " * (col - 1) + "^")
        r = self.query("x == 1", path, status=2)
        self.assertIn("the expression comes last", r.stderr)
        r = self.query(path, status=2)
        self.assertIn("EXPR", r.stderr)


if __name__ == "__main__":
    unittest.main()
