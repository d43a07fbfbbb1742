#!/usr/bin/env bash
# The CUDA training checks and benchmark in one go, for a GPU machine.
#
#   tests/cuda/run_device.sh              build, run both CUDA tests, then the benchmark
#   tests/cuda/run_device.sh --tests      build and run the tests only
#   tests/cuda/run_device.sh --prebuild   (on a build machine) build the three binaries and copy
#                                          them, with libcjson, into .devbin/ for a GPU machine
#                                          that cannot build (no -dev packages there)
#
# Full logs go to $OUT (default ./cuda-out): env.log, build.log, test_kernels.log, test_step.log,
# test_vs_cpu.log, train_devices.log, train_multi_gpu.log (2 GPUs), bench.log, bench_logs.tgz. The terminal gets the failures and summaries. Exits 1 if a test
# failed; the benchmark only reports.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BINS=(build/tests-cuda/test_train_kernels build/tests-cuda/test_train_step
      build/tests-cuda/test_train_vs_cpu build/bench/cuda_train)
JOBS=$(nproc 2>/dev/null || echo 4)

if [ "${1:-}" = --prebuild ]; then
    make -j"$JOBS" "${BINS[@]}" || exit 1
    mkdir -p .devbin
    cp "${BINS[@]}" .devbin/
    cjson=$(ldd build/bench/cuda_train | awk '/libcjson/ {print $3}')
    [ -n "$cjson" ] && cp -L "$cjson" .devbin/
    ex="$(git rev-parse --git-common-dir)/info/exclude"
    grep -qx '/.devbin/' "$ex" 2>/dev/null || echo '/.devbin/' >>"$ex"
    ls -la .devbin
    exit 0
fi

# everything ends within R1_TIME_BUDGET seconds (default 570: a 10-minute session with margin)
T_END=$(($(date +%s) + ${R1_TIME_BUDGET:-570}))
OUT=${OUT:-$ROOT/cuda-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0
{ nvidia-smi; nvcc --version; } >"$OUT/env.log" 2>&1
grep -m1 -E "H100|H200|NVIDIA" "$OUT/env.log"

if make -j"$JOBS" "${BINS[@]}" r1-distill >"$OUT/build.log" 2>&1; then
    K=build/tests-cuda/test_train_kernels S=build/tests-cuda/test_train_step B=build/bench/cuda_train
    C=build/tests-cuda/test_train_vs_cpu R=$ROOT/r1-distill
    echo "built here"
elif [ -x .devbin/test_train_kernels ]; then
    echo "build failed here (last lines below, whole log in build.log): using .devbin/"
    tail -n 3 "$OUT/build.log"
    export LD_LIBRARY_PATH="$ROOT/.devbin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    K=.devbin/test_train_kernels S=.devbin/test_train_step B=.devbin/cuda_train
    C=.devbin/test_train_vs_cpu R=
else
    echo "build failed and there is no .devbin/ (see tests/cuda/run_device.sh --prebuild):"
    tail -n 20 "$OUT/build.log"
    exit 1
fi

fail=0
for t in "$K:test_kernels" "$S:test_step" "$C:test_vs_cpu"; do
    bin=${t%%:*} log=${t##*:}
    echo "== $bin (log: $log.log)"
    start=$SECONDS
    "$bin" >"$OUT/$log.log" 2>&1
    rc=$?
    # failures with their detail lines, then the summary
    awk '/^  FAIL/ {p = 1; print; next} /^  ok/ {p = 0} p && /^       / {print}' "$OUT/$log.log" | head -n 80
    tail -n 2 "$OUT/$log.log"
    echo "   exit $rc, $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || fail=1
done

# the command-level scripts need an r1-distill built here (its libraries are this machine's)
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
for sc in tests/cuda/train_*.sh; do
    name=$(basename "$sc" .sh)
    if [ -z "$R" ]; then echo "== $name: not run (no r1-distill built here)"; continue; fi
    if [[ "$sc" == *multi_gpu* ]] && [ "${gpus:-0}" -lt 2 ]; then
        echo "== $name: not run (needs 2 GPUs, ${gpus:-0} visible)"
        continue
    fi
    echo "== $sc (log: $name.log)"
    start=$SECONDS
    tmp=$(mktemp -d)
    BIN=$R ROOT=$ROOT TMP=$tmp bash "$sc" >"$OUT/$name.log" 2>&1
    rc=$?
    rm -rf "$tmp"
    tail -n 3 "$OUT/$name.log"
    echo "   exit $rc, $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || fail=1
done

if [ "${1:-}" != --tests ]; then
    echo "== benchmark (log: bench.log)"
    BENCH_OUT=/tmp/r1-bench CUDA_TRAIN_BIN="$ROOT/$B" BENCH_TIMEOUT=${BENCH_TIMEOUT:-150} \
        BENCH_DEADLINE=$T_END bash bench/cuda/train.sh >"$OUT/bench.log" 2>&1
    sed -n '/^summary/,$p' "$OUT/bench.log"
    tar czf "$OUT/bench_logs.tgz" -C /tmp r1-bench 2>/dev/null
fi
exit $fail
