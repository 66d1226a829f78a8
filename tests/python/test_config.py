"""Config files (docs/API.md section 10, docs/CLI.md sections 6 to 8):
steptrace.config's API in this process, and the `steptrace run` command line
with config files in real interpreters: YAML, TOML, pyproject.toml's
[tool.steptrace], discovery from the script's directory upward, precedence
defaults < file < options, and a one-line error with exit status 2 for every
kind of bad config."""
import argparse
import contextlib
import io
import os
import re
import sys
import unittest

import helpers
from helpers import TempDirTest

import steptrace
from steptrace import LogLevel, LogOutput, VariableMode, _agent
from steptrace import config as stconfig
from steptrace.config import ConfigError

# TOML needs tomllib (3.11+) or tomli; on 3.10 without tomli the loader
# reports that clearly instead.
HAVE_TOML = stconfig._toml_module() is not None
ALL_KEYS = ("log_level, log_output, variable_mode, log_dir, filter_workspace, "
            "workspace, traceable_functions, trace_async, async_threshold_ms, "
            "repr_limit, max_log_bytes, max_log_files, on_full, follow_children, "
            "quiet, log_format")
LEVELS = "DEBUG, INFO, WARNING, ERROR, SILENT"
OUTPUTS = "FILE, STDOUT, STDERR, FILE_STDOUT, FILE_STDERR"
MODES = "ALL, CHANGED, NONE"
STEP_RE = re.compile(r"^-{21} Step ([0-9]+) -{21}$", re.M)

FULL_YAML = """\
    # every key, in the spellings users write
    log_level: debug
    log-output: File_Stdout
    variable_mode: CHANGED
    log_dir: .my_tracer
    filter_workspace: no
    traceable-functions: [main, 'work']
    trace_async: yes
    async_threshold_ms: 12.5
    repr_limit: 80
    max_log_bytes: 1_000_000
    max-log-files: 3
    on_full: DROP
    """
FULL_EXPECTED = {
    "log_level": LogLevel.DEBUG,
    "log_output": LogOutput.FILE_STDOUT,
    "variable_mode": VariableMode.CHANGED,
    "log_dir": ".my_tracer",
    "filter_workspace": False,
    "traceable_functions": ["main", "work"],
    "trace_async": True,
    "async_threshold_ms": 12.5,
    "repr_limit": 80,
    "max_log_bytes": 1000000,
    "max_log_files": 3,
    "on_full": "drop",
}
FULL_TOML = """\
    log_level = "debug"
    log-output = "File_Stdout"
    variable_mode = "CHANGED"
    log_dir = ".my_tracer"
    filter_workspace = false
    traceable-functions = ["main", "work"]
    trace_async = true
    async_threshold_ms = 12.5
    repr_limit = 80
    max_log_bytes = 1_000_000
    max-log-files = 3
    on_full = "DROP"
    """


