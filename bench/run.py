#!/usr/bin/env python3
"""steptrace's benchmark: every workload, every CPython, every tracer, interleaved.

    python3 bench/run.py                   # the full table (docs/PERFORMANCE.md)
    python3 bench/run.py --smoke           # CI-sized: one interpreter, tiny units
    python3 bench/run.py --python /root/.pyenv/versions/3.12.1/bin/python \\
        --units-scale 0.25 --repeat 3

For each interpreter (Debian's /usr/bin/python3 and pyenv's 3.10, 3.12, 3.13,
or those given with --python) it builds steptrace into build/bench-pyX.Y and
installs it into a staging directory with `meson install --destdir`, the way
tests/run-python-tests.sh does (or uses --build-dir), builds the no-op C
tracer bench/noop/_stnoop.c with that interpreter's headers, starts one
steptraced (the staged one) on a scratch socket, and then runs each workload
of the shared benchmark directory in separate processes, interleaved and
repeated: untraced, the C no-op tracers, steptrace NONE/CHANGED/ALL (FILE
output through the collector) and, when available, python-steptrace
(--python-steptrace PATH) and PySnooper (importable, or --pysnooper PATH).
It prints a Markdown table of medians and the command line that made it.
Wire bytes come from the collector's counters (`steptrace daemon status`)
when it has them, else from a byte-counting proxy in front of it.

Standard library only; runs under any CPython 3.10+.  Exit status 0 when
every run succeeded, 1 when one failed (a crash, a traced run without a
log, records the collector lost, or a checksum that differs from the
untraced run's), 2 for a usage or build error.  No run is judged by its
speed.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED_WORKLOADS = os.path.join(os.path.dirname(REPO), "shared", "bench",
                                "workloads")
# Real code (test suites of Debian's pure-Python packages) and big values.
OWN_WORKLOADS = os.path.join(HERE, "workloads")
PYENV_ROOT = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
MODES = ("NONE", "CHANGED", "ALL")
STEP_RE = re.compile(rb"-{5,} Step (\d+) -{5,}")


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


class BenchError(Exception):
    """A build or set-up step failed: the benchmark cannot go on."""


# -- interpreters and builds ------------------------------------------------

_INFO_SRC = r"""
import json, sys, sysconfig
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "minor": "%d.%d" % sys.version_info[:2],
    "include": sysconfig.get_paths()["include"],
    "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
    "executable": sys.executable,
}))
"""


def interpreter_info(path):
    r = subprocess.run([path, "-c", _INFO_SRC], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise BenchError("%s does not run: %s" % (path, r.stderr.strip()))
    info = json.loads(r.stdout)
    info["path"] = path
    return info


def find_interpreters():
    """Debian's python3 (3.11) and pyenv's 3.10, 3.12, 3.13, when present."""
    found = []
    if os.access("/usr/bin/python3", os.X_OK):
        found.append("/usr/bin/python3")
    else:
        log("skip: /usr/bin/python3 not found")
    for minor in ("3.10", "3.12", "3.13"):
        cands = sorted(glob.glob(os.path.join(PYENV_ROOT, "versions",
                                              minor + ".*", "bin", "python")))
        cands = [c for c in cands if os.access(c, os.X_OK)]
        if cands:
            found.append(cands[-1])
        else:
            log("skip: CPython %s not found (install it with pyenv to "
                "benchmark it)" % minor)
    return found


def run_quiet(cmd, what, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:])
        raise BenchError("%s failed (exit %d): %s"
                         % (what, r.returncode, " ".join(map(shlex.quote, cmd))))
    return r.stdout


def stage_build(build_dir, stage):
    """meson install --destdir, then find _agent and steptraced in it."""
    shutil.rmtree(stage, ignore_errors=True)
    run_quiet(["meson", "install", "-C", build_dir, "--destdir", stage,
               "--quiet"], "meson install")
    so = exe = None
    for root, _dirs, files in os.walk(stage):
        for f in files:
            if f.startswith("_agent") and f.endswith(".so") and so is None:
                so = os.path.join(root, f)
            if f == "steptraced" and exe is None:
                exe = os.path.join(root, f)
    if so is None or exe is None:
        raise BenchError("the install in %s lacks _agent or steptraced" % stage)
    return {"pythonpath": os.path.dirname(os.path.dirname(so)),
            "steptraced": exe, "build_dir": build_dir}


def export_rev(rev, scratch):
    """`git archive REV` of this repository, unpacked in the scratch dir."""
    src = os.path.join(scratch, "src")
    os.makedirs(src)
    git = subprocess.Popen(["git", "-C", REPO, "archive", "--format=tar", rev],
                           stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", src], stdin=git.stdout)
    git.stdout.close()
    if git.wait() != 0 or tar.returncode != 0:
        raise BenchError("cannot export %s of %s" % (rev, REPO))
    return src


def source_description(rev):
    """What was measured: a commit, or the working tree on top of one."""
    def git(*a):
        r = subprocess.run(["git", "-C", REPO] + list(a), capture_output=True,
                           text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    if rev:
        return "commit %s (%s)" % (git("rev-parse", "--short", rev), rev)
    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--",
                "agent", "common", "daemon", "client", "meson.build")
    return "working tree at %s%s" % (
        head, " with uncommitted changes to the product" if dirty else "")


def build_steptrace(info, scratch, source):
    """A release build, as pip (meson-python) makes it: build/bench-pyX.Y
    for the working tree, a scratch directory for --rev."""
    if source == REPO:
        build_dir = os.path.join(REPO, "build", "bench-py" + info["minor"])
    else:
        build_dir = os.path.join(scratch, "build-py" + info["minor"])
    args = ["-Dpython=" + info["path"], "--buildtype=release",
            "-Db_ndebug=if-release"]
    if os.path.exists(os.path.join(build_dir, "build.ninja")):
        cmd = ["meson", "setup", "--reconfigure", build_dir, source] + args
    else:
        cmd = ["meson", "setup", build_dir, source] + args
    log("building steptrace for %s in %s" % (info["version"], build_dir))
    run_quiet(cmd, "meson setup")
    run_quiet(["ninja", "-C", build_dir], "ninja")
    return stage_build(build_dir, os.path.join(scratch, "stage-" + info["minor"]))


def build_noop(info):
    """bench/noop/_stnoop.c with this interpreter's headers; cached by
    interpreter and source time."""
    src = os.path.join(HERE, "noop", "_stnoop.c")
    out_dir = os.path.join(REPO, "build", "bench-noop",
                           "py" + info["version"])
    target = os.path.join(out_dir, "_stnoop" + info["ext_suffix"])
    if os.path.exists(target) and \
            os.path.getmtime(target) >= os.path.getmtime(src):
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    tmp = target + ".tmp"
    run_quiet(shlex.split(cc) + ["-O2", "-fPIC", "-shared", "-Wall",
                                 "-I" + info["include"], src, "-o", tmp],
              "building _stnoop")
    os.replace(tmp, target)
    return out_dir


# -- the collector and the byte-counting proxy ------------------------------

def start_collector(exe, sock):
    rfd, wfd = os.pipe()
    proc = subprocess.Popen([exe, "--socket", sock, "--ready-fd", str(wfd)],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            pass_fds=(wfd,))
    os.close(wfd)
    got = b""
    deadline = time.monotonic() + 15
    while not got.endswith(b"\n") and time.monotonic() < deadline:
        chunk = os.read(rfd, 64)
        if not chunk:
            break
        got += chunk
    os.close(rfd)
    if got.strip() != b"ready":
        proc.kill()
        proc.wait()
        raise BenchError("steptraced did not get ready on %s" % sock)
    return proc


def collector_cpu_s(proc):
    """The collector's CPU time so far (user + system, seconds), or None."""
    try:
        with open("/proc/%d/stat" % proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def collector_peak_rss_kib(proc):
    try:
        with open("/proc/%d/status" % proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class CountingProxy:
    """A Unix-socket relay in front of the collector that counts the bytes
    the traced process sends (the wire cost of its records)."""

    def __init__(self, path, upstream):
        self.path = path
        self.upstream = upstream
        self.sent = 0  # client -> collector, all connections
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def reset(self):
        with self.lock:
            n, self.sent = self.sent, 0
        return n

    def _accept(self):
        while True:
            try:
                client, _ = self.srv.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                up.connect(self.upstream)
            except OSError:
                client.close()
                up.close()
                continue
            done = []
            for src, dst, count in ((client, up, True), (up, client, False)):
                threading.Thread(target=self._pump,
                                 args=(src, dst, count, done, client, up),
                                 daemon=True).start()

    def _pump(self, src, dst, count, done, a, b):
        try:
            while True:
                data = src.recv(1 << 18)
                if not data:
                    break
                if count:
                    with self.lock:
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        done.append(1)
        if len(done) == 2:
            a.close()
            b.close()

    def close(self):
        self.srv.close()


class CollectorStats:
    """The collector's counters (`steptrace daemon status --json`), when the
    build has them: bytes_in gives the wire bytes of each run, and the
    dropped/lost counters show that nothing of a run was lost."""

    LOST = ("lost_agent", "dropped_write", "dropped_open", "dropped_nomem")

    def __init__(self, py, pythonpath, sock):
        self.cmd = [py, "-m", "steptrace", "daemon", "status", "--socket",
                    sock, "--json"]
        self.env = dict(os.environ, PYTHONPATH=pythonpath,
                        PYTHONDONTWRITEBYTECODE="1")
        self.env.pop("STEPTRACE_SOCKET", None)
        self.overhead = None
        a = self.query()
        b = self.query()
        if a is not None and b is not None:
            # What one status query itself sends (it is counted too).
            self.overhead = b["bytes_in"] - a["bytes_in"]

    @property
    def ok(self):
        return self.overhead is not None

    def query(self):
        try:
            r = subprocess.run(self.cmd, env=self.env, capture_output=True,
                               text=True, timeout=30)
            d = json.loads(r.stdout) if r.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None
        return d if isinstance(d, dict) and "bytes_in" in d else None


# -- runs -------------------------------------------------------------------

class Variant:
    def __init__(self, key, label, driver_arg, pythonpath, needs_log,
                 slow=False):
        self.key = key
        self.label = label
        self.driver_arg = driver_arg
        self.pythonpath = pythonpath
        self.needs_log = needs_log
        self.slow = slow


def dir_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def last_step(path):
    """The number of the last 'Step N' header of the logs in `path` (one
    region, one thread: the number of steps recorded)."""
    best = None
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                size = os.path.getsize(p)
                fh.seek(max(0, size - (1 << 20)))
                hits = STEP_RE.findall(fh.read())
            if hits:
                n = int(hits[-1])
                best = n if best is None else max(best, n)
    return best


def run_driver(py, work, workload, units, variant, log_dir, env_extra,
               timeout):
    """One subprocess; returns a dict with wall, result, rss_kib, log_bytes
    or error."""
    env = dict(os.environ)
    for k in ("PYTHONPATH", "STEPTRACE_SOCKET", "PYTHONSTARTUP",
              "PYTHONTRACEMALLOC", "PYTHONDEVMODE"):
        env.pop(k, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(env_extra)
    cmd = [py, os.path.join(work, "driver.py"), workload, str(units),
           variant.driver_arg]
    if log_dir:
        shutil.rmtree(log_dir, ignore_errors=True)
        cmd.append(log_dir)
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL,
                            stdout=out_f, stderr=err_f)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _pid, status, ru = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_f.seek(0)
    err_f.seek(0)
    stdout = out_f.read().decode("utf-8", "replace")
    stderr = err_f.read().decode("utf-8", "replace")
    res = {"rss_kib": ru.ru_maxrss, "stderr": stderr}
    if proc.returncode != 0:
        res["error"] = "exit status %d: %s" % (
            proc.returncode, (stderr.strip().splitlines() or ["?"])[-1])
        return res
    try:
        data = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res["error"] = "no result line on stdout"
        return res
    res.update(data)
    if "steptrace:" in stderr:
        res["error"] = "tracer warning: %s" % stderr.strip().splitlines()[-1]
    impl = res.get("impl")
    where = env_extra.get("PYTHONPATH") if variant.pythonpath else None
    if impl and where and not os.path.abspath(impl).startswith(
            os.path.abspath(where) + os.sep):
        res["error"] = "imported %s, not the one in %s" % (impl, where)
    if log_dir:
        res["log_bytes"] = dir_bytes(log_dir)
        if variant.needs_log and res["log_bytes"] == 0:
            res["error"] = "no log written in %s" % log_dir
    return res


def scaled(units, scale):
    return max(1, int(round(units * scale)))


def workload_units(path):
    """UNITS of a workload file, read without importing it."""
    with open(path) as f:
        for line in f:
            m = re.match(r"UNITS\s*=\s*([0-9_]+)", line)
            if m:
                return int(m.group(1).replace("_", ""))
    raise BenchError("%s has no UNITS" % path)


def median(xs):
    return statistics.median(xs) if xs else None


# -- the benchmark ----------------------------------------------------------

def bench_interpreter(args, info, build, noop_dir, sock, proxy, stats,
                      workloads, scratch, results, failures, base=None,
                      collector=None):
    py = info["path"]
    minor = info["minor"]
    st_env = {"PYTHONPATH": build["pythonpath"], "STEPTRACE_SOCKET": sock,
              "STEPTRACED": build["steptraced"]}
    base_env = None
    if base is not None:
        base_env = {"PYTHONPATH": base["build"]["pythonpath"],
                    "STEPTRACE_SOCKET": base["sock"],
                    "STEPTRACED": base["build"]["steptraced"]}
    variants = [
        Variant("untraced", "untraced", "untraced", None, False),
        Variant("noop-settrace", "C no-op (PyEval_SetTrace)", "noop-settrace",
                noop_dir, False),
    ]
    if tuple(map(int, minor.split("."))) >= (3, 12):
        variants.append(Variant("noop-monitoring",
                                "C no-op (sys.monitoring LINE)",
                                "noop-monitoring", noop_dir, False))
    for mode in MODES:
        for fmt in args.log_formats:
            suffix = "" if fmt == "text" else "-" + fmt
            variants.append(Variant(
                "st-" + mode.lower() + suffix,
                "steptrace " + mode + ("" if fmt == "text" else " " + fmt),
                "steptrace:%s:%s" % (mode, fmt), build["pythonpath"], True))
        if base is not None:
            variants.append(Variant(
                "base-" + mode.lower(), "baseline %s (%s)" % (
                    mode, base["rev"]),
                "steptrace:" + mode, base["build"]["pythonpath"], True))
    slow = []
    if args.python_steptrace:
        slow.append(Variant("python-steptrace", "python-steptrace ALL",
                            "steptrace:ALL", args.python_steptrace, True,
                            slow=True))
    if pysnooper_path(args, py) is not None:
        slow.append(Variant("pysnooper", "PySnooper", "pysnooper",
                            pysnooper_path(args, py) or None, True,
                            slow=True))
    if args.variants:
        keep = set(args.variants.split(","))
        variants = [v for v in variants if v.key in keep or v.key == "untraced"]
        slow = [v for v in slow if v.key in keep]

    work = os.path.join(scratch, "work-" + minor)
    os.makedirs(work, exist_ok=True)
    shutil.copy(os.path.join(HERE, "driver.py"), work)
    for wl in workloads:
        shutil.copy(wl, work)
        # Helpers of a workload directory: files named _*.py beside it.
        for helper in glob.glob(os.path.join(os.path.dirname(wl), "_*.py")):
            shutil.copy(helper, work)

    for wl in workloads:
        name = os.path.splitext(os.path.basename(wl))[0]
        full = workload_units(wl)
        units = scaled(full, args.units_scale)
        logs = os.path.join(scratch, "logs")

        def env_for(v, socket_path=sock):
            env = {}
            if v.pythonpath:
                env["PYTHONPATH"] = v.pythonpath
            if v.key.startswith("st-"):
                env = dict(st_env, STEPTRACE_SOCKET=socket_path)
            if v.key.startswith("base-"):
                env = dict(base_env)
            return env

        def one(v, u, socket_path=sock, record=True):
            r = run_driver(py, work, name, u, v, logs if v.needs_log else None,
                           env_for(v, socket_path), args.timeout)
            if record:
                results.setdefault((minor, name, v.key), []).append(r)
            if "error" in r:
                failures.append("%s %s %s: %s" % (info["version"], name,
                                                  v.label, r["error"]))
                log("FAILED: " + failures[-1])
            return r

        # Executed lines of workload code, counted once by a settrace counter.
        counter = Variant("count", "count", "count", None, False)
        c = one(counter, units, record=False)
        lines = c.get("count")
        meta = {"units": units, "full_units": full, "lines": lines,
                "checksum": c.get("result")}
        results[(minor, name, "_meta")] = meta
        log("%s %s: units %d, %s lines" % (info["version"], name, units, lines))

        # Wire bytes and steps: one untimed run per mode through the proxy.
        if proxy is not None and not args.no_wire:
            for v in variants:
                if not v.key.startswith("st-") or store_key(v.key):
                    continue
                proxy.reset()
                r = one(v, units, socket_path=proxy.path, record=False)
                sent = proxy.reset()
                steps = last_step(logs) if "error" not in r else None
                results[(minor, name, v.key, "wire")] = {
                    "bytes": sent, "steps": steps}
                shutil.rmtree(logs, ignore_errors=True)

        # Timed runs, interleaved: the order rotates with each repetition.
        for rep in range(args.repeat):
            k = rep % len(variants)
            for v in variants[k:] + variants[:k]:
                counted = stats is not None and v.key.startswith("st-")
                before = stats.query() if counted else None
                cpu0 = collector_cpu_s(collector) if collector else None
                r = one(v, units)
                cpu1 = collector_cpu_s(collector) if collector else None
                if v.key.startswith("st-") and cpu0 is not None and \
                        cpu1 is not None:
                    r["collector_cpu"] = cpu1 - cpu0
                if counted and "error" not in r:
                    after = stats.query()
                    if before is not None and after is not None:
                        r["wire_bytes"] = (after["bytes_in"] -
                                           before["bytes_in"] - stats.overhead)
                        r["steps"] = last_step(logs)
                        r["records"] = (after.get("records_in", 0) -
                                        before.get("records_in", 0))
                        lost = sum(after.get(c, 0) - before.get(c, 0)
                                   for c in stats.LOST)
                        if lost:
                            r["error"] = "the collector lost %d records" % lost
                            failures.append("%s %s %s: %s" % (
                                info["version"], name, v.label, r["error"]))
                            log("FAILED: " + failures[-1])
                if v.needs_log:
                    shutil.rmtree(logs, ignore_errors=True)
                if "error" not in r and meta["checksum"] is not None and \
                        r.get("result") != meta["checksum"]:
                    failures.append("%s %s %s: checksum %s, untraced %s" % (
                        info["version"], name, v.label, r.get("result"),
                        meta["checksum"]))
                    log("FAILED: " + failures[-1])
            log("%s %s: repetition %d/%d done" % (info["version"], name,
                                                  rep + 1, args.repeat))

        # The slow pure-Python tracers, at their own smaller scale, each
        # against an untraced run of the same size, interleaved.
        if slow:
            su = scaled(full, args.units_scale * args.slow_scale)
            base = Variant("untraced-slow", "untraced", "untraced", None,
                           False)
            sc = one(counter, su, record=False)
            results[(minor, name, "_slowmeta")] = {"units": su,
                                                   "lines": sc.get("count")}
            group = [base] + slow
            for rep in range(args.slow_repeat):
                k = rep % len(group)
                for v in group[k:] + group[:k]:
                    one(v, su)
                    shutil.rmtree(logs, ignore_errors=True)
            log("%s %s: slow tracers done (units %d)" % (info["version"],
                                                         name, su))
        results.setdefault("_variants", {})[minor] = variants + slow


_pysnooper_cache = {}


def pysnooper_path(args, py):
    """'' when importable as installed, PATH when given, None otherwise."""
    if args.pysnooper:
        return args.pysnooper
    if py not in _pysnooper_cache:
        r = subprocess.run([py, "-c", "import pysnooper"],
                           capture_output=True)
        _pysnooper_cache[py] = "" if r.returncode == 0 else None
    return _pysnooper_cache[py]


# -- the report -------------------------------------------------------------

def store_key(key):
    """The text variant of a step store's variant ("st-none" for
    "st-none-steps"), or None for any other."""
    for fmt in ("-steps", "-both"):
        if key.startswith("st-") and key.endswith(fmt):
            return key[:-len(fmt)]
    return None


def steps_of_variant(results, minor, name, key):
    """Steps of one run of a variant: its logs' count, or for a store the
    text variant's (the same workload records the same steps)."""
    base = store_key(key) or key
    per = [r["steps"] for r in results.get((minor, name, base), [])
           if r.get("steps")]
    if per:
        return max(per)
    wire = results.get((minor, name, base, "wire"))
    return wire.get("steps") if wire else None


def disk_per_step(results, minor, name, key):
    """Bytes on disk per step (the log directory after a run); without a
    step count, per executed line (the settrace count)."""
    steps = (steps_of_variant(results, minor, name, key) or
             (results.get((minor, name, "_meta")) or {}).get("lines"))
    lb = median([r["log_bytes"] for r in results.get((minor, name, key), [])
                 if "error" not in r and "log_bytes" in r])
    return lb / steps if lb is not None and steps else None


def collector_ns_per_record(results, minor, name, key):
    """The collector's CPU time per record it received (the runs' median)."""
    per = [r["collector_cpu"] / r["records"] * 1e9
           for r in results.get((minor, name, key), [])
           if "error" not in r and r.get("records") and
           r.get("collector_cpu") is not None]
    return median(per)


def wire_per_step(results, minor, name, key):
    """Wire bytes per step: the proxy's run, else the counters' runs."""
    if store_key(key):
        steps = steps_of_variant(results, minor, name, key)
        per = [r["wire_bytes"] / steps
               for r in results.get((minor, name, key), [])
               if "error" not in r and steps and "wire_bytes" in r]
        return median(per)
    wire = results.get((minor, name, key, "wire"))
    if wire:
        return wire["bytes"] / wire["steps"] if wire.get("steps") else None
    per = [r["wire_bytes"] / r["steps"]
           for r in results.get((minor, name, key), [])
           if "error" not in r and r.get("steps") and "wire_bytes" in r]
    return median(per)


def steps_of(results, minor, name):
    wire = results.get((minor, name, "st-none", "wire"))
    if wire:
        return wire.get("steps")
    steps = [r["steps"] for r in results.get((minor, name, "st-none"), [])
             if r.get("steps")]
    return max(steps) if steps else None


def fmt_ms(seconds):
    ms = seconds * 1000
    return "%.0f" % ms if ms >= 100 else "%.1f" % ms if ms >= 10 else "%.2f" % ms


def fmt_num(x, fmt):
    return "n/a" if x is None else fmt % x


def table(results, interps, workloads):
    rows = []
    head = ("| Python | workload | tracer | units | median wall ms | ratio | "
            "added ns/line | log bytes | disk B/step | wire B/step | "
            "collector ns/record | peak RSS MiB |")
    rows.append(head)
    rows.append("|" + "---|" * 12)
    for info in interps:
        minor = info["minor"]
        variants = results.get("_variants", {}).get(minor, [])
        for wl in workloads:
            name = os.path.splitext(os.path.basename(wl))[0]
            meta = results.get((minor, name, "_meta"))
            if meta is None:
                continue
            smeta = results.get((minor, name, "_slowmeta"))
            base_runs = [r for r in results.get((minor, name, "untraced"), [])
                         if "error" not in r]
            base = median([r["wall"] for r in base_runs])
            sbase_runs = [r for r in results.get((minor, name,
                                                  "untraced-slow"), [])
                          if "error" not in r]
            sbase = median([r["wall"] for r in sbase_runs])
            for v in variants:
                runs = results.get((minor, name, v.key), [])
                ok = [r for r in runs if "error" not in r]
                units = smeta["units"] if v.slow else meta["units"]
                lines = smeta["lines"] if v.slow else meta["lines"]
                b = sbase if v.slow else base
                if not ok:
                    rows.append("| %s | %s | %s | %d | FAILED | | | | | | | |" % (
                        info["version"], name, v.label, units))
                    continue
                wall = median([r["wall"] for r in ok])
                ratio = wall / b if b else None
                added = ((wall - b) / lines * 1e9
                         if b is not None and lines and v.key != "untraced"
                         else None)
                lb = median([r["log_bytes"] for r in ok if "log_bytes" in r])
                wps = wire_per_step(results, minor, name, v.key)
                rss = median([r["rss_kib"] for r in ok]) / 1024
                mark = " (%d/%d ok)" % (len(ok), len(runs)) \
                    if len(ok) != len(runs) else ""
                st_cell = v.key.startswith("st-")
                rows.append("| %s | %s | %s | %s | %s%s | %s | %s | %s | %s"
                            " | %s | %s | %.1f |" % (
                                info["version"], name, v.label,
                                "{:,}".format(units), fmt_ms(wall), mark,
                                fmt_num(ratio, "%.2fx"),
                                "—" if v.key == "untraced"
                                else fmt_num(added, "%.0f"),
                                "—" if lb is None else "{:,}".format(int(lb)),
                                "—" if not st_cell else fmt_num(
                                    disk_per_step(results, minor, name,
                                                  v.key), "%.1f"),
                                "—" if not st_cell
                                else fmt_num(wps, "%.1f"),
                                "—" if not st_cell else fmt_num(
                                    collector_ns_per_record(
                                        results, minor, name, v.key),
                                    "%.0f"),
                                rss))
    return "\n".join(rows)


# The targets of the performance issue (they are printed, never enforced).
CHANGED_TARGET_NS = {"loop": 250, "csvproc": 250, "fib": 150}


def cell_stats(results, minor, name, key):
    """(median wall, added ns per line) of one cell, or (None, None)."""
    meta = results.get((minor, name, "_meta")) or {}
    ok = [r["wall"] for r in results.get((minor, name, key), [])
          if "error" not in r]
    base = [r["wall"] for r in results.get((minor, name, "untraced"), [])
            if "error" not in r]
    if not ok or not base or not meta.get("lines"):
        return None, None
    wall = median(ok)
    return wall, (wall - median(base)) / meta["lines"] * 1e9


def verdict(value, limit, fmt):
    if value is None:
        return "n/a"
    return (fmt % value) + (" ok" if value <= limit else " MISSED")


def targets_table(results, interps, workloads, formats=("text",)):
    # The targets of issue 15, for each log format.  The floor of the
    # hook steptrace uses there: the sys.monitoring no-op on 3.12+, the
    # PyEval_SetTrace one before.
    rows = ["| Python | workload | format | NONE added / C no-op added, "
            "same hook (<= 2x) | "
            "CHANGED ns/line (<= 250; fib <= 150) | ALL wall / CHANGED wall "
            "(<= 1.2x) | NONE wire B/step (<= 10) |",
            "|---|---|---|---|---|---|---|"]
    for info in interps:
        minor = info["minor"]
        for wl in workloads:
            name = os.path.splitext(os.path.basename(wl))[0]
            if results.get((minor, name, "_meta")) is None:
                continue
            _, noop = cell_stats(results, minor, name, "noop-monitoring")
            if noop is None:
                _, noop = cell_stats(results, minor, name, "noop-settrace")
            for fmt in formats:
                sfx = "" if fmt == "text" else "-" + fmt
                _, none = cell_stats(results, minor, name, "st-none" + sfx)
                chw, chn = cell_stats(results, minor, name,
                                      "st-changed" + sfx)
                allw, _ = cell_stats(results, minor, name, "st-all" + sfx)
                wps = wire_per_step(results, minor, name, "st-none" + sfx)
                limit = CHANGED_TARGET_NS.get(name)
                rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    info["version"], name, fmt,
                    verdict(none / noop if none is not None and noop and
                            noop > 0 else None, 2, "%.1fx"),
                    ("%.0f (no target)" % chn if chn is not None else "n/a")
                    if limit is None else verdict(chn, limit, "%.0f"),
                    verdict(allw / chw if allw and chw else None, 1.2,
                            "%.2fx"),
                    verdict(wps, 10, "%.1f")))
    return "\n".join(rows)


