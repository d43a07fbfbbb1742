#!/usr/bin/env bash
# make bench: runs every bench/*.sh (except this one) in name order. Benchmarks report figures;
# they never fail the build, so a failing benchmark is reported and the next one runs.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export BIN=${BIN:-$ROOT/r1-distill}
for b in "$ROOT"/bench/*.sh; do
    [ "$(basename "$b")" = run.sh ] && continue
    echo "== $(basename "$b" .sh)"
    bash "$b" || echo "(benchmark $(basename "$b") failed with status $?)"
done
exit 0
