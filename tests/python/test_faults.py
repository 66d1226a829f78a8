"""Faults on the agent's side (docs/COLLECTOR.md sections 9 and 12): forked
children that go on tracing a region, a collector killed (and restarted)
part-way through a run, a collector that stops reading (the on_full policies),
and sockets at STEPTRACE_SOCKET that are not a working collector.

Each test runs real interpreters on real scripts, against real steptraced
processes or, for collectors that misbehave, a fake collector served by a
thread of this test process that speaks just enough of the wire protocol
(docs/PROTOCOL.md) by hand.
"""
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

import helpers
from helpers import TempDirTest, parse_log

# Python 3.12+ warns when a multi-threaded process forks, and the agent's
# sender thread makes every traced process one: the fork tests other than
# test_fork_adds_no_warning ignore that warning, to test one thing each.
QUIET_FORK = "ignore:This process:DeprecationWarning"

LOST_PREFIX = "[steptrace] "
LOST_SUFFIX = " records lost in this region"


def line_of(text, needle):
    """1-based number of the (dedented) line of `text` that contains needle."""
    for k, line in enumerate(helpers.dedent(text).splitlines(), 1):
        if needle in line:
            return k
    raise AssertionError("%r is not in the script" % needle)


def work_lines(first, n):
    """(func, line) of the records of work(n) whose `def` is at line first:
        def work(n):
            total = 0
            for i in range(n):
                total += i
            return total
    """
    out = [("work", first + 1)]
    for _ in range(n):
        out += [("work", first + 2), ("work", first + 3)]
    return out + [("work", first + 2), ("work", first + 4)]


def split_lost(text):
    """(log text without a trailing lost-records line, N or None)."""
    if not text.endswith(LOST_SUFFIX + "\n"):
        return text, None
    head, _, last = text[:-1].rpartition("\n")
    if not last.startswith(LOST_PREFIX):
        raise AssertionError("malformed last line %r" % last)
    count = last[len(LOST_PREFIX):-len(LOST_SUFFIX)]
    if not count.isdigit():
        raise AssertionError("malformed lost-records line %r" % last)
    return head + "\n" if head else "", int(count)


def where(recs):
    return [(r.func, r.line) for r in recs]


class Lines:
    """Collects the lines of a pipe of a running process in a thread, so
    that a test can wait for one with a bound."""

    def __init__(self, pipe):
        self.q = queue.Queue()
        self.lines = []
        self.t = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self.t.start()

    def _pump(self, pipe):
        try:
            for raw in iter(pipe.readline, b""):
                self.q.put(raw.decode("utf-8", "backslashreplace"))
        except (OSError, ValueError):
            pass
        self.q.put(None)

    def next(self, timeout, what):
        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no %s within %d s; so far: %r"
                                 % (what, timeout, self.lines)) from None
        if line is None:
            self.q.put(None)
            raise AssertionError("the pipe closed before %s; so far: %r"
                                 % (what, self.lines))
        self.lines.append(line)
        return line

    def pending(self):
        """Lines arrived but not taken yet (does not wait)."""
        out = []
        while True:
            try:
                line = self.q.get_nowait()
            except queue.Empty:
                return out
            if line is None:
                self.q.put(None)
                return out
            out.append(line)
            self.lines.append(line)

    def rest(self, timeout):
        """Takes every remaining line, once the pipe has closed."""
        self.t.join(timeout)
        return self.pending()


def _default_signals():
    """The signals a test sends get their default action in the program
    (a shell's background job ignores SIGINT and SIGQUIT, and the program
    would inherit that)."""
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


class Running:
    """A traced program run with Popen (pipes on all three streams)."""

    def __init__(self, test, args, cwd, env):
        self.p = subprocess.Popen(args, cwd=cwd, env=env,
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  preexec_fn=_default_signals)
        self.out = Lines(self.p.stdout)
        self.err = Lines(self.p.stderr)
        test.addCleanup(self.kill)

    def finish(self, timeout, what="the program to end"):
        """Waits for the end; returns (rc, stdout, stderr)."""
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                "%s did not happen within %d s (a hang); stdout %r, stderr %r"
                % (what, timeout, self.out.lines + self.out.pending(),
                   self.err.lines + self.err.pending())) from None
        self.out.rest(10)
        self.err.rest(10)
        return rc, "".join(self.out.lines), "".join(self.err.lines)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.out.t.join(10)
        self.err.t.join(10)
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass


# ---- a fake collector ---------------------------------------------------

def mp_decode(b, o):
    """Decodes the msgpack object at b[o:]; returns (value, next offset).
    Covers what the agent sends: arrays, unsigned/negative ints, nil,
    booleans, str and bin (as bytes).  An object cut short raises
    IndexError."""
    value, end = _mp_decode(b, o)
    if end > len(b):
        raise IndexError("msgpack object cut short")
    return value, end


