"""Log levels (docs/LOG-FORMAT.md sections 7 and 8): DEBUG's ancestor frames
and its Call and Return records, Exception records at every level but SILENT
(not numbered steps: the step count is the same at DEBUG, INFO and WARNING),
INFO and WARNING without Call and Return, ERROR's exception records only,
SILENT's nothing; generator and coroutine suspensions; and the traced program's
behaviour left unchanged at every level (output, exit status, exceptions,
object lifetimes).  Each test runs a real script in a real interpreter."""
import os
import unittest

import helpers
from helpers import TempDirTest, parse_trace, steps_only, events_only


# The script of the exact DEBUG test: line numbers matter.
NESTED = """\
    from steptrace import Tracer, LogOutput, LogLevel, VariableMode
    def inner(x):
        if x < 0:
            raise ValueError("negative: %%d" %% x)
        return x * 10
    def middle(x):
        try:
            return inner(x)
        except ValueError:
            return -1
    def outer():
        a = middle(2)
        b = middle(-3)
        return a + b
    with Tracer(log_output=LogOutput.%s, log_level=LogLevel.%s,
                variable_mode=VariableMode.%s):
        print("result", outer())
    """

# Every record of NESTED at DEBUG: the location lines (func, line) from the
# outermost traced ancestor to the current frame, and the event line.
NESTED_DEBUG = [
    ([("outer", 11)], "Call: outer"),
    ([("outer", 12)], None),
    ([("outer", 12), ("middle", 6)], "Call: middle"),
    ([("outer", 12), ("middle", 7)], None),
    ([("outer", 12), ("middle", 8)], None),
    ([("outer", 12), ("middle", 8), ("inner", 2)], "Call: inner"),
    ([("outer", 12), ("middle", 8), ("inner", 3)], None),
    ([("outer", 12), ("middle", 8), ("inner", 5)], None),
    ([("outer", 12), ("middle", 8), ("inner", 5)], "Return: inner -> 20"),
    ([("outer", 12), ("middle", 8)], "Return: middle -> 20"),
    ([("outer", 13)], None),
    ([("outer", 13), ("middle", 6)], "Call: middle"),
    ([("outer", 13), ("middle", 7)], None),
    ([("outer", 13), ("middle", 8)], None),
    ([("outer", 13), ("middle", 8), ("inner", 2)], "Call: inner"),
    ([("outer", 13), ("middle", 8), ("inner", 3)], None),
    ([("outer", 13), ("middle", 8), ("inner", 4)], None),
    ([("outer", 13), ("middle", 8), ("inner", 4)],
     "Exception: ValueError: negative: -3"),
    ([("outer", 13), ("middle", 8), ("inner", 4)], "Return: inner (raised)"),
    ([("outer", 13), ("middle", 9)], None),
    ([("outer", 13), ("middle", 10)], None),
    ([("outer", 13), ("middle", 10)], "Return: middle -> -1"),
    ([("outer", 14)], None),
    ([("outer", 14)], "Return: outer -> 19"),
]


def shape(records):
    """[(locations as (func, line), event line)] of parsed records."""
    return [([(f, l) for _, f, l in r.locations], r.event) for r in records]


