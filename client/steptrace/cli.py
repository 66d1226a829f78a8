"""The steptrace command line (docs/CLI.md).

    steptrace run SCRIPT [options] [-- script args]
    python -m steptrace run SCRIPT [options] [-- script args]

Options may stand before or after SCRIPT; tokens that are not steptrace
options, and everything after ``--``, go to the script.  Settings come from
the defaults, then a config file (``--config FILE``, else the first one
find_config_file() sees from the script's directory upward), then the
options given, each later one winning.  steptrace's own messages go to
stderr; a bad option value, a bad config file or a missing script is a
one-line error and exit status 2.
"""
import builtins
import math
import os
import sys
import types

from ._argv import Args, UsageError, needs_value
from ._collector import _warn
from .config import ConfigError, find_config_file, read_config
from .tracer import LogLevel, LogOutput, Tracer, VariableMode

_PKGDIR = os.path.dirname(os.path.abspath(__file__))

MAIN_HELP = """\
usage: steptrace [--help] [--version] COMMAND ...

steptrace: a line-by-line execution tracer for Python.

commands:
  run SCRIPT [options] [-- args]   trace SCRIPT as __main__ (see: steptrace run --help)
  run [options] -m MODULE [args]   trace MODULE run as python -m runs it
  daemon start|stop|status         drive the steptraced collector service
                                   (see: steptrace daemon --help)
  tail [--pid N] [--file GLOB]     follow the records a running collector
                                   writes (see: steptrace tail --help)
  show FILE... [options]           the text log of a .steps file (written with
                                   --log-format steps or both) at any level
                                   and variable mode
  query FILE... EXPR [options]     the steps where EXPR holds
                                   (e.g. 'func == "f" and changed(total)')
  export FILE... --format perfetto|jsonl [-o OUT]
                                   a trace for Perfetto UI, or JSON lines
  stats FILE... [--top N]          hits and time per line and function

Records go to the collector named by STEPTRACE_SOCKET, or to a private one
started for this process tree.  The log is .tracer/tracer.log by default.
"""

RUN_HELP = """\
usage: steptrace run SCRIPT [options] [-- script args]
       steptrace run [options] -m MODULE [module args]

Run SCRIPT as __main__ with every executed line of your own code traced.
Options may stand before or after SCRIPT; unknown tokens and everything
after -- are passed to the script.  With -m, MODULE runs as python -m runs
it, everything after it is its own, and the workspace is the working
directory (steptrace run -m pytest traces your code and tests, not
pytest's).  Choices are case-insensitive.

Settings are taken from the defaults, then from a config file, then from
these options (each later source wins).  The config file is the one given
with --config, else the first steptrace.yaml, steptrace.yml, steptrace.toml
or pyproject.toml with a [tool.steptrace] table found in the script's
directory or above it.

options:
  -c, --config FILE         read settings from FILE (.yaml, .yml, .toml or
                            pyproject.toml); keys are the option names below
  --log-level LEVEL         DEBUG, INFO, WARNING, ERROR or SILENT (default INFO)
  --log-output DEST         FILE, STDOUT, STDERR, FILE_STDOUT or FILE_STDERR
                            (default FILE)
  --variable-mode MODE      ALL, CHANGED or NONE (default ALL)
  --log-dir DIR             log directory, relative to the working directory
                            (default .tracer); each run, and each traced
                            child process, writes tracer.log there, else
                            tracer_N.log (the smallest free N)
  --filter-workspace        trace only files in the workspace (default): the
                            script's directory, the working directory with -m
  --workspace DIR           the workspace is DIR (repeatable); a file is in it
                            when its real path (.. and symlinks resolved) is
                            under DIR
  --no-filter-workspace     trace every file but the standard library,
                            site-packages and steptrace itself
  --traceable-functions NAME [NAME ...]
                            record only frames of functions with these names
  --repr-limit N            characters shown per value (default 1000)
  --max-log-bytes N         rotate the log beyond N bytes (0: never;
                            default 104857600)
  --max-log-files N         rotated files kept (default 10)
  --on-full POLICY          block or drop: what a full record buffer does
                            (default block)
  --log-format FORMAT       text (the .log file, default), steps (a binary
                            .steps file beside it, which `steptrace show`
                            renders at any level and mode) or both
  --trace-async             also record coroutines, awaits and tasks
  --no-trace-async          do not (switches a config's trace_async off)
  --async-threshold-ms MS   awaits shorter than MS milliseconds are not
                            recorded (default 0)
  --no-follow-children      do not trace the Python processes the script
                            starts (by default each is traced, with these
                            settings, into a file of its own)
  --follow-children         do (switches a config's follow_children: false on)
  --quiet                   do not print the closing line (the log files
                            and the step count) on stderr
  -h, --help                show this help and exit

exit status: the script's own; 2 for a bad option, a bad config file or a
missing script.
"""


