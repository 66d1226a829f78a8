"""The two trace backends give the same records (issue 6): on CPython
3.12+ the agent hooks sys.monitoring, and STEPTRACE_BACKEND=settrace makes
it use the PyEval_SetTrace hook instead; every record of a program that
exercises one-line loops, generators, exceptions, recursion, coroutines,
library calls and two regions with different filters must be the same
(runtimes and object addresses aside).  Each test runs real scripts in a
real interpreter."""
import re
import sys
import textwrap
import unittest

import helpers
from helpers import TempDirTest

PROGRAM = """\
    import asyncio, json, os, sys; exec(os.environ.get("PRELUDE", ""))
    from steptrace import Tracer, LogOutput, LogLevel, VariableMode, _agent

    def gen(n):
        for i in range(n): yield i * 2
    def fails(x):
        if x:
            raise KeyError(x)
        return x
    def rec(n):
        return 0 if n == 0 else 1 + rec(n - 1)
    async def sleeper(d):
        await asyncio.sleep(d)
        return d
    async def main():
        r = await asyncio.gather(sleeper(0), sleeper(0.001))
        return r
    def only_a():
        a = [1]
        a.append(2)
        return a
    def only_b():
        b = {"k": 1}
        b["k"] += 1
        return b

    def work():
        total = 0
        for v in gen(3): total += v
        k = 3
        while k: k -= 1
        try:
            fails(1)
        except KeyError as e:
            err = str(e)
        text = json.dumps({"t": total})
        depth = rec(4)
        res = asyncio.run(main())
        return total, err, text, depth, res

    with Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                variable_mode=VariableMode.CHANGED):
        print("result", work())
    # A region tracing only_a, then one tracing everything: only_b's
    # locations, switched off in the first, are traced in the second.
    with Tracer(log_output=LogOutput.STDOUT, tracable_functions=["only_a"]):
        only_a(); only_b()
    with Tracer(log_output=LogOutput.STDOUT, variable_mode=VariableMode.ALL):
        only_b()
    print("backend", _agent.backend())
    """

RUNTIME = re.compile(r"^Runtime: [0-9.]+ ms", re.M)
ADDRESS = re.compile(r"0x[0-9a-f]+")


def normalised(text):
    return ADDRESS.sub("0x?", RUNTIME.sub("Runtime: ? ms", text))


class BackendsTest(TempDirTest):

    def run_with(self, backend):
        env = helpers.environ(STEPTRACE_BACKEND=backend, PRELUDE=None)
        r = helpers.python(self.tmp, "prog.py", env=env)
        self.assertEqual(r.returncode, 0, r)
        return r

    def test_monitoring_and_settrace_records_are_the_same(self):
        self.script("prog.py", textwrap.dedent(PROGRAM))
        default = self.run_with(None)
        settrace = self.run_with("settrace")
        want = ("sys.monitoring" if sys.version_info >= (3, 12)
                else "settrace")
        self.assertTrue(default.stdout.endswith("backend %s\n" % want),
                        default.stdout[-200:])
        self.assertTrue(settrace.stdout.endswith("backend settrace\n"),
                        settrace.stdout[-200:])
        a = normalised(default.stdout).splitlines()[:-1]
        b = normalised(settrace.stdout).splitlines()[:-1]
        self.assertEqual(a, b)
        text = "\n".join(a)
        # The records are there: one-line loops repeat their line, the
        # exception, the library call made no records, only_b is traced
        # by the last region only.
        self.assertIn("Exception: KeyError: 1", text)
        self.assertIn("Call: rec", text)
        self.assertNotIn("json/", text)
        self.assertEqual(text.count("::only_b -- line"), 3, text[-1500:])
        self.assertIn("::only_a -- line", text)
        self.assertIn("result (6, '1', '{\"t\": 6}', 4, [0, 0.001])", text)

    @unittest.skipUnless(sys.version_info >= (3, 12),
                         "sys.monitoring is CPython 3.12+")
    def test_no_free_tool_id_falls_back_to_settrace(self):
        # Other tools hold every id steptrace would take: it traces with
        # settrace instead, and the records are the same.
        self.script("prog.py", textwrap.dedent(PROGRAM))
        busy = "[sys.monitoring.use_tool_id(i, 'x') for i in (2, 3, 4, 5)]"
        r = helpers.python(self.tmp, "prog.py",
                           env=helpers.environ(PRELUDE=busy))
        self.assertEqual(r.returncode, 0, r)
        self.assertTrue(r.stdout.endswith("backend settrace\n"),
                        r.stdout[-200:])
        self.assertEqual(r.stderr, "")
        plain = self.run_with(None)
        self.assertEqual(normalised(r.stdout).splitlines()[:-1],
                         normalised(plain.stdout).splitlines()[:-1])
    def test_outer_region_traces_what_an_inner_one_switched_off(self):
        # The inner tracer does not trace foo, so its locations are
        # switched off meanwhile; back in the outer region foo is traced
        # again, as with settrace.
        self.script("nested.py", textwrap.dedent("""\
            from steptrace import Tracer, LogOutput, VariableMode
            def foo():
                a = 1
                return a
            def bar():
                b = 2
                return b
            outer = Tracer(log_output=LogOutput.STDOUT,
                           traceable_functions=["foo"],
                           variable_mode=VariableMode.NONE)
            inner = Tracer(log_output=LogOutput.STDOUT,
                           traceable_functions=["bar"],
                           variable_mode=VariableMode.NONE)
            with outer:
                foo()
                with inner:
                    foo()
                    bar()
                foo()
            """))
        runs = []
        for backend in (None, "settrace"):
            r = helpers.python(self.tmp, "nested.py",
                               env=helpers.environ(STEPTRACE_BACKEND=backend))
            self.assertEqual(r.returncode, 0, r)
            runs.append(normalised(r.stdout))
        self.assertEqual(runs[0], runs[1])
        lines = [l for l in runs[0].splitlines() if " -- line " in l]
        # foo twice in the outer region (before and after), bar once in
        # the inner one: 2 + 2 + 2 step records.
        self.assertEqual(sum("::foo -- line" in l for l in lines), 4, runs[0])
        self.assertEqual(sum("::bar -- line" in l for l in lines), 2, runs[0])


