#!/usr/bin/env bash
# train --device / --gpus / launcher ranks: what the command accepts and refuses, and that
# --device auto picks what a GPU probe allows (cpu here unless a usable GPU is present; then
# --device cuda must work and say so, else it must fail with the reason). The CPU path is the
# trainer of train_basic.sh: --device cpu and the default on a GPU-less machine log the same bits.
# (The GPU side itself is checked by make test-cuda: tests/cuda/train_*.sh.)
set -euo pipefail
F=$ROOT/tests/fixtures
c=(--model "$F/tiny-student-qwen2" --data "$F/tiny-sft/train.jsonl" --steps 3 --lr 3e-3
   --batch-size 4 --micro-batch 2 --seq-len 64 --save-every 0 --quiet)

refused() {  # expected exit, message part, args...
    local want=$1 msg=$2
    shift 2
    set +e
    "$BIN" train "${c[@]}" --out "$TMP/x" "$@" 2>"$TMP/err"
    local rc=$?
    set -e
    [ "$rc" -eq "$want" ] || { echo "exit $rc, not $want, for $*"; cat "$TMP/err"; exit 1; }
    grep -q -- "$msg" "$TMP/err" || { echo "no \"$msg\" for $*"; cat "$TMP/err"; exit 1; }
}
refused 2 'unknown device "gpu"' --device gpu
refused 2 "expected 1 to 1024 GPUs" --gpus 0
refused 2 "--device cpu is one process" --gpus 2 --device cpu
SLURM_PROCID=1 SLURM_STEP_NUM_TASKS=2 refused 2 "srun started 2 processes: data-parallel" --device cpu
SLURM_PROCID=1 SLURM_STEP_NUM_TASKS=2 refused 2 "use one or the other" --gpus 2
SLURM_PROCID=2 SLURM_STEP_NUM_TASKS=2 refused 2 "is not below" --device cuda

"$BIN" train "${c[@]}" --device cpu --out "$TMP/cpu" --log "$TMP/cpu.jsonl" 2>"$TMP/cpu.err"
grep -q '^device: cpu' "$TMP/cpu.err"
"$BIN" train "${c[@]}" --out "$TMP/auto" --log "$TMP/auto.jsonl" 2>"$TMP/auto.err"
if grep -q '^device: cpu' "$TMP/auto.err"; then
    strip() { sed 's/, "tokens_per_s": [0-9.e+]*//' "$1"; }
    diff <(strip "$TMP/cpu.jsonl") <(strip "$TMP/auto.jsonl")
    cmp "$TMP/cpu/model.safetensors" "$TMP/auto/model.safetensors"
    # no usable GPU: asking for one fails with the reason (no device, or a build without CUDA)
    refused_any() {
        set +e
        "$BIN" train "${c[@]}" --out "$TMP/y" --device cuda 2>"$TMP/err"
        local rc=$?
        set -e
        [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ] || { echo "--device cuda: exit $rc"; exit 1; }
        grep -qE "no CUDA device|built without CUDA|sm_" "$TMP/err" || { cat "$TMP/err"; exit 1; }
    }
    refused_any
    echo "ok: options checked; auto chose the CPU ($(head -c 120 "$TMP/err" | tr '\n' ' '))"
else
    grep -q '^device: cuda' "$TMP/auto.err"
    "$BIN" train "${c[@]}" --device cuda --out "$TMP/gpu" 2>"$TMP/gpu.err"
    grep -q '^device: cuda' "$TMP/gpu.err"
    echo "ok: options checked; auto chose the GPU"
fi
