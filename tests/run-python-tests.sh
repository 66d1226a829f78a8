#!/usr/bin/env bash
# Runs the Python end-to-end tests against an installed copy of a build:
#   run-python-tests.sh BUILD_DIR PYTHON TEST_DIR
# The build is installed with `meson install --destdir` into BUILD_DIR, so
# the tests import steptrace the way users do (no source tree on the path)
# and find the steptraced it installed.  Registered by tests/meson.build.
set -euo pipefail
build=$1
py=$2
tests=$3

stage=$build/python-stage
rm -rf "$stage"
meson install -C "$build" --destdir "$stage" --no-rebuild --quiet >/dev/null
so=$(find "$stage" -name '_agent*.so' -print -quit)
exe=$(find "$stage" -name steptraced -type f -print -quit)
if [ -z "$so" ] || [ -z "$exe" ]; then
    echo "run-python-tests: the install in $stage lacks _agent or steptraced" >&2
    exit 1
fi
export PYTHONPATH
PYTHONPATH=$(dirname "$(dirname "$so")")
export STEPTRACED=$exe
export PATH=$(dirname "$exe"):$PATH
export PYTHONDONTWRITEBYTECODE=1
unset STEPTRACE_SOCKET
# An ASan build's agent loads into a stock interpreter only with the ASan
# runtime preloaded; Python's own allocations go through malloc so that
# ASan sees them, leaks are not looked for (the interpreter's own), and
# the program's fatal signals stay the program's (the tests check them).
asan=$(ldd "$so" 2>/dev/null | awk '/libasan\.so/ {print $3; exit}')
if [ -n "$asan" ]; then
    export LD_PRELOAD=$asan${LD_PRELOAD:+:$LD_PRELOAD}
    export PYTHONMALLOC=malloc
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0:handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0:allow_user_segv_handler=1
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
    echo "run-python-tests: the agent is an ASan build: $asan preloaded"
fi
echo "run-python-tests: $("$py" -c 'import sys; print(sys.version.split()[0])') from $py; steptrace from $PYTHONPATH"
cd "$tests"
if "$py" -c 'import pytest' 2>/dev/null; then
    exec "$py" -m pytest -q -p no:cacheprovider "$tests"
fi
exec "$py" -m unittest discover -s "$tests" -t "$tests" -v
