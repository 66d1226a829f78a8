"""Durability (docs/COLLECTOR.md section 11; the lines that say how a process
ended: docs/LOG-FORMAT.md section 10.2): what a traced program recorded reaches
the collector within milliseconds of its line, and stays there however the
program ends: blocked for ever, killed by a signal (default or fatal),
os.abort, a segfault, SIGKILL, exec, a pool that terminates its workers.  The
log then ends with one line that says how the process ended, after which step;
the program's own exit status, output, signal handlers and Ctrl-C behave as
untraced.

Every scenario runs twice: with the embedded default (a private collector
the package starts) and with a running steptraced on STEPTRACE_SOCKET.
Real interpreters, real scripts, real signals, a real collector.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

import helpers
from helpers import TempDirTest, parse_log
from test_faults import Running

END_RE = re.compile(
    r"^\[steptrace\] the process (?:ended by (?P<sig>SIG[A-Z0-9]+)"
    r"|called exec \((?P<exec>.*)\)|(?P<vanished>vanished)) after step "
    r"(?P<step>[0-9]+)(?: without ending the region \(killed by SIGKILL or "
    r"the out-of-memory killer\?\))?$")

# Bound on the waits for something that normally takes milliseconds.
SOON = 10


def split_end(text):
    """(the log without its last line if that says how the process ended,
    the match of that line or None)."""
    if not text.endswith("\n"):
        return text, None
    head, _, last = text[:-1].rpartition("\n")
    m = END_RE.match(last)
    if m is None:
        return text, None
    return (head + "\n" if head else ""), m


def where(recs):
    return [(r.func, r.line) for r in recs]


def loop_lines(first, n, tail):
    """(func, line) of work(n) records: `first` is the line after
    `def work(n):` (total = 0), the loop at first + 1 and first + 2, then
    `tail` more lines after the loop."""
    out = [("work", first)]
    for _ in range(n):
        out += [("work", first + 1), ("work", first + 2)]
    out.append(("work", first + 1))
    return out + [("work", first + 3 + k) for k in range(tail)]


SLEEP_SCRIPT = """\
import sys, time
def work(n):
    total = 0
    for i in range(n):
        total += i
    print("ready", flush=True)
    time.sleep(60)
    return total
work(int(sys.argv[1]))
"""
SLEEP_N = 200
SLEEP_LINE = 7


def sleep_lines(n=SLEEP_N):
    return ([("<module>", 1), ("<module>", 2), ("<module>", 9)]
            + loop_lines(3, n, 2))


ABORT_SCRIPT = """\
import ctypes, faulthandler, os, sys
def work(n):
    total = 0
    for i in range(n):
        total += i
    if sys.argv[1] == "abort":
        os.abort()
    if sys.argv[1] == "faulthandler":
        faulthandler.enable()
    ctypes.string_at(0)
work(5)
"""


def abort_lines(how):
    lines = ([("<module>", 1), ("<module>", 2), ("<module>", 11)]
             + loop_lines(3, 5, 1))
    if how == "abort":
        return lines + [("work", 7)]
    if how == "faulthandler":
        return lines + [("work", 8), ("work", 9), ("work", 10)]
    return lines + [("work", 8), ("work", 10)]


BLOCK_SCRIPT = """\
import os, sys, threading
def work(n):
    lock = threading.Lock()
    lock.acquire()
    total = 0
    for i in range(n):
        total += i
    if sys.argv[2] == "wait":
        print("socket", os.environ["STEPTRACE_SOCKET"], flush=True)
        sys.stdin.readline()
    print("blocking", flush=True)
    lock.acquire()
work(int(sys.argv[1]))
"""
BLOCK_LINE = 12

POOL_SCRIPT = """\
import multiprocessing as mp, sys
def square(x):
    y = x * x
    z = y + 1
    return y
if __name__ == "__main__":
    ctx = mp.get_context("fork")
    for k in range(int(sys.argv[1])):
        with ctx.Pool(2) as pool:
            r = pool.map(square, [1, 2, 3])
        p = ctx.Process(target=square, args=(4,))
        p.start()
        p.join()
    print("done", r, p.exitcode, flush=True)
"""

EXECUTOR_SCRIPT = """\
import concurrent.futures as cf, multiprocessing as mp
def square(x):
    y = x * x
    z = y + 1
    return y
if __name__ == "__main__":
    ctx = mp.get_context("fork")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        r1 = list(ex.map(square, [1, 2, 3]))
    pool = ctx.Pool(2)
    r2 = pool.map(square, [5, 6])
    pool.terminate()
    pool.join()
    print("done", r1, r2, flush=True)
