#!/usr/bin/env bash
# The agent's shared object must export nothing but PyInit__agent (every
# other symbol is hidden with -fvisibility=hidden), so that it can never
# clash with symbols of the interpreter or of other extensions.
set -euo pipefail
so=$1
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVWi]$/ { print $3 }' | sort)
if [ "$exported" != "PyInit__agent" ]; then
    echo "test-symbols: $so exports more than PyInit__agent:" >&2
    echo "$exported" >&2
    exit 1
fi
echo "test-symbols: $so exports only PyInit__agent"
