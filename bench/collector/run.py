#!/usr/bin/env python3
"""Collector throughput benchmark: st-loadgen against a real steptraced.

    python3 bench/collector/run.py [--build DIR] [--clients 8]
                                   [--records 500000] [--runs 3]
                                   [--modes none,changed,all] [--dir DIR]

For each mode, starts a fresh steptraced on a private socket, runs
st-loadgen (--clients threads, --records pre-encoded STEP records each,
sent as frames of 1000) --runs times, and reports the median: records per
second from the first record sent to the last FLUSH acknowledged (the
collector acknowledges only once the records are written to the files),
MB/s of log text written, and the collector's peak RSS.  The logs go to
--dir (default: a temporary directory, removed afterwards).

Prints a Markdown table, with the command line that produced it, for
docs/PERFORMANCE.md.  Standard library, and the build's agent for the
collector's counters (steptrace/daemonctl.py speaks through its codec);
run it with the Python the build is for.
"""
import argparse
import glob
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_daemonctl(build):
    """client/steptrace/daemonctl.py without importing the package (whose
    __init__ imports the tracer, which installs fork hooks): a bare package
    module stands for it, whose path is the package's directory and the
    build's agent/, so that daemonctl's relative imports resolve there and
    _agent (its wire codec) is the extension this build made."""
    pkgdir = os.path.join(ROOT, "client", "steptrace")
    pkg = types.ModuleType("st_client")
    pkg.__path__ = [pkgdir, os.path.join(build, "agent")]
    sys.modules["st_client"] = pkg
    spec = importlib.util.spec_from_file_location(
        "st_client.daemonctl", os.path.join(pkgdir, "daemonctl.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
    except ImportError as e:
        raise SystemExit("the agent of %s does not load in this Python "
                         "(%s): run this with the Python the build is for"
                         % (build, e))
    return mod


def asan_runtime(build):
    """The ASan runtime the build's agent links, or None: a sanitizer
    build's agent loads into a stock python3 only with that runtime
    preloaded (STYLE item 3)."""
    agents = glob.glob(os.path.join(build, "agent", "_agent*.so"))
    try:
        out = subprocess.run(["ldd"] + agents[:1], capture_output=True,
                             text=True).stdout if agents else ""
    except OSError:
        return None
    for line in out.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.startswith("libasan.so"):
            return path.split(" (")[0]
    return clang_asan_runtime(agents[:1])


def clang_asan_runtime(agents):
    """clang links no ASan runtime into a shared module (b_lundef=false):
    an agent that needs __asan_ symbols takes clang's shared runtime."""
    try:
        syms = subprocess.run(["nm", "-D", "--undefined-only"] + agents,
                              capture_output=True, text=True).stdout
        if not agents or "__asan_" not in syms:
            return None
        path = subprocess.run(["clang", "-print-file-name="
                               "libclang_rt.asan-x86_64.so"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return None
    return path if os.path.isabs(path) and os.path.exists(path) else None


def preload_asan(build):
    """Runs this script again with the build's ASan runtime preloaded
    (and Python's allocations visible to it) when the build needs it."""
    preload = os.environ.get("LD_PRELOAD", "")
    if "asan" in preload:
        return  # Done already (ldd under it may not name the runtime).
    runtime = asan_runtime(build)
    if runtime is None:
        return
    env = dict(os.environ, PYTHONMALLOC="malloc",
               LD_PRELOAD=runtime + (":" + preload if preload else ""))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def exe_env():
    """The environment of the build's executables: without the ASan
    runtime preloaded for the agent (a clang-built executable has its own,
    and two runtimes refuse to start)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Collector:
    def __init__(self, exe, workdir):
        self.sock = os.path.join(workdir, "s.sock")
        self.err = open(os.path.join(workdir, "steptraced.err"), "wb")
        rfd, wfd = os.pipe()
        self.proc = subprocess.Popen(
            [exe, "--socket", self.sock, "--ready-fd", str(wfd)],
            pass_fds=(wfd,), stdin=subprocess.DEVNULL, stdout=self.err,
            stderr=self.err, env=exe_env())
        os.close(wfd)
        with os.fdopen(rfd, "rb") as r:
            if not r.read(6).startswith(b"ready"):
                raise SystemExit("steptraced did not start")

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(60)
        self.err.close()
        if rc != 0:
            raise SystemExit("steptraced exited with status %d" % rc)


def run_mode(args, mode, workdir, ctl):
    col = Collector(args.steptraced, workdir)
    results = []
    try:
        for i in range(args.runs):
            logdir = os.path.join(workdir, "logs-%s-%d" % (mode, i))
            st0 = ctl.Connection(col.sock).status()
            before, before_records = (st0["bytes_written"],
                                      st0["records_written"])
            cmd = [args.loadgen, "--socket", col.sock, "--log-dir", logdir,
                   "--clients", str(args.clients), "--records",
                   str(args.records), "--mode", mode, "--vars",
                   str(args.vars)] + (["--flush-per-frame"] if args.flush
                                      else [])
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                                 text=True, env=exe_env()).stdout
            kv = dict(x.split("=", 1) for x in out.split())
            st = ctl.Connection(col.sock).status()
            written = st["bytes_written"] - before
            secs = float(kv["seconds"])
            results.append({"records": int(kv["records"]), "seconds": secs,
                            "written": st["records_written"] -
                            before_records,
                            "rps": int(kv["records"]) / secs,
                            "mbps": written / secs / 1e6,
                            "bytes": written,
                            "lost": st["dropped_write"] + st["dropped_open"]})
            if not args.keep:
                shutil.rmtree(logdir, ignore_errors=True)
        rss = peak_rss_kib(col.proc.pid)
    finally:
        col.stop()
    med = statistics.median(r["rps"] for r in results)
    best = sorted(results, key=lambda r: r["rps"])[len(results) // 2]
    return {"mode": mode, "rps": med, "mbps": best["mbps"],
            "bytes_per_record": best["bytes"] / best["records"],
            "rss_mib": rss / 1024.0,
            "runs": [round(r["rps"]) for r in results],
            "lost": sum(r["lost"] for r in results),
            "missing": sum(r["records"] - r["written"] for r in results)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"),
                   help="meson build directory (default: build)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--records", type=int, default=500000,
                   help="records per client and run")
    p.add_argument("--vars", type=int, default=8,
                   help="locals of the traced frame (all, changed)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--modes", default="none,changed,all")
    p.add_argument("--dir", default=None,
                   help="where the logs go (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the logs")
    p.add_argument("--no-flush-per-frame", dest="flush", action="store_false",
                   help="send one FLUSH at the end instead of one per frame "
                   "(the agent ends every frame with a FLUSH)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every record was written (for CI)")
    args = p.parse_args()
    args.steptraced = os.path.join(args.build, "daemon", "steptraced")
    args.loadgen = os.path.join(args.build, "bench", "collector",
                                "st-loadgen")
    for exe in (args.steptraced, args.loadgen):
        if not os.access(exe, os.X_OK):
            raise SystemExit("%s is missing: build first (ninja -C %s)"
                             % (exe, args.build))
    preload_asan(args.build)
    ctl = load_daemonctl(args.build)
    workdir = tempfile.mkdtemp(prefix="st-bench-collector-", dir=args.dir)
    rows = []
    try:
        for mode in args.modes.split(","):
            rows.append(run_mode(args, mode, workdir, ctl))
            print("%s: %s" % (mode, rows[-1]), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    cmd = "python3 bench/collector/run.py " + " ".join(
        a for a in sys.argv[1:])
    print("Command: `%s`  " % cmd.strip())
    print("Machine: %s, %d CPUs, %s, Python %s; %s  "
          % (platform.machine(), os.cpu_count(), platform.release(),
             platform.python_version(), time.strftime("%Y-%m-%d")))
    print("%d clients x %d records per run, median of %d runs; logs in %s"
          % (args.clients, args.records, args.runs,
             args.dir or tempfile.gettempdir()))
    print()
    print("%s; %s" % ("a FLUSH per frame, as the agent sends" if args.flush
                      else "one FLUSH at the end", "the collector acknowledges "
                      "a FLUSH once its records are written"))
    print()
    print("| mode | records/s | MB/s of log written | bytes/record | "
          "collector peak RSS | records lost |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %s | %.0f | %.0f | %.1f MiB | %d |"
              % (r["mode"].upper(), "{:,}".format(round(r["rps"])),
                 r["mbps"], r["bytes_per_record"], r["rss_mib"], r["lost"]))
    if args.check and any(r["lost"] or r["missing"] for r in rows):
        raise SystemExit("records were lost: %r" % rows)


if __name__ == "__main__":
    main()
