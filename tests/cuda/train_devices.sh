#!/usr/bin/env bash
# `train --device cuda` through the command, against `--device cpu`, on a demo-shaped student
# (tests/cuda/lib_train.sh) and Markov-chain data:
#   - --device auto takes the GPU;
#   - 100 steps (8 packed rows of 128 tokens, 2 micro-batches, cosine schedule, clipping, weight
#     decay): the GPU's loss follows the CPU's within bf16 noise, every step within 5% and 1.5% on
#     average, and falls below half its start; the final evaluation loss within 3%;
#   - checkpoints move between devices: 3 steps on one device, then 3 more resumed on the other,
#     against 6 steps on one device: the first resumed step evaluates the very weights of the
#     checkpoint (1% : bf16 against float32 forward), the next ones follow (2%), the moments after
#     step 6 agree (exp_avg 15%, exp_avg_sq 30%: gradients at bf16 precision, squared), and the
#     weights end closer together than half of how far they moved;
#   - GPU -> GPU resume, --recompute and --recompute-cheap are bit-identical;
#   - --offload-all (AdamW on the host) is bit-identical to the GPU's AdamW (losses, final
#     weights, optimizer state), takes less GPU memory, resumes bit for bit, and its checkpoints
#     resume with the GPU's AdamW and the other way round, bit-identical to the run not stopped;
#   - --offload-optimizer keeps on the GPU the state that fits: all of it without a limit, part
#     of it under a --gpu-mem between the two plans (within the budget); bit-identical either
#     way, and resumes bit for bit;
#   - without a recomputation option the GPU takes the fastest mode that fits --gpu-mem (none,
#     then cheap, then all but the attention, then all; bit-identical), and a budget nothing fits
#     is refused (exit 1).
# Runs on a GPU machine (make test-cuda); BIN, ROOT and TMP as for tests/e2e.
set -euo pipefail
. "$ROOT/tests/cuda/lib_train.sh"
CMP=(python3 "$ROOT/tests/cuda/compare_train.py")
make_demo_student "$TMP/demo"
make_markov_data "$TMP/train.jsonl" 1500 1
make_markov_data "$TMP/eval.jsonl" 40 2

echo "== --device auto"
"$BIN" train --model "$TMP/demo" --data "$TMP/train.jsonl" --steps 1 --batch-size 2 \
    --seq-len 128 --out "$TMP/auto" --quiet 2>"$TMP/auto.err"
grep '^device: ' "$TMP/auto.err"
grep -q '^device: cuda' "$TMP/auto.err"

echo "== 100 steps, CPU against GPU"
c100=(--model "$TMP/demo" --data "$TMP/train.jsonl" --eval-data "$TMP/eval.jsonl" --steps 100
      --lr 3e-3 --warmup 10 --schedule cosine --min-lr 3e-4 --batch-size 8 --micro-batch 4
      --seq-len 128 --weight-decay 0.1 --grad-clip 1.0 --save-every 0 --quiet)
s=$SECONDS
"$BIN" train "${c100[@]}" --device cpu --out "$TMP/cpu" --log "$TMP/cpu.jsonl" 2>"$TMP/cpu.err"
echo "   cpu: $((SECONDS - s)) s"
s=$SECONDS
"$BIN" train "${c100[@]}" --device cuda --out "$TMP/gpu" --log "$TMP/gpu.jsonl" 2>"$TMP/gpu.err"
echo "   gpu: $((SECONDS - s)) s; $(grep '^device: ' "$TMP/gpu.err")"
"${CMP[@]}" curve "$TMP/cpu.jsonl" "$TMP/gpu.jsonl" --max-rel 0.05 --mean-rel 0.015 --fall 0.5
"${CMP[@]}" curve "$TMP/cpu.jsonl" "$TMP/gpu.jsonl" --key eval_loss --max-rel 0.03 --mean-rel 0.03
"$BIN" logits --model "$TMP/gpu" --tokens 316,40,41,42 --device cpu >/dev/null

echo "== checkpoints across devices"
c6=(--model "$TMP/demo" --data "$TMP/train.jsonl" --steps 6 --lr 3e-3 --warmup 2 --batch-size 8
    --micro-batch 4 --seq-len 128 --weight-decay 0.1 --grad-clip 1.0 --save-every 3 --keep 0
    --quiet)
