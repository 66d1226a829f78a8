"""Threads (docs/API.md section 5, docs/LOG-FORMAT.md section 3): threads
started inside a traced region are traced, Runtime is measured per thread, the
"| thread NAME" form starts with a second thread's first record, records of
different threads never mix, and FILE_STDOUT's file equals its stdout with
threads.  Each test runs a real script in a real interpreter."""
import unittest

import helpers
from helpers import TempDirTest, parse_trace, steps_only, events_only


# Three threads, each running its own function (so a record's function
# tells which thread wrote it), plus the main thread; generators too.  The
# main thread records first (prelude), so that every later record of the
# region is in the thread form.
MIXED = """\
    import sys, threading
    from steptrace import Tracer, LogOutput, LogLevel, VariableMode
    def squares(n):
        for i in range(n):
            yield i * i
    def work_a(n):
        total = 0
        for v in squares(n):
            total += v
        return total
    def work_b(n):
        text = ""
        for i in range(n):
            text = text + "b"
        return len(text)
    def work_c(n):
        seen = {}
        for i in range(n):
            seen[i %% 7] = i
        return len(seen)
    def work_main(n):
        acc = []
        for i in range(n):
            acc.append(i)
        return len(acc)
    def prelude():
        ready = True
        return ready
    results = {}
    def run(fn, n):
        results[fn.__name__] = fn(n)
    N = int(sys.argv[2])
    with Tracer(log_output=LogOutput.%s, log_level=LogLevel.%s,
                variable_mode=VariableMode.%s):
        prelude()
        threads = []
        for fn, name in ((work_a, "thread A"), (work_b, "thread B"),
                         (work_c, "thread C")):
            threads.append(threading.Thread(target=run, args=(fn, N),
                                            name=name))
            threads[-1].start()
        work_main(N)
        for t in threads:
            t.join()
    print(sorted(results.items()))
    """
MIXED_OWNER = {"work_a": "thread A", "squares": "thread A",
               "work_b": "thread B", "work_c": "thread C",
               "run": None, "work_main": "MainThread",
               "prelude": "MainThread"}


