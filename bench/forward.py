#!/usr/bin/env python3
"""Forwarding benchmark (issue 14): records per second a steptraced with its
files on forwards to a local rsyslogd, and which side limits.

    python3 bench/forward.py [--build DIR] [--clients 4] [--records 100000]
                             [--mode changed] [--queue-bytes N] [--dir DIR]

st-loadgen (bench/collector/loadgen.c: pre-encoded STEP records, so that the
collector is measured, not the agent) sends --clients x --records records
to a fresh steptraced for each row:

  files only           no forwarding: the collector's file path alone
  + null TCP sink      forward to a loopback TCP reader that only counts
                       bytes: what steptraced forwards when the relay is free
  + rsyslogd           forward to a private rsyslogd (imtcp, omfile with
                       one line per message, as in the README's config)
  forward only         log_file: false, to the same rsyslogd
  ... default queue    files + rsyslogd with the default 64 MiB queue

The first rows give each destination a queue of --queue-bytes (1 GiB), so
that a burst faster than the destination is queued, not dropped, and the
rate is the destination's; the last row shows what the default bound does
with the same burst.

"file rec/s" is st-loadgen's figure: first record sent to the last ACK,
that is every record written to its file.  "forwarded rec/s" is the same
start to the moment the destination had every message (the sink counted
the bytes the collector sent; rsyslogd's output file last grew).  CPU
time is user + system of each process over the row, from /proc, per
record: the side that needs more of it per record is the limit.  Records
dropped is the collector's forward_dropped (forward_queue_bytes bounds the
queue; 0 means nothing was lost).

Prints a Markdown table with the command that produced it, for
docs/PERFORMANCE.md.  Needs a build with st-loadgen (meson compile) and
rsyslogd (tools/deps.sh); run it with the Python the build is for.
"""
import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

def _load_collector_bench():
    """bench/collector/run.py (load_daemonctl, exe_env), by its path."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "st_collector_bench", os.path.join(HERE, "collector", "run.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


collector_bench = _load_collector_bench()

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
RSYSLOG_CONF = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
template(name="line" type="string" string="%rawmsg%\\n")
ruleset(name="steptrace") {{
  action(type="omfile" file="{out}" template="line")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="steptrace")
"""


def cpu_seconds(pid):
    """User + system CPU seconds of a live process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NullSink:
    """A loopback TCP server that reads and counts bytes, nothing else."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.bytes = 0
        self.last = time.monotonic()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        while True:
            b = c.recv(1 << 20)
            if not b:
                return
            self.bytes += len(b)
            self.last = time.monotonic()

    def close(self):
        self.srv.close()


class Rsyslogd:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "rsyslog")
        os.makedirs(os.path.join(self.dir, "work"), exist_ok=True)
        self.out = os.path.join(self.dir, "out.log")
        self.port = free_port()
        conf = os.path.join(self.dir, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(RSYSLOG_CONF.format(work=os.path.join(self.dir, "work"),
                                        out=self.out, port=self.port))
        with open(os.path.join(self.dir, "rsyslogd.out"), "wb") as out:
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", conf, "-i",
                 os.path.join(self.dir, "pid")], stdin=subprocess.DEVNULL,
                stdout=out, stderr=out)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("rsyslogd did not start")

    def lines(self):
        n = 0
        with open(self.out, "rb") as f:
            while True:
                b = f.read(1 << 24)
                if not b:
                    return n
                n += b.count(b"\n")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


class Collector:
    def __init__(self, exe, workdir, config):
        self.sock = os.path.join(workdir, "s.sock")
        args = [exe, "--socket", self.sock]
        if config:
            path = os.path.join(workdir, "c.yaml")
            with open(path, "w") as f:
                f.write(config)
            args += ["--config", path]
        self.err = open(os.path.join(workdir, "steptraced.err"), "ab")
        rfd, wfd = os.pipe()
        self.proc = subprocess.Popen(
            args + ["--ready-fd", str(wfd)], pass_fds=(wfd,),
            stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err,
            env=collector_bench.exe_env())
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


