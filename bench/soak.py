#!/usr/bin/env python3
"""Soak: one service collector under mixed load for a long time.

    python3 bench/soak.py --build build/main                 # 30 minutes
    python3 bench/soak.py --build build/main --minutes 2     # a quick look

Runs `steptraced` on a socket of its own (with a config that rotates every
file at 1 MiB, 3 backups) and, for --minutes, keeps it busy with:

  - short traced programs: `steptrace run` of a small script, one started
    every --short-every seconds (at most 4 at once), each in a fresh
    directory that is removed once it has been checked; one in three with
    `--log-format steps`, one in three with `both`;
  - --long long programs (a `Tracer` region of a few thousand lines every
    50 ms, paced) that each run for 2 to 6 minutes and are then replaced,
    so that their connections come and go too; their files rotate;
  - `steptrace tail` clients: one connects every 15 s and leaves after 2
    to 8 s (SIGINT), half of them with `--pid` of a long program.

Every --interval seconds (10) it samples the collector: resident memory
(VmRSS, and its two parts that matter: RssAnon, the collector's own heap,
and RssShmem, the pages of the clients' rings it has mapped, which follow
the clients' backlogs and go with their connections), open file
descriptors (/proc/PID/fd), and the counters of `steptrace daemon status
--json` (connections open besides the status query itself, records in,
records written).  It prints one row per sample, then a summary and the
command that reproduces the run.

Exit status 1 when the collector grew without bound, judged with this rule
(the load is steady, so a leak grows with time while a cache or a pool
levels off): the samples after the first 20% (warm-up) are cut in two
halves; it fails when the maximum RssAnon of the second half is more than
10% (and at least 4 MiB) above that of the first half, or when the maximum
fd count of the second half is more than 8 above that of the first half.
After the load stops and every client is gone, the fd count must be back
at the idle collector's count and no connection may be open.  Also 1 when
the collector died, a short program failed (exit status, no log, a step
count the log does not hold), or a long one ended badly; 2 for a usage
error.  Standard library only; nothing is judged by speed.
"""
import argparse
import datetime
import json
import os
import platform
import random
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

SHORT = """\
import sys
def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
def work(n):
    out = []
    for i in range(n):
        out.append(fib(i % 30))
    return len(out)
print(work(int(sys.argv[1])))
"""

LONG = """\
import os, sys, time
from steptrace import Tracer
def work(k, n):
    seen = {}
    for i in range(n):
        seen[i % 17] = "%d-%d" % (k, i)
    return len(seen)
t = Tracer(variable_mode=sys.argv[2], max_log_bytes=262144, max_log_files=2)
end = time.monotonic() + float(sys.argv[1])
k = 0
while time.monotonic() < end:
    k += 1
    with t:
        work(k, 400)
    time.sleep(0.05)
print(k)
"""

CONFIG = """\
max_log_bytes: 1048576
max_log_files: 3
"""

CLOSING_RE = re.compile(r"^steptrace: (\d+) steps? in (\S+)", re.M)


def note(msg):
    sys.stderr.write("soak: %s\n" % msg)
    sys.stderr.flush()


def stage(build):
    """meson install --destdir of the build; (PYTHONPATH, steptraced)."""
    dest = tempfile.mkdtemp(prefix="stsoak-stage-")
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
        raise SystemExit("soak: the install of %s lacks _agent or "
                         "steptraced" % build)
    return os.path.dirname(os.path.dirname(so)), exe, dest