def _mp_decode(b, o):
    t = b[o]
    if t <= 0x7F:
        return t, o + 1
    if t >= 0xE0:
        return t - 0x100, o + 1
    if 0x90 <= t <= 0x9F:
        return mp_array(b, o + 1, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return bytes(b[o + 1:o + 1 + n]), o + 1 + n
    if t == 0xC0:
        return None, o + 1
    if t in (0xC2, 0xC3):
        return t == 0xC3, o + 1
    widths = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
    if t in widths:
        w = widths[t]
        return int.from_bytes(b[o + 1:o + 1 + w], "big"), o + 1 + w
    widths = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}
    if t in widths:
        w = widths[t]
        n = int.from_bytes(b[o + 1:o + 1 + w], "big")
        o += 1 + w
        return bytes(b[o:o + n]), o + n
    if t in (0xDC, 0xDD):
        w = 2 if t == 0xDC else 4
        n = int.from_bytes(b[o + 1:o + 1 + w], "big")
        return mp_array(b, o + 1 + w, n)
    raise AssertionError("unexpected msgpack byte 0x%02x" % t)


def mp_array(b, o, n):
    out = []
    for _ in range(n):
        v, o = mp_decode(b, o)
        out.append(v)
    return out, o


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def hello_reply(version=helpers.WIRE_VERSION, ring=0):
    """HELLO [1, version, pid, "steptraced", ring, formats], encoded by
    hand (formats 1: text)."""
    return frame(bytes([0x96, 0x01, version, 0xCE])
                 + struct.pack(">I", os.getpid())
                 + bytes([0xA0 | 10]) + b"steptraced"
                 + bytes([0xCF]) + struct.pack(">Q", ring) + b"\x01")


# The ring's header (common/include/steptrace/ring.h): field offsets.
RING_HEADER = 4096
RING_MAGIC, RING_VERSION = 0x53545247, 1
OFF_SIZE, OFF_PID, OFF_COMMIT, OFF_WAITING, OFF_READ = 8, 16, 64, 72, 128
OFF_TAKEN = 144


class FakeRing:
    """The ring a collector makes for an agent (PROTOCOL.md "The ring"): a
    sealed memfd and an eventfd, and the reading side of the stream."""

    def __init__(self, size, pid):
        import mmap
        self.size = size
        self.fd = os.memfd_create("fake-ring",
                                  os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, RING_HEADER + size)
        self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.map = mmap.mmap(self.fd, RING_HEADER + size)
        struct.pack_into("<IIQQ", self.map, 0, RING_MAGIC, RING_VERSION,
                         size, pid)
        self.rd = 0
        self.buf = b""

    def u64(self, off):
        return struct.unpack_from("<Q", self.map, off)[0]

    def take(self):
        """The whole messages the agent committed since the last call."""
        commit = self.u64(OFF_COMMIT)
        n = commit - self.rd
        assert 0 <= n <= self.size, "commit %d, read %d" % (commit, self.rd)
        at = self.rd % self.size
        first = min(n, self.size - at)
        data = (self.map[RING_HEADER + at:RING_HEADER + at + first]
                + self.map[RING_HEADER:RING_HEADER + n - first])
        self.rd = commit
        struct.pack_into("<Q", self.map, OFF_TAKEN, self.rd)
        struct.pack_into("<Q", self.map, OFF_READ, self.rd)
        self.buf += data
        out, o = [], 0
        while o < len(self.buf):
            try:
                m, end = mp_decode(self.buf, o)
            except IndexError:
                break       # the rest of a message comes later
            out.append(m)
            o = end
        self.buf = self.buf[o:]
        return out, n > 0

    def waiting(self):
        return struct.unpack_from("<I", self.map, OFF_WAITING)[0] != 0

    def close(self):
        self.map.close()
        os.close(self.fd)
        os.close(self.efd)


def ack_reply(token):
    """ACK [12, token, 0, nil]."""
    return frame(bytes([0x94, 0x0C, 0xCF]) + struct.pack(">Q", token)
                 + bytes([0x00, 0xC0]))


class FakeCollector:
    """A Unix socket server thread that plays a collector for one client.

    behaviour:
      "hello"   answers the agent's HELLO, then reads nothing until
                start_reading() is called; from then on it reads every
                frame, counts STEP messages and LOST counts, and answers
                each FLUSH with an ACK, like steptraced does;
      "close"   closes each connection once it has read the HELLO;
      "version" answers HELLO with another protocol version;
      "not-hello" answers with an ACK instead of a HELLO.
    """

    def __init__(self, test, path, behaviour="hello"):
        self.path = path
        self.behaviour = behaviour
        self.steps = 0
        self.lost = 0
        self.flushes = 0
        self.accepted = 0
        self.hello = None
        self.failure = None
        self.eof = threading.Event()
        self._reading = threading.Event()
        self._stop = False
        self._conns = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()
        test.addCleanup(self.close)

    def start_reading(self):
        self._reading.set()

    def close(self):
        self._stop = True
        self._reading.set()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass
        self.t.join(10)
        self.sock.close()

    def _serve(self):
        try:
            while not self._stop:
                try:
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    continue
                conn.settimeout(None)
                self._conns.append(conn)
                self.accepted += 1
                if self.behaviour == "close":
                    self.hello, _ = mp_decode(self._read_frame(conn), 0)
                    conn.close()
                    continue
                self._session(conn)
                return
        except Exception as e:  # noqa: B902 - reported by the test
            if not self._stop:
                self.failure = e
        finally:
            self.eof.set()

    def _recv_exact(self, conn, n):
        buf = b""
        while len(buf) < n:
            d = conn.recv(n - len(buf))
            if not d:
                return None
            buf += d
        return buf

    def _read_frame(self, conn):
        hdr = self._recv_exact(conn, 4)
        if hdr is None:
            return None
        n = struct.unpack(">I", hdr)[0]
        payload = self._recv_exact(conn, n)
        if payload is None:
            raise AssertionError("truncated frame")
        return payload

    def _session(self, conn):
        first = self._read_frame(conn)
        self.hello, _ = mp_decode(first, 0)
        if self.behaviour == "version":
            conn.sendall(hello_reply(version=helpers.WIRE_VERSION + 1))
            return
        if self.behaviour == "not-hello":
            conn.sendall(ack_reply(0))
            return
        size = 1 << max(16, (self.hello[4] - 1).bit_length())
        ring = FakeRing(size, 0)
        try:
            socket.send_fds(conn, [hello_reply(ring=size)],
                            [ring.fd, ring.efd])
            self._reading.wait()
            if not self._stop:
                self._read_ring(conn, ring)
        finally:
            ring.close()

    def _read_ring(self, conn, ring):
        """Reads the ring like steptraced does, until the agent is gone
        (its socket ends) and the ring is empty."""
        conn.setblocking(False)
        gone = False
        while not self._stop:
            msgs, took = ring.take()
            for m in msgs:
                if m[0] in (6, 21):    # STEP, LINE
                    self.steps += 1
                elif m[0] == 10:
                    self.lost += m[2]
                elif m[0] == 9:
                    self.flushes += 1
                    conn.sendall(ack_reply(m[1]))
            if took and ring.waiting():
                struct.pack_into("<I", ring.map, OFF_WAITING, 0)
                conn.sendall(ack_reply(0))
            if gone and not took:
                return
            try:
                gone = conn.recv(4096) == b""
            except BlockingIOError:
                pass
            time.sleep(0.002)


