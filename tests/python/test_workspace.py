"""`steptrace run -m MODULE`, `--workspace DIR` and workspace membership by
real path (issue 11, items 2 and 3).  Real interpreters, the real CLI and
collector, real files and symbolic links."""
import os
import re
import textwrap
import unittest

import helpers
from helpers import TempDirTest

LOC_RE = re.compile(r"^(/\S+)::(\S+) -- line \d+$", re.M)


def traced_files(log):
    """{file: set of functions} of the location lines of a log."""
    out = {}
    for path, func in LOC_RE.findall(log):
        out.setdefault(path, set()).add(func)
    return out


class ModuleTest(TempDirTest):
    """-m, as python -m."""

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)
        for name, text in {
            "pkg/__init__.py": "",
            "pkg/tool.py": """\
                import sys
                def add(a, b):
                    s = a + b
                    return s
                if __name__ == "__main__":
                    print(__name__, sys.argv[0].endswith("pkg/tool.py"),
                          sys.argv[1:], add(int(sys.argv[1]),
                                            int(sys.argv[2])))
                    sys.exit(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
                """,
            "tests/test_add.py": """\
                from pkg.tool import add
                def test_add():
                    r = add(2, 3)
                    assert r == 5
                def test_more():
                    assert add(1, 1) == 2
                """,
        }.items():
            os.makedirs(os.path.dirname(self.path(name)), exist_ok=True)
            helpers.write(self.path(name), textwrap.dedent(text))

    def test_a_package_module_runs_as_python_m_runs_it(self):
        plain = helpers.python(self.tmp, "-m", "pkg.tool", "4", "5", "3")
        r = helpers.steptrace_run(self.tmp, "--variable-mode", "changed",
                                  "-m", "pkg.tool", "4", "5", "3")
        self.assertEqual((r.returncode, r.stdout), (plain.returncode,
                                                    plain.stdout), r)
        self.assertEqual(r.stdout, "__main__ True ['4', '5', '3'] 9\n")
        log = self.log()
        files = traced_files(log)
        self.assertEqual(files[self.path("pkg/tool.py")],
                         {"<module>", "add"})
        self.assertIn("[NEW] s: int :: 9", log)
        # What comes after the module is the module's, options included.
        r = helpers.steptrace_run(self.tmp, "-m", "pkg.tool", "1", "2",
                                  "--log-level")
        self.assertNotEqual(r.returncode, 2, r)

    def test_pytest_traces_the_project_not_pytest(self):
        if helpers.python(self.tmp, "-c", "import pytest").returncode != 0:
            self.skipTest("pytest is not importable by %s (install Debian's "
                          "python3-pytest for it)" % helpers.PYTHON)
        r = helpers.steptrace_run(self.tmp, "-m", "pytest", "-q",
                                  "-p", "no:cacheprovider", "tests")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("2 passed", r.stdout)
        files = traced_files(self.log())
        self.assertEqual(set(files), {self.path("pkg/__init__.py"),
                                      self.path("pkg/tool.py"),
                                      self.path("tests/test_add.py")}, files)
        self.assertEqual(files[self.path("tests/test_add.py")],
                         {"<module>", "test_add", "test_more"})

    def test_mistakes(self):
        for args, needle in (
                (["-m"], "-m needs a module name"),
                (["-m", "--log-level"], "-m needs a module name"),
                (["-m", "no_such_module_here"],
                 "cannot run -m no_such_module_here: no module named "
                 "'no_such_module_here'"),
                (["x.py", "-m", "pkg.tool"], None)):
            r = helpers.steptrace_run(self.tmp, *args)
            self.assertEqual(r.returncode, 2, r)
            self.assertEqual(len(r.stderr.splitlines()), 1, r)
            if needle:
                self.assertIn(needle, r.stderr)
        self.assertFalse(os.path.exists(self.path(".tracer/tracer.log")))


