#!/usr/bin/env bash
# Formats the C sources with the repository's .clang-format.
#
#   tools/format.sh            format every C file in place
#   tools/format.sh --check    change nothing; print the diff of each file
#                              that is not formatted and exit 1 (CI runs it)
#   tools/format.sh [--check] FILE...   only these files
#
# The C files are every *.c and *.h that git tracks (outside a git checkout,
# every one found outside build/ and .venv/).  The layout is clang-format
# 14's, Debian 12's: set CLANG_FORMAT to use another binary; another major
# version may lay some lines out differently and is warned about.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
if [ "${1:-}" = "--check" ]; then
    check=1
    shift
fi
case "${1:-}" in
-*) echo "usage: tools/format.sh [--check] [FILE...]" >&2; exit 2 ;;
esac

cf=${CLANG_FORMAT:-}
if [ -z "$cf" ]; then
    for cand in clang-format-14 clang-format; do
        if command -v "$cand" >/dev/null; then
            cf=$cand
            break
        fi
    done
fi
if [ -z "$cf" ] || ! command -v "$cf" >/dev/null; then
    echo "format: clang-format not found (tools/deps.sh installs it)" >&2
    exit 2
fi
version=$("$cf" --version)
case "$version" in
*" version 14."*) ;;
*) echo "format: $cf is not clang-format 14 ($version); CI's may differ" >&2 ;;
esac

files=()
if [ $# -gt 0 ]; then
    files=("$@")
elif git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files -- '*.c' '*.h')
else
    mapfile -t files < <(find . \( -path ./build -o -path ./.venv \) -prune \
        -o -type f \( -name '*.c' -o -name '*.h' \) -print | sed 's|^\./||' |
        sort)
fi
if [ ${#files[@]} -eq 0 ]; then
    echo "format: no C files" >&2
    exit 2
fi

if [ $check = 0 ]; then
    "$cf" --style=file -i -- "${files[@]}"
    exit 0
fi

bad=0
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for f in "${files[@]}"; do
    "$cf" --style=file -- "$f" >"$tmp"
    if ! diff -u --label "a/$f" --label "b/$f" -- "$f" "$tmp"; then
        bad=$((bad + 1))
    fi
done
if [ $bad -gt 0 ]; then
    echo "format: $bad of ${#files[@]} C files are not formatted;" \
        "tools/format.sh formats them" >&2
    exit 1
fi
echo "format: ${#files[@]} C files formatted" >&2