# ---- scripts ------------------------------------------------------------

FORK_SCRIPT = """\
import os, sys
from steptrace import Tracer
role = "parent"
def work(n):
    total = n
    x = "before"
    pid = os.fork()
    if pid == 0:
        y = "child"
        total += 100
        sock = os.environ.get("STEPTRACE_SOCKET")
        os.write(1, ("CHILD %s\\n" % sock).encode())
        if sys.argv[2] == "_exit":
            os._exit(0)
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    total += 1
    return total, status
with Tracer(variable_mode=sys.argv[1]):
    r = work(3)
print("PARENT %s %r" % (os.environ.get("STEPTRACE_SOCKET"), r))
"""

NESTED_FORK_SCRIPT = """\
import os
from steptrace import Tracer
def work(n):
    total = n
    pid = os.fork()
    if pid == 0:
        y = "child"
        pid2 = os.fork()
        if pid2 == 0:
            z = "grandchild"
            os._exit(0)
        os.waitpid(pid2, 0)
        os._exit(0)
    os.waitpid(pid, 0)
    return total
with Tracer():
    r = work(3)
print("done", r)
"""

MP_SCRIPT = """\
import multiprocessing, os, sys
from steptrace import Tracer
def job(k):
    me = "job%d %s" % (k, os.environ.get("STEPTRACE_SOCKET"))
    total = 0
    for i in range(k):
        total += i
    if k == 9:
        sys.exit(7)
    return total
if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1])
    with Tracer():
        procs = []
        for k in (2, 3, 4, 9):
            procs.append(ctx.Process(target=job, args=(k,)))
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        r = job(5)
    codes = []
    for p in procs:
        codes.append(p.exitcode)
    print("exitcodes", codes, "r", r)
    sys.exit(4)
"""

# The collector is SIGSTOPped first (so that whatever the program sends
# from then on is certainly never written), then SIGKILLed; the program
# waits, in untraced module-level code, until the package has taken over
# with a private collector (it exports the new STEPTRACE_SOCKET), so that
# every record from then on belongs in the new file.
KILL_SCRIPT = """\
import contextlib, json, os, signal, sys, time
from steptrace import Tracer
TRACE = sys.argv[1] == "on"
victim = int(sys.argv[2])
sock = os.environ.get("STEPTRACE_SOCKET")
def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
def paced(n):
    total = 0
    for i in range(n):
        time.sleep(0.12)
        total += i
    return total
t = Tracer() if TRACE else None
def region():
    return t if TRACE else contextlib.nullcontext()
with region():
    r1 = work(10)
print("r1", r1, flush=True)
with region():
    os.kill(victim, signal.SIGSTOP)
    while True:
        with open("/proc/%d/stat" % victim) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                break
        time.sleep(0.005)
    r2 = LOST_CALL
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (TRACE and os.environ.get("STEPTRACE_SOCKET") == sock
           and time.monotonic() < deadline):
        time.sleep(0.005)
    r3 = work(20)
print("r2", r2, "r3", r3, flush=True)
if TRACE:
    with open("report.json", "w") as f:
        json.dump({"socket": os.environ.get("STEPTRACE_SOCKET")}, f)
sys.exit(3)
"""

