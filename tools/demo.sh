#!/usr/bin/env bash
# The main job: installs what is missing, builds and installs steptrace into
# .venv (pip + meson-python), starts a steptraced collector on a private
# socket, traces examples/demo.py through it and says where the log is.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

tools/deps.sh
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
echo "demo: building and installing steptrace into .venv" >&2
.venv/bin/python -m pip install --no-build-isolation --no-deps --quiet \
    --disable-pip-version-check .

sockdir=$(mktemp -d /tmp/steptrace-demo.XXXXXX)
sock=$sockdir/steptraced.sock
.venv/bin/steptraced --socket "$sock" &
collector=$!
trap 'kill -TERM $collector 2>/dev/null || true; rm -rf "$sockdir"' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

rm -rf "$root/.tracer"
STEPTRACE_SOCKET=$sock .venv/bin/steptrace run examples/demo.py
kill -TERM $collector
wait $collector
trap - EXIT
rm -rf "$sockdir"

log=$root/.tracer/tracer.log
echo
echo "demo: traced examples/demo.py through steptraced ($(grep -c -- '- Step ' "$log") steps)"
echo "demo: the log is $log"