"$BIN" train "${c6[@]}" --device cpu --out "$TMP/c6" --log "$TMP/c6.jsonl" 2>/dev/null
"$BIN" train "${c6[@]}" --device cuda --out "$TMP/g6" --log "$TMP/g6.jsonl" 2>/dev/null
"$BIN" train "${c6[@]}" --device cuda --recompute --out "$TMP/g6r" --log "$TMP/g6r.jsonl" 2>/dev/null
"$BIN" train "${c6[@]}" --device cuda --recompute-cheap --out "$TMP/g6c" --log "$TMP/g6c.jsonl" \
    2>"$TMP/g6c.err"
grep -q 'recomputing norms and SwiGLU' "$TMP/g6c.err"
resume() {  # run whose checkpoint-3 to take, device, new run
    mkdir -p "$TMP/$3"
    cp -r "$TMP/$1/checkpoint-3" "$TMP/$3/"
    "$BIN" train "${c6[@]}" --device "$2" --out "$TMP/$3" --log "$TMP/$3.jsonl" --resume 2>"$TMP/$3.err"
    grep -q "resuming from" "$TMP/$3.err"
    [ "$(grep -c '"loss"' "$TMP/$3.jsonl")" -eq 3 ]
}
resume g6 cuda g2g
resume g6 cpu g2c
resume c6 cuda c2g
echo "   GPU -> GPU, --recompute and --recompute-cheap: bit-identical"
diff <(strip_log "$TMP/g6.jsonl" | sed -n 4,6p) <(strip_log "$TMP/g2g.jsonl")
cmp "$TMP/g6/model.safetensors" "$TMP/g2g/model.safetensors"
cmp "$TMP/g6/checkpoint-6/optimizer.safetensors" "$TMP/g2g/checkpoint-6/optimizer.safetensors"
diff <(strip_log "$TMP/g6.jsonl") <(strip_log "$TMP/g6r.jsonl")
cmp "$TMP/g6/model.safetensors" "$TMP/g6r/model.safetensors"
diff <(strip_log "$TMP/g6.jsonl") <(strip_log "$TMP/g6c.jsonl")
cmp "$TMP/g6/model.safetensors" "$TMP/g6c/model.safetensors"
for pair in "g6 g2c" "c6 c2g"; do
    set -- $pair
    echo "   $1 (6 steps on one device) against $2 (resumed from its checkpoint-3 on the other)"
    "${CMP[@]}" curve "$TMP/$1.jsonl" "$TMP/$2.jsonl" --steps 4-4 --max-rel 0.01 --mean-rel 0.01
    "${CMP[@]}" curve "$TMP/$1.jsonl" "$TMP/$2.jsonl" --steps 4-6 --max-rel 0.02 --mean-rel 0.02
done
for pair in "c6 g2c" "g6 c2g" "c6 g6"; do
    set -- $pair
    echo "   $2 against $1 after 6 steps"
    "${CMP[@]}" curve "$TMP/$1.jsonl" "$TMP/$2.jsonl" --steps 4-6 --max-rel 0.02 --mean-rel 0.02
    "${CMP[@]}" state "$TMP/$2/checkpoint-6/optimizer.safetensors" \
        "$TMP/$1/checkpoint-6/optimizer.safetensors" --prefix exp_avg. --max-rel 0.15
    "${CMP[@]}" state "$TMP/$2/checkpoint-6/optimizer.safetensors" \
        "$TMP/$1/checkpoint-6/optimizer.safetensors" --prefix exp_avg_sq. --max-rel 0.3
    "${CMP[@]}" weights "$TMP/$2/model.safetensors" "$TMP/$1/model.safetensors" \
        "$TMP/demo/model.safetensors" --max-rel 0.5
done
echo "== --offload-all: the float32 state and AdamW on the host"
"$BIN" train "${c6[@]}" --device cuda --offload-all --out "$TMP/o6" --log "$TMP/o6.jsonl" \
    2>"$TMP/o6.err"