# Waits (blocked in one C call, so the tracer sees no event meanwhile) for
# the test to kill the collector and start another on the same socket.
RESTART_SCRIPT = """\
import json, os, sys
from steptrace import Tracer
def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
def serving(sock):
    found = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % d, "rb") as fh:
                argv = fh.read().decode("utf-8", "replace").split("\\0")
            with open("/proc/%s/stat" % d) as fh:
                st = fh.read()
        except OSError:
            continue
        state = st.rsplit(")", 1)[1].split()[0]
        if "steptraced" in argv[0] and sock in argv and state != "Z":
            found.append(int(d))
    return found
t = Tracer()
with t:
    r1 = work(10)
print("r1", r1, flush=True)
with t:
    print("waiting", flush=True); go = sys.stdin.readline()
    r2 = work(20)
print("r2", r2, go.strip(), flush=True)
sock = os.environ.get("STEPTRACE_SOCKET")
with open("report.json", "w") as f:
    json.dump({"socket": sock, "serving": serving(sock)}, f)
"""

LOOP_SCRIPT = """\
import sys
from steptrace import Tracer
def work(n):
    total = 0
    for i in range(n):
        s = str(i) * 100
        total += i
    return total
with Tracer(on_full=sys.argv[1]):
    print("before loop", flush=True)
    r = work(int(sys.argv[2]))
    print("after loop", r, flush=True)
print("done", flush=True)
"""
LOOP_N = 5000

THREADS_DROP_SCRIPT = """\
import sys, threading, time
from steptrace import Tracer
def spin(until):
    x = 0
    while time.monotonic() < until:
        x += 1
def late():
    return 1
def first(until):
    spin(time.monotonic() + 0.5)
    late()
    spin(until)
with Tracer(on_full="drop", variable_mode="NONE"):
    until = time.monotonic() + float(sys.argv[1])
    ts = [threading.Thread(target=first, args=(until,))]
    ts += [threading.Thread(target=spin, args=(until,)) for _ in range(2)]
    print("started", flush=True)
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("joined", flush=True)
print("done", flush=True)
"""
LOOP_RECORDS = 3 * LOOP_N + 3


