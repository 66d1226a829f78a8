"""Shared helpers of the Python end-to-end tests (standard library only).

The tests run real interpreters on real scripts written into temporary
directories, against the steptrace package and the steptraced collector that
tests/run-python-tests.sh installed: PYTHONPATH names the package, STEPTRACED
the collector.  Nothing here imports steptrace into the test process itself.
"""
import os
import re
import select
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

PYTHON = sys.executable
# The agent and steptraced are an ASan+UBSan build (tests/run-python-tests.sh
# preloads the runtime): memory figures mean nothing then.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
# The wire protocol version (docs/PROTOCOL.md) the fake peers speak:
# the agent's own.
from steptrace._agent import PROTOCOL_VERSION as WIRE_VERSION  # noqa: E402
TIMEOUT = 60          # seconds for one traced program: a hang is a failure
DASHES = "-" * 21

# One regular expression per kind of line of a step record
# (docs/LOG-FORMAT.md sections 2 to 5).
HEADER_RE = re.compile(r"^-{21} Step ([1-9][0-9]*) -{21}$")
# Event records (Call, Return, Exception) are not numbered steps.
EVENT_HEADER_RE = re.compile(r"^-{21} Event -{21}$")
RUNTIME_RE = re.compile(r"^Runtime: ([0-9]+\.[0-9]{4}) ms$")
LOCATION_RE = re.compile(r"^(/[^\n]*)::([^\s:]+) -- line ([1-9][0-9]*)$")
SECTION_RE = re.compile(
    r"^------> (Global|Local) (variables|variable changes) <------$")
VAR_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): ([A-Za-z_][A-Za-z0-9_]*) :: (.*)$")
NEW_RE = re.compile(r"^\[NEW\] ([A-Za-z_][A-Za-z0-9_]*): ([A-Za-z_][A-Za-z0-9_]*) :: (.*)$")
CHANGED_RE = re.compile(
    r"^\[CHANGED\] ([A-Za-z_][A-Za-z0-9_]*): ([A-Za-z_][A-Za-z0-9_]*) :: (.*) -> (.*)$")
DELETED_RE = re.compile(r"^\[DELETED\] ([A-Za-z_][A-Za-z0-9_]*)$")

ADDR_RE = re.compile(r" at 0x[0-9a-f]+")
RUNTIME_VALUE_RE = re.compile(r"^Runtime: [0-9]+\.[0-9]{4} ms", re.M)
# The process tree's lines (docs/LOG-FORMAT.md section 10.3): a child's
# first line, and the parent's line at the step that started a process.
ORIGIN_RE = re.compile(
    r"^\[steptrace\] process (\d+) (?:was (started|forked|exec'd) by process "
    r"(\d+)|called exec)(?: at step (\d+)(?: of (/.*?))?)?(?:: this is the "
    r"program it started)?(?: \(.*\))?$")
STARTED_RE = re.compile(
    r"^\[steptrace\] step (\d+) (started|forked) process (\d+)(?:: (.*))?$")


def dedent(text):
    return textwrap.dedent(text).lstrip("\n")


