"""The public Tracer API (docs/API.md sections 3 and 4)."""
import functools
import inspect
import itertools
import os
import sys
import sysconfig
import threading
from enum import IntEnum

from . import _agent
from ._collector import ensure_connected
# After _collector: its fork hooks must run after _children's (which asks
# the collector where the parent's log is while the sender still runs).
from . import _children  # noqa: E402


class LogLevel(IntEnum):
    """How much is written: DEBUG adds ancestors; ERROR only exceptions."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    SILENT = 50


class LogOutput(IntEnum):
    """Where records go."""

    FILE = 1
    STDOUT = 2
    STDERR = 3
    FILE_STDOUT = 4
    FILE_STDERR = 5


class VariableMode(IntEnum):
    """Which variables each record shows."""

    ALL = 1
    CHANGED = 2
    NONE = 3


_OUTPUT_BITS = {
    LogOutput.FILE: 1,
    LogOutput.STDOUT: 2,
    LogOutput.STDERR: 4,
    LogOutput.FILE_STDOUT: 1 | 2,
    LogOutput.FILE_STDERR: 1 | 4,
}
_PKGDIR = os.path.dirname(os.path.abspath(__file__))
_tracer_ids = itertools.count(1)
_ON_FULL = ("block", "drop")
# log_format -> the agent's ST_FORMAT_* bits (docs/STEP-STORE.md).
_LOG_FORMATS = {"text": 1, "steps": 2, "both": 3}


def _coerce_enum(cls, value, param):
    """Accepts a member, its int value or its name (any case)."""
    if isinstance(value, str) and not isinstance(value, IntEnum):
        member = cls.__members__.get(value.strip().upper())
        if member is not None:
            return member
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return cls(value)
        except ValueError:
            pass
    valid = ", ".join("%s (%d)" % (m.name, m.value) for m in cls)
    raise ValueError("invalid %s %r: valid values are %s" % (param, value, valid))


def _excluded_paths():
    """Directories never traced: the standard library and site packages."""
    paths = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(os.path.realpath(p))
            paths.add(os.path.abspath(p))
    for p in sys.path:
        if p and os.path.basename(p) in ("site-packages", "dist-packages"):
            paths.add(os.path.abspath(p))
    return tuple(sorted(paths))


def _caller_workspace(depth):
    """The directory of the file `depth` frames up, where the Tracer is made."""
    try:
        filename = sys._getframe(depth + 1).f_code.co_filename
    except ValueError:
        filename = "<unknown>"
    if filename and not filename.startswith("<"):
        return os.path.dirname(os.path.abspath(filename))
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main_file:
        return os.path.dirname(os.path.abspath(main_file))
    return os.getcwd()


class Tracer:
    """Records every executed line of the user's code in a region.

    Use it as a context manager (``with Tracer(): ...``, whose callees are
    traced) or as a decorator (``@Tracer().trace``).  The positional order
    of python-steptrace 0.3.0 is kept.
    """

    def __init__(self, filter_workspace=True, log_dir=".tracer",
                 traceable_functions=None, log_level=LogLevel.INFO,
                 log_output=LogOutput.FILE, variable_mode=VariableMode.ALL,
                 _workspace_override=None, *, tracable_functions=None,
                 repr_limit=1000, max_log_bytes=100 * 1024 * 1024,
                 max_log_files=10, on_full="block", workspace=None,
                 follow_children=False, log_format=None):
        if traceable_functions is None:
            traceable_functions = tracable_functions
        self.filter_workspace = bool(filter_workspace)
        self.log_dir = os.fspath(log_dir)
        self.traceable_functions = (
            None if traceable_functions is None
            else [str(f) for f in traceable_functions])
        self.log_level = _coerce_enum(LogLevel, log_level, "log_level")
        self.log_output = _coerce_enum(LogOutput, log_output, "log_output")
        self.variable_mode = _coerce_enum(VariableMode, variable_mode,
                                          "variable_mode")
        if isinstance(repr_limit, bool) or not isinstance(repr_limit, int) \
                or repr_limit < 1:
            raise ValueError("invalid repr_limit %r: use a whole number of "
                             "characters, 1 or more" % (repr_limit,))
        if isinstance(max_log_bytes, bool) or not isinstance(max_log_bytes, int) \
                or max_log_bytes < 0:
            raise ValueError("invalid max_log_bytes %r: use a byte count, 0 "
                             "to disable rotation" % (max_log_bytes,))
        if isinstance(max_log_files, bool) or not isinstance(max_log_files, int) \
                or max_log_files < 0:
            raise ValueError("invalid max_log_files %r: use a whole number, 0 "
                             "or more" % (max_log_files,))
        if on_full not in _ON_FULL:
            raise ValueError("invalid on_full %r: valid values are 'block', "
                             "'drop'" % (on_full,))
        # None: the collector's default (its config's log_format, else
        # text).
        if log_format is not None and (
                not isinstance(log_format, str) or
                log_format.strip().lower() not in _LOG_FORMATS):
            raise ValueError("invalid log_format %r: valid values are "
                             "'text', 'steps', 'both'" % (log_format,))
        self.log_format = (None if log_format is None
                           else log_format.strip().lower())
        self.repr_limit = repr_limit
        self.max_log_bytes = max_log_bytes
        self.max_log_files = max_log_files
        self.on_full = on_full
        # Python processes started inside a region are traced too
        # (_children.py); `steptrace run` turns it on.
        self.follow_children = bool(follow_children)
        # The directories whose files are traced (filter_workspace):
        # `workspace` (a directory or several), else the directory of the
        # file that makes the Tracer.  Real paths: membership is decided on
        # the real path of each code's file.
        if workspace is None:
            dirs = [_workspace_override or _caller_workspace(1)]
        elif isinstance(workspace, (str, bytes, os.PathLike)):
            dirs = [workspace]
        else:
            dirs = list(workspace)
        if not dirs:
            raise ValueError("invalid workspace []: name at least one "
                             "directory")
        self.workspaces = tuple(os.path.realpath(os.fsdecode(d))
                                for d in dirs)
        self.workspace = self.workspaces[0]
        self._id = next(_tracer_ids)
        self._local = threading.local()

    @property
    def tracable_functions(self):
        """0.3.0 spelling of traceable_functions."""
        return self.traceable_functions

    # -- regions --------------------------------------------------------

    def _new_region(self):
        """The agent's state for one region, or None when nothing is
        recorded (SILENT)."""
        if self.log_level >= LogLevel.SILENT:
            return None
        outputs = _OUTPUT_BITS[self.log_output]
        if outputs & 1 and not ensure_connected():
            outputs &= ~1
        functions = (None if self.traceable_functions is None
                     else tuple(self.traceable_functions))
        return _agent.region(
            tracer_id=self._id,
            log_dir=os.path.abspath(self.log_dir),
            level=int(self.log_level),
            var_mode=int(self.variable_mode),
            outputs=outputs,
            repr_limit=self.repr_limit,
            max_log_bytes=self.max_log_bytes,
            max_log_files=self.max_log_files,
            workspace=self.workspaces if self.filter_workspace else None,
            excluded=_excluded_paths(),
            pkgdir=_PKGDIR,
            cwd=os.getcwd(),
            functions=functions,
            hidden_types=(Tracer,),
            on_full_drop=self.on_full == "drop",
            formats=self._formats(outputs),
            **self._region_options()
        )

    def _formats(self, outputs):
        """The files of the tracer's regions: its log_format, else the
        collector's default (the FILE bit of outputs says one is
        connected)."""
        if self.log_format is not None:
            self._formats_used = _LOG_FORMATS[self.log_format]
        else:
            self._formats_used = (_agent.collector_formats()
                                  if outputs & 1 else 0) or 1
        return self._formats_used

    def _region_options(self):
        """Extra options of the agent's region (AsyncTracer adds some)."""
        return {}

    def _begin(self):
        """Starts a region in the calling thread; returns its state."""
        region = self._new_region()
        if region is None:
            return None
        if self.follow_children:
            _children.follow(self, region)
        return _Active(region).resume()

    def _end(self, active):
        """Ends a region: every record is written when this returns."""
        if active is None:
            return
        if self.follow_children:
            _children.unfollow(active.region)
        active.pause()
        errors, message, lost = _agent.stop(active.region)
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name, None)
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        _report_region_end(errors, message, lost)

    def __enter__(self):
        stack = self._stack()
        stack.append(self._begin())
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        stack = self._stack()
        if stack:
            self._end(stack.pop())
        return False

    def _stack(self):
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def trace(self, func):
        """Decorator: traces each call of `func` as a region of its own.

        Works on plain functions, generator functions and coroutine
        functions (for the last two, only the function's own resumptions
        are recorded, not its consumer's code in between); keeps the
        function's metadata (functools.wraps); re-entrant: a call made
        inside a traced call is part of that call's region.
        """
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def gen_wrapper(*args, **kwargs):
                return (yield from _drive(self, func(*args, **kwargs)))
            return gen_wrapper

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def coro_wrapper(*args, **kwargs):
                return await _Driven(self, func(*args, **kwargs))
            return coro_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if self._stack():
                return func(*args, **kwargs)
            with self:
                return func(*args, **kwargs)

        return wrapper


