"""Chaos (issue 16 item 5, docs/RELIABILITY.md "Chaos"): a service collector
SIGKILLed and restarted at random moments while eight traced processes write
into it, some of them SIGKILLed too; every record is either in a log or
counted as lost, and the collector that is left holds nothing of the clients
once they are gone.

Short by default (6 collector kills, about 15 s; 3 under ASan, 20 to 60
s); STEPTRACE_CHAOS_ROUNDS=20 for the long run of docs/RELIABILITY.md,
STEPTRACE_CHAOS_SEED to replay a schedule (roughly: the timing is the
machine's), STEPTRACE_CHAOS_REPORT=FILE to write the figures as JSON.

What "executed" is.  A writer runs regions (`with t:`) of work(k, N, pause),
whose steps are known exactly (expected_steps), and appends one line to its
`progress` file after each region has ended.  For a writer that ends by
itself, executed = the regions in `progress`.  A writer SIGKILLed at a
random moment executed those regions plus part of the next one: it is held
to the same accounting for the regions it finished, and for the one it was
in, only to "what was written was executed" (its lost count would have been
written at the region's end, which never came) and, when its collector
outlived it, the log's "vanished after step N" line with N the steps of the
region in that file.

What "lost" is.  docs/COLLECTOR.md section 12 and docs/PROTOCOL.md section
2.1: when a collector dies, the agent counts as lost the records committed
since its last acknowledged FLUSH: at most that many, as the collector may
have written some of them before it died.  So the exact check is: the
records in the logs are each an executed step, each at most once, in
order; every executed step that is not in a log is counted in a
"[steptrace] N records lost in this region" line (also for a region whose
end was not confirmed: "N records were not written" on stderr, docs/CLI.md
section 8, is for when no collector can be reached, which never happens
here, so such a line fails the test); written + counted - executed (the
over-count) is what the dead collectors wrote after their last
acknowledgement; and a gap in a log only ever ends where a new file begins
(the agent goes on in a new file after each reconnection), never inside
one connection's file.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import unittest

import helpers
from helpers import TempDirTest, parse_log
from test_faults import Running, line_of, where, work_lines

# Under ASan (the CI's e2e run) everything, the checks too, is slower.
ROUNDS = int(os.environ.get("STEPTRACE_CHAOS_ROUNDS",
                            "3" if helpers.UNDER_ASAN else "6"))
SEED = int(os.environ.get("STEPTRACE_CHAOS_SEED", "0")) or \
    random.SystemRandom().randrange(1, 1 << 30)
REPORT = os.environ.get("STEPTRACE_CHAOS_REPORT")
WRITERS = 8
N = 400             # iterations of one region's loop
PAUSE = 0.01        # a sleep every 16 iterations: ~0.3 s per region

WORK = """\
import time


def work(k, n, pause):
    total = 0
    for i in range(n):
        total += i
        if i % 16 == 15:
            time.sleep(pause)
    return total
"""
L_TOTAL, L_FOR, L_ADD, L_IF, L_SLEEP, L_RETURN = 5, 6, 7, 8, 9, 10

# Regions back to back, a pause between them now and then (a writer idle
# when its collector dies finds the restarted one; a busy one starts a
# private collector: docs/COLLECTOR.md section 12).
WRITER = """\
import os, sys, time
from steptrace import Tracer
from chaoswork import work
n, pause, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
t = Tracer(variable_mode="CHANGED", max_log_bytes=0)
until = time.monotonic() + seconds
k = 0
with open("progress", "w") as prog:
    while time.monotonic() < until:
        k += 1
        with t:
            work(k, n, pause)
        prog.write("%d %s\\n" % (k, os.environ.get("STEPTRACE_SOCKET")))
        prog.flush()
        time.sleep(0.3 if k % 3 == 0 else 0.002)
