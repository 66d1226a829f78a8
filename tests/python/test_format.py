"""The text log format, byte for byte (docs/LOG-FORMAT.md sections 2 to
6), for the FILE output (through the collector) and the console outputs
(formatted in-process; docs/LOG-FORMAT.md section 11)."""
import re
import unittest
from collections import OrderedDict

import helpers
from helpers import TempDirTest, normalize_addresses, normalize_runtime, parse_log

FUNC_RE = re.compile(r"<function \w+ at 0x[0-9a-f]+>")

# Module-level code and one call: x, f, y.
ALL_SCRIPT = """\
x = 5
def f(a):
    b = a + 1
    return b
y = f(x)
print("F=" + str(f))
"""

ALL_EXPECTED = """\
--------------------- Step 1 ---------------------
Runtime: #.#### ms
{path}::<module> -- line 1

--------------------- Step 2 ---------------------
Runtime: #.#### ms
{path}::<module> -- line 2

------> Global variables <------
x: int :: 5

--------------------- Step 3 ---------------------
Runtime: #.#### ms
{path}::<module> -- line 5

------> Global variables <------
x: int :: 5
f: function :: {f}

--------------------- Step 4 ---------------------
Runtime: #.#### ms
{path}::f -- line 3

------> Global variables <------
x: int :: 5
f: function :: {f}

------> Local variables <------
a: int :: 5

--------------------- Step 5 ---------------------
Runtime: #.#### ms
{path}::f -- line 4

------> Global variables <------
x: int :: 5
f: function :: {f}

------> Local variables <------
a: int :: 5
b: int :: 6

--------------------- Step 6 ---------------------
Runtime: #.#### ms
{path}::<module> -- line 6

------> Global variables <------
x: int :: 5
f: function :: {f}
y: int :: 6

"""

# CHANGED mode: a mutation, a deletion, and a call whose callee must not
# see the caller's locals as deleted, nor the caller see them again as new.
CHANGED_SCRIPT = """\
def h():
    q = 1
    return q
def g():
    xs = [1]
    xs.append(2)
    y = 2
    del y
    h()
    return len(xs)
g()
print("F=" + str(h) + " " + str(g))
"""

CHANGED_EXPECTED = """\
--------------------- Step 1 ---------------------
Runtime: #.#### ms
{path}::<module> -- line 1

--------------------- Step 2 ---------------------
Runtime: #.#### ms
{path}::<module> -- line 4

------> Global variable changes <------
[NEW] h: function :: {h}

--------------------- Step 3 ---------------------
Runtime: #.#### ms
{path}::<module> -- line 11

------> Global variable changes <------
[NEW] g: function :: {g}

--------------------- Step 4 ---------------------
Runtime: #.#### ms
{path}::g -- line 5

--------------------- Step 5 ---------------------
Runtime: #.#### ms
{path}::g -- line 6

------> Local variable changes <------
[NEW] xs: list :: [1]

--------------------- Step 6 ---------------------
Runtime: #.#### ms
{path}::g -- line 7

------> Local variable changes <------
[CHANGED] xs: list :: [1] -> [1, 2]

--------------------- Step 7 ---------------------
Runtime: #.#### ms
{path}::g -- line 8

------> Local variable changes <------
[NEW] y: int :: 2

--------------------- Step 8 ---------------------
Runtime: #.#### ms
{path}::g -- line 9

------> Local variable changes <------
[DELETED] y

--------------------- Step 9 ---------------------
Runtime: #.#### ms
{path}::h -- line 2

--------------------- Step 10 ---------------------
Runtime: #.#### ms
{path}::h -- line 3

------> Local variable changes <------
[NEW] q: int :: 1

--------------------- Step 11 ---------------------
Runtime: #.#### ms
{path}::g -- line 10

--------------------- Step 12 ---------------------
Runtime: #.#### ms
{path}::<module> -- line 12

"""

# A larger program: loops, recursion, nested calls, several types, a
# user class instance, a generator, module-level code.
RICH_SCRIPT = """\
import math
from collections import OrderedDict

LIMIT = 4
names = {"a": 1, "b": [1, 2]}


class Box:
    def __init__(self, v):
        self.v = v

    def __str__(self):
        return "Box(%s)" % self.v


def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


def gen(k):
    for i in range(k):
        yield i * i


def work():
    total = 0.0
    items = []
    for i in range(LIMIT):
        total += math.sqrt(i)
        items.append(Box(i))
    squares = list(gen(3))
    label = str(items[0])
    od = OrderedDict(x=1)
    text = "tab\\there"
    nothing = None
    flag = total > 1
    return fact(5), squares, od, text, nothing, flag


result = work()
"""


