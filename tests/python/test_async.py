"""asyncio records (docs/API.md section 8, docs/LOG-FORMAT.md section 9): with
AsyncTracer or --trace-async every workspace coroutine gets one COROUTINE START
and one COROUTINE END, each await that waits an AWAIT START / AWAIT END pair at
the user's line with the awaited expression, tasks created by traced code TASK
CREATED / TASK DONE with their real names; Async Step numbers run from 1
without gaps, interleaved with the line steps in the order things happened;
await_threshold_ms drops short awaits; the explicit API of python-steptrace
0.3.0 adds nothing twice.  Each test runs a real asyncio program in a real
interpreter; durations are checked for lower bounds only."""
import json
import os
import re
import sys
import unittest

import helpers
from helpers import TempDirTest, parse_trace

# ---- a strict parser of async records -----------------------------------
#
# One regular expression per kind of line (docs/LOG-FORMAT.md section 9 and the
# issue's exact text).  A record is its header, its Time line, the body lines
# of one kind in a fixed order, and a blank line.

ASYNC_HEADER_RE = re.compile(r"^-{21} Async Step ([1-9][0-9]*) -{21}$")
TIME_RE = re.compile(r"^Time: ([0-9]+\.[0-9]{4}) ms \| (CORO|AWAIT|TASK)$")
MS = r"([0-9]+\.[0-9]{4}) ms"
CORO_START_RE = re.compile(r"^\U0001f680 COROUTINE START: (\S+)$")
CORO_END_RE = re.compile(r"^\U0001f3c1 COROUTINE END: (\S+) (\u2713|\u2717)$")
TOTAL_DURATION_RE = re.compile(r"^   Total duration: %s$" % MS)
AWAIT_POINTS_RE = re.compile(r"^   Await points: (0|[1-9][0-9]*)$")
TOTAL_AWAIT_RE = re.compile(r"^   Total await time: %s$" % MS)
AWAIT_START_RE = re.compile(r"^\u23f3 AWAIT START: (\S+)$")
AWAIT_END_RE = re.compile(r"^\u231b AWAIT END: (\S+) (\u2713|\u2717)$")
FILE_RE = re.compile(r"^   File: (/.*):([1-9][0-9]*)$")
EXPR_RE = re.compile(r"^   Expression: (\S.*)$")
DURATION_RE = re.compile(r"^   Duration: %s$" % MS)
TASK_CREATED_RE = re.compile(r"^\U0001f4cb TASK CREATED: (\S.*)$")
TASK_DONE_RE = re.compile(r"^\U0001f4cb TASK DONE: (\S.*) (\u2713|\u2717)$")

OK = "\u2713"

# kind -> (tag on the Time line, first-line regex, following line regexes;
# an entry (regex, True) is optional).
KINDS = {
    "coro_start": ("CORO", CORO_START_RE, []),
    "coro_end": ("CORO", CORO_END_RE,
                 [TOTAL_DURATION_RE, AWAIT_POINTS_RE, TOTAL_AWAIT_RE]),
    "await_start": ("AWAIT", AWAIT_START_RE, [FILE_RE, (EXPR_RE, True)]),
    "await_end": ("AWAIT", AWAIT_END_RE, [FILE_RE, DURATION_RE]),
    "task_created": ("TASK", TASK_CREATED_RE, []),
    "task_done": ("TASK", TASK_DONE_RE, [DURATION_RE]),
}


class AsyncRecord:
    """One async record as parsed from the log."""

    def __init__(self, step, time, tag, kind):
        self.step = step
        self.time = time          # ms since the region began
        self.tag = tag            # CORO, AWAIT or TASK
        self.kind = kind          # a key of KINDS
        self.name = None          # coroutine or task name
        self.ok = None            # True: check mark, False: cross
        self.file = None
        self.line = None
        self.expr = None          # None when the record has no Expression
        self.duration = None      # ms (AWAIT END, TASK DONE)
        self.total = None         # ms (COROUTINE END)
        self.awaits = None        # Await points (COROUTINE END)
        self.await_time = None    # ms (COROUTINE END)
        self.lines = []

    def key(self):
        """A compact tuple, for comparisons."""
        if self.kind == "coro_start" or self.kind == "task_created":
            return (self.kind, self.name)
        if self.kind == "await_start":
            return (self.kind, self.name, self.line, self.expr)
        if self.kind == "await_end":
            return (self.kind, self.name, self.ok, self.line)
        return (self.kind, self.name, self.ok)

    def __repr__(self):
        return "AsyncRecord(%d, %r)" % (self.step, self.lines)


def parse_async_record(lines):
    """Parses one async record (its lines, the final blank one included)."""
    def fail(msg):
        raise AssertionError("async record: %s\n%s" % (msg, "\n".join(
            "   | %s" % l for l in lines)))

    step = int(ASYNC_HEADER_RE.match(lines[0]).group(1))
    if len(lines) < 4:
        fail("too short: header, Time, body and a blank line expected")
    m = TIME_RE.match(lines[1])
    if m is None:
        fail("expected 'Time: X.XXXX ms | CORO|AWAIT|TASK'")
    if lines[-1] != "":
        fail("not ended by a blank line")
    body = lines[2:-1]
    for kind, (tag, first, rest) in KINDS.items():
        m0 = first.match(body[0])
        if m0 is not None:
            break
    else:
        fail("unknown first body line %r" % body[0])
    if tag != m.group(2):
        fail("a %s record tagged %s" % (kind, m.group(2)))
    rec = AsyncRecord(step, float(m.group(1)), tag, kind)
    rec.lines = lines
    rec.name = m0.group(1)
    if m0.lastindex == 2:
        rec.ok = m0.group(2) == OK
    i = 1
    for entry in rest:
        regex, optional = entry if isinstance(entry, tuple) else (entry, False)
        m = regex.match(body[i]) if i < len(body) else None
        if m is None:
            if optional:
                continue
            fail("line %d of the body: expected %s" % (i + 1, regex.pattern))
        i += 1
        if regex is FILE_RE:
            rec.file, rec.line = m.group(1), int(m.group(2))
        elif regex is EXPR_RE:
            rec.expr = m.group(1)
        elif regex is DURATION_RE:
            rec.duration = float(m.group(1))
        elif regex is TOTAL_DURATION_RE:
            rec.total = float(m.group(1))
        elif regex is AWAIT_POINTS_RE:
            rec.awaits = int(m.group(1))
        elif regex is TOTAL_AWAIT_RE:
            rec.await_time = float(m.group(1))
    if i != len(body):
        fail("unexpected line %r" % body[i])
    return rec