def _choice(cls, option):
    def parse(text):
        member = cls.__members__.get(text.strip().upper())
        if member is None:
            raise UsageError("invalid %s value %r: choose one of %s"
                             % (option, text, ", ".join(cls.__members__)))
        return member
    return parse


def _count(option, minimum):
    def parse(text):
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise UsageError("invalid %s value %r: use a whole number, %d or "
                             "more" % (option, text, minimum))
        return value
    return parse


def _milliseconds(option):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < 0:
            raise UsageError("invalid %s value %r: use a number of "
                             "milliseconds, 0 or more" % (option, text))
        return value
    return parse


def _on_full(text):
    value = text.strip().lower()
    if value not in ("block", "drop"):
        raise UsageError("invalid --on-full value %r: choose one of block, "
                         "drop" % (text,))
    return value


def _log_format(text):
    value = text.strip().lower()
    if value not in ("text", "steps", "both"):
        raise UsageError("invalid --log-format value %r: choose one of text, "
                         "steps, both" % (text,))
    return value


def _config_path(text):
    if text == "":
        raise UsageError("--config needs a file name")
    return text


def _directory(text):
    if text == "":
        raise UsageError("--workspace needs a directory")
    return text


# option -> (setting, parser); parser None marks a flag with a fixed value.
_VALUED = {
    "-c": ("config", _config_path),
    "--config": ("config", _config_path),
    "--log-level": ("log_level", _choice(LogLevel, "--log-level")),
    "--log-output": ("log_output", _choice(LogOutput, "--log-output")),
    "--variable-mode": ("variable_mode",
                        _choice(VariableMode, "--variable-mode")),
    "--log-dir": ("log_dir", str),
    "--workspace": ("workspace", _directory),
    "--repr-limit": ("repr_limit", _count("--repr-limit", 1)),
    "--max-log-bytes": ("max_log_bytes", _count("--max-log-bytes", 0)),
    "--max-log-files": ("max_log_files", _count("--max-log-files", 0)),
    "--on-full": ("on_full", _on_full),
    "--log-format": ("log_format", _log_format),
    "--async-threshold-ms": ("async_threshold_ms",
                             _milliseconds("--async-threshold-ms")),
}
_FLAGS = {
    "--filter-workspace": ("filter_workspace", True),
    "--no-filter-workspace": ("filter_workspace", False),
    "--trace-async": ("trace_async", True),
    "--no-trace-async": ("trace_async", False),
    "--follow-children": ("follow_children", True),
    "--no-follow-children": ("follow_children", False),
    "--quiet": ("quiet", True),
}


