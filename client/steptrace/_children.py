"""Whole process trees (docs/CLI.md section 10): every Python process a
traced run starts is traced too, with the same settings, each into its own
file, through the same collector.

How a child is followed:

- fork (os.fork, multiprocessing's fork start method, the forkserver's
  children): the child goes on in its parent's region (agent/threads.c,
  region.c); the agent starts a new file for it, which begins with the
  origin line.
- a new program (subprocess, multiprocessing's spawn and the forkserver
  itself, os.posix_spawn[p], os.exec*): while a Tracer that follows
  children is active, the functions that start programs add two
  variables to the environment of a program that is Python (or a shell
  or a launcher such as env or timeout, which may start one): PYTHONPATH
  gains the `_boot` directory of this package, whose sitecustomize starts
  tracing at the child's start-up, and STEPTRACE_CHILD carries the
  settings and where the child comes from.  Before the child's own code
  runs, the boot code takes STEPTRACE_CHILD out of os.environ, puts
  PYTHONPATH back as it was, takes `_boot` out of sys.path and imports the
  sitecustomize it shadowed.  Nothing is written anywhere for this.

A Python that ignores PYTHONPATH (-E, -I) or cannot import steptrace (a
version this build is not for) runs untraced and unchanged.  The parent's
log says at which step it started which process; each child's log begins
with one line naming its pid, its parent's pid, and the parent's file and
step.
"""
import json
import os
import re
import sys

from . import _agent

ENV = "STEPTRACE_CHILD"
_PKGDIR = os.path.dirname(os.path.abspath(__file__))
BOOT = os.path.join(_PKGDIR, "_boot")

# The regions whose tracers follow children, latest last: (region, tracer).
_following = []
# Processes started while following, for `steptrace run`'s last line.
started = 0
# Where a fork child comes from, computed in the parent just before fork.
_fork_origin = None
# This process's own origin line, when a traced run started it.
_my_origin = None

_PYTHON_NAME = re.compile(r"python[0-9.]*[a-z]?$")
# Programs that start the program named in their arguments, with the
# environment they were given.
_SHELLS = frozenset(("sh", "bash", "dash", "zsh", "ksh", "ash"))
_LAUNCHERS = frozenset(("env", "nice", "nohup", "timeout", "setsid",
                        "stdbuf", "taskset", "ionice", "chrt", "time",
                        "xargs", "exec"))


def follow(tracer, region):
    """`region` (of `tracer`) follows children until unfollow()."""
    _install()
    _following.append((region, tracer))


def unfollow(region):
    for i in range(len(_following) - 1, -1, -1):
        if _following[i][0] is region:
            del _following[i]
            return


def _active():
    """(region, tracer) that a process started now belongs to, or None:
    the calling thread's region when it follows, else the latest."""
    if not _following:
        return None
    current = _agent.current_region()
    for item in reversed(_following):
        if item[0] is current:
            return item
    return _following[-1]


def _settings(tracer):
    """The child's Tracer keyword arguments (JSON-able)."""
    s = {
        "filter_workspace": tracer.filter_workspace,
        "workspace": list(tracer.workspaces),
        "log_dir": os.path.abspath(tracer.log_dir),
        "traceable_functions": tracer.traceable_functions,
        "log_level": int(tracer.log_level),
        "log_output": int(tracer.log_output),
        "variable_mode": int(tracer.variable_mode),
        "repr_limit": tracer.repr_limit,
        "max_log_bytes": tracer.max_log_bytes,
        "max_log_files": tracer.max_log_files,
        "on_full": tracer.on_full,
    }
    # Only when set: a child whose steptrace predates it still starts.
    if tracer.log_format is not None:
        s["log_format"] = tracer.log_format
    if hasattr(tracer, "await_threshold_ms"):
        s["trace_async"] = True
        s["await_threshold_ms"] = tracer.await_threshold_ms
        s["trace_tasks"] = tracer.trace_tasks
    return s


def _place(region):
    """(step, log file or None) of `region` now: the step whose line is
    running (a step's record is written when its line is reached)."""
    if region is None:
        return 0, None
    try:
        steps, _, path = _agent.place(region, True)
    except Exception:
        return 0, None
    return steps, path


def _origin_text(child_pid, how, parent_pid, step, path):
    """The first line of a child's files."""
    if how == "exec'd" and child_pid == parent_pid:
        where = (" at step %d of %s" % (step, path) if path else
                 " at step %d" % step if step else "")
        return ("process %d called exec%s: this is the program it started"
                % (child_pid, where))
    text = "process %d was %s by process %d" % (child_pid, how, parent_pid)
    if path:
        return text + " at step %d of %s" % (step, path)
    if step:
        return text + " at step %d" % step
    return text