"""

LOST_RE = re.compile(r"^\[steptrace\] (\d+) records? lost in this region$")
CUT_RE = re.compile(r"^\[steptrace\] 1 record lost in this region: the "
                    r"process ended while writing it$")
VANISHED_RE = re.compile(r"^\[steptrace\] the process vanished after step "
                         r"(\d+) without ending the region \(killed by "
                         r"SIGKILL or the out-of-memory killer\?\)$")
NOT_WRITTEN_RE = re.compile(r"^steptrace: .*\d+ records were not written$")
WARNING_RES = (
    re.compile(r"^steptrace: lost the connection to the collector at \S+ "
               r"\(.*\); reconnecting, and the records lost are counted in "
               r"the log$"),
    # A writer that starts while the collector is down or dying
    # (docs/COLLECTOR.md section 2).
    re.compile(r"^steptrace: .*; starting a private collector instead "
               r"\(start steptraced there or unset STEPTRACE_SOCKET\)$"),
)
FILE_RE = re.compile(r"^tracer(?:_(\d+))?\.log$")


def expected_steps(k, n):
    """The records of work(k, n, ...) as (k, i before the line, line)."""
    out = [(k, None, L_TOTAL), (k, None, L_FOR)]
    for i in range(n):
        out += [(k, i, L_ADD), (k, i, L_IF)]
        if i % 16 == 15:
            out.append((k, i, L_SLEEP))
        out.append((k, i, L_FOR))
    return out + [(k, n - 1, L_RETURN)]


STEPS_PER_REGION = len(expected_steps(1, N))


def claim_order(name):
    """tracer.log, tracer_1.log, ...: the order a process claims its
    files in (docs/LOG-FORMAT.md section 11; nothing is removed here)."""
    m = FILE_RE.match(name)
    return int(m.group(1) or 0) if m else -1


def read_file(path, work_py):
    """One log file as a list of items, in order: ("rec", ident, step,
    first_in_file) and ("line", text) for steptrace's own lines.  Every
    record is parsed strictly; ident comes from replaying the CHANGED-mode
    diffs of the work() frame (docs/LOG-FORMAT.md section 5.2)."""
    text = helpers.read(path)
    if text and not text.endswith("\n"):
        raise AssertionError("%s does not end with a newline" % path)
    items, chunk = [], []

    def flush():
        if chunk:
            items.append(("recs", parse_log("".join(chunk))))
            del chunk[:]

    for line in text.splitlines(True):
        if line.startswith("[steptrace] "):
            flush()
            items.append(("line", line[:-1]))
        else:
            chunk.append(line)
    flush()
    out, state, first = [], {}, True
    for kind, value in items:
        if kind == "line":
            out.append(("line", value))
            continue
        for rec in value:
            if rec.step == 1:
                state = {}
            if (rec.file, rec.func) != (work_py, "work"):
                raise AssertionError("%s: a record of %s::%s, not of this "
                                     "writer's work(): %r"
                                     % (path, rec.file, rec.func, rec))
            for line in rec.sections.get("Local", []):
                m = helpers.NEW_RE.match(line)
                if m:
                    state[m.group(1)] = m.group(3)
                    continue
                m = helpers.CHANGED_RE.match(line)
                if m:
                    if state.get(m.group(1)) != m.group(3):
                        raise AssertionError(
                            "%s: %r changes %s from %r, but it was %r"
                            % (path, line, m.group(1), m.group(3),
                               state.get(m.group(1))))
                    state[m.group(1)] = m.group(4)
                    continue
                m = helpers.DELETED_RE.match(line)
                state.pop(m.group(1), None)
            i = state.get("i")
            ident = (int(state["k"]), None if i is None else int(i),
                     rec.line)
            out.append(("rec", ident, rec.step, first))
            first = False
    return out


class Writer:
    def __init__(self, test, serial, seconds):
        self.serial = serial
        self.cwd = test.path("w%d" % serial)
        os.makedirs(self.cwd)
        helpers.write(os.path.join(self.cwd, "chaoswork.py"), WORK)
        helpers.write(os.path.join(self.cwd, "writer.py"), WRITER)
        self.err_path = os.path.join(self.cwd, "stderr")
        self.killed = False
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [helpers.PYTHON, "writer.py", str(N), str(PAUSE),
                 "%.2f" % seconds], cwd=self.cwd, env=test.env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err)
        self.started = time.monotonic()


class ChaosTest(TempDirTest):
    """Eight writers, a collector killed ROUNDS times, writers killed."""

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)
        self.rng = random.Random(SEED)
        self.sock = self.path("svc.sock")
        # Private collectors started by the writers put their sockets
        # under TMPDIR: here, so that they can be told from others.
        self.private_dir = self.path("tmp")
        os.makedirs(self.private_dir)
        self.env = helpers.environ(STEPTRACE_SOCKET=self.sock,
                                   TMPDIR=self.private_dir)
        self.writers = []
        self.addCleanup(self.kill_writers)
        self.fig = {"seed": SEED, "rounds": 0, "processes": 0,
                    "killed": 0, "executed": 0, "written": 0,
                    "written_unfinished": 0,
                    "lost_in_logs": 0,
                    "over_count": 0, "missing": 0, "files": 0,
                    "vanished_lines": 0, "restart_ms_max": 0,
                    "regions": 0, "regions_on_service": 0}

    def kill_writers(self):
        for w in self.writers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()

    # -- the collector ---------------------------------------------------

    def resources(self, pid):
        """(fds, VmRSS KiB, RssShmem KiB, memfd mappings) of a process."""
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/maps" % pid) as f:
            memfds = sum(1 for line in f if "/memfd:" in line)
        return (fds, helpers.proc_status_kib(pid, "VmRSS"),
                helpers.proc_status_kib(pid, "RssShmem"), memfds)

    def status(self):
        r = helpers.run([helpers.PYTHON, "-m", "steptrace", "daemon",
                         "status", "--socket", self.sock, "--json"],
                        self.tmp, env=self.env)
        self.assertEqual(r.returncode, 0, r)
        return json.loads(r.stdout)

    def private_collectors(self):
        """Live steptraced processes on a socket under our TMPDIR."""
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    argv = f.read().decode("utf-8", "replace").split("\0")
            except OSError:
                continue
            if argv and argv[0].endswith("steptraced") and \
                    any(a.startswith(self.private_dir + "/") for a in argv) \
                    and helpers.proc_alive(int(name)):
                out.append(int(name))
        return out

    # -- the writers -----------------------------------------------------

    def start_writer(self):
        w = Writer(self, len(self.writers), self.rng.uniform(2.0, 5.0))
        self.writers.append(w)
        return w

    def tend(self, live, until):
        """Until `until`: replaces the writers that ended, checking each."""
        while True:
            for k, w in enumerate(live):
                if w.proc.poll() is not None:
                    self.check_writer(w)
                    live[k] = self.start_writer()
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    # -- the checks ------------------------------------------------------

    def check_writer(self, w):
        """The accounting of the module docstring, for one writer."""
        rc = w.proc.wait()
        self.fig["processes"] += 1
        if w.killed:
            self.assertEqual(rc, -signal.SIGKILL)
            self.fig["killed"] += 1
        else:
            self.assertEqual(rc, 0, "writer %d: exit status %d; stderr: %s"
                             % (w.serial, rc, helpers.read(w.err_path)))
        path = os.path.join(w.cwd, "progress")
        if w.killed and not os.path.exists(path):
            progress = ""    # killed before it opened the file
        else:
            progress = helpers.read(path)
        done = len(progress.splitlines())
        self.assertEqual([int(line.split()[0])
                          for line in progress.splitlines()],
                         list(range(1, done + 1)))
        self.fig["regions"] += done
        self.fig["regions_on_service"] += sum(
            1 for line in progress.splitlines()
            if line.split()[1] == self.sock)
        # stderr: the warnings, and a count for a region whose end
        # could not be confirmed.
        for line in helpers.read(w.err_path).splitlines():
            # "N records were not written": counted, but not in a log,
            # when there was a collector to reconnect to (RegionEndTest).
            self.assertIsNone(NOT_WRITTEN_RE.match(line),
                              "writer %d: a region's lost records are "
                              "counted on stderr only: %r" % (w.serial, line))
            self.assertTrue(any(r.match(line) for r in WARNING_RES),
                            "writer %d: unexpected stderr line %r"
                            % (w.serial, line))
        # The logs, in the order they were claimed.
        log_dir = os.path.join(w.cwd, ".tracer")
        names = sorted(os.listdir(log_dir) if os.path.isdir(log_dir)
                       else [], key=claim_order)
        for name in names:
            self.assertGreaterEqual(claim_order(name), 0,
                                    "writer %d: unexpected file %s"
                                    % (w.serial, name))
        self.fig["files"] += len(names)
        work_py = os.path.join(w.cwd, "chaoswork.py")
        files = [read_file(os.path.join(log_dir, n), work_py) for n in names]
        regions = done + (1 if w.killed else 0)
        expected = []
        for k in range(1, regions + 1):
            expected += expected_steps(k, N)
        pos = {ident: j for j, ident in enumerate(expected)}
        written = [False] * len(expected)
        last = -1
        lost_log = 0
        seam_after = set()     # positions written first in their file
        for fi, items in enumerate(files):
            for x, item in enumerate(items):
                if item[0] == "rec":
                    ident = item[1]
                    self.assertIn(ident, pos, "writer %d, %s: a record "
                                  "that was never executed: %r"
                                  % (w.serial, names[fi], ident))
                    j = pos[ident]
                    self.assertGreater(j, last, "writer %d, %s: record %r "
                                       "written twice or out of order"
                                       % (w.serial, names[fi], ident))
                    written[j] = True
                    last = j
                    if item[3]:
                        seam_after.add(j)
                    continue
                line = item[1]
                m = LOST_RE.match(line)
                if m:
                    lost_log += int(m.group(1))
                    continue
                if CUT_RE.match(line):
                    self.assertTrue(w.killed, line)
                    lost_log += 1
                    continue
                m = VANISHED_RE.match(line)
                self.assertTrue(m and w.killed, "writer %d, %s: unexpected "
                                "line %r" % (w.serial, names[fi], line))
                self.assertEqual((fi, x), (len(files) - 1, len(items) - 1),
                                 "the vanished line is not the last line "
                                 "of the last file")
                steps = 0
                for y in range(x - 1, -1, -1):
                    if items[y][0] == "rec":
                        steps = items[y][2]
                        break
                self.assertEqual(int(m.group(1)), steps,
                                 "writer %d: vanished after step %s, but "
                                 "the region's last step in %s is %d"
                                 % (w.serial, m.group(1), names[fi], steps))
                self.fig["vanished_lines"] += 1
        # Counted: the regions the writer finished.
        end = done * STEPS_PER_REGION
        n_written = sum(written[:end])
        missing = end - n_written
        self.assertGreaterEqual(
            n_written + lost_log, end,
            "writer %d: %d steps executed, %d written, %d counted lost: "
            "%d lost without a count"
            % (w.serial, end, n_written, lost_log,
               end - n_written - lost_log))
        # Over-counted records were written by a collector that died
        # before it acknowledged them: they belong to the region that was
        # open in a file that a reconnection ended, so there are no more
        # than the records of the last region of every file but the last.
        if not w.killed:
            bound = sum(next((it[2] for it in reversed(items)
                              if it[0] == "rec"), 0)
                        for items in files[:-1])
            self.assertLessEqual(n_written + lost_log - end, bound,
                                 "writer %d: more records counted lost "
                                 "than could have been" % w.serial)
        # A gap ends where a file begins (or at the end).
        j = 0
        while j < end:
            if written[j]:
                j += 1
                continue
            gap = j
            while j < end and not written[j]:
                j += 1
            self.assertTrue(j == end or j in seam_after,
                            "writer %d: steps %r..%r are missing from the "
                            "middle of one file (not at a reconnection)"
                            % (w.serial, expected[gap], expected[j - 1]))
        self.fig["executed"] += end
        self.fig["written"] += n_written
        self.fig["written_unfinished"] += sum(written[end:])
        self.fig["lost_in_logs"] += lost_log
        self.fig["missing"] += missing
        self.fig["over_count"] += n_written + lost_log - end
        # Its files are checked: free the disk for the next ones.
        for n in names:
            os.unlink(os.path.join(log_dir, n))

    # -- the test --------------------------------------------------------

    def test_collector_and_writers_killed_at_random(self):
        t0 = time.monotonic()
        col = helpers.Collector(self, self.sock).start()
        time.sleep(0.3)
        base = self.resources(col.proc.pid)
        live = [self.start_writer() for _ in range(WRITERS)]
        for rnd in range(ROUNDS):
            self.tend(live, time.monotonic() + self.rng.uniform(0.3, 1.8))
            if self.rng.random() < 0.6:
                victim = self.rng.choice(live)
                if victim.proc.poll() is None:
                    victim.killed = True
                    victim.proc.kill()
                self.tend(live, time.monotonic() +
                          self.rng.uniform(0.05, 0.8))
            col.proc.kill()
            self.assertEqual(col.proc.wait(timeout=10), -signal.SIGKILL)
            t = time.monotonic()
            col = helpers.Collector(self, self.sock).start()
            self.fig["restart_ms_max"] = max(
                self.fig["restart_ms_max"],
                round((time.monotonic() - t) * 1000))
            self.fig["rounds"] += 1
        # The last writers end by themselves.
        self.tend([], time.monotonic() + 0.5)
        for w in live:
            try:
                w.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.fail("writer %d did not end (a hang); stderr: %s"
                          % (w.serial, helpers.read(w.err_path)))
            self.check_writer(w)
        # Every client of the last collector is gone: it holds what it
        # held when it was idle, and no ring.
        pid = col.proc.pid
        self.assertTrue(helpers.wait_until(
            lambda: self.resources(pid)[0] <= base[0] and
            self.status()["connections_open"] == 1, 10),
            "fds %r (idle: %r), status %r"
            % (self.resources(pid), base, self.status()))
        fds, rss, shmem, memfds = self.resources(pid)
        self.assertEqual(fds, base[0], "fds of the collector")
        self.assertEqual((shmem, memfds), (0, 0),
                         "the collector still maps a ring")
        if not helpers.UNDER_ASAN:   # memory figures mean nothing there
            self.assertLessEqual(rss, base[1] + 4096,
                                 "RSS %d KiB once the clients are gone, "
                                 "%d KiB when it started" % (rss, base[1]))
        self.fig.update(fds_idle=base[0], fds_after=fds, rss_idle=base[1],
                        rss_after=rss)
        # Private collectors exit 2 s after their last client; the killed
        # ones were reaped above.
        helpers.wait_until(lambda: not self.private_collectors(), 10)
        self.assertEqual(self.private_collectors(), [],
                         "private collectors left running")
        col.stop_and_check()
        self.fig["seconds"] = round(time.monotonic() - t0, 1)
        self.assertGreater(self.fig["executed"], 0)
        sys.stderr.write("\nchaos: %s\n" % json.dumps(self.fig))
        if REPORT:
            with open(REPORT, "w") as f:
                json.dump(self.fig, f, indent=1)


# The collector is SIGSTOPped inside the second region, which then runs
# work(5) and ends: its end waits for an ACK that never comes, and the test
# SIGKILLs the collector during that wait.
END_SCRIPT = """\
import os, signal, sys
from steptrace import Tracer
victim = int(sys.argv[1])
def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
t = Tracer()
with t:
    r1 = work(10)
