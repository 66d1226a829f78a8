#!/usr/bin/env bash
# Installs the Debian 12 packages steptrace needs to build and test, if any
# is missing (libclang-rt-14-dev is libFuzzer, for tools/fuzz.sh).  Needs
# root (apt-get); does nothing when all are present.
set -euo pipefail

PKGS="gcc libc6-dev meson ninja-build pkg-config python3 python3-dev
python3-venv python3-pip python3-mesonpy python3-pytest libuv1-dev
libmsgpack-dev libyaml-dev check clang-format clang rsyslog
libclang-rt-14-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
