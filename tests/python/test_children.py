"""Whole process trees (issue 11 item 1) and `steptrace run`'s closing line
(item 8): every Python process a traced run starts is traced with its
settings into its own file, through the same collector; each child's file
begins with where it comes from and the parent's log names each child at
its step.  Real interpreters, the real CLI and collector, real files."""
import glob
import json
import os
import re
import sys
import unittest

import helpers
from helpers import TempDirTest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# The child: what it can see of the mechanism goes to stdout, which must
# be the same traced and untraced.
CHILD = """\
import os, sys
def work(n):
    s = 0
    for i in range(n):
        s += i
    return s
paths = [p for p in sys.path if p.rstrip("/").endswith("_boot")]
print("child", work(int(sys.argv[1])), os.environ.get("STEPTRACE_CHILD"),
      os.environ.get("PYTHONPATH"), paths,
      "sitecustomize" in sys.modules and
      getattr(sys.modules["sitecustomize"], "MINE", None), flush=True)
sys.exit(3)
"""

# The parent: starts children in the way argv[1] names.
PARENT = """\
import multiprocessing as mp
import os, shlex, subprocess, sys

def job(k):
    total = 0
    for i in range(k):
        total += i
    return total

def main(how):
    if how in ("spawn", "forkserver"):
        ctx = mp.get_context(how)
        with ctx.Pool(2) as pool:
            out = pool.map(job, [3, 4, 5])
        print(how, out)
    elif how == "executor":
        from concurrent.futures import ProcessPoolExecutor
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(2, mp_context=ctx) as ex:
            out = list(ex.map(job, [3, 4]))
        print(how, out)
    elif how == "subprocess":
        r = subprocess.run([sys.executable, "child.py", "7"],
                           stdout=subprocess.PIPE, universal_newlines=True)
        print(r.stdout, end="")
        print("rc", r.returncode)
    elif how == "other":
        env = dict(os.environ)
        if "OTHER_PYTHONPATH" in env:
            env["PYTHONPATH"] = env.pop("OTHER_PYTHONPATH")
        r = subprocess.run([os.environ["OTHER_PYTHON"], "child.py", "6"],
                           stdout=subprocess.PIPE, universal_newlines=True,
                           env=env)
        print(r.stdout, end="")
        print("rc", r.returncode)
    elif how == "shell":
        r = subprocess.run("%s child.py 5" % shlex.quote(sys.executable),
                           shell=True, stdout=subprocess.PIPE,
                           universal_newlines=True)
        print(r.stdout, end="")
        print("rc", r.returncode)
    elif how == "posix_spawn":
        pid = os.posix_spawn(sys.executable,
                             [sys.executable, "child.py", "4"], os.environ)
        _, status = os.waitpid(pid, 0)
        print("rc", os.waitstatus_to_exitcode(status))
    elif how == "exec":
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "child.py", "2"])
    elif how == "programs":
        # Not Python: they run unchanged (same environment as untraced).
        for argv in (["printenv", "PYTHONPATH"], ["env"],
                     ["env", "printenv", "STEPTRACE_CHILD"]):
            r = subprocess.run(argv, stdout=subprocess.PIPE,
                               universal_newlines=True)
            lines = r.stdout.splitlines()
            print(argv[0], r.returncode,
                  sorted(l for l in lines if "STEPTRACE_CHILD" in l or
                         l.startswith("PYTHONPATH") or "_boot" in l))

if __name__ == "__main__":
    main(sys.argv[1])
"""


def parse_origin(line):
    """(pid, how, parent pid, step, parent file) of a child's first line."""
    m = helpers.ORIGIN_RE.match(line)
    if m is None:
        return None
    pid = int(m.group(1))
    how = m.group(2) or "exec"
    ppid = int(m.group(3)) if m.group(3) else pid
    step = int(m.group(4)) if m.group(4) else None
    return pid, how, ppid, step, m.group(5)


def records(text):
    """The records of a log, without the process tree's lines and the line
    that says how a process ended (a pool's worker ends by SIGTERM)."""
    return helpers.parse_log(
        re.sub(r"(?m)^\[steptrace\] the process .*\n", "", text))


