"""`steptrace export` and `steptrace stats` (docs/STEP-STORE.md sections 5
and 6) on stores of real runs: jsonl holds every step and event with the
state `show --variable-mode ALL` shows; the perfetto JSON is well formed
(every event with ph, ts, pid, tid; slices nest per thread; names; async
slices matched); stats counts equal the steps per line.
"""
import collections
import decimal
import json
import os
import re
import signal

import helpers
from helpers import PYTHON, TempDirTest, dedent

# Threads, a generator, exceptions caught and one that ends a function,
# nested calls, a method, globals and locals changing.
PROGRAM = dedent("""
    import threading

    TOTAL = {"n": 0}

    class Box:
        def __init__(self, v):
            self.v = v

        def grow(self, k):
            self.v += k
            return self.v

    def gen(n):
        for i in range(n):
            yield i * 2

    def risky(x):
        if x > 2:
            raise ValueError("x is %d" % x)
        return x

    def work(k):
        acc = []
        box = Box(k)
        for v in gen(4):
            acc.append(v + k)
            box.grow(v)
            try:
                risky(v)
            except ValueError as e:
                msg = str(e)
        TOTAL["n"] += len(acc)
        return acc

    threads = [threading.Thread(target=work, args=(j,), name="w%d" % j)
               for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    work(10)
    text = 'say "hi" \\\\ tab\\tnew\\nline \u00e9\u4e2d'
    print(TOTAL["n"])
""")

ASYNC_PROGRAM = dedent("""
    import asyncio

    async def fetch(n):
        await asyncio.sleep(0.001 * n)
        return n * 2

    async def main():
        a = await fetch(1)
        b = await asyncio.gather(fetch(2), fetch(3))
        t = asyncio.create_task(fetch(1), name="later")
        return a + sum(b) + await t

    print(asyncio.run(main()))
""")

# A generator started in one function and finished in another, which
# returns first: its slice cannot stay inside its first caller's.
GENERATOR_PROGRAM = dedent("""
    def numbers():
        yield 1
        yield 2
        yield 3

    def start():
        g = numbers()
        next(g)
        return g

    def finish(g):
        return sum(g)

    print(finish(start()))
""")


# An async record (docs/LOG-FORMAT.md section 9): header to blank line.
ASYNC_RECORD_RE = re.compile(r"^-{21} Async Step \d+ -{21}\n(?:.+\n)+\n",
                             re.M)


def reader_path():
    exe = os.path.join(os.path.dirname(helpers.steptraced_path()),
                       "steptrace-read")
    return exe if os.access(exe, os.X_OK) else None