"$BIN" train "${c6[@]}" --device cuda --out "$TMP/g6m" 2>"$TMP/g6m.err" # its device line
grep '^device: ' "$TMP/o6.err"
grep -q 'optimizer state on the host for 100% of the parameters' "$TMP/o6.err"
mib() { grep '^device: ' "$1" | sed -n 's/.*; \([0-9.]*\) MiB, .*/\1/p'; }
awk -v o="$(mib "$TMP/o6.err")" -v g="$(mib "$TMP/g6m.err")" 'BEGIN { exit !(o + 4 < g) }'
echo "   bit-identical to the GPU's AdamW (the same float32 operations); near the CPU trainer"
diff <(strip_log "$TMP/g6.jsonl") <(strip_log "$TMP/o6.jsonl")
cmp "$TMP/g6/model.safetensors" "$TMP/o6/model.safetensors"
cmp "$TMP/g6/checkpoint-6/optimizer.safetensors" "$TMP/o6/checkpoint-6/optimizer.safetensors"
"${CMP[@]}" curve "$TMP/c6.jsonl" "$TMP/o6.jsonl" --max-rel 0.02 --mean-rel 0.02
echo "   resumed from its checkpoint-3: bit-identical"
mkdir -p "$TMP/o2o"
cp -r "$TMP/o6/checkpoint-3" "$TMP/o2o/"
"$BIN" train "${c6[@]}" --device cuda --offload-all --out "$TMP/o2o" --log "$TMP/o2o.jsonl" \
    --resume 2>/dev/null
diff <(strip_log "$TMP/o6.jsonl" | sed -n 4,6p) <(strip_log "$TMP/o2o.jsonl")
cmp "$TMP/o6/model.safetensors" "$TMP/o2o/model.safetensors"
cmp "$TMP/o6/checkpoint-6/optimizer.safetensors" "$TMP/o2o/checkpoint-6/optimizer.safetensors"
echo "   checkpoints move between the GPU's AdamW and the host's"
for pair in "g6 g2o --offload-all" "o6 o2g"; do
    set -- $pair
    mkdir -p "$TMP/$2"
    cp -r "$TMP/$1/checkpoint-3" "$TMP/$2/"
    "$BIN" train "${c6[@]}" --device cuda ${3:-} --out "$TMP/$2" --log "$TMP/$2.jsonl" --resume \
        2>/dev/null
    diff <(strip_log "$TMP/$1.jsonl" | sed -n 4,6p) <(strip_log "$TMP/$2.jsonl")
    cmp "$TMP/$1/model.safetensors" "$TMP/$2/model.safetensors"
done
echo "== --offload-optimizer: the host takes the state that does not fit"
"$BIN" train "${c6[@]}" --device cuda --offload-optimizer --out "$TMP/f6" --log "$TMP/f6.jsonl" \
    2>"$TMP/f6.err"
grep -q 'optimizer state on the host for 0% of the parameters' "$TMP/f6.err"
# a budget between the two plans: some layers' state on each side
half=$(awk -v o="$(mib "$TMP/o6.err")" -v g="$(mib "$TMP/g6m.err")" \
    'BEGIN { printf "%.6f", (o + g) / 2 / 1024 }')
"$BIN" train "${c6[@]}" --device cuda --offload-optimizer --gpu-mem "$half" --out "$TMP/h6" \
    --log "$TMP/h6.jsonl" 2>"$TMP/h6.err"
grep '^device: ' "$TMP/h6.err"
pct=$(sed -n 's/.*optimizer state on the host for \([0-9]*\)% of the parameters.*/\1/p' "$TMP/h6.err")
[ "$pct" -gt 0 ]
[ "$pct" -lt 100 ]
awk -v h="$(mib "$TMP/h6.err")" -v m="$half" 'BEGIN { exit !(h <= m * 1024) }'
for r in f6 h6; do
    diff <(strip_log "$TMP/g6.jsonl") <(strip_log "$TMP/$r.jsonl")
    cmp "$TMP/g6/model.safetensors" "$TMP/$r/model.safetensors"
    cmp "$TMP/g6/checkpoint-6/optimizer.safetensors" "$TMP/$r/checkpoint-6/optimizer.safetensors"
done
echo "   split $pct% / $((100 - pct))%: bit-identical to the GPU's AdamW; resumes bit for bit"
mkdir -p "$TMP/h2h"
cp -r "$TMP/h6/checkpoint-3" "$TMP/h2h/"
"$BIN" train "${c6[@]}" --device cuda --offload-optimizer --gpu-mem "$half" --out "$TMP/h2h" \
    --log "$TMP/h2h.jsonl" --resume 2>/dev/null