def _report_region_end(errors, message, lost):
    """One line on stderr when the end of a region went wrong.  Records
    lost along the way are not repeated here when the collector confirmed
    the region's end: their count is then written in the log itself."""
    if not errors:
        return
    parts = [message] if message else []
    if lost:
        parts.append("%d records were not written" % lost)
    if not parts:
        parts.append("%d trace writes failed" % errors)
    try:
        sys.stderr.write("steptrace: %s\n" % "; ".join(parts))
    except Exception:
        pass


# threading starts its threads through this module attribute (the name
# changed in 3.13).
_START_NAME = ("_start_joinable_thread"
               if hasattr(threading, "_start_joinable_thread")
               else "_start_new_thread")
_start_patch_depth = 0
_original_start = None


def _traced_start(function, *args, **kwargs):
    """threading's thread starter while a region is active: a thread started
    by a thread that is inside the region is traced from its first line."""
    region = _agent.current_region()
    if region is not None:
        inner = function

        def function(*a, **k):
            _agent.attach_thread(region)
            return inner(*a, **k)

    return _original_start(function, *args, **kwargs)


def _patch_thread_start():
    global _start_patch_depth, _original_start
    if _start_patch_depth == 0:
        _original_start = getattr(threading, _START_NAME)
        setattr(threading, _START_NAME, _traced_start)
    _start_patch_depth += 1