if __name__ == "__main__":
    unittest.main()


RETURNS = """\
    import sys
    from steptrace import Tracer, LogOutput, LogLevel, VariableMode

    def loop_end(n):
        for i in range(n):
            x = i
    def if_false(a):
        if a:
            y = 1
    def multi(a, b):
        return (a +
                b)
    def fin(a):
        try:
            return a
        finally:
            z = 2
    def gen(n):
        yield n
        w = n
    def caught():
        try:
            1 / 0
        except ZeroDivisionError:
            pass
    def raises():
        x = 1
        {}[x]
    def work():
        loop_end(2); if_false(0); multi(1, 2); fin(3); list(gen(4))
        caught()
        try:
            raises()
        except KeyError:
            pass
        with open(__file__) as f:
            pass

    if sys.argv[1] == "settrace":
        def trace(frame, event, arg):
            # A generator's yield is a "return" for settrace, not a
            # RETURN record.
            if event == "return" and frame.f_code.co_filename == __file__ \\
                    and not (frame.f_code.co_flags & 0x20 and arg is not None):
                print("%s %d" % (frame.f_code.co_name, frame.f_lineno))
            return trace
        sys.settrace(trace)
        work()
        sys.settrace(None)
    else:
        with Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                    variable_mode=VariableMode.NONE):
            work()
    """


class ReturnLineTest(TempDirTest):

    def test_return_records_name_the_line_settrace_gives(self):
        # A RETURN record's line is the frame's f_lineno that a settrace
        # function sees at the "return" event, in every interpreter (on
        # 3.12+ the agent takes the line of the frame's latest line event,
        # which is what CPython's settrace keeps there, instead of
        # computing it from the instruction).
        self.script("ret.py", textwrap.dedent(RETURNS))
        truth = helpers.python(self.tmp, "ret.py", "settrace")
        self.assertEqual(truth.returncode, 0, truth)
        want = truth.stdout.split()
        self.assertEqual(len(want), 2 * 8, truth.stdout)
        for backend in (None, "settrace"):
            r = helpers.python(self.tmp, "ret.py", "steptrace",
                               env=helpers.environ(STEPTRACE_BACKEND=backend))
            self.assertEqual(r.returncode, 0, r)
            got = []
            lines = r.stdout.splitlines()
            for i, line in enumerate(lines):
                m = re.match(r"Return: (\w+) -> ", line)
                if m is None:
                    m = re.match(r"Return: (\w+) \(raised\)", line)
                if m is None:
                    continue
                # The location line of the returning frame precedes the
                # blank line before the record's text.
                loc = re.search(r"::(\w+) -- line (\d+)$", lines[i - 2])
                self.assertIsNotNone(loc, lines[i - 3:i + 1])
                self.assertEqual(loc.group(1), m.group(1))
                got += [loc.group(1), loc.group(2)]
            self.assertEqual(got, want, (backend, r.stdout[-3000:]))