diff <(strip_log "$TMP/h6.jsonl" | sed -n 4,6p) <(strip_log "$TMP/h2h.jsonl")
cmp "$TMP/h6/model.safetensors" "$TMP/h2h/model.safetensors"
cmp "$TMP/h6/checkpoint-6/optimizer.safetensors" "$TMP/h2h/checkpoint-6/optimizer.safetensors"

echo "== the recomputation mode that fits --gpu-mem"
# 8 x 1024 tokens per micro-batch, so the three modes' plans lie megabytes apart
cm=(--model "$TMP/demo" --data "$TMP/train.jsonl" --steps 2 --lr 3e-3 --batch-size 8
    --micro-batch 8 --seq-len 1024 --save-every 0 --device cuda --quiet)
"$BIN" train "${cm[@]}" --out "$TMP/m0" --log "$TMP/m0.jsonl" 2>"$TMP/m0.err"
grep -q 'MiB, no recomputation, the fastest that fits;' "$TMP/m0.err"
"$BIN" train "${cm[@]}" --recompute-cheap --out "$TMP/mc" --log "$TMP/mc.jsonl" 2>"$TMP/mc.err"
"$BIN" train "${cm[@]}" --recompute --out "$TMP/ma" --log "$TMP/ma.jsonl" 2>"$TMP/ma.err"
none=$(mib "$TMP/m0.err") cheap=$(mib "$TMP/mc.err") all=$(mib "$TMP/ma.err")
echo "   plans: none $none MiB, cheap $cheap MiB, all $all MiB"
awk -v a="$none" -v b="$cheap" -v c="$all" 'BEGIN { exit !(a > b + 4 && b > c + 4) }'
between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", (a + b) / 2 / 1024 }'; }
"$BIN" train "${cm[@]}" --gpu-mem "$(between "$none" "$cheap")" --out "$TMP/m1" \
    --log "$TMP/m1.jsonl" 2>"$TMP/m1.err"
grep -q 'MiB, recomputing norms and SwiGLU, the fastest that fits;' "$TMP/m1.err"
# between cheap and all: all but the attention, whose outputs the layers keep (a mode no flag
# names); between that and all: all
"$BIN" train "${cm[@]}" --gpu-mem "$(between "$cheap" "$all")" --out "$TMP/m2" \
    --log "$TMP/m2.jsonl" 2>"$TMP/m2.err"
grep -q 'MiB, recomputing all but the attention, the fastest that fits;' "$TMP/m2.err"
keep=$(mib "$TMP/m2.err")
echo "   plan: all but the attention $keep MiB"
awk -v b="$cheap" -v k="$keep" -v c="$all" 'BEGIN { exit !(b > k + 4 && k > c + 4) }'
"$BIN" train "${cm[@]}" --gpu-mem "$(between "$keep" "$all")" --out "$TMP/m4" \
    --log "$TMP/m4.jsonl" 2>"$TMP/m4.err"
grep -q 'MiB, recomputing, the fastest that fits;' "$TMP/m4.err"
diff <(strip_log "$TMP/m0.jsonl") <(strip_log "$TMP/m1.jsonl")
diff <(strip_log "$TMP/m0.jsonl") <(strip_log "$TMP/m2.jsonl")
diff <(strip_log "$TMP/m0.jsonl") <(strip_log "$TMP/m4.jsonl")
cmp "$TMP/m0/model.safetensors" "$TMP/m2/model.safetensors"
cmp "$TMP/m0/model.safetensors" "$TMP/m4/model.safetensors"
# bf16 gradients (one micro-batch per step) through the host's AdamW
"$BIN" train "${cm[@]}" --offload-all --out "$TMP/mo" --log "$TMP/mo.jsonl" 2>/dev/null
diff <(strip_log "$TMP/m0.jsonl") <(strip_log "$TMP/mo.jsonl")
cmp "$TMP/m0/model.safetensors" "$TMP/mo/model.safetensors"
st=0
"$BIN" train "${cm[@]}" --gpu-mem "$(between "$all" 0)" --out "$TMP/m3" 2>"$TMP/m3.err" || st=$?
cat "$TMP/m3.err"
[ "$st" -eq 1 ]
grep -q 'are allowed (--gpu-mem)' "$TMP/m3.err"
echo "ok: GPU training follows the CPU trainer; checkpoints move between them; the mode fits the memory"
