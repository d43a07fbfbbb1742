#!/usr/bin/env bash
# Data parallel training on 2 GPUs (ZeRO-1 over NCCL) against 1 GPU with the same global batch,
# on the demo-shaped student (tests/cuda/lib_train.sh):
#   - `train --gpus 2` logs the loss of `--device cuda` on one GPU: step 1 (the same weights,
#     only the order of the float32 loss sums differs) within 1e-5, later steps within 5e-3 on
#     average and 2e-2 at worst (float32 gradient sums in another order, amplified where a
#     master weight lands on the other side of a bf16 rounding boundary: transient, e.g. 1.2e-2
#     at step 12 and 3e-6 at step 20 in one run), the final evaluation loss within 5e-3;
#   - two `--gpus 2` runs are bit-identical (fixed NCCL reduction order);
#   - two processes started as srun starts them (SLURM_* variables, --rendezvous) give the very
#     run of `--gpus 2`;
#   - a 2-GPU checkpoint resumes on 1 GPU (the shards gathered by name): the next steps within
#     the same bounds of the 1-GPU run;
#   - --zero 2 (gradients sharded, reduced every micro-batch) takes less memory per GPU, follows
#     ZeRO-1 within the same bounds, repeats bit for bit, is bit-identical to ZeRO-1 with one
#     micro-batch per rank and step, runs ranks of unequal micro-batch counts, and its
#     checkpoints resume on 1 GPU;
#   - --zero 3 (the bf16 weights sharded too, each layer gathered a layer ahead) gathers the very
#     weights ZeRO-2 holds, so it is bit-identical to ZeRO-2: losses, weights and optimizer
#     state, with tied and untied heads, with either recomputation, ranks of unequal training
#     and evaluation shares, and a ZeRO-2 checkpoint resumed under ZeRO-3; and it takes less
#     memory than ZeRO-2;
#   - --zero auto (the default) picks ZeRO-1 where it fits, else the lowest stage that does;
#   - `--gpus 2` reports each rank's peak RSS. Every 2-GPU checkpoint and final model here is
#     written as the GPUs gather it, a bucket at a time (checkpoint_write_values).
# Needs 2 GPUs (make test-cuda runs it only where there are); BIN, ROOT and TMP as for tests/e2e.
set -euo pipefail
. "$ROOT/tests/cuda/lib_train.sh"
CMP=(python3 "$ROOT/tests/cuda/compare_train.py")
# two runs in $TMP/A and $TMP/B with logs A.jsonl, B.jsonl: the same losses and final weights
same_runs() {
    diff <(strip_log "$TMP/$1.jsonl") <(strip_log "$TMP/$2.jsonl")
    cmp "$TMP/$1/model.safetensors" "$TMP/$2/model.safetensors"
}
# run A's checkpoint-10 resumed on 1 GPU into $TMP/B: steps 11-20 against run C's
resume_on_one() {
    mkdir -p "$TMP/$2"
    cp -r "$TMP/$1/checkpoint-10" "$TMP/$2/"
    "$BIN" train "${c[@]}" --device cuda --out "$TMP/$2" --log "$TMP/$2.jsonl" --resume 2>/dev/null
    "${CMP[@]}" curve "$TMP/$3.jsonl" "$TMP/$2.jsonl" --steps 11-20 --max-rel 2e-2 --mean-rel 5e-3
}
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
make_demo_student "$TMP/demo"
make_markov_data "$TMP/train.jsonl" 1500 1
make_markov_data "$TMP/eval.jsonl" 40 2

c=(--model "$TMP/demo" --data "$TMP/train.jsonl" --eval-data "$TMP/eval.jsonl" --steps 20
   --lr 3e-3 --warmup 2 --schedule cosine --batch-size 8 --micro-batch 2 --seq-len 128
   --weight-decay 0.1 --grad-clip 1.0 --save-every 10 --keep 0 --quiet)