class ForkTest(TempDirTest):
    """A region in progress goes on in a forked child, into its own file."""

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)

    def run_fork(self, mode, how):
        cwd = self.path("%s-%s" % (mode, how))
        os.makedirs(cwd)
        helpers.write(os.path.join(cwd, "fork.py"), FORK_SCRIPT)
        r = helpers.python(cwd, "fork.py", mode, how,
                           env=helpers.environ(PYTHONWARNINGS=QUIET_FORK))
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "")
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2, r)
        self.assertTrue(lines[0].startswith("CHILD "), r)
        self.assertTrue(lines[1].startswith("PARENT "), r)
        child_sock = lines[0].split(" ", 1)[1]
        parent_sock, result = lines[1].split(" ", 2)[1:]
        # The child has a private collector's socket from its parent (the
        # package exported it) and used it: it started none of its own.
        self.assertNotEqual(parent_sock, "None", r)
        self.assertEqual(child_sock, parent_sock,
                         "the forked child did not reconnect to its "
                         "parent's collector")
        self.assertEqual(result, "(4, 0)", r)
        files = helpers.tracer_files(os.path.join(cwd, ".tracer"))
        self.assertEqual(len(files), 2, "expected one file for the parent "
                         "and one for the child: %r" % files)
        logs = [self.log(name, cwd=cwd) for name in files]
        for text in logs:
            self.assertNotIn(LOST_PREFIX.strip(), helpers.without_process_lines(text))
        recs = [parse_log(text) for text in logs]
        # The child's file is the one with its own variable `y`.
        has_y = [any(re.match(r"(\[NEW\] )?y: ", l)
                     for rec in rs for l in rec.lines) for rs in recs]
        self.assertEqual(sorted(has_y), [False, True], has_y)
        child = recs[has_y.index(True)]
        parent = recs[has_y.index(False)]
        return child, parent

    def check_fork(self, how):
        w = line_of(FORK_SCRIPT, "def work(n):")
        child, parent = self.run_fork("ALL", how)
        # The parent's file: steps 1..n, none of the child's lines.
        self.assertEqual([x.step for x in parent],
                         list(range(1, len(parent) + 1)))
        self.assertEqual(where(parent),
                         [("work", w + k) for k in (1, 2, 3, 4, 12, 13, 14)])
        # The child's: from Step 1, the lines after fork() returned 0.
        last = w + (10 if how == "_exit" else 11)
        self.assertEqual([x.step for x in child],
                         list(range(1, len(child) + 1)))
        self.assertEqual(where(child),
                         [("work", w + k) for k in (4, 5, 6, 7, 8, 9)]
                         + [("work", last)])
        # Its first record shows the whole state, as the parent's record
        # of the same line does (but for what fork() returned).
        same = parent[3]
        self.assertEqual(same.line, w + 4)
        self.assertEqual(child[0].vars("Global"), same.vars("Global"))
        expect = dict(same.vars("Local"))
        expect["pid"] = ("int", "0")
        self.assertEqual(child[0].vars("Local"), expect)
        self.assertEqual(set(expect), {"n", "total", "x", "pid"})
        # Its last record (before os._exit or sys.exit) was written too.
        self.assertEqual(child[-1].vars("Local")["y"], ("str", "child"))
        self.assertEqual(child[-1].vars("Local")["total"], ("int", "103"))
        return parent

    def test_fork_child_ending_with_os_exit(self):
        self.check_fork("_exit")

    def test_fork_child_ending_with_sys_exit(self):
        self.check_fork("exit")

    def test_fork_child_changed_mode_starts_with_all_variables_new(self):
        w = line_of(FORK_SCRIPT, "def work(n):")
        child, parent = self.run_fork("CHANGED", "_exit")
        self.assertEqual(where(child)[0], ("work", w + 4))
        self.assertEqual(child[0].step, 1)
        first = child[0].sections
        self.assertTrue(all(l.startswith("[NEW] ") for l in first["Local"]),
                        first)
        self.assertEqual(sorted(l.split()[1][:-1] for l in first["Local"]),
                         ["n", "pid", "total", "x"])
        self.assertIn("[NEW] pid: int :: 0", first["Local"])
        self.assertIn("[NEW] role: str :: parent", first["Global"])
        self.assertIn("[NEW] work: function :: ", "\n".join(first["Global"]))
        self.assertEqual(where(parent)[-1], ("work", w + 14))

    def test_fork_adds_no_warning(self):
        # Untraced, this program writes nothing on stderr; traced, neither.
        self.script("fork.py", FORK_SCRIPT)
        r = helpers.python(self.tmp, "fork.py", "ALL", "_exit",
                           env=helpers.environ(PYTHONWARNINGS=None))
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "", "tracing makes os.fork() in the "
                         "program print a warning")
        self.assertEqual(len(helpers.tracer_files(self.path(".tracer"))), 2)

    def test_fork_in_a_forked_child(self):
        # A child forks again at once: the grandchild's region goes on in
        # a third file just the same.
        w = line_of(NESTED_FORK_SCRIPT, "def work(n):")
        self.script("nested.py", NESTED_FORK_SCRIPT)
        r = helpers.python(self.tmp, "nested.py",
                           env=helpers.environ(PYTHONWARNINGS=QUIET_FORK))
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "done 3\n")
        self.assertEqual(r.stderr, "")
        files = helpers.tracer_files(self.path(".tracer"))
        by_lines = {}
        for name in files:
            text = self.log(name)
            self.assertNotIn(LOST_PREFIX.strip(), helpers.without_process_lines(text), name)
            recs = parse_log(text)
            helpers.assert_steps_contiguous(self, recs, name)
            by_lines[tuple(x.line - w for x in recs)] = recs
        self.assertEqual(set(by_lines),
                         {(1, 2, 3, 11, 12),     # the parent
                          (3, 4, 5, 6, 9, 10),    # the child
                          (6, 7, 8)},            # the grandchild
                         "expected three files (parent, child, grandchild); "
                         "got %r" % files)
        grandchild = by_lines[(6, 7, 8)]
        self.assertEqual(grandchild[0].vars("Local"),
                         {"n": ("int", "3"), "total": ("int", "3"),
                          "pid": ("int", "0"), "y": ("str", "child"),
                          "pid2": ("int", "0")})

    def test_multiprocessing_fork_children_have_their_own_files(self):
        sock = self.path("s.sock")
        col = helpers.Collector(self, sock).start()
        j = line_of(MP_SCRIPT, "def job(k):")
        self.script("mp.py", MP_SCRIPT)
        r = helpers.python(self.tmp, "mp.py", "fork",
                           env=helpers.environ(STEPTRACE_SOCKET=sock))
        self.assertEqual(r.returncode, 4, r)
        self.assertEqual(r.stdout, "exitcodes [0, 0, 0, 7] r 10\n")
        self.assertEqual(r.stderr, "")
        files = helpers.tracer_files(self.path(".tracer"))
        self.assertEqual(len(files), 5, files)
        seen = {}
        for name in files:
            recs = self.records(name)
            helpers.assert_steps_contiguous(self, recs, name)
            self.assertEqual(len(helpers.split_regions(recs)), 1, name)
            mes = set(x.vars("Local").get("me") for x in recs[1:])
            self.assertEqual(len(mes), 1, "%s mixes processes: %r"
                             % (name, mes))
            me = mes.pop()
            self.assertEqual(me, ("str", "job%s %s" % (me[1][3], sock)),
                             "a child did not log into the parent's "
                             "collector")
            k = int(me[1][3])
            expect = [j + 1, j + 2] + [j + 3, j + 4] * k + [j + 3, j + 5]
            expect.append(j + 6 if k == 9 else j + 7)
            self.assertEqual([x.line for x in recs], expect, name)
            seen[k] = name
        self.assertEqual(sorted(seen), [2, 3, 4, 5, 9])
        col.stop_and_check()

    def test_multiprocessing_spawn(self):
        j = line_of(MP_SCRIPT, "def job(k):")
        self.script("mp.py", MP_SCRIPT)
        r = helpers.python(self.tmp, "mp.py", "spawn", env=helpers.environ())
        self.assertEqual(r.returncode, 4, r)
        self.assertEqual(r.stdout, "exitcodes [0, 0, 0, 7] r 10\n")
        self.assertEqual(r.stderr, "")
        # Spawned children run job() outside any region: only the
        # parent's own call is recorded.
        self.assertEqual(helpers.tracer_files(self.path(".tracer")),
                         ["tracer.log"])
        recs = self.records()
        self.assertEqual([x.line for x in recs],
                         [j + 1, j + 2] + [j + 3, j + 4] * 5 + [j + 3, j + 5,
                                                                j + 7])

    def test_subprocess_with_tracer_logs_into_the_same_collector(self):
        parent = self.script("parent.py", """\
            import os, subprocess, sys
            from steptrace import Tracer
            def launch():
                done = subprocess.run([sys.executable, "child.py"],
                                      stdout=subprocess.PIPE,
                                      universal_newlines=True)
                return done.returncode, done.stdout
            with Tracer():
                rc, out = launch()
            print(out, end="")
            print("PARENT", os.environ.get("STEPTRACE_SOCKET"), rc)
            """)
        child = self.script("child.py", """\
            import os, sys
            from steptrace import Tracer
            def work(n):
                total = 0
                for i in range(n):
                    total += i
                return total
            with Tracer():
                r = work(3)
            print("CHILD", os.environ.get("STEPTRACE_SOCKET"), r)
            sys.exit(5)
            """)
        r = helpers.python(self.tmp, "parent.py", env=helpers.environ())
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "")
        lines = r.stdout.split()
        self.assertEqual(len(lines), 6, r)
        self.assertEqual((lines[0], lines[2], lines[3], lines[5]),
                         ("CHILD", "3", "PARENT", "5"), r)
        self.assertNotEqual(lines[4], "None")
        self.assertEqual(lines[1], lines[4], "the child used another "
                         "collector than its parent's")
        files = helpers.tracer_files(self.path(".tracer"))
        self.assertEqual(len(files), 2, files)
        by_source = {}
        for name in files:
            recs = self.records(name)
            helpers.assert_steps_contiguous(self, recs, name)
            sources = set(x.file for x in recs)
            self.assertEqual(len(sources), 1, name)
            by_source[sources.pop()] = recs
        self.assertEqual(set(by_source), {parent, child})
        self.assertEqual(where(by_source[child]),
                         work_lines(line_of(helpers.read(child),
                                            "def work(n):"), 3))
        self.assertEqual(set(x.func for x in by_source[parent]), {"launch"})