def _unpatch_thread_start():
    global _start_patch_depth
    _start_patch_depth -= 1
    if _start_patch_depth == 0:
        setattr(threading, _START_NAME, _original_start)


class _Active:
    """A region being recorded in this thread, and what it displaced: the
    previous trace function and active region."""

    __slots__ = ("region", "prev_trace", "prev_region")

    def __init__(self, region):
        self.region = region
        self.prev_trace = None
        self.prev_region = None

    def resume(self):
        self.prev_trace = sys.gettrace()
        _patch_thread_start()
        self.prev_region = _agent.start(self.region)
        return self

    def pause(self):
        _agent.pause(self.prev_region)
        _unpatch_thread_start()
        if self.prev_region is None:
            # Restore a debugger's or coverage's trace function.
            sys.settrace(self.prev_trace)
        self.prev_region = None


def _drive(tracer, gen):
    """Runs generator (or coroutine) `gen` to its end as one region,
    recording only while it runs: between two resumptions the consumer's
    own code is not part of the region.  Values, sent values, thrown
    exceptions and the return value pass through unchanged."""
    if tracer._stack():
        # Already inside a traced call of this tracer: part of that region.
        return (yield from _iterate(gen))
    region = tracer._new_region()
    if region is None:
        return (yield from _iterate(gen))
    active = _Active(region)
    stack = tracer._stack()
    send, throw = None, None
    try:
        while True:
            stack.append(None)
            active.resume()
            try:
                if throw is not None:
                    value = gen.throw(throw)
                else:
                    value = gen.send(send)
            except StopIteration as stop:
                return stop.value
            finally:
                active.pause()
                stack.pop()
            try:
                send, throw = (yield value), None
            except GeneratorExit:
                # close(): the generator's own clean-up (finally blocks)
                # runs now, and is recorded.
                stack.append(None)
                active.resume()
                try:
                    gen.close()
                finally:
                    active.pause()
                    stack.pop()
                raise
            except BaseException as exc:  # noqa: B902 - passed through
                send, throw = None, exc
    finally:
        _report_region_end(*_agent.stop(region))


def _iterate(gen):
    """What `yield from` takes for a generator or a coroutine object."""
    return gen.__await__() if inspect.iscoroutine(gen) else gen


class _Driven:
    """Awaitable running a coroutine through _drive()."""

    __slots__ = ("_tracer", "_coro")

    def __init__(self, tracer, coro):
        self._tracer = tracer
        self._coro = coro

    def __await__(self):
        return _drive(self._tracer, self._coro)
