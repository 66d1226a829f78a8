"""`steptrace show`, `query`, `export` and `stats`: the step store's
readers (docs/STEP-STORE.md).  The work is done by the C program
steptrace-read, installed beside steptraced; this module finds it and
runs it with the same arguments, through a pager (``$PAGER``, else
``less -FRX``) when standard output is a terminal and the command prints
records (show, query).
"""
import os
import shutil
import subprocess
import sys

from ._collector import find_program

COMMANDS = ("show", "query", "export", "stats")
_PAGED = ("show", "query")


def _pager():
    """The pager's argv, or None (no terminal, or none installed)."""
    if not sys.stdout.isatty():
        return None
    cmd = os.environ.get("PAGER")
    if cmd is not None:
        return cmd.split() or None
    less = shutil.which("less")
    return [less, "-FRX"] if less else None


def _wants_help(argv):
    return any(a in ("-h", "--help") for a in argv)


def run(cmd, argv):
    """Runs `steptrace-read CMD ARGV...`; returns its exit status."""
    exe = find_program("steptrace-read", "STEPTRACE_READ")
    if exe is None:
        sys.stderr.write("steptrace: cannot find the steptrace-read "
                         "executable: install steptrace with pip or set "
                         "STEPTRACE_READ to its path\n")
        return 2
    args = [exe, cmd] + list(argv)
    try:
        sys.stdout.flush()
    except Exception:
        pass
    pager = _pager() if cmd in _PAGED and not _wants_help(argv) else None
    if pager is None:
        try:
            return subprocess.call(args)
        except KeyboardInterrupt:
            return 130
    reader = subprocess.Popen(args, stdout=subprocess.PIPE)
    try:
        page = subprocess.Popen(pager, stdin=reader.stdout)
    except OSError:
        reader.stdout.close()
        reader.kill()
        reader.wait()
        return subprocess.call(args)
    reader.stdout.close()
    try:
        page.wait()
    except KeyboardInterrupt:
        page.wait()
    status = reader.wait()
    # The pager quit early: the reader's output ended, which is no error.
    return status if status >= 0 else 0
