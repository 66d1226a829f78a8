"""The decorator `@Tracer(...).trace` (docs/API.md section 4) on plain
functions, generator functions and coroutine functions: metadata, values
passing through, what is recorded (only the function's own resumptions), one
region per call, re-entrance, the previous trace function and threads.  Each
test runs a real script in a real interpreter."""
import json
import unittest

import helpers
from helpers import TempDirTest, parse_trace, steps_only, events_only


class DecoratorTest(TempDirTest):

    def run_script(self, text, name="script.py", status=0):
        helpers.write(self.path(name), text)
        r = helpers.python(self.tmp, name)
        self.assertEqual(r.returncode, status, r)
        return r

    def json_tail(self, r):
        """(trace text before the last line, the last line as JSON)."""
        head, _, last = r.stdout.rstrip("\n").rpartition("\n")
        return (head + "\n" if head else ""), json.loads(last)

    # -- metadata -----------------------------------------------------------

    def test_wrapper_kinds_and_metadata(self):
        r = self.run_script("""\
            import inspect, json
            from steptrace import Tracer, LogLevel
            t = Tracer(log_level=LogLevel.SILENT)
            def plain(a, b=2):
                \"\"\"Plain doc.\"\"\"
                return a + b
            def gen(n):
                \"\"\"Gen doc.\"\"\"
                yield n
            async def coro(x):
                \"\"\"Coro doc.\"\"\"
                return x
            plain.attr = "kept"
            out = {}
            for f in (plain, gen, coro):
                w = t.trace(f)
                out[f.__name__] = [
                    w.__name__, w.__qualname__, w.__doc__, w.__module__,
                    w.__wrapped__ is f, w is not f,
                    inspect.isgeneratorfunction(w),
                    inspect.iscoroutinefunction(w),
                    str(inspect.signature(w)),
                    getattr(w, "attr", None)]
            print(json.dumps(out))
            """)
        out = json.loads(r.stdout)
        self.assertEqual(out, {
            "plain": ["plain", "plain", "Plain doc.", "__main__", True, True,
                      False, False, "(a, b=2)", "kept"],
            "gen": ["gen", "gen", "Gen doc.", "__main__", True, True,
                    True, False, "(n)", None],
            "coro": ["coro", "coro", "Coro doc.", "__main__", True, True,
                     False, True, "(x)", None]})

    # -- generator functions -------------------------------------------------

    GEN = """\
        import json, sys
        from steptrace import Tracer, LogOutput, LogLevel, VariableMode
        t = Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.%s,
                   variable_mode=VariableMode.%s)
        @t.trace
        def gen(n):
            got = []
            for i in range(n):
                try:
                    v = yield i
                except KeyError as e:
                    v = "thrown " + str(e)
                got.append(v)
            return got
        def consume():
            g = gen(3)
            first = next(g)
            between = first + 100
            second = g.send("a")
            third = g.throw(KeyError("k"))
            try:
                g.send("c")
            except StopIteration as stop:
                returned = stop.value
            return [first, between, second, third, returned]
        print(json.dumps(consume()))
        """

    def test_generator_values_pass_through_and_only_its_code_is_recorded(self):
        r = self.run_script(self.GEN % ("INFO", "CHANGED"))
        text, out = self.json_tail(r)
        self.assertEqual(out, [0, 100, 1, 2, ["a", "thrown 'k'", "c"]])
        recs = parse_trace(text)
        # consume() is in the workspace but is not traced: only the
        # generator's own resumptions are, as one region.
        self.assertEqual({x.func for x in recs}, {"gen"})
        self.assertEqual([x.line for x in steps_only(recs)],
                         [7, 8, 9, 10,
                          13, 8, 9, 10,
                          11, 12, 13, 8, 9, 10,
                          13, 8, 14])
        # The KeyError thrown in at the yield: an Exception record at INFO.
        self.assertEqual([(x.line, x.event) for x in events_only(recs)],
                         [(10, "Exception: KeyError: 'k'")])
        helpers.assert_steps_in_order(self, recs)
        # Its frame keeps its variables between resumptions.
        new = [line for x in recs for line in x.sections.get("Local", [])
               if line.startswith("[NEW]")]
        self.assertEqual(new, ["[NEW] n: int :: 3", "[NEW] got: list :: []",
                               "[NEW] i: int :: 0", "[NEW] v: str :: a",
                               "[NEW] e: KeyError :: 'k'"])

    def test_generator_debug_records_one_call_and_one_return(self):
        r = self.run_script(self.GEN % ("DEBUG", "NONE"))
        text, out = self.json_tail(r)
        self.assertEqual(out, [0, 100, 1, 2, ["a", "thrown 'k'", "c"]])
        recs = parse_trace(text)
        self.assertEqual(
            [x.event for x in events_only(recs, "call", "return", "raised")],
            ["Call: gen", "Return: gen -> ['a', \"thrown 'k'\", 'c']"])
        self.assertEqual((recs[0].event, recs[0].line), ("Call: gen", 5))
        self.assertEqual(recs[-1].kind, "return")
        for x in recs:
            self.assertEqual(len(x.locations), 1, x)

    def test_generator_close_and_throw_out(self):
        # close() runs the generator's finally block (its own code, so it is
        # recorded) and ends its frame (a Return record); an exception
        # thrown in and not caught comes out as the same object.
        r = self.run_script("""\
            import json, inspect
            from steptrace import Tracer, LogOutput, LogLevel, VariableMode
            t = Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                       variable_mode=VariableMode.NONE)
            @t.trace
            def gen(n):
                try:
                    for i in range(n):
                        yield i
                finally:
                    ended.append(n)
            ended = []
            out = {}
            g = gen(5)
            next(g)
            g.close()
            out["state"] = inspect.getgeneratorstate(g)
            g = gen(6)
            next(g)
            exc = RuntimeError("boom")
            try:
                g.throw(exc)
            except RuntimeError as e:
                out["same"] = e is exc
            def outer():
                result = yield from gen(2)
                return result
            out["delegated"] = list(outer())
            out["ended"] = ended
            print(json.dumps(out))
            """)
        text, out = self.json_tail(r)
        self.assertEqual(out, {"state": "GEN_CLOSED", "same": True,
                               "delegated": [0, 1], "ended": [5, 6, 2]})
        regions = helpers.split_regions(parse_trace(text))
        self.assertEqual(len(regions), 3, text)
        closed, thrown, delegated = regions
        self.assertEqual([x.line for x in steps_only(thrown)],
                         [7, 8, 9, 11])
        self.assertEqual(thrown[-1].event, "Return: gen (raised)")
        self.assertEqual([x.line for x in steps_only(delegated)],
                         [7, 8, 9, 8, 9, 8, 11])
        self.assertEqual(delegated[-1].event, "Return: gen -> None")
        self.assertEqual([x.line for x in steps_only(closed)],
                         [7, 8, 9, 11],
                         "close(): the generator's finally block is not "
                         "recorded")
        self.assertIn(closed[-1].kind, ("return", "raised"),
                      "close(): no Return record ends the generator's frame")

    def test_each_generator_call_is_a_region_and_recursion_is_not(self):
        helpers.require_collector(self)
        self.run_script("""\
            from steptrace import Tracer, VariableMode
            t = Tracer(variable_mode=VariableMode.NONE)
            @t.trace
            def walk(n):
                yield n
                if n:
                    yield from walk(n - 1)
            print(list(walk(2)), list(walk(0)))
            """)
        recs = parse_trace(self.log())
        regions = helpers.split_regions(recs)
        self.assertEqual([[x.line for x in reg] for reg in regions],
                         [[5, 6, 7, 5, 6, 7, 5, 6], [5, 6]])
        helpers.assert_steps_contiguous(self, recs)

    # -- coroutine functions -----------------------------------------------

    def test_coroutine_result_exception_and_body(self):
        # The coroutine's body (and what it awaits from the workspace) is
        # recorded; the event loop, the caller and a concurrent coroutine
        # of the workspace are not.
        r = self.run_script("""\
            import asyncio, json
            from steptrace import Tracer, LogOutput, VariableMode
            t = Tracer(log_output=LogOutput.STDOUT,
                       variable_mode=VariableMode.NONE)
            FAIL = ValueError("negative")
            async def helper(v):
                await asyncio.sleep(0)
                return v + 1
            async def other():
                o = 1
                await asyncio.sleep(0)
                o = 2
                await asyncio.sleep(0)
                return o
            @t.trace
            async def deco(x):
                if x < 0:
                    raise FAIL
                a = await helper(x)
                await asyncio.sleep(0)
                return a * 2
            async def main():
                r = await asyncio.gather(deco(1), other())
                try:
                    await deco(-1)
                except ValueError as e:
                    r.append(e is FAIL)
                return r
            print(json.dumps(asyncio.run(main())))
            """)
        text, out = self.json_tail(r)
        self.assertEqual(out, [4, 2, True])
        recs = parse_trace(text)
        regions = helpers.split_regions(recs)
        self.assertEqual([[(x.func, x.line) for x in steps_only(reg)]
                          for reg in regions],
                         [[("deco", 17), ("deco", 19), ("helper", 7),
                           ("helper", 8), ("deco", 20), ("deco", 21)],
                          [("deco", 17), ("deco", 18)]])
        self.assertEqual([(x.func, x.line, x.event) for x in events_only(recs)],
                         [("deco", 18, "Exception: ValueError: negative")])

    def test_coroutine_debug_records_one_call_and_one_return(self):
        r = self.run_script("""\
            import asyncio
            from steptrace import Tracer, LogOutput, LogLevel, VariableMode
            t = Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                       variable_mode=VariableMode.CHANGED)
            @t.trace
            async def deco(x):
                y = x + 1
                await asyncio.sleep(0)
                y = y * 2
                await asyncio.sleep(0)
                return y
            print(asyncio.run(deco(1)))
            """)
        self.assertTrue(r.stdout.endswith("\n4\n"), r)
        recs = parse_trace(r.stdout[:-2])
        self.assertEqual(
            [x.event for x in events_only(recs, "call", "return", "raised")],
            ["Call: deco", "Return: deco -> 4"])
        self.assertEqual([x.line for x in steps_only(recs)], [7, 8, 9, 10, 11])
        new = [line for x in recs for line in x.sections.get("Local", [])
               if line.startswith("[NEW]")]
        self.assertEqual(new, ["[NEW] x: int :: 1", "[NEW] y: int :: 2"])

    def test_recursive_coroutine_is_one_region(self):
        r = self.run_script("""\
            import asyncio
            from steptrace import Tracer, LogOutput, VariableMode
            t = Tracer(log_output=LogOutput.STDOUT,
                       variable_mode=VariableMode.NONE)
            @t.trace
            async def fact(n):
                if n <= 1:
                    return 1
                return n * await fact(n - 1)
            print("result", asyncio.run(fact(3)))
            """)
        self.assertTrue(r.stdout.endswith("result 6\n"), r)
        recs = parse_trace(r.stdout[:-len("result 6\n")])
        self.assertEqual([(x.step, x.line) for x in recs],
                         [(1, 7), (2, 9), (3, 7), (4, 9), (5, 7), (6, 8)])

    def test_silent_decorated_functions_behave_normally(self):
        r = self.run_script("""\
            import asyncio
            from steptrace import Tracer, LogLevel
            t = Tracer(log_level=LogLevel.SILENT)
            @t.trace
            def plain(x):
                return x + 1
            @t.trace
            def gen(n):
                yield from range(n)
            @t.trace
            async def coro(x):
                await asyncio.sleep(0)
                return x * 3
            print(plain(1), list(gen(3)), asyncio.run(coro(2)))
            """)
        self.assertEqual((r.stdout, r.stderr), ("2 [0, 1, 2] 6\n", ""))

    # -- the previous trace function ----------------------------------------

    def test_previous_trace_function_restored_for_generators_and_coroutines(self):
        r = self.run_script("""\
            import asyncio, json, sys
            from steptrace import Tracer, LogOutput
            seen = []
            def my_trace(frame, event, arg):
                if frame.f_code.co_name == "probe":
                    seen.append(event)
                return None
            def probe():
                return 1
            t = Tracer(log_output=LogOutput.STDERR)
            @t.trace
            def gen():
                yield 1
                yield 2
            @t.trace
            async def coro():
                await asyncio.sleep(0)
                return 3
            @t.trace
            def fails():
                raise KeyError("x")
            out = []
            sys.settrace(my_trace)
            mine = sys.gettrace()
            g = gen()
            next(g)
            out.append(sys.gettrace() is mine)   # between two resumptions
            probe()
            next(g)
            out.append(sys.gettrace() is mine)
            out.append(list(g))
            out.append(sys.gettrace() is mine)   # after the end
            out.append(asyncio.run(coro()))
            out.append(sys.gettrace() is mine)
            try:
                fails()
            except KeyError:
                pass
            out.append(sys.gettrace() is mine)
            probe()
            sys.settrace(None)
            out.append(len(seen))
            print(json.dumps(out))
            """)
        self.assertEqual(json.loads(r.stdout),
                         [True, True, [], True, 3, True, True, 2])
        recs = parse_trace(r.stderr)
        self.assertEqual([(x.func, x.kind) for x in recs],
                         [("gen", "step"), ("gen", "step"), ("coro", "step"),
                          ("coro", "step"), ("fails", "step"),
                          ("fails", "exception")])

    # -- threads ------------------------------------------------------------

    def test_concurrent_calls_from_two_threads(self):
        # Both calls run at once (they meet at a barrier half-way and both
        # let the other run during short sleeps): both results are right
        # and each call's region is complete, numbered 1..n in its order.
        helpers.require_collector(self)
        r = self.run_script("""\
            import threading, time
            from steptrace import Tracer
            t = Tracer()
            barrier = threading.Barrier(2, timeout=30)
            @t.trace
            def work(tag, n):
                total = 0
                for i in range(n):
                    total += i
                    if i % 10 == 0:
                        time.sleep(0.001)
                    if i == n // 2:
                        barrier.wait()
                return total
            results = {}
            def runner(tag, n):
                results[tag] = work(tag, n)
            threads = [threading.Thread(target=runner, args=("a", 300)),
                       threading.Thread(target=runner, args=("b", 400))]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            print(sorted(results.items()))
            """)
        self.assertEqual(r.stdout, "[('a', 44850), ('b', 79800)]\n")
        self.assertEqual(r.stderr, "")
        recs = parse_trace(self.log())
        by_tag = {}
        for x in recs:
            tag = x.vars("Local")["tag"][1]
            by_tag.setdefault(tag, []).append(x)
        self.assertEqual(sorted(by_tag), ["a", "b"])
        for tag, n in (("a", 300), ("b", 400)):
            mine = by_tag[tag]
            self.assertEqual(len(mine), 4 * n + 4 + n // 10,
                             "call %s: records missing" % tag)
            helpers.assert_steps_in_order(self, mine, "(call %s)" % tag)
            self.assertEqual(mine[-1].vars("Local")["total"],
                             ("int", str(n * (n - 1) // 2)))

    def test_decorated_calls_from_many_threads_complete(self):
        # Several threads call the same decorated function one after the
        # other and at once; every call returns, none hangs or raises.
        r = self.run_script("""\
            import threading
            from steptrace import Tracer, LogOutput, VariableMode
            t = Tracer(log_output=LogOutput.STDERR,
                       variable_mode=VariableMode.NONE)
            @t.trace
            def square(v):
                w = v * v
                return w
            results = []
            lock = threading.Lock()
            def runner(k):
                for j in range(20):
                    value = square(k * 100 + j)
                    with lock:
                        results.append(value)
            threads = [threading.Thread(target=runner, args=(k,))
                       for k in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            print(len(results), sum(results))
            """)
        expected = sum((k * 100 + j) ** 2 for k in range(4) for j in range(20))
        self.assertEqual(r.stdout, "80 %d\n" % expected)
        recs = parse_trace(r.stderr)
        self.assertEqual(len(recs), 160, "2 records per call")


if __name__ == "__main__":
    unittest.main()
