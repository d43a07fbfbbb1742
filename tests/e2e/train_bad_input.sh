#!/usr/bin/env bash
# train and pack on bad input: each case exits 2 with a message naming the problem.
# san
set -euo pipefail
F=$ROOT/tests/fixtures
M=$F/tiny-student-qwen2
expect() {  # expect STATUS PATTERN command...
    local want=$1 pat=$2; shift 2
    set +e
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    set -e
    if [ $rc -ne "$want" ] || ! grep -q -- "$pat" "$TMP/err"; then
        echo "FAILED: $* -> exit $rc (want $want), stderr:"; cat "$TMP/err"; exit 1
    fi
    head -n 2 "$TMP/err" | sed 's/^/  /'
}
t=(--steps 2 --batch-size 2 --seq-len 64 --quiet --save-every 0)

# token ids >= the model's vocabulary (320)
echo '{"input_ids": [316, 20, 500, 313], "loss_mask": [0, 1, 1, 1]}' >"$TMP/big.jsonl"
expect 2 "outside the vocabulary" "$BIN" train --model "$M" --data "$TMP/big.jsonl" --out "$TMP/o1" "${t[@]}"
expect 2 "outside the vocabulary" "$BIN" pack --tokenizer "$M" --out "$TMP/p1" "$TMP/big.jsonl"
# ... and in a shard made for a larger vocabulary
"$BIN" pack --vocab-size 1000 --out "$TMP/p2" "$TMP/big.jsonl" 2>/dev/null
expect 2 "outside the model's vocabulary" "$BIN" train --model "$M" --data "$TMP/p2" --out "$TMP/o2" "${t[@]}"

# a tokenizer that does not match the model: shards packed with another tokenizer.json
mkdir -p "$TMP/othertok"
sed 's/"<think>"/"<reason>"/' "$M/tokenizer.json" >"$TMP/othertok/tokenizer.json"
"$BIN" pack --tokenizer "$TMP/othertok" --out "$TMP/p3" "$F/tiny-sft/train.jsonl" 2>/dev/null
expect 2 "different tokenizer" "$BIN" train --model "$M" --data "$TMP/p3" --out "$TMP/o3" "${t[@]}"

# empty data
: >"$TMP/empty.jsonl"
expect 2 "no examples" "$BIN" train --model "$M" --data "$TMP/empty.jsonl" --out "$TMP/o4" "${t[@]}"
expect 2 "no examples" "$BIN" pack --tokenizer "$M" --out "$TMP/p4" "$TMP/empty.jsonl"
mkdir -p "$TMP/noshards"
expect 2 "no \*.tokens shards" "$BIN" train --model "$M" --data "$TMP/noshards" --out "$TMP/o5" "${t[@]}"

# every example longer than --seq-len
expect 2 "longer than --seq-len" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o6" --steps 2 --seq-len 4 --quiet
expect 2 "longer than --max-len" "$BIN" pack --tokenizer "$M" --max-len 4 --out "$TMP/p6" "$F/tiny-sft/train.jsonl"

# malformed records and shards
printf '{"input_ids": [1, 2, 3], "loss_mask": [0, 1]}\n' >"$TMP/bad1.jsonl"
expect 2 "line 1" "$BIN" train --model "$M" --data "$TMP/bad1.jsonl" --out "$TMP/o7" "${t[@]}"
printf '{"input_ids": [1, 2, 3]}\n{"prompt": "hello"}\n' >"$TMP/bad2.jsonl"
expect 2 "line 2" "$BIN" pack --vocab-size 320 --out "$TMP/p7" "$TMP/bad2.jsonl"
printf 'not json\n' >"$TMP/bad3.jsonl"
expect 2 "invalid JSON" "$BIN" pack --vocab-size 320 --out "$TMP/p8" "$TMP/bad3.jsonl"
"$BIN" pack --tokenizer "$M" --out "$TMP/p9" "$F/tiny-sft/train.jsonl" 2>/dev/null
head -c 300 "$TMP/p9/shard-000000.tokens" >"$TMP/p9/shard-000001.tokens"
expect 2 "shard-000001.tokens" "$BIN" train --model "$M" --data "$TMP/p9" --out "$TMP/o9" "${t[@]}"
expect 2 "already holds token shards" "$BIN" pack --tokenizer "$M" --out "$TMP/p9" "$F/tiny-sft/train.jsonl"

# a loss that becomes NaN / Inf: stop naming the step; the last good checkpoint is kept
expect 2 "step [0-9]*: the .* is \(NaN\|infinite\)" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" \
    --out "$TMP/o10" --steps 50 --lr 1e30 --batch-size 2 --seq-len 64 --save-every 1 --quiet
grep -q "last good checkpoint is .*checkpoint-" "$TMP/err"
ls "$TMP/o10" | grep -q '^checkpoint-1$'
[ ! -f "$TMP/o10/model.safetensors" ]

# usage errors
expect 2 "no such model directory" "$BIN" train --model "$TMP/nope" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o11"
expect 2 "exceeds --batch-size" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o12" --batch-size 2 --micro-batch 4
expect 2 "expected on or off" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o13" --pack maybe
expect 2 "no checkpoint to resume" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o14" --resume
expect 2 "unknown schedule" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o15" --schedule step
expect 2 "step count or a ratio" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o16" --warmup 1.5
expect 2 "expected GiB" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o17" --gpu-mem -1
expect 2 "everything is there already" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o18" --device cpu --offload-optimizer
expect 2 "everything is there already" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o20" --device cpu --offload-all
expect 2 "or auto (the lowest that fits), got 4" "$BIN" train --model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o21" --zero 4
# a damaged checkpoint is refused when resumed, before anything is read or written: an optimizer
# state cut short inside its data, then none at all
c=(--model "$M" --data "$F/tiny-sft/train.jsonl" --out "$TMP/o22" --steps 3 --batch-size 2 --seq-len 64
   --quiet --save-every 1 --keep 0 --device cpu)
"$BIN" train "${c[@]}" 2>/dev/null
rm -r "$TMP/o22/checkpoint-3" "$TMP/o22/checkpoint-2"
ck=$TMP/o22/checkpoint-1
head -c $(($(stat -c %s "$ck/optimizer.safetensors") - 1000)) "$ck/optimizer.safetensors" >"$TMP/opt.part"
mv "$TMP/opt.part" "$ck/optimizer.safetensors"
expect 2 "checkpoint-1/optimizer.safetensors" "$BIN" train "${c[@]}" --resume
rm "$ck/optimizer.safetensors"
expect 2 "checkpoint-1/optimizer.safetensors" "$BIN" train "${c[@]}" --resume
[ "$(ls "$TMP/o22")" = "$(printf 'checkpoint-1\nconfig.json\ngeneration_config.json\nmodel.safetensors\ntokenizer.json\ntokenizer_config.json\ntrainer_state.json')" ] ||
    { echo "FAILED: a refused resume changed --out:"; ls "$TMP/o22"; exit 1; }
echo "ok: bad input refused with exit 2"