class CollectorDiesTest(TempDirTest):
    """The collector goes away in the middle of a run."""

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)

    def kill_run(self, lost_call):
        """Runs KILL_SCRIPT untraced and traced (against a real collector
        it kills); returns (traced Result, log dir, socket path)."""
        script = KILL_SCRIPT.replace("LOST_CALL", lost_call)
        # Untraced, against a process that is not a collector.
        plain = self.path("plain")
        os.makedirs(plain)
        helpers.write(os.path.join(plain, "kill.py"), script)
        dummy = subprocess.Popen(["sleep", "60"])
        self.addCleanup(lambda: (dummy.poll() is None and dummy.kill(),
                                 dummy.wait()))
        untraced = helpers.python(plain, "kill.py", "off", str(dummy.pid),
                                  env=helpers.environ())
        self.assertEqual(untraced.stderr, "")
        self.assertEqual(untraced.returncode, 3, untraced)
        # Traced.
        sock = self.path("s.sock")
        col = helpers.Collector(self, sock).start()
        cwd = self.path("traced")
        os.makedirs(cwd)
        helpers.write(os.path.join(cwd, "kill.py"), script)
        r = helpers.python(cwd, "kill.py", "on", str(col.proc.pid),
                           env=helpers.environ(STEPTRACE_SOCKET=sock))
        self.assertEqual(col.proc.wait(timeout=10), -signal.SIGKILL)
        # Exactly as untraced, but for one warning line.
        self.assertEqual(r.returncode, untraced.returncode, r)
        self.assertEqual(r.stdout, untraced.stdout)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, "expected one warning line on "
                         "stderr: %r" % r.stderr)
        self.assertTrue(lines[0].startswith(
            "steptrace: lost the connection to the collector at %s"
            % sock), lines[0])
        self.assertNotIn("Traceback", r.stderr)
        # A private collector took over.
        report = json.loads(helpers.read(os.path.join(cwd, "report.json")))
        self.assertNotEqual(report["socket"], sock)
        self.assertTrue(report["socket"], report)
        return os.path.join(cwd, ".tracer"), script

    def check_files(self, log_dir, script, lost_max):
        w = line_of(script, "def work(n):")
        files = helpers.tracer_files(log_dir)
        self.assertEqual(files, ["tracer.log", "tracer_1.log"])
        # The killed collector's file: the first region, whole.
        old = helpers.read(os.path.join(log_dir, "tracer.log"))
        self.assertNotIn(LOST_PREFIX.strip(), helpers.without_process_lines(old))
        self.assertEqual(where(parse_log(old)), work_lines(w, 10))
        # The new file: every record since the takeover, then the count of
        # those that could not be delivered.
        text, lost = split_lost(helpers.read(os.path.join(log_dir,
                                                          "tracer_1.log")))
        self.assertIsNotNone(lost, "the new file does not end with a "
                             "'%sN%s' line:\n%s"
                             % (LOST_PREFIX, LOST_SUFFIX, text[-500:]))
        self.assertGreater(lost, 0)
        self.assertLessEqual(lost, lost_max)
        recs = parse_log(text)
        self.assertEqual([x.step for x in recs],
                         list(range(1, len(recs) + 1)))
        self.assertEqual(where(recs), work_lines(w, 20))
        # The first record there shows the whole state, not a diff against
        # what the killed collector had seen.
        g = recs[0].vars("Global")
        self.assertEqual(g.get("r1"), ("int", "45"))
        self.assertIn("r2", g)
        self.assertEqual(recs[0].vars("Local"), {"n": ("int", "20")})
        self.assertEqual(recs[-1].vars("Local")["total"], ("int", "190"))
        return lost

    def test_collector_killed_a_private_collector_takes_over(self):
        log_dir, script = self.kill_run("work(30)")
        # work(30) ran while the collector was stopped: its 63 records
        # cannot have been written.
        self.check_files(log_dir, script, 2 * 30 + 3)

    def test_records_sent_to_a_dying_collector_are_counted(self):
        # paced() sleeps between lines, so its records are handed to the
        # (stopped) collector's socket in several frames before it is
        # killed: sent, never written, and lost all the same.
        log_dir, script = self.kill_run("paced(5)")
        lost = self.check_files(log_dir, script, 18)
        self.assertEqual(lost, 1 + 6 + 5 + 5 + 1,
                         "records handed to the collector before it died "
                         "but never written are not counted as lost")

    def test_collector_restarted_on_the_same_socket(self):
        sock = self.path("s.sock")
        first = helpers.Collector(self, sock).start()
        self.script("restart.py", RESTART_SCRIPT)
        w = line_of(RESTART_SCRIPT, "def work(n):")
        run = Running(self, [helpers.PYTHON, "restart.py"], self.tmp,
                      helpers.environ(STEPTRACE_SOCKET=sock))
        self.assertEqual(run.out.next(30, "'r1'"), "r1 45\n")
        self.assertEqual(run.out.next(30, "'waiting'"), "waiting\n")
        # The program is (or is about to be) blocked reading stdin.
        first.proc.kill()
        first.proc.wait()
        warning = run.err.next(30, "the warning about the lost collector")
        self.assertTrue(warning.startswith(
            "steptrace: lost the connection to the collector at %s" % sock),
            warning)
        second = helpers.Collector(self, sock).start()
        run.p.stdin.write(b"go\n")
        run.p.stdin.flush()
        rc, out, err = run.finish(helpers.TIMEOUT)
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual(out, "r1 45\nwaiting\nr2 190 go\n")
        self.assertEqual(err, warning)
        report = json.loads(helpers.read(self.path("report.json")))
        self.assertEqual(report, {"socket": sock,
                                  "serving": [second.proc.pid]},
                         "the records did not go to the restarted collector")
        files = helpers.tracer_files(self.path(".tracer"))
        self.assertEqual(files, ["tracer.log", "tracer_1.log"])
        self.assertEqual(where(self.records("tracer.log")), work_lines(w, 10))
        text = self.log("tracer_1.log")
        self.assertNotIn(LOST_PREFIX.strip(), helpers.without_process_lines(text))
        recs = parse_log(text)
        self.assertEqual([x.step for x in recs],
                         list(range(1, len(recs) + 1)))
        self.assertEqual(where(recs), work_lines(w, 20))
        self.assertEqual(recs[0].vars("Global").get("r1"), ("int", "45"))
        second.stop_and_check()
        self.assertEqual(self.log("tracer_1.log"), text)


