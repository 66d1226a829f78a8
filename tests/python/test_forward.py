"""Forwarding to a syslog relay (issue 14, docs/COLLECTOR.md section 13), with
a real rsyslogd started by the tests: its own config, work directory, pid
file and loopback port, an imtcp (or imptcp, for a Unix socket) input and an
omfile action that writes every message's fields as one JSON line.  Nothing
of the system's rsyslog is touched (no /dev/log, nothing under /var).

The tests are skipped, with the reason, when rsyslogd is not installed
(tools/deps.sh installs it).
"""
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import helpers
from helpers import TempDirTest, parse_log
from test_service import Steptraced

RSYSLOGD = shutil.which("rsyslogd") or (
    "/usr/sbin/rsyslogd" if os.access("/usr/sbin/rsyslogd", os.X_OK) else None)

# Every field rsyslog parsed, as JSON (one line per message); with
# mmjsonparse, the JSON of an "@cee:" MSG as rsyslog understood it.
RSYSLOG_CONF = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
module(load="imptcp")
module(load="mmjsonparse")
template(name="fields" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="time" name="timereported" dateFormat="rfc3339"
           format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="cee" name="$!all-json" format="jsonf")
}}
ruleset(name="steptrace") {{
  action(type="mmjsonparse")
  action(type="omfile" file="{out}" template="fields")
}}
{inputs}
"""

# One SD-ELEMENT [ID name="value" ...], values with \\", \\\\ and \\] escapes.
SD_RE = re.compile(r'^\[(\S+)((?: [a-z_]+="(?:[^"\\\]]|\\.)*")*)\]$')
SD_PARAM_RE = re.compile(r' ([a-z_]+)="((?:[^"\\\]]|\\.)*)"')

TRICKY = 'q"b\\\\s]x\\nü€😀'  # q"b\s]x, a newline, non-ASCII (Python source)

WORK = """\
def work(n):
    tricky = '%s'
    total = 0
    for i in range(n):
        total += i
    return total