class ThreadsTest(TempDirTest):

    def run_script(self, text, *args, name="script.py", status=0):
        helpers.write(self.path(name), text)
        r = helpers.python(self.tmp, name, *args)
        self.assertEqual(r.returncode, status, r)
        return r

    def mixed(self, output, level="INFO", mode="ALL", n=300):
        r = self.run_script(MIXED % (output, level, mode), "-", str(n))
        tail = "[('work_a', %d), ('work_b', %d), ('work_c', %d)]\n" % (
            sum(i * i for i in range(n)), n, min(n, 7))
        self.assertTrue(r.stdout.endswith(tail), r)
        return r, r.stdout[:len(r.stdout) - len(tail)]

    def check_owners(self, recs):
        """Each record's frames belong to the thread it names; the records
        in the plain Runtime form all belong to one thread, and the first
        record in the thread form is another thread's."""
        plain = set()
        first_named = None
        for x in recs:
            owners = {MIXED_OWNER[f] for _, f, _ in x.locations} - {None}
            self.assertLessEqual(len(owners), 1, x)
            if x.thread is not None:
                self.assertLessEqual(owners, {x.thread}, x)
                if first_named is None:
                    first_named = x
            else:
                plain |= owners
        self.assertLessEqual(len(plain), 1, "records of several threads in "
                             "the plain Runtime form: %r" % plain)
        if plain and first_named is not None:
            self.assertNotIn(first_named.thread, plain,
                             "the thread form started before a second "
                             "thread's first record: %r" % first_named)

    def test_threads_started_in_a_region_are_traced(self):
        helpers.require_collector(self)
        self.mixed("FILE", n=50)
        recs = parse_trace(self.log())
        helpers.assert_steps_in_order(self, recs)
        names = helpers.assert_thread_form(self, recs,
                                           first_thread="MainThread")
        self.assertEqual(names, {"MainThread", "thread A", "thread B",
                                 "thread C"})
        self.check_owners(recs)
        # Complete: 2n + 3 line records for each work function, 2n + 1 for
        # the generator (INFO: no event records).
        counts = {}
        for x in recs:
            counts[x.func] = counts.get(x.func, 0) + 1
        self.assertEqual(counts, {"work_a": 2 * 50 + 3, "work_b": 2 * 50 + 3,
                                  "work_c": 2 * 50 + 3,
                                  "work_main": 2 * 50 + 3,
                                  "squares": 2 * 50 + 1, "run": 3 * 1,
                                  "prelude": 2})

    def test_threads_of_a_cli_traced_script_are_traced(self):
        helpers.require_collector(self)
        helpers.write(self.path("app.py"), """\
            import threading
            from concurrent.futures import ThreadPoolExecutor
            def job(x):
                y = x * 2
                return y
            t = threading.Thread(target=job, args=(1,), name="plain-thread")
            t.start()
            t.join()
            with ThreadPoolExecutor(max_workers=1,
                                    thread_name_prefix="pool") as ex:
                print(list(ex.map(job, [5, 6])))
            """)
        r = helpers.steptrace_run(self.tmp, "app.py", "--variable-mode",
                                  "NONE")
        self.assertEqual((r.returncode, r.stdout), (0, "[10, 12]\n"), r)
        recs = parse_trace(self.log())
        helpers.assert_steps_in_order(self, recs)
        job = [(x.thread, x.line) for x in recs if x.func == "job"]
        self.assertEqual(job, [("plain-thread", 4), ("plain-thread", 5),
                               ("pool_0", 4), ("pool_0", 5),
                               ("pool_0", 4), ("pool_0", 5)])
        helpers.assert_thread_form(self, recs, first_thread="MainThread")

    def test_cli_threads_outliving_the_script_are_traced(self):
        # A non-daemon thread still running when the script's code ends:
        # python waits for it at exit, and steptrace run traces what it
        # does meanwhile (the region ends after it).
        helpers.require_collector(self)
        helpers.write(self.path("late.py"), """\
            import threading, time
            def late():
                time.sleep(0.3)
                x = 42
                print("late", x)
            threading.Thread(target=late, name="late").start()
            print("main done")
            """)
        r = helpers.steptrace_run(self.tmp, "late.py", "--variable-mode",
                                  "NONE")
        self.assertEqual((r.returncode, r.stdout),
                         (0, "main done\nlate 42\n"), r)
        recs = parse_trace(self.log())
        helpers.assert_steps_in_order(self, recs)
        self.assertEqual([(x.thread, x.line) for x in recs
                          if x.func == "late"],
                         [("late", 3), ("late", 4), ("late", 5)])

    def test_only_threads_started_in_the_region(self):
        # A thread started before the region (and running during it) and one
        # started after it are not traced; threading's hook is restored.
        r = self.run_script("""\
            import sys, threading
            from steptrace import Tracer, LogOutput
            go = threading.Event()
            def early():
                go.wait()
                e = 1
                return e
            def late():
                l = 2
                return l
            def inside():
                i = 3
                return i
            gettrace = getattr(threading, "gettrace", lambda: None)
            before = threading.Thread(target=early, name="early")
            before.start()
            hook = gettrace()
            with Tracer(log_output=LogOutput.STDOUT):
                go.set()
                before.join()
                t = threading.Thread(target=inside, name="inside")
                t.start()
                t.join()
            after = threading.Thread(target=late, name="late")
            after.start()
            after.join()
            print("restored", gettrace() is hook, sys.gettrace())
            """)
        tail = "restored True None\n"
        self.assertTrue(r.stdout.endswith(tail), r)
        recs = parse_trace(r.stdout[:-len(tail)])
        self.assertEqual([(x.step, x.func, x.line, x.thread) for x in recs],
                         [(1, "inside", 12, None), (2, "inside", 13, None)])

    def test_thread_started_by_an_untraced_thread_is_not_traced(self):
        # While a region is open in one thread, the main thread (outside any
        # region) starts a thread: that thread was not started inside the
        # region, and its code is not recorded.
        r = self.run_script("""\
            import threading
            from steptrace import Tracer, LogOutput, VariableMode
            entered = threading.Event()
            done = threading.Event()
            def traced_work():
                a = 1
                entered.set()
                done.wait(30)
                return a
            def outsider():
                o = 2
                return o
            def in_region():
                with Tracer(log_output=LogOutput.STDOUT,
                            variable_mode=VariableMode.NONE):
                    traced_work()
            w = threading.Thread(target=in_region, name="regional")
            w.start()
            entered.wait(30)
            x = threading.Thread(target=outsider, name="outsider")
            x.start()
            x.join()
            done.set()
            w.join()
            print("end")
            """)
        self.assertTrue(r.stdout.endswith("end\n"), r)
        recs = parse_trace(r.stdout[:-len("end\n")])
        self.assertEqual([(x.func, x.line, x.thread) for x in recs],
                         [("traced_work", 6, None), ("traced_work", 7, None),
                          ("traced_work", 8, None), ("traced_work", 9, None)])

    def test_runtime_is_per_thread(self):
        # While the worker sleeps 0.3 s the main thread records every 10 ms:
        # the worker's next record still counts its own 0.3 s.
        r = self.run_script("""\
            import threading, time
            from steptrace import Tracer, LogOutput, VariableMode
            def main_loop():
                for k in range(30):
                    time.sleep(0.01)
                return k
            def sleeper():
                before = 1
                time.sleep(0.3)
                after = 2
                return after
            with Tracer(log_output=LogOutput.STDOUT,
                        variable_mode=VariableMode.NONE):
                t = threading.Thread(target=sleeper, name="sleepy one")
                t.start()
                main_loop()
                t.join()
            """)
        recs = parse_trace(r.stdout)
        after = [x for x in recs if (x.func, x.line) == ("sleeper", 10)]
        self.assertEqual(len(after), 1, recs)
        self.assertEqual(after[0].thread, "sleepy one")
        self.assertGreaterEqual(after[0].ms, 290.0, after[0].lines)
        self.assertLess(after[0].ms, 5000.0, after[0].lines)
        main_sleeps = [x for x in recs if (x.func, x.line) == ("main_loop", 4)]
        self.assertEqual(len(main_sleeps), 31)
        # Each main-thread step after a 10 ms sleep counts about 10 ms
        # (the median: a busy machine may delay one wake-up).
        for x in main_sleeps[1:]:
            self.assertGreaterEqual(x.ms, 9.0, x.lines)
        ms = sorted(x.ms for x in main_sleeps[1:])
        self.assertLess(ms[len(ms) // 2], 100.0, ms)

    def test_records_of_threads_never_mix(self):
        # Console output, ALL mode: every record parses strictly (no line of
        # another record inside it), each names the thread its frames
        # belong to, and no step number is missing or repeated.
        r, text = self.mixed("STDOUT", mode="ALL", n=400)
        recs = parse_trace(text)
        self.check_owners(recs)
        self.assertEqual(sorted(x.step for x in recs),
                         list(range(1, len(recs) + 1)))
        self.assertEqual(len(recs), 4 * (2 * 400 + 3) + 2 * 400 + 1 + 3 + 2)

    def test_console_records_in_step_order_with_threads(self):
        r, text = self.mixed("STDOUT", mode="CHANGED", n=400)
        recs = parse_trace(text)
        helpers.assert_steps_in_order(self, recs, "on stdout")

    def test_debug_threads_have_their_own_ancestors(self):
        helpers.require_collector(self)
        self.mixed("FILE", level="DEBUG", mode="NONE", n=20)
        recs = parse_trace(self.log())
        helpers.assert_steps_in_order(self, recs)
        self.check_owners(recs)
        # A thread's first record is the Call of its target, whose caller
        # (threading's bootstrap) is not traced: no ancestor.
        for name in ("thread A", "thread B", "thread C"):
            mine = [x for x in recs if x.thread == name]
            self.assertEqual((mine[0].event, len(mine[0].locations)),
                             ("Call: run", 1), name)
            self.assertEqual(mine[-1].event, "Return: run -> None", name)
        gen = [x for x in recs if x.func == "squares"]
        self.assertEqual([x.event for x in events_only(gen, "call", "return",
                                                       "raised")],
                         ["Call: squares", "Return: squares -> None"])
        for x in gen:
            self.assertEqual([f for _, f, _ in x.locations],
                             ["run", "work_a", "squares"])

    def test_file_stdout_bytes_equal_with_threads(self):
        # DEBUG, threads and a generator: the file's bytes are stdout's.
        helpers.require_collector(self)
        r, text = self.mixed("FILE_STDOUT", level="DEBUG", mode="CHANGED",
                             n=300)
        log = self.log()
        parse_trace(log)
        self.assertEqual(len(text), len(log))
        self.assertTrue(text == log, "the file's bytes differ from stdout's "
                        "(first difference at byte %d)"
                        % next((k for k, (a, b) in enumerate(zip(text, log))
                                if a != b), min(len(text), len(log))))


if __name__ == "__main__":
    unittest.main()