class WorkspaceTest(TempDirTest):
    """--workspace, the workspace config key, and membership by real path."""

    def setUp(self):
        super().setUp()
        helpers.require_collector(self)
        files = {
            "proj/lib/shapes.py": """\
                def area(w, h):
                    a = w * h
                    return a
                """,
            "proj2/other.py": """\
                def twice(x):
                    y = 2 * x
                    return y
                """,
            "outside/far.py": """\
                def far(x):
                    z = x + 1
                    return z
                """,
            # Reaches proj/lib and proj2 through "..", a link from outside
            # into proj, and a link from proj to outside.
            "proj/scripts/main.py": """\
                import os, sys
                here = os.path.dirname(os.path.abspath(__file__))
                sys.path.insert(0, os.path.join(here, "..", "lib"))
                sys.path.insert(0, os.path.join(here, "..", "..", "proj",
                                                "..", "proj2"))
                sys.path.insert(0, os.path.join(here, "..", "ext"))
                import shapes, other, far
                print(shapes.area(2, 3), other.twice(4), far.far(1))
                """,
        }
        for name, text in files.items():
            os.makedirs(os.path.dirname(self.path(name)), exist_ok=True)
            helpers.write(self.path(name), textwrap.dedent(text))
        os.symlink(self.path("outside"), self.path("proj/ext"))

    def funcs(self, log_dir=".tracer"):
        return {os.path.basename(f): fs for f, fs in
                traced_files(self.log(log_dir=log_dir)).items()}

    def test_default_workspace_is_the_scripts_real_directory(self):
        r = helpers.steptrace_run(self.tmp, "proj/scripts/main.py")
        self.assertEqual((r.returncode, r.stdout), (0, "6 8 2\n"), r)
        # ".../scripts/../lib/shapes.py" is not under scripts/.
        self.assertEqual(self.funcs(), {"main.py": {"<module>"}})

    def test_workspace_option(self):
        r = helpers.steptrace_run(self.tmp, "--workspace", "proj",
                                  "proj/scripts/main.py")
        self.assertEqual((r.returncode, r.stdout), (0, "6 8 2\n"), r)
        # shapes (through ..) is in proj; proj2 (proj/../proj2) is not;
        # far.py, reached as proj/ext/far.py, really is outside.
        self.assertEqual(self.funcs(), {"main.py": {"<module>"},
                                        "shapes.py": {"<module>", "area"}})
        r = helpers.steptrace_run(self.tmp, "--workspace=proj/lib",
                                  "--workspace", "outside",
                                  "--log-dir", "two", "proj/scripts/main.py")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(self.funcs("two"),
                         {"shapes.py": {"<module>", "area"},
                          "far.py": {"<module>", "far"}})
        for args, needle in ((["--workspace"], "--workspace needs a value"),
                             (["--workspace=", "proj/scripts/main.py"],
                              "--workspace needs a directory")):
            r = helpers.steptrace_run(self.tmp, *args)
            self.assertEqual(r.returncode, 2, r)
            self.assertIn(needle, r.stderr)

    def test_a_link_into_the_workspace_is_in_it(self):
        os.symlink(self.path("proj/lib"), self.path("linked"))
        helpers.write(self.path("run.py"), textwrap.dedent("""\
            import sys
            sys.path.insert(0, "linked")
            from steptrace import Tracer
            import shapes
            with Tracer(workspace=["proj"]):
                shapes.area(1, 2)
            """))
        r = helpers.python(self.tmp, "run.py")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(self.funcs(), {"shapes.py": {"area"}})
        self.assertIn(self.path("linked/shapes.py") + "::area",
                      self.log(), "the location is the file as imported")

    def test_workspace_in_a_config_file_is_relative_to_it(self):
        helpers.write(self.path("proj/steptrace.yaml"),
                      "workspace: [lib, scripts]\n")
        r = helpers.steptrace_run(self.tmp, "proj/scripts/main.py")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(self.funcs(), {"main.py": {"<module>"},
                                        "shapes.py": {"<module>", "area"}})
        helpers.write(self.path("proj/steptrace.yaml"), "workspace: []\n")
        r = helpers.steptrace_run(self.tmp, "proj/scripts/main.py")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("workspace: expected a directory or a list of "
                      "directories", r.stderr)


if __name__ == "__main__":
    unittest.main()
