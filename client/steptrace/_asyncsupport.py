"""Helpers the agent calls for async records (docs/LOG-FORMAT.md section 9).

- await_expression(frame): the source text of the expression a suspended
  coroutine frame is awaiting, for AWAIT START records.
- watch_running_loop(): while an AsyncTracer region is active, wraps the
  running loop's create_task so that tasks created from traced code get
  TASK CREATED / TASK DONE records with their real names.

Both run inside the agent's hook (tracing is off there) and never raise.
"""
import ast
import linecache
import os
import sys
import time
import weakref

from . import _agent

_PKGDIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_expr_cache = {}
_EXPR_CACHE_MAX = 4096
_next_expression = []   # set by AsyncTracer.trace_await


def set_next_expression(expr):
    """The next AWAIT START shows `expr` (AsyncTracer.trace_await)."""
    _next_expression[:] = [expr]


def _positions(code, lasti):
    """(line, end_line, col, end_col) of the instruction at `lasti`."""
    positions = getattr(code, "co_positions", None)
    if positions is None:
        return None
    for i, pos in enumerate(positions()):
        if i * 2 == lasti:
            return pos
    return None


def _from_ast(source_lines, lineno):
    """The awaited expression of the first `await` on line `lineno`, by
    parsing the enclosing statement (CPython 3.10 has no co_positions)."""
    line = source_lines[lineno - 1] if 0 < lineno <= len(source_lines) else ""
    text = line.strip()
    # Parse the line alone; a statement cut across lines does not parse,
    # and the text after "await" on this line is then the best we have.
    for candidate in (text, text.rstrip(":") + ": pass", "(" + text + ")"):
        try:
            tree = ast.parse(candidate)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Await):
                seg = ast.get_source_segment(candidate, node.value)
                if seg:
                    return seg
    idx = text.find("await ")
    return text[idx + 6:].strip() if idx >= 0 else ""


def await_expression(frame):
    if _next_expression:
        return _next_expression.pop()
    try:
        code = frame.f_code
        key = (code, frame.f_lasti)
        hit = _expr_cache.get(key)
        if hit is not None:
            return hit
        lines = linecache.getlines(code.co_filename)
        expr = ""
        pos = _positions(code, frame.f_lasti)
        if pos and pos[0] and pos[1] and pos[2] is not None and pos[3] is not None:
            first, last, col, end_col = pos
            if first == last and 0 < first <= len(lines):
                src = lines[first - 1].encode("utf-8")
                seg = src[col:end_col].decode("utf-8", "replace").strip()
                if seg.startswith("await "):
                    seg = seg[6:].strip()
                expr = seg
        if not expr:
            expr = _from_ast(lines, frame.f_lineno)
        if len(_expr_cache) >= _EXPR_CACHE_MAX:
            _expr_cache.clear()
        _expr_cache[key] = expr
        return expr
    except Exception:  # noqa: B902 - never raise into the hook
        return ""


# -- tasks --------------------------------------------------------------

_watched = weakref.WeakKeyDictionary()   # loop -> the original create_task


def _task_done(created_at):
    def done(task):
        try:
            ok = not task.cancelled() and task.exception() is None
            _agent.task_event(False, task.get_name(), ok,
                              int((time.perf_counter() - created_at) * 1e9))
        except Exception:  # noqa: B902
            pass
    return done


def _created_by_traced_code(coro):
    """Is the code asking asyncio for this task the user's traced code
    (directly, or through gather, ensure_future, TaskGroup...), for a
    coroutine that is not asyncio's own (asyncio.run's shutdown tasks)?"""
    import asyncio
    adir = os.path.dirname(asyncio.__file__) + os.sep
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    if code is not None and code.co_filename.startswith(adir):
        return False
    # asyncio's and steptrace's own frames (gather, TaskGroup, wrap_task)
    # stand between the user's call and the loop.
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(
            (adir, _PKGDIR)):
        frame = frame.f_back
    return frame is not None and _agent.code_traced(frame.f_code)


def _task_name(task, kwargs):
    """The name the task is about to get: asyncio.create_task (before 3.13)
    names the task only after loop.create_task returns."""
    name = kwargs.get("name")
    if name is None:
        # asyncio.create_task and TaskGroup.create_task (before 3.13) name
        # the task after loop.create_task returns: the name is their
        # argument.
        import asyncio
        adir = os.path.dirname(asyncio.__file__) + os.sep
        caller = sys._getframe(2)
        if caller.f_code.co_filename.startswith(adir) and \
                caller.f_code.co_name == "create_task":
            name = caller.f_locals.get("name")
    return str(name) if name is not None else task.get_name()


def watch_running_loop():
    """Wraps the running loop's create_task (once per loop)."""
    try:
        import asyncio
        loop = asyncio._get_running_loop()
        if loop is None or loop in _watched:
            return
        original = loop.create_task

        def create_task(coro, **kwargs):
            task = original(coro, **kwargs)
            try:
                if _agent.in_traced_code() and _created_by_traced_code(coro):
                    created_at = time.perf_counter()
                    name = _task_name(task, kwargs)
                    if _agent.task_event(True, name, True, 0):
                        task.add_done_callback(_task_done(created_at))
            except Exception:  # noqa: B902
                pass
            return task

        create_task.__wrapped__ = original
        _watched[loop] = original
        loop.create_task = create_task
    except Exception:  # noqa: B902 - a loop that cannot be wrapped is left alone
        pass


def unwatch_loops():
    """Gives every watched loop its own create_task back."""
    for loop in list(_watched.keys()):
        try:
            if "create_task" in vars(loop):
                del loop.create_task
        except Exception:  # noqa: B902
            pass
    _watched.clear()


_agent.set_async_hooks(await_expression, watch_running_loop)
