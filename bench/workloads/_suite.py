"""Real code for bench/run.py: a pure-Python project's own test suite, run
with pytest.main() inside the traced region (issue 15, item 3).

Each suite_*.py workload names a package from Debian's dist-packages.  On
import (before the tracer starts) the package is copied next to the
workload, into the directory that is the tracer's workspace, so that its
code is traced as the program's own while pytest, which stays in
dist-packages, is not.  `run(units)` runs the package's tests `units` times
and returns the outcome counts: run.py compares them with the untraced
run's, so a traced run whose tests do not give the same results fails the
benchmark.

Needs Debian's python3-pytest and the package (see bench/README.md).  For
an interpreter other than Debian's python3 (pyenv's 3.10, 3.12, 3.13) the
pure-Python pytest of Debian is put on sys.path through a directory of
symbolic links (in the temporary directory, outside the workspace), as
nothing can be installed from PyPI here.
"""
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DIST = "/usr/lib/python3/dist-packages"
# pytest 7 and what it imports, as Debian ships them.
PYTEST_PARTS = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging",
                "py.py", "attr", "attrs", "tomli", "exceptiongroup")


class SuiteMissing(Exception):
    pass


def _pytest_path():
    try:
        import pytest  # noqa: F401
        return
    except ImportError:
        pass
    # Outside the workspace (this directory), or pytest's own lines would
    # be counted and traced as the program's.
    site = os.path.join(tempfile.gettempdir(),
                        "steptrace-bench-pytest-%d" % os.getuid())
    os.makedirs(site, exist_ok=True)
    for part in PYTEST_PARTS:
        src, dst = os.path.join(DIST, part), os.path.join(site, part)
        if os.path.exists(src) and not os.path.lexists(dst):
            os.symlink(src, dst)
    sys.path.append(site)
    try:
        import pytest  # noqa: F401,F811
    except ImportError as e:
        raise SuiteMissing("pytest cannot be imported (%s): install Debian's "
                           "python3-pytest (bench/README.md)" % e)


def prepare(package, extra=()):
    """Copies `package` (and `extra` packages it imports) from Debian's
    dist-packages next to this file; makes pytest importable."""
    for name in (package,) + tuple(extra):
        src = os.path.join(DIST, name)
        if not os.path.isdir(src):
            raise SuiteMissing("%s is not installed: apt-get install "
                               "python3-%s (bench/README.md)" % (src, name))
        dst = os.path.join(HERE, name)
        if not os.path.isdir(dst):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                "__pycache__"))
    _pytest_path()


class _Outcomes:
    def __init__(self):
        self.counts = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            key = report.outcome
            self.counts[key] = self.counts.get(key, 0) + 1


def run_tests(paths, units):
    """Runs pytest on `paths` (relative to this directory) `units` times;
    returns "outcome=N ..." of the last run."""
    import pytest
    out = None
    for _ in range(units):
        counter = _Outcomes()
        args = ["-q", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                "--rootdir", HERE] + [os.path.join(HERE, p) for p in paths]
        rc = pytest.main(args, plugins=[counter])
        out = "rc=%d %s" % (int(rc), " ".join(
            "%s=%d" % kv for kv in sorted(counter.counts.items())))
    return out
