#!/usr/bin/env bash
# Runs the test suite: unit binaries from $BUILD/tests and end-to-end scripts in tests/e2e.
#   tests/run.sh        everything
#   tests/run.sh unit   unit binaries only
#   tests/run.sh san    the sanitizer pass: unit binaries and the e2e scripts marked "# san"
#   tests/run.sh cuda   the CUDA checks in $BUILD/tests-cuda and tests/cuda/*.sh (needs a GPU)
# Each e2e script gets BIN (the binary), ROOT (the checkout) and a fresh TMP directory; it passes
# by exiting 0. The runner exits 1 if anything failed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
BIN=${BIN:-./r1-distill}
MODE=${1:-all}
cd "$ROOT"
case "$BIN" in /*) ;; *) BIN="$ROOT/${BIN#./}" ;; esac
export BIN ROOT
# idle OpenMP threads sleep: spinning ones make a loaded machine crawl (see distill/main.c)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
pass=0; fail=0; failed=()
run() {  # name, command...
    local name=$1; shift
    local start=$SECONDS log
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then
        pass=$((pass + 1)); printf '  ok    %-44s %3ds\n' "$name" $((SECONDS - start))
    else
        fail=$((fail + 1)); failed+=("$name")
        printf '  FAIL  %-44s %3ds\n' "$name" $((SECONDS - start))
        # the failing checks first (a long log's tail may not reach them), then the tail
        grep -m 20 'FAIL' "$log" | sed 's/^/        ! /'
        sed 's/^/        | /' "$log" | tail -n 60
    fi
    rm -f "$log"
}
echo "tests ($MODE, $BUILD):"
if [ "$MODE" = cuda ]; then
    for t in "$BUILD"/tests-cuda/test_*; do
        [ -x "$t" ] && run "cuda/$(basename "$t")" "$t"
    done
    # command-level GPU scripts (as the e2e scripts); the multi-GPU ones need 2 GPUs and are
    # reported as not run where there are fewer
    export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    for s in tests/cuda/*.sh; do
        case "$(basename "$s")" in gpu_deps.sh | run_device.sh | lib_*.sh) continue ;; esac
        name="cuda/$(basename "$s" .sh)"
        if [[ "$s" == *multi_gpu* ]] && [ "${gpus:-0}" -lt 2 ]; then
            printf '  NOT RUN %-42s needs 2 GPUs, %s visible\n' "$name" "${gpus:-0}"
            continue
        fi
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/r1test.XXXXXX")
        run "$name" env TMP="$tmp" bash "$s"
        rm -rf "$tmp"
    done
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ] || { printf 'failed: %s\n' "${failed[@]}"; exit 1; }
    exit 0
fi
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run "unit/$(basename "$t")" "$t"
done
if [ "$MODE" != unit ]; then
    for s in tests/e2e/*.sh; do
        [ -f "$s" ] || continue
        if [ "$MODE" = san ] && ! grep -q '^# san' "$s"; then continue; fi
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/r1test.XXXXXX")
        run "e2e/$(basename "$s" .sh)" env TMP="$tmp" bash "$s"
        rm -rf "$tmp"
    done
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || { printf 'failed: %s\n' "${failed[@]}"; exit 1; }