def default_sigint():
    """SIGINT ends the child: a background job of a shell (nohup soak.py
    &) ignores SIGINT, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def proc_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Soak:
    def __init__(self, args, pythonpath, steptraced):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="stsoak-")
        self.sock = os.path.join(self.work, "s.sock")
        self.env = dict(os.environ, PYTHONPATH=pythonpath,
                        STEPTRACED=steptraced, STEPTRACE_SOCKET=self.sock,
                        PYTHONDONTWRITEBYTECODE="1",
                        # No private collector hides in the default
                        # socket's place: only ours answers.
                        XDG_RUNTIME_DIR=os.path.join(self.work, "xdg"),
                        TMPDIR=os.path.join(self.work, "tmp"))
        os.makedirs(self.env["TMPDIR"])
        self.steptraced = steptraced
        self.python = args.python
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.counts = {"short": 0, "short_steps": 0, "long": 0, "tail": 0,
                       "long_regions": 0}
        self.longs = {}
        self.long_procs = {}
        self.rng = random.Random(args.seed)
        with open(os.path.join(self.work, "short.py"), "w") as f:
            f.write(SHORT)
        with open(os.path.join(self.work, "long.py"), "w") as f:
            f.write(LONG)
        with open(os.path.join(self.work, "steptraced.yaml"), "w") as f:
            f.write(CONFIG)

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)
        note("FAILURE: " + msg)

    # ---- the collector ------------------------------------------------

    def start_collector(self):
        rfd, wfd = os.pipe()
        self.col_err = open(os.path.join(self.work, "steptraced.log"), "wb")
        self.col = subprocess.Popen(
            [self.steptraced, "--socket", self.sock, "--config",
             os.path.join(self.work, "steptraced.yaml"), "--ready-fd",
             str(wfd)], pass_fds=(wfd,), stdin=subprocess.DEVNULL,
            stdout=self.col_err, stderr=self.col_err, env=self.env)
        os.close(wfd)
        ready, _, _ = select.select([rfd], [], [], 15)
        line = os.read(rfd, 64) if ready else b""
        os.close(rfd)
        if not line.startswith(b"ready"):
            raise SystemExit("soak: steptraced did not start")

    def status(self):
        r = subprocess.run([self.python, "-m", "steptrace", "daemon",
                            "status", "--socket", self.sock, "--json"],
                           env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    # ---- the load -----------------------------------------------------

    def short_loop(self):
        running = []
        k = 0
        while not self.stop.is_set():
            running = [p for p in running if not self.short_done(p)]
            if len(running) < 4:
                k += 1
                cwd = os.path.join(self.work, "short-%d" % k)
                os.makedirs(cwd)
                fmt = ("text", "steps", "both")[k % 3]
                n = self.rng.randint(20, 120)
                p = subprocess.Popen(
                    [self.python, "-m", "steptrace", "run",
                     "--variable-mode", "CHANGED", "--log-format", fmt,
                     os.path.join(self.work, "short.py"), str(n)],
                    cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                p.soak = (cwd, fmt, n, time.monotonic())
                running.append(p)
            self.stop.wait(self.args.short_every)
        for p in running:
            p.wait(timeout=60)
            self.short_done(p)

    def short_done(self, p):
        """Checks a finished short program (False while it runs)."""
        if p.poll() is None:
            if time.monotonic() - p.soak[3] > 120:
                self.fail("a short program runs for 120 s: %s" % p.soak[0])
                p.kill()
                p.wait()
            return False
        cwd, fmt, n, _ = p.soak
        out, err = p.communicate()
        err = err.decode("utf-8", "replace")
        m = CLOSING_RE.search(err)
        # work(n): 2n+3 lines; fib(m): 3 + 2m lines + return; module: 2.
        if p.returncode != 0 or m is None or \
                out.decode().strip() != str(n):
            self.fail("short program %s (%s) ended %d: %r"
                      % (cwd, fmt, p.returncode, err[-500:]))
        else:
            steps = int(m.group(1))
            log = os.path.join(cwd, ".tracer",
                               "tracer.log" if fmt != "steps" else
                               "tracer.steps")
            if not os.path.isfile(log):
                self.fail("short program %s (%s): no %s" % (cwd, fmt, log))
            elif fmt != "steps":
                # Small enough not to rotate at 1 MiB (a rotated-out
                # backup would be missing from the count).
                with open(log, encoding="utf-8") as f:
                    text = f.read()
                found = text.count("-" * 21 + " Step ")
                if found != steps:
                    self.fail("short program %s: %d step records, the "
                              "closing line says %d" % (cwd, found, steps))
            with self.lock:
                self.counts["short"] += 1
                self.counts["short_steps"] += steps
        shutil.rmtree(cwd, ignore_errors=True)
        return True

    def long_loop(self, slot):
        k = 0
        while not self.stop.is_set():
            k += 1
            cwd = os.path.join(self.work, "long-%d" % slot)
            shutil.rmtree(cwd, ignore_errors=True)
            os.makedirs(cwd)
            secs = self.rng.uniform(120, 360)
            left = self.args.minutes * 60 - (time.monotonic() - self.t0)
            secs = max(5.0, min(secs, left - 5))
            mode = ("CHANGED", "ALL", "NONE")[(slot + k) % 3]
            p = subprocess.Popen([self.python,
                                  os.path.join(self.work, "long.py"),
                                  "%.1f" % secs, mode],
                                 cwd=cwd, env=self.env,
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            self.longs[slot] = p.pid
            self.long_procs[slot] = p
            out, err = p.communicate()
            self.longs.pop(slot, None)
            self.long_procs.pop(slot, None)
            if p.returncode != 0 or err:
                self.fail("long program %d ended %d: %r"
                          % (slot, p.returncode, err[-500:]))
            else:
                with self.lock:
                    self.counts["long"] += 1
                    self.counts["long_regions"] += int(out)

    def tail_loop(self):
        while not self.stop.wait(15):
            cmd = [self.python, "-m", "steptrace", "tail", "--socket",
                   self.sock]
            longs = list(self.longs.values())
            if longs and self.rng.random() < 0.5:
                cmd += ["--pid", str(self.rng.choice(longs))]
            p = subprocess.Popen(cmd, env=self.env,
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE,
                                 preexec_fn=default_sigint)
            self.stop.wait(self.rng.uniform(2, 8))
            p.send_signal(signal.SIGINT)
            try:
                _, err = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                self.fail("steptrace tail did not end on SIGINT")
                continue
            if p.returncode not in (130, -signal.SIGINT):
                self.fail("steptrace tail ended %d: %r"
                          % (p.returncode, err[-300:]))
            else:
                with self.lock:
                    self.counts["tail"] += 1

    # ---- sampling -----------------------------------------------------

    def sample(self, t):
        pid = self.col.pid
        st = self.status()
        row = {"t": t, "rss": proc_kib(pid, "VmRSS"),
               "anon": proc_kib(pid, "RssAnon"),
               "shmem": proc_kib(pid, "RssShmem"), "fds": fd_count(pid),
               # Less the status query's own connection.
               "open": st.get("connections_open", 0) - 1,
               "in": st.get("records_in", -1),
               "written": st.get("records_written", -1)}
        print("| %5d | %6d | %6d | %6d | %4d | %5d | %11d | %11d |"
              % (row["t"], row["rss"], row["anon"], row["shmem"],
                 row["fds"], row["open"], row["in"], row["written"]),
              flush=True)
        return row

    def run(self):
        self.start_collector()
        time.sleep(1)
        idle = {"rss": proc_kib(self.col.pid, "VmRSS"),
                "anon": proc_kib(self.col.pid, "RssAnon"),
                "fds": fd_count(self.col.pid)}
        print("soak: steptraced pid %d, idle: %d KiB (anon %d), %d fds; "
              "load: %s" % (self.col.pid, idle["rss"], idle["anon"],
                            idle["fds"], self.load()), flush=True)
        print("| t (s) | RSS KiB | anon | shmem | fds | conns | records in "
              "| written |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self.short_loop),
                   threading.Thread(target=self.tail_loop)]
        threads += [threading.Thread(target=self.long_loop, args=(k,))
                    for k in range(self.args.long)]
        for th in threads:
            th.start()
        samples = []
        end = self.t0 + self.args.minutes * 60
        next_t = self.t0
        try:
            while True:
                now = time.monotonic()
                if self.col.poll() is not None:
                    self.fail("steptraced died (%d)" % self.col.returncode)
                    break
                if now >= next_t:
                    samples.append(self.sample(round(now - self.t0)))
                    next_t += self.args.interval
                if now >= end:
                    break
                time.sleep(min(1.0, max(0.0, next_t - time.monotonic())))
        except KeyboardInterrupt:
            # Ctrl-C: the long programs would run for minutes more.
            self.fail("interrupted")
            for p in list(self.long_procs.values()):
                p.kill()
        self.stop.set()
        for th in threads:
            th.join()
        return idle, samples

    def after(self, idle):
        """The collector once every client is gone."""
        deadline = time.monotonic() + 30
        while True:
            st = self.status()
            fds = fd_count(self.col.pid)
            if (st.get("connections_open") == 1 and fds <= idle["fds"]) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.5)
        rss = proc_kib(self.col.pid, "VmRSS")
        return {"rss": rss, "anon": proc_kib(self.col.pid, "RssAnon"),
                "shmem": proc_kib(self.col.pid, "RssShmem"), "fds": fds,
                "open": st.get("connections_open", 0) - 1,
                "status": st}

    def load(self):
        return ("short `steptrace run` every %.1f s (<= 4 at once, "
                "text/steps/both), %d long programs (a 400-iteration region "
                "every 50 ms), a tail client every 15 s for 2-8 s; "
                "max_log_bytes 1 MiB, max_log_files 3"
                % (self.args.short_every, self.args.long))

    def finish(self):
        self.col.send_signal(signal.SIGTERM)
        try:
            rc = self.col.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.col.kill()
            rc = self.col.wait()
        if rc != 0:
            self.fail("steptraced exited %d after SIGTERM" % rc)
        self.col_err.close()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def judge(samples, idle, after):
    """The growth rule of the docstring; returns a list of findings."""
    found = []
    warm = max(1, len(samples) // 5)
    rest = samples[warm:]
    if len(rest) < 4:
        return ["too few samples to judge (%d): run longer" % len(samples)]
    a, b = rest[:len(rest) // 2], rest[len(rest) // 2:]
    rss_a, rss_b = max(s["anon"] for s in a), max(s["anon"] for s in b)
    if rss_b > rss_a + max(4096, rss_a // 10):
        found.append("RssAnon grows: max %d KiB in the first half after "
                     "the warm-up, %d KiB in the second" % (rss_a, rss_b))
    fd_a, fd_b = max(s["fds"] for s in a), max(s["fds"] for s in b)
    if fd_b > fd_a + 8:
        found.append("fds grow: max %d in the first half after the warm-up, "
                     "%d in the second" % (fd_a, fd_b))
    if after["fds"] > idle["fds"]:
        found.append("%d fds once every client is gone, %d when idle at "
                     "the start" % (after["fds"], idle["fds"]))
    if after["shmem"] != 0:
        found.append("%d KiB of rings still mapped once every client is "
                     "gone" % after["shmem"])
    if after["open"] != 0:
        found.append("%r connections open once every client is gone"
                     % after["open"])
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build", "main"),
                    help="a meson build directory (default build/main)")
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter of the traced programs")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=10.0,
                    help="seconds between samples (default 10)")
    ap.add_argument("--short-every", type=float, default=1.0,
                    help="seconds between short programs (default 1)")
    ap.add_argument("--long", type=int, default=2,
                    help="long programs at once (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true",
                    help="keep the scratch directory")
    args = ap.parse_args()
    if args.minutes <= 0 or args.interval <= 0 or args.long < 0:
        ap.error("--minutes and --interval must be positive")
    pythonpath, steptraced, dest = stage(args.build)
    soak = Soak(args, pythonpath, steptraced)
    cmd = "python3 bench/soak.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    print("soak: %s, %s, %d CPUs, started %s" % (
        platform.python_version(), platform.machine(), os.cpu_count(),
        datetime.datetime.now().isoformat(timespec="seconds")), flush=True)
    try:
        idle, samples = soak.run()
        after = soak.after(idle) if soak.col.poll() is None else \
            {"rss": 0, "anon": 0, "shmem": 0, "fds": 0, "open": None,
             "status": {}}
        findings = judge(samples, idle, after) if samples else ["no sample"]
    finally:
        soak.finish()
        shutil.rmtree(dest, ignore_errors=True)
    st = after["status"]
    print()
    print("| | RSS KiB | anon KiB | fds |")
    print("|---|---:|---:|---:|")
    print("| idle before the load | %d | %d | %d |"
          % (idle["rss"], idle["anon"], idle["fds"]))
    for what, s in (("first sample", samples[0]),
                    ("last sample", samples[-1])):
        print("| %s | %d | %d | %d |" % (what, s["rss"], s["anon"], s["fds"]))
    print("| max | %d | %d | %d |"
          % tuple(max(s[k] for s in samples) for k in ("rss", "anon", "fds")))
    print("| clients gone | %d | %d | %d |"
          % (after["rss"], after["anon"], after["fds"]))
    print()
    print("records in %s, written %s, lost by agents %s, rotations %s, "
          "connections %s, protocol errors %s"
          % (st.get("records_in"), st.get("records_written"),
             st.get("lost_agent"), st.get("rotations"),
             st.get("connections"), st.get("protocol_errors")))
    print("short programs %(short)d (%(short_steps)d steps), long programs "
          "%(long)d (%(long_regions)d regions), tail clients %(tail)d"
          % soak.counts)
    print("load: %s" % soak.load())
    print("reproduce: %s" % cmd)
    problems = soak.failures + findings
    for p in problems:
        print("soak: %s" % p)
    print("soak: %s" % ("FAIL" if problems else "ok: no growth without "
                        "bound (rule in bench/soak.py's docstring)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
