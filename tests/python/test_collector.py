"""Finding the collector (docs/COLLECTOR.md sections 1 and 2): the embedded
default (a private steptraced for the process tree), a running steptraced named
by STEPTRACE_SOCKET, a socket nobody listens on, and many processes into one
collector."""
import json
import os
import socket
import subprocess
import time
import unittest

import helpers
from helpers import TempDirTest, parse_log

# Script code that finds, through /proc, the steptraced processes serving
# this process's STEPTRACE_SOCKET (the socket is on their command line),
# and reports them with the socket as one JSON line.
REPORT = """\
import json as _json, os as _os
def _my_collectors():
    sock = _os.environ.get("STEPTRACE_SOCKET")
    found = []
    for d in _os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as fh:
                st = fh.read()
            with open("/proc/%s/cmdline" % d, "rb") as fh:
                argv = fh.read().decode("utf-8", "replace").split("\\0")
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        state, ppid = st[st.rindex(")") + 2:].split()[:2]
        if comm == "steptraced" and sock and sock in argv and state != "Z":
            found.append((int(d), int(ppid)))
    return found
def _report(**extra):
    sock = _os.environ.get("STEPTRACE_SOCKET")
    found = _my_collectors()
    out = {"socket": sock, "collectors": [pid for pid, _ in found],
           "parents": [ppid for _, ppid in found], "me": _os.getpid(),
           "is_socket": bool(sock) and __import__("stat").S_ISSOCK(
               _os.stat(sock).st_mode)}
    out.update(extra)
    print("REPORT " + _json.dumps(out))
"""

WORK = """\
def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
"""


def report_of(r):
    lines = [l for l in r.stdout.splitlines() if l.startswith("REPORT ")]
    if len(lines) != 1:
        raise AssertionError("no REPORT line in the output: %r" % (r,))
    return json.loads(lines[0][len("REPORT "):])


