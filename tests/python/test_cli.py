"""The command line, `python -m steptrace run SCRIPT [options] [-- args]`
(docs/CLI.md sections 2, 3 and 8): the script as __main__, argument passing,
exit status, and one-line errors for bad input."""
import json
import os
import re
import unittest

import helpers
from helpers import TempDirTest, parse_log

# Prints how the script was started, as one JSON line.
ARGV_SCRIPT = """\
import json, os, sys
print(json.dumps({
    "name": __name__,
    "argv": sys.argv,
    "main_is_me": sys.modules["__main__"].__dict__ is globals(),
    "file": __file__,
    "path0": sys.path[0],
}))
"""

MARKER_SCRIPT = """\
open("ran.marker", "w").close()
def f():
    v = 1
    return v
f()
print("script output")
"""


class CliTest(TempDirTest):

    def run_cli(self, *args, env=None):
        return helpers.steptrace_run(self.tmp, *args, env=env)

    def argv_of(self, r):
        self.assertEqual(r.returncode, 0, r)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r)
        return json.loads(lines[0])

    # -- the script as __main__ ---------------------------------------

    def test_script_runs_as_main_with_argv(self):
        path = self.script("script.py", ARGV_SCRIPT)
        r = self.run_cli("--log-output", "STDERR", "script.py", "a", "b c")
        out = self.argv_of(r)
        self.assertEqual(out, {"name": "__main__",
                               "argv": ["script.py", "a", "b c"],
                               "main_is_me": True, "file": path,
                               "path0": self.tmp})
        recs = parse_log(r.stderr)
        self.assertEqual(recs[0].file, path)
        self.assertEqual(recs[0].func, "<module>")

    def test_script_in_another_directory(self):
        path = helpers.write(self.path("sub", "script.py"), ARGV_SCRIPT)
        helpers.write(self.path("sub", "helper_mod.py"), "VALUE = 42\n")
        r = self.run_cli("--log-output", "STDERR", "sub/script.py")
        out = self.argv_of(r)
        self.assertEqual(out["argv"], ["sub/script.py"])
        self.assertEqual(out["path0"], self.path("sub"))
        self.assertEqual(out["file"], path)

    def test_options_before_or_after_script(self):
        self.script("script.py", ARGV_SCRIPT)
        cases = [
            ("--log-output", "STDERR", "--variable-mode", "NONE",
             "script.py", "a", "b"),
            ("script.py", "a", "--log-output", "STDERR", "b",
             "--variable-mode", "NONE"),
            ("script.py", "--log-output=STDERR", "a", "--variable-mode=NONE",
             "b"),
        ]
        for args in cases:
            with self.subTest(args=args):
                r = self.run_cli(*args)
                self.assertEqual(self.argv_of(r)["argv"],
                                 ["script.py", "a", "b"])
                recs = parse_log(r.stderr)
                self.assertGreater(len(recs), 0)
                self.assertNotIn("variable", r.stderr.lower())

    def test_double_dash_and_unknown_tokens_go_to_script(self):
        self.script("script.py", ARGV_SCRIPT)
        r = self.run_cli("script.py", "--log-output", "STDERR", "--unknown",
                         "-x", "--", "--log-output", "STDOUT", "--help",
                         "--", "z")
        self.assertEqual(self.argv_of(r)["argv"],
                         ["script.py", "--unknown", "-x", "--log-output",
                          "STDOUT", "--help", "--", "z"])
        # The options after -- were the script's: the trace is on stderr.
        self.assertGreater(len(parse_log(r.stderr)), 0)

    def test_case_insensitive_choices(self):
        self.script("script.py", """\
            def f():
                v = [1]
                v.append(2)
                return v
            f()
            """)
        r = self.run_cli("--log-output", "stdout", "--variable-mode",
                         "Changed", "--log-level", "info", "script.py")
        self.assertEqual(r.returncode, 0, r)
        lines = [l for rec in parse_log(r.stdout) for l in rec.lines]
        self.assertIn("------> Local variable changes <------", lines)
        self.assertIn("[CHANGED] v: list :: [1] -> [1, 2]", lines)

    def test_traceable_functions_option(self):
        self.script("script.py", """\
            def inner(x):
                y = x * 2
                return y
            def outer(x):
                return inner(x) + 1
            def other():
                return 0
            outer(1)
            other()
            """)
        for args in (("--traceable-functions", "inner", "other",
                      "--log-output", "STDOUT", "script.py"),
                     ("script.py", "--log-output", "STDOUT",
                      "--traceable-functions", "inner", "other")):
            with self.subTest(args=args):
                r = self.run_cli(*args)
                self.assertEqual(r.returncode, 0, r)
                self.assertEqual([(x.func, x.line)
                                  for x in parse_log(r.stdout)],
                                 [("inner", 2), ("inner", 3), ("other", 7)])

    def test_pickle_class_defined_in_script(self):
        self.script("script.py", """\
            import pickle
            class Point:
                def __init__(self, x, y):
                    self.x, self.y = x, y
                def __eq__(self, other):
                    return (self.x, self.y) == (other.x, other.y)
            p = Point(1, 2)
            q = pickle.loads(pickle.dumps(p))
            print(q == p, type(q).__module__, type(q) is Point)
            """)
        r = self.run_cli("--log-output", "STDERR", "script.py")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "True __main__ True\n")
        self.assertGreater(len(parse_log(r.stderr)), 0)

    def test_multiprocessing_spawn_finds_main(self):
        self.script("script.py", """\
            import multiprocessing as mp
            def square(x):
                return x * x
            if __name__ == "__main__":
                with mp.get_context("spawn").Pool(1) as pool:
                    print(pool.map(square, [1, 2, 3]))
            """)
        r = self.run_cli("--log-output", "STDERR", "script.py")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "[1, 4, 9]\n")

    # -- exit status ----------------------------------------------------

    def test_exit_status(self):
        cases = [
            ("x = 1\n", 0, ""),
            ("import sys\nsys.exit(3)\n", 3, ""),
            ("import sys\nsys.exit(0)\n", 0, ""),
            ("import sys\nsys.exit()\n", 0, ""),
            ("import sys\nsys.exit('fatal: bad input')\n", 1,
             "fatal: bad input\n"),
            ("raise SystemExit(7)\n", 7, ""),
        ]
        for source, status, stderr in cases:
            with self.subTest(source=source):
                self.script("script.py", source)
                r = self.run_cli("script.py", "--log-output", "STDOUT")
                self.assertEqual(r.returncode, status, r)
                self.assertEqual(r.stderr, stderr)
                self.assertGreater(len(parse_log(r.stdout)), 0)

    def test_uncaught_exception_traceback_and_status_1(self):
        path = self.script("script.py", """\
            def fail(n):
                raise ValueError("bad thing %d" % n)
            print("before")
            fail(4)
            """)
        r = self.run_cli("script.py", "--log-output", "STDERR")
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stdout, "before\n")
        tb = r.stderr[r.stderr.index("Traceback (most recent call last):"):]
        self.assertTrue(tb.endswith("ValueError: bad thing 4\n"), tb)
        # The usual traceback: the script's frames, none of steptrace's.
        files = re.findall(r'^  File "([^"]+)", line (\d+), in (\S+)$', tb,
                           re.M)
        self.assertEqual(files, [(path, "4", "<module>"),
                                 (path, "2", "fail")], tb)
        # The steps up to the raise are in the trace.
        recs = parse_log(r.stderr[:r.stderr.index("Traceback")])
        self.assertEqual((recs[-1].func, recs[-1].line), ("fail", 2))

    def test_keyboard_interrupt_gives_130(self):
        self.script("script.py", "raise KeyboardInterrupt\n")
        r = self.run_cli("script.py", "--log-output", "STDOUT")
        self.assertEqual(r.returncode, 130, r)
        self.assertIn("KeyboardInterrupt", r.stderr)

    def test_stdout_is_only_the_scripts_output_with_file(self):
        helpers.require_collector(self)
        self.script("script.py", """\
            import sys
            def f(x):
                y = x + 1
                return y
            print("hello")
            sys.stdout.write("world %d\\n" % f(1))
            """)
        r = self.run_cli("script.py")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "hello\nworld 2\n")
        self.assertEqual(r.stderr, "")
        recs = self.records()
        self.assertIn(("f", 4), [(x.func, x.line) for x in recs])

    def test_log_dir_option(self):
        helpers.require_collector(self)
        self.script("script.py", MARKER_SCRIPT)
        r = self.run_cli("script.py", "--log-dir", "out/logs")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "script output\n")
        recs = self.records(log_dir="out/logs")
        self.assertEqual([(x.func, x.line) for x in recs
                          if x.func != "<module>"], [("f", 3), ("f", 4)])
        self.assertFalse(os.path.exists(self.path(".tracer")))

    # -- bad input ------------------------------------------------------

    def check_usage_error(self, args, *words):
        """Exit 2, one 'steptrace: error:' line naming the problem, no
        traceback, the script not run, nothing traced."""
        self.script("script.py", MARKER_SCRIPT)
        r = self.run_cli(*args)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, "expected one line on stderr: %r"
                         % r.stderr)
        self.assertTrue(r.stderr.endswith("\n"))
        self.assertTrue(lines[0].startswith("steptrace: error:"), lines[0])
        self.assertNotIn("Traceback", r.stderr)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertFalse(os.path.exists(self.path("ran.marker")),
                         "the script ran")
        self.assertFalse(os.path.exists(self.path(".tracer")),
                         "a log directory was created")
        return lines[0]

    def test_bad_option_value(self):
        # Before the script: steptrace's, an error.
        self.check_usage_error(("--log-level", "LOUD", "script.py"),
                               "--log-level", "LOUD", "DEBUG", "INFO",
                               "WARNING", "ERROR", "SILENT")
        self.check_usage_error(("--log-output", "nowhere", "script.py"),
                               "--log-output", "nowhere", "FILE", "STDOUT",
                               "STDERR", "FILE_STDOUT", "FILE_STDERR")
        self.check_usage_error(("--variable-mode=sometimes", "script.py"),
                               "--variable-mode", "sometimes", "ALL",
                               "CHANGED", "NONE")

    def test_option_without_value(self):
        self.check_usage_error(("--log-level",), "--log-level")

    def check_passed_on(self, args, passed, warning):
        """The script runs with `passed` as its arguments, one warning."""
        self.script("argv.py", "import sys\nprint(sys.argv[1:])\n")
        r = self.run_cli("argv.py", *args)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "%r\n" % (passed,))
        self.assertEqual(r.stderr, "steptrace: %s\n" % warning if warning
                         else "")

    def test_mistakes_after_the_script_go_to_it_with_a_warning(self):
        helpers.require_collector(self)
        self.check_passed_on(("--log-levl", "DEBUG"), ["--log-levl", "DEBUG"],
                             "passing --log-levl to the script; did you mean "
                             "--log-level?")
        self.check_passed_on(("--varable-mode=none",),
                             ["--varable-mode=none"],
                             "passing --varable-mode to the script; did you "
                             "mean --variable-mode?")
        self.check_passed_on(("--log-output", "nowhere"),
                             ["--log-output", "nowhere"],
                             "passing --log-output nowhere to the script "
                             "(invalid --log-output value 'nowhere': choose "
                             "one of FILE, STDOUT, STDERR, FILE_STDOUT, "
                             "FILE_STDERR)")
        self.check_passed_on(("--log-level",), ["--log-level"],
                             "passing --log-level to the script: it needs a "
                             "value to be steptrace's (put steptrace's "
                             "options before the script, or the script's "
                             "after --)")
        # Far from any option, or short: the script's, quietly; a good one
        # is still steptrace's.
        self.check_passed_on(("--verbose", "-v", "--log-level", "debug"),
                             ["--verbose", "-v"], "")

    def test_missing_script(self):
        self.check_usage_error(("nope.py", "--log-output", "STDOUT"),
                               "nope.py")
        self.check_usage_error(("--log-output", "STDOUT"))
        os.mkdir(self.path("adir"))
        self.check_usage_error(("adir",), "adir")

    def test_unwritable_log_dir(self):
        with open(self.path("afile"), "w") as f:
            f.write("not a directory\n")
        self.check_usage_error(("script.py", "--log-dir", "afile/logs"),
                               "afile")
        self.check_usage_error(("--log-dir", "afile", "script.py"), "afile")
        # Permission bits do not tell (root may write anywhere they say):
        # the directory is tried.
        if os.path.isdir("/proc/self"):
            self.check_usage_error(("--log-dir", "/proc/steptrace-x",
                                    "script.py"),
                                   "cannot write log directory "
                                   "/proc/steptrace-x")
        with open(self.path("afile")) as f:
            self.assertEqual(f.read(), "not a directory\n")

    # -- help -----------------------------------------------------------

    def test_help_lists_every_option(self):
        r = self.run_cli("--help")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "")
        for option in ("--log-level", "--log-output", "--variable-mode",
                       "--log-dir", "--filter-workspace",
                       "--no-filter-workspace", "--traceable-functions",
                       "--repr-limit", "--max-log-bytes", "--max-log-files",
                       "DEBUG", "SILENT", "FILE_STDERR", "CHANGED", "NONE"):
            self.assertIn(option, r.stdout)
        main = helpers.run([helpers.PYTHON, "-m", "steptrace", "--help"],
                           self.tmp)
        self.assertEqual(main.returncode, 0, main)
        self.assertRegex(main.stdout, r"(?m)^\s+run\b")

    def test_help_lists_config_and_async_options(self):
        # docs/CLI.md section 4 also names -c/--config and the async
        # options.
        r = self.run_cli("--help")
        self.assertEqual(r.returncode, 0, r)
        for option in ("--config", "--trace-async", "--no-trace-async",
                       "--async-threshold-ms"):
            self.assertIn(option, r.stdout)

    # -- children -----------------------------------------------------------

    def test_subprocess_inherits_collector_socket(self):
        helpers.require_collector(self)
        self.script("script.py", """\
            import json, os, subprocess, sys
            child = subprocess.run(
                [sys.executable, "-c",
                 "import os, stat; p = os.environ.get('STEPTRACE_SOCKET'); "
                 "print(p); print(p is not None and "
                 "stat.S_ISSOCK(os.stat(p).st_mode))"],
                stdout=subprocess.PIPE, universal_newlines=True, check=True)
            print(json.dumps({"parent": os.environ.get("STEPTRACE_SOCKET"),
                              "child": child.stdout.split("\\n")}))
            """)
        r = self.run_cli("script.py", env=helpers.environ())
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "")
        out = json.loads(r.stdout)
        self.assertIsNotNone(out["parent"])
        self.assertEqual(out["child"], [out["parent"], "True", ""])
        self.assertGreater(len(self.records()), 0)


if __name__ == "__main__":
    unittest.main()