s=$SECONDS
"$BIN" train "${c[@]}" --device cuda --out "$TMP/g1" --log "$TMP/g1.jsonl" 2>"$TMP/g1.err"
echo "1 GPU: $((SECONDS - s)) s; $(grep '^device: ' "$TMP/g1.err")"
s=$SECONDS
"$BIN" train "${c[@]}" --gpus 2 --out "$TMP/g2" --log "$TMP/g2.jsonl" 2>"$TMP/g2.err"
echo "2 GPUs: $((SECONDS - s)) s; $(grep '^device: ' "$TMP/g2.err")"
grep -q '^device: cuda, 2 GPUs.*ZeRO-1 (the lowest that fits)' "$TMP/g2.err"
grep -Eq '^peak RSS per rank: [1-9][0-9]*, [1-9][0-9]* MiB$' "$TMP/g2.err"
[ "$(grep -c '"loss"' "$TMP/g2.jsonl")" -eq 20 ]
"${CMP[@]}" curve "$TMP/g1.jsonl" "$TMP/g2.jsonl" --steps 1-1 --max-rel 1e-5 --mean-rel 1e-5
"${CMP[@]}" curve "$TMP/g1.jsonl" "$TMP/g2.jsonl" --max-rel 2e-2 --mean-rel 5e-3 --fall 0.8
"${CMP[@]}" curve "$TMP/g1.jsonl" "$TMP/g2.jsonl" --key eval_loss --max-rel 5e-3 --mean-rel 5e-3

echo "== determinism"
"$BIN" train "${c[@]}" --gpus 2 --out "$TMP/g2b" --log "$TMP/g2b.jsonl" 2>/dev/null
same_runs g2 g2b

echo "== two processes launched as srun launches them"
mkdir -p "$TMP/rdv"
pids=()
for r in 0 1; do
    SLURM_PROCID=$r SLURM_STEP_NUM_TASKS=2 SLURM_LOCALID=$r SLURM_JOB_ID=4242 SLURM_STEP_ID=0 \
        "$BIN" train "${c[@]}" --out "$TMP/s" --log "$TMP/s.jsonl" --rendezvous "$TMP/rdv" \
        2>"$TMP/s$r.err" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
same_runs g2 s
[ -z "$(ls "$TMP/rdv")" ] || { echo "the rendezvous file was left behind"; exit 1; }

echo "== a 2-GPU checkpoint resumed on 1 GPU"
resume_on_one g2 r1 g1

echo "== ZeRO-2: the gradients sharded too"
"$BIN" train "${c[@]}" --gpus 2 --zero 2 --out "$TMP/z2" --log "$TMP/z2.jsonl" 2>"$TMP/z2.err"
echo "   $(grep '^device: ' "$TMP/z2.err")"
grep -q '^device: cuda, 2 GPUs.*ZeRO-2' "$TMP/z2.err"
# two micro-batches per rank and step: each is reduced on its own, then added up
"${CMP[@]}" curve "$TMP/g2.jsonl" "$TMP/z2.jsonl" --max-rel 2e-2 --mean-rel 5e-3 --fall 0.8
"${CMP[@]}" curve "$TMP/g2.jsonl" "$TMP/z2.jsonl" --key eval_loss --max-rel 5e-3 --mean-rel 5e-3
"$BIN" train "${c[@]}" --gpus 2 --zero 2 --out "$TMP/z2b" --log "$TMP/z2b.jsonl" 2>/dev/null
same_runs z2 z2b
echo "   one micro-batch per rank and step: the very sums of ZeRO-1, so bit-identical"
c1=("${c[@]}" --micro-batch 4 --steps 6 --save-every 0)
"$BIN" train "${c1[@]}" --gpus 2 --out "$TMP/o1" --log "$TMP/o1.jsonl" 2>/dev/null
"$BIN" train "${c1[@]}" --gpus 2 --zero 2 --out "$TMP/o2" --log "$TMP/o2.jsonl" 2>/dev/null
same_runs o1 o2
echo "   5 rows per step: ranks of 2 and 3 rows, 1 and 2 micro-batches (the short one makes up)"
c5=("${c[@]}" --batch-size 5 --steps 6 --save-every 0)
"$BIN" train "${c5[@]}" --gpus 2 --out "$TMP/u1" --log "$TMP/u1.jsonl" 2>/dev/null
"$BIN" train "${c5[@]}" --gpus 2 --zero 2 --out "$TMP/u2" --log "$TMP/u2.jsonl" 2>/dev/null
"${CMP[@]}" curve "$TMP/u1.jsonl" "$TMP/u2.jsonl" --max-rel 2e-2 --mean-rel 5e-3
echo "   a ZeRO-2 checkpoint resumed on 1 GPU"
resume_on_one z2 zr z2
echo "   memory: a 16-layer student, where the gradients outweigh ZeRO-2's scratch"
sed -e 's/"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4/"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 16/' \
    "$TMP/demo-config.json" >"$TMP/deep-config.json"
