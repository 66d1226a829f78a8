"""Config files (docs/CLI.md section 6; this module's API: docs/API.md
section 10): YAML, TOML and pyproject.toml.

A config file holds Tracer settings::

    # steptrace.yaml
    log_level: DEBUG
    log-output: stdout          # hyphens and underscores are equivalent,
    variable_mode: changed      # enum values are case-insensitive
    traceable_functions: [main, work]

YAML files (.yaml, .yml) are parsed in C with libyaml
(``steptrace._agent.load_yaml``); TOML files (.toml) with the standard
library's tomllib (Python 3.11+; on 3.10 the ``tomli`` package is used when
it is installed); ``pyproject.toml`` contributes its ``[tool.steptrace]``
table.

As python-steptrace 0.3.0 does, ``load_config`` returns None, with one
warning on stderr, for a file whose extension is not a config type (the
CLI's ``--config`` makes that an error, exit status 2).  Unlike 0.3.0,
which printed a message and returned None, it raises ``ConfigError`` (a
``ValueError``) for a config file that cannot be used: unreadable, not
valid YAML/TOML, an unknown key, a value of the wrong type or an unknown
enum value.  Its message is one line that
names the file (with ``line:column`` for syntax errors), the key and the
valid keys or values.  The ``parse_*`` helpers keep 0.3.0's lenient
behaviour: an unknown string gives the default.
"""
import difflib
import math
import os
import re
import sys

from . import _agent
from .tracer import _LOG_FORMATS, _ON_FULL, LogLevel, LogOutput, VariableMode, _coerce_enum

__all__ = [
    "ConfigError", "CONFIG_KEYS", "CONFIG_FILE_NAMES", "load_config",
    "read_config",
    "normalize_config", "parse_log_level", "parse_log_output",
    "parse_variable_mode", "merge_config_with_args", "find_config_file",
]

# The files find_config_file() looks for in each directory, in order;
# pyproject.toml comes last and counts only with a [tool.steptrace] table.
CONFIG_FILE_NAMES = ("steptrace.yaml", "steptrace.yml", "steptrace.toml")
PYPROJECT = "pyproject.toml"

# Every key a config file may hold (normalized spelling), in the order the
# error messages list them.
CONFIG_KEYS = (
    "log_level", "log_output", "variable_mode", "log_dir",
    "filter_workspace", "workspace", "traceable_functions", "trace_async",
    "async_threshold_ms", "repr_limit", "max_log_bytes", "max_log_files",
    "on_full", "follow_children", "quiet", "log_format",
)

_ENUMS = {
    "log_level": LogLevel,
    "log_output": LogOutput,
    "variable_mode": VariableMode,
}


class ConfigError(ValueError):
    """A config file (or settings dict) that cannot be used.

    ``str(error)`` is one line: ``FILE: key: problem; valid values are ...``
    or, for a syntax error, ``FILE:LINE:COLUMN: problem``.  ``path`` is the
    file (None for a dict given to normalize_config) and ``key`` the
    offending key when there is one.
    """

    def __init__(self, message, path=None, key=None):
        super().__init__(message)
        self.path = path
        self.key = key


# ---- the 0.3.0 helpers: lenient ----------------------------------------

def _lenient(cls, value, default):
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        return cls.__members__.get(value.strip().upper(), default)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return cls(value)
        except ValueError:
            return default
    return default


def parse_log_level(value):
    """LogLevel for a name in any case; unknown names give INFO (0.3.0)."""
    return _lenient(LogLevel, value, LogLevel.INFO)


def parse_log_output(value):
    """LogOutput for a name in any case; unknown names give FILE (0.3.0)."""
    return _lenient(LogOutput, value, LogOutput.FILE)


def parse_variable_mode(value):
    """VariableMode for a name in any case; unknown names give ALL (0.3.0)."""
    return _lenient(VariableMode, value, VariableMode.ALL)


# ---- validation: strict ------------------------------------------------

def _show(value):
    """A value and its config-file type, for messages (one line)."""
    if value is None:
        return "null (no value)"
    if isinstance(value, bool):
        return "%s (a boolean)" % ("true" if value else "false")
    if isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = "a number"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, (list, tuple)):
        kind = "a list"
    elif isinstance(value, dict):
        kind = "a mapping"
    else:
        kind = "a %s" % type(value).__name__
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return "%s (%s)" % (text, kind)