class FormatTest(TempDirTest):

    # -- helpers --------------------------------------------------------

    def run_cli(self, script_text, *options):
        path = self.script("script.py", script_text)
        r = helpers.steptrace_run(self.tmp, "script.py", *options)
        self.assertEqual(r.returncode, 0, r)
        return path, r

    def trace_text(self, output, r):
        """The trace text of a finished run for the given output."""
        if output == "STDOUT":
            return r.stdout
        if output == "STDERR":
            return r.stderr
        return self.log()

    def functions_from_stdout(self, r):
        """The str() of functions the script printed on its F= line."""
        lines = [l for l in r.stdout.splitlines() if l.startswith("F=")]
        self.assertEqual(len(lines), 1, r)
        return FUNC_RE.findall(lines[0])

    def check_all_exact(self, output):
        path, r = self.run_cli(ALL_SCRIPT, "--log-output", output)
        (f,) = self.functions_from_stdout(r)
        expected = ALL_EXPECTED.format(path=path, f=f)
        text = self.trace_text(output, r)
        if output == "STDOUT":
            # The script's own print comes after the step of its line.
            expected += "F=%s\n" % f
        self.assertEqual(normalize_runtime(text), expected)
        self.assertEqual(r.stderr, "")

    def check_changed_exact(self, output):
        path, r = self.run_cli(CHANGED_SCRIPT, "--log-output", output,
                               "--variable-mode", "CHANGED")
        h, g = self.functions_from_stdout(r)
        expected = CHANGED_EXPECTED.format(path=path, h=h, g=g)
        text = self.trace_text(output, r)
        if output == "STDOUT":
            expected += "F=%s %s\n" % (h, g)
        self.assertEqual(normalize_runtime(text), expected)
        self.assertEqual(r.stderr, "")

    # -- ALL mode -------------------------------------------------------

    def test_all_mode_stdout_byte_exact(self):
        self.check_all_exact("STDOUT")

    def test_all_mode_file_byte_exact(self):
        helpers.require_collector(self)
        self.check_all_exact("FILE")

    def test_all_mode_stderr_byte_exact(self):
        path, r = self.run_cli(ALL_SCRIPT, "--log-output", "STDERR")
        (f,) = self.functions_from_stdout(r)
        self.assertEqual(r.stdout, "F=%s\n" % f)
        self.assertEqual(normalize_runtime(r.stderr),
                         ALL_EXPECTED.format(path=path, f=f))

    # -- CHANGED mode ---------------------------------------------------

    def test_changed_mode_stdout_byte_exact(self):
        self.check_changed_exact("STDOUT")

    def test_changed_mode_file_byte_exact(self):
        helpers.require_collector(self)
        self.check_changed_exact("FILE")

    def test_changed_mode_mutations_of_containers(self):
        # d[k] = v and a change of a global seen from a function are
        # changes; the type shown is the new value's.
        script = """\
            counter = 0
            def bump():
                global counter
                d = {}
                d["k"] = 1
                counter = "one"
                return d
            bump()
            """
        path, r = self.run_cli(script, "--log-output", "STDOUT",
                               "--variable-mode", "changed")
        recs = parse_log(r.stdout)
        lines = [l for rec in recs for l in rec.lines]
        self.assertIn("[NEW] d: dict :: {}", lines)
        self.assertIn("[CHANGED] d: dict :: {} -> {'k': 1}", lines)
        self.assertIn("[CHANGED] counter: str :: 0 -> one", lines)
        for rec in recs:
            for title in rec.section_titles:
                self.assertIn(title, ("------> Global variable changes <------",
                                      "------> Local variable changes <------"))

    # -- NONE mode ------------------------------------------------------

    def check_none(self, output):
        path, r = self.run_cli(ALL_SCRIPT, "--log-output", output,
                               "--variable-mode", "NONE")
        text = self.trace_text(output, r)
        if output == "STDOUT":
            text = "\n".join(l for l in text.split("\n")
                             if not l.startswith("F="))
        self.assertNotIn("variable", text.lower())
        recs = parse_log(text)
        self.assertEqual([(rec.func, rec.line) for rec in recs],
                         [("<module>", 1), ("<module>", 2), ("<module>", 5),
                          ("f", 3), ("f", 4), ("<module>", 6)])
        for rec in recs:
            self.assertEqual(len(rec.lines), 4, rec.lines)
            self.assertEqual(rec.lines[3], "")

    def test_none_mode_stdout(self):
        self.check_none("STDOUT")

    def test_none_mode_file(self):
        helpers.require_collector(self)
        self.check_none("FILE")

    # -- a whole log through the parser ---------------------------------

    def check_rich(self, output):
        path, r = self.run_cli(RICH_SCRIPT, "--log-output", output)
        text = self.trace_text(output, r)
        recs = parse_log(text)   # one regular expression per line kind
        self.assertGreater(len(recs), 40)
        helpers.assert_steps_contiguous(self, recs)
        self.assertEqual(recs[0].step, 1)
        self.assertEqual(len(helpers.split_regions(recs)), 1)
        funcs = set()
        for rec in recs:
            self.assertEqual(rec.file, path, rec)
            self.assertEqual(len(rec.locations), 1, "INFO shows no ancestors")
            funcs.add(rec.func)
            if rec.func == "<module>":
                self.assertNotIn("Local", rec.sections,
                                 "module-level records show only globals")
            g = rec.vars("Global")
            rec.vars("Local")
            for hidden in ("math", "OrderedDict", "Box", "__name__",
                           "__file__", "__builtins__"):
                self.assertNotIn(hidden, g, rec)
        self.assertTrue({"<module>", "work", "fact", "gen", "__init__",
                         "__str__"} <= funcs, funcs)
        # Values are str() of the value, not repr().
        lines = [l for rec in recs for l in rec.lines]
        self.assertIn("text: str :: tab\\there", lines)
        self.assertIn("nothing: NoneType :: None", lines)
        self.assertIn("LIMIT: int :: 4", lines)
        self.assertIn("names: dict :: {'a': 1, 'b': [1, 2]}", lines)
        self.assertIn("items: list :: []", lines)
        self.assertIn("squares: list :: [0, 1, 4]", lines)
        # str(OrderedDict) differs between versions: ask this interpreter.
        self.assertIn("od: OrderedDict :: %s" % (OrderedDict(x=1),), lines)
        self.assertIn("flag: bool :: True", lines)
        self.assertIn("n: int :: 5", lines)
        self.assertIn("v: int :: 3", lines)
        self.assertIn("label: str :: Box(0)", lines)
        self.assertIn("self: Box :: Box(0)", lines)
        # In __init__ before self.v is set, str(self) raises: one line.
        self.assertIn("self: Box :: <unprintable Box: 'Box' object has no "
                      "attribute 'v'>", lines)
        call_line = RICH_SCRIPT.splitlines().index("result = work()") + 1
        self.assertIn(("<module>", call_line),
                      [(rec.func, rec.line) for rec in recs])
        # The last line to run is fact(1)'s "return 1".
        self.assertEqual((recs[-1].func, recs[-1].line), ("fact", 18))

    def test_whole_log_parses_stdout(self):
        self.check_rich("STDOUT")

    def test_whole_log_parses_file(self):
        helpers.require_collector(self)
        self.check_rich("FILE")

    # -- the same run through every output ------------------------------

    def test_file_and_stdout_identical_but_runtime(self):
        helpers.require_collector(self)
        self.script("script.py", RICH_SCRIPT)
        a = helpers.steptrace_run(self.tmp, "script.py", "--log-output", "FILE")
        self.assertEqual(a.returncode, 0, a)
        self.assertEqual(a.stdout, "")
        file_text = self.log()
        b = helpers.steptrace_run(self.tmp, "script.py", "--log-output",
                                  "STDOUT")
        self.assertEqual(b.returncode, 0, b)
        self.assertGreater(len(parse_log(file_text)), 40)
        # Function addresses differ between two processes; nothing else may.
        self.assertEqual(normalize_addresses(normalize_runtime(file_text)),
                         normalize_addresses(normalize_runtime(b.stdout)))
        self.assertEqual(helpers.tracer_files(self.path(".tracer")),
                         ["tracer.log"], "the STDOUT run wrote a file")

    def test_file_stdout_bytes_equal(self):
        helpers.require_collector(self)
        self.script("script.py", RICH_SCRIPT)
        r = helpers.steptrace_run(self.tmp, "script.py", "--log-output",
                                  "FILE_STDOUT")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "")
        file_text = self.log()
        self.assertGreater(len(parse_log(file_text)), 40)
        self.assertEqual(file_text, r.stdout)

    def test_file_stderr_bytes_equal(self):
        helpers.require_collector(self)
        self.script("script.py", RICH_SCRIPT)
        r = helpers.steptrace_run(self.tmp, "script.py", "--log-output",
                                  "FILE_STDERR")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "")
        file_text = self.log()
        self.assertGreater(len(parse_log(file_text)), 40)
        self.assertEqual(file_text, r.stderr)

    # -- Runtime ----------------------------------------------------------

    def test_runtime_is_milliseconds_of_the_previous_line(self):
        # Step k's Runtime is the time since step k-1: the step after a
        # 30 ms sleep shows at least 30 ms (a lower bound only).
        script = """\
            import time
            def f():
                time.sleep(0.03)
                done = 1
                return done
            f()
            """
        path, r = self.run_cli(script, "--log-output", "STDOUT")
        recs = parse_log(r.stdout)
        after = [rec for rec in recs if rec.func == "f" and rec.line == 4]
        self.assertEqual(len(after), 1, recs)
        self.assertGreaterEqual(float(after[0].runtime), 30.0, after[0].lines)


if __name__ == "__main__":
    unittest.main()