def snapshot(root, skip=()):
    """{relative path: (size, mtime)} of the files under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if os.path.join(d, x) not in skip]
        for f in files:
            p = os.path.join(d, f)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


class ChildrenTest(TempDirTest):

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)
        self.script("child.py", CHILD)
        self.script("tree.py", PARENT)
        self.logdir = self.path(".tracer")

    # -- helpers ----------------------------------------------------------

    def both(self, how, *options, env=None):
        """Runs tree.py untraced and traced; their stdout and exit status
        must be equal.  Returns the traced run."""
        env = env or helpers.environ()
        plain = helpers.python(self.tmp, "tree.py", how, env=env)
        r = helpers.steptrace_run(self.tmp, *options, "tree.py", how,
                                  env=env, timeout=120)
        self.assertEqual((r.returncode, r.stdout),
                         (plain.returncode, plain.stdout), r)
        self.assertEqual(r.stderr, "", r)
        return r

    def files(self):
        """{name: text} of the log directory's files."""
        return {name: self.log(name)
                for name in helpers.tracer_files(self.logdir)}

    def tree(self):
        """(parent's text, {child pid: (origin tuple, text)}): tracer.log
        is the parent's; every other file is a child's and begins with its
        origin line."""
        files = self.files()
        parent = files.pop("tracer.log")
        self.assertIsNone(parse_origin(parent.split("\n", 1)[0]), parent)
        children = {}
        for name, text in files.items():
            first = text.split("\n", 1)[0]
            origin = parse_origin(first)
            self.assertIsNotNone(origin, "%s does not begin with its "
                                 "origin line: %r" % (name, text[:300]))
            self.assertNotIn(origin[0], children)
            children[origin[0]] = (origin, text)
            # The rest parses as records; the origin line is there once.
            records(text)
            self.assertEqual(len([l for l in helpers.process_lines(text)
                                  if helpers.ORIGIN_RE.match(l)]), 1, name)
        return parent, children

    def started_lines(self, parent):
        """[(step, how, pid, command)] the parent's log names."""
        out = []
        for line in helpers.process_lines(parent):
            m = helpers.STARTED_RE.match(line)
            if m:
                out.append((int(m.group(1)), m.group(2), int(m.group(3)),
                            m.group(4)))
        return out

    def assert_step_is_line(self, text, step, needle):
        """The parent's step `step` is the line holding `needle`."""
        recs = {x.step: x for x in records(text)}
        self.assertIn(step, recs)
        path = recs[step].file
        src = helpers.read(path).splitlines()
        self.assertIn(needle, src[recs[step].line - 1],
                      "step %d is line %d" % (step, recs[step].line))

    def jobs_of(self, text):
        """The k of each job(k) call a log holds."""
        return [int(rec.vars("Local")["k"][1])
                for rec in records(text)
                if rec.func == "job" and rec.line == 5]

    # -- what is followed -------------------------------------------------

    def check_pool(self, how):
        r = self.both(how, "--variable-mode", "ALL")
        parent, children = self.tree()
        self.assertTrue(children, "no child was traced")
        parent_log = os.path.join(self.logdir, "tracer.log")
        me = None
        ks = []
        for pid, (origin, text) in children.items():
            _, chow, ppid, step, pfile = origin
            if me is None:
                me = ppid if how != "forkserver" else None
            self.assertTrue(text.count("\n") > 1, text)
            ks += self.jobs_of(text)
            if how == "forkserver":
                # Forked by the forkserver, which the run started: the
                # line names both.
                self.assertEqual(chow, "forked")
                first = text.split("\n", 1)[0]
                self.assertRegex(first, r"^\[steptrace\] process %d was "
                                 r"forked by process %d \(process %d was "
                                 r"started by "
                                 r"process \d+ at step \d+ of %s\)$"
                                 % (pid, ppid, ppid, re.escape(parent_log)))
            else:
                self.assertEqual((chow, pfile), ("started", parent_log))
                self.assertEqual(ppid, me)
        self.assertEqual(sorted(ks), [3, 4, 5] if how != "executor"
                         else [3, 4])
        self.assertEqual(self.jobs_of(parent), [])
        started = self.started_lines(parent)
        self.assertTrue(started, parent)
        for step, word, pid, command in started:
            self.assertEqual(word, "started")
            self.assertIn(sys.executable, command)
        # Every child traced is named in the parent's log; the others are
        # multiprocessing's helpers, which run no code of the program.
        pids = {p for _, _, p, _ in started}
        if how != "forkserver":
            self.assertLessEqual(set(children), pids)
        for _, _, pid, command in started:
            if pid not in children:
                # (a pool's worker ended before it ran the program's
                # code writes nothing either)
                self.assertRegex(command, r"multiprocessing\.(resource_tracker"
                                 r"|forkserver|spawn)")
        self.assertRegex(r.closing, r"^steptrace: \d+ steps in "
                         r"\.tracer/tracer\.log; %d child process(es)? "
                         r"started \(each one traced has a file of its own "
                         r"in \.tracer\)\n$" % len(started))
        return parent, children

    def test_spawn_pool(self):
        parent, children = self.check_pool("spawn")
        for step, _, pid, _ in self.started_lines(parent):
            if pid not in children:
                continue  # the resource tracker
            self.assertEqual(children[pid][0][3], step)
            self.assert_step_is_line(parent, step, "ctx.Pool(2)")

    def test_forkserver_pool(self):
        self.check_pool("forkserver")

    def test_process_pool_executor_with_spawn(self):
        self.check_pool("executor")

    def test_subprocess_of_the_same_interpreter(self):
        r = self.both("subprocess")
        self.assertRegex(r.stdout, r"^child 21 None %s \[\] (None|False)\n"
                         r"rc 3\n$" % re.escape(os.environ["PYTHONPATH"]))
        parent, children = self.tree()
        (pid, ((_, how, ppid, step, pfile), text)), = children.items()
        self.assertEqual((how, pfile),
                         ("started", os.path.join(self.logdir, "tracer.log")))
        self.assertEqual(self.started_lines(parent),
                         [(step, "started", pid,
                           "%s child.py 7" % sys.executable)])
        self.assert_step_is_line(parent, step, "subprocess.run(")
        # The child's own steps, from its first line.
        recs = helpers.parse_log(text)
        self.assertEqual(recs[0].step, 1)
        self.assertIn(("work", 5), [(x.func, x.line) for x in recs])
        self.assertEqual(set(x.file for x in recs), {self.path("child.py")})

    def test_a_shell_command_that_starts_python(self):
        r = self.both("shell")
        self.assertRegex(r.stdout, r"^child 10 None %s \[\] (None|False)\n"
                         r"rc 3\n$" % re.escape(os.environ["PYTHONPATH"]))
        parent, children = self.tree()
        self.assertEqual(len(children), 1)
        (step, _, shell_pid, command), = self.started_lines(parent)
        self.assertTrue(command.startswith("/bin/sh -c "), command)

    def test_posix_spawn(self):
        self.both("posix_spawn")
        parent, children = self.tree()
        (pid, (origin, text)), = children.items()
        self.assertEqual(origin[1], "started")
        (step, _, spid, _), = self.started_lines(parent)
        self.assertEqual((spid, origin[3]), (pid, step))
        self.assert_step_is_line(parent, step, "os.posix_spawn(")

    def test_exec(self):
        r = self.both("exec")
        self.assertEqual(r.returncode, 3)
        parent, children = self.tree()
        (pid, ((_, how, ppid, step, pfile), text)), = children.items()
        # The same process: the new program's file says it follows the
        # old one's.
        self.assertEqual((how, ppid, pfile),
                         ("exec", pid, os.path.join(self.logdir,
                                                    "tracer.log")))
        self.assertRegex(text.split("\n", 1)[0], r"^\[steptrace\] process "
                         r"%d called exec at step %d of .*: this is the "
                         r"program it started$" % (pid, step))
        self.assertIn("[steptrace] the process called exec", parent)
        self.assert_step_is_line(parent, step, "os.execv(")

    def test_programs_that_are_not_python_run_unchanged(self):
        self.both("programs")
        self.assertEqual(self.started_lines(self.files()["tracer.log"]), [])
        self.assertEqual(list(self.files()), ["tracer.log"])

    def test_nothing_is_left_behind_and_the_childs_own_sitecustomize_runs(self):
        """The child sees PYTHONPATH as it was given, no STEPTRACE_CHILD,
        no _boot on sys.path, and the sitecustomize of its own path; no
        file is written outside the log directory."""
        helpers.write(self.path("mine", "sitecustomize.py"), "MINE = 'yes'\n")
        pp = self.path("mine") + ":" + os.environ.get("PYTHONPATH", "")
        pkg = os.path.dirname(os.path.dirname(
            helpers.python(self.tmp, "-c", "import steptrace; print("
                           "steptrace.__file__)").stdout.strip()))
        before_pkg = snapshot(pkg)
        before = snapshot(self.tmp)
        r = self.both("subprocess", env=helpers.environ(PYTHONPATH=pp))
        self.assertEqual(r.stdout, "child 21 None %s [] yes\nrc 3\n" % pp)
        self.assertEqual(len(self.tree()[1]), 1)
        self.assertEqual(snapshot(pkg), before_pkg)
        self.assertEqual(snapshot(self.tmp, skip=(self.logdir,)), before)

    # -- other interpreters -----------------------------------------------

    def other_pythons(self):
        """[(python, site dir or None)] of CPython 3.10-3.13 interpreters
        of another version than this one; site dir: a staged build of
        steptrace for it in this checkout's build/ (tools/test.sh makes
        one per interpreter), else None."""
        mine = "%d.%d" % sys.version_info[:2]
        stages = {}
        for so in glob.glob(os.path.join(REPO, "build", "*", "python-stage",
                                         "**", "_agent.cpython-3*.so"),
                            recursive=True):
            m = re.search(r"cpython-3(\d+)-", so)
            stages["3." + m.group(1)] = os.path.dirname(os.path.dirname(so))
        found = []
        roots = [os.path.expanduser("~/.pyenv/versions")]
        root = os.environ.get("PYENV_ROOT")
        if root:
            roots.insert(0, os.path.join(root, "versions"))
        for v in ("3.10", "3.11", "3.12", "3.13"):
            if v == mine:
                continue
            cands = ["/usr/bin/python" + v]
            for r in roots:
                cands += sorted(glob.glob(os.path.join(r, v + ".*", "bin",
                                                       "python")))
            for c in cands:
                if os.access(c, os.X_OK):
                    found.append((c, stages.get(v)))
                    break
        return found

    def test_another_python_that_cannot_import_steptrace_runs_unchanged(self):
        others = [p for p, site in self.other_pythons()]
        if not others:
            self.skipTest("no CPython 3.10-3.13 of another version than %s "
                          "is installed (pyenv)" % sys.version.split()[0])
        for other in others:
            with self.subTest(python=other):
                for name in helpers.tracer_files(self.logdir):
                    os.unlink(os.path.join(self.logdir, name))
                # This build's steptrace (on PYTHONPATH) is not for it.
                r = self.both("other", env=helpers.environ(
                    OTHER_PYTHON=other))
                self.assertTrue(r.stdout.startswith(
                    "child 15 None %s [] " % os.environ.get("PYTHONPATH")),
                    r.stdout)
                self.assertEqual(list(self.files()), ["tracer.log"])

    def test_another_python_with_its_own_steptrace_is_traced(self):
        others = [(p, site) for p, site in self.other_pythons() if site]
        if not others:
            self.skipTest("no other CPython 3.10-3.13 with a build of "
                          "steptrace in build/ (tools/test.sh makes them)")
        for other, site in others:
            with self.subTest(python=other):
                for name in helpers.tracer_files(self.logdir):
                    os.unlink(os.path.join(self.logdir, name))
                # The child's own steptrace first on its path.
                pp = site + ":" + os.environ.get("PYTHONPATH", "")
                r = self.both("other", env=helpers.environ(
                    OTHER_PYTHON=other, OTHER_PYTHONPATH=pp))
                self.assertTrue(r.stdout.startswith(
                    "child 15 None %s [] " % pp), r.stdout)
                parent, children = self.tree()
                (pid, (origin, text)), = children.items()
                self.assertEqual(origin[1], "started")
                self.assertIn("child.py::work -- line 5", text)
                (_, _, spid, command), = self.started_lines(parent)
                self.assertEqual(spid, pid)
                self.assertTrue(command.startswith(other), command)

    # -- turning it off ---------------------------------------------------

    def test_no_follow_children_option_and_config_key(self):
        for how, options in (("option", ["--no-follow-children"]),
                             ("config", ["--config", "c.yaml"])):
            with self.subTest(how=how):
                helpers.write(self.path("c.yaml"), "follow_children: false\n")
                for name in helpers.tracer_files(self.logdir):
                    os.unlink(os.path.join(self.logdir, name))
                r = self.both("subprocess", *options)
                self.assertEqual(list(self.files()), ["tracer.log"])
                self.assertEqual(self.started_lines(self.log()), [])
                self.assertRegex(r.closing, r"^steptrace: \d+ steps in "
                                 r"\.tracer/tracer\.log\n$")
        # --follow-children wins over the config file.
        for name in helpers.tracer_files(self.logdir):
            os.unlink(os.path.join(self.logdir, name))
        self.both("subprocess", "--config", "c.yaml", "--follow-children")
        self.assertEqual(len(self.tree()[1]), 1)

    def test_the_api_follows_children_when_asked(self):
        """Tracer(follow_children=True); off by default, as in 0.3.0."""
        for arg, files in (("", 1), ("follow_children=False", 1),
                           ("follow_children=True", 2)):
            with self.subTest(arg=arg):
                for name in helpers.tracer_files(self.logdir):
                    os.unlink(os.path.join(self.logdir, name))
                self.script("api.py", """\
                    import subprocess, sys
                    from steptrace import Tracer
                    def go():
                        r = subprocess.run([sys.executable, "child.py", "3"])
                        return r.returncode
                    with Tracer(%s):
                        rc = go()
                    print("rc", rc)
                    """ % arg)
                r = helpers.python(self.tmp, "api.py")
                self.assertEqual((r.returncode, r.stderr), (0, ""), r)
                self.assertEqual(len(self.files()), files)


