"""`steptrace daemon start|stop|status` and `steptrace tail`.

These talk to a running steptraced over its socket as a *control* client
(docs/PROTOCOL.md section 4, "Control connections"): HELLO, then STATUS
(answered with STATS, the collector's counters) or TAIL (answered with a
stream of TEXT messages: the records as they are written).  The messages are
encoded and decoded by common's wire codec, the one the agent and the
collector use, through steptrace._agent.wire_encode() and wire_decode();
the protocol's constants (MSG_*, WIRE_VERSION) are the agent's too.

The socket is found the way steptraced finds it: --socket, else the
config file's `socket` (with --config), else $STEPTRACE_SOCKET, else
$XDG_RUNTIME_DIR/steptrace/steptraced.sock, else
/tmp/steptrace-<uid>/steptraced.sock.
"""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

from ._agent import (MSG_HELLO, MSG_STATS, MSG_STATUS, MSG_TAIL, MSG_TEXT,
                     WIRE_VERSION, load_yaml, wire_decode, wire_encode)
from ._argv import UsageError, parse_options
from ._paths import service_socket

EXIT_NOT_RUNNING = 3      # `status` of a stopped service (LSB convention)
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 30.0

DAEMON_HELP = """\
usage: steptrace daemon start [--socket PATH] [--config FILE] [--pid-file FILE]
       steptrace daemon stop [--socket PATH] [--config FILE]
       steptrace daemon status [--socket PATH] [--config FILE] [--json]

Drives the steptraced collector service.

  start     start steptraced in the background (steptraced --daemon) unless
            one is already running on the socket; its log goes to the
            config's log_file, else to steptraced.log next to the socket
  stop      stop it (SIGTERM: it writes what it received, then exits)
  status    print its counters: connections, records in and written,
            bytes, records dropped by reason, rotations, write errors,
            and per forward destination sent, queued, dropped,
            reconnects; exit status 3 when it is not running

options:
  --socket PATH   the collector's socket (default: the config's socket,
                  $STEPTRACE_SOCKET, $XDG_RUNTIME_DIR/steptrace/steptraced.sock
                  or /tmp/steptrace-<uid>/steptraced.sock)
  --config FILE   the collector's YAML config (passed to steptraced)
  --pid-file FILE start: write the collector's pid to FILE
  --json          status: the counters as one JSON object

Traced programs log into it with STEPTRACE_SOCKET=PATH.
"""

TAIL_HELP = """\
usage: steptrace tail [--pid N] [--file GLOB] [--socket PATH] [--config FILE]

Follows the live stream of a running collector: every record, as it is
written to a log file, formatted as in the log.  A line
"==> pid N: FILE <==" comes first whenever the record is from another
process or file, so several traced programs can be watched at once.

  --pid N       only records of process N
  --file GLOB   only log files whose path matches the shell pattern GLOB
                (e.g. '*/myproject/.tracer/*')
  --socket PATH the collector's socket (see steptrace daemon --help)

Ctrl-C stops it.  A tail that reads too slowly never slows the collector:
records are skipped instead, and a line on stderr says how many.
"""


class CtlError(Exception):
    """A failure reported in one line (exit status 1 unless given)."""

    def __init__(self, msg, status=1):
        Exception.__init__(self, msg)
        self.status = status


# ---- the connection -----------------------------------------------------

