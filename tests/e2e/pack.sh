#!/usr/bin/env bash
# pack: pre-tokenized JSONL -> token shards; counts of dropped and truncated examples, several
# shards, and that train reads a shard directory.
# san
set -euo pipefail
F=$ROOT/tests/fixtures
M=$F/tiny-student-qwen2
"$BIN" pack --tokenizer "$M" --max-len 16 --shard-tokens 300 --out "$TMP/s" \
    "$F/tiny-sft/train.jsonl" "$F/tiny-sft/eval.jsonl" 2>"$TMP/err"
cat "$TMP/err"
n_long=$(awk 'length($0) > 0' "$F/tiny-sft/train.jsonl" "$F/tiny-sft/eval.jsonl" |
         sed 's/"loss_mask".*//' | awk -F, '{ if (NF - 1 > 16) n++ } END { print n + 0 }')
grep -q "\"dropped_long\":[[:space:]]*$n_long," "$TMP/s/pack.json"
grep -q '"examples":[[:space:]]*'"$((60 - n_long))"',' "$TMP/s/pack.json"
[ "$(ls "$TMP/s" | grep -c '\.tokens$')" -ge 2 ]
head -c 8 "$TMP/s/shard-000000.tokens" | grep -q R1TOKENS
"$BIN" pack --tokenizer "$M" --max-len 16 --truncate --out "$TMP/t" "$F/tiny-sft/train.jsonl" 2>/dev/null
grep -q '"dropped_long":[[:space:]]*0,' "$TMP/t/pack.json"
grep -q '"truncated":[[:space:]]*[1-9]' "$TMP/t/pack.json"
"$BIN" train --model "$M" --data "$TMP/s" --out "$TMP/o" --steps 3 --batch-size 2 --seq-len 32 --quiet 2>"$TMP/err"
grep -q "data: $((60 - n_long)) examples" "$TMP/err"
echo "ok: pack ($n_long of 60 examples longer than 16 tokens dropped)"