class LevelsTest(TempDirTest):

    def run_script(self, text, name="script.py", args=(), status=0):
        helpers.write(self.path(name), text)
        r = helpers.python(self.tmp, name, *args)
        self.assertEqual(r.returncode, status, r)
        return r

    def trace_of(self, r, program_output):
        """The trace part of a STDOUT run's stdout: everything but the
        program's own last line(s) `program_output`."""
        self.assertTrue(r.stdout.endswith(program_output), r)
        return r.stdout[:len(r.stdout) - len(program_output)]

    # -- DEBUG ------------------------------------------------------------

    def test_debug_records_exact(self):
        # Ancestors outermost first, each at the line of its latest record;
        # Call at the def line; Return with the value or "(raised)"; one
        # Exception where it is raised (not again in middle, which it passes
        # through); event records without variables; one Step sequence.
        helpers.require_collector(self)
        r = self.run_script(NESTED % ("FILE_STDOUT", "DEBUG", "ALL"))
        text = self.trace_of(r, "result 19\n")
        self.assertEqual(text, self.log(),
                         "FILE_STDOUT: the file differs from stdout")
        recs = parse_trace(text)
        self.assertEqual(shape(recs), NESTED_DEBUG)
        helpers.assert_steps_in_order(self, recs)
        script = self.path("script.py")
        for rec in recs:
            self.assertIsNone(rec.thread, rec)
            self.assertEqual({f for f, _, _ in rec.locations}, {script})
            if rec.kind != "step":
                self.assertEqual(rec.sections, {}, rec)
        # A step record's variables are those of its current frame.
        self.assertEqual(recs[7].vars("Local"), {"x": ("int", "2")})
        self.assertEqual(recs[20].vars("Local"), {"x": ("int", "-3")})
        self.assertEqual(recs[22].vars("Local"), {"a": ("int", "20"),
                                                  "b": ("int", "-1")})

    def test_info_and_warning_write_steps_and_exceptions(self):
        # The DEBUG records but Call and Return, with the current frame
        # only; the same step numbers at every level (events are not
        # numbered).
        texts = {}
        debug = parse_trace(self.trace_of(
            self.run_script(NESTED % ("STDOUT", "DEBUG", "NONE")),
            "result 19\n"))
        for level in ("INFO", "WARNING"):
            r = self.run_script(NESTED % ("STDOUT", level, "NONE"))
            texts[level] = self.trace_of(r, "result 19\n")
            recs = parse_trace(texts[level])
            self.assertEqual(
                shape(recs),
                [([locs[-1]], event) for locs, event in NESTED_DEBUG
                 if event is None or event.startswith("Exception:")],
                "%s: the DEBUG step and exception records, with the "
                "current frame only" % level)
            helpers.assert_steps_in_order(self, recs)
            self.assertEqual([x.step for x in recs if x.step],
                             [x.step for x in debug if x.step])
        self.assertEqual(helpers.normalize_runtime(texts["INFO"]),
                         helpers.normalize_runtime(texts["WARNING"]))

    def test_an_uncaught_exception_shows_at_the_default_level(self):
        helpers.require_collector(self)
        helpers.write(self.path("crash.py"), """\
            def parse(text):
                return int(text)
            def main():
                n = parse("x")
                return n
            main()
            """)
        r = helpers.steptrace_run(self.tmp, "crash.py")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("ValueError: invalid literal", r.stderr)
        recs = parse_trace(self.log())
        self.assertEqual(
            [(x.func, x.line, x.event) for x in events_only(recs)],
            [("parse", 2, "Exception: ValueError: invalid literal for "
                          "int() with base 10: 'x'")])
        self.assertEqual(recs[-1].kind, "exception", "the log ends with it")

    def test_error_writes_exception_records_only(self):
        r = self.run_script(NESTED % ("STDOUT", "ERROR", "ALL"))
        text = self.trace_of(r, "result 19\n")
        recs = parse_trace(text)
        self.assertEqual(shape(recs), [([("inner", 4)],
                                        "Exception: ValueError: negative: -3")])
        self.assertIsNone(recs[0].step, "no Step header at ERROR")
        self.assertNotIn(" Step ", text)
        self.assertEqual(recs[0].sections, {})

    def test_error_level_writes_exceptions_without_step_headers(self):
        # The exceptions are kept alive so that each is a distinct object.
        r = self.run_script("""\
            from steptrace import Tracer, LogOutput, LogLevel
            kept = []
            def check(v):
                total = v * 2
                if v % 2:
                    raise ValueError("odd %d" % v)
                return total
            def main():
                for v in range(5):
                    try:
                        check(v)
                    except ValueError as e:
                        kept.append(e)
            with Tracer(log_output=LogOutput.STDOUT,
                        log_level=LogLevel.ERROR):
                main()
            print("kept", len(kept))
            """)
        recs = parse_trace(self.trace_of(r, "kept 2\n"))
        self.assertEqual([(x.step, x.func, x.line, x.event) for x in recs],
                         [(None, "check", 6, "Exception: ValueError: odd 1"),
                          (None, "check", 6, "Exception: ValueError: odd 3")])
        self.assertEqual([len(x.locations) for x in recs], [1, 1],
                         "ERROR records carry no ancestor frames")

    def test_every_exception_is_recorded(self):
        # Exceptions that are caught and dropped one after the other are
        # distinct exceptions: each one gets its record, at every level but
        # SILENT.
        for level in ("ERROR", "WARNING", "INFO", "DEBUG"):
            r = self.run_script("""\
                from steptrace import Tracer, LogOutput, LogLevel
                def fail(k):
                    if k == 0:
                        raise KeyError("first")
                    if k == 1:
                        raise KeyError("second")
                    raise TypeError("third")
                def main():
                    for k in range(3):
                        try:
                            fail(k)
                        except Exception:
                            pass
                with Tracer(log_output=LogOutput.STDOUT,
                            log_level=LogLevel.%s):
                    main()
                print("done")
                """ % level)
            recs = parse_trace(self.trace_of(r, "done\n"))
            self.assertEqual(
                [(x.func, x.line, x.event)
                 for x in events_only(recs, "exception")],
                [("fail", 4, "Exception: KeyError: 'first'"),
                 ("fail", 6, "Exception: KeyError: 'second'"),
                 ("fail", 7, "Exception: TypeError: third")],
                "%s: one Exception record per raised exception" % level)
            helpers.assert_steps_in_order(self, recs)

    def test_exception_recorded_once_while_propagating(self):
        # Raised in inner, it passes through middle and outer and out of
        # the with block: one Exception record, then a "(raised)" Return
        # for each frame it ends; the exception reaches the program intact.
        for level in ("DEBUG", "ERROR"):
            r = self.run_script("""\
                from steptrace import Tracer, LogOutput, LogLevel
                class Problem(Exception):
                    pass
                def inner():
                    raise Problem("deep", 42)
                def middle():
                    inner()
                def outer():
                    middle()
                try:
                    with Tracer(log_output=LogOutput.STDOUT,
                                log_level=LogLevel.%s):
                        outer()
                except Problem as e:
                    print("caught", type(e).__name__, e.args)
                """ % level)
            recs = parse_trace(self.trace_of(r, "caught Problem ('deep', 42)\n"))
            exc = events_only(recs, "exception")
            self.assertEqual([(x.func, x.event) for x in exc],
                             [("inner", "Exception: Problem: ('deep', 42)")],
                             level)
            if level == "DEBUG":
                self.assertEqual(
                    [x.event for x in events_only(recs)],
                    ["Call: outer", "Call: middle", "Call: inner",
                     "Exception: Problem: ('deep', 42)",
                     "Return: inner (raised)", "Return: middle (raised)",
                     "Return: outer (raised)"])
                self.assertEqual(
                    [(f, l) for _, f, l in exc[0].locations],
                    [("outer", 9), ("middle", 7), ("inner", 5)])
            else:
                self.assertEqual(len(recs), 1)

    def test_exception_raised_in_untraced_code(self):
        # Raised by C code or by the standard library: recorded at the first
        # traced frame it passes through, at the line that called.
        r = self.run_script("""\
            import json
            from steptrace import Tracer, LogOutput, LogLevel
            kept = []
            def parse(kind):
                if kind == "int":
                    return int("x")
                return json.loads("{")
            def main():
                for kind in ("int", "json"):
                    try:
                        parse(kind)
                    except ValueError as e:
                        kept.append(e)
            with Tracer(log_output=LogOutput.STDOUT,
                        log_level=LogLevel.ERROR):
                main()
            print("kept", len(kept))
            """)
        recs = parse_trace(self.trace_of(r, "kept 2\n"))
        self.assertEqual(
            [(x.func, x.line, x.exc_type, x.exc_message) for x in recs],
            [("parse", 6, "ValueError",
              "invalid literal for int() with base 10: 'x'"),
             ("parse", 7, "JSONDecodeError",
              "Expecting property name enclosed in double quotes: "
              "line 1 column 2 (char 1)")])

    def test_event_line_texts(self):
        # "Exception: Type" when str(exc) is empty; messages and returned
        # values are escaped and cut exactly like variable values; a value
        # whose str() raises is shown as <unprintable ...>.
        r = self.run_script("""\
            from steptrace import Tracer, LogOutput, LogLevel
            kept = []
            class Bad:
                def __str__(self):
                    raise RuntimeError("no str")
            class BadExc(Exception):
                def __str__(self):
                    raise RuntimeError("no exc str")
            def raiser(k):
                if k == 0:
                    raise KeyError()
                if k == 1:
                    raise ValueError("")
                if k == 2:
                    raise ValueError("two\\nlines\\x01" + "z" * 30)
                raise BadExc("x")
            def ret_none():
                pass
            def ret_text():
                value = "a\\tb\\nc" + "y" * 40
                return value
            def ret_bad():
                value = Bad()
                return value
            def ret_short():
                value = "short"
                return value
            def main():
                for k in range(4):
                    try:
                        raiser(k)
                    except Exception as e:
                        kept.append(e)
                ret_none()
                ret_text()
                ret_bad()
                ret_short()
            with Tracer(log_output=LogOutput.STDOUT,
                        log_level=LogLevel.DEBUG, repr_limit=20):
                main()
            print("ok", len(kept))
            """)
        recs = parse_trace(self.trace_of(r, "ok 4\n"))
        self.assertEqual(
            [x.event for x in events_only(recs, "exception")],
            ["Exception: KeyError",
             "Exception: ValueError",
             "Exception: ValueError: two\\nlines\\x01" + "z" * 10
             + "... (40 chars)",
             "Exception: BadExc: <unprintable BadExc: no exc str>"])
        returns = {x.name: x for x in events_only(recs, "return")
                   if x.name.startswith("ret_")}
        self.assertEqual(returns["ret_none"].event, "Return: ret_none -> None")
        self.assertEqual(returns["ret_short"].value, "short")
        self.assertEqual(returns["ret_bad"].value, "<unprintable Bad: no str>")
        self.assertEqual(returns["ret_text"].value,
                         "a\\tb\\nc" + "y" * 15 + "... (45 chars)")
        # The same value as a variable, in the step record before the Return.
        for name in ("ret_text", "ret_bad", "ret_short"):
            k = recs.index(returns[name])
            before = recs[k - 1]
            self.assertEqual((before.kind, before.func), ("step", name))
            self.assertEqual(before.vars("Local")["value"][1],
                             returns[name].value,
                             "%s: Return value not rendered like the "
                             "variable" % name)

    def test_call_record_at_def_line(self):
        # co_firstlineno: the first decorator's line for a decorated
        # function, the class line for a class body, 1 for a module (even
        # one that starts with comments); methods and lambdas too.
        helpers.write(self.path("helpermod.py"), """\

            # a comment first: the module's code still starts at line 1
            VALUE = 3
            """)
        r = self.run_script("""\
            import functools
            from steptrace import Tracer, LogOutput, LogLevel, VariableMode
            def deco(f):
                @functools.wraps(f)
                def wrapper(*a):
                    return f(*a)
                return wrapper
            @deco
            def decorated(v):
                return v + 1
            class K:
                def method(self):
                    return 2
            def main():
                import helpermod
                class Local:
                    attr = 1
                double = lambda v: v * 2
                return decorated(1) + K().method() + double(2) + helpermod.VALUE
            with Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                        variable_mode=VariableMode.NONE):
                print(main())
            """)
        recs = parse_trace(self.trace_of(r, "11\n"))
        calls = [(x.file, x.func, x.line)
                 for x in events_only(recs, "call")]
        script = self.path("script.py")
        self.assertEqual(calls, [
            (script, "main", 14),
            (self.path("helpermod.py"), "<module>", 1),
            (script, "Local", 16),
            (script, "wrapper", 4),
            (script, "decorated", 8),
            (script, "method", 12),
            (script, "<lambda>", 18),
        ])
        # Every Call is followed by a record of the same frame, one level
        # deeper than the caller's.
        for k, x in enumerate(recs):
            if x.kind == "call":
                nxt = recs[k + 1]
                self.assertEqual(nxt.locations[:-1], x.locations[:-1])
                self.assertEqual(nxt.func, x.func)

    def test_ancestors_are_traced_frames_only(self):
        # json's own frames between the caller and the hook are not
        # traceable, so they are not ancestors; with traceable_functions
        # only the listed functions are.
        r = self.run_script("""\
            import json
            from steptrace import Tracer, LogOutput, LogLevel, VariableMode
            def hook(d):
                return len(d)
            def load():
                return json.loads('{"a": 1}', object_hook=hook)
            def top():
                return load()
            with Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                        variable_mode=VariableMode.NONE):
                top()
            with Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                        variable_mode=VariableMode.NONE,
                        traceable_functions=["top", "hook"]):
                top()
            print("end")
            """)
        recs = parse_trace(self.trace_of(r, "end\n"))
        first, second = helpers.split_regions(recs)
        hook_recs = [x for x in first if x.func == "hook"]
        self.assertTrue(hook_recs)
        for x in hook_recs:
            self.assertEqual([(f, l) for _, f, l in x.locations[:-1]],
                             [("top", 8), ("load", 6)])
        for x in second:
            self.assertIn(x.func, ("top", "hook"))
        hook_recs = [x for x in second if x.func == "hook"]
        self.assertTrue(hook_recs)
        for x in hook_recs:
            self.assertEqual([(f, l) for _, f, l in x.locations[:-1]],
                             [("top", 8)])

    # -- generators and coroutines ---------------------------------------

    def test_generator_suspension_is_not_a_return(self):
        r = self.run_script("""\
            from steptrace import Tracer, LogOutput, LogLevel, VariableMode
            def gen(n):
                total = 0
                for i in range(n):
                    total += i
                    yield total
                return total
            def consume():
                out = []
                for v in gen(3):
                    out.append(v)
                return out
            with Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                        variable_mode=VariableMode.CHANGED):
                print(consume())
            """)
        recs = parse_trace(self.trace_of(r, "[0, 1, 3]\n"))
        self.assertEqual([x.event for x in events_only(recs, "call", "return",
                                                       "raised")],
                         ["Call: consume", "Call: gen", "Return: gen -> 3",
                          "Return: consume -> [0, 1, 3]"])
        gen_steps = [x for x in steps_only(recs) if x.func == "gen"]
        self.assertEqual([x.line for x in gen_steps],
                         [3, 4, 5, 6, 4, 5, 6, 4, 5, 6, 4, 7])
        # The consumer runs between the resumptions and is the generator's
        # ancestor at the line of its latest record.
        for x in gen_steps:
            self.assertEqual([(f, l) for _, f, l in x.locations[:-1]],
                             [("consume", 10)])
        self.assertEqual([x.func for x in steps_only(recs)].count("consume"),
                         1 + 4 + 3 + 1)
        # The generator's frame keeps its variables across yields: each
        # local is [NEW] once, later only [CHANGED].
        new = [line for x in gen_steps for line in x.sections.get("Local", [])
               if line.startswith("[NEW]")]
        self.assertEqual(new, ["[NEW] n: int :: 3", "[NEW] total: int :: 0",
                               "[NEW] i: int :: 0"])
        deleted = [line for x in recs for line in x.sections.get("Local", [])
                   if line.startswith("[DELETED]")]
        self.assertEqual(deleted, [])

    def test_coroutine_suspension_is_not_a_return(self):
        r = self.run_script("""\
            import asyncio
            from steptrace import Tracer, LogOutput, LogLevel, VariableMode
            async def sub(x):
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                return x + 1
            async def main():
                a = await sub(1)
                await asyncio.sleep(0)
                b = a * 2
                return b
            with Tracer(log_output=LogOutput.STDOUT, log_level=LogLevel.DEBUG,
                        variable_mode=VariableMode.CHANGED):
                print(asyncio.run(main()))
            """)
        recs = parse_trace(self.trace_of(r, "4\n"))
        self.assertEqual([x.event for x in events_only(recs, "call", "return",
                                                       "raised")],
                         ["Call: main", "Call: sub", "Return: sub -> 2",
                          "Return: main -> 4"])
        self.assertEqual([(x.func, x.line) for x in steps_only(recs)],
                         [("main", 8), ("sub", 4), ("sub", 5), ("sub", 6),
                          ("main", 9), ("main", 10), ("main", 11)])
        new = [line for x in recs for line in x.sections.get("Local", [])
               if line.startswith("[NEW]")]
        self.assertEqual(new, ["[NEW] x: int :: 1", "[NEW] a: int :: 2",
                               "[NEW] b: int :: 4"])
        # No record comes from asyncio's own code.
        for x in recs:
            self.assertEqual({f for f, _, _ in x.locations},
                             {self.path("script.py")})

    def test_no_exception_record_for_normal_completion(self):
        # A for loop over a generator that returns a value, `yield from` a
        # generator that returns, and `await` of a coroutine that suspends
        # raise nothing the program can see: no Exception record at ERROR
        # (so no record at all) and none at DEBUG.
        script = """\
            import asyncio
            from steptrace import Tracer, LogOutput, LogLevel
            def numbers():
                yield 1
                return "finished"
            def delegate():
                result = yield from numbers()
                yield result
            def loop():
                total = 0
                for v in numbers():
                    total += v
                return total
            async def pause():
                await asyncio.sleep(0)
                return 5
            async def main():
                value = await pause()
                await asyncio.sleep(0)
                return value
            with Tracer(log_output=LogOutput.STDOUT,
                        log_level=LogLevel.%s):
                print(list(delegate()), loop(), asyncio.run(main()))
            """
        out = "[1, 'finished'] 1 5\n"
        r = self.run_script(script % "ERROR")
        self.assertEqual(r.stdout, out,
                         "ERROR level: records for a program that raises no "
                         "exception")
        r = self.run_script(script % "DEBUG")
        recs = parse_trace(self.trace_of(r, out))
        self.assertEqual([(x.func, x.line, x.event)
                          for x in events_only(recs, "exception")], [])

    # -- SILENT -------------------------------------------------------------

    def test_silent_writes_nothing_anywhere(self):
        for output in ("FILE", "STDOUT", "STDERR", "FILE_STDOUT",
                       "FILE_STDERR"):
            r = self.run_script("""\
                from steptrace import Tracer, LogOutput, LogLevel
                t = Tracer(log_output=LogOutput.%s, log_level=LogLevel.SILENT)
                def f():
                    v = 1
                    raise ValueError("x")
                @t.trace
                def g():
                    w = 2
                    return w
                try:
                    with t:
                        f()
                except ValueError:
                    pass
                print("g", g())
                """ % output)
            self.assertEqual((r.stdout, r.stderr), ("g 2\n", ""), output)
            self.assertFalse(os.path.exists(self.path(".tracer")), output)
        helpers.write(self.path("cli.py"), """\
            def f():
                v = 1
                return v
            print(f())
            """)
        r = helpers.steptrace_run(self.tmp, "cli.py", "--log-level", "SILENT",
                                  "--log-dir", "logs")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "1\n", ""))
        self.assertFalse(os.path.exists(self.path("logs")))

    # -- the program's behaviour -------------------------------------------

    BEHAVIOUR = """\
        import contextlib, sys
        from steptrace import Tracer, LogLevel, VariableMode
        MODE = sys.argv[1]
        class Obj:
            def __init__(self, name):
                self.name = name
            def __del__(self):
                print("del", self.name)
        class Bad:
            def __str__(self):
                raise RuntimeError("no str for you")
        class Holder(Exception):
            pass
        def make(name):
            return Obj(name)
        def gen():
            o = Obj("gen-local")
            yield 1
            del o
            yield 2
        def handler():
            try:
                raise KeyError("k")
            except KeyError:
                bad = Bad()
                print("in except", sys.exc_info()[0].__name__,
                      str(sys.exc_info()[1]))
            print("after except", sys.exc_info())
            return bad
        def locals_():
            x = Obj("local")
            del x
            print("after del local")
            xs = [Obj("in-list")]
            xs = None
            print("after list")
            d = {"k": Obj("in-dict")}
            d.clear()
            print("after dict")
            y = Obj("rebound")
            y = 5
            print("after rebind")
        def globals_():
            global G, GL, GD
            G = Obj("global")
            del G
            print("after del global")
            GL = [Obj("global-list")]
            GL = 0
            print("after global list")
            GD = {"k": Obj("global-dict")}
            GD = {}
            print("after global dict")
        def work():
            locals_()
            globals_()
            make("returned")
            print("after make")
            try:
                raise Holder(Obj("in-exc"))
            except Holder:
                pass
            print("after exc")
            g = gen()
            next(g)
            next(g)
            print("after gen del")
            g = None
            b = handler()
            print("bad", type(b).__name__, file=sys.stderr)
        def fail():
            work()
            raise LookupError("out of the with")
        if MODE == "none":
            ctx = contextlib.nullcontext()
        else:
            level, vm = MODE.split("-")
            ctx = Tracer(log_level=LogLevel[level],
                         variable_mode=VariableMode[vm])
        with ctx:
            fail()
        """

    def test_program_behaviour_unchanged_at_every_level(self):
        # Same stdout, stderr (the uncaught exception's traceback included)
        # and exit status as untraced; finalisers of dropped objects run at
        # the same point; str() raising in the tracer does not touch the
        # program's exception state.
        helpers.require_collector(self)
        helpers.write(self.path("script.py"), self.BEHAVIOUR)
        ref = helpers.python(self.tmp, "script.py", "none")
        self.assertEqual(ref.returncode, 1, ref)
        self.assertIn("del local\nafter del local\n", ref.stdout)
        self.assertIn("LookupError: out of the with", ref.stderr)
        for mode in ("DEBUG-ALL", "DEBUG-CHANGED", "INFO-ALL", "INFO-CHANGED",
                     "WARNING-NONE", "ERROR-ALL", "SILENT-ALL"):
            r = helpers.python(self.tmp, "script.py", mode)
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (ref.returncode, ref.stdout, ref.stderr), mode)
        # The traced runs did record (DEBUG's log holds the events).
        recs = parse_trace(self.log())
        self.assertTrue(events_only(recs, "exception"))

    def test_module_level_lifetimes_under_the_cli(self):
        helpers.write(self.path("mod.py"), """\
            class Obj:
                def __init__(self, name):
                    self.name = name
                def __del__(self):
                    print("del", self.name)
            x = Obj("global")
            del x
            print("after del global")
            xs = [Obj("global-list")]
            xs = []
            print("after list")
            d = {"k": Obj("global-dict")}
            d = {}
            print("after dict")
            print("end")
            """)
        ref = helpers.python(self.tmp, "mod.py")
        self.assertEqual(ref.stdout, "del global\nafter del global\n"
                         "del global-list\nafter list\ndel global-dict\n"
                         "after dict\nend\n")
        for level, vm in (("DEBUG", "CHANGED"), ("INFO", "ALL"),
                          ("ERROR", "NONE")):
            r = helpers.steptrace_run(self.tmp, "mod.py", "--log-level", level,
                                      "--variable-mode", vm,
                                      "--log-output", "STDERR")
            self.assertEqual((r.returncode, r.stdout), (0, ref.stdout),
                             (level, vm, r))

    # -- the whole format --------------------------------------------------

    def test_debug_log_of_a_whole_program_parses_strictly(self):
        # Classes, generators, exceptions caught and uncaught, threads and
        # recursion under `steptrace run --log-level DEBUG`: every line is
        # of a known kind and the steps run 1..n.
        helpers.require_collector(self)
        helpers.write(self.path("app.py"), """\
            import threading

            class Account:
                count = 0
                def __init__(self, owner, balance=0):
                    self.owner = owner
                    self.balance = balance
                    Account.count += 1
                def withdraw(self, amount):
                    if amount > self.balance:
                        raise ValueError("insufficient funds: %d" % amount)
                    self.balance -= amount
                    return self.balance
                def __str__(self):
                    return "Account(%s, %d)" % (self.owner, self.balance)

            def countdown(n):
                while n > 0:
                    yield n
                    n -= 1
                return "liftoff"

            def fib(n):
                return n if n < 2 else fib(n - 1) + fib(n - 2)

            kept = []   # caught exceptions stay alive: distinct objects

            def worker(name, results):
                acc = Account(name, 10)
                for amount in (3, 4, 5):
                    try:
                        acc.withdraw(amount)
                    except ValueError as e:
                        kept.append(e)
                        results.append(str(e))
                results.append(str(acc))

            def main():
                results = []
                threads = [threading.Thread(target=worker, args=("t%d" % i, results),
                                            name="worker-%d" % i)
                           for i in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                text = "multi\\nline\\ttext"
                values = list(countdown(3))
                squares = {k: k * k for k in range(3)}
                print(fib(5), values, squares, sorted(results))
                try:
                    {}["missing"]
                except KeyError as e:
                    kept.append(e)
                return Account("main").withdraw(1)

            main()
            """)
        r = helpers.steptrace_run(self.tmp, "app.py", "--log-level", "DEBUG")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("ValueError: insufficient funds: 1", r.stderr)
        self.assertIn("5 [3, 2, 1] {0: 0, 1: 1, 2: 4}", r.stdout)
        recs = parse_trace(self.log())
        helpers.assert_steps_in_order(self, recs)
        kinds = {x.kind for x in recs}
        self.assertEqual(kinds, {"step", "call", "return", "raised",
                                 "exception"})
        names = helpers.assert_thread_form(self, recs,
                                           first_thread="MainThread")
        self.assertEqual(names, {"MainThread", "worker-0", "worker-1"})
        # The uncaught exception: one Exception record, then the frames it
        # ends, down to the module.
        tail = [x.event for x in recs[-4:]]
        self.assertEqual(tail, ["Exception: ValueError: insufficient funds: 1",
                                "Return: withdraw (raised)",
                                "Return: main (raised)",
                                "Return: <module> (raised)"])
        # Recursion: each fib frame has its Call and its Return.
        self.assertEqual(len(events_only([x for x in recs if x.func == "fib"],
                                         "call")), 15)
        self.assertEqual(len(events_only([x for x in recs if x.func == "fib"],
                                         "return")), 15)


if __name__ == "__main__":
    unittest.main()
