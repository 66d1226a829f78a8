"""steptraced as a service (docs/COLLECTOR.md), with real processes: many
traced programs into one collector (load, memory, no loss, no mixing),
`steptrace daemon start|stop|status`, `steptrace tail`, the systemd user
unit, socket hygiene, a full disk, SIGTERM, rotation, hostile input and
descriptors after many connections.

Sizes are reduced for CI; STEPTRACE_LOAD_STEPS (default 20000) sets the
steps (records) per process of the load test, 100000 being the full size
of the issue (bench/collector/run.py measures throughput).  Every test is bounded
in time: a hang fails it.
"""
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import unittest

import helpers
from helpers import TempDirTest, parse_log

LOAD_PROCS = 16
LOAD_STEPS = int(os.environ.get("STEPTRACE_LOAD_STEPS", "20000"))
RSS_LIMIT_KIB = 64 * 1024
LOST_LINE_RE = re.compile(r"^\[steptrace\] ([0-9]+) records lost: (.*)\n",
                          re.M)

WORK = """\
def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
"""


def prog(body):
    """A script: work() and then `body` (dedented)."""
    return WORK + helpers.dedent(body)


def work_records(n):
    """Records of one call work(n): total = 0, the loop (two lines per
    turn and the last test), return."""
    return 2 * n + 3


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


HELLO = frame(bytes([0x96, 0x01, helpers.WIRE_VERSION, 0x01]) + b"\xa4test\x00\x00")


class WireVersionTest(unittest.TestCase):

    def test_control_client_speaks_the_collectors_version(self):
        from steptrace import daemonctl
        self.assertEqual(daemonctl.WIRE_VERSION, helpers.WIRE_VERSION)


