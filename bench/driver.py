"""One measured run of one workload under one tracer (bench/run.py starts it).

run.py copies this file next to copies of the workloads in a scratch
directory, so that the directory of the file that creates the Tracer (the
default workspace of steptrace and of python-steptrace) holds the workload,
as in ordinary use.  Usage:

    python driver.py WORKLOAD UNITS VARIANT [LOG_DIR]

VARIANT is one of:
  untraced          run(units) as is
  count             a Python settrace line counter, filtered to the workload
                    directory (run once per workload to get the line count)
  noop-settrace     _stnoop.install(): a C PyEval_SetTrace function that
                    returns 0 for every event
  noop-monitoring   _stnoop.line_callback registered for sys.monitoring LINE
                    events (3.12+): a C callback that returns None
  steptrace:MODE[:FORMAT]
                    `with Tracer(log_dir=..., log_output=FILE,
                    variable_mode=MODE, log_format=FORMAT)`, MODE in NONE,
                    CHANGED, ALL, FORMAT text (the default), steps or both; the
                    `steptrace` found on PYTHONPATH (this project, or
                    python-steptrace when run.py puts that first)
  pysnooper         pysnooper.snoop(LOG_DIR/snoop.log, depth=...) around run

Prints one JSON object on the last line of stdout: wall (seconds, from just
before the tracer is entered to just after it is left, so the collector's
acknowledgement is included), result (the workload's checksum), impl (the
file of the tracer module), count (for `count`).
"""
import importlib
import json
import os
import sys
import time

# Deep enough for fib(22) under run() (PySnooper traces callees up to depth).
PYSNOOPER_DEPTH = 40


def main():
    workload, units, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    log_dir = sys.argv[4] if len(sys.argv) > 4 else None
    here = os.path.dirname(os.path.abspath(__file__))
    mod = importlib.import_module(workload)
    out = {"variant": variant}

    if variant == "untraced":
        t0 = time.perf_counter()
        result = mod.run(units)
        t1 = time.perf_counter()

    elif variant == "count":
        me = os.path.abspath(__file__)
        prefix = here + os.sep
        count = 0

        def local(frame, event, arg):
            nonlocal count
            if event == "line":
                count += 1
            return local

        def glob(frame, event, arg):
            fn = frame.f_code.co_filename
            if fn.startswith(prefix) and fn != me:
                return local(frame, event, arg)
            return None

        t0 = time.perf_counter()
        sys.settrace(glob)
        try:
            result = mod.run(units)
        finally:
            sys.settrace(None)
        t1 = time.perf_counter()
        out["count"] = count

    elif variant == "noop-settrace":
        import _stnoop
        t0 = time.perf_counter()
        _stnoop.install()
        try:
            result = mod.run(units)
        finally:
            _stnoop.uninstall()
        t1 = time.perf_counter()
        out["impl"] = _stnoop.__file__

    elif variant == "noop-monitoring":
        import _stnoop
        mon = sys.monitoring
        tool = mon.DEBUGGER_ID
        t0 = time.perf_counter()
        mon.use_tool_id(tool, "stnoop")
        mon.register_callback(tool, mon.events.LINE, _stnoop.line_callback)
        mon.set_events(tool, mon.events.LINE)
        try:
            result = mod.run(units)
        finally:
            mon.set_events(tool, 0)
            mon.register_callback(tool, mon.events.LINE, None)
            mon.free_tool_id(tool)
        t1 = time.perf_counter()
        out["impl"] = _stnoop.__file__

    elif variant.startswith("steptrace:"):
        parts = variant.split(":")
        mode = parts[1]
        import steptrace
        kwargs = dict(log_dir=log_dir, log_output=1,
                      variable_mode={"ALL": 1, "CHANGED": 2, "NONE": 3}[mode])
        if len(parts) > 2 and parts[2] != "text":
            kwargs["log_format"] = parts[2]
        try:
            # This project's Tracer: no rotation, so log bytes are complete.
            tracer = steptrace.Tracer(max_log_bytes=0, **kwargs)
        except TypeError:
            tracer = steptrace.Tracer(**kwargs)  # python-steptrace 0.x
        t0 = time.perf_counter()
        with tracer:
            result = mod.run(units)
        t1 = time.perf_counter()
        out["impl"] = steptrace.__file__

    elif variant == "pysnooper":
        import pysnooper
        os.makedirs(log_dir, exist_ok=True)
        path = os.path.join(log_dir, "snoop.log")
        try:
            snoop = pysnooper.snoop(path, depth=PYSNOOPER_DEPTH, color=False)
        except TypeError:
            snoop = pysnooper.snoop(path, depth=PYSNOOPER_DEPTH)
        traced = snoop(mod.run)
        t0 = time.perf_counter()
        result = traced(units)
        t1 = time.perf_counter()
        out["impl"] = pysnooper.__file__

    else:
        raise SystemExit("driver: unknown variant %r" % variant)

    out["wall"] = t1 - t0
    out["result"] = repr(result)
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