def _enum_value(cls, value, fail):
    # What Tracer() accepts: a member, a name in any case, an int value.
    try:
        return _coerce_enum(cls, value, cls.__name__)
    except ValueError:
        pass
    valid = ", ".join(cls.__members__)
    if isinstance(value, str):
        fail("unknown value %r; valid values are %s" % (value, valid))
    fail("expected one of %s, got %s" % (valid, _show(value)))


def _whole(minimum, what):
    def check(value, fail):
        if isinstance(value, bool) or not isinstance(value, int) \
                or value < minimum:
            fail("expected %s, got %s" % (what, _show(value)))
        return value
    return check


def _boolean(value, fail):
    if not isinstance(value, bool):
        fail("expected true or false, got %s" % _show(value))
    return value


def _log_dir(value, fail):
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or value == "":
        fail("expected a directory name (a non-empty string), got %s"
             % _show(value))
    return value


def _functions(value, fail):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v for v in value):
        fail("expected a list of function names, e.g. [main, work], got %s"
             % _show(value))
    return list(value)


def _dirs(value, fail):
    if isinstance(value, str) and value:
        return [value]
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, str) and v for v in value):
        fail("expected a directory or a list of directories, e.g. [src, "
             "tests], got %s" % _show(value))
    return list(value)


def _threshold(value, fail):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        fail("expected a number of milliseconds, 0 or more, got %s"
             % _show(value))
    return float(value)


def _on_full(value, fail):
    valid = ", ".join(_ON_FULL)
    if not isinstance(value, str):
        fail("expected one of %s, got %s" % (valid, _show(value)))
    if value.strip().lower() not in _ON_FULL:
        fail("unknown value %r; valid values are %s" % (value, valid))
    return value.strip().lower()


def _log_format(value, fail):
    valid = ", ".join(_LOG_FORMATS)
    if not isinstance(value, str):
        fail("expected one of %s, got %s" % (valid, _show(value)))
    if value.strip().lower() not in _LOG_FORMATS:
        fail("unknown value %r; valid values are %s" % (value, valid))
    return value.strip().lower()


_CHECKS = {
    "log_level": lambda v, fail: _enum_value(LogLevel, v, fail),
    "log_output": lambda v, fail: _enum_value(LogOutput, v, fail),
    "variable_mode": lambda v, fail: _enum_value(VariableMode, v, fail),
    "log_dir": _log_dir,
    "filter_workspace": _boolean,
    "workspace": _dirs,
    "traceable_functions": _functions,
    "trace_async": _boolean,
    "async_threshold_ms": _threshold,
    "repr_limit": _whole(1, "a whole number of characters, 1 or more"),
    "max_log_bytes": _whole(0, "a byte count, 0 or more (0: no rotation)"),
    "max_log_files": _whole(0, "a whole number of files, 0 or more"),
    "on_full": _on_full,
    "log_format": _log_format,
    "follow_children": _boolean,
    "quiet": _boolean,
}


def normalize_config(config, source=None):
    """Checks a settings mapping and returns it normalized.

    Keys get underscores for hyphens; enum names (any case) become LogLevel,
    LogOutput and VariableMode members, ``on_full`` is lower-cased and
    ``async_threshold_ms`` a float.  Raises ConfigError naming ``source``
    (a file name; "config" when None), the key and the valid keys or values
    for an unknown key, a key given twice (``log-level`` and ``log_level``),
    a wrong type or an unknown enum value.
    """
    where = source or "config"
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError("%s: expected a mapping of settings (key: value), "
                          "got %s" % (where, _show(config)), source)
    out = {}
    spelled = {}
    for raw_key, value in config.items():
        key = raw_key.replace("-", "_") if isinstance(raw_key, str) \
            else raw_key
        if key not in _CHECKS:
            hint = ""
            if isinstance(key, str):
                close = difflib.get_close_matches(key, CONFIG_KEYS, 1)
                if close:
                    hint = " (did you mean %s?)" % close[0]
            raise ConfigError("%s: unknown key %r%s; valid keys are %s"
                              % (where, raw_key, hint, ", ".join(CONFIG_KEYS)),
                              source, raw_key)
        if key in spelled:
            raise ConfigError("%s: %s is given twice (as %r and %r)"
                              % (where, key, spelled[key], raw_key),
                              source, key)
        spelled[key] = raw_key

        def fail(problem, key=key):
            raise ConfigError("%s: %s: %s" % (where, key, problem), source,
                              key)

        out[key] = _CHECKS[key](value, fail)
    return out