with t:
    os.kill(victim, signal.SIGSTOP)
    while True:
        with open("/proc/%d/stat" % victim) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                break
    r2 = work(5)
    print("ending", flush=True)
print("r1", r1, "r2", r2, flush=True)
"""


AGAIN_SCRIPT = """\
import sys
from steptrace import Tracer
def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
t = Tracer()
with t:
    work(10)
with t:
    print("a", flush=True); sys.stdin.readline()
    work(0)
    print("b", flush=True); sys.stdin.readline()
    r = work(4)
print("done", r, flush=True)
"""


class RegionEndTest(TempDirTest):
    """A collector that dies while a region's end waits for its ACK."""

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)

    def test_lost_count_of_an_unconfirmed_end_is_in_the_log(self):
        sock = self.path("s.sock")
        col = helpers.Collector(self, sock).start()
        self.script("end.py", END_SCRIPT)
        run = Running(self, [helpers.PYTHON, "end.py", str(col.proc.pid)],
                      self.tmp, helpers.environ(STEPTRACE_SOCKET=sock))
        self.assertEqual(run.out.next(30, "'ending'"), "ending\n")
        # The region's end is (or is about to be) waiting for the ACK of
        # the stopped collector; kill it during the wait.
        time.sleep(0.5)
        col.proc.kill()
        col.proc.wait()
        rc, out, err = run.finish(helpers.TIMEOUT)
        self.assertEqual((rc, out), (0, "ending\nr1 45 r2 10\n"), err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, "expected the one warning; got "
                         "%r" % err)
        self.assertTrue(lines[0].startswith(
            "steptrace: lost the connection to the collector at %s" % sock),
            lines[0])
        # The first region is whole; the second one's records went to the
        # dead collector, which wrote none of them (it was stopped): all
        # 13 are counted, in the new file the agent goes on in.
        self.assertEqual(helpers.tracer_files(self.path(".tracer")),
                         ["tracer.log", "tracer_1.log"])
        w = line_of(END_SCRIPT, "def work(n):")
        self.assertEqual(where(self.records("tracer.log")), work_lines(w, 10))
        self.assertEqual(self.log("tracer_1.log"),
                         "[steptrace] 13 records lost in this region\n")


    def test_region_ending_before_a_reconnection_is_due(self):
        # The agent reconnects to the restarted collector C2; C2 dies
        # within the second, work(4) runs with no connection (a
        # reconnection is tried at most once a second), and the region
        # ends: its lost records are counted in a new file all the same.
        sock = self.path("s.sock")
        c1 = helpers.Collector(self, sock).start()
        self.script("again.py", AGAIN_SCRIPT)
        run = Running(self, [helpers.PYTHON, "again.py"], self.tmp,
                      helpers.environ(STEPTRACE_SOCKET=sock))
        self.assertEqual(run.out.next(30, "'a'"), "a\n")
        c1.proc.kill()
        c1.proc.wait()
        # The agent's watcher thread notices C1's end on its own time and
        # then says so, once: until it has, the agent takes the connection
        # for a live one, and work(0) would go to the dead C1's ring (its
        # records counted as lost) with no reconnection to C2 at all.
        warning = run.err.next(30, "the warning about the lost collector")
        self.assertTrue(warning.startswith(
            "steptrace: lost the connection to the collector at %s" % sock),
            warning)
        c2 = helpers.Collector(self, sock).start()
        run.p.stdin.write(b"go\n")
        run.p.stdin.flush()
        self.assertEqual(run.out.next(30, "'b'"), "b\n")
        c2.proc.kill()
        c2.proc.wait()
        run.p.stdin.write(b"go\n")
        run.p.stdin.flush()
        rc, out, err = run.finish(helpers.TIMEOUT)
        self.assertEqual((rc, out), (0, "a\nb\ndone 6\n"), err)
        self.assertEqual(err, warning, "expected the one warning")
        files = helpers.tracer_files(self.path(".tracer"))
        w = line_of(AGAIN_SCRIPT, "def work(n):")
        self.assertEqual(where(self.records(files[0])), work_lines(w, 10))
        # work(0)'s 3 records went to C2, which may have written them
        # before it died; work(4)'s 11 were never sent.
        written = sum(len(self.records(f)) for f in files[1:-1])
        text = self.log(files[-1])
        m = re.match(r"^\[steptrace\] (\d+) records lost in this region\n"
                     r"\Z", text)
        self.assertIsNotNone(m, "the last file %s does not hold the count "
                             "alone: %r (files %r)" % (files[-1], text, files))
        lost = int(m.group(1))
        self.assertLessEqual(11, lost)
        self.assertLessEqual(lost, 14)
        self.assertGreaterEqual(written + lost, 14)


if __name__ == "__main__":
    unittest.main()