class OnFullTest(TempDirTest):
    """A collector that stops reading: STEPTRACE_PENDING_BYTES bounds the
    agent's queue, then on_full decides."""

    def start(self, policy, fake):
        self.script("loop.py", LOOP_SCRIPT)
        return Running(self, [helpers.PYTHON, "loop.py", policy,
                              str(LOOP_N)], self.tmp,
                       helpers.environ(STEPTRACE_SOCKET=fake.path,
                                       STEPTRACE_PENDING_BYTES="65536"))

    def assert_blocked(self, run):
        self.assertEqual(run.out.next(30, "'before loop'"), "before loop\n")
        # Given a moment, the loop does not end: the program waits.
        time.sleep(1.5)
        self.assertIsNone(run.p.poll(), "the program ended: %r"
                          % (run.out.lines, ))
        self.assertEqual(run.out.pending(), [], "the traced loop ended "
                         "although the collector reads nothing and "
                         "on_full is 'block'")

    def test_drop_does_not_wait_for_a_collector_that_stops_reading(self):
        fake = FakeCollector(self, self.path("f.sock"))
        run = self.start("drop", fake)
        self.assertEqual(run.out.next(30, "'before loop'"), "before loop\n")
        r = sum(range(LOOP_N))
        self.assertEqual(run.out.next(30, "the end of the traced loop"),
                         "after loop %d\n" % r)
        # The end of the region may wait for the collector's confirmation
        # (the agent waits 30 s at most), not for ever.
        rc, out, err = run.finish(35, "the end of the program (on_full="
                                  "'drop', a collector that reads nothing)")
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual(out, "before loop\nafter loop %d\ndone\n" % r)
        self.assertNotIn("Traceback", err)

    def test_drop_counts_what_it_drops(self):
        fake = FakeCollector(self, self.path("f.sock"))
        run = self.start("drop", fake)
        self.assertEqual(run.out.next(30, "'before loop'"), "before loop\n")
        self.assertEqual(run.out.next(30, "the end of the traced loop"),
                         "after loop %d\n" % sum(range(LOOP_N)))
        fake.start_reading()
        rc, out, err = run.finish(helpers.TIMEOUT)
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual(out, "before loop\nafter loop %d\ndone\n"
                         % sum(range(LOOP_N)))
        self.assertEqual(err, "")
        self.assertTrue(fake.eof.wait(10))
        self.assertIsNone(fake.failure)
        self.assertEqual(fake.hello[:2], [1, helpers.WIRE_VERSION])
        # Every frame ends with a FLUSH (the ACKs confirm what is written),
        # the region's last one among them.
        self.assertGreaterEqual(fake.flushes, 1)
        self.assertGreater(fake.lost, 0, "nothing was dropped: the queue "
                           "bound (STEPTRACE_PENDING_BYTES) did not apply")
        self.assertEqual(fake.steps + fake.lost, LOOP_RECORDS,
                         "records sent + records counted as dropped")

    def test_drop_does_not_queue_behind_a_waiting_thread(self):
        """Under drop, a thread whose record defines new code (late())
        waits for room for the definitions, which later records name;
        the other threads' records meanwhile are dropped, not queued in
        the process: its memory stays bounded while the collector reads
        nothing."""
        fake = FakeCollector(self, self.path("f.sock"))
        self.script("threads.py", THREADS_DROP_SCRIPT)
        run = Running(self, [helpers.PYTHON, "threads.py", "4"], self.tmp,
                      helpers.environ(STEPTRACE_SOCKET=fake.path,
                                      STEPTRACE_PENDING_BYTES="65536"))
        self.assertEqual(run.out.next(30, "'started'"), "started\n")
        before = helpers.proc_status_kib(run.p.pid, "VmRSS")
        # Less than the 2 s after which a dropping agent gives up on a
        # collector that takes nothing (and reconnects).
        time.sleep(1.7)
        grown = helpers.proc_status_kib(run.p.pid, "VmHWM") - before
        fake.start_reading()
        rc, out, err = run.finish(helpers.TIMEOUT)
        self.assertEqual((rc, out, err), (0, "started\njoined\ndone\n", ""))
        if not helpers.UNDER_ASAN:  # its quarantine keeps freed memory
            self.assertLess(grown, 16 * 1024, "KiB the process grew by "
                            "while the collector read nothing")
        self.assertTrue(fake.eof.wait(10))
        self.assertIsNone(fake.failure)
        self.assertGreater(fake.lost, 0)

    def test_block_waits_while_the_collector_reads_nothing(self):
        fake = FakeCollector(self, self.path("f.sock"))
        run = self.start("block", fake)
        self.assert_blocked(run)
        run.kill()
        self.assertEqual(run.p.returncode, -signal.SIGKILL)

    def test_block_resumes_when_the_collector_reads_again(self):
        fake = FakeCollector(self, self.path("f.sock"))
        run = self.start("block", fake)
        self.assert_blocked(run)
        fake.start_reading()
        rc, out, err = run.finish(helpers.TIMEOUT)
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual(out, "before loop\nafter loop %d\ndone\n"
                         % sum(range(LOOP_N)))
        self.assertEqual(err, "")
        self.assertTrue(fake.eof.wait(10))
        self.assertIsNone(fake.failure)
        self.assertGreaterEqual(fake.flushes, 1)
        self.assertEqual(fake.lost, 0)
        self.assertEqual(fake.steps, LOOP_RECORDS, "records lost under "
                         "on_full='block'")