def parse_mixed(text):
    """Parses a log of line-step records and async records, in log order:
    async records with parse_async_record, every other record with
    helpers.parse_trace (which must find exactly one record in it)."""
    if text == "":
        return []
    if not text.endswith("\n"):
        raise AssertionError("log does not end with a newline: %r"
                             % text[-200:])
    lines = text[:-1].split("\n")   # each record ends with its blank line
    starts = [k for k, l in enumerate(lines)
              if helpers.HEADER_RE.match(l) or ASYNC_HEADER_RE.match(l)
              or helpers.EVENT_HEADER_RE.match(l)]
    if not starts or starts[0] != 0:
        raise AssertionError("log does not start with a record header: %r"
                             % lines[:3])
    items = []
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        chunk = lines[a:b]
        if ASYNC_HEADER_RE.match(chunk[0]):
            items.append(parse_async_record(chunk))
        else:
            recs = parse_trace("\n".join(chunk) + "\n")
            if len(recs) != 1:
                raise AssertionError("one step record expected in %r"
                                     % chunk)
            items.append(recs[0])
    return items


def asyncs(items, *kinds, name=None, line=None):
    """The async records of items (of the given kinds, name, line)."""
    return [x for x in items if isinstance(x, AsyncRecord)
            and (not kinds or x.kind in kinds)
            and (name is None or x.name == name)
            and (line is None or x.line == line)]


def steps(items):
    return [x for x in items if not isinstance(x, AsyncRecord)]


def keys(items):
    """Compact keys of items: async keys, ("step", func, line) for steps."""
    return [x.key() if isinstance(x, AsyncRecord) else
            ("step", x.func, x.line) for x in items]


def line_of(path, marker):
    """The 1-based number of the only line of `path` containing `marker`."""
    with open(path, encoding="utf-8") as f:
        found = [k + 1 for k, l in enumerate(f) if marker in l]
    if len(found) != 1:
        raise AssertionError("%r is on lines %r of %s" % (marker, found, path))
    return found[0]