# ---- reading files -----------------------------------------------------

def _toml_module():
    """tomllib, or tomli on Python 3.10 when installed, or None."""
    try:
        import tomllib
        return tomllib
    except ImportError:
        pass
    try:
        import tomli
        return tomli
    except ImportError:
        return None


_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _read_toml(path):
    toml = _toml_module()
    if toml is None:
        raise ConfigError(
            "%s: TOML config files need Python 3.11 or newer (this is %d.%d; "
            "tomllib is missing): use a YAML config such as steptrace.yaml "
            "instead, or install tomli" % ((path,) + sys.version_info[:2]),
            path)
    try:
        with open(path, "rb") as f:
            return toml.load(f)
    except OSError as e:
        _unreadable(path, e)
    except toml.TOMLDecodeError as e:
        msg = str(e).splitlines()[0] if str(e) else "invalid TOML"
        m = _TOML_POS_RE.search(msg)
        if m is not None:
            raise ConfigError("%s:%s:%s: %s" % (path, m.group(1), m.group(2),
                                                msg[:m.start()]),
                              path) from None
        raise ConfigError("%s: invalid TOML: %s" % (path, msg),
                          path) from None
    except UnicodeDecodeError as e:
        raise ConfigError("%s: invalid TOML: not UTF-8 (%s)" % (path, e.reason),
                          path) from None


def _read_yaml(path):
    try:
        return _agent.load_yaml(path)
    except ValueError as e:
        # Already "FILE:LINE:COLUMN: problem".
        raise ConfigError(str(e), path) from None
    except OSError as e:
        _unreadable(path, e)


class UnsupportedConfigType(ConfigError):
    """A config file whose extension is none of .yaml, .yml, .toml."""


class MissingConfig(ConfigError):
    """A config file that does not exist."""


def _unreadable(path, e):
    cls = MissingConfig if isinstance(e, FileNotFoundError) else ConfigError
    raise cls("%s: cannot read config file: %s" % (path, e.strerror or e),
              path) from None


def load_config(path):
    """Reads a config file; returns its settings, normalized, or None (with
    one warning on stderr) when its extension is not .yaml, .yml or .toml
    or when it does not exist, as python-steptrace 0.3.0 does.  Other
    problems (syntax, keys, values) raise ConfigError; see read_config."""
    try:
        return read_config(path)
    except (UnsupportedConfigType, MissingConfig) as e:
        sys.stderr.write("steptrace: %s\n" % e)
        sys.stderr.flush()
        return None


def read_config(path):
    """Reads a config file; returns its settings, normalized.

    ``.yaml`` / ``.yml`` files are YAML, ``.toml`` files TOML, and a file
    named ``pyproject.toml`` gives its ``[tool.steptrace]`` table (an
    error when it has none).  An empty YAML file gives ``{}``.  The result
    holds only the keys the file sets (see normalize_config).  Raises
    ConfigError, with a one-line message, for any problem.
    """
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    name = os.path.basename(path)
    ext = os.path.splitext(name)[1].lower()
    source = path
    if ext in (".yaml", ".yml"):
        raw = _read_yaml(path)
    elif ext == ".toml":
        raw = _read_toml(path)
        if name == PYPROJECT:
            tool = raw.get("tool")
            if not isinstance(tool, dict) or "steptrace" not in tool:
                raise ConfigError("%s: has no [tool.steptrace] table: put "
                                  "steptrace's settings there" % path, path)
            raw = tool["steptrace"]
            source = "%s [tool.steptrace]" % path
            if not isinstance(raw, dict):
                raise ConfigError("%s: expected a table, got %s"
                                  % (source, _show(raw)), path)
    else:
        raise UnsupportedConfigType(
            "%s: unsupported config file type %r: use .yaml, .yml or .toml "
            "(or pyproject.toml)" % (path, ext or name), path)
    config = normalize_config(raw, source)
    if "workspace" in config:
        # Relative to the file that names them.
        base = os.path.dirname(os.path.abspath(path))
        config["workspace"] = [os.path.join(base, d)
                               for d in config["workspace"]]
    return config