def baseline_table(results, interps, workloads, rev):
    """Added ns per line, this build and the baseline side by side."""
    rows = ["| Python | workload | mode | %s ns/line | this build ns/line | "
            "this / %s |" % (rev, rev), "|---|---|---|---|---|---|"]
    for info in interps:
        minor = info["minor"]
        for wl in workloads:
            name = os.path.splitext(os.path.basename(wl))[0]
            if results.get((minor, name, "_meta")) is None:
                continue
            for mode in MODES:
                _, was = cell_stats(results, minor, name,
                                    "base-" + mode.lower())
                _, now = cell_stats(results, minor, name,
                                    "st-" + mode.lower())
                rows.append("| %s | %s | %s | %s | %s | %s |" % (
                    info["version"], name, mode, fmt_num(was, "%.0f"),
                    fmt_num(now, "%.0f"),
                    fmt_num(now / was if now is not None and was else None,
                            "%.2fx")))
    return "\n".join(rows)


def lines_table(results, interps, workloads):
    rows = ["| Python | workload | units | lines (settrace count) | "
            "steptrace steps (NONE log) |", "|---|---|---|---|---|"]
    for info in interps:
        minor = info["minor"]
        for wl in workloads:
            name = os.path.splitext(os.path.basename(wl))[0]
            meta = results.get((minor, name, "_meta"))
            if meta is None:
                continue
            steps = steps_of(results, minor, name)
            rows.append("| %s | %s | %s | %s | %s |" % (
                info["version"], name, "{:,}".format(meta["units"]),
                "n/a" if meta["lines"] is None
                else "{:,}".format(meta["lines"]),
                "n/a" if steps is None else "{:,}".format(steps)))
    return "\n".join(rows)


