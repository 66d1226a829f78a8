"""steptrace: a line-by-line execution tracer for Python, written in C.

A drop-in successor of python-steptrace 0.3.0: ``with Tracer(): ...`` or
``@Tracer().trace`` records every executed line of your own code, with the
call stack, timing and variables, into ``.tracer/tracer.log``.
"""
from .tracer import LogLevel, LogOutput, Tracer, VariableMode
from .config import find_config_file, load_config

__version__ = "0.4.0"

__all__ = ["Tracer", "AsyncTracer", "AsyncContextTracer", "traced_sleep",
           "LogLevel", "LogOutput", "VariableMode", "load_config",
           "find_config_file"]

_ASYNC_NAMES = ("AsyncTracer", "AsyncContextTracer", "traced_sleep")


def __getattr__(name):
    # The asyncio support is imported on first use: `import steptrace`
    # stays cheap for programs that never touch asyncio.
    if name in _ASYNC_NAMES:
        from . import async_tracer
        return getattr(async_tracer, name)
    raise AttributeError("module 'steptrace' has no attribute %r" % (name,))