class Connection:
    """A control connection to a running collector."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self._buf = b""
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        # A control connection asks for no ring (ring_bytes 0).
        self.sock.sendall(wire_encode(MSG_HELLO, WIRE_VERSION, os.getpid(),
                                      "steptrace-ctl", 0, 0))
        hello = self.read_message()
        if hello is None or hello[0] != MSG_HELLO:
            self.close()
            raise CtlError("%s did not answer like steptraced" % path)
        self.pid = hello[2]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def read_frame(self):
        """The next frame's messages, or None at the end of the stream."""
        while True:
            try:
                msgs, used = wire_decode(self._buf)
            except ValueError as e:
                raise CtlError("bad frame from the collector: %s"
                               % e) from None
            if used:
                self._buf = self._buf[used:]
                return msgs
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self._buf += chunk

    def read_message(self):
        msgs = self.read_frame()
        return msgs[0] if msgs else None

    def status(self):
        """The collector's counters as a dict {name: int}."""
        token = int(time.time()) & 0xffffffff
        try:
            self.sock.sendall(wire_encode(MSG_STATUS, token))
            msg = self.read_message()
        except socket.timeout:
            raise CtlError("the collector on %s does not answer" % self.path)
        except OSError as e:
            raise CtlError("the collector on %s: %s"
                           % (self.path, e.strerror or e))
        if msg is None or msg[0] != MSG_STATS or msg[1] != token:
            raise CtlError("no status reply from the collector on %s"
                           % self.path)
        return {name.decode("utf-8", "replace"): value
                for name, value in msg[2]}


# ---- socket and config --------------------------------------------------

def _config_socket(config):
    """The `socket` key of the collector's YAML config, or None."""
    if config is None:
        return None
    try:
        data = load_yaml(config)
    except (OSError, ValueError) as e:
        raise CtlError("cannot read %s: %s" % (config, e), status=2)
    if isinstance(data, dict):
        value = data.get("socket")
        if isinstance(value, str) and value:
            return value
    return None


def default_socket():
    """The service's default socket path (docs/COLLECTOR.md section 4)."""
    env = os.environ.get("STEPTRACE_SOCKET")
    if env:
        return env
    return service_socket()


def socket_path(opts):
    return opts.get("socket") or _config_socket(opts.get("config")) or \
        default_socket()


def _connect(path, timeout=10.0):
    """A Connection, or None when nothing listens on path."""
    try:
        return Connection(path, timeout)
    except FileNotFoundError:
        return None
    except ConnectionRefusedError:
        return None
    except socket.timeout:
        raise CtlError("the collector on %s does not answer" % path)
    except OSError as e:
        if e.errno in (errno.ENOTSOCK, errno.ENOENT, errno.ECONNREFUSED):
            return None
        raise CtlError("cannot connect to %s: %s" % (path, e.strerror))


# ---- command lines ------------------------------------------------------

def _fmt_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "bytes" \
                else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%d" % n