"""

EXEC_SCRIPT = """\
import os, sys
def work(n):
    total = 0
    for i in range(n):
        total += i
    os.execv(sys.executable, [sys.executable, "-c", "print('exec ran')"])
work(3)
"""

HOOK_FORK_SCRIPT = """\
import os
def hook():
    s = 0
    for i in range(40):
        s += i
os.register_at_fork(after_in_child=hook)
from steptrace import Tracer
def work(n):
    total = 0
    for i in range(n):
        total += i
def main(k):
    for j in range(k):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        work(300)
        os.waitpid(pid, 0)
with Tracer():
    main(20)
print("done", flush=True)
"""

HANDLER_SCRIPT = """\
import signal, sys, threading
got = threading.Event()
def handler(signum, frame):
    got.set()
def work(n):
    total = 0
    for i in range(n):
        total += i
    print("ready", flush=True)
    got.wait()
    print("handled", flush=True)
    return total
signal.signal(signal.SIGTERM, handler)
work(int(sys.argv[1]))
"""

GETSIGNAL_SCRIPT = """\
import signal
names = ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGSEGV", "SIGABRT", "SIGINT",
         "SIGPIPE")
print(" ".join("%s=%s" % (n, signal.getsignal(getattr(signal, n)))
               for n in names))
"""

API_SCRIPT = """\
import sys, time
from steptrace import Tracer
def work(n):
    total = 0
    for i in range(n):
        total += i
    print("ready", flush=True)
    time.sleep(60)
    return total
with Tracer():
    work(int(sys.argv[1]))