class AsyncTest(TempDirTest):

    # -- running programs --

    def run_script(self, text, name="script.py", args=(), status=0, env=None):
        helpers.write(self.path(name), text)
        r = helpers.python(self.tmp, name, *args, env=env)
        self.assertEqual(r.returncode, status, r)
        return r

    def split_result(self, out):
        """(trace text, program result) of an output whose last line is
        'RESULT <json>', written after the traced region."""
        head, sep, tail = out.rpartition("RESULT ")
        self.assertTrue(sep and tail.endswith("\n") and tail.count("\n") == 1,
                        "no final RESULT line: %r" % out[-2000:])
        return head, json.loads(tail)

    # -- checks every async log must pass --

    def check_log(self, items, threshold=False, msg=""):
        """Numbering, pairing and consistency of one region's records.

        Async Step and Step numbers each run 1..n in log order; Time never
        goes back (START records written late under a threshold excepted);
        per coroutine name every COROUTINE START is later ended once; per
        coroutine name and line every AWAIT START is later ended once
        (with a threshold, the START is immediately followed by its END);
        per task name one CREATED, then one DONE; durations consistent."""
        recs = asyncs(items)
        self.assertEqual([r.step for r in recs], list(range(1, len(recs) + 1)),
                         "Async Step numbers skip, repeat or go back %s" % msg)
        helpers.assert_steps_in_order(self, steps(items), msg)
        if not threshold:
            times = [r.time for r in recs]
            self.assertEqual(times, sorted(times),
                             "Time goes back between async records %s" % msg)
        open_coros, open_awaits, tasks = {}, {}, {}
        for k, r in enumerate(recs):
            if r.kind == "coro_start":
                open_coros[r.name] = open_coros.get(r.name, 0) + 1
            elif r.kind == "coro_end":
                self.assertGreater(open_coros.get(r.name, 0), 0,
                                   "COROUTINE END without a START %s: %r"
                                   % (msg, r))
                open_coros[r.name] -= 1
                self.assertGreaterEqual(r.total, r.await_time,
                                        "await time beyond the coroutine's "
                                        "duration %s: %r" % (msg, r))
                if r.awaits == 0:
                    self.assertEqual(r.await_time, 0.0, r)
            elif r.kind == "await_start":
                self.assertGreater(open_coros.get(r.name, 0), 0,
                                   "AWAIT START outside its coroutine's "
                                   "START and END %s: %r" % (msg, r))
                key = (r.name, r.file, r.line)
                open_awaits[key] = open_awaits.get(key, 0) + 1
                if threshold:
                    nxt = recs[k + 1] if k + 1 < len(recs) else None
                    self.assertTrue(
                        nxt is not None and nxt.kind == "await_end"
                        and (nxt.name, nxt.file, nxt.line) == key,
                        "with a threshold, AWAIT START is written together "
                        "with its END %s: %r then %r" % (msg, r, nxt))
                    self.assertLessEqual(r.time, nxt.time, (r, nxt))
            elif r.kind == "await_end":
                key = (r.name, r.file, r.line)
                self.assertGreater(open_awaits.get(key, 0), 0,
                                   "AWAIT END without a START %s: %r"
                                   % (msg, r))
                open_awaits[key] -= 1
            elif r.kind == "task_created":
                self.assertNotIn(r.name, tasks, "task %r created twice %s"
                                 % (r.name, msg))
                tasks[r.name] = "created"
            elif r.kind == "task_done":
                self.assertEqual(tasks.get(r.name), "created",
                                 "TASK DONE without (or after another) "
                                 "TASK CREATED %s: %r" % (msg, r))
                tasks[r.name] = "done"
        self.assertEqual({n: c for n, c in open_coros.items() if c}, {},
                         "coroutines started and never ended %s" % msg)
        self.assertEqual({k: c for k, c in open_awaits.items() if c}, {},
                         "AWAIT START without an END %s" % msg)
        self.assertEqual({n: s for n, s in tasks.items() if s != "done"}, {},
                         "tasks created and never done %s" % msg)

    def assert_files(self, items, path):
        """Every File: of an await and every step is the program's file."""
        self.assertEqual({r.file for r in asyncs(items, "await_start",
                                                 "await_end")} - {path},
                         set(), "awaits attributed to other files")
        self.assertEqual({s.file for s in steps(items)} - {path}, set(),
                         "line steps in other files")

    # -- one coroutine after the other: the exact records --

    SEQUENTIAL = """\
        import asyncio, json
        from steptrace import AsyncTracer, LogOutput, VariableMode

        async def work(n):
            x = n + 1
            await asyncio.sleep(0.05)
            y = x * 2
            return y

        async def quick():
            return 5

        async def main():
            r = await work(1)
            q = await quick()
            await asyncio.sleep(0)
            return r + q

        with AsyncTracer(log_output=LogOutput.FILE_STDOUT,
                         variable_mode=VariableMode.NONE):
            res = asyncio.run(main())
        print("RESULT", json.dumps(res))
        """

    def test_sequential_records_exact(self):
        # A START at the first run, one AWAIT pair per await that waits
        # (not for `await quick()`, which never suspends), END with the
        # counts; the outer coroutine's await spans the inner one's;
        # asyncio.run's own task gives no TASK record; file == stdout.
        helpers.require_collector(self)
        r = self.run_script(self.SEQUENTIAL)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, 9)
        self.assertEqual(text, self.log(), "FILE_STDOUT: file != stdout")
        items = parse_mixed(text)
        self.check_log(items)
        self.assertEqual(keys(items), [
            ("coro_start", "main"),
            ("step", "main", 14),
            ("coro_start", "work"),
            ("step", "work", 5),
            ("step", "work", 6),
            ("await_start", "work", 6, "asyncio.sleep(0.05)"),
            ("await_start", "main", 14, "work(1)"),
            ("await_end", "work", True, 6),
            ("step", "work", 7),
            ("step", "work", 8),
            ("coro_end", "work", True),
            ("await_end", "main", True, 14),
            ("step", "main", 15),
            ("coro_start", "quick"),
            ("step", "quick", 11),
            ("coro_end", "quick", True),
            ("step", "main", 16),
            ("await_start", "main", 16, "asyncio.sleep(0)"),
            ("await_end", "main", True, 16),
            ("step", "main", 17),
            ("coro_end", "main", True),
        ])
        self.assert_files(items, self.path("script.py"))
        ends = {x.name: x for x in asyncs(items, "coro_end")}
        self.assertEqual({n: e.awaits for n, e in ends.items()},
                         {"work": 1, "quick": 0, "main": 2})
        self.assertEqual(ends["quick"].await_time, 0.0)
        sleep_start, sleep_end = asyncs(items, "await_start", "await_end",
                                        name="work")
        self.assertGreaterEqual(sleep_end.duration, 45.0)
        self.assertGreaterEqual(sleep_end.time - sleep_start.time, 45.0)
        self.assertGreaterEqual(ends["work"].await_time, 45.0)
        self.assertGreaterEqual(ends["main"].total, 45.0)

    def test_await_of_a_coroutine_that_waits_twice_is_one_await(self):
        # `await two()` is one await of main's, however many times two()
        # suspends inside it: one START, one END lasting both sleeps, one
        # await point; two() has its own two.
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            async def two():
                await asyncio.sleep(0.02)  # FIRST
                await asyncio.sleep(0.02)  # SECOND
                return 1

            async def main():
                r = await two()  # OUTER
                return r

            with AsyncTracer(log_output=LogOutput.STDOUT,
                             variable_mode=VariableMode.NONE):
                res = asyncio.run(main())
            print("RESULT", json.dumps(res))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, 1)
        items = parse_mixed(text)
        self.check_log(items)
        p = self.path("script.py")
        first, second = line_of(p, "# FIRST"), line_of(p, "# SECOND")
        self.assertEqual(
            keys(asyncs(items, "await_start", "await_end", name="two")),
            [("await_start", "two", first, "asyncio.sleep(0.02)"),
             ("await_end", "two", True, first),
             ("await_start", "two", second, "asyncio.sleep(0.02)"),
             ("await_end", "two", True, second)])
        outer = line_of(p, "# OUTER")
        self.assertEqual(
            keys(asyncs(items, "await_start", "await_end", name="main")),
            [("await_start", "main", outer, "two()"),
             ("await_end", "main", True, outer)])
        self.assertGreaterEqual(
            asyncs(items, "await_end", name="main")[-1].duration, 35.0)
        self.assertEqual([(e.name, e.awaits) for e in
                          asyncs(items, "coro_end")],
                         [("two", 2), ("main", 1)])

    # -- many coroutines at once --

    GATHER = """\
        import asyncio, json, sys
        from steptrace import AsyncTracer, LogOutput, VariableMode

        async def fetch(i):
            await asyncio.sleep(0.05)  # LONG
            await asyncio.sleep(0)  # SHORT
            return i * i  # RETURN

        async def main(n):
            coros = [fetch(i) for i in range(n)]
            results = await asyncio.gather(*coros)  # GATHER
            return results

        with AsyncTracer(log_output=LogOutput.%s,
                         variable_mode=VariableMode.NONE,
                         await_threshold_ms=float(sys.argv[2])):
            res = asyncio.run(main(int(sys.argv[1])))
        print("RESULT", json.dumps(res))
        """

    def gather_lines(self):
        p = self.path("script.py")
        return {k: line_of(p, "# " + k)
                for k in ("LONG", "SHORT", "RETURN", "GATHER")}

    def test_gather_of_many_coroutines(self):
        # N coroutines through gather: N STARTs and N ENDs, 2N await pairs
        # at the user's lines with their expressions, N tasks with their
        # real names; each record next to the line step it belongs to.
        helpers.require_collector(self)
        n = 25
        r = self.run_script(self.GATHER % "FILE_STDOUT", args=(str(n), "0"))
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, [i * i for i in range(n)])
        self.assertEqual(text, self.log(), "FILE_STDOUT: file != stdout")
        items = parse_mixed(text)
        self.check_log(items)
        self.assert_files(items, self.path("script.py"))
        ln = self.gather_lines()
        self.assertEqual(len(asyncs(items, "coro_start", name="fetch")), n)
        ends = asyncs(items, "coro_end", name="fetch")
        self.assertEqual([(e.ok, e.awaits) for e in ends], [(True, 2)] * n)
        for e in ends:
            self.assertGreaterEqual(e.await_time, 45.0, e)
        for key, expr in (("LONG", "asyncio.sleep(0.05)"),
                          ("SHORT", "asyncio.sleep(0)")):
            starts = asyncs(items, "await_start", line=ln[key])
            done = asyncs(items, "await_end", line=ln[key])
            self.assertEqual([(s.name, s.expr) for s in starts],
                             [("fetch", expr)] * n, key)
            self.assertEqual([(e.name, e.ok) for e in done],
                             [("fetch", True)] * n, key)
            if key == "LONG":
                self.assertGreaterEqual(min(e.duration for e in done), 45.0)
        # main: one coroutine, one await (the gather) at its line.
        self.assertEqual(keys(asyncs(items, name="main")), [
            ("coro_start", "main"),
            ("await_start", "main", ln["GATHER"], "asyncio.gather(*coros)"),
            ("await_end", "main", True, ln["GATHER"]),
            ("coro_end", "main", True)])
        # Tasks: N distinct names, each created then done (check mark).
        created = asyncs(items, "task_created")
        self.assertEqual(len({t.name for t in created}), n)
        for t in created:
            self.assertRegex(t.name, r"^Task-[0-9]+$")
        done = asyncs(items, "task_done")
        self.assertEqual(sorted((t.name, t.ok) for t in done),
                         sorted((t.name, True) for t in created))
        self.assertGreaterEqual(min(t.duration for t in done), 45.0)
        # Interleaving: the tasks are created while main runs the gather
        # line (after its step, before its suspension); a coroutine's START
        # comes right before its first line step, an AWAIT START right
        # after the step of its line, an AWAIT END right before the step of
        # the line that follows the await.
        g_step = [k for k, x in enumerate(items) if not isinstance(
            x, AsyncRecord) and (x.func, x.line) == ("main", ln["GATHER"])]
        g_await = items.index(asyncs(items, "await_start", name="main")[0])
        self.assertEqual(len(g_step), 1)
        self.assertEqual(keys(items[g_step[0] + 1:g_await]),
                         [("task_created", t.name) for t in created])
        after = {ln["LONG"]: ln["SHORT"], ln["SHORT"]: ln["RETURN"]}
        for k, x in enumerate(items):
            if not isinstance(x, AsyncRecord) or x.name != "fetch":
                continue
            if x.kind == "coro_start":
                self.assertEqual(keys(items[k + 1:k + 2]),
                                 [("step", "fetch", ln["LONG"])], k)
            elif x.kind == "await_start":
                self.assertEqual(keys(items[k - 1:k]),
                                 [("step", "fetch", x.line)], k)
            elif x.kind == "await_end":
                self.assertEqual(keys(items[k + 1:k + 2]),
                                 [("step", "fetch", after[x.line])], k)
            elif x.kind == "coro_end":
                self.assertEqual(keys(items[k - 1:k]),
                                 [("step", "fetch", ln["RETURN"])], k)

    def test_threshold_drops_short_awaits(self):
        # await_threshold_ms=20: the 50 ms awaits are written, START and END
        # together; the sleep(0) ones not at all; Await points still count
        # every await.  FILE_STDERR: the file equals stderr.
        helpers.require_collector(self)
        n = 10
        r = self.run_script(self.GATHER % "FILE_STDERR", args=(str(n), "20"))
        _, result = self.split_result(r.stdout)
        self.assertEqual(result, [i * i for i in range(n)])
        self.assertEqual(r.stderr, self.log(), "FILE_STDERR: file != stderr")
        items = parse_mixed(r.stderr)
        self.check_log(items, threshold=True)
        ln = self.gather_lines()
        self.assertEqual(asyncs(items, line=ln["SHORT"]), [],
                         "awaits under the threshold are written")
        starts = asyncs(items, "await_start", line=ln["LONG"])
        done = asyncs(items, "await_end", line=ln["LONG"])
        self.assertEqual([(s.name, s.expr) for s in starts],
                         [("fetch", "asyncio.sleep(0.05)")] * n)
        self.assertEqual(len(done), n)
        for e in done:
            self.assertGreaterEqual(e.duration, 45.0, e)
        self.assertEqual(len(asyncs(items, "await_start", "await_end",
                                    name="main", line=ln["GATHER"])), 2)
        ends = asyncs(items, "coro_end")
        self.assertEqual(sorted((e.name, e.awaits) for e in ends),
                         [("fetch", 2)] * n + [("main", 1)])

    # -- exceptions, cancellation, timeouts --

    def test_exception_ends_with_cross_and_passes_through(self):
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            class Boom(Exception):
                pass

            ERR = Boom("bad", 42)

            async def boom():
                await asyncio.sleep(0.01)
                raise ERR

            async def main():
                try:
                    await boom()  # CAUGHT
                except Boom as e:
                    caught = e is ERR
                await boom()  # UNCAUGHT
                return "not reached"

            out = {}
            with AsyncTracer(log_output=LogOutput.STDOUT,
                             variable_mode=VariableMode.NONE):
                try:
                    asyncio.run(main())
                except Boom as e:
                    out = {"same": e is ERR, "args": list(e.args)}
            print("RESULT", json.dumps(out))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, {"same": True, "args": ["bad", 42]})
        items = parse_mixed(text)
        self.check_log(items)
        p = self.path("script.py")
        caught, uncaught = line_of(p, "# CAUGHT"), line_of(p, "# UNCAUGHT")
        self.assertEqual([e.key() for e in asyncs(items, "coro_end")],
                         [("coro_end", "boom", False),
                          ("coro_end", "boom", False),
                          ("coro_end", "main", False)])
        self.assertEqual(
            [(e.name, e.line, e.ok) for e in asyncs(items, "await_end")],
            [("boom", line_of(p, "asyncio.sleep(0.01)"), True),
             ("main", caught, False),
             ("boom", line_of(p, "asyncio.sleep(0.01)"), True),
             ("main", uncaught, False)])

    def test_cancelled_task(self):
        # A task cancelled while it waits: its await and coroutine end with
        # a cross, TASK DONE too, the awaiting coroutine's await raises; a
        # task cancelled before it ever ran has no coroutine records.
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            async def slow():
                await asyncio.sleep(10)

            async def never():
                return 1

            async def main():
                t = asyncio.create_task(slow(), name="sleeper")
                u = asyncio.create_task(never(), name="unborn")
                u.cancel()
                await asyncio.sleep(0.02)
                t.cancel()
                try:
                    await t  # AWAIT T
                except asyncio.CancelledError:
                    return [t.cancelled(), u.cancelled()]

            with AsyncTracer(log_output=LogOutput.STDOUT,
                             variable_mode=VariableMode.NONE):
                res = asyncio.run(main())
            print("RESULT", json.dumps(res))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, [True, True])
        items = parse_mixed(text)
        self.check_log(items)
        p = self.path("script.py")
        self.assertEqual(keys(asyncs(items, "task_created", "task_done")), [
            ("task_created", "sleeper"), ("task_created", "unborn"),
            ("task_done", "unborn", False), ("task_done", "sleeper", False)])
        self.assertEqual(keys(asyncs(items, name="slow")), [
            ("coro_start", "slow"),
            ("await_start", "slow", line_of(p, "sleep(10)"),
             "asyncio.sleep(10)"),
            ("await_end", "slow", False, line_of(p, "sleep(10)")),
            ("coro_end", "slow", False)])
        # A task cancelled before its first step still has its coroutine
        # thrown into: nothing, or a START and an END with a cross.
        self.assertIn(keys(asyncs(items, name="never")),
                      ([], [("coro_start", "never"),
                            ("coro_end", "never", False)]))
        self.assertEqual(
            [(a.ok, a.line) for a in asyncs(items, "await_end", name="main")],
            [(True, line_of(p, "sleep(0.02)")),
             (False, line_of(p, "# AWAIT T"))])
        self.assertEqual(keys(asyncs(items, "coro_end", name="main")),
                         [("coro_end", "main", True)])
        # The task is done after its coroutine ended.
        order = keys(asyncs(items))
        self.assertLess(order.index(("coro_end", "slow", False)),
                        order.index(("task_done", "sleeper", False)))

    WAIT_FOR = """\
        import asyncio, json
        from steptrace import AsyncTracer, LogOutput, VariableMode

        async def waiter():
            try:
                await asyncio.wait_for(asyncio.sleep(5), timeout=0.03)
            except asyncio.TimeoutError:
                return "timeout"

        async def main():
            r = await waiter()  # CALLER
            return r

        with AsyncTracer(log_output=LogOutput.STDOUT,
                         variable_mode=VariableMode.NONE):
            res = asyncio.run(main())
        print("RESULT", json.dumps(res))
        """

    def wait_for_items(self):
        r = self.run_script(self.WAIT_FOR)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, "timeout")
        items = parse_mixed(text)
        self.check_log(items)
        return items

    def test_wait_for_timeout_is_one_failed_await(self):
        # One await of wait_for, which times out: one START, one END with a
        # cross, lasting about the timeout; the coroutine catches the
        # TimeoutError and ends well.
        items = self.wait_for_items()
        line = line_of(self.path("script.py"), "wait_for(")
        self.assertEqual(
            keys(asyncs(items, "await_start", "await_end", name="waiter")),
            [("await_start", "waiter", line,
              "asyncio.wait_for(asyncio.sleep(5), timeout=0.03)"),
             ("await_end", "waiter", False, line)])
        end = asyncs(items, "await_end", name="waiter")[-1]
        self.assertGreaterEqual(end.duration, 25.0)
        self.assertEqual([(e.ok, e.awaits) for e in
                          asyncs(items, "coro_end", name="waiter")],
                         [(True, 1)])

    def test_wait_for_timeout_caller_await_went_well(self):
        # The caller's `await waiter()` got a value: one await, check mark,
        # however the timeout was delivered inside it.
        items = self.wait_for_items()
        line = line_of(self.path("script.py"), "# CALLER")
        self.assertEqual(
            keys(asyncs(items, "await_start", "await_end", name="main")),
            [("await_start", "main", line, "waiter()"),
             ("await_end", "main", True, line)])
        self.assertEqual([(e.ok, e.awaits) for e in
                          asyncs(items, "coro_end", name="main")],
                         [(True, 1)])

    # -- async with, async for, async generators --

    def test_async_with_and_async_for(self):
        # __aenter__/__aexit__ are coroutines of their own; an async
        # generator is not a coroutine: the consumer waits at its
        # `async for` line, once per item that waited; breaking out of it
        # and asyncio.run's clean-up of it (tasks made by asyncio) give no
        # TASK records and change nothing in the program.
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            CLEANED = []

            class Resource:
                async def __aenter__(self):
                    await asyncio.sleep(0.01)
                    return self

                async def __aexit__(self, *exc):
                    await asyncio.sleep(0.01)
                    return False

            async def ticks(n):
                try:
                    for i in range(n):
                        await asyncio.sleep(0.01)
                        yield i
                finally:
                    CLEANED.append(n)

            async def main():
                got = []
                async with Resource() as res:
                    async for i in ticks(3):  # FOR 3
                        got.append(i)
                async for j in ticks(100):  # FOR 100
                    if j == 1:
                        break
                return got, j

            with AsyncTracer(log_output=LogOutput.STDOUT,
                             variable_mode=VariableMode.NONE):
                res = asyncio.run(main())
            print("RESULT", json.dumps([res, CLEANED]))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, [[[0, 1, 2], 1], [3, 100]])
        items = parse_mixed(text)
        self.check_log(items)
        p = self.path("script.py")
        self.assert_files(items, p)
        self.assertEqual(
            sorted(x.name for x in asyncs(items, "coro_start")),
            ["__aenter__", "__aexit__", "main"])
        for name in ("__aenter__", "__aexit__"):
            self.assertEqual([(e.ok, e.awaits) for e in
                              asyncs(items, "coro_end", name=name)],
                             [(True, 1)], name)
        for marker, count in (("# FOR 3", 3), ("# FOR 100", 2)):
            line = line_of(p, marker)
            done = asyncs(items, "await_end", name="main", line=line)
            self.assertEqual([e.ok for e in done], [True] * count, marker)
            for e in done:
                self.assertGreaterEqual(e.duration, 8.0, e)
        self.assertIn("ticks", {s.func for s in steps(items)})
        self.assertEqual(asyncs(items, "task_created", "task_done"), [],
                         "tasks made by asyncio itself were recorded")

    # -- tasks --

    def test_task_names_and_asyncio_internal_tasks(self):
        # Tasks created by traced code, however: their real names, one
        # CREATED and one DONE each; a task left running is cancelled by
        # asyncio.run (cross); asyncio.run's own task and the tasks it makes
        # to close a suspended async generator give no TASK record.
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            async def job(tag, delay):
                await asyncio.sleep(delay)
                return tag

            async def forever():
                while True:
                    yield 1

            AG = forever()

            async def main():
                t = asyncio.create_task(job("f", 0.05), name="fetcher")
                f = asyncio.ensure_future(job("e", 0.01))
                lt = asyncio.get_running_loop().create_task(job("l", 0.01),
                                                            name="via-loop")
                left = asyncio.create_task(job("x", 10), name="leftover")
                r = await asyncio.gather(t, f, lt)
                await AG.__anext__()
                return r, f.get_name()

            with AsyncTracer(log_output=LogOutput.STDOUT,
                             variable_mode=VariableMode.NONE):
                res = asyncio.run(main())
            print("RESULT", json.dumps(res))
            """)
        text, result = self.split_result(r.stdout)
        (values, ensured) = result
        self.assertEqual(values, ["f", "e", "l"])
        self.assertRegex(ensured, r"^Task-[0-9]+$")
        items = parse_mixed(text)
        self.check_log(items)
        self.assertEqual([t.name for t in asyncs(items, "task_created")],
                         ["fetcher", ensured, "via-loop", "leftover"])
        done = {t.name: t for t in asyncs(items, "task_done")}
        self.assertEqual({n: t.ok for n, t in done.items()},
                         {"fetcher": True, ensured: True, "via-loop": True,
                          "leftover": False})
        self.assertGreaterEqual(done["fetcher"].duration, 45.0)
        self.assertEqual(sorted(e.ok for e in asyncs(items, "coro_end",
                                                     name="job")),
                         [False, True, True, True])

    @unittest.skipUnless(sys.version_info >= (3, 11), "TaskGroup is 3.11+")
    def test_taskgroup(self):
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            async def child(i, delay):
                await asyncio.sleep(delay)
                if i < 0:
                    raise KeyError(i)
                return i

            async def main():
                async with asyncio.TaskGroup() as tg:
                    a = tg.create_task(child(1, 0.05), name="tg-one")
                    b = tg.create_task(child(2, 0.01))
                failed = []
                try:
                    async with asyncio.TaskGroup() as tg2:
                        tg2.create_task(child(-1, 0.01), name="tg-bad")
                except* KeyError as eg:
                    failed = [repr(e) for e in eg.exceptions]
                return a.result(), b.result(), b.get_name(), failed

            with AsyncTracer(log_output=LogOutput.STDOUT,
                             variable_mode=VariableMode.NONE):
                res = asyncio.run(main())
            print("RESULT", json.dumps(res))
            """)
        text, (one, two, b_name, failed) = self.split_result(r.stdout)
        self.assertEqual((one, two, failed), (1, 2, ["KeyError(-1)"]))
        items = parse_mixed(text)
        self.assertEqual([t.name for t in asyncs(items, "task_created")],
                         ["tg-one", b_name, "tg-bad"],
                         "TASK CREATED does not carry the task's name")
        self.check_log(items)
        done = {t.name: t for t in asyncs(items, "task_done")}
        self.assertEqual({n: t.ok for n, t in done.items()},
                         {"tg-one": True, b_name: True, "tg-bad": False})
        self.assertGreaterEqual(done["tg-one"].duration, 45.0)
        self.assertEqual(sorted(e.ok for e in asyncs(items, "coro_end",
                                                     name="child")),
                         [False, True, True])

    def test_trace_tasks_false(self):
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            async def job():
                await asyncio.sleep(0.01)
                return 3

            async def main():
                return await asyncio.create_task(job(), name="quiet")

            with AsyncTracer(log_output=LogOutput.STDOUT, trace_tasks=False,
                             variable_mode=VariableMode.NONE):
                res = asyncio.run(main())
            print("RESULT", json.dumps(res))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, 3)
        items = parse_mixed(text)
        self.check_log(items)
        self.assertEqual(asyncs(items, "task_created", "task_done"), [])
        self.assertEqual(sorted(x.name for x in asyncs(items, "coro_end")),
                         ["job", "main"])

    # -- the CLI --

    CLI_SCRIPT = """\
        import asyncio, sys

        async def fetch(i):
            await asyncio.sleep(0.05)  # LONG
            await asyncio.sleep(0)  # SHORT
            if i < 0:
                raise ValueError("negative")
            return i

        async def main(k):
            return await asyncio.gather(fetch(1), fetch(k))

        print("result", asyncio.run(main(int(sys.argv[1]))))
        """

    def test_cli_trace_async_and_threshold(self):
        helpers.require_collector(self)
        helpers.write(self.path("app.py"), self.CLI_SCRIPT)
        p = self.path("app.py")
        long_, short = line_of(p, "# LONG"), line_of(p, "# SHORT")
        runs = {
            "plain": (), "async": ("--trace-async",),
            "threshold": ("--trace-async", "--async-threshold-ms", "20")}
        for what, opts in runs.items():
            log_dir = "logs-" + what
            r = helpers.steptrace_run(self.tmp, *opts, "--log-dir", log_dir,
                                      "--variable-mode", "none", "app.py",
                                      "2")
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (0, "result [1, 2]\n", ""), (what, r))
            items = parse_mixed(self.log(log_dir=log_dir))
            self.check_log(items, threshold=what == "threshold", msg=what)
            self.assert_files(items, p)
            if what == "plain":
                self.assertEqual(asyncs(items), [], "async records without "
                                 "--trace-async")
                self.assertIn("fetch", {s.func for s in steps(items)})
                continue
            self.assertEqual(sorted(e.key() for e in asyncs(items,
                                                            "coro_end")),
                             [("coro_end", "fetch", True)] * 2
                             + [("coro_end", "main", True)])
            self.assertEqual([e.awaits for e in asyncs(items, "coro_end",
                                                       name="fetch")],
                             [2, 2])
            self.assertEqual(len(asyncs(items, "await_end", line=long_)), 2)
            self.assertEqual(len(asyncs(items, "await_end", line=short)),
                             0 if what == "threshold" else 2, what)
            self.assertEqual(len(asyncs(items, "task_created")), 2)
        # An exception leaving asyncio.run: the usual traceback and exit
        # status, the coroutines that raised end with a cross.
        r = helpers.steptrace_run(self.tmp, "--trace-async", "--log-dir",
                                  "logs-fail", "app.py", "-1")
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stdout, "")
        self.assertTrue(r.stderr.startswith("Traceback (most recent call "
                                            "last):\n"), r)
        self.assertTrue(r.stderr.endswith("ValueError: negative\n"), r)
        items = parse_mixed(self.log(log_dir="logs-fail"))
        self.check_log(items)
        self.assertEqual(sorted(e.key() for e in asyncs(items, "coro_end")),
                         [("coro_end", "fetch", False),
                          ("coro_end", "fetch", True),
                          ("coro_end", "main", False)])

    # -- the explicit API of 0.3.0 --

    def test_run_async_trace_await_traced_sleep_gather(self):
        # The explicit helpers add nothing twice: one START and one END per
        # coroutine; trace_await's and traced_sleep's text is the
        # Expression; nothing is attributed to the steptrace package.
        r = self.run_script("""\
            import asyncio, json
            from steptrace import (AsyncTracer, LogOutput, VariableMode,
                                   traced_sleep)

            tracer = AsyncTracer(log_output=LogOutput.STDOUT,
                                 variable_mode=VariableMode.NONE)

            async def fetch(i):
                await asyncio.sleep(0.01)
                return i

            async def main():
                a = await tracer.gather(fetch(1), fetch(2))  # GATHER
                b = await tracer.trace_await(asyncio.sleep(0.01, 7), "nap(7)")
                c = await traced_sleep(tracer, 0.01)  # TRACED_SLEEP
                return a, b, c

            res = asyncio.run(tracer.run_async(main()))
            print("RESULT", json.dumps(res))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, [[1, 2], 7, None])
        items = parse_mixed(text)
        self.check_log(items)
        p = self.path("script.py")
        self.assert_files(items, p)
        self.assertEqual(sorted(x.key() for x in asyncs(items, "coro_start")),
                         [("coro_start", "fetch")] * 2
                         + [("coro_start", "main")])
        self.assertEqual(sorted(x.key() for x in asyncs(items, "coro_end")),
                         [("coro_end", "fetch", True)] * 2
                         + [("coro_end", "main", True)])
        ta = line_of(p, '"nap(7)"')
        self.assertEqual(
            keys(asyncs(items, "await_start", name="main")),
            [("await_start", "main", line_of(p, "# GATHER"),
              "tracer.gather(fetch(1), fetch(2))"),
             ("await_start", "main", ta, "nap(7)"),
             ("await_start", "main", line_of(p, "# TRACED_SLEEP"),
              "sleep(0.01)")])
        for e in asyncs(items, "await_end", name="main"):
            self.assertTrue(e.ok, e)
            self.assertGreaterEqual(e.duration, 8.0, e)
        self.assertEqual([e.awaits for e in asyncs(items, "coro_end",
                                                   name="main")], [3])

    def test_wrap_task_and_gather_record_their_tasks(self):
        # wrap_task(coro, name) is create_task with that name (the
        # coroutine's name without one); the tasks of the tracer's gather
        # are recorded like asyncio.gather's.
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            tracer = AsyncTracer(log_output=LogOutput.STDOUT,
                                 variable_mode=VariableMode.NONE)

            async def fetch(i):
                await asyncio.sleep(0.01)
                return i

            async def main():
                t = tracer.wrap_task(fetch(3), name="wrapped")
                u = tracer.wrap_task(fetch(4))
                g = await tracer.gather(fetch(1), fetch(2))
                return [await t, await u, g, t.get_name(), u.get_name()]

            with tracer:
                res = asyncio.run(main())
            print("RESULT", json.dumps(res))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, [3, 4, [1, 2], "wrapped", "fetch"])
        items = parse_mixed(text)
        self.check_log(items)
        self.assertEqual(len(asyncs(items, "coro_start", name="fetch")), 4)
        created = [t.name for t in asyncs(items, "task_created")]
        self.assertEqual(created[:2], ["wrapped", "fetch"],
                         "wrap_task's tasks are not recorded")
        self.assertEqual(len(created), 4, "the tracer's gather's tasks are "
                         "not recorded")
        self.assertEqual(sorted((t.name, t.ok) for t in
                                asyncs(items, "task_done")),
                         sorted((n, True) for n in created))

    def test_trace_async_decorator(self):
        # Each call is a region (Async Step and Step from 1); the function
        # keeps its metadata; results and exceptions pass through.
        r = self.run_script("""\
            import asyncio, inspect, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            tracer = AsyncTracer(log_output=LogOutput.STDOUT,
                                 variable_mode=VariableMode.NONE)

            async def helper(x):
                await asyncio.sleep(0.01)
                return x + 1

            @tracer.trace_async
            async def deco(x):
                "Doc."
                y = await helper(x)
                if y > 10:
                    raise LookupError(y)
                return y * 2

            async def main():
                a = await deco(1)
                try:
                    await deco(20)
                except LookupError as e:
                    b = e.args
                return a, b

            meta = [deco.__name__, deco.__doc__,
                    inspect.iscoroutinefunction(deco)]
            res = asyncio.run(main())
            print("RESULT", json.dumps([res, meta]))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, [[4, [21]], ["deco", "Doc.", True]])
        items = parse_mixed(text)
        bounds = [k for k, x in enumerate(items)
                  if isinstance(x, AsyncRecord) and x.step == 1] + [len(items)]
        self.assertEqual(len(bounds), 3, "two calls, two regions")
        regions = [items[a:b] for a, b in zip(bounds, bounds[1:])]
        self.assertEqual(items[:bounds[0]], [])
        for region, ok in zip(regions, (True, False)):
            self.check_log(region)
            self.assertEqual(
                sorted(x.key() for x in asyncs(region, "coro_start",
                                               "coro_end")),
                [("coro_end", "deco", ok), ("coro_end", "helper", True),
                 ("coro_start", "deco"), ("coro_start", "helper")])
            self.assertEqual(asyncs(region, name="main"), [])

    def test_async_context_tracer(self):
        # `async with AsyncContextTracer(tracer):` traces the block's
        # callees; the coroutine holding the block gives no records (as the
        # frame holding a `with Tracer()`).
        r = self.run_script("""\
            import asyncio, json
            from steptrace import (AsyncTracer, AsyncContextTracer,
                                   LogOutput, VariableMode)

            tracer = AsyncTracer(log_output=LogOutput.STDOUT,
                                 variable_mode=VariableMode.NONE)

            async def fetch(x):
                await asyncio.sleep(0.01)
                return x

            async def outer():
                async with AsyncContextTracer(tracer) as t:
                    r = await fetch("a")
                    s = await fetch("b")
                return [r, s, t is tracer]

            res = asyncio.run(outer())
            print("RESULT", json.dumps(res))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, ["a", "b", True])
        items = parse_mixed(text)
        self.assertEqual([x for x in items if (getattr(x, "name", None)
                                               or x.func) == "outer"], [],
                         "records of the coroutine holding the async with")
        self.check_log(items)
        self.assertEqual(
            [x.key() for x in asyncs(items, "coro_start", "coro_end")],
            [("coro_start", "fetch"), ("coro_end", "fetch", True)] * 2)

    def test_run_async_awaited_by_a_coroutine(self):
        # python-steptrace 0.3.0's own demo: run_async awaited from a
        # coroutine.  The region is run_async's coroutine; the awaiting
        # one, resumed while it is active, gets no records.
        r = self.run_script("""\
            import asyncio, json
            from steptrace import AsyncTracer, LogOutput, VariableMode

            tracer = AsyncTracer(log_output=LogOutput.STDOUT,
                                 variable_mode=VariableMode.NONE)

            async def fetch_data(url, delay):
                await asyncio.sleep(delay)
                return url

            async def task_demo():
                r1 = await fetch_data("u1", 0.02)
                r2 = await asyncio.gather(fetch_data("u2", 0.01),
                                          fetch_data("u3", 0.01))
                return [r1, r2]

            async def run_tasks():
                return await tracer.run_async(task_demo())

            res = asyncio.run(run_tasks())
            print("RESULT", json.dumps(res))
            """)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, ["u1", ["u2", "u3"]])
        items = parse_mixed(text)
        self.assertEqual(asyncs(items, name="run_tasks"), [],
                         "records of the coroutine awaiting run_async")
        self.check_log(items)
        self.assertEqual(
            sorted(x.key() for x in asyncs(items, "coro_end")),
            [("coro_end", "fetch_data", True)] * 3
            + [("coro_end", "task_demo", True)])

    # -- workspace, info classes, plain Tracer, levels --

    def test_workspace_is_the_callers_directory(self):
        # AsyncTracer created in app/main.py, run from another directory:
        # app/ is traced (work.py too), lib/ (outside it) and steptrace's
        # own files are not, even when traced code calls into them.
        helpers.write(self.path("lib", "ext.py"), """\
            import asyncio

            async def helper(x):
                await asyncio.sleep(0.01)
                return x * 3
            """)
        helpers.write(self.path("app", "work.py"), """\
            import asyncio
            import ext

            async def job(x):
                y = await ext.helper(x)
                return y + 1
            """)
        helpers.write(self.path("app", "main.py"), """\
            import asyncio, json, os, sys
            sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(
                os.path.abspath(__file__)), "..", "lib")))
            from steptrace import (AsyncTracer, LogOutput, VariableMode,
                                   traced_sleep)
            import work

            async def main():
                await traced_sleep(tracer, 0.01)
                return await work.job(2)

            tracer = AsyncTracer(log_output=LogOutput.STDOUT,
                                 variable_mode=VariableMode.NONE)
            with tracer:
                res = asyncio.run(main())
            print("RESULT", json.dumps(res))
            """)
        os.mkdir(self.path("elsewhere"))
        r = helpers.python(self.path("elsewhere"), self.path("app", "main.py"))
        self.assertEqual(r.returncode, 0, r)
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, 7)
        items = parse_mixed(text)
        self.check_log(items)
        self.assertEqual(sorted(x.key() for x in asyncs(items, "coro_end")),
                         [("coro_end", "job", True),
                          ("coro_end", "main", True)])
        app = self.path("app") + os.sep
        files = {s.file for s in steps(items)} | {
            a.file for a in asyncs(items, "await_start", "await_end")}
        self.assertEqual({f for f in files if not f.startswith(app)}, set())
        self.assertEqual(files, {self.path("app", "main.py"),
                                 self.path("app", "work.py")})
        self.assertEqual(
            [(a.name, a.line, a.expr) for a in asyncs(items, "await_start")],
            [("main", 9, "sleep(0.01)"), ("job", 5, "ext.helper(x)"),
             ("main", 10, "work.job(2)")])

    def test_info_classes(self):
        r = self.run_script("""\
            import json, time
            from steptrace.async_tracer import AwaitPointInfo, CoroutineInfo
            from steptrace import AsyncTracer

            out = {}
            before = time.perf_counter()
            a = AwaitPointInfo("coro", "/x/file.py", 12)
            out["await_fields"] = [a.coro_name, a.filename, a.lineno,
                                   a.awaited_expr, a.end_time, a.result,
                                   a.exception]
            out["await_start"] = before <= a.start_time <= time.perf_counter()
            d1 = a.duration_ms
            time.sleep(0.02)
            d2 = a.duration_ms
            out["await_running"] = [d1 >= 0, d2 >= d1 + 15]
            err = KeyError("k")
            a.complete(result=5, exception=err)
            fixed = a.duration_ms
            time.sleep(0.01)
            out["await_done"] = [a.result, a.exception is err,
                                 a.end_time >= a.start_time,
                                 a.duration_ms == fixed, fixed >= 15]
            b = AwaitPointInfo("c", "f.py", 1, awaited_expr="sleep(1)")
            out["expr"] = b.awaited_expr

            coro_obj = object()
            c = CoroutineInfo("main", coro_obj)
            out["coro_fields"] = [c.name, c.coro is coro_obj,
                                  list(c.await_points),
                                  c.end_time, c.result, c.exception]
            c.await_points.append(a)
            time.sleep(0.01)
            c.complete(result="r")
            out["coro_done"] = [c.result, c.exception, c.duration_ms >= 8,
                                c.end_time >= c.start_time,
                                c.await_points == [a]]
            bad = []
            for v in (-1, "x", float("nan"), float("inf")):
                try:
                    AsyncTracer(await_threshold_ms=v)
                except ValueError:
                    bad.append(True)
            out["bad_threshold"] = bad
            print("RESULT", json.dumps(out))
            """)
        _, out = self.split_result(r.stdout)
        self.assertEqual(out, {
            "await_fields": ["coro", "/x/file.py", 12, "", None, None, None],
            "await_start": True,
            "await_running": [True, True],
            "await_done": [5, True, True, True, True],
            "expr": "sleep(1)",
            "coro_fields": ["main", True, [], None, None, None],
            "coro_done": ["r", None, True, True, True],
            "bad_threshold": [True] * 4,
        })

    def test_plain_tracer_writes_no_async_records(self):
        r = self.run_script(self.SEQUENTIAL.replace(
            "AsyncTracer", "Tracer").replace("FILE_STDOUT", "STDOUT"))
        text, result = self.split_result(r.stdout)
        self.assertEqual(result, 9)
        self.assertNotIn("Async Step", text)
        recs = parse_trace(text)
        helpers.assert_steps_in_order(self, recs)
        self.assertEqual({x.func for x in recs}, {"main", "work", "quick"})

    def test_levels(self):
        # Async records at INFO, WARNING and DEBUG (the same ones); none at
        # ERROR (exception records only) or SILENT (nothing, no file).
        script = self.SEQUENTIAL.replace(
            "variable_mode=VariableMode.NONE",
            "variable_mode=VariableMode.NONE,\n"
            "                 log_level=LogLevel.%s").replace(
            "VariableMode\n", "VariableMode, LogLevel\n").replace(
            "FILE_STDOUT", "STDOUT")
        seen = {}
        for level in ("INFO", "WARNING", "DEBUG", "ERROR", "SILENT"):
            r = self.run_script(script % level)
            text, result = self.split_result(r.stdout)
            self.assertEqual(result, 9, level)
            if level == "SILENT":
                self.assertEqual(text, "")
                self.assertFalse(os.path.exists(self.path(".tracer")))
                continue
            items = parse_mixed(text)
            self.check_log(items, msg=level)
            seen[level] = [x.key() for x in asyncs(items)]
            if level == "DEBUG":
                self.assertIn("call", {x.kind for x in steps(items)})
        self.assertEqual(len(seen["INFO"]), 12)
        self.assertEqual(seen["WARNING"], seen["INFO"])
        self.assertEqual(seen["DEBUG"], seen["INFO"])
        self.assertEqual(seen["ERROR"], [])


if __name__ == "__main__":
    unittest.main()