def _distance(a, b):
    """Levenshtein distance between two short strings."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1,
                           prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


_LONG_OPTIONS = sorted(o for o in list(_VALUED) + list(_FLAGS) +
                       ["--traceable-functions", "--help"]
                       if o.startswith("--"))


def _meant_option(tok):
    """The steptrace option a token after SCRIPT looks like a misspelling
    of (within edit distance 2), or None."""
    name = tok.partition("=")[0]
    if not name.startswith("--") or len(name) < 5 or name in _LONG_OPTIONS:
        return None
    best = min(_LONG_OPTIONS, key=lambda o: _distance(name, o))
    return best if _distance(name, best) <= 2 else None


def parse_run_args(argv):
    """Splits `run` arguments into (settings, script, script_args).

    After SCRIPT, a token that looks like a misspelt steptrace option, or a
    steptrace option with a bad or missing value, is the script's: it is
    passed on with one warning (before SCRIPT it is an error)."""
    settings = {}
    script = None
    script_args = []
    args = Args(argv)
    for tok in args:
        if tok == "--":
            script_args.extend(args.rest())
            break
        name, eq, inline = tok.partition("=")
        if name in _VALUED:
            key, parse = _VALUED[name]
            value = args.value(eq, inline)
            if value is None:
                if script is None:
                    raise needs_value(name)
                _warn("passing %s to the script: it needs a value to be "
                      "steptrace's (put steptrace's options before the "
                      "script, or the script's after --)" % name)
                script_args.append(tok)
                continue
            try:
                if key == "workspace":      # repeatable
                    settings.setdefault(key, []).append(parse(value))
                else:
                    settings[key] = parse(value)
            except UsageError as e:
                if script is None:
                    raise
                passed = tok if eq else "%s %s" % (tok, value)
                _warn("passing %s to the script (%s)" % (passed, e))
                script_args.extend([tok] if eq else [tok, value])
        elif tok in _FLAGS:
            key, value = _FLAGS[tok]
            settings[key] = value
        elif tok == "-m" and script is None:
            # As python -m: the module, then its own arguments.
            module = args.peek()
            if not module or module.startswith("-"):
                raise UsageError("-m needs a module name: steptrace run "
                                 "[options] -m module [args]")
            settings["module"] = next(args)
            script_args.extend(args.rest())
            break
        elif name == "--traceable-functions":
            names = [inline] if eq else []
            while not eq:
                word = args.peek()
                if word is None or word.startswith("-") or (
                        script is None and names and word.endswith(".py")):
                    break
                names.append(next(args))
            if not names:
                raise UsageError("--traceable-functions needs at least one "
                                 "function name")
            settings["traceable_functions"] = names
        elif tok in ("-h", "--help"):
            settings["help"] = True
        elif script is None and not tok.startswith("-"):
            script = tok
        else:
            meant = _meant_option(tok) if script is not None else None
            if meant is not None:
                _warn("passing %s to the script; did you mean %s?"
                      % (tok.partition("=")[0], meant))
            script_args.append(tok)
    return settings, script, script_args


def _check_log_dir(log_dir):
    """Fails early when the log directory cannot be created or written:
    it is made (the run would make it) and a file is created in it and
    removed, since permission bits do not tell (root, /proc, read-only
    mounts)."""
    import tempfile
    path = os.path.abspath(log_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError("log directory %s exists and is not a directory: "
                         "choose another --log-dir" % path)
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError("cannot create log directory %s (%s is not a "
                         "directory): choose another --log-dir"
                         % (path, parent))
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".steptrace-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError("cannot write log directory %s: %s: choose another "
                         "--log-dir" % (path, e.strerror or e)) from None


def _user_traceback(tb):
    """Drops steptrace's own frames from the front of a traceback."""
    while tb is not None and \
            tb.tb_frame.f_code.co_filename.startswith(_PKGDIR + os.sep):
        tb = tb.tb_next
    return tb


def _report(exc):
    """Prints the script's uncaught exception the way python would."""
    # sys.excepthook on 3.11+ prints exc.__traceback__ whatever tb it is
    # given, so the traceback itself is trimmed.
    tb = _user_traceback(exc.__traceback__)
    exc.__traceback__ = tb
    sys.excepthook(type(exc), exc, tb)


