"""The Python API (docs/API.md sections 2 to 4, docs/LOG-FORMAT.md sections 5.4
and 11, docs/CLI.md section 5): Tracer as a context manager and as a decorator,
its parameters and enums, outputs, hidden variables and the workspace filter.
Each test runs a real script in a real interpreter."""
import json
import os
import unittest

import helpers
from helpers import TempDirTest, parse_log


class ApiTest(TempDirTest):

    def run_script(self, text, name="script.py", cwd=None, env=None):
        """Writes the script into cwd (default: the temp dir), runs it
        there and asserts exit status 0."""
        cwd = cwd or self.tmp
        helpers.write(os.path.join(cwd, name), text)
        r = helpers.python(cwd, name, env=env)
        self.assertEqual(r.returncode, 0, r)
        return r

    def json_out(self, r):
        """The script's last stdout line, as JSON."""
        return json.loads(r.stdout.strip().splitlines()[-1])

    # -- the context manager ------------------------------------------

    WITH_SCRIPT = """\
        from steptrace import Tracer, LogOutput
        def work(n):
            total = 0
            for i in range(n):
                total += i
            return total
        def main():
            with Tracer(log_output=LogOutput.%s):
                r = work(3)
                r2 = r + 1
            return r2
        print(main())
        """

    def check_with(self, output):
        r = self.run_script(self.WITH_SCRIPT % output)
        recs = parse_log(r.stdout[:-2] if output == "STDOUT" else self.log())
        self.assertTrue(r.stdout.endswith("4\n"), r)
        # Only the callee is traced: main(), which holds the `with`, and
        # the module produce no records.
        self.assertEqual([(rec.func, rec.line) for rec in recs],
                         [("work", 3), ("work", 4), ("work", 5), ("work", 4),
                          ("work", 5), ("work", 4), ("work", 5), ("work", 4),
                          ("work", 6)])
        helpers.assert_steps_contiguous(self, recs)
        self.assertEqual(recs[-1].vars("Local"),
                         {"n": ("int", "3"), "total": ("int", "3"),
                          "i": ("int", "2")})
        self.assertEqual(r.stderr, "")

    def test_context_manager_file(self):
        helpers.require_collector(self)
        self.check_with("FILE")

    def test_context_manager_stdout(self):
        self.check_with("STDOUT")

    def test_exception_propagates_out_of_with(self):
        helpers.require_collector(self)
        r = self.run_script("""\
            from steptrace import Tracer
            def boom():
                x = 1
                raise KeyError("nope")
            try:
                with Tracer():
                    boom()
            except KeyError as e:
                print("caught", e)
            """)
        self.assertEqual(r.stdout, "caught 'nope'\n")
        recs = self.records()
        self.assertEqual([(rec.func, rec.line) for rec in recs],
                         [("boom", 3), ("boom", 4)])

    # -- the decorator ----------------------------------------------------

    def test_decorator_metadata_and_regions(self):
        helpers.require_collector(self)
        r = self.run_script("""\
            import json
            from steptrace import Tracer
            t = Tracer()
            @t.trace
            def add(a, b):
                \"\"\"Adds two numbers.\"\"\"
                c = a + b
                return c
            results = [add(1, 2), add(3, 4)]
            print(json.dumps({"results": results, "name": add.__name__,
                              "doc": add.__doc__,
                              "qualname": add.__qualname__,
                              "wrapped": add.__wrapped__.__name__,
                              "wrapped_is_func": add.__wrapped__ is not add,
                              "unwrapped_result": add.__wrapped__(5, 6)}))
            """)
        out = self.json_out(r)
        self.assertEqual(out, {"results": [3, 7], "name": "add",
                               "doc": "Adds two numbers.", "qualname": "add",
                               "wrapped": "add", "wrapped_is_func": True,
                               "unwrapped_result": 11})
        self.assertEqual(helpers.tracer_files(self.path(".tracer")),
                         ["tracer.log"])
        recs = self.records()
        regions = helpers.split_regions(recs)
        # One region per call (the undecorated __wrapped__ call is not
        # traced), each starting at Step 1, appended to the same file.
        self.assertEqual(len(regions), 2, recs)
        for region, (a, b) in zip(regions, [(1, 2), (3, 4)]):
            self.assertEqual([(x.step, x.func, x.line) for x in region],
                             [(1, "add", 7), (2, "add", 8)])
            self.assertEqual(region[1].vars("Local"),
                             {"a": ("int", str(a)), "b": ("int", str(b)),
                              "c": ("int", str(a + b))})

    def test_decorator_recursive_call_is_one_region(self):
        r = self.run_script("""\
            from steptrace import Tracer, LogOutput
            t = Tracer(log_output=LogOutput.STDOUT)
            @t.trace
            def fact(n):
                if n <= 1:
                    return 1
                return n * fact(n - 1)
            print("result", fact(3))
            """)
        self.assertTrue(r.stdout.endswith("result 6\n"), r)
        recs = parse_log(r.stdout[:-len("result 6\n")])
        self.assertEqual(len(helpers.split_regions(recs)), 1)
        self.assertEqual([(x.func, x.line, x.vars("Local")["n"][1])
                          for x in recs],
                         [("fact", 5, "3"), ("fact", 7, "3"),
                          ("fact", 5, "2"), ("fact", 7, "2"),
                          ("fact", 5, "1"), ("fact", 6, "1")])

    # -- parameters and enums -------------------------------------------

    def test_enums_and_parameter_validation(self):
        r = self.run_script("""\
            import json
            from steptrace import Tracer, LogLevel, LogOutput, VariableMode
            out = {
                "LogLevel": {m.name: int(m) for m in LogLevel},
                "LogOutput": {m.name: int(m) for m in LogOutput},
                "VariableMode": {m.name: int(m) for m in VariableMode},
            }
            t = Tracer(log_level=10, log_output=2, variable_mode=3)
            out["ints"] = [t.log_level == LogLevel.DEBUG,
                           t.log_output == LogOutput.STDOUT,
                           t.variable_mode == VariableMode.NONE]
            errors = {}
            for kw, bad in (("log_level", 99), ("log_output", 9),
                            ("variable_mode", 0)):
                try:
                    Tracer(**{kw: bad})
                except ValueError as e:
                    errors[kw] = str(e)
                else:
                    errors[kw] = None
            out["errors"] = errors
            print(json.dumps(out))
            """)
        out = self.json_out(r)
        self.assertEqual(out["LogLevel"], {"DEBUG": 10, "INFO": 20,
                                           "WARNING": 30, "ERROR": 40,
                                           "SILENT": 50})
        self.assertEqual(out["LogOutput"], {"FILE": 1, "STDOUT": 2,
                                            "STDERR": 3, "FILE_STDOUT": 4,
                                            "FILE_STDERR": 5})
        self.assertEqual(out["VariableMode"], {"ALL": 1, "CHANGED": 2,
                                               "NONE": 3})
        self.assertEqual(out["ints"], [True, True, True])
        valid = {"log_level": ["DEBUG", "INFO", "WARNING", "ERROR", "SILENT"],
                 "log_output": ["FILE", "STDOUT", "STDERR", "FILE_STDOUT",
                                "FILE_STDERR"],
                 "variable_mode": ["ALL", "CHANGED", "NONE"]}
        for kw, names in valid.items():
            msg = out["errors"][kw]
            self.assertIsNotNone(msg, "%s accepted an invalid value" % kw)
            for name in names:
                self.assertIn(name, msg, "ValueError for %s must name the "
                              "valid values" % kw)

    def test_plain_ints_take_effect(self):
        # log_output=2 (STDOUT), variable_mode=3 (NONE), positionally too.
        r = self.run_script("""\
            from steptrace import Tracer
            def f():
                v = 1
                return v
            with Tracer(True, ".tracer", None, 20, 2, 3):
                f()
            """)
        recs = parse_log(r.stdout)
        self.assertEqual([(x.func, x.line) for x in recs],
                         [("f", 3), ("f", 4)])
        self.assertNotIn("variable", r.stdout.lower())
        self.assertFalse(os.path.exists(self.path(".tracer")))

    def check_functions_filter(self, kw, positional=False):
        args = ('True, ".tracer", ["inner"], LogLevel.INFO, LogOutput.STDOUT'
                if positional else
                'log_output=LogOutput.STDOUT, %s=["inner"]' % kw)
        r = self.run_script("""\
            from steptrace import Tracer, LogLevel, LogOutput
            def inner(x):
                y = x * 2
                return y
            def outer(x):
                z = inner(x)
                return z + 1
            t = Tracer(%s)
            with t:
                outer(1)
            print("ATTR", t.traceable_functions, t.tracable_functions)
            """ % args)
        text, _, attr = r.stdout.rpartition("ATTR")
        self.assertEqual(attr, " ['inner'] ['inner']\n")
        recs = parse_log(text)
        self.assertEqual([(x.func, x.line) for x in recs],
                         [("inner", 3), ("inner", 4)])

    def test_traceable_functions_limits_records(self):
        self.check_functions_filter("traceable_functions")

    def test_tracable_functions_alias(self):
        self.check_functions_filter("tracable_functions")

    def test_traceable_functions_positional(self):
        self.check_functions_filter(None, positional=True)

    # -- files ----------------------------------------------------------

    def test_second_tracer_writes_its_own_file(self):
        helpers.require_collector(self)
        self.run_script("""\
            from steptrace import Tracer
            def a():
                va = 1
                return va
            def b():
                vb = 2
                return vb
            t1 = Tracer()
            t2 = Tracer()
            with t1:
                a()
            with t2:
                b()
            with t1:
                a()
            """)
        self.assertEqual(helpers.tracer_files(self.path(".tracer")),
                         ["tracer.log", "tracer_1.log"])
        first = self.records("tracer.log")
        second = self.records("tracer_1.log")
        self.assertEqual([(x.step, x.func) for x in first],
                         [(1, "a"), (2, "a"), (1, "a"), (2, "a")])
        self.assertEqual([(x.step, x.func) for x in second],
                         [(1, "b"), (2, "b")])

    def test_file_is_complete_when_with_exits(self):
        helpers.require_collector(self)
        self.run_script("""\
            from steptrace import Tracer
            def work(n):
                total = 0
                for i in range(n):
                    total += i
                return total
            with Tracer():
                work(5000)
            with open(".tracer/tracer.log") as f:
                seen = f.read()
            with open("seen.txt", "w") as f:
                f.write(seen)
            """)
        seen = helpers.read(self.path("seen.txt"))
        final = self.log()
        recs = parse_log(seen)
        # 1 + 5001 "for" + 5000 body + 1 return line.
        self.assertEqual(len(recs), 10003)
        self.assertEqual((recs[-1].func, recs[-1].line), ("work", 6))
        self.assertEqual(seen, final,
                         "the log grew after the with block had exited")

    def test_log_dir_parameter(self):
        helpers.require_collector(self)
        self.run_script("""\
            import os
            from steptrace import Tracer
            def f():
                v = 1
                return v
            os.makedirs("sub")
            os.chdir("sub")
            with Tracer(log_dir="logs/deeper"):
                f()
            """)
        # Relative to the working directory at the time of tracing,
        # created on first write with mode 0750.
        recs = self.records(log_dir=os.path.join("sub", "logs", "deeper"))
        self.assertEqual([x.func for x in recs], ["f", "f"])
        mode = os.stat(self.path("sub", "logs", "deeper")).st_mode & 0o777
        self.assertEqual(mode & ~0o750, 0, oct(mode))
        self.assertFalse(os.path.exists(self.path(".tracer")))

    def test_silent_creates_no_file(self):
        helpers.require_collector(self)
        r = self.run_script("""\
            from steptrace import Tracer, LogLevel
            def f():
                v = 1
                return v
            with Tracer(log_level=LogLevel.SILENT):
                f()
            print("ok")
            """)
        self.assertEqual(r.stdout, "ok\n")
        self.assertEqual(r.stderr, "")
        self.assertFalse(os.path.exists(self.path(".tracer")))

    # -- console outputs --------------------------------------------------

    def test_stdout_goes_through_current_sys_stdout(self):
        r = self.run_script("""\
            import contextlib, io, sys
            from steptrace import Tracer, LogOutput
            second = io.StringIO()
            def f():
                v = 1
                print("hello from f")
                sys.stdout = second
                return v
            def g():
                w = 2
                return w
            first = io.StringIO()
            with contextlib.redirect_stdout(first):
                with Tracer(log_output=LogOutput.STDOUT):
                    f()
                    g()
                sys.stdout = first
            with open("first.txt", "w") as fh:
                fh.write(first.getvalue())
            with open("second.txt", "w") as fh:
                fh.write(second.getvalue())
            print("done")
            """)
        self.assertEqual(r.stdout, "done\n")
        self.assertEqual(r.stderr, "")
        first = helpers.read(self.path("first.txt"))
        second = helpers.read(self.path("second.txt"))
        # The trace interleaves with the program's own prints in order.
        before, sep, after = first.partition("hello from f\n")
        self.assertEqual(sep, "hello from f\n", first)
        self.assertEqual([(x.step, x.func, x.line) for x in parse_log(before)],
                         [(1, "f", 5), (2, "f", 6)])
        self.assertEqual([(x.step, x.func, x.line) for x in parse_log(after)],
                         [(3, "f", 7)])
        # After f rebinds sys.stdout, records go to the new object.
        self.assertEqual([(x.step, x.func, x.line) for x in parse_log(second)],
                         [(4, "f", 8), (5, "g", 10), (6, "g", 11)])

    def test_stderr_goes_through_current_sys_stderr(self):
        r = self.run_script("""\
            import contextlib, io
            from steptrace import Tracer, LogOutput
            def f():
                v = 1
                return v
            buf = io.StringIO()
            with contextlib.redirect_stderr(buf):
                with Tracer(log_output=LogOutput.STDERR):
                    f()
            with open("captured.txt", "w") as fh:
                fh.write(buf.getvalue())
            """)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "")
        recs = parse_log(helpers.read(self.path("captured.txt")))
        self.assertEqual([(x.func, x.line) for x in recs], [("f", 4), ("f", 5)])

    # -- the previous trace function ------------------------------------

    def test_previous_trace_function_restored(self):
        r = self.run_script("""\
            import json, sys
            from steptrace import Tracer, LogOutput
            events = []
            def my_trace(frame, event, arg):
                if frame.f_code.co_name == "probe":
                    events.append(event)
                return None
            def probe():
                return 1
            def work():
                w = 1
                return w
            t = Tracer(log_output=LogOutput.STDERR)
            @t.trace
            def deco():
                d = 1
                return d
            out = {}
            sys.settrace(my_trace)
            before = sys.gettrace()
            with t:
                work()
            out["after_with"] = sys.gettrace() is before
            probe()
            out["events_after_with"] = len(events)
            deco()
            out["after_decorator"] = sys.gettrace() is before
            probe()
            out["events_after_decorator"] = len(events)
            sys.settrace(None)
            with t:
                work()
            out["none_after"] = sys.gettrace() is None
            print(json.dumps(out))
            """)
        self.assertEqual(self.json_out(r), {
            "after_with": True, "events_after_with": 1,
            "after_decorator": True, "events_after_decorator": 2,
            "none_after": True})
        recs = parse_log(r.stderr)
        self.assertEqual([(x.step, x.func) for x in recs],
                         [(1, "work"), (2, "work"), (1, "deco"), (2, "deco"),
                          (1, "work"), (2, "work")])

    # -- values -----------------------------------------------------------

    def test_value_rendering(self):
        r = self.run_script("""\
            from steptrace import Tracer, LogOutput
            class Bad:
                def __str__(self):
                    raise RuntimeError("boom")
            class Weird:
                def __str__(self):
                    return "two\\nlines"
            def f():
                bad = Bad()
                text = "a\\nb\\tc\\x01d"
                weird = Weird()
                long = "x" * 50
                exact = "y" * 10
                return 0
            with Tracer(log_output=LogOutput.STDOUT, repr_limit=10):
                f()
            """)
        last = parse_log(r.stdout)[-1]
        self.assertEqual(last.line, 14)
        self.assertEqual(last.vars("Local"), {
            "bad": ("Bad", "<unprintable Bad: boom>"),
            "text": ("str", "a\\nb\\tc\\x01d"),
            "weird": ("Weird", "two\\nlines"),
            "long": ("str", "x" * 10 + "... (50 chars)"),
            "exact": ("str", "y" * 10),
        })

    def test_default_repr_limit_is_1000(self):
        r = self.run_script("""\
            from steptrace import Tracer, LogOutput
            def f():
                big = "z" * 1500
                ok = "k" * 1000
                return 0
            with Tracer(log_output=LogOutput.STDOUT):
                f()
            """)
        last = parse_log(r.stdout)[-1]
        self.assertEqual(last.vars("Local"), {
            "big": ("str", "z" * 1000 + "... (1500 chars)"),
            "ok": ("str", "k" * 1000)})

    def test_hidden_variables(self):
        r = self.run_script("""\
            import os
            import json as jsonmod
            from math import sqrt
            from steptrace import Tracer, LogOutput
            class Point:
                pass
            def helper():
                return 1
            __private_dunder__ = 5
            data = [1, 2]
            p = Point()
            say = print
            t = Tracer(log_output=LogOutput.STDOUT)
            def f(tracer):
                local_data = {"a": 1}
                appender = local_data.setdefault
                cls = Point
                mod = os
                fn = helper
                sq = sqrt
                inst = Point()
                return 0
            with t:
                f(t)
            """)
        last = parse_log(r.stdout)[-1]
        self.assertEqual(last.line, 22)
        g = last.vars("Global")
        loc = last.vars("Local")
        self.assertEqual(sorted(g), ["data", "f", "helper", "p"])
        self.assertEqual(g["data"], ("list", "[1, 2]"))
        self.assertEqual(g["helper"][0], "function")
        self.assertEqual(g["p"][0], "Point")
        self.assertEqual(sorted(loc), ["fn", "inst", "local_data"])
        self.assertEqual(loc["fn"][0], "function")

    def test_implicit_comprehension_variables_hidden(self):
        # The compiler's hidden iterator argument ".0" of comprehension and
        # generator-expression frames is not the user's data (and is not a
        # name a "name: type :: value" parser accepts).
        r = self.run_script("""\
            from steptrace import Tracer, LogOutput
            def f():
                squares = [i * i for i in range(2)]
                total = sum(j for j in range(3))
                return squares, total
            with Tracer(log_output=LogOutput.STDOUT):
                f()
            """)
        shown = sorted(set(l for l in r.stdout.splitlines()
                           if l.startswith(".0:")))
        self.assertEqual(shown, [], "implicit '.0' variables are shown")
        recs = parse_log(r.stdout)
        self.assertTrue(any(x.func == "<genexpr>" and "j" in x.vars("Local")
                            for x in recs), "the genexpr's own variable is "
                        "shown")

    # -- the workspace filter ---------------------------------------------

    def check_workspace(self, filter_workspace):
        proj = self.path("x", "proj")
        helpers.write(os.path.join(self.tmp, "x", "proj2", "other.py"), """\
            def foreign(v):
                w = v + 1
                return w
            """)
        helpers.write(os.path.join(proj, "mine.py"), """\
            def local(v):
                u = v * 3
                return u
            """)
        r = self.run_script("""\
            import sys
            sys.path.insert(0, %r)
            import other
            import mine
            from steptrace import Tracer, LogOutput
            def main():
                with Tracer(log_output=LogOutput.STDOUT,
                            filter_workspace=%r):
                    other.foreign(1)
                    mine.local(2)
            main()
            """ % (os.path.join(self.tmp, "x", "proj2"), filter_workspace),
            cwd=proj)
        return [(x.file, x.func) for x in parse_log(r.stdout)]

    def test_workspace_filter_excludes_sibling_directory(self):
        seen = self.check_workspace(True)
        mine = os.path.join(self.tmp, "x", "proj", "mine.py")
        self.assertEqual(seen, [(mine, "local"), (mine, "local")])

    def test_no_filter_workspace_traces_sibling_directory(self):
        seen = self.check_workspace(False)
        mine = os.path.join(self.tmp, "x", "proj", "mine.py")
        other = os.path.join(self.tmp, "x", "proj2", "other.py")
        self.assertEqual(seen, [(other, "foreign"), (other, "foreign"),
                                (mine, "local"), (mine, "local")])


if __name__ == "__main__":
    unittest.main()
