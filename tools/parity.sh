#!/usr/bin/env bash
# python-steptrace 0.3.0's own test suite against this build.
#
#   tools/parity.sh DIR [PYTHON]
#
# DIR is a checkout of python-steptrace 0.3.0 (github.com/Sepuh077/steptrace,
# not fetched here: the machines reach no network but the package
# registries).  Its tests/ run with PYTHON (default Debian's python3) and
# this build's package (build/main's staged install), its own steptrace/
# package kept off the path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
src=${1:?usage: tools/parity.sh DIR [PYTHON]}
py=${2:-/usr/bin/python3}
[ -d "$src/tests" ] || { echo "parity: $src has no tests/ (a python-steptrace checkout?)" >&2; exit 2; }
stage=$root/build/main/python-stage
[ -d "$stage" ] || { echo "parity: no staged build: run tools/test.sh first" >&2; exit 2; }
site=$("$py" - "$stage" <<'PY'
import glob, sys
hits = glob.glob(sys.argv[1] + "/usr/local/lib/python3*/*-packages/steptrace")
print(hits[0].rsplit("/", 1)[0] if hits else "")
PY
)
[ -n "$site" ] || { echo "parity: steptrace is not in $stage" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/tests" "$work/tests"
cd "$work"
PYTHONPATH=$site STEPTRACED=$stage/usr/local/bin/steptraced \
    "$py" -m pytest -q -p no:cacheprovider tests