kib = helpers.proc_status_kib


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Steptraced:
    """A real steptraced started with --ready-fd, extra arguments and
    environment; stopped (and checked) by the test or killed at cleanup."""

    def __init__(self, test, sock, args=(), env=None):
        self.test = test
        self.sock = sock
        self.err_path = sock + ".stderr"
        exe = helpers.require_collector(test)
        rfd, wfd = os.pipe()
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [exe, "--socket", sock, "--ready-fd", str(wfd)] + list(args),
                pass_fds=(wfd,), stdin=subprocess.DEVNULL, stdout=err,
                stderr=err, env=env if env is not None else helpers.environ())
        os.close(wfd)
        try:
            ready, _, _ = select.select([rfd], [], [], 15)
            line = os.read(rfd, 16) if ready else b""
        finally:
            os.close(rfd)
        test.addCleanup(self.kill)
        if not line.startswith(b"ready"):
            raise AssertionError("steptraced did not start: %r" % self.log())
        self.pid = self.proc.pid

    def log(self):
        try:
            return helpers.read(self.err_path)
        except OSError:
            return ""

    def status(self):
        """The counters, through `steptrace daemon status --json`."""
        r = helpers.run([helpers.PYTHON, "-m", "steptrace", "daemon",
                         "status", "--json", "--socket", self.sock],
                        self.test.tmp)
        self.test.assertEqual(r.returncode, 0, r)
        return json.loads(r.stdout)

    def stop(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("steptraced did not exit within %d s of "
                                 "SIGTERM" % timeout)
        self.test.assertEqual(rc, 0, "steptraced exit status; its log: %r"
                              % self.log())
        self.test.assertFalse(os.path.exists(self.sock))
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def records_and_losses(text):
    """(records, [(count, why)]) of a log that may hold loss lines."""
    losses = [(int(m.group(1)), m.group(2))
              for m in LOST_LINE_RE.finditer(text)]
    return parse_log(LOST_LINE_RE.sub("", text)), losses


class ServiceTest(TempDirTest):

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)

    def collector(self, *args, env=None, name="s.sock"):
        return Steptraced(self, self.path(name), args, env)

    def traced(self, cwd, script, *args, sock=None, timeout=helpers.TIMEOUT,
               env=None):
        env = env or helpers.environ(STEPTRACE_SOCKET=sock)
        return helpers.python(cwd, script, *args, env=env, timeout=timeout)

    def steptrace(self, *args, env=None, timeout=helpers.TIMEOUT):
        return helpers.run([helpers.PYTHON, "-m", "steptrace"] + list(args),
                           self.tmp, env=env, timeout=timeout)

    # -- many writers, one collector --------------------------------------

    def test_sixteen_processes_no_loss_bounded_memory(self):
        col = self.collector()
        self.script("load.py", prog("""\
            import sys
            from steptrace import Tracer
            with Tracer():
                work(int(sys.argv[1]) // 2)
            print("done")
            """))
        env = helpers.environ(STEPTRACE_SOCKET=col.sock)
        procs = [subprocess.Popen([helpers.PYTHON, "load.py", str(LOAD_STEPS)],
                                  cwd=self.tmp, env=env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 for _ in range(LOAD_PROCS)]
        deadline = time.monotonic() + 300
        for p in procs:
            out, err = p.communicate(timeout=max(1, deadline -
                                                 time.monotonic()))
            self.assertEqual((p.returncode, out, err), (0, b"done\n", b""))
        hwm = kib(col.pid, "VmHWM")
        st = col.status()
        files = helpers.tracer_files(self.path(".tracer"))
        self.assertEqual(len(files), LOAD_PROCS, files)
        want = work_records(LOAD_STEPS // 2)    # LOAD_STEPS + 3 records
        for name in files:
            recs = self.records(name)
            self.assertEqual([r.step for r in recs], list(range(1, want + 1)),
                             "%s: steps missing or out of order" % name)
        self.assertEqual(st["records_in"], LOAD_PROCS * want)
        self.assertEqual(st["records_written"], LOAD_PROCS * want)
        for k in ("dropped_write", "dropped_open", "dropped_nomem",
                  "lost_agent", "protocol_errors"):
            self.assertEqual(st[k], 0, k)
        # (A collector built with AddressSanitizer keeps shadow memory and
        # a quarantine: its RSS says nothing about ours.)
        if not self._sanitized(col.pid):
            self.assertLess(hwm, RSS_LIMIT_KIB, "collector peak RSS %d KiB; "
                            "status %r" % (hwm, st))
        sys.stderr.write("\n[load] %d processes x %d steps: %d records, "
                         "%.1f MiB written, collector peak RSS %.1f MiB, "
                         "pending peak %.1f MiB, %d pauses\n"
                         % (LOAD_PROCS, LOAD_STEPS, st["records_written"],
                            st["bytes_written"] / 1048576.0, hwm / 1024.0,
                            st["pending_peak"] / 1048576.0, st["pauses"]))
        col.stop()

    @staticmethod
    def _sanitized(pid):
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()

    def test_processes_threads_forks_subprocesses_one_collector(self):
        col = self.collector()
        self.script("child.py", prog("""\
            from steptrace import Tracer
            with Tracer():
                work(7)
            """))
        self.script("main.py", prog("""\
            import os, subprocess, sys, threading
            from steptrace import Tracer
            t = Tracer()
            def in_thread(n):
                with Tracer():
                    work(n)
            with t:
                work(5)
            threads = [threading.Thread(target=in_thread, args=(k,))
                       for k in (11, 13)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            pid = os.fork()
            if pid == 0:
                with Tracer():
                    work(17)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            r = subprocess.run([sys.executable, "child.py"])
            print(status, r.returncode)
            """))
        r = self.traced(self.tmp, "main.py", sock=col.sock)
        self.assertEqual((r.returncode, r.stdout), (0, "0 0\n"), r)
        # One file per traced region of its own Tracer, whoever wrote it;
        # each holds exactly its region, numbered from 1.
        counts = sorted(len(self.records(f))
                        for f in helpers.tracer_files(self.path(".tracer")))
        self.assertEqual(counts, sorted(work_records(n)
                                        for n in (5, 11, 13, 17, 7)), r)
        st = col.status()
        self.assertGreaterEqual(st["connections"], 3)
        self.assertEqual(st["dropped_write"] + st["lost_agent"], 0)
        col.stop()

    def test_records_of_two_processes_never_mix(self):
        col = self.collector()
        self.script("w.py", prog("""\
            import sys
            from steptrace import Tracer
            with Tracer(log_dir=sys.argv[1]):
                for k in range(20):
                    work(50)
            """))
        env = helpers.environ(STEPTRACE_SOCKET=col.sock)
        # Both in the same directory: two files, claimed one each.
        procs = [subprocess.Popen([helpers.PYTHON, "w.py", "shared"],
                                  cwd=self.tmp, env=env) for _ in range(2)]
        for p in procs:
            self.assertEqual(p.wait(helpers.TIMEOUT), 0)
        names = helpers.tracer_files(self.path("shared"))
        self.assertEqual(names, ["tracer.log", "tracer_1.log"])
        for name in names:
            recs = self.records(name, log_dir="shared")
            self.assertEqual([r.step for r in recs],
                             list(range(1, 20 * work_records(50) + 1)))
        col.stop()

    # -- daemon start | status | stop --------------------------------------

    def test_daemon_start_status_stop(self):
        runtime = self.path("run")
        os.mkdir(runtime, 0o700)
        env = helpers.environ(XDG_RUNTIME_DIR=runtime)
        sock = os.path.join(runtime, "steptrace", "steptraced.sock")
        r = self.steptrace("daemon", "status", env=env)
        self.assertEqual(r.returncode, 3, r)
        self.assertIn("not running", r.stdout)
        r = self.steptrace("daemon", "start", env=env)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(sock, r.stdout)
        self.addCleanup(self._kill_at, sock)
        self.assertTrue(helpers.is_socket(sock))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode),
                         0o700)
        # A second start finds it running.
        r = self.steptrace("daemon", "start", env=env)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("already running", r.stderr)
        self.script("a.py", prog("""\
            from steptrace import Tracer
            with Tracer():
                work(10)
            """))
        self.assertEqual(self.traced(self.tmp, "a.py", sock=sock).returncode,
                         0)
        r = self.steptrace("daemon", "status", env=env)
        self.assertEqual(r.returncode, 0, r)
        for label in ("connections", "records in", "records written",
                      "bytes written", "dropped", "rotations",
                      "write errors"):
            self.assertIn(label, r.stdout)
        self.assertRegex(r.stdout, r"records written +%d\b"
                         % work_records(10))
        r = self.steptrace("daemon", "status", "--json", env=env)
        st = json.loads(r.stdout)
        self.assertTrue(st["running"])
        self.assertEqual(st["records_written"], work_records(10))
        pid = st["pid"]
        r = self.steptrace("daemon", "stop", env=env)
        self.assertEqual(r.returncode, 0, r)
        self.assertFalse(helpers.proc_alive(pid))
        self.assertFalse(os.path.exists(sock))
        r = self.steptrace("daemon", "status", env=env)
        self.assertEqual(r.returncode, 3, r)
        r = self.steptrace("daemon", "stop", env=env)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("not running", r.stderr)

    def test_a_running_service_is_used_without_steptrace_socket(self):
        # `steptrace daemon start`, then a traced program with no
        # STEPTRACE_SOCKET: its records go to the service (its counters),
        # and its children are pointed at the same socket.
        runtime = self.path("run")
        os.mkdir(runtime, 0o700)
        env = helpers.environ(XDG_RUNTIME_DIR=runtime)
        sock = os.path.join(runtime, "steptrace", "steptraced.sock")
        r = self.steptrace("daemon", "start", env=env)
        self.assertEqual(r.returncode, 0, r)
        self.addCleanup(self._kill_at, sock)
        self.script("a.py", prog("""\
            import os
            from steptrace import Tracer
            with Tracer():
                work(10)
            print(os.environ.get("STEPTRACE_SOCKET"))
            """))
        r = self.traced(self.tmp, "a.py", env=env)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout.strip(), sock)
        self.assertEqual(r.stderr, "")
        st = json.loads(self.steptrace("daemon", "status", "--json",
                                       env=env).stdout)
        self.assertEqual(st["records_written"], work_records(10))
        self.assertEqual(len(self.records()), work_records(10))
        # Stopped, with a stale socket file left at the path: a private
        # collector, quietly.
        self.assertEqual(self.steptrace("daemon", "stop", env=env).returncode,
                         0)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(sock)
        stale.close()
        shutil.rmtree(self.path(".tracer"))
        r = self.traced(self.tmp, "a.py", env=env)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "")
        self.assertNotEqual(r.stdout.strip(), sock)
        self.assertEqual(len(self.records()), work_records(10))

    def test_default_socket_in_tmp_without_runtime_dir(self):
        d = "/tmp/steptrace-%d" % os.getuid()
        if os.path.lexists(d):
            self.skipTest("%s exists (in use): not touching it" % d)
        self.addCleanup(shutil.rmtree, d, True)
        env = helpers.environ(XDG_RUNTIME_DIR=None)
        sock = os.path.join(d, "steptraced.sock")
        self.addCleanup(self._kill_at, sock)
        r = self.steptrace("daemon", "start", env=env)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(sock, r.stdout)
        self.assertEqual(stat.S_IMODE(os.lstat(d).st_mode), 0o700)
        self.assertTrue(helpers.is_socket(sock))
        r = self.steptrace("daemon", "stop", env=env)
        self.assertEqual(r.returncode, 0, r)
        shutil.rmtree(d)
        # A shared /tmp: a directory others can enter is not used.
        os.mkdir(d, 0o755)
        os.chmod(d, 0o755)
        r = helpers.run([helpers.steptraced_path()], self.tmp, env=env)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("is not a private directory", r.stderr)
        self.assertFalse(os.path.exists(sock))

    def _kill_at(self, sock):
        for pid in helpers.pids_with_arg(sock):
            os.kill(pid, signal.SIGKILL)

    def test_daemon_start_with_config_and_pid_file(self):
        sock = self.path("c.sock")
        pid_file = self.path("c.pid")
        own = self.path("own.log")
        helpers.write(self.path("c.yaml"), """\
            socket: %s
            log_file: %s
            max_pending_bytes: 33554432
            """ % (sock, own))
        r = self.steptrace("daemon", "start", "--config", self.path("c.yaml"),
                           "--pid-file", pid_file)
        self.assertEqual(r.returncode, 0, r)
        self.addCleanup(self._kill_at, sock)
        pid = int(helpers.read(pid_file))
        st = json.loads(self.steptrace("daemon", "status", "--json",
                                       "--config", self.path("c.yaml")).stdout)
        self.assertEqual((st["pid"], st["max_pending_bytes"]), (pid, 32 << 20))
        self.assertIn("listening on %s" % sock, helpers.read(own))
        r = self.steptrace("daemon", "stop", "--config", self.path("c.yaml"))
        self.assertEqual(r.returncode, 0, r)
        self.assertFalse(os.path.exists(pid_file))

    def test_config_error_is_one_line_with_position(self):
        bad = helpers.write(self.path("bad.yaml"), """\
            socket: /tmp/x.sock
            max_log_files: many
            """)
        r = helpers.run([helpers.steptraced_path(), "--config", bad],
                        self.tmp)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stderr, "steptraced: %s:2:16: max_log_files must "
                         "be a whole number\n" % bad)
        r = self.steptrace("daemon", "start", "--config", bad,
                           "--socket", self.path("x.sock"))
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("%s:2:16" % bad, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r)

    # -- tail --------------------------------------------------------------

    def _tail(self, col, *args):
        """A `steptrace tail` process, once the collector counts it."""
        p = subprocess.Popen([helpers.PYTHON, "-m", "steptrace", "tail",
                              "--socket", col.sock] + list(args),
                             cwd=self.tmp, env=helpers.environ(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(self._stop_proc, p)
        self._tails = getattr(self, "_tails", 0) + 1
        self.assertTrue(helpers.wait_until(
            lambda: col.status()["tail_subscribers"] >= self._tails, 15),
            "tail did not subscribe")
        return p

    @staticmethod
    def _stop_proc(p):
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    @staticmethod
    def _read_until(p, pred, timeout=30):
        out = b""
        deadline = time.monotonic() + timeout
        fd = p.stdout.fileno()
        while not pred(out.decode("utf-8", "replace")):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("tail output so far: %r" % out[-2000:])
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
        return out.decode("utf-8", "replace")

    def test_tail_follows_several_processes(self):
        col = self.collector()
        tail = self._tail(col)
        self.script("t.py", prog("""\
            from steptrace import Tracer
            with Tracer():
                work(3)
            """))
        for d in ("a", "b"):
            os.mkdir(self.path(d))
            shutil.copy(self.path("t.py"), self.path(d, "t.py"))
            self.assertEqual(self.traced(self.path(d), "t.py",
                                         sock=col.sock).returncode, 0)
        files = [self.path(d, ".tracer", "tracer.log") for d in ("a", "b")]
        texts = [helpers.read(f) for f in files]
        out = self._read_until(tail, lambda o: all(t in o for t in texts)
                               and files[1] in o)
        headers = re.findall(r"^==> pid ([0-9]+): (.*) <==$", out, re.M)
        self.assertEqual([h[1] for h in headers], files, out)
        self.assertNotEqual(headers[0][0], headers[1][0])
        # Each section is exactly that file's text.
        sections = re.split(r"^==> pid [0-9]+: .* <==\n", out, flags=re.M)
        self.assertEqual([s.rstrip("\n") for s in sections[1:]],
                         [t.rstrip("\n") for t in texts])

    def test_tail_filters_by_file_and_pid(self):
        col = self.collector()
        by_file = self._tail(col, "--file", "*/b/.tracer/*")
        self.script("t.py", prog("""\
            import os, sys
            from steptrace import Tracer
            print(os.getpid(), flush=True)
            sys.stdin.readline()
            with Tracer():
                work(2)
            """))
        os.mkdir(self.path("a"))
        os.mkdir(self.path("b"))
        env = helpers.environ(STEPTRACE_SOCKET=col.sock)
        procs = {d: subprocess.Popen([helpers.PYTHON, self.path("t.py")],
                                     cwd=self.path(d), env=env,
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
                 for d in ("a", "b")}
        pid_a = int(procs["a"].stdout.readline())
        by_pid = self._tail(col, "--pid", str(pid_a))
        for d in ("a", "b"):
            out, _ = procs[d].communicate(b"go\n", timeout=helpers.TIMEOUT)
            self.assertEqual(procs[d].returncode, 0)
        a_log = self.path("a", ".tracer", "tracer.log")
        b_log = self.path("b", ".tracer", "tracer.log")
        out = self._read_until(by_file, lambda o: helpers.read(b_log) in o)
        self.assertNotIn(a_log, out)
        out = self._read_until(by_pid, lambda o: helpers.read(a_log) in o)
        self.assertNotIn(b_log, out)
        self.assertIn("==> pid %d: %s <==" % (pid_a, a_log), out)

    def test_tail_without_collector_fails_clearly(self):
        r = self.steptrace("tail", "--socket", self.path("none.sock"))
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("not running", r.stderr)
        r = self.steptrace("tail", "--pid", "x")
        self.assertEqual(r.returncode, 2, r)

    # -- the systemd user unit ---------------------------------------------

    def _unit(self):
        exe = helpers.steptraced_path()
        if os.path.basename(os.path.dirname(exe)) != "bin":
            self.skipTest("STEPTRACED is not an installed steptraced "
                          "(bin/steptraced): no unit next to it")
        prefix = os.path.dirname(os.path.dirname(exe))
        unit = os.path.join(prefix, "share", "systemd", "user",
                            "steptraced.service")
        self.assertTrue(os.path.isfile(unit), "no unit at %s" % unit)
        text = helpers.read(unit)
        m = re.search(r"^ExecStart=(\S+)(.*)$", text, re.M)
        self.assertIsNotNone(m, text)
        return unit, text, m.group(1), m.group(2).split()

    def test_systemd_unit_runs_the_installed_collector(self):
        unit, text, exe, args = self._unit()
        # The unit names the installed binary (the stage mirrors the
        # prefix: its path ends with the unit's).
        self.assertTrue(helpers.steptraced_path().endswith(exe), exe)
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", text)
        self.assertIn("WantedBy=default.target", text)
        # Run its command line as the user manager would (%t is
        # $XDG_RUNTIME_DIR), reload it, stop it.
        runtime = self.path("rt")
        os.mkdir(runtime, 0o700)
        argv = [helpers.steptraced_path()] + [a.replace("%t", runtime)
                                              for a in args]
        p = subprocess.Popen(argv, cwd="/", stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=helpers.environ(XDG_RUNTIME_DIR=runtime))
        self.addCleanup(self._stop_proc, p)
        sock = os.path.join(runtime, "steptrace", "steptraced.sock")
        self.assertTrue(helpers.wait_until(lambda: helpers.is_socket(sock),
                                           15))
        p.send_signal(signal.SIGHUP)
        r = self.steptrace("daemon", "status", "--socket", sock)
        self.assertEqual(r.returncode, 0, r)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)
        self.assertFalse(os.path.exists(sock))
        analyze = shutil.which("systemd-analyze")
        if analyze:
            copy = self.path("steptraced.service")
            helpers.write(copy, text.replace(exe, helpers.steptraced_path()))
            r = helpers.run([analyze, "verify", copy], self.tmp)
            self.assertNotIn("steptraced.service:", r.stderr, r)

    # -- socket hygiene ----------------------------------------------------

    def test_socket_hygiene(self):
        exe = helpers.steptraced_path()
        col = self.collector()
        r = helpers.run([exe, "--socket", col.sock], self.tmp)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("already running", r.stderr)
        col.kill()                                  # leaves a stale socket
        self.assertTrue(helpers.is_socket(col.sock))
        col2 = self.collector()                     # reclaims it
        col2.stop()
        helpers.write(self.path("plain"), "keep me\n")
        r = helpers.run([exe, "--socket", self.path("plain")], self.tmp)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("is not a socket", r.stderr)
        self.assertEqual(helpers.read(self.path("plain")), "keep me\n")
        r = helpers.run([exe, "--socket", "/" + "x" * 200], self.tmp)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("limit is 107", r.stderr)

    # -- faults ------------------------------------------------------------

    def test_disk_full_counted_and_reported_when_writing_recovers(self):
        fault = self.path("fault")
        col = self.collector(env=helpers.environ(
            STEPTRACED_FAULT_FILE=fault))
        helpers.write(fault, "ENOSPC\n")
        self.script("f.py", prog("""\
            import os, time
            from steptrace import Tracer
            t = Tracer()
            with t:
                work(20)
            open("phase1", "w").close()
            while os.path.exists("fault"):
                time.sleep(0.01)
            with t:
                work(2)
            print("ok")
            """))
        p = subprocess.Popen([helpers.PYTHON, "f.py"], cwd=self.tmp,
                             env=helpers.environ(STEPTRACE_SOCKET=col.sock),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(self._stop_proc, p)
        self.assertTrue(helpers.wait_until(
            lambda: os.path.exists(self.path("phase1")), helpers.TIMEOUT))
        st = col.status()
        self.assertEqual(st["dropped_write"], work_records(20))
        self.assertGreaterEqual(st["write_errors"], 1)
        os.unlink(fault)
        out, err = p.communicate(timeout=helpers.TIMEOUT)
        self.assertEqual((p.returncode, out), (0, b"ok\n"), err)
        # The program was told, once.
        self.assertIn(b"No space left on device", err)
        text = self.log()
        recs, losses = records_and_losses(text)
        self.assertEqual(losses, [(work_records(20), "cannot write %s: No "
                                   "space left on device"
                                   % self.path(".tracer", "tracer.log"))])
        self.assertTrue(text.startswith("[steptrace] %d records lost"
                                        % work_records(20)))
        self.assertEqual([r.step for r in recs],
                         list(range(1, work_records(2) + 1)))
        col.stop()

    def test_sigterm_with_clients_connected_exits_zero(self):
        col = self.collector()
        self.script("s.py", prog("""\
            import sys
            from steptrace import Tracer
            with Tracer():
                work(100)
            print("traced", flush=True)
            sys.stdin.readline()
            """))
        p = subprocess.Popen([helpers.PYTHON, "s.py"], cwd=self.tmp,
                             env=helpers.environ(STEPTRACE_SOCKET=col.sock),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(self._stop_proc, p)
        self.assertEqual(p.stdout.readline(), b"traced\n")
        # The program is still connected; the collector does not wait for
        # it: what it sent is written, the socket goes, exit 0.
        col.stop()
        self.assertFalse(os.path.exists(col.sock + ".lock"))
        self.assertEqual([r.step for r in self.records()],
                         list(range(1, work_records(100) + 1)))
        p.communicate(b"\n", timeout=helpers.TIMEOUT)

    # -- rotation ------------------------------------------------------------

    def test_rotation_whole_records_in_order(self):
        col = self.collector()
        self.script("r.py", prog("""\
            from steptrace import Tracer
            with Tracer(max_log_bytes=20000, max_log_files=3):
                work(300)
            """))
        self.assertEqual(self.traced(self.tmp, "r.py",
                                     sock=col.sock).returncode, 0)
        names = sorted(os.listdir(self.path(".tracer")))
        self.assertEqual(names, ["tracer.log", "tracer.log.1", "tracer.log.2",
                                 "tracer.log.3"])
        steps = []
        for name in ("tracer.log.3", "tracer.log.2", "tracer.log.1",
                     "tracer.log"):
            size = os.path.getsize(self.path(".tracer", name))
            self.assertLessEqual(size, 20000, name)
            steps += [r.step for r in self.records(name)]
        # Newest files hold the last steps, each one whole and in order.
        self.assertEqual(steps, list(range(steps[0], work_records(300) + 1)))
        self.assertGreaterEqual(col.status()["rotations"], 4)
        col.stop()

    # -- hostile input, descriptors ----------------------------------------

    def _raw(self, col, data, hello=False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(col.sock)
        if hello:
            s.sendall(HELLO)
            self.assertTrue(s.recv(4096))
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        s.close()

    def test_hostile_inputs_bounded_memory_next_client_served(self):
        col = self.collector()
        self.script("ok.py", prog("""\
            from steptrace import Tracer
            with Tracer():
                work(5)
            """))
        self.assertEqual(self.traced(self.tmp, "ok.py",
                                     sock=col.sock).returncode, 0)
        before = kib(col.pid, "VmRSS")
        rng = random.Random(7)
        inputs = [
            (b"\xdd\xff\xff\xff\xff", False),
            (b"\xdf\xff\xff\xff\xff", True),
            (frame(b"\xdd\xff\xff\xff\xff"), True),
            (frame(b"\xdf\xff\xff\xff\xff"), True),
            (frame(b"\x91" * 100000), True),
            (bytes([0x80 | rng.randrange(128)]) +
             bytes(rng.randrange(256) for _ in range(65535)), False),
            (frame(bytes(rng.randrange(256) for _ in range(65536))), True),
            (b"\xff\xff\xff\xff", True),
        ]
        for data, hello in inputs:
            self._raw(col, data, hello)
        after = kib(col.pid, "VmRSS")
        if not self._sanitized(col.pid):
            self.assertLess(after - before, 1024, "RSS %d -> %d KiB"
                            % (before, after))
        self.assertEqual(col.status()["protocol_errors"], len(inputs))
        # One line each in the collector's own log.
        self.assertEqual(col.log().count("protocol error from pid"),
                         len(inputs))
        # The next client is served in full.
        os.mkdir(self.path("next"))
        shutil.copy(self.path("ok.py"), self.path("next", "ok.py"))
        self.assertEqual(self.traced(self.path("next"), "ok.py",
                                     sock=col.sock).returncode, 0)
        self.assertEqual(len(self.records(cwd=self.path("next"))),
                         work_records(5))
        col.stop()

    def test_connect_close_cycles_leave_no_descriptor(self):
        col = self.collector()
        # Settled: the --ready-fd pipe and this status connection closed.
        col.status()
        before = None
        while before != fd_count(col.pid):
            before = fd_count(col.pid)
            time.sleep(0.2)
        for k in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(20)
            s.connect(col.sock)
            if k % 2:
                s.sendall(HELLO)
                s.recv(4096)
            if k % 3 == 0:
                s.sendall(b"\x00\x00\x01\x00\x93")   # half a frame
            s.close()
        self.assertTrue(helpers.wait_until(lambda: col.status()["connections"]
                                           >= 1000, 30))
        self.assertTrue(helpers.wait_until(
            lambda: fd_count(col.pid) == before, 15),
            "fds %d before, %d after" % (before, fd_count(col.pid)))
        col.stop()


if __name__ == "__main__":
    unittest.main()