"$BIN" init --config "$TMP/deep-config.json" --out "$TMP/deep" --seed 3 \
    --tokenizer "$ROOT/tests/fixtures/tiny-tokenizer" 2>/dev/null
cd2=("${c[@]}" --model "$TMP/deep" --steps 1 --save-every 0)
"$BIN" train "${cd2[@]}" --gpus 2 --out "$TMP/d1" 2>"$TMP/d1.err"
"$BIN" train "${cd2[@]}" --gpus 2 --zero 2 --out "$TMP/d2" 2>"$TMP/d2.err"
mib() { grep '^device: ' "$1" | sed -n 's/.*; \([0-9.]*\) MiB per GPU.*/\1/p'; }
between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", (a + b) / 2 / 1024 }'; }
echo "   ZeRO-1 $(mib "$TMP/d1.err") MiB, ZeRO-2 $(mib "$TMP/d2.err") MiB per GPU"
awk -v z="$(mib "$TMP/d2.err")" -v o="$(mib "$TMP/d1.err")" 'BEGIN { exit !(z + 10 < o) }'

echo "== ZeRO-3: the weights sharded too"
"$BIN" train "${c[@]}" --gpus 2 --zero 3 --out "$TMP/z3" --log "$TMP/z3.jsonl" 2>"$TMP/z3.err"
echo "   $(grep '^device: ' "$TMP/z3.err")"
grep -q '^device: cuda, 2 GPUs.*ZeRO-3' "$TMP/z3.err"
echo "   the very run of ZeRO-2, checkpoints included"
same_runs z2 z3
cmp "$TMP/z2/checkpoint-10/optimizer.safetensors" "$TMP/z3/checkpoint-10/optimizer.safetensors"
echo "   recomputing, the layer's forward again from its slot in the backward: the same run"
for m in recompute recompute-cheap; do
    "$BIN" train "${c[@]}" --gpus 2 --zero 3 "--$m" --out "$TMP/z3$m" --log "$TMP/z3$m.jsonl" 2>/dev/null
    same_runs z2 "z3$m"
done
echo "   ranks of 1 and 2 micro-batches; evaluation shares of 20 and 21 rows (10 and 11 micro-batches)"
make_markov_data "$TMP/eval41.jsonl" 41 2
c5e=("${c5[@]}" --eval-data "$TMP/eval41.jsonl" --pack off)
"$BIN" train "${c5e[@]}" --gpus 2 --zero 2 --out "$TMP/e2" --log "$TMP/e2.jsonl" 2>/dev/null
"$BIN" train "${c5e[@]}" --gpus 2 --zero 3 --out "$TMP/e3" --log "$TMP/e3.jsonl" 2>/dev/null
same_runs e2 e3
[ "$(grep -c '"eval_loss"' "$TMP/e3.jsonl")" -ge 1 ]
diff <(grep '"eval_loss"' "$TMP/e2.jsonl") <(grep '"eval_loss"' "$TMP/e3.jsonl")
echo "   a ZeRO-2 checkpoint resumed under ZeRO-3: the rest of the ZeRO-2 run"
mkdir -p "$TMP/z23"
cp -r "$TMP/z2/checkpoint-10" "$TMP/z23/"
"$BIN" train "${c[@]}" --gpus 2 --zero 3 --out "$TMP/z23" --log "$TMP/z23.jsonl" --resume 2>/dev/null
cmp "$TMP/z2/model.safetensors" "$TMP/z23/model.safetensors"
echo "   an untied head: the embedding and the head gathered in turn into one slot"
sed -e 's/"tie_word_embeddings": true/"tie_word_embeddings": false/' "$TMP/deep-config.json" \
    >"$TMP/untied-config.json"