# ---- which programs are followed ------------------------------------------

def _fs(path):
    return os.fsdecode(path) if isinstance(path, bytes) else str(path)


def _follows(path, argv=()):
    """Is the program at `path`, run with `argv`, one to hand the variables
    to: Python, a Python script (#! line), a shell (whose commands may
    start Python), or a launcher (env, nice, timeout, ...) whose arguments
    name one of those?"""
    try:
        path = _fs(path)
    except Exception:
        return False
    names = [os.path.basename(path)]
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        real = path
    names.append(os.path.basename(real))
    for name in names:
        if _PYTHON_NAME.match(name) or name in _SHELLS:
            return True
    if any(name in _LAUNCHERS for name in names):
        return _launches(argv)
    try:
        if real == os.path.realpath(sys.executable):
            return True
        with open(path, "rb") as f:
            head = f.read(256)
    except (OSError, ValueError):
        return False
    if not head.startswith(b"#!"):
        return False
    line = head[2:].split(b"\n", 1)[0].split()
    words = [os.path.basename(w).decode("latin-1") for w in line]
    return any(_PYTHON_NAME.match(w) or w in _SHELLS for w in words)


def _launches(argv):
    """Do a launcher's arguments name a program that is followed?  (`env`
    alone prints the environment: it gets nothing.)"""
    try:
        words = [_fs(a) for a in list(argv)[1:9]]
    except Exception:
        return False
    for i, word in enumerate(words):
        if not word or word.startswith("-") or "=" in word:
            continue
        if _follows(word if os.sep in word else _which(word) or word,
                    words[i:]):
            return True
    return False


def _which(name):
    import shutil
    try:
        return shutil.which(name)
    except Exception:
        return None


def _child_env(env, what, region, tracer, as_list=False):
    """`env` (a mapping, a list of b"K=V", or None for os.environ) with the
    variables added, in the same form (None: a list with `as_list`, else
    a dict)."""
    step, path = _place(region)
    spec = {"settings": _settings(tracer), "ppid": os.getpid(),
            "step": step, "file": path, "how": what,
            "socket": os.environ.get("STEPTRACE_SOCKET"), "pkg":
            os.path.dirname(_PKGDIR), "version": list(sys.version_info[:2])}
    if env is None:
        env = os.environ
        if as_list:
            env = [os.fsencode(k) + b"=" + os.fsencode(v)
                   for k, v in os.environ.items()]
    if isinstance(env, (list, tuple)):
        items = []
        old_path = None
        for item in env:
            b = item if isinstance(item, bytes) else os.fsencode(item)
            key, _, value = b.partition(b"=")
            if key == b"PYTHONPATH":
                old_path = value
            elif key != ENV.encode():
                items.append(b)
        spec["pythonpath"] = (None if old_path is None
                              else os.fsdecode(old_path))
        new_path = os.fsencode(BOOT)
        if old_path:
            new_path += b":" + old_path
        items.append(b"PYTHONPATH=" + new_path)
        items.append(ENV.encode() + b"=" + json.dumps(spec).encode())
        return items
    env = dict(env)
    old_path = env.get("PYTHONPATH")
    if isinstance(old_path, bytes):
        old_path = os.fsdecode(old_path)
    spec["pythonpath"] = old_path
    env["PYTHONPATH"] = BOOT + (":" + old_path if old_path else "")
    env[ENV] = json.dumps(spec)
    return env


def _note_started(region, pid, argv, how="started"):
    global started
    started += 1
    if region is None:
        return
    try:
        words = [_fs(a) for a in argv][:8]
    except Exception:
        words = []
    command = " ".join(words)
    if len(command) > 200:
        command = command[:200] + "..."
    text = "%s process %d" % (how, pid)
    if command:
        text += ": " + command
    try:
        _agent.note(region, text, True)
    except Exception:
        pass


# ---- the functions that start programs ------------------------------------

_real = {}


def _wrap_fork_exec(real):
    def fork_exec(*args):
        item = _active()
        if item is None or len(args) < 6 or \
                not any(_follows(p, args[0] or ()) for p in (args[1] or ())):
            return real(*args)
        args = list(args)
        try:
            args[5] = _child_env(args[5], "started", *item, as_list=True)
        except Exception:
            return real(*args)
        pid = real(*args)
        _note_started(item[0], pid, args[0] or ())
        return pid
    fork_exec._steptrace_follow = True
    return fork_exec


