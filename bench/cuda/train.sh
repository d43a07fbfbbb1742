#!/usr/bin/env bash
# Training throughput beside PyTorch + transformers on one GPU (make bench-cuda): random-weight
# Qwen2.5-0.5B/1.5B/7B shapes at sequence length 4096, then the 7B shape at 32k tokens with
# recomputation. Each run is a fresh process; a configuration that does not fit is reported as such.
# Logs and the JSON lines go to $BENCH_OUT (default bench-out/). Reports, never fails.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
OUTDIR=${BENCH_OUT:-$ROOT/bench-out}
mkdir -p "$OUTDIR"
RES="$OUTDIR/train_results.jsonl"
: >"$RES"
BIN=${CUDA_TRAIN_BIN:-$ROOT/$BUILD/bench/cuda_train}
# R1_BENCH_ATTN=simple runs our side on the plain attention kernels
ATTN=(--attn "${R1_BENCH_ATTN:-auto}")
PY=${PYTHON:-python3}
TMO=${BENCH_TIMEOUT:-180}

# BENCH_DEADLINE (epoch seconds): runs that could not finish before it are skipped, so the whole
# benchmark fits a time-limited session.
DEADLINE=${BENCH_DEADLINE:-0}

# BENCH_ONLY="label ..." (globs: "*32k*") runs only the runs named.
run() {  # label, command...
    local label=$1; shift
    if [ -n "${BENCH_ONLY:-}" ]; then
        local want=0 pat
        set -f # the words are patterns, not file names
        for pat in $BENCH_ONLY; do
            # shellcheck disable=SC2053 # the pattern is a glob on purpose
            [[ $label == $pat ]] && want=1
        done
        set +f
        [ "$want" = 1 ] || return 0
    fi
    local tmo=$TMO
    if [ "$DEADLINE" -gt 0 ]; then
        local left=$((DEADLINE - $(date +%s) - 5))
        if [ "$left" -lt 45 ]; then
            echo "== $label: skipped, ${left}s left before the deadline"
            return
        fi
        [ "$left" -lt "$tmo" ] && tmo=$left
    fi
    echo "== $label: $*"
    timeout "$tmo" "$@" >"$OUTDIR/$label.log" 2>&1
    local rc=$?
    grep -v '^result ' "$OUTDIR/$label.log" | tail -n 3
    if grep -q '^result ' "$OUTDIR/$label.log"; then
        grep '^result ' "$OUTDIR/$label.log" | sed 's/^result //' | tail -n 1 >>"$RES"
    else
        echo "   (no result: exit $rc; see $OUTDIR/$label.log)"
    fi
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
# 0.5B: 4 x 4096 tokens, no recomputation, on both sides
run ours-0.5b "$BIN" "${ATTN[@]}" --shape 0.5b --seq 4096 --batch 4
run torch-0.5b "$PY" "$ROOT/bench/torch_train.py" --shape 0.5b --seq 4096 --batch 4
run torch-0.5b-f32 "$PY" "$ROOT/bench/torch_train.py" --shape 0.5b --seq 4096 --batch 4 --master-f32
# 1.5B: 4 x 4096 tokens; PyTorch runs out of memory on the logits, so it also gets recomputation
# and then fewer sequences (its first configuration that fits is the one compared)
run ours-1.5b "$BIN" "${ATTN[@]}" --shape 1.5b --seq 4096 --batch 4
run ours-1.5b-cheap "$BIN" "${ATTN[@]}" --shape 1.5b --seq 4096 --batch 4 --recompute-cheap
run ours-1.5b-rc "$BIN" "${ATTN[@]}" --shape 1.5b --seq 4096 --batch 4 --recompute
run ours-1.5b-ka "$BIN" "${ATTN[@]}" --shape 1.5b --seq 4096 --batch 4 --recompute-keep-attn
run torch-1.5b "$PY" "$ROOT/bench/torch_train.py" --shape 1.5b --seq 4096 --batch 4
run torch-1.5b-rc "$PY" "$ROOT/bench/torch_train.py" --shape 1.5b --seq 4096 --batch 4 --recompute
run torch-1.5b-rc-b2 "$PY" "$ROOT/bench/torch_train.py" --shape 1.5b --seq 4096 --batch 2 --recompute
run torch-1.5b-f32 "$PY" "$ROOT/bench/torch_train.py" --shape 1.5b --seq 4096 --batch 4 --master-f32
run torch-1.5b-f32-rc "$PY" "$ROOT/bench/torch_train.py" --shape 1.5b --seq 4096 --batch 4 --master-f32 --recompute
# 7B: one 4096-token sequence with recomputation (fp32 master weights and moments: 16 bytes per
# parameter on our side, 8 on PyTorch's bf16 AdamW); then what fits a 141 GB GPU best: products
# kept (--recompute-cheap), and four sequences per step (the optimizer's pass over 7.6 G
# parameters spread over 4x the tokens)
run ours-7b "$BIN" "${ATTN[@]}" --shape 7b --seq 4096 --batch 1 --recompute
run ours-7b-cheap "$BIN" "${ATTN[@]}" --shape 7b --seq 4096 --batch 1 --recompute-cheap
run ours-7b-b4 "$BIN" "${ATTN[@]}" --shape 7b --seq 4096 --batch 4 --recompute --steps 3
# PyTorch without recomputation first: on a 141 GB GPU its bf16 state leaves room for the
# activations, and its first configuration that fits is the one compared
run torch-7b-norc "$PY" "$ROOT/bench/torch_train.py" --shape 7b --seq 4096 --batch 1
run torch-7b "$PY" "$ROOT/bench/torch_train.py" --shape 7b --seq 4096 --batch 1 --recompute
run torch-7b-f32 "$PY" "$ROOT/bench/torch_train.py" --shape 7b --seq 4096 --batch 1 --master-f32 --recompute
# 32k tokens per sequence, the length R1's distills were trained at. The 1.5B: ours without
# recomputation and keeping the attention outputs; PyTorch's first that fits
run ours-1.5b-32k "$BIN" "${ATTN[@]}" --shape 1.5b --seq 32768 --batch 1 --steps 3 --warmup 1
run ours-1.5b-32k-ka "$BIN" "${ATTN[@]}" --shape 1.5b --seq 32768 --batch 1 --recompute-keep-attn --steps 3 --warmup 1
run torch-1.5b-32k "$PY" "$ROOT/bench/torch_train.py" --shape 1.5b --seq 32768 --batch 1 --steps 3 --warmup 1
run torch-1.5b-32k-rc "$PY" "$ROOT/bench/torch_train.py" --shape 1.5b --seq 32768 --batch 1 --recompute --steps 3 --warmup 1
# 7B full fine-tune at 32k tokens per sequence (needs a 141 GB GPU); then each layer keeping its
# attention output, so that the backward re-runs all of the layer but the attention (what train
# chooses by itself where it fits)
run ours-7b-32k "$BIN" "${ATTN[@]}" --shape 7b --seq 32768 --batch 1 --recompute --steps 2 --warmup 1
run ours-7b-32k-ka "$BIN" "${ATTN[@]}" --shape 7b --seq 32768 --batch 1 --recompute-keep-attn --steps 2 --warmup 1
run torch-7b-32k "$PY" "$ROOT/bench/torch_train.py" --shape 7b --seq 32768 --batch 1 --recompute --steps 2 --warmup 1

echo
echo "summary ($RES):"
"$PY" - "$RES" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
RC = {0: "none", 1: "all", 2: "cheap", 3: "all but attention"}
def fmt(r):
    if not r: return "not run"
    if not r.get("fits"):
        return "does not fit (needs %.1f GiB)" % r["need_gib"] if "need_gib" in r else r.get("error", "failed")
    return "%8.0f tok/s  MFU %5.1f%%  %6.1f GiB  (batch %d, recompute %s)" % (
        r["tokens_per_s"], 100 * r["mfu"], r["peak_gib"], r["batch"], RC.get(r["recompute"], "?"))
print("%-5s %-6s | %-66s | %s" % ("shape", "seq", "r1-distill", "torch + transformers"))
for shape, seq in (("0.5b", 4096), ("1.5b", 4096), ("7b", 4096), ("1.5b", 32768), ("7b", 32768)):
    ours = [r for r in rows if r["impl"] == "r1-distill" and r["shape"] == shape and r["seq"] == seq]
    peer = [r for r in rows if r["impl"] == "torch" and r["shape"] == shape and r["seq"] == seq]
    # each peer's first configuration that fits; every one of ours against it. The issue's peer
    # keeps bf16 parameters; the second keeps float32 ones, as our master weights (Trainer bf16=True)
    def first(rs):
        return next((r for r in rs if r.get("fits")), rs[0] if rs else None)
    t = first([r for r in peer if not r.get("master_f32")])
    t32 = first([r for r in peer if r.get("master_f32")])
    for i, o in enumerate(ours or [None]):
        print("%-5s %-6s | %-66s | %s" % (shape if i == 0 else "", seq if i == 0 else "", fmt(o),
                                          fmt(t) if i == 0 else ""))
        if o and t and o.get("fits") and t.get("fits"):
            print("%-12s   speed x%.2f (goal >= 1.5), memory x%.2f (goal <= 0.5)" % (
                "", o["tokens_per_s"] / t["tokens_per_s"], o["peak_gib"] / t["peak_gib"]))
    if t32:
        print("%-12s   float32-master peer: %s" % ("", fmt(t32)))
        for o in ours:
            if o and o.get("fits") and t32.get("fits"):
                print("%-12s     recompute %-5s: speed x%.2f, memory x%.2f" % (
                    "", RC.get(o["recompute"], "?"), o["tokens_per_s"] / t32["tokens_per_s"],
                    o["peak_gib"] / t32["peak_gib"]))
PYEOF
exit 0