""" % TRICKY


def work_steps(n):
    """Steps of one call work(n): tricky, total, the loop (two lines per
    turn and the last test), return."""
    return 2 * n + 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sd_params(sd):
    """(SD-ID, {name: value}) of one SD-ELEMENT, unescaped."""
    m = SD_RE.match(sd)
    if m is None:
        raise AssertionError("not one SD-ELEMENT: %r" % sd)
    params = {k: re.sub(r"\\(.)", r"\1", v)
              for k, v in SD_PARAM_RE.findall(m.group(2))}
    return m.group(1), params


class Rsyslogd:
    """A private rsyslogd: -n -f CONF -i PIDFILE, its work directory and
    output file in the test's directory, imtcp on `port` (or imptcp on a
    Unix socket)."""

    def __init__(self, test, port=None, unix_path=None, name="rsyslog"):
        if RSYSLOGD is None:
            test.skipTest("rsyslogd is not installed (tools/deps.sh installs "
                          "the rsyslog package)")
        self.test = test
        self.port = port
        self.unix_path = unix_path
        self.dir = test.path(name)
        os.makedirs(os.path.join(self.dir, "work"), exist_ok=True)
        self.out = os.path.join(self.dir, "out.jsonl")
        self.conf = os.path.join(self.dir, "rsyslog.conf")
        self.pidfile = os.path.join(self.dir, "rsyslogd.pid")
        inputs = []
        if port is not None:
            inputs.append('input(type="imtcp" port="%d" address="127.0.0.1" '
                          'ruleset="steptrace")' % port)
        if unix_path is not None:
            inputs.append('input(type="imptcp" path="%s" unlink="on" '
                          'ruleset="steptrace")' % unix_path)
        with open(self.conf, "w") as f:
            f.write(RSYSLOG_CONF.format(work=os.path.join(self.dir, "work"),
                                        out=self.out,
                                        inputs="\n".join(inputs)))
        self.proc = None
        test.addCleanup(self.kill)

    def start(self):
        err = open(os.path.join(self.dir, "rsyslogd.stderr"), "ab")
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", self.conf, "-i", self.pidfile],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        ok = helpers.wait_until(self._listening, 15)
        if not ok:
            raise AssertionError("rsyslogd did not start listening: %r"
                                 % helpers.read(os.path.join(
                                     self.dir, "rsyslogd.stderr")))
        return self

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("rsyslogd exited with %d" % self.proc.returncode)
        if self.unix_path is not None:
            return helpers.is_socket(self.unix_path)
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def messages(self):
        """Every message written so far, as dicts (the JSON of MSG under
        "json", the SD-ID and SD-PARAMs under "sd_id" and "params")."""
        try:
            with open(self.out, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        # Only whole lines: rsyslogd may be writing the last one.
        lines = data[:data.rfind(b"\n") + 1].decode("utf-8").splitlines()
        out = []
        for line in lines:
            m = json.loads(line)
            msg = m["msg"]
            if msg.startswith("@cee:"):
                msg = msg[5:]
            m["json"] = json.loads(msg)
            m["sd_id"], m["params"] = sd_params(m["sd"])
            out.append(m)
        return out

    def count(self, msgid):
        """How many whole lines so far are messages with this MSGID,
        counted in the file's bytes (a quote inside a value is escaped, so
        only the field itself matches).  Cheap enough to poll: messages()
        parses every line, which for 20,000 messages took from one to tens
        of seconds a call (glibc's MALLOC_PERTURB_, which meson test sets,
        under load)."""
        try:
            with open(self.out, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return 0
        return data.count(b'"msgid":"%s"' % msgid.encode(), 0,
                          data.rfind(b"\n") + 1)

    def wait_steps(self, n, timeout=60):
        """Waits until rsyslogd has written n STEP messages, polling
        count(); when it has not within timeout, says what it got."""
        if not helpers.wait_until(lambda: self.count("STEP") >= n, timeout):
            self._not_got(self.messages(), timeout)

    def wait_for(self, predicate, timeout=60):
        """Waits until predicate(messages) holds; returns the messages."""
        got = helpers.wait_until(lambda: predicate(self.messages()), timeout)
        msgs = self.messages()
        if not got:
            self._not_got(msgs, timeout)
        return msgs

    def _not_got(self, msgs, timeout):
        kinds = collections.Counter((m["msgid"], m["procid"]) for m in msgs)
        raise AssertionError("rsyslogd did not get what was expected "
                             "within %d s; it has %d messages: %r; "
                             "the last: %r"
                             % (timeout, len(msgs), dict(kinds), msgs[-3:]))


def sanitized(pid):
    """Is the process an AddressSanitizer build (its RSS means nothing)?"""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def steps_of(msgs, pid=None):
    return [m for m in msgs if m["msgid"] == "STEP" and
            (pid is None or m["procid"] == str(pid))]


class ForwardTest(TempDirTest):

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)
        if RSYSLOGD is None:
            self.skipTest("rsyslogd is not installed (tools/deps.sh installs "
                          "the rsyslog package)")

    def collector(self, *args, config=None):
        if config is not None:
            args = args + ("--config", helpers.write(self.path("c.yaml"),
                                                     config))
        return Steptraced(self, self.path("s.sock"), args)

    def program(self, body, name="prog.py"):
        return self.script(name, WORK + helpers.dedent(body))

    def traced(self, col, *args, timeout=120):
        return helpers.python(self.tmp, *args, timeout=timeout,
                              env=helpers.environ(STEPTRACE_SOCKET=col.sock))

    def popen(self, col, *args):
        env = helpers.environ(STEPTRACE_SOCKET=col.sock)
        return subprocess.Popen([helpers.PYTHON] + list(args), cwd=self.tmp,
                                env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def assert_matches_file(self, recs, steps):
        """The forwarded steps are the file's records, one for one:
        location, thread, variables (the values as the file shows them)."""
        self.assertEqual([int(m["params"]["step"]) for m in steps],
                         [r.step for r in recs])
        for r, m in zip(recs, steps):
            p = m["params"]
            self.assertEqual((p["file"], p["func"], int(p["line"])),
                             (r.file, r.func, r.line))
            self.assertEqual(p["thread"], "MainThread")
            self.assertEqual(m["pri"], "14")        # user.info
            self.assertEqual(m["app"], "steptrace")
            want = {"globals": r.vars("Global"), "locals": r.vars("Local")}
            got = {sec: {k: (v["type"], v["value"])
                         for k, v in m["json"].get(sec, {}).items()}
                   for sec in ("globals", "locals")}
            self.assertEqual(got, want, "step %d" % r.step)

    # -- everything arrives, once, in order --------------------------------

    def test_four_processes_every_step_once_in_order(self):
        rs = Rsyslogd(self, port=free_port()).start()
        col = self.collector("--forward",
                             "syslog+tcp://127.0.0.1:%d" % rs.port)
        self.program("""\
            import os
            from steptrace import Tracer
            with Tracer():
                work(2498)
            print(os.getpid())
            """)
        procs = [self.popen(col, "prog.py") for _ in range(4)]
        pids = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual((p.returncode, err), (0, b""))
            pids.append(int(out))
        n = work_steps(2498)
        self.assertEqual(n, 5000)
        rs.wait_steps(4 * n)
        time.sleep(0.5)             # anything more would be a duplicate
        msgs = rs.messages()
        self.assertEqual(len(steps_of(msgs)), 4 * n)
        files = {}
        for name in helpers.tracer_files(self.path(".tracer")):
            text = self.log(name)
            files[name] = parse_log(text)
        self.assertEqual(len(files), 4)
        runs = set()
        for pid in pids:
            steps = steps_of(msgs, pid)
            self.assertEqual([int(m["params"]["step"]) for m in steps],
                             list(range(1, n + 1)), "pid %d" % pid)
            self.assertEqual({m["params"]["run"] for m in steps},
                             {steps[0]["params"]["run"]})
            runs.add(steps[0]["params"]["run"])
            self.assertTrue(steps[0]["params"]["run"].startswith(
                "%s:%d:" % (socket.gethostname(), pid)))
            self.assertEqual({m["sd_id"] for m in steps}, {"steptrace@32473"})
            # The same records as the process's file, value for value (the
            # files differ by the address in `work`'s value).
            first = {k: (v["type"], v["value"]) for k, v in
                     steps[0]["json"].get("globals", {}).items()}
            recs = next(recs for recs in files.values()
                        if recs[0].vars("Global") == first)
            self.assert_matches_file(recs, steps)
            tricky = [m["json"]["locals"]["tricky"]["value"] for m in steps
                      if "tricky" in m["json"].get("locals", {})]
            # The value as the file shows it: str() with the newline
            # escaped; quote, backslash, ']' and non-ASCII intact.
            self.assertEqual(set(tricky), {'q"b\\s]x\\nü€😀'})
        self.assertEqual(len(runs), 4)
        st = col.status()
        self.assertEqual(st["forward_sent"], 4 * n)
        self.assertEqual(st["forward_dropped"], 0)
        url = "syslog+tcp://127.0.0.1:%d" % rs.port
        self.assertEqual(st["forward.%s.sent" % url], 4 * n)
        self.assertEqual(st["forward.%s.connected" % url], 1)
        r = helpers.run([helpers.PYTHON, "-m", "steptrace", "daemon",
                         "status", "--socket", col.sock], self.tmp)
        self.assertIn("  forward          %s: connected, %d sent, 0 queued "
                      "(0 bytes), 0 dropped, 0 reconnects" % (url, 4 * n),
                      r.stdout)
        col.stop()

    # -- the relay goes away and comes back ----------------------------------

    def test_rsyslogd_restart_nothing_lost_while_queue_holds(self):
        port = free_port()
        rs = Rsyslogd(self, port=port).start()
        url = "syslog+tcp://127.0.0.1:%d" % port
        col = self.collector("--forward", url)
        self.program("""\
            import os, time
            from steptrace import Tracer
            t = Tracer()
            with t:
                work(500)
            open("phase1", "w").close()
            while not os.path.exists("go"):
                time.sleep(0.01)
            with t:
                work(1500)
            print("done")
            """)
        p = self.popen(col, "prog.py")
        self.assertTrue(helpers.wait_until(
            lambda: os.path.exists(self.path("phase1")), 60))
        n1, n2 = work_steps(500), work_steps(1500)
        rs.wait_for(lambda ms: len(steps_of(ms)) >= n1)
        rs.stop()
        # The program goes on while the relay is down: its records wait in
        # the collector's queue.
        open(self.path("go"), "w").close()
        out, err = p.communicate(timeout=60)
        self.assertEqual((p.returncode, out, err), (0, b"done\n", b""))
        time.sleep(2)
        rs2 = Rsyslogd(self, port=port, name="rsyslog2").start()
        msgs = rs2.wait_for(lambda ms: len(steps_of(ms)) >= n2, 30)
        time.sleep(0.5)
        msgs = rs.messages() + rs2.messages()
        runs = sorted({m["params"]["run"] for m in steps_of(msgs)})
        self.assertEqual(len(runs), 2)
        for run, n in zip(sorted(runs, key=lambda r: int(r.split(":")[2])),
                          (n1, n2)):
            self.assertEqual([int(m["params"]["step"]) for m in steps_of(msgs)
                              if m["params"]["run"] == run],
                             list(range(1, n + 1)))
        st = col.status()
        self.assertEqual(st["forward.%s.dropped" % url], 0)
        self.assertEqual(st["forward.%s.reconnects" % url], 1)
        self.assertEqual(st["forward.%s.sent" % url], n1 + n2)
        log = col.log()
        self.assertEqual(log.count("connection lost (closed by the "
                                   "destination)"), 1, log)
        self.assertIn("%s: connected (after: " % url, log)
        col.stop()

    def test_tiny_queue_drops_counted_and_reported_files_complete(self):
        port = free_port()
        url = "syslog+tcp://127.0.0.1:%d" % port
        col = self.collector(config="forward: [%s]\n"
                             "forward_queue_bytes: 65536\n"
                             "max_message_bytes: 16384\n" % url)
        self.program("""\
            from steptrace import Tracer
            with Tracer():
                work(2498)
            print("done")
            """)
        r = self.traced(col, "prog.py")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "done\n", ""))
        n = work_steps(2498)
        recs = self.records()
        self.assertEqual([x.step for x in recs], list(range(1, n + 1)))
        st = col.status()
        queued, dropped = st["forward.%s.queued" % url], \
            st["forward.%s.dropped" % url]
        self.assertGreater(dropped, 0)
        self.assertEqual(queued + dropped, n)
        self.assertEqual(st["forward_dropped"], dropped)
        r = helpers.run([helpers.PYTHON, "-m", "steptrace", "daemon",
                         "status", "--socket", col.sock], self.tmp)
        self.assertIn("%s: not connected, 0 sent, %d queued" % (url, queued),
                      r.stdout)
        self.assertIn(", %d dropped, 0 reconnects" % dropped, r.stdout)
        # The relay comes: what the queue held, then one NOTE with the count.
        rs = Rsyslogd(self, port=port).start()
        msgs = rs.wait_for(lambda ms: any(m["msgid"] == "NOTE" for m in ms),
                           30)
        notes = [m for m in msgs if m["msgid"] == "NOTE"]
        self.assertEqual(len(notes), 1)
        self.assertEqual(notes[0]["pri"], "12")     # user.warning
        self.assertEqual(notes[0]["json"]["text"],
                         "[steptrace] %d records dropped while forwarding to "
                         "%s: its queue was full (the destination was "
                         "unreachable or too slow)" % (dropped, url))
        steps = [int(m["params"]["step"]) for m in steps_of(msgs)]
        self.assertEqual(steps, list(range(1, queued + 1)))
        self.assertEqual(msgs[-1]["msgid"], "NOTE")
        self.assertIn("queue full", col.log())
        col.stop()

    # -- destinations that fail: the programs never notice ---------------------

    def _baseline(self):
        """The program's output without any collector option."""
        self.program("""\
            from steptrace import Tracer
            with Tracer():
                print(work(3000))
            """)
        return "4498500\n"

    def test_refused_at_start_one_line_program_unaffected(self):
        port = free_port()
        url = "syslog+tcp://127.0.0.1:%d" % port
        want = self._baseline()
        col = self.collector("--forward", url)
        r = self.traced(col, "prog.py")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, want, ""))
        self.assertEqual([x.step for x in self.records()],
                         list(range(1, work_steps(3000) + 1)))
        time.sleep(1.0)     # several retries: still one line
        log = col.log()
        line = ("steptraced: forward %s: cannot connect to 127.0.0.1:%d: "
                "connection refused; retrying every 0.1 to 5 s\n" % (url, port))
        self.assertEqual(log.count(line), 1, log)
        col.stop()
        self.assertIn("forward %s: " % url, col.log())
        self.assertRegex(col.log(), r"records not delivered at exit "
                         r"\(the destination was unreachable\)")

    def test_unresolvable_host_one_line_program_unaffected(self):
        url = "syslog+tcp://no-such-host.invalid:514"
        want = self._baseline()
        col = self.collector("--forward", url)
        r = self.traced(col, "prog.py")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, want, ""))
        self.assertEqual([x.step for x in self.records()],
                         list(range(1, work_steps(3000) + 1)))
        time.sleep(0.5)
        log = col.log()
        lines = [x for x in log.splitlines() if "no-such-host.invalid" in x]
        self.assertEqual(len(lines), 1, log)
        self.assertRegex(lines[0], r"^steptraced: forward %s: cannot resolve "
                         r"'no-such-host.invalid': .+; retrying every 0.1 to "
                         r"5 s$" % re.escape(url))
        col.stop()

    def test_destination_that_never_reads_memory_bounded(self):
        """A relay that accepts and never reads: the kernel's buffers and
        the queue fill, then records for it are dropped; the collector's
        memory stays bounded and the program runs as without it."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)
        held = []
        t = threading.Thread(target=lambda: held.append(srv.accept()),
                             daemon=True)
        t.start()
        url = "syslog+tcp://127.0.0.1:%d" % srv.getsockname()[1]
        col = self.collector(config="forward: [%s]\n"
                             "forward_queue_bytes: 4194304\n" % url)
        self.program("""\
            from steptrace import Tracer
            with Tracer():
                print(work(20000))
            """)
        r = self.traced(col, "prog.py")
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "199990000\n", ""))
        n = work_steps(20000)
        self.assertEqual([x.step for x in self.records()],
                         list(range(1, n + 1)))
        t.join(10)
        self.assertTrue(held, "the collector never connected")
        st = col.status()
        self.assertEqual(st["forward.%s.connected" % url], 1)
        self.assertGreater(st["forward.%s.dropped" % url], 0)
        self.assertLessEqual(st["forward.%s.queued_bytes" % url], 4194304)
        hwm = helpers.proc_status_kib(col.pid, "VmHWM")
        if not helpers.UNDER_ASAN and not sanitized(col.pid):
            # The queue's 4 MiB over what the collector needs anyway.
            self.assertLess(hwm, 48 * 1024, "collector peak RSS %d KiB" % hwm)
        self.assertEqual(col.log().count("queue full"), 1, col.log())
        self.assertIn("the destination reads too slowly", col.log())
        t0 = time.monotonic()
        col.stop()
        # forward_drain_ms (2 s) bounds the wait for a relay that never reads.
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("records not delivered at exit (the destination read "
                      "too slowly)", col.log())

    def test_sigterm_drains_the_queue(self):
        """At SIGTERM the queue is written out (forward_drain_ms) before
        the collector exits 0: a relay that starts reading only then gets
        every record."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)
        go = threading.Event()
        got = []

        def relay():
            c, _ = srv.accept()
            go.wait(120)
            data = b""
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                data += b
            got.append(data)

        t = threading.Thread(target=relay, daemon=True)
        t.start()
        url = "syslog+tcp://127.0.0.1:%d" % srv.getsockname()[1]
        col = self.collector("--forward", url)
        self.program("""\
            from steptrace import Tracer
            with Tracer():
                work(20000)
            """)
        r = self.traced(col, "prog.py")
        self.assertEqual(r.returncode, 0, r)
        n = work_steps(20000)
        st = col.status()
        self.assertGreater(st["forward.%s.queued" % url], 0,
                           "the kernel took everything: nothing to drain")
        col.proc.send_signal(signal.SIGTERM)
        go.set()
        self.assertEqual(col.proc.wait(30), 0, col.log())
        t.join(30)
        data = got[0]
        # Octet counting: LEN SP MSG, one message per record.
        steps, i = [], 0
        while i < len(data):
            sp = data.index(b" ", i)
            ln = int(data[i:sp])
            msg = data[sp + 1:sp + 1 + ln]
            i = sp + 1 + ln
            steps.append(int(re.search(rb' step="(\d+)"', msg).group(1)))
        self.assertEqual(steps, list(range(1, n + 1)))
        self.assertNotIn("not delivered", col.log())

    # -- settings: forward only, @cee:, SD-ID, facility; a Unix socket --------

    def test_forward_only_cee_over_unix_socket(self):
        sock = self.path("relay.sock")
        rs = Rsyslogd(self, unix_path=sock).start()
        url = "syslog+unix://" + sock
        col = self.collector(config="forward: %s\n"
                             "log_file: false\n"
                             "cee: true\n"
                             "sd_id: trace@32473\n"
                             "facility: local0\n" % url)
        self.program("""\
            from steptrace import Tracer
            with Tracer():
                work(10)
            """)
        r = self.traced(col, "prog.py")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        n = work_steps(10)
        msgs = rs.wait_for(lambda ms: len(steps_of(ms)) >= n, 30)
        self.assertFalse(os.path.exists(self.path(".tracer")))
        steps = steps_of(msgs)
        self.assertEqual([int(m["params"]["step"]) for m in steps],
                         list(range(1, n + 1)))
        for m in steps:
            self.assertEqual(m["pri"], str(16 * 8 + 6))     # local0.info
            self.assertEqual(m["sd_id"], "trace@32473")
            self.assertTrue(m["msg"].startswith("@cee:{"))
            # mmjsonparse read it: the same object.
            self.assertEqual(json.loads(m["cee"]), m["json"])
        st = col.status()
        self.assertEqual(st["records_written"], 0)
        self.assertEqual(st["forward_sent"], n)
        col.stop()

    def test_bad_forward_values_exit_2(self):
        for args, says in (
                (["--forward", "udp://h:514"],
                 "steptraced: --forward 'udp://h:514' is not a forward "
                 "destination; write syslog+tcp://HOST:PORT or "
                 "syslog+unix:///PATH\n"),
                (["--forward", "syslog+tcp://h:0"],
                 "steptraced: --forward 'syslog+tcp://h:0': the port must "
                 "be a number from 1 to 65535 (and nothing may follow it)\n")):
            r = helpers.run([helpers.steptraced_path(), "--socket",
                             self.path("x.sock")] + args, self.tmp)
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (2, "", says))
        cfg = helpers.write(self.path("c.yaml"), "facility: kernel\n")
        r = helpers.run([helpers.steptraced_path(), "--socket",
                         self.path("x.sock"), "--config", cfg], self.tmp)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "steptraced: %s:1:11: facility must be a "
                         "syslog facility: user, daemon, local0 .. local7 "
                         "(or 0 .. 23)\n" % cfg)


if __name__ == "__main__":
    unittest.main()