class NotACollectorTest(TempDirTest):
    """STEPTRACE_SOCKET names something that is not a working collector
    (test_collector.py covers a path with no listener): one warning, a
    private collector takes over, the log is whole."""

    SCRIPT = """\
        import sys
        from steptrace import Tracer
        def work(n):
            total = 0
            for i in range(n):
                total += i
            return total
        print("normal output")
        with Tracer():
            r = work(2)
        print(r)
        sys.exit(6)
        """

    def check_fallback(self, target, cwd, why):
        helpers.write(os.path.join(cwd, "script.py"), self.SCRIPT)
        r = helpers.python(cwd, "script.py",
                           env=helpers.environ(STEPTRACE_SOCKET=target))
        self.assertEqual(r.returncode, 6, r)
        self.assertEqual(r.stdout, "normal output\n1\n")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, "expected one warning line on "
                         "stderr: %r" % r.stderr)
        self.assertTrue(lines[0].startswith("steptrace: "), lines[0])
        self.assertIn(why, lines[0])
        self.assertNotIn("Traceback", r.stderr)
        recs = self.records(cwd=cwd)
        self.assertEqual(where(recs),
                         work_lines(line_of(self.SCRIPT, "def work(n):"), 2))

    def test_regular_file_is_left_alone(self):
        helpers.require_collector(self)
        target = self.path("not-a-socket")
        with open(target, "w") as f:
            f.write("keep me\n")
        cwd = self.path("run")
        os.makedirs(cwd)
        self.check_fallback(target, cwd, target)
        self.assertEqual(helpers.read(target), "keep me\n")

    def test_fake_collectors(self):
        helpers.require_collector(self)
        cases = (("close", "closed the connection"),
                 ("version", "another protocol version"),
                 ("not-hello", "not a steptrace HELLO"))
        for behaviour, why in cases:
            with self.subTest(behaviour=behaviour):
                fake = FakeCollector(self, self.path(behaviour + ".sock"),
                                     behaviour)
                cwd = self.path(behaviour)
                os.makedirs(cwd)
                self.check_fallback(fake.path, cwd, why)
                self.assertEqual(fake.accepted, 1)
                self.assertIsNone(fake.failure)
                self.assertEqual(fake.hello[:2], [1, helpers.WIRE_VERSION])
                self.assertEqual(fake.hello[3], b"script.py")


if __name__ == "__main__":
    unittest.main()
