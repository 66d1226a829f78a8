"""A pip install of the source tree into a venv gives working `steptrace`
and `steptraced` commands (Debian's python3 only: it has meson-python)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEBIAN_PYTHON = "/usr/bin/python3"


def _have_mesonpy():
    try:
        import mesonpy  # noqa: F401
    except ImportError:
        return False
    return True


class InstallTest(unittest.TestCase):

    def setUp(self):
        if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON):
            self.skipTest("the install test runs with %s only (this is %s)"
                          % (DEBIAN_PYTHON, sys.executable))
        if not _have_mesonpy():
            self.skipTest("meson-python (module mesonpy) is not installed "
                          "for %s" % sys.executable)
        td = tempfile.TemporaryDirectory(prefix="steptrace-install-")
        self.addCleanup(td.cleanup)
        self.tmp = os.path.realpath(td.name)

    def test_pip_install_gives_working_commands(self):
        venv = os.path.join(self.tmp, "venv")
        # Nothing of the test runner's staged install may leak in.
        env = helpers.environ(PYTHONPATH=None, STEPTRACED=None,
                              PIP_DISABLE_PIP_VERSION_CHECK="1",
                              PIP_NO_INPUT="1")
        r = helpers.run([DEBIAN_PYTHON, "-m", "venv", "--system-site-packages",
                         venv], self.tmp, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r)
        vpy = os.path.join(venv, "bin", "python")
        # pip builds in the tree it is given and meson-python leaves a
        # native file there: install from a copy of the working tree so
        # that the shared checkout stays clean.
        src = os.path.join(self.tmp, "src")
        shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", "build", "build-*", "build.*", ".tracer", "__pycache__",
            ".mesonpy*", ".venv", ".stage*"))
        r = helpers.run([vpy, "-m", "pip", "install", "--no-build-isolation",
                         "--no-deps", "--no-index", src], self.tmp, env=env,
                        timeout=600)
        self.assertEqual(r.returncode, 0, r)
        for name in ("steptrace", "steptraced"):
            exe = os.path.join(venv, "bin", name)
            self.assertTrue(os.path.isfile(exe) and os.access(exe, os.X_OK),
                            "%s is missing from the venv's bin: %r"
                            % (name, sorted(os.listdir(os.path.dirname(exe)))))
        # The venv's package, not a source tree or a staged copy.
        r = helpers.run([vpy, "-c", "import steptrace; print(steptrace.__file__)"],
                        self.tmp, env=env)
        self.assertEqual(r.returncode, 0, r)
        self.assertTrue(r.stdout.strip().startswith(venv + os.sep), r)
        # Run from a directory outside the source tree.
        work = os.path.join(self.tmp, "work")
        os.mkdir(work)
        demo = os.path.join(work, "demo.py")
        shutil.copy(os.path.join(REPO, "examples", "demo.py"), demo)
        env_run = dict(env)
        env_run["PATH"] = os.path.join(venv, "bin") + os.pathsep + \
            env.get("PATH", "")
        plain = helpers.run([vpy, "demo.py"], work, env=env_run)
        self.assertEqual(plain.returncode, 0, plain)
        self.assertTrue(plain.stdout.startswith("basket total:"), plain)
        r = helpers.run([os.path.join(venv, "bin", "steptrace"), "run",
                         "demo.py"], work, env=env_run)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, plain.stdout)
        log = os.path.join(work, ".tracer", "tracer.log")
        self.assertTrue(os.path.isfile(log), "no %s: %r" % (log, r))
        recs = helpers.parse_log(helpers.read(log))
        helpers.assert_steps_contiguous(self, recs)
        self.assertEqual({x.file for x in recs}, {demo})
        self.assertTrue({"<module>", "main", "basket", "price_with_tax"}
                        <= {x.func for x in recs})


if __name__ == "__main__":
    unittest.main()
