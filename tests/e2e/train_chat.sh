#!/usr/bin/env bash
# Conversations ({"messages": [...]}): pack tokenizes them with the student's tokenizer and R1 chat
# format (the prompt unlearned, the reasoning + answer + end token learned), and train reads the
# same JSONL directly with the model's tokenizer: both give the same examples and losses.
# san
set -euo pipefail
F=$ROOT/tests/fixtures
M=$F/tiny-student-qwen2
"$BIN" pack --tokenizer "$M" --out "$TMP/s" "$F/tiny-sft/chat.jsonl" 2>/dev/null
tokens=$(sed -n 's/.*"tokens":[[:space:]]*\([0-9]*\),.*/\1/p' "$TMP/s/pack.json")
learn=$(sed -n 's/.*"loss_tokens":[[:space:]]*\([0-9]*\),.*/\1/p' "$TMP/s/pack.json")
grep -q '"examples":[[:space:]]*4,' "$TMP/s/pack.json"
# the prompts (BOS, system, user turns, the assistant header and <think>\n) are not learned
[ "$learn" -gt 0 ]
[ "$learn" -lt "$tokens" ]
t=(--steps 3 --batch-size 2 --seq-len 128 --lr 1e-3 --save-every 0 --quiet)
"$BIN" train --model "$M" --data "$TMP/s" --out "$TMP/a" --log "$TMP/a.jsonl" "${t[@]}" 2>"$TMP/a.err"
"$BIN" train --model "$M" --data "$F/tiny-sft/chat.jsonl" --out "$TMP/b" --log "$TMP/b.jsonl" "${t[@]}" 2>"$TMP/b.err"
grep -q "data: 4 examples, $tokens tokens ($learn to learn)" "$TMP/b.err"
strip() { grep '"loss"' "$1" | sed 's/, "tokens_per_s": [0-9.e+]*//'; }
diff <(strip "$TMP/a.jsonl") <(strip "$TMP/b.jsonl")
# a chat format the tokenizer cannot end (no <|im_end|>) is refused
set +e
"$BIN" pack --tokenizer "$M" --chat-format chatml --out "$TMP/c" "$F/tiny-sft/chat.jsonl" 2>"$TMP/err"
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "im_end" "$TMP/err" || { cat "$TMP/err"; exit 1; }
echo "ok: conversations ($tokens tokens, $learn learned)"