def _exit_status(exc):
    """The status Python gives for sys.exit(code), printing a message."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    try:
        sys.stderr.write("%s\n" % (code,))
        sys.stderr.flush()
    except Exception:
        pass
    return 1


def run_module(module, module_args, tracer):
    """Runs `module` as python -m does (runpy, __main__, sys.argv[0] the
    module's file, the working directory first on sys.path) under
    `tracer`; returns the exit status."""
    import importlib.util
    import runpy
    cwd = os.getcwd()
    if sys.path and sys.path[0] in ("", cwd, _PKGDIR):
        sys.path[0] = cwd
    else:
        sys.path.insert(0, cwd)
    sys.argv = ["-m"] + list(module_args)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as e:
        spec = None
        why = str(e)
    else:
        why = "no module named %r" % module
    if spec is None:
        raise UsageError("cannot run -m %s: %s" % (module, why))
    with tracer:
        region = _region_of(tracer)
        status = _exec_main(
            lambda: runpy.run_module(module, run_name="__main__",
                                     alter_sys=True))
        _wait_for_threads()
    _closing_line(tracer, region)
    return status


def run_script(script, script_args, tracer):
    """Runs `script` as __main__ under `tracer`; returns the exit status."""
    path = os.path.abspath(script)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        raise UsageError("cannot open script %s: %s" % (script, e.strerror))
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    main.__loader__ = None
    main.__spec__ = None
    main.__cached__ = None
    sys.modules["__main__"] = main
    sys.argv = [script] + list(script_args)
    if sys.path and sys.path[0] in ("", os.getcwd(), _PKGDIR):
        sys.path[0] = os.path.dirname(path)
    else:
        sys.path.insert(0, os.path.dirname(path))
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        _report(e)
        return 1
    with tracer:
        region = _region_of(tracer)
        status = _exec_main(lambda: exec(code, main.__dict__))
        # As python does at exit (after the traceback, before atexit), wait
        # for the script's non-daemon threads: inside the region, so that
        # what they still run is traced too.
        _wait_for_threads()
    _closing_line(tracer, region)
    return status


def _region_of(tracer):
    """The agent's region of the run (None when nothing is recorded)."""
    stack = tracer._stack()
    return stack[-1].region if stack and stack[-1] is not None else None


def _shown(path):
    """`path` relative to the working directory when it is below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith(os.pardir) else rel


def _closing_line(tracer, region):
    """One line on stderr: the log file written, its step count, and the
    child processes traced (unless quiet)."""
    from . import _agent, _children
    if getattr(tracer, "quiet", False) or region is None:
        return
    try:
        _, steps, path = _agent.place(region, False)
    except Exception:
        return
    if path is None:
        return
    line = "steptrace: %d step%s in %s" % (steps, "" if steps == 1 else "s",
                                           _shown(path))
    if getattr(tracer, "_formats_used", 1) == 3 and path.endswith(".log"):
        line += " and %s" % _shown(path[:-len(".log")] + ".steps")
    if os.path.exists(path + ".1"):
        line += " (older records in %s.1, ...)" % os.path.basename(path)
    n = _children.started
    if n:
        line += ("; %d child process%s started (each one traced has a file "
                 "of its own in %s)" % (n, "" if n == 1 else "es",
                                        _shown(os.path.dirname(path))))
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def _exec_main(run):
    """Calls run() (the script's or module's code); returns the exit status
    python would give, having printed what python would print."""
    try:
        run()
    except SystemExit as e:
        return _exit_status(e)
    except KeyboardInterrupt as e:
        _report(e)
        return 130
    except BaseException as e:  # noqa: B902 - the script's own exception
        _report(e)
        return 1
    return 0


def _wait_for_threads():
    """Joins the non-daemon threads still running, like interpreter exit."""
    import threading
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and not t.daemon and t.is_alive():
            try:
                t.join()
            except KeyboardInterrupt:
                return


def _settings(options, workspace):
    """The run's settings: defaults < config file < command-line options.

    `options` holds only the options given (and "config" when --config
    was); returns a new dict with the config file's settings under them.
    """
    options = dict(options)
    path = options.pop("config", None)
    try:
        if path is None:
            path = find_config_file(workspace)
        config = read_config(path) if path is not None else {}
    except ConfigError as e:
        raise UsageError(str(e)) from None
    settings = dict(config)
    settings.update(options)
    return settings


def _make_tracer(settings, workspace):
    """The Tracer for a run (settings are consumed): an AsyncTracer with
    --trace-async (or trace_async in the config)."""
    trace_async = settings.pop("trace_async", False)
    threshold = settings.pop("async_threshold_ms", 0.0)
    quiet = settings.pop("quiet", False)
    settings.setdefault("follow_children", True)
    if trace_async:
        from .async_tracer import AsyncTracer
        tracer = AsyncTracer(await_threshold_ms=threshold or 0.0,
                             _workspace_override=workspace, **settings)
    else:
        tracer = Tracer(_workspace_override=workspace, **settings)
    tracer.quiet = quiet
    return tracer


def _cmd_run(argv):
    options, script, script_args = parse_run_args(argv)
    if options.pop("help", False):
        sys.stdout.write(RUN_HELP)
        return 0
    module = options.pop("module", None)
    if module is not None:
        if script is not None:
            raise UsageError("give a SCRIPT or -m MODULE, not both")
        workspace = os.getcwd()
    else:
        if script is None:
            raise UsageError("run needs a SCRIPT to trace: steptrace run "
                             "script.py [options] [-- args], or steptrace "
                             "run [options] -m module [args]")
        if not os.path.isfile(script):
            raise UsageError("cannot find script %s: check the path"
                             % script)
        workspace = os.path.dirname(os.path.abspath(script))
    settings = _settings(options, workspace)
    if "workspace" in options:
        # --workspace: relative to the working directory (a config's own
        # are relative to the config file).
        settings["workspace"] = [os.path.abspath(d)
                                 for d in options["workspace"]]
    output = settings.get("log_output", LogOutput.FILE)
    level = settings.get("log_level", LogLevel.INFO)
    if output in (LogOutput.FILE, LogOutput.FILE_STDOUT,
                  LogOutput.FILE_STDERR) and level < LogLevel.SILENT:
        _check_log_dir(settings.get("log_dir", ".tracer"))
    tracer = _make_tracer(settings, workspace)
    if module is not None:
        return run_module(module, script_args, tracer)
    return run_script(script, script_args, tracer)


def _cmd_control(cmd, argv):
    """`steptrace daemon ...` and `steptrace tail ...` (daemonctl.py)."""
    from . import daemonctl
    try:
        if cmd == "daemon":
            return daemonctl.daemon_main(argv)
        return daemonctl.tail_main(argv)
    except daemonctl.CtlError as e:
        sys.stderr.write("steptrace: %s\n" % e)
        return e.status


def main(argv=None):
    """Entry point of the `steptrace` command; exits with the status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv:
            sys.stderr.write(MAIN_HELP)
            status = 2
        elif argv[0] in ("-h", "--help"):
            sys.stdout.write(MAIN_HELP)
            status = 0
        elif argv[0] == "--version":
            from . import __version__
            sys.stdout.write("steptrace %s\n" % __version__)
            status = 0
        elif argv[0] == "run":
            status = _cmd_run(argv[1:])
        elif argv[0] in ("daemon", "tail"):
            status = _cmd_control(argv[0], argv[1:])
        elif argv[0] in ("show", "query", "export", "stats"):
            from . import _reader
            status = _reader.run(argv[0], argv[1:])
        else:
            raise UsageError("unknown command %r: use 'steptrace run SCRIPT', "
                             "'steptrace show FILE', 'steptrace daemon ...' "
                             "or 'steptrace tail' (see steptrace --help)"
                             % argv[0])
    except UsageError as e:
        sys.stderr.write("steptrace: error: %s\n" % e)
        status = 2
    try:
        sys.stdout.flush()
    except Exception:
        pass
    raise SystemExit(status)
