#!/usr/bin/env bash
# Runs every benchmark (bench/*.sh but this one) in turn. Benchmarks report figures beside
# their peers; they never fail the build, so a failing one is reported and the rest still run.
cd "$(dirname "$0")/.."
BIN=${BIN:-./r1-distill}
export BIN
for b in bench/*.sh; do
    [ "$(basename "$b")" = run.sh ] && continue
    echo "== $(basename "$b" .sh)"
    bash "$b" || echo "($(basename "$b") did not finish: exit $?)"
done
exit 0
