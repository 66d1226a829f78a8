#!/usr/bin/env bash
# The fuzz harnesses of tests/fuzz/ under libFuzzer (docs/RELIABILITY.md
# "Fuzzing").
#
#   tools/fuzz.sh [SECONDS] [HARNESS...]   build, then run each harness for
#                                          SECONDS (default 60), one after
#                                          the other
#   tools/fuzz.sh --run HARNESS FILE...    build, then run HARNESS once on
#                                          each FILE (a reproducer)
#   tools/fuzz.sh --build                  only build
#
# HARNESS is one of: session control config record store (default: all).
# The build is build/fuzz: clang, the whole project compiled with
# -fsanitize=fuzzer-no-link and ASan+UBSan (-fno-sanitize-recover=undefined),
# each harness linked with -fsanitize=fuzzer (meson -Dfuzz=enabled).
# A run reads its seeds (tests/fuzz/corpus/HARNESS), the past findings
# (tests/fuzz/regress/HARNESS) and what earlier runs found
# (build/fuzz/corpus/HARNESS, where new inputs go), with the dictionary
# tests/fuzz/HARNESS.dict when there is one, inputs up to ST_FUZZ_MAX_LEN
# bytes (default 131072: past the collector's 64 KiB read chunk).  Any crash, leak, timeout, out-of-memory or broken
# invariant stops that harness; the script goes on with the others, then
# prints each reproducer's path (under build/fuzz/findings/HARNESS/) and
# exits 1.  Logs: build/fuzz/HARNESS.log.
set -uo pipefail
cd "$(dirname "$0")/.."

all="session control config record store"
build=build/fuzz
max_len=${ST_FUZZ_MAX_LEN:-131072}

fuzz_build() {
    local targets=() h
    for h in "$@"; do
        targets+=("fuzz_$h")
    done
    if [ ! -f "$build/build.ninja" ]; then
        mkdir -p build
        CC=clang meson setup "$build" -Dfuzz=enabled -Dtests=disabled \
            -Db_lundef=false -Db_sanitize=address,undefined \
            "-Dc_args=['-fsanitize=fuzzer-no-link','-fno-sanitize-recover=undefined','-fno-omit-frame-pointer']" \
            >"$build.setup.log" 2>&1 || { cat "$build.setup.log"; return 1; }
    fi
    # build.ninja first: meson compile knows only the targets it had.
    { ninja -C "$build" build.ninja &&
        meson compile -C "$build" "${targets[@]}"; } >"$build.compile.log" 2>&1 ||
        { cat "$build.compile.log"; return 1; }
}

check_names() {
    local h
    for h in "$@"; do
        case " $all " in
        *" $h "*) ;;
        *) echo "fuzz: no harness '$h' (one of: $all)" >&2; return 2 ;;
        esac
    done
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [ "${1:-}" = --build ]; then
    fuzz_build $all
    exit
fi
if [ "${1:-}" = --run ]; then
    [ $# -ge 3 ] || { echo "usage: tools/fuzz.sh --run HARNESS FILE..." >&2; exit 2; }
    h=$2
    shift 2
    check_names "$h" || exit 2
    fuzz_build "$h" || exit 1
    exec "$build/tests/fuzz/fuzz_$h" "$@"
fi

secs=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
names=${*:-$all}
check_names $names || exit 2
fuzz_build $names || exit 1

status=0
found=()
for h in $names; do
    work=$build/corpus/$h
    art=$build/findings/$h
    mkdir -p "$work" "$art"
    args=(-max_total_time="$secs" -max_len="$max_len" -timeout=25
          -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/")
    [ -f "tests/fuzz/$h.dict" ] && args+=(-dict="tests/fuzz/$h.dict")
    # The collector logs every protocol error on stderr: closed for the
    # harness (libFuzzer and the sanitizers keep a copy for their reports).
    case $h in session | control) args+=(-close_fd_mask=2) ;; esac
    echo "=== fuzz_$h: $secs s"
    dirs=("$work" "tests/fuzz/corpus/$h")
    [ -d "tests/fuzz/regress/$h" ] && dirs+=("tests/fuzz/regress/$h")
    "$build/tests/fuzz/fuzz_$h" "${args[@]}" "${dirs[@]}" >"$build/$h.log" 2>&1
    rc=$?
    grep -E '^(stat::|#[0-9]+ +DONE)' "$build/$h.log" | tail -n 8
    if [ $rc -ne 0 ]; then
        status=1
        tail -n 40 "$build/$h.log"
        while IFS= read -r f; do
            found+=("$f")
        done < <(grep -oE "(Test unit written to|written to) [^ ]+" "$build/$h.log" |
                 awk '{print $NF}')
        [ ${#found[@]} -gt 0 ] || found+=("(no reproducer written; see $build/$h.log)")
    fi
done
if [ $status -ne 0 ]; then
    echo "fuzz: findings (reproduce with tools/fuzz.sh --run HARNESS FILE):"
    printf '  %s\n' "${found[@]}"
fi
exit $status