class ConfigApiTest(TempDirTest):
    """steptrace.config in this process."""

    def write(self, name, text):
        return helpers.write(self.path(name), text)

    def config_error(self, path, *needles):
        """load_config(path) must raise ConfigError, one line, holding
        every needle; returns the message."""
        with self.assertRaises(ConfigError) as cm:
            stconfig.load_config(path)
        msg = str(cm.exception)
        self.assertIsInstance(cm.exception, ValueError)
        self.assertNotIn("\n", msg)
        for needle in needles:
            self.assertIn(needle, msg)
        return msg

    # -- exports ------------------------------------------------------

    def test_exports(self):
        self.assertIs(steptrace.load_config, stconfig.load_config)
        self.assertIs(steptrace.find_config_file, stconfig.find_config_file)
        self.assertIn("load_config", steptrace.__all__)
        self.assertIn("find_config_file", steptrace.__all__)
        for name in ("load_config", "normalize_config", "parse_log_level",
                     "parse_log_output", "parse_variable_mode",
                     "merge_config_with_args", "find_config_file"):
            self.assertTrue(callable(getattr(stconfig, name)), name)
        self.assertTrue(issubclass(ConfigError, ValueError))

    # -- YAML ---------------------------------------------------------

    def test_yaml_every_key(self):
        path = self.write("steptrace.yaml", FULL_YAML)
        self.assertEqual(stconfig.load_config(path), FULL_EXPECTED)
        cfg = steptrace.load_config(path)
        self.assertIs(type(cfg["log_level"]), LogLevel)
        self.assertIs(type(cfg["async_threshold_ms"]), float)

    def test_yaml_03_example(self):
        # The example file python-steptrace 0.3.0 shipped, and .yml.
        path = self.write("steptrace.yml", """\
            # Log verbosity level: DEBUG, INFO, WARNING, ERROR, SILENT
            log_level: INFO
            log_output: FILE
            variable_mode: ALL
            log_dir: .tracer
            filter_workspace: true
            # traceable_functions:
            #   - main
            trace_async: false
            async_threshold_ms: 0.0
            """)
        self.assertEqual(stconfig.load_config(path), {
            "log_level": LogLevel.INFO, "log_output": LogOutput.FILE,
            "variable_mode": VariableMode.ALL, "log_dir": ".tracer",
            "filter_workspace": True, "trace_async": False,
            "async_threshold_ms": 0.0})

    def test_yaml_empty_file_and_nulls(self):
        self.assertEqual(stconfig.load_config(self.write("a.yaml", "")), {})
        self.assertEqual(
            stconfig.load_config(self.write("b.yaml", "# nothing yet\n")), {})
        self.assertEqual(stconfig.load_config(
            self.write("c.yaml", "traceable_functions:\n")),
            {"traceable_functions": None})

    def test_yaml_enum_ints_and_names_any_case(self):
        path = self.write("steptrace.yaml", """\
            log_level: 30
            log_output: " stderr "
            variable_mode: nOnE
            """)
        self.assertEqual(stconfig.load_config(path), {
            "log_level": LogLevel.WARNING, "log_output": LogOutput.STDERR,
            "variable_mode": VariableMode.NONE})

    def test_load_yaml_resolves_plain_scalars_only(self):
        path = self.write("v.yaml", """\
            bools: [true, FALSE, Yes, no, ON, off]
            nulls: [~, null, NULL, Null]
            ints: [0, -17, +4, 1_000, 0x1f, 0b101, 017]
            floats: [1.5, -.5, 1e3, .inf]
            strings: ['true', "12", !!str yes, DEBUG, 1:30, y]
            block: |
              two
              lines
            on: keys stay strings
            1: even this one
            empty:
            """)
        v = _agent.load_yaml(path)
        self.assertEqual(v["bools"], [True, False, True, False, True, False])
        self.assertEqual(v["nulls"], [None, None, None, None])
        self.assertEqual(v["ints"], [0, -17, 4, 1000, 31, 5, 15])
        self.assertEqual(v["floats"], [1.5, -0.5, 1000.0, float("inf")])
        self.assertEqual(v["strings"], ["true", "12", "yes", "DEBUG", "1:30",
                                        "y"])
        self.assertEqual(v["block"], "two\nlines\n")
        self.assertEqual(v["on"], "keys stay strings")
        self.assertEqual(v["1"], "even this one")
        self.assertIsNone(v["empty"])
        for x in v["ints"]:
            self.assertIs(type(x), int)
        self.assertIsNone(_agent.load_yaml(self.write("e.yaml", "")))

    def test_load_yaml_errors(self):
        path = self.write("bad.yaml", "a: 1\nb: [1, 2\n")
        with self.assertRaises(ValueError) as cm:
            _agent.load_yaml(path)
        self.assertEqual(str(cm.exception),
                         "%s:3:1: did not find expected ',' or ']' (while "
                         "parsing a flow sequence at line 2, column 4)" % path)
        with self.assertRaises(FileNotFoundError):
            _agent.load_yaml(self.path("missing.yaml"))
        with self.assertRaises(ValueError) as cm:
            _agent.load_yaml(self.write("alias.yaml", "a: &x 1\nb: *x\n"))
        self.assertIn("alias.yaml:2:4: aliases (*x) are not supported",
                      str(cm.exception))

    # -- TOML and pyproject.toml ---------------------------------------

    @unittest.skipUnless(HAVE_TOML, "TOML needs Python 3.11+ (tomllib)")
    def test_toml_every_key(self):
        path = self.write("steptrace.toml", FULL_TOML)
        self.assertEqual(stconfig.load_config(path), FULL_EXPECTED)

    @unittest.skipUnless(HAVE_TOML, "TOML needs Python 3.11+ (tomllib)")
    def test_pyproject_table(self):
        path = self.write("pyproject.toml", """\
            [project]
            name = "my-project"
            version = "1.0.0"

            [tool.steptrace]
            log-level = "warning"
            log_output = "STDERR"
            variable_mode = "none"

            [tool.other]
            log_level = 5
            """)
        self.assertEqual(stconfig.load_config(path), {
            "log_level": LogLevel.WARNING, "log_output": LogOutput.STDERR,
            "variable_mode": VariableMode.NONE})

    @unittest.skipUnless(HAVE_TOML, "TOML needs Python 3.11+ (tomllib)")
    def test_toml_errors(self):
        path = self.write("steptrace.toml", 'log_level = "INFO"\nx = \n')
        msg = self.config_error(path)
        self.assertTrue(msg.startswith(path + ":2:"), msg)
        path = self.write("pyproject.toml", '[project]\nname = "x"\n')
        self.config_error(path, path, "has no [tool.steptrace] table")
        path = self.write("p2/pyproject.toml",
                          '[tool.steptrace]\nlog_lvl = "DEBUG"\n')
        self.config_error(path, path + " [tool.steptrace]: unknown key "
                          "'log_lvl' (did you mean log_level?)", ALL_KEYS)
        path = self.write("steptrace.toml", 'repr_limit = 1.5\n')
        self.config_error(path, "repr_limit: expected a whole number")

    @unittest.skipIf(HAVE_TOML, "this Python reads TOML")
    def test_toml_needs_python_311(self):
        path = self.write("steptrace.toml", 'log_level = "DEBUG"\n')
        self.config_error(path, path, "Python 3.11", "YAML",
                          "steptrace.yaml")
        path = self.write("pyproject.toml", '[tool.steptrace]\nx = 1\n')
        self.config_error(path, "Python 3.11")

    def test_toml_missing_message(self):
        # The same message on every version, with tomllib hidden.
        path = self.write("steptrace.toml", 'log_level = "DEBUG"\n')
        saved = stconfig._toml_module
        stconfig._toml_module = lambda: None
        try:
            msg = self.config_error(path, path, "Python 3.11 or newer",
                                    "use a YAML config such as "
                                    "steptrace.yaml")
        finally:
            stconfig._toml_module = saved
        self.assertTrue(msg.startswith(path + ": TOML config files need"))

    # -- errors ---------------------------------------------------------

    def test_unknown_key(self):
        path = self.write("steptrace.yaml", "log_level: INFO\nverbose: true\n")
        with self.assertRaises(ConfigError) as cm:
            stconfig.load_config(path)
        self.assertEqual(str(cm.exception),
                         "%s: unknown key 'verbose'; valid keys are %s"
                         % (path, ALL_KEYS))
        self.assertEqual(cm.exception.path, path)
        self.assertEqual(cm.exception.key, "verbose")
        path = self.write("b.yaml", "log-levle: INFO\n")
        self.config_error(path, "unknown key 'log-levle' (did you mean "
                          "log_level?)")
        # 0.3.0's misspelling is a key of Tracer() only, not of files.
        self.config_error(self.write("c.yaml", "tracable_functions: [a]\n"),
                          "unknown key 'tracable_functions' (did you mean "
                          "traceable_functions?)")

    def test_unknown_enum_values(self):
        for key, valid in (("log_level", LEVELS), ("log_output", OUTPUTS),
                           ("variable_mode", MODES), ("on_full",
                                                      "block, drop")):
            path = self.write("%s.yaml" % key, "%s: nope\n" % key)
            with self.assertRaises(ConfigError) as cm:
                stconfig.load_config(path)
            self.assertEqual(str(cm.exception),
                             "%s: %s: unknown value 'nope'; valid values are "
                             "%s" % (path, key, valid))
            self.assertEqual(cm.exception.key, key)
        self.config_error(self.write("i.yaml", "log_level: 15\n"),
                          "log_level: expected one of %s, got 15 (an integer)"
                          % LEVELS)

    def test_wrong_types(self):
        cases = [
            ("filter_workspace: 'yes'", "filter_workspace: expected true or "
             "false, got 'yes' (a string)"),
            ("trace_async: 1", "trace_async: expected true or false, got 1 "
             "(an integer)"),
            ("repr_limit: '100'", "repr_limit: expected a whole number of "
             "characters, 1 or more, got '100' (a string)"),
            ("repr_limit: 0", "repr_limit: expected a whole number"),
            ("max_log_bytes: 1.5", "max_log_bytes: expected a byte count, 0 "
             "or more (0: no rotation), got 1.5 (a number)"),
            ("max_log_files: -1", "max_log_files: expected a whole number of "
             "files, 0 or more, got -1"),
            ("max_log_files: true", "max_log_files: expected a whole number "
             "of files, 0 or more, got true (a boolean)"),
            ("async_threshold_ms: fast", "async_threshold_ms: expected a "
             "number of milliseconds, 0 or more, got 'fast' (a string)"),
            ("async_threshold_ms: -1", "async_threshold_ms: expected"),
            ("traceable_functions: main", "traceable_functions: expected a "
             "list of function names, e.g. [main, work], got 'main' "
             "(a string)"),
            ("traceable_functions: [main, 3]", "traceable_functions: "
             "expected a list of function names"),
            ("log_dir: 5", "log_dir: expected a directory name (a non-empty "
             "string), got 5 (an integer)"),
            ("log_dir:", "log_dir: expected a directory name (a non-empty "
             "string), got null (no value)"),
            ("log_level: [DEBUG]", "log_level: expected one of %s, got "
             "['DEBUG'] (a list)" % LEVELS),
            ("on_full: {a: 1}", "on_full: expected one of block, drop, got "
             "{'a': 1} (a mapping)"),
        ]
        for i, (text, needle) in enumerate(cases):
            path = self.write("t%d.yaml" % i, text + "\n")
            msg = self.config_error(path, needle)
            self.assertTrue(msg.startswith(path + ": "), msg)

    def test_structure_errors(self):
        path = self.write("list.yaml", "- log_level\n- DEBUG\n")
        self.config_error(path, path + ": expected a mapping of settings "
                          "(key: value), got ['log_level', 'DEBUG'] (a list)")
        path = self.write("twice.yaml", "log-level: INFO\nlog_level: DEBUG\n")
        self.config_error(path, path + ": log_level is given twice (as "
                          "'log-level' and 'log_level')")
        path = self.write("dup.yaml", "log_level: INFO\nlog_level: DEBUG\n")
        self.config_error(path, path + ":2:1: duplicate key 'log_level' "
                          "(first given at line 1, column 1)")
        path = self.write("syntax.yaml", "log_level: INFO\n  bad: [\n")
        self.config_error(path, path + ":2:6: mapping values are not allowed")

    def test_unreadable_and_unsupported_files(self):
        # A file that does not exist: None and one warning, as
        # python-steptrace 0.3.0 (its test_invalid_config_file);
        # read_config() and the CLI make it an error.
        missing = self.path("nope.yaml")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertIsNone(stconfig.load_config(missing))
        self.assertEqual(err.getvalue(), "steptrace: %s: cannot read config "
                         "file: No such file or directory\n" % missing)
        with self.assertRaises(ConfigError) as cm:
            stconfig.read_config(missing)
        self.assertEqual(str(cm.exception), "%s: cannot read config file: "
                         "No such file or directory" % missing)
        os.mkdir(self.path("dir.yml"))
        self.config_error(self.path("dir.yml"), "cannot read config file: "
                          "Is a directory")
        # An extension that is no config type: None and one warning, as
        # python-steptrace 0.3.0 (its test_invalid_config_file); the CLI
        # and read_config() make it an error.
        for name in ("steptrace.json", "config.txt"):
            path = self.write(name, "{}\n")
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                self.assertIsNone(stconfig.load_config(path))
            ext = os.path.splitext(name)[1]
            self.assertEqual(err.getvalue(), "steptrace: %s: unsupported "
                             "config file type '%s': use .yaml, .yml or "
                             ".toml (or pyproject.toml)\n" % (path, ext))
            with self.assertRaises(ConfigError) as cm:
                stconfig.read_config(path)
            self.assertIn("unsupported config file type", str(cm.exception))
        if os.geteuid() != 0:
            path = self.write("locked.yaml", "log_level: INFO\n")
            os.chmod(path, 0)
            self.config_error(path, "cannot read config file: Permission "
                              "denied")

    # -- normalize_config and the parse_* helpers -----------------------

    def test_normalize_config(self):
        # python-steptrace 0.3.0's own test of normalize_config.
        normalized = stconfig.normalize_config({
            "log-level": "DEBUG", "log-output": "STDOUT",
            "variable-mode": "CHANGED", "log_dir": ".my_tracer",
            "filter_workspace": True})
        self.assertEqual(normalized, {
            "log_level": LogLevel.DEBUG, "log_output": LogOutput.STDOUT,
            "variable_mode": VariableMode.CHANGED, "log_dir": ".my_tracer",
            "filter_workspace": True})
        self.assertEqual(stconfig.normalize_config({}), {})
        self.assertEqual(stconfig.normalize_config(None), {})
        self.assertEqual(
            stconfig.normalize_config({"log_level": LogLevel.ERROR}),
            {"log_level": LogLevel.ERROR})
        with self.assertRaises(ConfigError) as cm:
            stconfig.normalize_config({"log_level": "loud"})
        self.assertEqual(str(cm.exception), "config: log_level: unknown "
                         "value 'loud'; valid values are %s" % LEVELS)
        with self.assertRaises(ConfigError) as cm:
            stconfig.normalize_config({"bogus": 1}, source="settings.yaml")
        self.assertTrue(str(cm.exception).startswith(
            "settings.yaml: unknown key 'bogus'"))

    def test_parse_helpers_fall_back(self):
        P = stconfig
        for name in LEVELS.split(", "):
            self.assertIs(P.parse_log_level(name), LogLevel[name])
            self.assertIs(P.parse_log_level(name.lower()), LogLevel[name])
        self.assertIs(P.parse_log_level("Info"), LogLevel.INFO)
        self.assertIs(P.parse_log_level("debug"), LogLevel.DEBUG)
        self.assertIs(P.parse_log_level("nope"), LogLevel.INFO)
        self.assertIs(P.parse_log_level(""), LogLevel.INFO)
        for name in OUTPUTS.split(", "):
            self.assertIs(P.parse_log_output(name.lower()), LogOutput[name])
        self.assertIs(P.parse_log_output("Stdout"), LogOutput.STDOUT)
        self.assertIs(P.parse_log_output("nope"), LogOutput.FILE)
        for name in MODES.split(", "):
            self.assertIs(P.parse_variable_mode(name.title()),
                          VariableMode[name])
        self.assertIs(P.parse_variable_mode("nope"), VariableMode.ALL)

    # -- merge_config_with_args -----------------------------------------

    def test_merge_config_with_args(self):
        # python-steptrace 0.3.0's own test, with its argparse namespace.
        config = {"log_level": LogLevel.DEBUG, "log_output": LogOutput.FILE,
                  "log_dir": ".config_tracer"}
        args = argparse.Namespace(
            log_level="INFO", log_output=None, variable_mode="CHANGED",
            log_dir=None, no_filter_workspace=False,
            traceable_functions=None, trace_async=True,
            async_threshold_ms=5.0)
        merged = stconfig.merge_config_with_args(config, args)
        self.assertEqual(merged, {
            "log_level": LogLevel.INFO, "variable_mode": VariableMode.CHANGED,
            "trace_async": True, "async_threshold_ms": 5.0,
            "log_output": LogOutput.FILE, "log_dir": ".config_tracer"})

    def test_merge_cli_wins_and_switches_off(self):
        path = helpers.write(self.path("steptrace.yaml"), FULL_YAML)
        config = stconfig.load_config(path)
        config["filter_workspace"] = True
        args = argparse.Namespace(
            log_level=None, log_output="stdout", variable_mode=None,
            log_dir="logs", no_filter_workspace=True,
            traceable_functions=["other"], trace_async=False,
            no_trace_async=True, async_threshold_ms=0.0, repr_limit=5,
            on_full="Block")
        merged = stconfig.merge_config_with_args(config, args)
        expected = dict(FULL_EXPECTED)
        expected.update(log_output=LogOutput.STDOUT, log_dir="logs",
                        filter_workspace=False, traceable_functions=["other"],
                        trace_async=False, repr_limit=5, on_full="block")
        self.assertEqual(merged, expected)
        # Attributes that are missing are ignored; no config at all works.
        self.assertEqual(stconfig.merge_config_with_args(
            {}, argparse.Namespace()), {})
        self.assertEqual(stconfig.merge_config_with_args(
            None, argparse.Namespace(filter_workspace=True)),
            {"filter_workspace": True})
        with self.assertRaises(ConfigError) as cm:
            stconfig.merge_config_with_args(
                {}, argparse.Namespace(log_level="loud"))
        self.assertIn("--log-level: unknown value 'loud'; valid values are "
                      + LEVELS, str(cm.exception))

    def test_merged_settings_build_a_tracer(self):
        config = stconfig.load_config(
            helpers.write(self.path("steptrace.yaml"), FULL_YAML))
        merged = stconfig.merge_config_with_args(config, argparse.Namespace())
        merged.pop("trace_async")
        merged.pop("async_threshold_ms")
        t = steptrace.Tracer(**merged)
        self.assertEqual((t.log_level, t.log_output, t.variable_mode),
                         (LogLevel.DEBUG, LogOutput.FILE_STDOUT,
                          VariableMode.CHANGED))
        self.assertEqual((t.repr_limit, t.max_log_bytes, t.max_log_files,
                          t.on_full, t.filter_workspace),
                         (80, 1000000, 3, "drop", False))
        self.assertEqual(t.traceable_functions, ["main", "work"])

    # -- find_config_file -----------------------------------------------

    def require_clean_ancestors(self):
        if stconfig.find_config_file(os.path.dirname(self.tmp)) is not None:
            self.skipTest("a directory above %s holds a steptrace config"
                          % self.tmp)

    def test_find_upward_and_order(self):
        self.require_clean_ancestors()
        deep = self.path("a", "b", "c")
        os.makedirs(deep)
        self.assertIsNone(stconfig.find_config_file(deep))
        top = self.write("steptrace.yaml", "log_level: DEBUG\n")
        self.assertEqual(stconfig.find_config_file(deep), top)
        # 0.3.0's test: found from a subdirectory.
        self.assertEqual(steptrace.find_config_file(self.path("a")), top)
        # A nearer file wins; in one directory .yaml, .yml, .toml, then
        # pyproject.toml.
        pyproject = self.write("a/b/pyproject.toml",
                               "[tool.steptrace]\nlog_level = 'INFO'\n")
        self.assertEqual(stconfig.find_config_file(deep), pyproject)
        toml = self.write("a/b/steptrace.toml", "")
        self.assertEqual(stconfig.find_config_file(deep), toml)
        yml = self.write("a/b/steptrace.yml", "")
        self.assertEqual(stconfig.find_config_file(deep), yml)
        yaml = self.write("a/b/steptrace.yaml", "")
        self.assertEqual(stconfig.find_config_file(deep), yaml)
        # A file as the start: its directory.
        script = self.write("a/b/c/s.py", "")
        self.assertEqual(stconfig.find_config_file(script), yaml)
        # A directory named like a config file is not one.
        os.mkdir(self.path("a", "b", "c", "steptrace.yaml"))
        self.assertEqual(stconfig.find_config_file(deep), yaml)

    def test_find_skips_pyproject_without_table(self):
        self.require_clean_ancestors()
        top = self.write("steptrace.yml", "log_level: DEBUG\n")
        self.write("proj/pyproject.toml", """\
            [project]
            name = "proj"
            [tool.black]
            line-length = 79
            # [tool.steptrace] in a comment does not count
            """)
        self.write("proj/src/pyproject.toml", "[tool.steptrace.x\n")
        self.assertEqual(stconfig.find_config_file(self.path("proj")), top)
        # A pyproject.toml that mentions the table but does not parse is
        # found, so that load_config reports its syntax error.
        self.assertEqual(stconfig.find_config_file(self.path("proj", "src")),
                         self.path("proj", "src", "pyproject.toml"))
        with_table = self.write("proj/pyproject.toml", """\
            [project]
            name = "proj"

            [tool.steptrace]
            log_output = "STDOUT"
            """)
        self.assertEqual(stconfig.find_config_file(self.path("proj")),
                         with_table)

    def test_find_defaults_to_cwd(self):
        self.require_clean_ancestors()
        path = self.write("w/steptrace.yaml", "")
        old = os.getcwd()
        os.chdir(self.path("w"))
        self.addCleanup(os.chdir, old)
        self.assertEqual(stconfig.find_config_file(), path)


