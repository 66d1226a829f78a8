#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs
#  - the check-based C tests (common/, the collector) and the Python
#    end-to-end tests with Debian's python3, in build/main;
#  - the Python end-to-end tests again with every other CPython 3.10-3.13
#    found (pyenv), each in its own build/pyX.Y; an absent one is skipped
#    with a message.
# Set ST_SANITIZE=1 to also run the C tests under ASan+UBSan (build/asan),
# the fuzz harnesses' corpora and past findings (suite 'fuzz') included.
# Ends with one line "N passed, N failed, N skipped" (meson tests).
set -uo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh || exit 1

status=0
builds=()

setup() { # name, meson args...
    local name=$1
    shift
    if [ -f "build/$name/build.ninja" ]; then
        meson setup --reconfigure "build/$name" "$@" >"build/$name.setup.log" 2>&1
    else
        mkdir -p build
        meson setup "build/$name" "$@" >"build/$name.setup.log" 2>&1
    fi || { cat "build/$name.setup.log"; return 1; }
    meson compile -C "build/$name" || return 1
}

run() { # name, meson test args...
    local name=$1
    shift
    builds+=("$name")
    echo "=== build/$name: meson test $*"
    meson test -C "build/$name" --print-errorlogs "$@" || status=1
}

find_python() { # minor version, e.g. 3.12
    local v=$1 root cand
    root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for cand in "$root"/versions/"$v".*/bin/python "$HOME"/.pyenv/versions/"$v".*/bin/python; do
        [ -x "$cand" ] && { echo "$cand"; return 0; }
    done
    command -v "python$v" 2>/dev/null
}

if setup main -Dtests=enabled; then
    run main
else
    status=1
fi

for v in 3.10 3.12 3.13; do
    py=$(find_python "$v")
    if [ -z "$py" ]; then
        echo "=== skip: CPython $v not found (install it with pyenv to test it)"
        continue
    fi
    if setup "py$v" -Dtests=enabled -Dpython="$py"; then
        run "py$v" --suite e2e
    else
        status=1
    fi
done

if [ "${ST_SANITIZE:-0}" = 1 ]; then
    if setup asan -Dtests=enabled -Db_sanitize=address,undefined \
            "-Dc_args=['-fno-sanitize-recover=all','-fno-omit-frame-pointer']"; then
        ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
            run asan --suite common --suite daemon --suite fuzz
        # The agent and steptraced under ASan+UBSan, in real interpreters
        # (run-python-tests.sh preloads the runtime).
        UBSAN_OPTIONS=print_stacktrace=1 run asan --suite e2e
    else
        status=1
    fi
    # clang's UBSan sees what gcc's does not (arithmetic on a NULL pointer,
    # NULL to memcpy with 0 bytes); b_lundef=false: mesonbuild/meson#764.
    if CC=clang setup clang-asan -Dtests=enabled -Db_lundef=false \
            -Db_sanitize=address,undefined \
            "-Dc_args=['-fno-sanitize-recover=all','-fno-omit-frame-pointer']"; then
        ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
            run clang-asan --suite common --suite daemon --suite fuzz
    else
        status=1
    fi
fi

python3 - "${builds[@]}" <<'PY'
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for name in sys.argv[1:]:
    try:
        lines = open("build/%s/meson-logs/testlog.json" % name).read().splitlines()
    except OSError:
        counts["failed"] += 1
        continue
    for line in lines:
        r = json.loads(line)["result"]
        key = {"OK": "passed", "SKIP": "skipped", "EXPECTEDFAIL": "passed"}.get(r, "failed")
        counts[key] += 1
print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
PY
exit $status