# -- main -------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark steptrace against untraced runs, C no-op "
                    "tracers and other tracers; prints a Markdown table.")
    p.add_argument("--python", action="append", metavar="PATH",
                   help="interpreter to benchmark (repeatable; default: "
                        "/usr/bin/python3 and pyenv's 3.10, 3.12, 3.13)")
    p.add_argument("--build-dir", metavar="DIR",
                   help="use this existing steptrace build (one interpreter: "
                        "--python, else the build's -Dpython, else python3) "
                        "instead of building build/bench-pyX.Y")
    p.add_argument("--rev", metavar="REV",
                   help="build this commit (git archive) instead of the "
                        "working tree, e.g. HEAD")
    p.add_argument("--baseline-rev", metavar="REV",
                   help="also build this commit (git archive) and run its "
                        "NONE/CHANGED/ALL against its own collector in the "
                        "same sitting, interleaved, for a before/after table")
    p.add_argument("--workloads", metavar="DIR", action="append",
                   help="directory of workload .py files, repeatable "
                   "(default: ../shared/bench/workloads and bench/workloads; "
                   "--smoke: the shared ones only); files named _*.py are "
                   "helpers, copied but not run")
    p.add_argument("--only", metavar="NAMES",
                   help="comma-separated workload names (e.g. fib,loop)")
    p.add_argument("--variants", metavar="KEYS",
                   help="comma-separated subset of noop-settrace, "
                        "noop-monitoring, st-none, st-changed, st-all, "
                        "base-none, base-changed, base-all (--baseline-rev), "
                        "python-steptrace, pysnooper (untraced always runs)")
    p.add_argument("--log-format", metavar="FORMATS", default="text",
                   help="comma-separated log formats of the steptrace "
                        "variants, side by side: text, steps, both (default: "
                        "%(default)s; e.g. text,steps)")
    p.add_argument("--repeat", type=int, default=5,
                   help="timed runs of each variant (default: %(default)s)")
    p.add_argument("--units-scale", type=float, default=1.0, metavar="F",
                   help="multiply every workload's UNITS by F (default: 1)")
    p.add_argument("--python-steptrace", metavar="PATH",
                   help="directory holding python-steptrace's `steptrace` "
                        "package (its runs' PYTHONPATH)")
    p.add_argument("--pysnooper", metavar="PATH",
                   help="directory holding the `pysnooper` package (default: "
                        "use it when the interpreter can import it)")
    p.add_argument("--slow-scale", type=float, default=0.02, metavar="F",
                   help="further scale for python-steptrace and PySnooper, "
                        "which are compared with an untraced run of the same "
                        "size (default: %(default)s)")
    p.add_argument("--slow-repeat", type=int, default=3,
                   help="timed runs of the slow tracers (default: %(default)s)")
    p.add_argument("--no-wire", action="store_true",
                   help="do not measure wire bytes")
    p.add_argument("--wire-proxy", action="store_true",
                   help="measure wire bytes through a byte-counting proxy "
                        "(one extra untimed run per mode) even when the "
                        "collector has counters")
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds before a run is killed (default: %(default)s)")
    p.add_argument("--smoke", action="store_true",
                   help="CI-sized: one interpreter (--python, else the one "
                        "running this script), --units-scale 0.01, --repeat 1; "
                        "no thresholds")
    p.add_argument("--json", metavar="FILE",
                   help="also write every run's raw figures to FILE")
    p.add_argument("--warm-mib", type=int, default=None, metavar="MIB",
                   help="before the first run, write and delete a file of "
                   "MIB MiB in the scratch directory (default: 4096; "
                   "--smoke: 0), so that page cache memory the kernel has "
                   "never used costs no cell its first touch (see "
                   "docs/PERFORMANCE.md, 'How it is measured')")
    p.add_argument("--keep", action="store_true",
                   help="keep the scratch directory")
    args = p.parse_args(argv)
    args.log_formats = [f.strip() for f in args.log_format.split(",")
                        if f.strip()]
    bad = [f for f in args.log_formats if f not in ("text", "steps", "both")]
    if bad or not args.log_formats:
        p.error("--log-format: %r is not text, steps or both"
                % (bad[0] if bad else args.log_format))
    if not args.workloads:
        # The smoke run keeps to the shared microbenchmarks (seconds); the
        # full table adds bench/workloads (real suites: minutes).
        args.workloads = [SHARED_WORKLOADS] + ([] if args.smoke
                                               else [OWN_WORKLOADS])
    if args.warm_mib is None:
        args.warm_mib = 0 if args.smoke else 4096
    if args.smoke:
        if args.units_scale == 1.0:
            args.units_scale = 0.01
        args.repeat = 1
        args.slow_repeat = 1
        if not args.python and not args.build_dir:
            args.python = [sys.executable]
    if args.python_steptrace and not os.path.isdir(
            os.path.join(args.python_steptrace, "steptrace")):
        p.error("--python-steptrace %s: no steptrace package there"
                % args.python_steptrace)
    if args.pysnooper and not os.path.isdir(
            os.path.join(args.pysnooper, "pysnooper")):
        p.error("--pysnooper %s: no pysnooper package there" % args.pysnooper)
    if args.repeat < 1 or args.units_scale <= 0:
        p.error("--repeat must be 1 or more and --units-scale positive")
    return args