class ClosingLineTest(TempDirTest):
    """`steptrace run`'s last line on stderr."""

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)
        self.script("s.py", """\
            def f(n):
                t = 0
                for i in range(n):
                    t += i
                return t
            print(f(3))
            """)

    def test_names_the_log_and_its_step_count(self):
        r = helpers.steptrace_run(self.tmp, "s.py")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "3\n", ""))
        n = len(self.records())
        self.assertEqual(n, 11)
        self.assertEqual(r.closing, "steptrace: 11 steps in "
                         ".tracer/tracer.log\n")
        # A second run writes the next file, and says so.
        r = helpers.steptrace_run(self.tmp, "s.py", "--log-dir", "logs")
        r = helpers.steptrace_run(self.tmp, "s.py", "--log-dir", "logs")
        self.assertEqual(r.closing, "steptrace: 11 steps in "
                         "logs/tracer_1.log\n")
        # A log directory outside the working directory: its full path.
        out = self.path("..", os.path.basename(self.tmp) + "-out")
        self.addCleanup(lambda: [os.unlink(os.path.join(out, f))
                                 for f in os.listdir(out)] and None or
                        os.rmdir(out))
        r = helpers.steptrace_run(self.path("logs"), "../s.py", "--log-dir",
                                  out)
        self.assertEqual(r.closing, "steptrace: 11 steps in %s\n"
                         % os.path.join(os.path.realpath(out), "tracer.log"))

    def test_rotation_is_named(self):
        r = helpers.steptrace_run(self.tmp, "s.py", "--variable-mode", "ALL",
                                  "--max-log-bytes", "1000")
        self.assertEqual(r.returncode, 0, r)
        self.assertTrue(os.path.exists(self.path(".tracer", "tracer.log.1")))
        self.assertEqual(r.closing, "steptrace: 11 steps in "
                         ".tracer/tracer.log (older records in "
                         "tracer.log.1, ...)\n")

    def test_quiet_option_and_config_key(self):
        r = helpers.steptrace_run(self.tmp, "s.py", "--quiet")
        self.assertEqual((r.returncode, r.stdout, r.closing, r.stderr),
                         (0, "3\n", "", ""))
        helpers.write(self.path("q.yaml"), "quiet: true\n")
        r = helpers.steptrace_run(self.tmp, "s.py", "--config", "q.yaml")
        self.assertEqual((r.returncode, r.closing, r.stderr), (0, "", ""))
        self.assertEqual(len(self.records("tracer_1.log")), 11)

    def test_no_line_without_a_file(self):
        r = helpers.steptrace_run(self.tmp, "s.py", "--log-output", "STDERR")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.closing, "")
        self.assertFalse(os.path.exists(self.path(".tracer")))


if __name__ == "__main__":
    unittest.main()
