"""Finding or starting the collector (steptraced) for this process tree.

With STEPTRACE_SOCKET set, records go to the collector listening there.
Without it, the service on the default socket (docs/COLLECTOR.md sections 2
and 4: $XDG_RUNTIME_DIR/steptrace/steptraced.sock, else
/tmp/steptrace-<uid>/steptraced.sock) is used when one answers there.
Otherwise (or when the named one does not answer), a private collector is
started on a private socket.  The socket used is exported as
STEPTRACE_SOCKET so that child processes log into it too; a private
collector exits by itself once its last client is gone.
"""
import atexit
import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading

from . import _agent
from ._paths import service_socket

_lock = threading.Lock()
# The collector of the run that started this process (_children.py), for
# a child whose environment lost STEPTRACE_SOCKET (env={}).
inherited_socket = None


def _socket_path():
    return os.environ.get("STEPTRACE_SOCKET") or inherited_socket
_IDLE_EXIT_S = "2"
_READY_TIMEOUT_S = 10.0


class CollectorError(Exception):
    """The collector could not be reached or started."""


def _warn(msg):
    try:
        sys.stderr.write("steptrace: %s\n" % msg)
        sys.stderr.flush()
    except Exception:
        pass


def find_program(name, env_var):
    """Returns the path of one of steptrace's executables (steptraced,
    steptrace-read), or None: $env_var when set, else where the package's
    installation put it, else on PATH."""
    env = os.environ.get(env_var)
    if env:
        return env if os.access(env, os.X_OK) else None
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(sysconfig.get_path("scripts"), name),
        os.path.join(sys.prefix, "bin", name),
        # prefix/lib/pythonX.Y/site-packages/steptrace -> prefix/bin
        os.path.join(here, "..", "..", "..", "..", "bin", name),
        os.path.join(here, "..", "..", "..", "..", "..", "bin", name),
    ]
    # Beside the steptraced named by STEPTRACED (a build's stage).
    daemon = os.environ.get("STEPTRACED")
    if daemon and name != "steptraced":
        candidates.insert(0, os.path.join(os.path.dirname(daemon), name))
    for c in candidates:
        if os.access(c, os.X_OK):
            return os.path.abspath(c)
    return shutil.which(name)


def find_steptraced():
    """Returns the path of the steptraced executable, or None."""
    return find_program("steptraced", "STEPTRACED")


def _program():
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def _start_private():
    exe = find_steptraced()
    if exe is None:
        raise CollectorError(
            "cannot find the steptraced executable: install steptrace with pip "
            "or set STEPTRACED to its path")
    tmpdir = tempfile.mkdtemp(prefix="steptrace-")
    sock = os.path.join(tmpdir, "steptraced.sock")
    # --daemon returns once the collector listens, and the collector is then
    # nobody's child: the traced program's os.wait() never sees it.  Its
    # stderr is a file of its own, so that it holds none of the program's
    # streams open (a pipe reader would wait for it) and a start failure
    # can still be reported.
    with tempfile.TemporaryFile() as err:
        try:
            r = subprocess.run(
                [exe, "--socket", sock, "--idle-exit", _IDLE_EXIT_S,
                 "--private", "--daemon"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, timeout=_READY_TIMEOUT_S, close_fds=True)
        except (OSError, subprocess.TimeoutExpired) as e:
            _rmdir(tmpdir)
            raise CollectorError("cannot start %s: %s" % (exe, e)) from None
        if r.returncode != 0:
            err.seek(0)
            why = err.read().decode("utf-8", "replace").strip().splitlines()
            _rmdir(tmpdir)
            raise CollectorError(
                "the private collector did not start (%s)"
                % (why[-1] if why else "exit status %d" % r.returncode))
    return sock


def _rmdir(path):
    try:
        os.rmdir(path)
    except OSError:
        pass


def ensure_connected():
    """Connects the agent to a collector, starting a private one if needed.

    Returns True when connected; on failure writes one warning to stderr
    and returns False (file records are then counted as lost).
    """
    with _lock:
        if _agent.connected():
            return True
        path = _socket_path()
        if path:
            try:
                _agent.connect(path, _program())
                return True
            except (ConnectionError, OSError) as e:
                _warn("%s; starting a private collector instead (start "
                      "steptraced there or unset STEPTRACE_SOCKET)" % e)
        else:
            # A service started with `steptrace daemon start`: used when it
            # answers; none there (or a stale socket) is no error.
            service = service_socket()
            if os.path.exists(service):
                try:
                    _agent.connect(service, _program())
                    os.environ["STEPTRACE_SOCKET"] = service
                    return True
                except (ConnectionError, OSError):
                    pass
        try:
            path = _start_private()
            _agent.connect(path, _program())
        except (CollectorError, ConnectionError, OSError) as e:
            _warn("%s; file output is disabled for this run" % e)
            return False
        os.environ["STEPTRACE_SOCKET"] = path
        return True


def _after_fork_child():
    _agent.after_fork_child()


def reconnect():
    """Called by the agent (from inside its hook, at most once a second)
    when the collector connection is gone: connect to STEPTRACE_SOCKET
    again (a restarted collector), else start a private collector.  Quiet:
    the agent has already said once that the connection was lost."""
    path = _socket_path()
    if path:
        try:
            _agent.connect(path, _program())
            return
        except (ConnectionError, OSError):
            pass
    try:
        path = _start_private()
        _agent.connect(path, _program())
    except (CollectorError, ConnectionError, OSError):
        return
    os.environ["STEPTRACE_SOCKET"] = path


_agent.set_reconnect(reconnect)


def _install_exit_flush():
    """os._exit ends a process without unwinding, so a region in progress
    (a forked multiprocessing child runs its target and calls os._exit)
    would lose what is buffered: flush it first, then exit as asked."""
    real_exit = os._exit
    if getattr(real_exit, "_steptrace_flush", False):
        return

    @functools.wraps(real_exit)
    def _exit(status):
        try:
            _agent.exit_flush()
        except BaseException:  # noqa: B902 - never stand in the way
            pass
        real_exit(status)

    _exit._steptrace_flush = True
    os._exit = _exit


_install_exit_flush()


def _install_exec_note():
    """os.exec* replaces the process: its records are in the collector's
    ring already, and a note in the ring lets the collector write, in the
    log of a region left open, that the process called exec (rather than
    that it vanished).  Every os.exec* function goes through os.execv or
    os.execve."""
    for name in ("execv", "execve"):
        real = getattr(os, name, None)
        if real is None or getattr(real, "_steptrace_note", False):
            continue
        os.__dict__[name] = _exec_wrapper(real)


def _exec_wrapper(real):
    @functools.wraps(real)
    def wrapper(path, *args, **kwargs):
        try:
            _agent.exec_note(path if isinstance(path, (str, bytes))
                             else str(path))
        except BaseException:  # noqa: B902 - never stand in the way
            pass
        try:
            return real(path, *args, **kwargs)
        except BaseException:
            # It did not happen: the process goes on.
            try:
                _agent.exec_note(None)
            except BaseException:  # noqa: B902
                pass
            raise

    wrapper._steptrace_note = True
    return wrapper


_install_exec_note()

# At exit, what is queued is sent and the connection closed in order (the
# collector sees an end, not a reset).
atexit.register(_agent.close)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_agent.before_fork,
                        after_in_child=_after_fork_child)