class CollectorTest(TempDirTest):

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)

    def cli_script(self, name="script.py", extra=""):
        return self.script(name, WORK + REPORT + extra + "work(3)\n_report()\n")

    # -- the embedded default ------------------------------------------

    def test_embedded_default_cli(self):
        path = self.cli_script()
        r = helpers.steptrace_run(self.tmp, "script.py",
                                  env=helpers.environ())
        self.assertEqual(r.returncode, 0, r)
        rep = report_of(r)
        # A private collector served this process tree while it ran ...
        self.assertTrue(rep["socket"], rep)
        self.assertTrue(rep["is_socket"], rep)
        self.assertEqual(len(rep["collectors"]), 1, rep)
        pid = rep["collectors"][0]
        # ... and goes away by itself once its last client is gone.
        gone = helpers.wait_until(lambda: not helpers.proc_alive(pid), 10)
        self.assertTrue(gone, "the private steptraced (pid %d) still runs "
                        "10 s after the traced program exited" % pid)
        self.assertFalse(os.path.exists(rep["socket"]),
                         "the private collector left its socket behind")
        self.assertEqual(r.stderr, "")
        recs = self.records()
        helpers.assert_steps_contiguous(self, recs)
        self.assertEqual([(x.func, x.line) for x in recs if x.func == "work"],
                         [("work", 2), ("work", 3), ("work", 4), ("work", 3),
                          ("work", 4), ("work", 3), ("work", 4), ("work", 3),
                          ("work", 5)])
        self.assertTrue(all(x.file == path for x in recs))

    def test_embedded_default_api(self):
        self.script("script.py", WORK + REPORT + """\
from steptrace import Tracer
with Tracer():
    work(2)
_report()
""")
        r = helpers.python(self.tmp, "script.py", env=helpers.environ())
        self.assertEqual(r.returncode, 0, r)
        rep = report_of(r)
        self.assertEqual(len(rep["collectors"]), 1, rep)
        self.assertEqual(r.stderr, "")
        recs = self.records()
        self.assertEqual([(x.step, x.func) for x in recs],
                         [(i, "work") for i in range(1, 8)])
        pid = rep["collectors"][0]
        self.assertTrue(helpers.wait_until(
            lambda: not helpers.proc_alive(pid), 10),
            "the private steptraced still runs")

    def test_private_collector_does_not_hold_program_stdio(self):
        # The private collector outlives the program by its idle time; if
        # it keeps the program's stdout/stderr open, whoever reads them
        # (a pipe, $(...), CI) waits for it, and its messages land in the
        # program's stream after the program has ended.
        self.script("script.py", WORK + REPORT + """\
work(1)
def _links(pid):
    out = {}
    for fd in ("1", "2"):
        try:
            out[fd] = _os.readlink("/proc/%s/fd/%s" % (pid, fd))
        except OSError as e:
            out[fd] = "error: %s" % e
    return out
_c = _my_collectors()
_report(mine=_links("self"), its=_links(_c[0]) if _c else None)
""")
        r = helpers.steptrace_run(self.tmp, "script.py",
                                  env=helpers.environ())
        self.assertEqual(r.returncode, 0, r)
        rep = report_of(r)
        self.assertEqual(len(rep["collectors"]), 1, rep)
        mine, its = rep["mine"], rep["its"]
        self.assertTrue(mine["1"].startswith("pipe:"), mine)
        for fd, name in (("1", "stdout"), ("2", "stderr")):
            self.assertNotEqual(its[fd], mine[fd], "the private steptraced "
                                "holds the traced program's %s (%s) open"
                                % (name, mine[fd]))

    def test_private_collector_is_not_the_programs_child(self):
        # A program that waits for its own children (os.wait(), a shell-
        # like loop over waitpid(-1)) must not find the collector among
        # them: os.wait() would block until the collector exits, which it
        # does only after the program has gone.
        self.script("script.py", WORK + REPORT + """\
work(1)
try:
    _waited = _os.waitpid(-1, _os.WNOHANG)
except ChildProcessError:
    _waited = "no children"
_report(waited=_waited)
""")
        r = helpers.steptrace_run(self.tmp, "script.py",
                                  env=helpers.environ())
        self.assertEqual(r.returncode, 0, r)
        rep = report_of(r)
        self.assertEqual(len(rep["collectors"]), 1, rep)
        self.assertNotIn(rep["me"], rep["parents"],
                         "the private steptraced is a child of the traced "
                         "program")
        self.assertEqual(rep["waited"], "no children")

    # -- a running collector --------------------------------------------

    def test_records_go_to_running_collector(self):
        sock = self.path("s.sock")
        col = helpers.Collector(self, sock).start()
        path = self.cli_script()
        r = helpers.steptrace_run(self.tmp, "script.py",
                                  env=helpers.environ(STEPTRACE_SOCKET=sock))
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "")
        rep = report_of(r)
        self.assertEqual(rep["socket"], sock)
        self.assertEqual(rep["collectors"], [col.proc.pid],
                         "a private collector was started although "
                         "STEPTRACE_SOCKET names a live one")
        # The file is complete before the collector is stopped.
        before = self.log()
        recs = parse_log(before)
        self.assertIn(("work", 5), [(x.func, x.line) for x in recs])
        self.assertTrue(all(x.file == path for x in recs))
        self.assertIsNone(col.proc.poll(), "the collector exited")
        col.stop_and_check()
        self.assertEqual(self.log(), before)

    def test_unanswered_socket_warns_and_falls_back(self):
        dead = self.path("dead.sock")
        stale = self.path("stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()   # the file stays: nobody listens on it
        for target in (dead, stale):
            with self.subTest(socket=target):
                cwd = self.path(os.path.basename(target) + ".run")
                os.mkdir(cwd)
                helpers.write(os.path.join(cwd, "script.py"),
                              WORK + REPORT + "print('normal output')\n"
                              "work(2)\n_report()\nimport sys\nsys.exit(5)\n")
                r = helpers.steptrace_run(
                    cwd, "script.py",
                    env=helpers.environ(STEPTRACE_SOCKET=target))
                # The program runs as usual ...
                self.assertEqual(r.returncode, 5, r)
                self.assertTrue(r.stdout.startswith("normal output\n"), r)
                # ... after one warning line naming the problem ...
                lines = r.stderr.splitlines()
                self.assertEqual(len(lines), 1, "expected one warning line "
                                 "on stderr: %r" % r.stderr)
                self.assertTrue(lines[0].startswith("steptrace:"), lines[0])
                self.assertIn(target, lines[0])
                self.assertNotIn("Traceback", r.stderr)
                # ... and a private collector took over.
                rep = report_of(r)
                self.assertNotEqual(rep["socket"], target)
                self.assertTrue(rep["is_socket"], rep)
                recs = self.records(cwd=cwd)
                self.assertIn(("work", 4), [(x.func, x.line) for x in recs])
        self.assertTrue(helpers.is_socket(stale) or not os.path.exists(stale))

    # -- many processes -------------------------------------------------

    def test_several_processes_into_one_collector(self):
        sock = self.path("s.sock")
        col = helpers.Collector(self, sock).start()
        self.script("script.py", """\
            import os, sys, time
            from steptrace import Tracer
            ident = sys.argv[1]
            def work(n):
                total = 0
                for i in range(n):
                    total += i
                return total
            deadline = time.monotonic() + 30
            while not os.path.exists("go") and time.monotonic() < deadline:
                time.sleep(0.01)
            with Tracer():
                work(300)
            """)
        env = helpers.environ(STEPTRACE_SOCKET=sock)
        procs = []
        n = 4
        for k in range(n):
            procs.append(subprocess.Popen(
                [helpers.PYTHON, "script.py", "P%d" % k], cwd=self.tmp,
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        open(self.path("go"), "w").close()
        for p in procs:
            try:
                out, err = p.communicate(timeout=helpers.TIMEOUT)
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                raise AssertionError("a traced process hung")
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(err, b"")
        files = helpers.tracer_files(self.path(".tracer"))
        self.assertEqual(files, ["tracer.log"] + ["tracer_%d.log" % k
                                                  for k in range(1, n)])
        idents = set()
        for name in files:
            recs = self.records(name)
            self.assertEqual(len(recs), 1 + 301 + 300 + 1, name)
            self.assertEqual([x.step for x in recs],
                             list(range(1, len(recs) + 1)))
            owners = set(x.vars("Global")["ident"] for x in recs)
            self.assertEqual(len(owners), 1, "%s mixes processes' records"
                             % name)
            idents |= owners
            self.assertEqual(recs[-1].vars("Local")["total"],
                             ("int", str(sum(range(300)))))
        self.assertEqual(idents, {("str", "P%d" % k) for k in range(n)})
        col.stop_and_check()

    def test_traced_child_logs_into_the_parents_collector(self):
        parent = self.script("script.py", REPORT + """\
import subprocess, sys
def spawn():
    child = subprocess.run([sys.executable, "-m", "steptrace", "run",
                            "child.py"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
    return child
child = spawn()
print(child.stdout, end="")
print("CHILD_STDERR " + repr(child.stderr))
_report(child_rc=child.returncode)
""")
        child = self.script("child.py", WORK + REPORT + "work(2)\n"
                            "_report()\n")
        r = helpers.steptrace_run(self.tmp, "script.py",
                                  env=helpers.environ())
        self.assertEqual(r.returncode, 0, r)
        # The child's own `steptrace run` says where its log is, and
        # nothing else.
        self.assertRegex(r.stdout, r"CHILD_STDERR 'steptrace: \d+ steps in "
                         r"\.tracer/tracer_1\.log\\n'\n")
        lines = [l for l in r.stdout.splitlines() if l.startswith("REPORT ")]
        self.assertEqual(len(lines), 2, r)
        child_rep = json.loads(lines[0][7:])
        parent_rep = json.loads(lines[1][7:])
        self.assertEqual(parent_rep["child_rc"], 0)
        self.assertEqual(len(parent_rep["collectors"]), 1, parent_rep)
        self.assertEqual(child_rep["socket"], parent_rep["socket"])
        self.assertEqual(child_rep["collectors"], parent_rep["collectors"],
                         "the child started a collector of its own")
        files = helpers.tracer_files(self.path(".tracer"))
        self.assertEqual(files, ["tracer.log", "tracer_1.log"])
        by_file = {}
        for name in files:
            recs = self.records(name)
            helpers.assert_steps_contiguous(self, recs)
            self.assertEqual(len(helpers.split_regions(recs)), 1)
            sources = set(x.file for x in recs)
            self.assertEqual(len(sources), 1, name)
            by_file[sources.pop()] = recs
        self.assertEqual(set(by_file), {parent, child})
        self.assertIn("work", [x.func for x in by_file[child]])


if __name__ == "__main__":
    unittest.main()