def ms(ns):
    """A runtime in ns as the log prints it (docs/LOG-FORMAT.md section 3)."""
    tenths = ns // 100 + (1 if ns % 100 >= 50 else 0)
    return "%d.%04d" % (tenths // 10000, tenths % 10000)


class ExportCase(TempDirTest):
    def setUp(self):
        super().setUp()
        helpers.require_collector(self)
        self.reader = reader_path()
        if self.reader is None:
            self.skipTest("steptrace-read is not installed beside steptraced")

    def record(self, name, text, *options, status=0, wait=False):
        """Runs `steptrace run NAME --log-format steps OPTIONS`; returns
        the path of its store (waited for when the run was killed)."""
        self.script(name, text)
        r = helpers.steptrace_run(self.tmp, name, "--log-format", "steps",
                                  *options)
        self.assertEqual(r.returncode, status, r)
        p = self.path(".tracer", "tracer.steps")
        if wait:
            helpers.wait_until(lambda: os.path.isfile(p), 20)
        self.assertTrue(os.path.isfile(p), r)
        return p

    def read(self, cmd, *args, status=0):
        r = helpers.run([self.reader, cmd] + list(args), self.tmp)
        self.assertEqual(r.returncode, status, r)
        return r

    def jsonl(self, *files):
        out = self.read("export", *files, "--format", "jsonl").stdout
        self.assertTrue(out.endswith("\n"))
        return [json.loads(line) for line in out.splitlines()]

    def perfetto(self, *files, status=0):
        r = self.read("export", *files, "--format", "perfetto", status=status)
        return json.loads(r.stdout, parse_float=decimal.Decimal)

    def debug_all(self, path):
        """The step and event records `show` gives at DEBUG in ALL mode
        (async records left out)."""
        text = self.read("show", path, "--log-level", "DEBUG",
                         "--variable-mode", "ALL").stdout
        return helpers.parse_trace(ASYNC_RECORD_RE.sub("", text))


class JsonlTest(ExportCase):
    def check_against_show(self, path):
        objs = self.jsonl(path)
        recs = self.debug_all(path)
        shown = [o for o in objs if o["kind"] not in ("steptrace", "async")]
        self.assertEqual(len(shown), len(recs))
        kinds = {"step": "step", "call": "call", "return": "return",
                 "raised": "return", "exception": "exception"}
        pids = {o["pid"] for o in objs}
        self.assertEqual(len(pids), 1, pids)
        self.assertGreater(pids.pop(), 0)
        last_step = 0
        for o, rec in zip(shown, recs):
            where = (o, rec)
            self.assertEqual(o["kind"], kinds[rec.kind], where)
            self.assertEqual((o["file"], o["function"], o["line"]),
                             (rec.file, rec.func, rec.line), where)
            self.assertEqual(ms(o["runtime_ns"]), rec.runtime, where)
            # DEBUG's location lines: the traced ancestors, then the frame.
            self.assertEqual(o["depth"], len(rec.locations) - 1, where)
            if rec.thread is not None:
                self.assertEqual(o["thread"], rec.thread, where)
            if rec.kind == "step":
                self.assertEqual(o["step"], rec.step, where)
                last_step = rec.step
                self.assertEqual(
                    {k: (v["type"], v["value"])
                     for k, v in o["locals"].items()},
                    rec.vars("Local"), where)
                self.assertEqual(
                    {k: (v["type"], v["value"])
                     for k, v in o["globals"].items()},
                    rec.vars("Global"), where)
                # Locals then globals, each in first-seen order.
                self.assertEqual(list(o["globals"]),
                                 list(rec.vars("Global")), where)
            else:
                # Events carry the last step's number.
                self.assertEqual(o["step"], last_step, where)
                self.assertNotIn("locals", o)
                if rec.kind == "return":
                    self.assertEqual(o["detail"], rec.value, where)
                    self.assertIs(o["raised"], False)
                elif rec.kind == "raised":
                    self.assertIs(o["raised"], True)
                elif rec.kind == "exception":
                    self.assertEqual(o["detail"].split(":")[0],
                                     rec.exc_type, where)
        return objs

    def test_state_equals_show_all(self):
        p = self.record("prog.py", PROGRAM)
        objs = self.check_against_show(p)
        steps = [o for o in objs if o["kind"] == "step"]
        self.assertEqual({o["thread"] for o in steps},
                         {"MainThread", "w0", "w1"})
        # The log's escaped text, in valid JSON.
        text = [o["globals"]["text"]["value"] for o in steps
                if "text" in o["globals"]][0]
        self.assertEqual(text, 'say "hi" \\ tab\\tnew\\nline \u00e9\u4e2d')
        self.assertIn("return", {o["kind"] for o in objs})
        self.assertIn("exception", {o["kind"] for o in objs})
        # runtime_ns adds up per thread to clock_ns.
        clock = collections.Counter()
        for o in objs:
            if o["kind"] in ("step", "call", "return", "exception"):
                clock[o["thread"]] += o["runtime_ns"]
                self.assertEqual(o["clock_ns"], clock[o["thread"]])

    def test_every_record_whatever_the_level(self):
        p = self.record("prog.py", PROGRAM, "--log-level", "ERROR",
                        "--variable-mode", "CHANGED")
        objs = self.check_against_show(p)
        steps = [o["step"] for o in objs if o["kind"] == "step"]
        self.assertEqual(steps, list(range(1, len(steps) + 1)))
        self.assertGreater(len(steps), 50)

    def test_none_mode_has_no_variables(self):
        p = self.record("prog.py", PROGRAM, "--variable-mode", "NONE")
        objs = self.jsonl(p)
        self.assertTrue(objs)
        for o in objs:
            self.assertNotIn("locals", o)
            self.assertNotIn("globals", o)

    def test_async_records_and_generators(self):
        p = self.record("aprog.py", ASYNC_PROGRAM, "--trace-async")
        self.check_against_show(p)
        objs = self.jsonl(p)
        asyncs = [o for o in objs if o["kind"] == "async"]
        shown = self.read("show", p).stdout
        self.assertEqual(len(asyncs), shown.count("Async Step "))
        self.assertEqual([o["step"] for o in asyncs],
                         list(range(1, len(asyncs) + 1)))
        for o in asyncs:
            self.assertIn(o["async_kind"], ("CORO", "AWAIT", "TASK"))
            self.assertIn("Time: %s ms | %s\n%s" % (
                ms(o["time_ns"]), o["async_kind"], o["text"]), shown)
        p = self.record("g.py", GENERATOR_PROGRAM)
        self.check_against_show(p)

    def test_invalid_utf8_becomes_valid_json(self):
        p = self.record("u.py", "mark = 'abcXYZdef'\nother = 1\n")
        with open(p, "rb") as fp:
            data = fp.read()
        self.assertEqual(data.count(b"abcXYZdef"), 1)
        # Same length: the store stays whole, the value holds bad bytes.
        bad = data.replace(b"abcXYZdef", b"abc\xff\xc3(def")
        with open(p, "wb") as fp:
            fp.write(bad)
        r = helpers.run([self.reader, "export", p, "--format", "jsonl"],
                        self.tmp)
        self.assertEqual(r.returncode, 0, r)
        objs = [json.loads(line) for line in r.stdout.splitlines()]
        values = [o["globals"]["mark"]["value"] for o in objs
                  if o["kind"] == "step" and "mark" in o["globals"]]
        self.assertEqual(values[0], "abc\ufffd\ufffd(def")
        doc = self.perfetto(p)
        self.assertIn("abc\ufffd\ufffd(def",
                      json.dumps(doc, ensure_ascii=False, default=str))


class PerfettoTest(ExportCase):
    def check_structure(self, doc):
        """Every event has ph, ts, pid, tid; B/E nest per thread in file
        order with times that never go back; b/e pair by id.  Returns
        the events."""
        events = doc["traceEvents"]
        self.assertEqual(doc["displayTimeUnit"], "ns")
        names = {}
        stacks = collections.defaultdict(list)
        last_ts = {}
        async_open = {}
        for e in events:
            for key in ("ph", "ts", "pid", "tid"):
                self.assertIn(key, e, e)
            self.assertGreaterEqual(e["ts"], 0, e)
            key = (e["pid"], e["tid"])
            if e["ph"] == "M":
                names[(e["pid"], e["tid"], e["name"])] = e["args"]["name"] \
                    if "name" in e["args"] else e["args"]
                continue
            if e["ph"] in ("B", "E"):
                self.assertGreaterEqual(e["ts"], last_ts.get(key, 0), e)
                last_ts[key] = e["ts"]
                self.assertIn((e["pid"], e["tid"], "thread_name"), names, e)
                if e["ph"] == "B":
                    self.assertIn(e["cat"], ("call", "step"))
                    stacks[key].append(e)
                else:
                    self.assertTrue(stacks[key], "E without B: %r" % e)
                    self.assertGreaterEqual(e["ts"], stacks[key].pop()["ts"])
            elif e["ph"] == "b":
                self.assertNotIn(e["id"], async_open)
                async_open[e["id"]] = e
            elif e["ph"] == "e":
                b = async_open.pop(e["id"])
                self.assertEqual((b["cat"], b["name"]), (e["cat"], e["name"]))
                self.assertGreaterEqual(e["ts"], b["ts"])
            elif e["ph"] == "i":
                self.assertIn(e["s"], ("t", "p"))
            else:
                self.fail("unexpected event %r" % e)
        for key, st in stacks.items():
            self.assertEqual(st, [], "unclosed slices on %r" % (key,))
        self.assertEqual(async_open, {})
        for pid in {e["pid"] for e in events}:
            self.assertIn((pid, 0, "process_name"), names)
        # Steps are leaves: no slice opens inside a step.
        for e_list in self.by_thread(events).values():
            depth_step = False
            for e in e_list:
                if e["ph"] == "B":
                    self.assertFalse(depth_step, e)
                    depth_step = e["cat"] == "step"
                elif e["ph"] == "E":
                    depth_step = False
        return events, names

    @staticmethod
    def by_thread(events):
        out = collections.defaultdict(list)
        for e in events:
            if e["ph"] in ("B", "E"):
                out[(e["pid"], e["tid"])].append(e)
        return out

    def test_structure_threads_generators_exceptions(self):
        p = self.record("prog.py", PROGRAM)
        events, names = self.check_structure(self.perfetto(p))
        recs = self.debug_all(p)
        self.assertEqual(
            sorted(v for (pid, tid, k), v in names.items()
                   if k == "thread_name"), ["MainThread", "w0", "w1"])
        pname = [v for (pid, tid, k), v in names.items()
                 if k == "process_name"]
        self.assertEqual(pname, ["prog.py"])
        calls = collections.Counter(
            e["name"] for e in events if e["ph"] == "B" and
            e["cat"] == "call" and not e["args"].get("resumed"))
        self.assertEqual(calls, collections.Counter(
            r.func for r in recs if r.kind == "call"))
        steps = [e for e in events if e["ph"] == "B" and e["cat"] == "step"]
        self.assertEqual(
            [(e["args"]["step"], e["name"]) for e in steps],
            [(r.step, "%s:%d" % (r.func, r.line)) for r in recs
             if r.kind == "step"])
        self.assertTrue(all(e["args"]["location"].startswith(self.tmp)
                            for e in steps))
        excs = [e for e in events if e["ph"] == "i" and
                e["cat"] == "exception"]
        self.assertEqual(len(excs), len([r for r in recs
                                         if r.kind == "exception"]))
        self.assertEqual({e["name"] for e in excs}, {"ValueError"})
        # A step's changed variables are its args.
        grows = [e for e in steps if e["name"] == "grow:10"]
        self.assertTrue(grows)
        self.assertIn("k", grows[0]["args"]["locals"])

    def test_generator_that_outlives_its_caller(self):
        p = self.record("g.py", GENERATOR_PROGRAM)
        events, _ = self.check_structure(self.perfetto(p))
        numbers = [e for e in events if e["ph"] == "B" and
                   e.get("name") == "numbers"]
        # Its call, then a slice of its own when finish() resumes it (sum()
        # is no traced frame: it stays open through the last yields).
        self.assertEqual([bool(e["args"].get("resumed")) for e in numbers],
                         [False, True], numbers)

    def test_async_slices(self):
        p = self.record("aprog.py", ASYNC_PROGRAM, "--trace-async")
        events, _ = self.check_structure(self.perfetto(p))
        shown = self.read("show", p).stdout
        begins = [e for e in events if e["ph"] == "b"]
        self.assertEqual(len(begins), len(re.findall(
            r"COROUTINE START|AWAIT START|TASK CREATED", shown)))
        self.assertEqual(
            collections.Counter((e["cat"], e["name"]) for e in begins),
            collections.Counter({("coroutine", "main"): 1,
                                 ("coroutine", "fetch"): 4,
                                 ("await", "await fetch"): 4,
                                 ("await", "await main"): 3,
                                 ("task", "task Task-2"): 1,
                                 ("task", "task Task-3"): 1,
                                 ("task", "task later"): 1}))
        # The two fetches of gather() end in the order of their sleeps:
        # each await's slice lasts about its own sleep.
        awaits = {}
        for e in events:
            if e["ph"] in "be" and e["name"] == "await fetch":
                awaits.setdefault(e["id"], []).append(e["ts"])
        spans = sorted(float(end - start) for start, end in awaits.values())
        self.assertGreater(spans[-1], 2500)

    def test_killed_process_closes_its_slices(self):
        p = self.path(".tracer", "tracer.steps")
        self.record("k.py", dedent("""
            import os, signal
            def inner(n):
                x = n * 2
                os.kill(os.getpid(), signal.SIGKILL)
            def outer():
                inner(3)
            outer()
        """), status=-signal.SIGKILL, wait=True)
        # The collector ends the file when it sees the process gone (the
        # file may still be empty, claimed, at first).
        def ended():
            try:
                return self.jsonl(p)[-1]["kind"] == "steptrace"
            except (AssertionError, IndexError):
                return False

        self.assertTrue(helpers.wait_until(ended, 20))
        events, _ = self.check_structure(self.perfetto(p))
        last = max(e["ts"] for e in events)
        ends = [e for e in events if e["ph"] == "E" and e["ts"] == last]
        # inner's step, inner, outer, <module>.
        self.assertGreaterEqual(len(ends), 4)
        lines = [e["name"] for e in events if e["ph"] == "i"]
        self.assertTrue(any("vanished" in n or "SIGKILL" in n
                            for n in lines), lines)
        kinds = [o["kind"] for o in self.jsonl(p)]
        self.assertEqual(kinds[-1], "steptrace")

    def test_two_files_and_output_file(self):
        p = self.record("prog.py", PROGRAM)
        out = self.path("out", "trace.json")
        os.makedirs(os.path.dirname(out))
        with open(out, "w") as fp:
            fp.write("old")
        r = self.read("export", p, p, "--format", "perfetto", "-o", out)
        self.assertEqual(r.stdout, "")
        self.assertEqual(os.listdir(os.path.dirname(out)), ["trace.json"])
        with open(out) as fp:
            doc = json.load(fp, parse_float=decimal.Decimal)
        events, _ = self.check_structure(doc)
        # The same process twice: the second file goes on after the first.
        steps = [e for e in events if e["ph"] == "B" and e["cat"] == "step"]
        half = len(steps) // 2
        self.assertGreaterEqual(steps[half]["ts"], steps[half - 1]["ts"])
        # Through the CLI, jsonl into a file.
        out2 = self.path("out.jsonl")
        r = helpers.run([PYTHON, "-m", "steptrace", "export", p,
                         "--format", "jsonl", "--output", out2], self.tmp)
        self.assertEqual((r.returncode, r.stdout), (0, ""), r)
        with open(out2) as fp:
            self.assertEqual([json.loads(x) for x in fp], self.jsonl(p))


class StatsTest(ExportCase):
    ROW_RE = re.compile(r"^\s+(\d+\.\d{4})\s+(\d+\.\d{4})\s+(\d+)\s+(\S+)"
                        r"\s+(/.*):(\d+)$")
    FUNC_RE = re.compile(r"^\s+(\d+\.\d{4})\s+(\d+)\s+(\d+)\s+(\S+)\s+(/.*)$")

    def stats(self, *args):
        out = self.read("stats", *args).stdout
        lines_part, funcs_part = out.split("\n\nFunctions")
        rows = [self.ROW_RE.match(x) for x in lines_part.splitlines()[2:]]
        self.assertTrue(all(rows), lines_part)
        frows = [self.FUNC_RE.match(x) for x in funcs_part.splitlines()[2:]]
        self.assertTrue(all(frows), funcs_part)
        # Header rows name the columns, aligned with the numbers.
        head = lines_part.splitlines()[1]
        self.assertRegex(head, r"^\s+total ms\s+mean ms\s+hits\s+function"
                               r"\s+line$")
        for m in rows:
            self.assertEqual(head.index("hits") + 4, m.end(3))
            self.assertEqual(head.index("function"), m.start(4))
        return rows, frows

    def test_counts_equal_show(self):
        p = self.record("prog.py", PROGRAM)
        rows, frows = self.stats(p, "--top", "0")
        recs = self.debug_all(p)
        # A class body and its module share a line: lines are per function.
        want = collections.Counter((r.file, r.func, r.line) for r in recs
                                   if r.kind == "step")
        got = {(m.group(5), m.group(4), int(m.group(6))): int(m.group(3))
               for m in rows}
        self.assertEqual(got, dict(want))
        totals = [decimal.Decimal(m.group(1)) for m in rows]
        self.assertEqual(totals, sorted(totals, reverse=True))
        calls = {m.group(4): int(m.group(2)) for m in frows}
        self.assertEqual(calls, dict(collections.Counter(
            r.func for r in recs if r.kind == "call")))
        hits = {m.group(4): int(m.group(3)) for m in frows}
        self.assertEqual(hits, dict(collections.Counter(
            r.func for r in recs if r.kind == "step")))
        self.assertEqual(calls["work"], 3)
        self.assertEqual(calls["risky"], 12)
        # Two files add up.
        rows2, _ = self.stats(p, p, "--top", "0")
        self.assertEqual({(m.group(5), m.group(4), int(m.group(6))):
                          int(m.group(3)) for m in rows2},
                         {k: 2 * v for k, v in want.items()})

    def test_top_and_slowest_line(self):
        p = self.record("slow.py", dedent("""
            import time
            def f():
                for i in range(3):
                    time.sleep(0.02)
                    y = i
            f()
        """))
        rows, frows = self.stats(p, "--top", "2")
        self.assertEqual(len(rows), 2)
        self.assertLessEqual(len(frows), 2)
        self.assertEqual((rows[0].group(4), rows[0].group(6), rows[0].group(3)),
                         ("f", "4", "3"))
        self.assertGreater(decimal.Decimal(rows[0].group(1)), 55)
        self.assertEqual(frows[0].group(4), "f")
        rows, _ = self.stats(p)
        self.assertEqual(len(rows), 6)


class ErrorsTest(ExportCase):
    def test_bad_command_lines(self):
        p = self.record("p.py", "x = 1\n")
        for args, word in ((["--format", "xml"], "perfetto, jsonl"),
                           (["--format=csv"], "perfetto, jsonl"),
                           ([], "--format"),
                           (["--format", "jsonl", "--bogus"], "--bogus")):
            r = helpers.run([self.reader, "export", p] + args, self.tmp)
            self.assertEqual(r.returncode, 2, r)
            self.assertEqual(len(r.stderr.splitlines()), 1, r)
            self.assertIn(word, r.stderr)
            self.assertEqual(r.stdout, "")
        r = helpers.run([PYTHON, "-m", "steptrace", "export", p, "--format",
                         "xml"], self.tmp)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("perfetto, jsonl", r.stderr)
        for args in (["--top", "x"], ["--top"], ["--nope"], []):
            r = helpers.run([self.reader, "stats"] + ([p] if args != [] else
                                                       []) + args, self.tmp)
            self.assertEqual(r.returncode, 2, r)
            self.assertEqual(len(r.stderr.splitlines()), 1, r)

    def test_damaged_and_missing_files(self):
        p = self.record("p.py", "x = 1\ny = [x]\n")
        with open(p, "rb") as fp:
            data = fp.read()
        bad = self.path("bad.steps")
        with open(bad, "wb") as fp:
            fp.write(data[:8] + b"\xc1" * 40)
        for fmt in ("perfetto", "jsonl"):
            r = helpers.run([self.reader, "export", p, bad, "--format", fmt],
                            self.tmp)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("bad.steps", r.stderr)
            if fmt == "perfetto":
                # What could be read, in a whole JSON document.
                self.check_doc = json.loads(r.stdout)
            else:
                self.assertEqual(len(r.stdout.splitlines()),
                                 len(self.jsonl(p)))
        r = helpers.run([self.reader, "export", self.path("none.steps"),
                         "--format", "perfetto", "-o",
                         self.path("o.json")], self.tmp)
        self.assertEqual(r.returncode, 1, r)
        with open(self.path("o.json")) as fp:
            self.assertEqual(json.load(fp)["traceEvents"], [])
        r = helpers.run([self.reader, "stats", bad], self.tmp)
        self.assertEqual(r.returncode, 1, r)
        r = helpers.run([self.reader, "export", p, "--format", "jsonl", "-o",
                         self.path("no", "dir", "x.jsonl")], self.tmp)
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r)