"""


class Durability:
    """The scenarios; the classes below pick the collector."""

    SERVICE = False

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)
        if self.SERVICE:
            self.collector = helpers.Collector(
                self, self.path("svc.sock")).start()
            self.env = helpers.environ(STEPTRACE_SOCKET=self.collector.sock)
        else:
            self.collector = None
            self.env = helpers.environ()

    # -- helpers ------------------------------------------------------------

    def cli(self, script, *args, pyopts=()):
        return ([helpers.PYTHON] + list(pyopts)
                + ["-m", "steptrace", "run", script] + list(args))

    def start(self, argv):
        return Running(self, argv, self.tmp, self.env)

    def ended_log(self, name="tracer.log", timeout=SOON):
        """The log once it ends with the line that says how the process
        ended: (records, match of that line)."""
        path = self.path(".tracer", name)
        text = helpers.wait_until(
            lambda: self._read_if(path, lambda t: split_end(t)[1]), timeout)
        self.assertTrue(text, "the log %s does not end with the line that "
                        "says how the process ended within %d s; it is:\n%s"
                        % (name, timeout, self._tail(path)))
        body, end = split_end(text)
        return parse_log(body), end

    @staticmethod
    def _read_if(path, pred):
        try:
            text = helpers.read(path)
        except OSError:
            return None
        return text if pred(text) else None

    @staticmethod
    def _tail(path):
        try:
            return helpers.read(path)[-1500:]
        except OSError as e:
            return "(%s)" % e

    def signal_run(self, argv, sig, line=None, ready="ready\n"):
        """Starts argv, waits for its `ready` line and, when `line` is
        given, for the record of that line of work() in the log (so that
        the program is known to be in it), then sends sig; returns
        (returncode, stdout, stderr)."""
        run = Running(self, argv, self.tmp, self.env)
        self.assertEqual(run.out.next(30, repr(ready)), ready)
        if line is not None:
            path = self.path(".tracer", "tracer.log")
            needle = "::work -- line %d\n" % line
            self.assertTrue(helpers.wait_until(
                lambda: self._read_if(path, lambda t: needle in t), SOON),
                "no record of line %d in the log" % line)
        run.p.send_signal(sig)
        return run.finish(helpers.TIMEOUT)

    def untraced_rc(self, argv_tail, sig=None, ready="ready\n"):
        """The exit status of the script run untraced (plain python)."""
        argv = [helpers.PYTHON] + list(argv_tail)
        if sig is None:
            return helpers.run(argv, self.tmp, env=self.env).returncode
        rc, _, _ = self.signal_run(argv, sig, ready=ready)
        return rc

    def status(self, sock):
        r = helpers.run([helpers.PYTHON, "-m", "steptrace", "daemon",
                         "status", "--socket", sock, "--json"], self.tmp,
                        env=self.env)
        self.assertEqual(r.returncode, 0, r)
        return json.loads(r.stdout)

    def assert_end(self, end, recs, sig=None, exec_prog=None,
                   vanished=False):
        self.assertIsNotNone(end)
        self.assertEqual(int(end.group("step")), len(recs),
                         "the end line names the last step")
        helpers.assert_steps_contiguous(self, recs)
        if sig is not None:
            self.assertEqual(end.group("sig"), signal.Signals(sig).name)
        if exec_prog is not None:
            self.assertEqual(end.group("exec"), exec_prog)
        self.assertEqual(bool(end.group("vanished")), vanished)

    # -- signals --------------------------------------------------------------

    def test_sigterm_during_a_sleep(self):
        self.script("s.py", SLEEP_SCRIPT)
        rc, out, err = self.signal_run(self.cli("s.py", str(SLEEP_N)),
                                       signal.SIGTERM, SLEEP_LINE)
        self.assertEqual(rc, -signal.SIGTERM, err)
        self.assertEqual((out, err), ("ready\n", ""))
        recs, end = self.ended_log()
        self.assertEqual(where(recs), sleep_lines())
        self.assert_end(end, recs, sig=signal.SIGTERM)
        # The last record is the line it was killed in, with the state
        # before it ran.
        self.assertEqual(recs[-1].vars("Local"),
                         {"n": ("int", str(SLEEP_N)),
                          "total": ("int", str(sum(range(SLEEP_N)))),
                          "i": ("int", str(SLEEP_N - 1))})
        self.assertEqual(self.untraced_rc(["s.py", "3"], signal.SIGTERM),
                         rc, "exit status as untraced")

    def test_other_default_signals(self):
        self.script("s.py", SLEEP_SCRIPT)
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM,
                    signal.SIGQUIT, signal.SIGXCPU):
            with self.subTest(signal=sig.name):
                helpers.run(["rm", "-rf", ".tracer"], self.tmp)
                rc, out, err = self.signal_run(self.cli("s.py", "4"), sig,
                                               SLEEP_LINE)
                self.assertEqual(rc, -sig, err)
                recs, end = self.ended_log()
                self.assertEqual(where(recs), sleep_lines(4))
                self.assert_end(end, recs, sig=sig)

    def test_sigterm_through_the_api(self):
        self.script("a.py", API_SCRIPT)
        rc, _, err = self.signal_run([helpers.PYTHON, "a.py", "6"],
                                     signal.SIGTERM, 8)
        self.assertEqual(rc, -signal.SIGTERM, err)
        recs, end = self.ended_log()
        self.assertEqual(where(recs), loop_lines(4, 6, 2))
        self.assert_end(end, recs, sig=signal.SIGTERM)

    def check_crash(self, how, sig):
        """ABORT_SCRIPT's `how` dies of sig, as untraced, with every line
        and the end line in the log."""
        self.script("c.py", ABORT_SCRIPT)
        r = helpers.run(self.cli("c.py", how), self.tmp, env=self.env)
        self.assertEqual(r.returncode, -sig, r)
        recs, end = self.ended_log()
        self.assertEqual(where(recs), abort_lines(how))
        self.assert_end(end, recs, sig=sig)
        self.assertEqual(self.untraced_rc(["c.py", how]), r.returncode)

    def test_os_abort(self):
        self.check_crash("abort", signal.SIGABRT)

    def test_segfault_through_ctypes(self):
        self.check_crash("segv", signal.SIGSEGV)

    def test_segfault_with_faulthandler(self):
        """faulthandler, enabled before the tracer (-X faulthandler) or by
        the program after it, still prints its traceback, and the process
        still dies of SIGSEGV with the end line in the log."""
        self.script("c.py", ABORT_SCRIPT)
        for how, pyopts in (("segv", ("-X", "faulthandler")),
                            ("faulthandler", ())):
            with self.subTest(how=how, pyopts=pyopts):
                helpers.run(["rm", "-rf", ".tracer"], self.tmp)
                r = helpers.run(self.cli("c.py", how, pyopts=pyopts),
                                self.tmp, env=self.env)
                self.assertEqual(r.returncode, -signal.SIGSEGV, r)
                self.assertIn("Fatal Python error: Segmentation fault",
                              r.stderr)
                recs, end = self.ended_log()
                self.assertEqual(where(recs), abort_lines(how))
                self.assert_end(end, recs, sig=signal.SIGSEGV)

    def test_own_sigterm_handler(self):
        self.script("h.py", HANDLER_SCRIPT)
        rc, out, err = self.signal_run(self.cli("h.py", "3"), signal.SIGTERM,
                                       10)
        # Nothing on stderr but `steptrace run`'s closing line.
        self.assertEqual((rc, out, err),
                         (0, "ready\nhandled\n",
                          "steptrace: %d steps in .tracer/tracer.log\n"
                          % (6 + len(loop_lines(6, 3, 2)) + 3)))
        text = self.log()
        self.assertIsNone(split_end(text)[1], "the process did not die")
        recs = parse_log(text)
        self.assertEqual(where(recs),
                         [("<module>", 1), ("<module>", 2), ("<module>", 3),
                          ("<module>", 5), ("<module>", 13),
                          ("<module>", 14)]
                         + loop_lines(6, 3, 2)
                         + [("handler", 4), ("work", 11), ("work", 12)])

    def test_ctrl_c(self):
        self.script("s.py", SLEEP_SCRIPT)
        rc, out, err = self.signal_run(self.cli("s.py", "3"), signal.SIGINT,
                                       SLEEP_LINE)
        self.assertEqual(rc, 130, err)
        self.assertEqual(out, "ready\n")
        self.assertTrue(err.startswith("Traceback (most recent call last):"),
                        err)
        # The traceback, then `steptrace run`'s closing line.
        self.assertRegex(err, r"\nKeyboardInterrupt\nsteptrace: \d+ steps in "
                         r"\.tracer/tracer\.log\n\Z")
        text = self.log()
        self.assertIsNone(split_end(text)[1])
        self.assertEqual(where(parse_log(text)), sleep_lines(3))

    def test_getsignal_unchanged(self):
        self.script("g.py", GETSIGNAL_SCRIPT)
        traced = helpers.run(self.cli("g.py"), self.tmp, env=self.env)
        untraced = helpers.run([helpers.PYTHON, "g.py"], self.tmp,
                               env=self.env)
        self.assertEqual(traced.returncode, 0, traced)
        self.assertEqual(traced.stdout, untraced.stdout)

    # -- blocked programs --------------------------------------------------

    def test_blocked_program_is_seen_at_its_blocking_line(self):
        self.script("b.py", BLOCK_SCRIPT)
        run = self.start(self.cli("b.py", "5", "go"))
        self.assertEqual(run.out.next(30, "'blocking'"), "blocking\n")
        t0 = time.monotonic()
        path = self.path(".tracer", "tracer.log")
        needle = "b.py::work -- line %d\n" % BLOCK_LINE
        text = helpers.wait_until(
            lambda: self._read_if(path, lambda t: needle in t), SOON)
        took = time.monotonic() - t0
        self.assertTrue(text, "the blocking line is not in the log after "
                        "%d s:\n%s" % (SOON, self._tail(path)))
        self.assertIsNone(run.p.poll(), "the program ended")
        recs = parse_log(text)
        self.assertEqual(recs[-1].line, BLOCK_LINE,
                         "found after %.3f s" % took)
        run.kill()

    def test_tail_shows_the_blocking_line(self):
        self.script("b.py", BLOCK_SCRIPT)
        run = self.start(self.cli("b.py", "3", "wait"))
        first = run.out.next(30, "the socket line")
        self.assertTrue(first.startswith("socket "), first)
        sock = first.split(" ", 1)[1].strip()
        tail = Running(self, [helpers.PYTHON, "-m", "steptrace", "tail",
                              "--socket", sock], self.tmp, self.env)
        self.assertTrue(helpers.wait_until(
            lambda: self.status(sock).get("tail_subscribers") == 1, SOON),
            "tail did not subscribe")
        run.p.stdin.write(b"go\n")
        run.p.stdin.flush()
        self.assertEqual(run.out.next(30, "'blocking'"), "blocking\n")
        needle = "b.py::work -- line %d\n" % BLOCK_LINE
        seen = []
        deadline = time.monotonic() + SOON
        while not (seen and seen[-1].endswith(needle)) and \
                time.monotonic() < deadline:
            seen.append(tail.out.next(SOON, "the blocking line in tail"))
        self.assertTrue(seen[-1].endswith(needle), seen)
        self.assertIsNone(run.p.poll(), "the program ended")
        run.kill()
        tail.kill()

    # -- processes ----------------------------------------------------------

    def square_steps(self):
        """{x: number of complete square(x) calls} over every log, checking
        that each file's square records come in whole calls."""
        calls = {}
        for name in helpers.tracer_files(self.path(".tracer")):
            text = helpers.read(self.path(".tracer", name))
            body, end = split_end(text)
            if end is not None:
                self.assertEqual(end.group("sig"), "SIGTERM",
                                 "%s: %s" % (name, end.group(0)))
            recs = [r for r in parse_log(body) if r.func == "square"]
            self.assertEqual([r.line for r in recs],
                             [3, 4, 5] * (len(recs) // 3),
                             "%s: square's records are not whole calls"
                             % name)
            for r in recs[::3]:
                x = int(r.vars("Local")["x"][1])
                calls[x] = calls.get(x, 0) + 1
        return calls

    def test_fork_pool_twenty_times(self):
        self.script("p.py", POOL_SCRIPT)
        r = helpers.run(self.cli("p.py", "20"), self.tmp, env=self.env,
                        timeout=300)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "done [1, 4, 9] 0\n")
        # 20 pools of 3 forked workers.
        self.assertRegex(r.stderr, r"\Asteptrace: \d+ steps in "
                         r"\.tracer/tracer\.log; 60 child processes started "
                         r"\(each one traced has a file of its own in "
                         r"\.tracer\)\n\Z")
        calls = helpers.wait_until(
            lambda: (lambda c: c if c == {1: 20, 2: 20, 3: 20, 4: 20}
                     else None)(self.square_steps()), SOON)
        self.assertEqual(calls or self.square_steps(),
                         {1: 20, 2: 20, 3: 20, 4: 20},
                         "square(x) calls traced, by x")

    def test_fork_with_a_traced_at_fork_hook(self):
        """An after-fork hook registered before steptrace runs traced code
        in the child before steptrace's own hook would: those lines are
        the child's (its own file), and the parent's file is whole."""
        self.script("k.py", HOOK_FORK_SCRIPT)
        r = helpers.run([helpers.PYTHON, "k.py"], self.tmp, env=self.env,
                        timeout=120)
        self.assertEqual((r.returncode, r.stdout), (0, "done\n"), r)
        hook = ([("hook", 3)] + [("hook", 4), ("hook", 5)] * 40
                + [("hook", 4)])
        parent = [("main", 13)] + ([("main", 14), ("main", 15), ("main", 17)]
                                   + loop_lines(9, 300, 0)
                                   + [("main", 18), ("main", 13)]) * 20
        files = helpers.tracer_files(self.path(".tracer"))
        self.assertEqual(len(files), 21, files)
        whole = 0
        for name in files:
            text = self.log(name)
            # No line of steptrace's but the process tree's.
            self.assertNotIn("[steptrace]",
                             helpers.without_process_lines(text), name)
            recs = parse_log(text)
            helpers.assert_steps_contiguous(self, recs)
            if where(recs) == parent:
                whole += 1
            else:
                self.assertEqual(where(recs),
                                 hook + [("main", 15), ("main", 16)], name)
        self.assertEqual(whole, 1, "the parent's file")

    def test_executor_shutdown_and_pool_terminate(self):
        self.script("e.py", EXECUTOR_SCRIPT)
        r = helpers.run(self.cli("e.py"), self.tmp, env=self.env)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "done [1, 4, 9] [25, 36]\n")
        want = {1: 1, 2: 1, 3: 1, 5: 1, 6: 1}
        calls = helpers.wait_until(
            lambda: (lambda c: c if c == want else None)(self.square_steps()),
            SOON)
        self.assertEqual(calls or self.square_steps(), want)

    def test_sigkill_after_a_pause(self):
        self.script("s.py", SLEEP_SCRIPT)
        rc, out, err = self.signal_run(self.cli("s.py", "7"), signal.SIGKILL,
                                       SLEEP_LINE)
        self.assertEqual(rc, -signal.SIGKILL)
        recs, end = self.ended_log()
        self.assertEqual(where(recs), sleep_lines(7))
        self.assert_end(end, recs, vanished=True)
        if self.collector is not None:
            st = self.status(self.collector.sock)
            self.assertEqual(st.get("vanished"), 1, st)
            self.assertEqual(st.get("lost_vanished"), 0, st)

    def test_os_execv(self):
        self.script("x.py", EXEC_SCRIPT)
        r = helpers.run(self.cli("x.py"), self.tmp, env=self.env)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "exec ran\n", ""))
        recs, end = self.ended_log()
        self.assertEqual(where(recs),
                         [("<module>", 1), ("<module>", 2), ("<module>", 7)]
                         + loop_lines(3, 3, 1))
        self.assert_end(end, recs, exec_prog=helpers.PYTHON)


class EmbeddedCollectorTest(Durability, TempDirTest):
    """With the embedded default: a private collector."""


class ServiceCollectorTest(Durability, TempDirTest):
    """With a running steptraced on STEPTRACE_SOCKET."""

    SERVICE = True


if __name__ == "__main__":
    unittest.main()
