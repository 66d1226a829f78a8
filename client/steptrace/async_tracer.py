"""Asyncio tracing (docs/API.md section 8, docs/LOG-FORMAT.md section 9).

AsyncTracer is a Tracer that also writes async records: every coroutine
whose code is in the workspace is followed automatically (COROUTINE START /
END, one AWAIT START / END per await that waits, TASK CREATED / DONE for
tasks created from traced code).  The explicit helpers of python-steptrace
0.3.0 are kept; they add nothing twice: the automatic records already
cover what they wrap.
"""
import asyncio
import functools
import inspect
import sys
import time
from typing import Any, List, Optional

from . import _agent, _asyncsupport
from .tracer import Tracer, _caller_workspace, _Driven

__all__ = ["AsyncTracer", "AsyncContextTracer", "traced_sleep",
           "AwaitPointInfo", "CoroutineInfo"]


class _Timed:
    """start_time / end_time (perf_counter), result, exception."""

    def __init__(self):
        self.start_time = time.perf_counter()
        self.end_time: Optional[float] = None
        self.result: Any = None
        self.exception: Optional[BaseException] = None

    @property
    def duration_ms(self):
        """Milliseconds from start to end (to now while not complete)."""
        end = self.end_time if self.end_time is not None else time.perf_counter()
        return (end - self.start_time) * 1000

    def complete(self, result=None, exception=None):
        """Marks the end, with its result or exception."""
        self.end_time = time.perf_counter()
        self.result = result
        self.exception = exception


class AwaitPointInfo(_Timed):
    """An await point, as python-steptrace 0.3.0 described one."""

    def __init__(self, coro_name, filename, lineno, awaited_expr=""):
        super().__init__()
        self.coro_name = coro_name
        self.filename = filename
        self.lineno = lineno
        self.awaited_expr = awaited_expr


class CoroutineInfo(_Timed):
    """A traced coroutine, as python-steptrace 0.3.0 described one."""

    def __init__(self, name, coro):
        super().__init__()
        self.name = name
        self.coro = coro
        self.await_points: List[AwaitPointInfo] = []


class AsyncTracer(Tracer):
    """A Tracer that also records coroutines, awaits and tasks.

    await_threshold_ms: awaits shorter than this produce no records.
    trace_tasks: write TASK CREATED / TASK DONE records.
    Other keyword arguments are Tracer's.
    """

    def __init__(self, await_threshold_ms=0.0, trace_tasks=True, **kwargs):
        if "_workspace_override" not in kwargs or not kwargs["_workspace_override"]:
            # The workspace is the directory of the code creating the
            # tracer (not this module's).
            kwargs["_workspace_override"] = _caller_workspace(1)
        super().__init__(**kwargs)
        try:
            threshold = float(await_threshold_ms)
        except (TypeError, ValueError):
            threshold = -1.0
        if not threshold >= 0.0 or threshold == float("inf"):
            raise ValueError("invalid await_threshold_ms %r: use a number of "
                             "milliseconds, 0 or more" % (await_threshold_ms,))
        self.await_threshold_ms = threshold
        self.trace_tasks = bool(trace_tasks)

    def _region_options(self):
        return {"async_mode": True, "trace_tasks": self.trace_tasks,
                "await_threshold_ms": self.await_threshold_ms}

    def _end(self, active):
        super()._end(active)
        if not self._stack():
            _asyncsupport.unwatch_loops()

    # -- 0.3.0's explicit API --------------------------------------------

    def trace_async(self, coro_func):
        """Decorator for coroutine functions: each call is a region."""
        if not inspect.iscoroutinefunction(coro_func):
            raise TypeError("trace_async needs a coroutine function, got %r"
                            % (coro_func,))

        @functools.wraps(coro_func)
        async def wrapper(*args, **kwargs):
            return await _Driven(self, coro_func(*args, **kwargs))

        return wrapper

    async def run_async(self, coro):
        """Runs a coroutine in a region; returns its result."""
        with self:
            return await coro

    async def gather(self, *coros, return_exceptions=False):
        """asyncio.gather of the coroutines (each followed automatically)."""
        return await asyncio.gather(*coros,
                                    return_exceptions=return_exceptions)

    def wrap_task(self, coro, name=None):
        """asyncio.create_task(coro, name=name): its TASK records come from
        the task watch when created from traced code."""
        if name is None:
            name = getattr(coro, "__name__", None)
        return asyncio.get_running_loop().create_task(coro, name=name)

    def trace_await(self, awaitable, expr=""):
        """Awaits `awaitable`; the AWAIT records of the awaiting coroutine
        show `expr` when given."""
        return _ExprAwait(awaitable, expr)


class _ExprAwait:
    """Awaitable passing an explicit expression text to the AWAIT records."""

    __slots__ = ("_awaitable", "_expr")

    def __init__(self, awaitable, expr):
        self._awaitable = awaitable
        self._expr = expr

    def __await__(self):
        if self._expr:
            _asyncsupport.set_next_expression(self._expr)
        return (yield from self._awaitable.__await__())


class AsyncContextTracer:
    """`async with AsyncContextTracer(tracer):` traces the block's callees."""

    def __init__(self, tracer):
        self.tracer = tracer

    async def __aenter__(self):
        self.tracer.__enter__()
        return self.tracer

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        self.tracer.__exit__(exc_type, exc_val, exc_tb)
        return False


def traced_sleep(tracer, seconds):
    """asyncio.sleep(seconds), shown as `sleep(<seconds>)` in the records."""
    return tracer.trace_await(asyncio.sleep(seconds), "sleep(%s)" % (seconds,))