# A [tool.steptrace] header or a top-level tool.steptrace dotted key: how
# find_config_file() recognises a pyproject.toml it cannot parse.
_TABLE_RE = re.compile(
    r"^[ \t]*(\[[ \t]*tool[ \t]*\.[ \t]*steptrace[ \t]*[\].]"
    r"|tool[ \t]*\.[ \t]*steptrace[ \t]*[.=])", re.M)


def _pyproject_has_table(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    toml = _toml_module()
    if toml is not None:
        try:
            doc = toml.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, toml.TOMLDecodeError):
            pass
        else:
            tool = doc.get("tool")
            return isinstance(tool, dict) and "steptrace" in tool
    # Without a TOML parser, or for a file that does not parse: a file
    # that mentions the table is ours, so load_config() reports the
    # problem (Python too old, syntax error) instead of it being ignored.
    return _TABLE_RE.search(data.decode("utf-8", "replace")) is not None


def find_config_file(start_dir=None):
    """Finds the config file that applies to `start_dir` (default: cwd).

    Looks in start_dir, then in each parent up to the root, for
    steptrace.yaml, steptrace.yml, steptrace.toml, then a pyproject.toml
    with a [tool.steptrace] table (others are skipped).  Returns the
    absolute path of the first found, or None.
    """
    if start_dir is None:
        start_dir = os.getcwd()
    current = os.path.realpath(os.fspath(start_dir))
    if os.path.isfile(current):
        current = os.path.dirname(current)
    while True:
        for name in CONFIG_FILE_NAMES:
            candidate = os.path.join(current, name)
            if os.path.isfile(candidate):
                return candidate
        candidate = os.path.join(current, PYPROJECT)
        if os.path.isfile(candidate) and _pyproject_has_table(candidate):
            return candidate
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


# ---- merging with command-line arguments -------------------------------

def merge_config_with_args(config, args):
    """Tracer keyword arguments from config settings and parsed arguments.

    `config` is a dict from load_config (or normalize_config); `args` an
    argparse-like namespace as 0.3.0's CLI made: attributes log_level,
    log_output, variable_mode (names, any case), log_dir,
    no_filter_workspace, traceable_functions, trace_async,
    async_threshold_ms; also filter_workspace, no_trace_async, repr_limit,
    max_log_bytes, max_log_files and on_full.  A missing attribute, None,
    False for a flag and an async_threshold_ms of 0 (0.3.0's default) mean
    "not given".  Given arguments win over the config.

    The result may hold trace_async and async_threshold_ms, which are for
    AsyncTracer, and quiet, which is the CLI's: pop them before calling
    Tracer(**result).  Raises
    ConfigError for an unknown enum name (no fallback, unlike parse_*).
    """
    result = {}
    for key in CONFIG_KEYS:
        if config and key in config:
            result[key] = config[key]

    def arg(name):
        return getattr(args, name, None)

    def fail_for(option):
        def fail(problem):
            raise ConfigError("%s: %s" % (option, problem), None, option)
        return fail

    for key, cls in _ENUMS.items():
        value = arg(key)
        if value is not None:
            option = "--" + key.replace("_", "-")
            result[key] = _enum_value(cls, value, fail_for(option))
    if arg("log_dir") is not None:
        result["log_dir"] = arg("log_dir")
    if arg("filter_workspace") is True:
        result["filter_workspace"] = True
    if arg("no_filter_workspace"):
        result["filter_workspace"] = False
    if arg("traceable_functions"):
        result["traceable_functions"] = list(arg("traceable_functions"))
    if arg("workspace"):
        result["workspace"] = list(arg("workspace"))
    if arg("trace_async"):
        result["trace_async"] = True
    if arg("no_trace_async"):
        result["trace_async"] = False
    threshold = arg("async_threshold_ms")
    if threshold is not None and threshold > 0:
        result["async_threshold_ms"] = float(threshold)
    for key in ("repr_limit", "max_log_bytes", "max_log_files"):
        if arg(key) is not None:
            result[key] = arg(key)
    if arg("on_full") is not None:
        result["on_full"] = _on_full(arg("on_full"), fail_for("--on-full"))
    if arg("log_format") is not None:
        result["log_format"] = _log_format(arg("log_format"),
                                           fail_for("--log-format"))
    return result