SCRIPT = """\
    import sys
    sys.path.insert(0, %r)
    import other
    def work(n):
        total = 0
        for i in range(n):
            total += other.twice(i)
        return total
    print("result", work(2))
    """
OTHER = """\
    def twice(x):
        return 2 * x
    """


class ConfigCliTest(TempDirTest):
    """`python -m steptrace run` with config files."""

    def setUp(self):
        super().setUp()
        if stconfig.find_config_file(os.path.dirname(self.tmp)) is not None:
            self.skipTest("a directory above %s holds a steptrace config"
                          % self.tmp)
        # proj/app/main.py is the script; proj2/other.py is outside its
        # workspace; the command runs from cwd/, away from both.
        self.proj = self.path("proj")
        self.script_path = helpers.write(
            self.path("proj", "app", "main.py"),
            SCRIPT % self.path("proj2"))
        helpers.write(self.path("proj2", "other.py"), OTHER)
        self.cwd = self.path("cwd")
        os.makedirs(self.cwd)

    def run_cli(self, *args):
        # Options before the script: after it, a bad value is the
        # script's (with a warning), not an error.
        return helpers.steptrace_run(self.cwd, *args, self.script_path)

    def steps(self, text):
        return [int(n) for n in STEP_RE.findall(text)]

    def assert_bad_config(self, r, *needles):
        """Exit 2, one stderr line, nothing run, nothing traced."""
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stdout, "", r)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r)
        self.assertTrue(lines[0].startswith("steptrace: error: "), r)
        for needle in needles:
            self.assertIn(needle, lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.cwd, ".tracer")))
        return lines[0]

    def test_discovered_yaml_from_script_directory(self):
        helpers.write(self.path("proj", "steptrace.yaml"), """\
            log-output: stdout
            variable_mode: Changed
            """)
        r = self.run_cli()
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stderr, "")
        self.assertTrue(r.stdout.endswith("result 2\n"), r)
        self.assertEqual(self.steps(r.stdout)[:2], [1, 2])
        self.assertIn("[NEW] n: int :: 2", r.stdout)
        self.assertNotIn("------> Local variables <------", r.stdout)
        # The workspace filter (on by default) keeps proj2/ out.
        self.assertNotIn("other.py", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.cwd, ".tracer")))

    def test_cli_options_override_config(self):
        helpers.write(self.path("proj", "app", "steptrace.yml"), """\
            log_output: STDOUT
            filter_workspace: true
            repr_limit: 5
            """)
        # --log-output wins over the file: the trace goes to the log file.
        r = self.run_cli("--log-output", "file")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "result 2\n")
        log = helpers.read(os.path.join(self.cwd, ".tracer", "tracer.log"))
        self.assertEqual(self.steps(log)[:1], [1])
        # --no-filter-workspace switches the file's true off.
        r = self.run_cli("--no-filter-workspace", "--repr-limit", "1000")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(os.path.join(self.path("proj2"), "other.py") +
                      "::twice -- line 2", r.stdout)
        # Without it, the config's true holds.
        r = self.run_cli()
        self.assertNotIn("other.py", r.stdout)

    def test_explicit_config_wins_over_discovery(self):
        # The discovered file is broken; --config names another one.
        helpers.write(self.path("proj", "steptrace.yaml"), "log_level: [\n")
        good = helpers.write(self.path("elsewhere", "conf.yaml"),
                             "log_output: STDOUT\nvariable_mode: NONE\n")
        for args in (["--config", good], ["--config=" + good], ["-c", good]):
            r = self.run_cli(*args)
            self.assertEqual(r.returncode, 0, r)
            self.assertIn("-- line", r.stdout)
            self.assertNotIn("variables", r.stdout)
        # Options may come before the script, too.
        r = helpers.steptrace_run(self.cwd, "-c", good, self.script_path,
                                  "--log-output", "STDERR")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, "result 2\n")
        self.assertIn("-- line", r.stderr)
        # And the broken one, when discovered, is an error.
        self.assert_bad_config(self.run_cli(), self.path("proj",
                                                         "steptrace.yaml"))

    def test_config_settings_take_effect(self):
        helpers.write(self.path("proj", "steptrace.yaml"), """\
            log_output: FILE_STDOUT
            log_dir: ../logs
            traceable_functions: [twice]
            filter_workspace: off
            """)
        r = self.run_cli()
        self.assertEqual(r.returncode, 0, r)
        log = helpers.read(self.path("logs", "tracer.log"))
        self.assertEqual(r.stdout, log + "result 2\n")
        self.assertNotIn("::work", log)
        self.assertIn("::twice -- line 2", log)
        helpers.write(self.path("proj", "steptrace.yaml"),
                      "log_level: silent\n")
        r = self.run_cli()
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "result 2\n", ""))
        self.assertFalse(os.path.exists(os.path.join(self.cwd, ".tracer")))

    def test_async_and_on_full_settings_are_accepted(self):
        helpers.write(self.path("proj", "steptrace.yaml"), """\
            log_output: stdout
            trace_async: true
            async_threshold_ms: 2.5
            on_full: drop
            """)
        # AsyncTracer is not there yet: the run is traced as usual.
        for args in ([], ["--no-trace-async"], ["--trace-async"],
                     ["--async-threshold-ms", "0"], ["--on-full", "BLOCK"],
                     ["--async-threshold-ms=10", "--on-full=drop"]):
            r = self.run_cli(*args)
            self.assertEqual(r.returncode, 0, r)
            self.assertEqual(r.stderr, "")
            self.assertTrue(r.stdout.endswith("result 2\n"))
            self.assertEqual(self.steps(r.stdout)[:1], [1])
        for args, needle in (
                (["--async-threshold-ms", "soon"], "invalid "
                 "--async-threshold-ms value 'soon'"),
                (["--async-threshold-ms", "-1"], "milliseconds, 0 or more"),
                (["--on-full", "wait"], "invalid --on-full value 'wait': "
                 "choose one of block, drop"),
                (["--config"], "--config needs a value")):
            # A missing value at the end: nothing after it to take.
            r = (helpers.steptrace_run(self.cwd, *args) if args == ["--config"]
                 else self.run_cli(*args))
            self.assertEqual(r.returncode, 2, r)
            self.assertIn(needle, r.stderr)

    def test_bad_configs_exit_2(self):
        conf = self.path("proj", "steptrace.yaml")
        cases = [
            ("log_levl: DEBUG\n", conf + ": unknown key 'log_levl' (did you "
             "mean log_level?); valid keys are " + ALL_KEYS),
            ("log_level: loud\n", conf + ": log_level: unknown value "
             "'loud'; valid values are " + LEVELS),
            ("log_output: PRINTER\n", conf + ": log_output: unknown value "
             "'PRINTER'; valid values are " + OUTPUTS),
            ("variable_mode: SOME\n", conf + ": variable_mode: unknown value "
             "'SOME'; valid values are " + MODES),
            ("filter_workspace: maybe\n", conf + ": filter_workspace: "
             "expected true or false, got 'maybe' (a string)"),
            ("repr_limit: many\n", conf + ": repr_limit: expected a whole "
             "number"),
            ("log_level: [\n", conf + ":2:1: "),
            ("a: 1\n---\nb: 2\n", conf + ":2:1: a second YAML document"),
        ]
        for text, needle in cases:
            helpers.write(conf, text)
            self.assert_bad_config(self.run_cli(), needle)
        os.unlink(conf)
        missing = self.path("nope.yml")
        self.assert_bad_config(self.run_cli("--config", missing),
                               "steptrace: error: %s: cannot read config "
                               "file: No such file or directory" % missing)
        self.assert_bad_config(self.run_cli("-c", self.proj),
                               "unsupported config file type")
        self.assert_bad_config(self.run_cli("--config="),
                               "--config needs a file name")

    @unittest.skipUnless(HAVE_TOML, "TOML needs Python 3.11+ (tomllib)")
    def test_toml_and_pyproject(self):
        helpers.write(self.path("pyproject.toml"), """\
            [project]
            name = "x"

            [tool.steptrace]
            log-output = "stdout"
            variable-mode = "none"
            """)
        r = self.run_cli()
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("-- line", r.stdout)
        self.assertNotIn("variables", r.stdout)
        # A steptrace.toml nearer the script wins.
        helpers.write(self.path("proj", "steptrace.toml"),
                      'log_output = "STDERR"\n')
        r = self.run_cli()
        self.assertEqual(r.stdout, "result 2\n")
        self.assertIn("Global variables", r.stderr)
        helpers.write(self.path("proj", "steptrace.toml"),
                      'log_output = "STDERR"\non_full = 3\n')
        self.assert_bad_config(self.run_cli(), "steptrace.toml: on_full: "
                               "expected one of block, drop, got 3")

    @unittest.skipIf(HAVE_TOML, "this Python reads TOML")
    def test_toml_on_python_310(self):
        helpers.write(self.path("proj", "steptrace.toml"),
                      'log_output = "STDOUT"\n')
        self.assert_bad_config(self.run_cli(), "steptrace.toml: TOML config "
                               "files need Python 3.11 or newer",
                               "steptrace.yaml")
        os.unlink(self.path("proj", "steptrace.toml"))
        helpers.write(self.path("proj", "pyproject.toml"),
                      '[tool.steptrace]\nlog_output = "STDOUT"\n')
        self.assert_bad_config(self.run_cli(), "pyproject.toml: TOML config "
                               "files need Python 3.11 or newer")

    def test_help_lists_config_options(self):
        r = helpers.steptrace_run(self.cwd, "--help")
        self.assertEqual(r.returncode, 0, r)
        for option in ("-c, --config FILE", "--trace-async",
                       "--no-trace-async", "--async-threshold-ms MS",
                       "--on-full", "pyproject.toml", "[tool.steptrace]",
                       "--no-filter-workspace", "--log-level"):
            self.assertIn(option, r.stdout)


if __name__ == "__main__":
    unittest.main()