def _fmt_uptime(ms):
    s = int(ms // 1000)
    if s < 60:
        return "%ds" % s
    if s < 3600:
        return "%dm %02ds" % (s // 60, s % 60)
    if s < 86400:
        return "%dh %02dm" % (s // 3600, s % 3600 // 60)
    return "%dd %02dh" % (s // 86400, s % 86400 // 3600)


def format_status(path, st):
    """The human form of `daemon status`."""
    g = st.get
    lines = [
        "steptraced on %s: running, pid %d, up %s"
        % (path, g("pid", 0), _fmt_uptime(g("uptime_ms", 0))),
        "  connections      %d accepted, %d open (%d tail), %d refused"
        % (g("connections", 0), g("connections_open", 0),
           g("tail_subscribers", 0), g("refused", 0)),
        "  records in       %d" % g("records_in", 0),
        "  records written  %d (%d not shown at their level)"
        % (g("records_written", 0), g("records_filtered", 0)),
        "  bytes written    %d (%s)"
        % (g("bytes_written", 0), _fmt_bytes(g("bytes_written", 0))),
        "  dropped          write error %d, open error %d, out of memory %d, "
        "lost by agents %d, tail %d"
        % (g("dropped_write", 0), g("dropped_open", 0), g("dropped_nomem", 0),
           g("lost_agent", 0), g("dropped_tail", 0)),
        "  processes ended  by a signal %d, by exec %d, vanished %d "
        "(records cut short %d)"
        % (g("ended_by_signal", 0), g("ended_by_exec", 0), g("vanished", 0),
           g("lost_vanished", 0)),
        "  rotations        %d (%d failed)"
        % (g("rotations", 0), g("rotate_errors", 0)),
        "  write errors     %d" % g("write_errors", 0),
        "  protocol errors  %d" % g("protocol_errors", 0),
        "  pending          %s (peak %s; producers pause at %s, bound %s), "
        "%d paused now, %d pauses"
        % (_fmt_bytes(g("pending_bytes", 0)),
           _fmt_bytes(g("pending_peak", 0)),
           _fmt_bytes(g("pause_threshold_bytes", 0)),
           _fmt_bytes(g("max_pending_bytes", 0)), g("paused", 0),
           g("pauses", 0)),
    ]
    lines += _format_forward(st)
    return "\n".join(lines) + "\n"


def forward_destinations(st):
    """{url: {sent, queued, queued_bytes, dropped, reconnects, connected}}
    from the counters "forward.<url>.<name>" (docs/COLLECTOR.md section 13)."""
    dests = {}
    for key, value in st.items():
        if key.startswith("forward.") and "." in key[8:]:
            url, name = key[8:].rsplit(".", 1)
            dests.setdefault(url, {})[name] = value
    return dests


def _format_forward(st):
    """One line per forward destination, in the order of the counters."""
    lines = []
    for url, d in forward_destinations(st).items():
        g = d.get
        lines.append(
            "  forward          %s: %s, %d sent, %d queued (%s), %d dropped, "
            "%d reconnects"
            % (url, "connected" if g("connected") else "not connected",
               g("sent", 0), g("queued", 0), _fmt_bytes(g("queued_bytes", 0)),
               g("dropped", 0), g("reconnects", 0)))
    return lines


def _find_steptraced():
    env = os.environ.get("STEPTRACED")
    if env:
        return env if os.access(env, os.X_OK) else None
    try:
        from ._collector import find_steptraced
        return find_steptraced()
    except ImportError:
        import shutil
        return shutil.which("steptraced")


def _cmd_start(opts):
    path = socket_path(opts)
    conn = _connect(path)
    if conn is not None:
        pid = conn.pid
        conn.close()
        sys.stderr.write("steptrace: steptraced is already running on %s "
                         "(pid %d)\n" % (path, pid))
        return 0
    exe = _find_steptraced()
    if exe is None:
        raise CtlError("cannot find the steptraced executable: install "
                       "steptrace with pip or set STEPTRACED to its path")
    args = [exe, "--daemon", "--socket", path]
    if opts.get("config"):
        args += ["--config", opts["config"]]
    if opts.get("pid_file"):
        args += ["--pid-file", opts["pid_file"]]
    # The collector's own log: the config's log_file, else a file next to
    # the socket (its directory is private to the user).
    log = os.path.join(os.path.dirname(os.path.abspath(path)),
                       "steptraced.log")
    try:
        os.makedirs(os.path.dirname(log), mode=0o700, exist_ok=True)
        err = open(log, "ab")
    except OSError as e:
        raise CtlError("cannot open %s: %s" % (log, e.strerror))
    with err:
        start = err.tell()
        try:
            r = subprocess.run(args, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err,
                               timeout=_START_TIMEOUT_S, close_fds=True)
        except subprocess.TimeoutExpired:
            raise CtlError("steptraced did not start within %d s; see %s"
                           % (_START_TIMEOUT_S, log))
        except OSError as e:
            raise CtlError("cannot run %s: %s" % (exe, e.strerror))
    if r.returncode != 0:
        why = ""
        try:
            with open(log, "rb") as f:
                f.seek(start)
                lines = f.read().decode("utf-8", "replace").strip()
            why = lines.splitlines()[-1] if lines else ""
        except OSError:
            pass
        raise CtlError("steptraced did not start (%s)"
                       % (why or "exit status %d; see %s"
                          % (r.returncode, log)), status=r.returncode)
    conn = _connect(path)
    pid = conn.pid if conn is not None else 0
    if conn is not None:
        conn.close()
    sys.stdout.write("steptraced started on %s (pid %d)\n"
                     "trace into it with: export STEPTRACE_SOCKET=%s\n"
                     % (path, pid, path))
    return 0


def _is_steptraced(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip() == "steptraced"
    except OSError:
        return not os.path.isdir("/proc")


def _cmd_stop(opts):
    path = socket_path(opts)
    conn = _connect(path)
    if conn is None:
        sys.stderr.write("steptrace: steptraced is not running on %s\n"
                         % path)
        return 0
    pid = conn.pid
    conn.close()
    if pid <= 0 or not _is_steptraced(pid):
        raise CtlError("the collector on %s reports pid %d, which is not a "
                       "steptraced process; not stopping it" % (path, pid))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    except PermissionError:
        raise CtlError("not allowed to stop steptraced (pid %d)" % pid)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _alive(pid):
            sys.stdout.write("steptraced on %s stopped (pid %d)\n"
                             % (path, pid))
            return 0
        time.sleep(0.05)
    raise CtlError("steptraced (pid %d) is still writing after %d s"
                   % (pid, _STOP_TIMEOUT_S))


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not os.path.isdir("/proc")


def _cmd_status(opts):
    path = socket_path(opts)
    conn = _connect(path)
    if conn is None:
        if opts.get("json"):
            sys.stdout.write(json.dumps({"running": False, "socket": path})
                             + "\n")
        else:
            sys.stdout.write("steptraced is not running on %s\n" % path)
        return EXIT_NOT_RUNNING
    try:
        st = conn.status()
    finally:
        conn.close()
    if opts.get("json"):
        st = dict(st, running=True, socket=path)
        sys.stdout.write(json.dumps(st, sort_keys=True) + "\n")
    else:
        sys.stdout.write(format_status(path, st))
    return 0


def daemon_main(argv):
    """`steptrace daemon ...`; returns the exit status."""
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(DAEMON_HELP)
        return 0 if argv else 2
    cmd = argv[0]
    valued = {"--socket": "socket", "--config": "config"}
    flags = {}
    if cmd == "start":
        valued["--pid-file"] = "pid_file"
    elif cmd == "status":
        flags["--json"] = "json"
    elif cmd != "stop":
        raise UsageError("unknown daemon command %r: use start, stop or "
                         "status" % cmd)
    opts, rest = parse_options(argv[1:], valued, flags, DAEMON_HELP,
                               "steptrace daemon")
    if rest:
        raise UsageError("unexpected argument %r" % rest[0])
    return {"start": _cmd_start, "stop": _cmd_stop,
            "status": _cmd_status}[cmd](opts)


def _tail_pid(text):
    try:
        pid = int(text, 10)
    except ValueError:
        pid = 0
    if pid <= 0:
        raise UsageError("invalid --pid value %r: use a process id" % text)
    return pid


def _write(stream, text):
    stream.write(text)
    stream.flush()


def tail_main(argv):
    """`steptrace tail ...`; returns the exit status."""
    opts, rest = parse_options(argv, {"--pid": "pid", "--file": "file",
                                      "--socket": "socket",
                                      "--config": "config"},
                               {}, TAIL_HELP, "steptrace tail")
    if rest:
        raise UsageError("unexpected argument %r" % rest[0])
    pid = _tail_pid(opts["pid"]) if "pid" in opts else 0
    path = socket_path(opts)
    conn = _connect(path)
    if conn is None:
        raise CtlError("steptraced is not running on %s (start it with "
                       "steptrace daemon start)" % path)
    out = sys.stdout
    last = None
    try:
        conn.sock.settimeout(None)
        conn.sock.sendall(wire_encode(MSG_TAIL, pid, opts.get("file", "")))
        while True:
            msgs = conn.read_frame()
            if msgs is None:
                _write(sys.stderr, "steptrace: the collector closed the "
                       "stream\n")
                return 0
            for m in msgs:
                if m[0] != MSG_TEXT:
                    continue
                text = m[3].decode("utf-8", "replace")
                if m[1] == 0:
                    _write(sys.stderr, "steptrace: %s" % text)
                    continue
                source = (m[1], m[2])
                if source != last:
                    if last is not None:
                        out.write("\n")
                    out.write("==> pid %d: %s <==\n"
                              % (m[1], m[2].decode("utf-8", "replace")))
                    last = source
                out.write(text)
            out.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `steptrace tail | head`: the reader is gone; keep the final
        # flush at exit from failing too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except OSError as e:
        raise CtlError("reading from %s: %s" % (path, e.strerror or e))
    finally:
        conn.close()