"$BIN" init --config "$TMP/untied-config.json" --out "$TMP/untied" --seed 3 \
    --tokenizer "$ROOT/tests/fixtures/tiny-tokenizer" 2>/dev/null
cu=("${c[@]}" --model "$TMP/untied" --steps 4 --save-every 0)
"$BIN" train "${cu[@]}" --gpus 2 --zero 2 --out "$TMP/t2" --log "$TMP/t2.jsonl" 2>/dev/null
"$BIN" train "${cu[@]}" --gpus 2 --zero 3 --out "$TMP/t3" --log "$TMP/t3.jsonl" 2>/dev/null
same_runs t2 t3
echo "   (and ZeRO-2's shared scratch of the embedding and the untied head: ZeRO-1's sums with one"
echo "   micro-batch per rank)"
"$BIN" train "${cu[@]}" --micro-batch 4 --gpus 2 --out "$TMP/t1" --log "$TMP/t1.jsonl" 2>/dev/null
"$BIN" train "${cu[@]}" --micro-batch 4 --gpus 2 --zero 2 --out "$TMP/t2o" --log "$TMP/t2o.jsonl" 2>/dev/null
same_runs t1 t2o
echo "   memory: the 16-layer student's weights, but for the pieces and two layers, leave"
"$BIN" train "${cd2[@]}" --gpus 2 --zero 3 --out "$TMP/d3" 2>"$TMP/d3.err"
echo "   ZeRO-2 $(mib "$TMP/d2.err") MiB, ZeRO-3 $(mib "$TMP/d3.err") MiB per GPU"
awk -v z="$(mib "$TMP/d3.err")" -v o="$(mib "$TMP/d2.err")" 'BEGIN { exit !(z + 5 < o) }'

echo "== the optimizer state on the hosts: each rank runs AdamW on its shard there"
# The host's AdamW computes the GPU's bits (tests/cuda/train_devices.sh), so every run here is
# the very run of its GPU-only twin above: losses, final weights and checkpointed state, which
# the ranks gather from their hosts' arrays as from their GPUs.
"$BIN" train "${c[@]}" --gpus 2 --offload-all --out "$TMP/h1" --log "$TMP/h1.jsonl" 2>"$TMP/h1.err"
echo "   $(grep '^device: ' "$TMP/h1.err")"
grep -q '^device: cuda, 2 GPUs.*ZeRO-1 .*optimizer state on the hosts for 100% of the parameters' \
    "$TMP/h1.err"
same_runs g2 h1
cmp "$TMP/g2/checkpoint-10/optimizer.safetensors" "$TMP/h1/checkpoint-10/optimizer.safetensors"
for z in 2 3; do
    "$BIN" train "${c[@]}" --gpus 2 --zero $z --offload-all --out "$TMP/h$z" --log "$TMP/h$z.jsonl" \
        2>/dev/null
    same_runs "z$z" "h$z"
    cmp "$TMP/z$z/checkpoint-10/optimizer.safetensors" "$TMP/h$z/checkpoint-10/optimizer.safetensors"
done
echo "   ZeRO-3 with an untied head (the embedding's and head's slot)"
"$BIN" train "${cu[@]}" --gpus 2 --zero 3 --offload-all --out "$TMP/ht3" --log "$TMP/ht3.jsonl" \
    2>/dev/null
same_runs t3 ht3
echo "   part of the state on the hosts: --offload-optimizer under a --gpu-mem between the plans"
half=$(between "$(mib "$TMP/h1.err")" "$(mib "$TMP/g2.err")")
hosts_pct() { sed -n 's/.*optimizer state on the hosts for \([0-9]*\)% of the parameters.*/\1/p' "$1"; }
"$BIN" train "${c[@]}" --gpus 2 --zero 1 --offload-optimizer --gpu-mem "$half" --out "$TMP/hp" \
    --log "$TMP/hp.jsonl" 2>"$TMP/hp.err"