def build_option_python(build_dir):
    try:
        out = subprocess.run(["meson", "introspect", "--buildoptions",
                              build_dir], capture_output=True, text=True,
                             check=True).stdout
        for opt in json.loads(out):
            if opt.get("name") == "python" and opt.get("value"):
                return opt["value"]
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    return shutil.which("python3")


def warm_page_cache(scratch, mib):
    """Writes and deletes `mib` MiB in scratch.  In a virtual machine the
    first touch of a guest page costs the host a fault: writing 1 GB into
    never-used page cache ran at 345 MB/s here, the same again after
    deleting it at 5 GB/s.  The logs of the first cells would pay that;
    pages freed by this file are used again by theirs."""
    if not mib:
        return
    path = os.path.join(scratch, "warm")
    block = b"\0" * (1 << 20)
    t0 = time.monotonic()
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
    os.remove(path)
    log("page cache warmed: %d MiB in %.1f s" % (mib, time.monotonic() - t0))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()[1]
    load_samples = []

    def sample_load():
        while True:
            load_samples.append(os.getloadavg()[0])
            time.sleep(30)
    threading.Thread(target=sample_load, daemon=True).start()
    workloads = []
    for d in args.workloads:
        workloads += sorted(w for w in glob.glob(os.path.join(d, "*.py"))
                            if not os.path.basename(w).startswith("_"))
    if args.only:
        keep = set(args.only.split(","))
        workloads = [w for w in workloads
                     if os.path.splitext(os.path.basename(w))[0] in keep]
    if not workloads:
        log("no workloads in %s" % ", ".join(args.workloads))
        return 2

    if args.build_dir:
        paths = args.python[:1] if args.python else \
            [build_option_python(args.build_dir)]
    else:
        paths = args.python or find_interpreters()
    interps = []
    for path in paths:
        if not path or not os.access(path, os.X_OK):
            log("skip: interpreter %s not found" % path)
            continue
        try:
            info = interpreter_info(path)
        except (BenchError, OSError, ValueError) as e:
            log("skip: %s" % e)
            continue
        if any(i["minor"] == info["minor"] for i in interps):
            log("skip: %s: CPython %s is already benchmarked" % (
                path, info["minor"]))
            continue
        interps.append(info)
    if not interps:
        log("no interpreter to benchmark")
        return 2

    scratch = tempfile.mkdtemp(prefix="stbench-")
    warm_page_cache(scratch, args.warm_mib)
    collector = None
    base_collector = None
    bases = {}
    proxy = None
    stats = None
    wire_how = "not measured (--no-wire)"
    results = {}
    failures = []
    try:
        builds = {}
        noops = {}
        source = None
        for info in interps:
            if args.build_dir:
                builds[info["minor"]] = stage_build(
                    os.path.abspath(args.build_dir),
                    os.path.join(scratch, "stage-" + info["minor"]))
            else:
                if source is None:
                    source = export_rev(args.rev, scratch) if args.rev \
                        else REPO
                builds[info["minor"]] = build_steptrace(info, scratch, source)
            noops[info["minor"]] = build_noop(info)
        if args.baseline_rev:
            bscratch = os.path.join(scratch, "baseline")
            os.makedirs(bscratch)
            bsource = export_rev(args.baseline_rev, bscratch)
            bsock = os.path.join(scratch, "baseline.sock")
            for info in interps:
                bases[info["minor"]] = {
                    "build": build_steptrace(info, bscratch, bsource),
                    "sock": bsock, "rev": args.baseline_rev}
            base_collector = start_collector(
                bases[interps[0]["minor"]]["build"]["steptraced"], bsock)
        sock = os.path.join(scratch, "steptraced.sock")
        collector = start_collector(builds[interps[0]["minor"]]["steptraced"],
                                    sock)
        if not args.no_wire and not args.wire_proxy:
            stats = CollectorStats(interps[0]["path"],
                                   builds[interps[0]["minor"]]["pythonpath"],
                                   sock)
            if stats.ok:
                wire_how = ("the collector's counters (bytes_in before and "
                            "after each timed run)")
            else:
                log("the collector has no counters: wire bytes through a "
                    "counting proxy")
                stats = None
        if not args.no_wire and stats is None:
            proxy = CountingProxy(os.path.join(scratch, "proxy.sock"), sock)
            wire_how = ("a byte-counting proxy in front of the collector "
                        "(one extra untimed run per mode)")
        for info in interps:
            bench_interpreter(args, info, builds[info["minor"]],
                              noops[info["minor"]], sock, proxy, stats,
                              workloads, scratch, results, failures,
                              bases.get(info["minor"]), collector)
    except BenchError as e:
        log("error: %s" % e)
        return 2
    finally:
        collector_rss = collector_peak_rss_kib(collector) if collector else None
        if proxy is not None:
            proxy.close()
        for c in (collector, base_collector):
            if c is None:
                continue
            c.terminate()
            try:
                c.wait(timeout=30)
            except subprocess.TimeoutExpired:
                c.kill()
                c.wait()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    elapsed = time.monotonic() - started
    if args.json:
        raw = [{"key": list(k), "value": v} for k, v in results.items()
               if k != "_variants"]
        for item in raw:
            if isinstance(item["value"], list):
                for r in item["value"]:
                    r.pop("stderr", None)
        with open(args.json, "w") as f:
            json.dump({"argv": argv, "interpreters": interps, "runs": raw},
                      f, indent=1)
    cmd = "python3 bench/run.py" + "".join(" " + shlex.quote(a) for a in argv)
    print("## steptrace benchmark, %s\n" % datetime.date.today().isoformat())
    print("Command: `%s`  " % cmd)
    print("steptrace: %s.  " % (
        "build " + os.path.abspath(args.build_dir) if args.build_dir
        else source_description(args.rev)))
    print("Machine: %s, %d cores, %s; %d timed run(s) per cell, medians; "
          "took %.0f s; load average %.1f before (5 min), %.1f-%.1f during "
          "(1 min, sampled every 30 s).\n" % (
              platform.machine(), os.cpu_count() or 0,
              platform.platform(terse=True), args.repeat, elapsed,
              load_before, min(load_samples), max(load_samples)))
    print(table(results, interps, workloads))
    print()
    print(lines_table(results, interps, workloads))
    print()
    if args.baseline_rev:
        print("Before and after (added ns per traced line, medians of the "
              "same sitting):\n")
        print(baseline_table(results, interps, workloads, args.baseline_rev))
        print()
    print("Targets (reported, not enforced):\n")
    print(targets_table(results, interps, workloads, args.log_formats))
    print()
    print("Wire bytes measured with %s." % wire_how)
    print("Collector (steptraced) peak RSS over the whole benchmark: %s MiB."
          % ("n/a" if collector_rss is None else "%.1f" % (collector_rss / 1024)))
    unavailable = []
    if not args.python_steptrace:
        unavailable.append("python-steptrace: not available (give "
                           "--python-steptrace PATH)")
    if all(pysnooper_path(args, i["path"]) is None for i in interps):
        unavailable.append("PySnooper: not available (not importable; give "
                           "--pysnooper PATH)")
    for u in unavailable:
        print("- " + u)
    if failures:
        print("\n%d run(s) FAILED:" % len(failures))
        for f in failures:
            print("- " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
