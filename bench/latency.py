#!/usr/bin/env python3
"""How soon a traced line's record is visible, and what a crash leaves.

    python3 bench/latency.py --build build/main            # ~1 min
    python3 bench/latency.py --build build/main --trials 200

docs/COLLECTOR.md section 11: records reach the collector within 20 ms of their
line, whether or not the program runs another line, and a blocked program's log
and `steptrace tail` show the line it is blocked on within 100 ms.

Each trial runs a real traced program (`steptrace run`) that does some
work, then reads CLOCK_MONOTONIC and blocks for ever on a lock: the
record of that line is committed right after the clock read.  This script
measures when that record shows up

  - in `steptrace tail` (the collector has taken and rendered it: an
    upper bound on "reaches the collector"), and
  - in the log file (written),

on the same clock, then kills the program with SIGKILL and checks that
its log ends with the "vanished" line.  Four situations: with a running
collector (`steptraced` on STEPTRACE_SOCKET) or the embedded default (a
private one per program), each with the collector busy (the program traced
lines up to the blocking one) or idle (the program slept 1 s first, long
enough for the collector to stop looking at its ring, so the agent has to
wake it).  Prints a Markdown table of the 50th, 90th and 99th percentiles
and the maximum, and the command that made it.

Standard library only.  Exit status 0 when every trial saw the record and
the end line, 1 otherwise, 2 for a usage error.  Nothing is judged by
speed.
"""
import argparse
import datetime
import os
import platform
import queue
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

SCRIPT = """\
import os, sys, threading, time
def work(n, idle):
    lock = threading.Lock()
    lock.acquire()
    total = 0
    for i in range(n):
        total += i
    if idle:
        time.sleep(1.0)
    t = time.monotonic_ns()
    lock.acquire()
print("socket", os.environ["STEPTRACE_SOCKET"], flush=True)
sys.stdin.readline()
work(int(sys.argv[1]), sys.argv[2] == "idle")
"""
BLOCK_LINE = 11
NEEDLE = "::work -- line %d\n" % BLOCK_LINE


def log(msg):
    sys.stderr.write("latency: %s\n" % msg)
    sys.stderr.flush()