def _wrap_posix_spawn(real, search):
    def posix_spawn(path, argv, env, *args, **kwargs):
        item = _active()
        target = path
        if search and os.sep not in _fs(path):
            target = _which(_fs(path)) or path
        if item is None or not _follows(target, argv):
            return real(path, argv, env, *args, **kwargs)
        try:
            env = _child_env(env, "started", *item)
        except Exception:
            pass
        pid = real(path, argv, env, *args, **kwargs)
        _note_started(item[0], pid, argv)
        return pid
    posix_spawn._steptrace_follow = True
    return posix_spawn


def _exec_origin_env(env, item):
    try:
        return _child_env(env, "exec'd", *item)
    except Exception:
        return env


def _wrap_execve(real):
    def execve(path, argv, env):
        item = _active()
        if item is not None and _follows(path, argv):
            env = _exec_origin_env(env, item)
        return real(path, argv, env)
    execve._steptrace_follow = True
    return execve


def _wrap_execv(real_execv, next_execve):
    def execv(path, argv):
        item = _active()
        if item is not None and _follows(path, argv):
            return next_execve(path, argv, _exec_origin_env(None, item))
        return real_execv(path, argv)
    execv._steptrace_follow = True
    return execv


def _wrap_fork(real):
    def fork():
        pid = real()
        # A process with no file of its own (a forkserver) writes none for
        # this: its children's lines say where it comes from instead.
        if pid > 0 and _fork_origin is not None and _fork_origin[2]:
            region = _agent.current_region()
            if region is not None:
                _note_started(region, pid, (), "forked")
        return pid
    fork._steptrace_follow = True
    return fork


def _before_fork():
    """In the parent, before any fork: where a child would come from."""
    global _fork_origin
    region = _agent.current_region()
    if region is None:
        _fork_origin = None
        return
    step, path = _place(region)
    _fork_origin = (os.getpid(), step, path)


def _after_fork_child():
    global _my_origin, started
    origin = _fork_origin
    started = 0
    region = _agent.current_region()
    if origin is None or region is None:
        return
    ppid, step, path = origin
    # A parent without a file (a forkserver) has no step to point at.
    text = _origin_text(os.getpid(), "forked", ppid, step if path else 0,
                        path)
    if not path and _my_origin:
        # The parent wrote nothing (a forkserver): where it comes from.
        text += " (%s)" % _my_origin
    _my_origin = text
    try:
        _agent.set_origin(region, text)
    except Exception:
        pass


def _install():
    """Wraps the functions that start programs (once)."""
    if _real:
        return
    import _posixsubprocess
    _real["fork_exec"] = _posixsubprocess.fork_exec
    wrapped = _wrap_fork_exec(_posixsubprocess.fork_exec)
    _posixsubprocess.fork_exec = wrapped
    # 3.11+ binds it at import.
    sub = sys.modules.get("subprocess")
    if sub is not None and getattr(sub, "_fork_exec", None) is \
            _real["fork_exec"]:
        sub._fork_exec = wrapped
    for name, search in (("posix_spawn", False), ("posix_spawnp", True)):
        real = getattr(os, name, None)
        if real is not None and not getattr(real, "_steptrace_follow", False):
            setattr(os, name, _wrap_posix_spawn(real, search))
    next_execve = os.execve
    os.execve = _wrap_execve(next_execve)
    os.execv = _wrap_execv(os.execv, next_execve)


def _install_fork_hooks():
    if hasattr(os, "register_at_fork"):
        # Registered after _collector's: before-hooks run in reverse
        # order, so this one runs while the sender still runs.
        os.register_at_fork(before=_before_fork,
                            after_in_child=_after_fork_child)
    real = os.fork
    if not getattr(real, "_steptrace_follow", False):
        os.fork = _wrap_fork(real)


_install_fork_hooks()


# ---- in the child -----------------------------------------------------------

def start_child(spec):
    """Called by _boot/sitecustomize.py at the child's start-up: traces the
    rest of the process with the parent's settings."""
    settings = dict(spec.get("settings") or {})
    if spec.get("socket"):
        from . import _collector
        _collector.inherited_socket = spec["socket"]
    trace_async = settings.pop("trace_async", False)
    if trace_async:
        from .async_tracer import AsyncTracer
        tracer = AsyncTracer(follow_children=True, **settings)
    else:
        from .tracer import Tracer
        tracer = Tracer(follow_children=True, **settings)
    tracer.__enter__()
    stack = tracer._stack()
    active = stack[-1] if stack else None
    global _my_origin
    _my_origin = _origin_text(
        os.getpid(), spec.get("how") or "started",
        int(spec.get("ppid") or 0), int(spec.get("step") or 0),
        spec.get("file"))
    if active is not None:
        try:
            _agent.set_origin(active.region, _my_origin)
        except Exception:
            pass

    def end():
        try:
            tracer.__exit__(None, None, None)
        except Exception:
            pass

    import atexit
    atexit.register(end)
    return tracer
