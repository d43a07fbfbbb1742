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
# bench.log, bench_logs.tgz. The terminal gets the failures and summaries. Exits 1 if a test
# failed; the benchmark only reports.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BINS=(build/tests-cuda/test_train_kernels build/tests-cuda/test_train_step build/bench/cuda_train)
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

if make -j"$JOBS" "${BINS[@]}" >"$OUT/build.log" 2>&1; then
    K=build/tests-cuda/test_train_kernels S=build/tests-cuda/test_train_step B=build/bench/cuda_train
    echo "built here"
elif [ -x .devbin/test_train_kernels ]; then
    echo "build failed here (last lines below, whole log in build.log): using .devbin/"
    tail -n 3 "$OUT/build.log"
    export LD_LIBRARY_PATH="$ROOT/.devbin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    K=.devbin/test_train_kernels S=.devbin/test_train_step B=.devbin/cuda_train
else
    echo "build failed and there is no .devbin/ (see tests/cuda/run_device.sh --prebuild):"
    tail -n 20 "$OUT/build.log"
    exit 1
fi

fail=0
for t in "$K:test_kernels" "$S:test_step"; do
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

if [ "${1:-}" != --tests ]; then
    echo "== benchmark (log: bench.log)"
    BENCH_OUT=/tmp/r1-bench CUDA_TRAIN_BIN="$ROOT/$B" BENCH_TIMEOUT=${BENCH_TIMEOUT:-150} \
        BENCH_DEADLINE=$T_END bash bench/cuda/train.sh >"$OUT/bench.log" 2>&1
    sed -n '/^summary/,$p' "$OUT/bench.log"
    tar czf "$OUT/bench_logs.tgz" -C /tmp r1-bench 2>/dev/null
fi
exit $fail