def stage(build):
    """meson install --destdir of the build; (PYTHONPATH, steptraced)."""
    dest = tempfile.mkdtemp(prefix="stlat-stage-")
    subprocess.run(["meson", "install", "-C", build, "--destdir", dest,
                    "--no-rebuild", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    so = exe = None
    for root, _dirs, files in os.walk(dest):
        for f in files:
            if f.startswith("_agent") and f.endswith(".so"):
                so = os.path.join(root, f)
            if f == "steptraced":
                exe = os.path.join(root, f)
    if so is None or exe is None:
        raise SystemExit("latency: the install of %s lacks _agent or "
                         "steptraced" % build)
    return os.path.dirname(os.path.dirname(so)), exe


class Seen:
    """Reads a pipe in chunks (so that reading costs the measure nothing)
    and notes when `needle` first arrives (CLOCK_MONOTONIC ns)."""

    def __init__(self, pipe, needle):
        self.needle = needle
        self.at = None
        self.done = threading.Event()
        threading.Thread(target=self._pump, args=(pipe.fileno(),),
                         daemon=True).start()

    def _pump(self, fd):
        tail = b""
        needle = self.needle.encode()
        while True:
            chunk = os.read(fd, 1 << 16)
            now = time.monotonic_ns()
            if not chunk:
                break
            if needle in tail + chunk:
                self.at = now
                break
            tail = (tail + chunk)[-len(needle):]
        self.done.set()

    def wait(self, timeout):
        self.done.wait(timeout)
        return self.at


class Lines:
    """A pipe's lines with their arrival time (CLOCK_MONOTONIC ns)."""

    def __init__(self, pipe):
        self.q = queue.Queue()
        threading.Thread(target=self._pump, args=(pipe,),
                         daemon=True).start()

    def _pump(self, pipe):
        for raw in iter(pipe.readline, b""):
            self.q.put((time.monotonic_ns(), raw.decode("utf-8", "replace")))
        self.q.put((time.monotonic_ns(), None))

    def until(self, pred, timeout):
        """(time, line) of the first line with pred(line), or None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                t, line = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            if pred(line):
                return t, line


def file_seen(path, needle, timeout):
    """CLOCK_MONOTONIC ns when `needle` is first in the file (polled every
    0.2 ms), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                if needle in f.read():
                    return time.monotonic_ns()
        except OSError:
            pass
        time.sleep(0.0002)
    return None


def trial(py, env, work, idle, n):
    """One run: (tail ms, file ms, end line ok) or an error string."""
    logf = os.path.join(work, ".tracer", "tracer.log")
    subprocess.run(["rm", "-rf", os.path.join(work, ".tracer")])
    prog = subprocess.Popen([py, "-m", "steptrace", "run", "lat.py", str(n),
                             "idle" if idle else "busy"], cwd=work, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    tail = None
    try:
        out = Lines(prog.stdout)
        got = out.until(lambda l: l.startswith("socket "), 30)
        if got is None:
            return "the program did not start"
        sock = got[1].split(" ", 1)[1].strip()
        tail = subprocess.Popen([py, "-m", "steptrace", "tail", "--socket",
                                 sock], cwd=work, env=env,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        tail_seen = Seen(tail.stdout, NEEDLE)
        time.sleep(0.3)  # tail subscribes
        prog.stdin.write(b"go\n")
        prog.stdin.flush()
        seen_file = file_seen(logf, NEEDLE, 30)
        seen_tail = tail_seen.wait(30)
        # The clock read just before the blocking line: from the log's
        # previous record, the program's own `t`.
        with open(logf) as f:
            text = f.read()
        t_line = None
        for line in text.splitlines():
            if line.startswith("t: int :: "):
                t_line = int(line.split(" :: ")[1])
        if t_line is None or seen_file is None or seen_tail is None:
            return "the blocking line was not seen (file %s, tail %s)" % (
                seen_file is not None, seen_tail is not None)
        if prog.poll() is not None:
            return "the program ended"
        prog.send_signal(signal.SIGKILL)
        prog.wait()
        deadline = time.monotonic() + 10
        ok = False
        while time.monotonic() < deadline and not ok:
            with open(logf) as f:
                ok = "the process vanished after step" in f.read()
            time.sleep(0.01)
        return ((seen_tail - t_line) / 1e6, (seen_file - t_line) / 1e6, ok)
    finally:
        if prog.poll() is None:
            prog.kill()
            prog.wait()
        if tail is not None:
            tail.kill()
            tail.wait()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench/latency.py",
                                 description=__doc__.split("\n\n")[1])
    ap.add_argument("--build", default=os.path.join(REPO, "build", "main"),
                    help="a meson build of steptrace (default: %(default)s)")
    ap.add_argument("--python", default=None,
                    help="interpreter (default: the build's, else python3)")
    ap.add_argument("--trials", type=int, default=40,
                    help="runs per situation (default: %(default)s)")
    ap.add_argument("--lines", type=int, default=2000,
                    help="loop iterations before the blocking line "
                         "(default: %(default)s)")
    args = ap.parse_args(argv)
    py = args.python or "/usr/bin/python3"
    pythonpath, exe = stage(os.path.abspath(args.build))
    work = tempfile.mkdtemp(prefix="stlat-")
    with open(os.path.join(work, "lat.py"), "w") as f:
        f.write(SCRIPT)
    base = dict(os.environ, PYTHONPATH=pythonpath, STEPTRACED=exe,
                PYTHONDONTWRITEBYTECODE="1")
    base.pop("STEPTRACE_SOCKET", None)
    svc_sock = os.path.join(work, "svc.sock")
    svc = subprocess.Popen([exe, "--socket", svc_sock],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    rows, failures = [], []
    started = time.monotonic()
    try:
        for coll in ("running steptraced", "embedded (private)"):
            env = dict(base)
            if coll.startswith("running"):
                env["STEPTRACE_SOCKET"] = svc_sock
            for idle in (False, True):
                tails, files, ends = [], [], 0
                for k in range(args.trials):
                    r = trial(py, env, work, idle, args.lines)
                    if isinstance(r, str):
                        failures.append("%s, %s, trial %d: %s" % (
                            coll, "idle" if idle else "busy", k, r))
                        log("FAILED: " + failures[-1])
                        continue
                    tails.append(r[0])
                    files.append(r[1])
                    ends += r[2]
                log("%s, %s: %d trials" % (coll, "idle" if idle else "busy",
                                           len(tails)))
                rows.append((coll, "idle (woken)" if idle else "busy",
                             tails, files, ends))
    finally:
        svc.terminate()
        svc.wait()
    print("## Record latency, %s\n" % datetime.date.today().isoformat())
    print("Command: `python3 bench/latency.py%s`  " % "".join(
        " " + shlex.quote(a) for a in (argv if argv is not None
                                       else sys.argv[1:])))
    print("Machine: %s, %d cores, %s, load %.1f; took %.0f s.\n" % (
        platform.machine(), os.cpu_count() or 0, platform.platform(terse=True),
        os.getloadavg()[0], time.monotonic() - started))
    print("ms from the clock read just before the blocking line to its "
          "record in `steptrace tail` / in the log file (targets: 20 ms to "
          "the collector, 100 ms to the log and tail); then SIGKILL: "
          "trials whose log ends with the vanished line.\n")
    print("| collector | its state | trials | tail p50 | p90 | p99 | max | "
          "file p50 | p90 | p99 | max | vanished line |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for coll, state, tails, files, ends in rows:
        if not tails:
            print("| %s | %s | 0 | | | | | | | | | |" % (coll, state))
            continue
        print("| %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | "
              "%.1f | %.1f | %d/%d |" % (
                  coll, state, len(tails), pct(tails, 50), pct(tails, 90),
                  pct(tails, 99), max(tails), pct(files, 50), pct(files, 90),
                  pct(files, 99), max(files), ends, len(tails)))
    bad = failures + ["%s, %s: %d of %d logs lack the vanished line"
                      % (c, s, len(t) - e, len(t))
                      for c, s, t, _f, e in rows if e != len(t)]
    if bad:
        print("\n%d problem(s):" % len(bad))
        for b in bad:
            print("- " + b)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
