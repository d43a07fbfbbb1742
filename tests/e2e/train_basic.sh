#!/usr/bin/env bash
# train: a few steps on the tiny Qwen2 (f32, tied) and Llama (bf16, untied) students.
# Checks the log fields, that the loss falls, the HF output directory (dtype kept, tokenizer and
# generation config copied), that `logits` loads the result, that shards from `pack` and the
# JSONL they came from train identically, that --recompute changes no bit, and reports peak RSS.
set -euo pipefail
F=$ROOT/tests/fixtures
common=(--data "$F/tiny-sft/train.jsonl" --steps 12 --lr 3e-3 --batch-size 4 --micro-batch 2
        --seq-len 64 --warmup 2 --schedule cosine --weight-decay 0.1 --save-every 6 --quiet)

"$BIN" train --model "$F/tiny-student-qwen2" --out "$TMP/q" --log "$TMP/q.jsonl" \
    --eval-data "$F/tiny-sft/eval.jsonl" "${common[@]}" 2>"$TMP/q.err"
[ "$(grep -c '"loss"' "$TMP/q.jsonl")" -eq 12 ]
for k in step loss lr grad_norm tokens loss_tokens tokens_per_s; do
    grep -q "\"$k\": " "$TMP/q.jsonl" || { echo "log lacks $k"; exit 1; }
done
grep -q '"eval_loss"' "$TMP/q.jsonl"
# each checkpoint is announced with the time it took, even under --quiet
grep -Eq "^step 6  saved .*/checkpoint-6 in [0-9]+\.[0-9] s$" "$TMP/q.err"
[ "$(grep -c ' saved ' "$TMP/q.err")" -eq 2 ]
# warmup 2: the first step runs at lr 0 (HF LambdaLR), the second at lr/2
sed -n 1p "$TMP/q.jsonl" | grep -q '"lr": 0,'
sed -n 2p "$TMP/q.jsonl" | grep -q '"lr": 0.0015,'
first=$(sed -n 1p "$TMP/q.jsonl" | sed 's/.*"loss": \([^,]*\),.*/\1/')
last=$(sed -n 12p "$TMP/q.jsonl" | sed 's/.*"loss": \([^,]*\),.*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || { echo "loss $first -> $last did not fall"; exit 1; }
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json trainer_state.json; do
    [ -f "$TMP/q/$f" ] || { echo "output lacks $f"; exit 1; }
done
[ -f "$TMP/q/checkpoint-12/optimizer.safetensors" ]
[ -f "$TMP/q/checkpoint-6/model.safetensors" ]
grep -aq '"F32"' "$TMP/q/model.safetensors"
"$BIN" logits --model "$TMP/q" --tokens 316,20,21,30 >/dev/null
rss=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' "$TMP/q.err")
echo "peak RSS, tiny qwen2 (29k parameters, micro-batch 2 x 64 tokens): $rss MiB"
[ -n "$rss" ]

# bf16 stays bf16; the fp32 masters go to optimizer.safetensors
"$BIN" train --model "$F/tiny-student-llama" --out "$TMP/l" --log "$TMP/l.jsonl" "${common[@]}" 2>/dev/null
grep -aq '"BF16"' "$TMP/l/model.safetensors"
grep -aq '"master.model.embed_tokens.weight"' "$TMP/l/checkpoint-12/optimizer.safetensors"
"$BIN" logits --model "$TMP/l" --tokens 316,20,21,30 >/dev/null

# pack -> shards trains bit for bit like the JSONL; --recompute changes nothing
"$BIN" pack --tokenizer "$F/tiny-student-qwen2" --out "$TMP/shards" "$F/tiny-sft/train.jsonl" 2>/dev/null
common2=("${common[@]}"); common2[1]="$TMP/shards"
"$BIN" train --model "$F/tiny-student-qwen2" --out "$TMP/q2" --log "$TMP/q2.jsonl" "${common2[@]}" --recompute 2>/dev/null
strip() { grep '"loss"' "$1" | sed 's/, "tokens_per_s": [0-9.e+]*//'; }
diff <(strip "$TMP/q.jsonl") <(strip "$TMP/q2.jsonl")
echo "ok: losses, output directories, pack/JSONL and recompute parity"