def write(path, text, mode=0o644):
    """Writes dedented `text` to `path` (creating parent dirs); returns path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(dedent(text))
    os.chmod(path, mode)
    return path


def read(path):
    with open(path, "r", encoding="utf-8") as f:
        return f.read()


# A runtime directory that does not exist: no service listens under it.
NO_SERVICE_DIR = "/nonexistent/steptrace-tests-runtime"


def environ(**changes):
    """os.environ (PYTHONPATH, STEPTRACED, ... pass through) with changes;
    a value of None removes the variable.  STEPTRACE_SOCKET is removed
    unless given, so each test chooses its collector explicitly."""
    env = dict(os.environ)
    env.pop("STEPTRACE_SOCKET", None)
    # No service on the default socket either (steptrace uses one that
    # answers there): a test that wants one names its own runtime dir.
    env["XDG_RUNTIME_DIR"] = NO_SERVICE_DIR
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class Result:
    def __init__(self, args, returncode, stdout, stderr):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.closing = ""

    def __repr__(self):
        return ("Result(args=%r, returncode=%r,\n--- stdout ---\n%s\n"
                "--- stderr ---\n%s)" % (self.args, self.returncode,
                                         self.stdout[-3000:],
                                         self.stderr[-3000:]))


def run(args, cwd, env=None, timeout=TIMEOUT, input=None):
    """Runs a real process to its end; a hang fails the calling test."""
    try:
        p = subprocess.run(args, cwd=cwd, env=env if env is not None else environ(),
                           input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("%r did not finish within %d s (a hang)\n"
                             "stdout: %r\nstderr: %r"
                             % (args, timeout, e.stdout, e.stderr)) from None
    return Result(args, p.returncode,
                  p.stdout.decode("utf-8", "backslashreplace"),
                  p.stderr.decode("utf-8", "backslashreplace"))


def steptrace_run(cwd, *args, env=None, timeout=TIMEOUT):
    """`python -m steptrace run ARGS...` in cwd.  Its closing line (the log
    files and the step count, docs/CLI.md section 9) is taken out of stderr
    into .closing ("" when there is none), so that stderr is what else the run
    wrote; test_children.py checks the line itself."""
    r = run([PYTHON, "-m", "steptrace", "run"] + list(args), cwd,
            env=env, timeout=timeout)
    r.stderr, r.closing = split_closing(r.stderr)
    return r


# `steptrace run`'s last line on stderr: the log file and the step count.
CLOSING_RE = re.compile(r"^steptrace: \d+ steps? in \S+.*\n", re.M)


def split_closing(stderr):
    """(stderr without `steptrace run`'s closing line, that line or "");
    there is at most one, the last line of steptrace's own."""
    found = list(CLOSING_RE.finditer(stderr))
    if not found:
        return stderr, ""
    m = found[-1]
    return stderr[:m.start()] + stderr[m.end():], m.group(0)


def python(cwd, *args, env=None, timeout=TIMEOUT):
    """`python ARGS...` in cwd (a script that uses the Tracer API)."""
    return run([PYTHON] + list(args), cwd, env=env, timeout=timeout)


def steptraced_path():
    return os.environ.get("STEPTRACED") or ""


def require_collector(test):
    """Skips `test` when the runner did not provide a collector binary."""
    exe = steptraced_path()
    if not exe or not os.access(exe, os.X_OK):
        test.skipTest("STEPTRACED does not name an executable steptraced "
                      "(run through tests/run-python-tests.sh)")
    return exe


class Collector:
    """A real steptraced on a socket of our own, started with --ready-fd."""

    def __init__(self, test, sock_path, *args):
        self.test = test
        self.sock = sock_path
        self.args = list(args)
        self.proc = None
        self.exe = require_collector(test)
        self.err_path = sock_path + ".stderr"

    def start(self):
        rfd, wfd = os.pipe()
        err = open(self.err_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [self.exe, "--socket", self.sock, "--ready-fd", str(wfd)] +
                self.args,
                pass_fds=(wfd,), stdin=subprocess.DEVNULL,
                stdout=err, stderr=err, close_fds=True)
        finally:
            os.close(wfd)
            err.close()
        try:
            ready, _, _ = select.select([rfd], [], [], 15)
            line = os.read(rfd, 64) if ready else b""
        finally:
            os.close(rfd)
        if not line.startswith(b"ready"):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("steptraced did not report ready on "
                                 "--ready-fd (got %r); its output: %r"
                                 % (line, self.stderr()))
        self.test.addCleanup(self._kill)
        return self

    def stderr(self):
        try:
            return read(self.err_path)
        except OSError:
            return ""

    def stop(self):
        """SIGTERM; returns the exit status (waits at most 15 s)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("steptraced did not exit within 15 s of "
                                 "SIGTERM")

    def stop_and_check(self):
        """Stops it and asserts exit status 0 and that the socket is gone."""
        rc = self.stop()
        self.test.assertEqual(rc, 0, "steptraced exit status after SIGTERM; "
                              "its output: %r" % self.stderr())
        self.test.assertFalse(os.path.exists(self.sock),
                              "steptraced left its socket %s behind" % self.sock)

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- the log format ---------------------------------------------------

class Record:
    """One step record, as parsed from the text log."""

    def __init__(self, step, runtime, locations):
        self.step = step
        self.runtime = runtime
        self.locations = locations      # [(file, func, line)], current last
        self.sections = {}              # "Global"/"Local" -> [lines]
        self.section_titles = []        # the full titles, in order
        self.lines = []                 # every raw line of the record

    @property
    def file(self):
        return self.locations[-1][0]

    @property
    def func(self):
        return self.locations[-1][1]

    @property
    def line(self):
        return self.locations[-1][2]

    def vars(self, kind):
        """{name: (type, value)} of an ALL-mode section ("Global"/"Local")."""
        out = {}
        for line in self.sections.get(kind, []):
            m = VAR_RE.match(line)
            if m is None:
                raise AssertionError("not a variable line: %r" % line)
            out[m.group(1)] = (m.group(2), m.group(3))
        return out

    def __repr__(self):
        return "Record(step=%d, %s::%s line %d, sections=%r)" % (
            self.step, self.file, self.func, self.line, self.sections)


def _fail_at(lines, i, msg):
    """Raises AssertionError for lines[i], with the lines around it."""
    lo = max(0, i - 3)
    ctx = "\n".join("%5d| %s" % (k + 1, lines[k])
                    for k in range(lo, min(len(lines), i + 3)))
    raise AssertionError("log line %d: %s\n%s" % (i + 1, msg, ctx))


def _parse_sections(lines, i, rec):
    """Reads the variable sections of a record from lines[i] up to the
    next step header into rec.sections; returns the index after them."""
    n = len(lines)
    while i < n and not HEADER_RE.match(lines[i]) and \
            not EVENT_HEADER_RE.match(lines[i]):
        m = SECTION_RE.match(lines[i])
        if m is None:
            _fail_at(lines, i,
                     "expected a section title or the next step header")
        kind = m.group(1)
        if kind in rec.sections:
            _fail_at(lines, i, "section %s twice in one record" % kind)
        if kind == "Global" and "Local" in rec.sections:
            _fail_at(lines, i, "Global section after the Local section")
        rec.section_titles.append(lines[i])
        i += 1
        body = []
        while i < n and lines[i] != "":
            line = lines[i]
            kinds = [r for r in (VAR_RE, NEW_RE, CHANGED_RE, DELETED_RE)
                     if r.match(line)]
            if m.group(2) == "variables":
                if not VAR_RE.match(line):
                    _fail_at(lines, i, "expected 'name: type :: value'")
            elif not kinds or kinds[0] is VAR_RE:
                _fail_at(lines, i,
                         "expected [NEW], [CHANGED] or [DELETED] line")
            body.append(line)
            i += 1
        if not body:
            _fail_at(lines, i, "empty section (empty sections are omitted)")
        if i >= n:
            _fail_at(lines, i, "section not ended by a blank line")
        i += 1  # blank line after the section
        rec.sections[kind] = body
    return i


def is_process_line(line):
    """Is `line` (without its newline) one of the process tree's lines?"""
    return bool(ORIGIN_RE.match(line) or STARTED_RE.match(line))


def process_lines(text):
    """The process tree's lines of a log, in order."""
    return [line for line in text.split("\n") if is_process_line(line)]


def without_process_lines(text):
    """A log without the process tree's lines (docs/LOG-FORMAT.md section
    10.3), which stand between records; the parsers check what is left."""
    if "[steptrace] " not in text:
        return text
    return "".join(line for line in text.splitlines(True)
                   if not is_process_line(line.rstrip("\n")))


def parse_log(text):
    """Parses a whole log of step records strictly.

    Every line must match exactly one line kind's regular expression, in the
    order docs/LOG-FORMAT.md sections 2 and 5 give: header, Runtime, one or
    more locations, a blank line, then zero or more sections, each a title, one
    or more variable lines and a blank line.  Raises AssertionError naming the
    first line that does not fit; returns the list of Records.
    """
    text = without_process_lines(text)
    if text == "":
        return []
    if not text.endswith("\n"):
        raise AssertionError("log does not end with a newline: %r" % text[-200:])
    lines = text[:-1].split("\n")
    records = []
    i = 0
    n = len(lines)

    def fail(msg):
        _fail_at(lines, i, msg)

    while i < n:
        start = i
        if EVENT_HEADER_RE.match(lines[i]):
            # An event record (an Exception at INFO): not a step; checked
            # by parse_trace(), skipped here.
            i += 1
            while i < n and not HEADER_RE.match(lines[i]) and \
                    not EVENT_HEADER_RE.match(lines[i]):
                i += 1
            continue
        m = HEADER_RE.match(lines[i])
        if m is None:
            fail("expected a step header")
        step = int(m.group(1))
        i += 1
        if i >= n:
            fail("record ends after its header")
        m = RUNTIME_RE.match(lines[i])
        if m is None:
            fail("expected 'Runtime: X.XXXX ms'")
        runtime = m.group(1)
        i += 1
        locs = []
        while i < n and lines[i] != "":
            m = LOCATION_RE.match(lines[i])
            if m is None:
                fail("expected a location line '<path>::<func> -- line N'")
            locs.append((m.group(1), m.group(2), int(m.group(3))))
            i += 1
        if not locs:
            fail("record without a location line")
        if i >= n:
            fail("location lines not followed by a blank line")
        i += 1  # the blank line after the locations
        rec = Record(step, runtime, locs)
        i = _parse_sections(lines, i, rec)
        rec.lines = lines[start:i]
        records.append(rec)
    return records


def split_regions(records):
    """Splits records into regions: a region starts at Step 1.  Event
    records are not numbered: the Call records just before a Step 1 are
    that region's (a region's first frame starts it), other events belong
    to the region they follow."""
    regions = []
    for r in records:
        if not regions:
            regions.append([])
        elif r.step == 1 and any(x.step is not None for x in regions[-1]):
            calls = []
            while regions[-1] and getattr(regions[-1][-1], "kind",
                                          None) == "call":
                calls.insert(0, regions[-1].pop())
            regions.append(calls)
        regions[-1].append(r)
    return regions


def assert_steps_contiguous(test, records, msg=""):
    """Every region numbers its steps 1..n with no gap (event records are
    not numbered)."""
    for region in split_regions(records):
        steps = [r.step for r in region if r.step is not None]
        test.assertEqual(steps, list(range(1, len(steps) + 1)),
                         "step numbers skip or repeat %s" % msg)


def normalize_runtime(text):
    return RUNTIME_VALUE_RE.sub("Runtime: #.#### ms", text)


def normalize_addresses(text):
    return ADDR_RE.sub(" at 0xADDR", text)


def tracer_files(log_dir):
    """The names of the .log files in log_dir, sorted."""
    try:
        return sorted(f for f in os.listdir(log_dir) if f.endswith(".log"))
    except FileNotFoundError:
        return []


def proc_status_kib(pid, key):
    """VmRSS / VmHWM (a /proc/PID/status line in kB) of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (key, pid))


def proc_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return False
    state = data.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def pids_with_arg(text):
    """Pids of live processes whose command line contains `text`."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if text in cmd and proc_alive(int(name)):
            out.append(int(name))
    return out


def wait_until(predicate, timeout):
    """Polls predicate() every 50 ms; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(0.05)


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class TempDirTest(unittest.TestCase):
    """Gives each test a fresh temporary directory, self.tmp."""

    def setUp(self):
        self._td = tempfile.TemporaryDirectory(prefix="steptrace-test-")
        self.tmp = os.path.realpath(self._td.name)
        self.addCleanup(self._td.cleanup)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def script(self, name, text):
        return write(self.path(name), text)

    def log(self, name="tracer.log", log_dir=".tracer", cwd=None):
        p = os.path.join(cwd or self.tmp, log_dir, name)
        self.assertTrue(os.path.isfile(p), "no log file %s; the directory "
                        "holds %r" % (p, tracer_files(os.path.dirname(p))))
        return read(p)

    def records(self, name="tracer.log", log_dir=".tracer", cwd=None):
        return parse_log(self.log(name, log_dir, cwd))


# ---- DEBUG-level event records and the per-thread Runtime form ---------
#
# parse_trace() is the strict parser of every record kind (docs/LOG-FORMAT.md
# sections 2 to 8, the levels among them): the step records parse_log() reads,
# the "Runtime: X ms | thread NAME" form, and the event records of DEBUG and
# ERROR, which end after their location lines with one event line and a blank
# line.

RUNTIME_ANY_RE = re.compile(r"^Runtime: ([0-9]+\.[0-9]{4}) ms(?: \| thread (\S.*))?$")
CALL_RE = re.compile(r"^Call: (\S+)$")
RETURN_RE = re.compile(r"^Return: (\S+) -> (.*)$")
RETURN_RAISED_RE = re.compile(r"^Return: (\S+) \(raised\)$")
EXCEPTION_RE = re.compile(r"^Exception: ([A-Za-z_][\w.]*)(?:: (.*))?$")

EVENT_KINDS = ("call", "return", "raised", "exception")


class TraceRecord(Record):
    """A record of any kind: kind is "step" or one of EVENT_KINDS."""

    def __init__(self, step, runtime, locations, thread=None):
        super().__init__(step, runtime, locations)
        self.thread = thread      # the "| thread NAME" part, or None
        self.kind = "step"
        self.event = None         # the raw event line
        self.name = None          # function of a Call or Return record
        self.value = None         # str(value) of a Return record
        self.exc_type = None
        self.exc_message = None   # None when the line has no ": message"

    @property
    def ms(self):
        return float(self.runtime)

    def key(self):
        """(kind, func, line, event line): compact, for comparisons."""
        return (self.kind, self.func, self.line, self.event)

    def __repr__(self):
        return "TraceRecord(step=%s, %s, %s::%s line %d, thread=%r, %r)" % (
            self.step, self.kind, self.file, self.func, self.line,
            self.thread, self.event)


def parse_trace(text):
    """Parses a log of step and event records strictly.

    Like parse_log(), every line must match exactly one line kind in the order
    of docs/LOG-FORMAT.md sections 2, 3 and 8; in addition the Runtime line may
    end with "| thread NAME", and after the locations' blank line a record may
    hold one event line (CALL_RE, RETURN_RE, RETURN_RAISED_RE, EXCEPTION_RE)
    followed by a blank line and nothing else (an event record shows no
    variables).  The function named by a Call or Return line must be the
    record's current frame.  Returns a list of TraceRecords.
    """
    text = without_process_lines(text)
    if text == "":
        return []
    if not text.endswith("\n"):
        raise AssertionError("log does not end with a newline: %r" % text[-200:])
    lines = text[:-1].split("\n")
    records = []
    i = 0
    n = len(lines)

    def fail(msg):
        _fail_at(lines, i, msg)

    def next_header(j):
        return HEADER_RE.match(lines[j]) or EVENT_HEADER_RE.match(lines[j])

    while i < n:
        start = i
        m = HEADER_RE.match(lines[i])
        is_event = EVENT_HEADER_RE.match(lines[i]) is not None
        if m is None and not is_event:
            fail("expected a step or event header")
        step = None if is_event else int(m.group(1))
        i += 1
        if i >= n:
            fail("record ends after its header")
        m = RUNTIME_ANY_RE.match(lines[i])
        if m is None:
            fail("expected 'Runtime: X.XXXX ms' or "
                 "'Runtime: X.XXXX ms | thread NAME'")
        runtime, thread = m.group(1), m.group(2)
        i += 1
        locs = []
        while i < n and lines[i] != "":
            m = LOCATION_RE.match(lines[i])
            if m is None:
                fail("expected a location line '<path>::<func> -- line N'")
            locs.append((m.group(1), m.group(2), int(m.group(3))))
            i += 1
        if not locs:
            fail("record without a location line")
        if i >= n:
            fail("location lines not followed by a blank line")
        i += 1  # the blank line after the locations
        rec = TraceRecord(step, runtime, locs, thread)
        if is_event and (i >= n or next_header(i) or
                         SECTION_RE.match(lines[i])):
            fail("an Event record without its event line")
        if i < n and not next_header(i) and not SECTION_RE.match(lines[i]):
            if not is_event:
                fail("an event line under a Step header (events are not "
                     "numbered steps)")
            line = lines[i]
            m = RETURN_RAISED_RE.match(line)
            if m:
                rec.kind, rec.name = "raised", m.group(1)
            elif RETURN_RE.match(line):
                m = RETURN_RE.match(line)
                rec.kind, rec.name, rec.value = "return", m.group(1), m.group(2)
            elif CALL_RE.match(line):
                rec.kind, rec.name = "call", CALL_RE.match(line).group(1)
            elif EXCEPTION_RE.match(line):
                m = EXCEPTION_RE.match(line)
                rec.kind = "exception"
                rec.exc_type, rec.exc_message = m.group(1), m.group(2)
            else:
                fail("expected a section title, an event line (Call:, "
                     "Return:, Exception:) or the next step header")
            if rec.name is not None and rec.name != rec.func:
                fail("event names %r but the current frame is %r"
                     % (rec.name, rec.func))
            rec.event = line
            i += 1
            if i >= n or lines[i] != "":
                fail("event line not followed by a blank line")
            i += 1
            if i < n and not next_header(i):
                fail("an event record ends after its event line's blank "
                     "line (no variables)")
            rec.lines = lines[start:i]
            records.append(rec)
            continue
        i = _parse_sections(lines, i, rec)
        rec.lines = lines[start:i]
        records.append(rec)
    return records


def steps_only(records):
    """The step records of a parsed trace (event records left out)."""
    return [r for r in records if r.kind == "step"]


def events_only(records, *kinds):
    """The event records (of the given kinds, default all)."""
    kinds = kinds or EVENT_KINDS
    return [r for r in records if r.kind in kinds]


def assert_steps_in_order(test, records, msg=""):
    """The step records of one region, in log order, are numbered 1..n
    (event records carry no number)."""
    for r in records:
        test.assertEqual(r.step is None, r.kind != "step",
                         "an event with a Step number or a step without "
                         "one: %r" % r)
    steps = [r.step for r in records if r.step is not None]
    test.assertEqual(steps, list(range(1, len(steps) + 1)),
                     "step numbers out of order, skipped or repeated %s"
                     % msg)


def assert_thread_form(test, records, first_thread=None, msg=""):
    """Within each region: the plain Runtime form until the first record of
    a second thread, the '| thread NAME' form on every record from there
    on.  first_thread, when given, names the thread of the plain records:
    the first record in the thread form must then be another thread's.
    Returns the thread names seen in the thread form."""
    names = set()
    for region in split_regions(records):
        first = None
        for k, r in enumerate(region):
            if r.thread is not None:
                first = k
                break
        if first is None:
            continue
        if first > 0 and first_thread is not None:
            test.assertNotEqual(region[first].thread, first_thread,
                                "the thread form started before a second "
                                "thread's first record %s: %r"
                                % (msg, region[first]))
        for r in region[first:]:
            test.assertIsNotNone(r.thread, "plain Runtime after the thread "
                                 "form started %s: %r" % (msg, r))
            names.add(r.thread)
        test.assertGreaterEqual(len(set(r.thread for r in region[first:])),
                                2, "the thread form started without a "
                                "second thread's record %s" % msg)
    return names