def wait_quiet(measure, last_change, want=None, timeout=600):
    """Waits until measure() reaches want (or stops changing for 2 s);
    returns the monotonic time of its last change."""
    deadline = time.monotonic() + timeout
    prev, t_prev = measure(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        cur = measure()
        if cur != prev:
            prev, t_prev = cur, time.monotonic()
        if want is not None and cur >= want:
            return last_change(t_prev)
        if time.monotonic() - t_prev > 2.0:
            return last_change(t_prev)
    raise SystemExit("the destination never caught up")


def run_row(args, ctl, name, dest, files_on, workdir, queue_bytes):
    total = args.clients * args.records
    os.makedirs(workdir, exist_ok=True)
    rs = sink = None
    config = ""
    if dest == "null":
        sink = NullSink()
        config = "forward: [syslog+tcp://127.0.0.1:%d]\n" % sink.port
    elif dest == "rsyslog":
        rs = Rsyslogd(workdir)
        config = "forward: [syslog+tcp://127.0.0.1:%d]\n" % rs.port
    if dest is not None and queue_bytes:
        config += "forward_queue_bytes: %d\n" % queue_bytes
    if not files_on:
        config += "log_file: false\n"
    col = Collector(args.steptraced, workdir, config)
    logdir = os.path.join(workdir, "logs")
    cpu0 = cpu_seconds(col.proc.pid)
    rcpu0 = cpu_seconds(rs.proc.pid) if rs else 0.0
    t0 = time.monotonic()
    out = subprocess.run(
        [args.loadgen, "--socket", col.sock, "--log-dir", logdir,
         "--clients", str(args.clients), "--records", str(args.records),
         "--mode", args.mode, "--flush-per-frame"],
        check=True, stdout=subprocess.PIPE, text=True,
        env=collector_bench.exe_env()).stdout
    kv = dict(x.split("=", 1) for x in out.split())
    file_rps = int(kv["records"]) / float(kv["seconds"]) if files_on else None
    fwd_rps = None
    if dest is not None:
        if sink is not None:
            t_end = wait_quiet(lambda: sink.bytes, lambda t: sink.last)
        else:
            t_end = wait_quiet(rs.lines, lambda t: os.stat(rs.out).st_mtime
                               - time.time() + time.monotonic(), want=total)
    st = ctl.Connection(col.sock).status()
    if dest is not None:
        arrived = rs.lines() if rs else st["forward_sent"]
        fwd_rps = arrived / (t_end - t0)
    cpu = cpu_seconds(col.proc.pid) - cpu0
    rcpu = cpu_seconds(rs.proc.pid) - rcpu0 if rs else None
    elapsed = time.monotonic() - t0
    got = rs.lines() if rs else None
    col.stop()
    if rs:
        rs.stop()
    if sink:
        sink.close()
    shutil.rmtree(workdir, ignore_errors=True)
    return {"name": name, "file_rps": file_rps, "fwd_rps": fwd_rps,
            "cpu": cpu, "rcpu": rcpu, "elapsed": elapsed,
            "dropped": st.get("forward_dropped", 0), "got": got,
            "sent": st.get("forward_sent", 0), "total": total}


def fmt_rps(v):
    return "-" if v is None else "{:,}".format(round(v))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build", "main"))
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--records", type=int, default=100000,
                   help="records per client")
    p.add_argument("--mode", default="changed",
                   help="st-loadgen's mode: none, changed or all")
    p.add_argument("--queue-bytes", type=int, default=1 << 30,
                   help="forward_queue_bytes of all but the last row")
    p.add_argument("--dir", default=None)
    args = p.parse_args()
    args.steptraced = os.path.join(args.build, "daemon", "steptraced")
    args.loadgen = os.path.join(args.build, "bench", "collector",
                                "st-loadgen")
    for exe in (args.steptraced, args.loadgen, RSYSLOGD):
        if not os.access(exe, os.X_OK):
            raise SystemExit("%s is missing (build first; rsyslogd: "
                             "tools/deps.sh)" % exe)
    ctl = collector_bench.load_daemonctl(args.build)
    workdir = tempfile.mkdtemp(prefix="st-bench-forward-", dir=args.dir)
    rows = []
    try:
        for name, dest, files_on, qb in (
                ("files only", None, True, None),
                ("files + null TCP sink", "null", True, args.queue_bytes),
                ("files + rsyslogd", "rsyslog", True, args.queue_bytes),
                ("forward only, rsyslogd", "rsyslog", False,
                 args.queue_bytes),
                ("files + rsyslogd, default 64 MiB queue", "rsyslog", True,
                 None)):
            rows.append(run_row(args, ctl, name, dest, files_on,
                                os.path.join(workdir, "run"), qb))
            print("%s: %s" % (name, rows[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("Command: `python3 bench/forward.py %s`  "
          % " ".join(sys.argv[1:]))
    print("Machine: %s, %d CPUs, %s, Python %s, %s; %s  "
          % (platform.machine(), os.cpu_count(), platform.release(),
             platform.python_version(),
             subprocess.run([RSYSLOGD, "-v"], stdout=subprocess.PIPE,
                            text=True).stdout.split("\n")[0].split(" (")[0],
             time.strftime("%Y-%m-%d")))
    print("st-loadgen: %d clients x %d records, mode %s"
          % (args.clients, args.records, args.mode.upper()))
    print()
    print("| row | file rec/s | forwarded rec/s | steptraced CPU/record | "
          "rsyslogd CPU/record | dropped | arrived at rsyslogd |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %s | %s | %.2f us | %s | %s | %s |"
              % (r["name"], fmt_rps(r["file_rps"]), fmt_rps(r["fwd_rps"]),
                 r["cpu"] / r["total"] * 1e6,
                 "-" if r["rcpu"] is None
                 else "%.2f us" % (r["rcpu"] / r["total"] * 1e6),
                 "{:,}".format(r["dropped"]),
                 "-" if r["got"] is None else "{:,}".format(r["got"])))


if __name__ == "__main__":
    main()