echo "   $(grep '^device: ' "$TMP/hp.err")"
pct=$(hosts_pct "$TMP/hp.err")
[ "$pct" -gt 0 ]
[ "$pct" -lt 100 ]
same_runs g2 hp
echo "   --zero auto: the stage that leaves the fewest buckets to the hosts (on the 16-layer"
echo "   student a higher stage frees GPU memory for the state), and the very run of that stage"
"$BIN" train "${cd2[@]}" --gpus 2 --offload-all --out "$TMP/hd" 2>"$TMP/hd.err"
half=$(between "$(mib "$TMP/hd.err")" "$(mib "$TMP/d1.err")")
"$BIN" train "${cd2[@]}" --gpus 2 --zero 1 --offload-optimizer --gpu-mem "$half" --out "$TMP/hd1" \
    2>"$TMP/hd1.err"
"$BIN" train "${cd2[@]}" --gpus 2 --offload-optimizer --gpu-mem "$half" --out "$TMP/ha" \
    2>"$TMP/ha.err"
echo "   $(grep '^device: ' "$TMP/ha.err")"
za=$(sed -n 's/.*ZeRO-\([123]\) (the fewest buckets on the hosts).*/\1/p' "$TMP/ha.err")
echo "   ZeRO-1: $(hosts_pct "$TMP/hd1.err")% on the hosts; auto: ZeRO-$za, $(hosts_pct "$TMP/ha.err")%"
[ "$za" -ge 2 ]
[ "$(hosts_pct "$TMP/ha.err")" -lt "$(hosts_pct "$TMP/hd1.err")" ]
cmp "$TMP/d$za/model.safetensors" "$TMP/ha/model.safetensors"
echo "   checkpoints move between the hosts' AdamW and the GPUs': resumed, the runs not stopped"
for pair in "h1 hg" "g2 gh --offload-all"; do
    set -- $pair
    mkdir -p "$TMP/$2"
    cp -r "$TMP/$1/checkpoint-10" "$TMP/$2/"
    "$BIN" train "${c[@]}" --gpus 2 ${3:-} --out "$TMP/$2" --log "$TMP/$2.jsonl" --resume 2>/dev/null
    cmp "$TMP/g2/model.safetensors" "$TMP/$2/model.safetensors"
done
echo "   and a 2-GPU checkpoint of the hosts' state on 1 GPU"
resume_on_one h1 hr1 g1

echo "== --zero auto (the default): the lowest stage that fits every GPU"
# the 16-layer student without recomputation takes the memory of runs d1, d2, d3 above under
# ZeRO-1, -2, -3: a budget (--gpu-mem) between ZeRO-2's and ZeRO-1's picks ZeRO-2, one between
# ZeRO-3's and ZeRO-2's ZeRO-3, and the runs are those of --zero 2 and --zero 3
"$BIN" train "${cd2[@]}" --gpus 2 --gpu-mem "$(between "$(mib "$TMP/d2.err")" "$(mib "$TMP/d1.err")")" \
    --out "$TMP/a2" 2>"$TMP/a2.err"
grep '^device: ' "$TMP/a2.err" | grep -q 'ZeRO-2 (the lowest that fits); .*, no recomputation'
cmp "$TMP/d2/model.safetensors" "$TMP/a2/model.safetensors"
"$BIN" train "${cd2[@]}" --gpus 2 --gpu-mem "$(between "$(mib "$TMP/d3.err")" "$(mib "$TMP/d2.err")")" \
    --out "$TMP/a3" 2>"$TMP/a3.err"
grep '^device: ' "$TMP/a3.err" | grep -q 'ZeRO-3 (the lowest that fits); .*, no recomputation'
cmp "$TMP/d3/model.safetensors" "$TMP/a3/model.safetensors"
echo "ok: 2 GPUs train as 1 with the same global batch; ZeRO-2 as ZeRO-1; ZeRO-3 as ZeRO-2"
