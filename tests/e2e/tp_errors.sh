#!/usr/bin/env bash
# san
# `--tp N` requests that cannot work are refused before any process starts, with exit 2 and the
# reason (the GPU runs are in tests/cuda/teacher_multi_gpu.sh): a dense model, a GGUF file, a
# device with an index or the CPU, a size that does not divide the heads, an FP8 checkpoint whose
# shards would cut a scale block, a size outside 1..64; generate refuses the same way and writes
# nothing. --tp 1 is the one-device path (logits equal --tp's absence).
set -euo pipefail
cd "$ROOT"
F=tests/fixtures
expect() { # expect STATUS PATTERN command...
    local want=$1 pat=$2 st=0
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err" || st=$?
    [ "$st" -eq "$want" ] || { echo "exit $st, not $want: $*"; cat "$TMP/err"; exit 1; }
    grep -q -- "$pat" "$TMP/err" || { echo "no /$pat/ from $*:"; cat "$TMP/err"; exit 1; }
}
L=("$BIN" logits --tokens 1,2,3)
expect 2 "implemented for deepseek_v3 models; this is qwen2" \
    "${L[@]}" --model $F/qwen2-tied --device cuda --tp 2
expect 2 "hint: a dense teacher fits one GPU" "${L[@]}" --model $F/llama3-bf16 --device cuda --tp 2
expect 2 "the ranks run on GPUs 0..1" "${L[@]}" --model $F/deepseek-yarn --device cpu --tp 2
expect 2 "the ranks run on GPUs 0..3" "${L[@]}" --model $F/deepseek-yarn --device cuda:1 --tp 4
expect 2 "num_attention_heads = 4 does not split into 3" \
    "${L[@]}" --model $F/deepseek-yarn --device cuda --tp 3
expect 2 "a rank holds 48 q_proj rows, not a whole number of FP8 scale blocks of 32" \
    "${L[@]}" --model $F/deepseek-fp8 --device cuda --tp 2
expect 2 "is not 1..64" "${L[@]}" --model $F/deepseek-yarn --tp 0
expect 2 "is not 1..64" "${L[@]}" --model $F/deepseek-yarn --tp 65

# a model that splits: refused only for want of GPUs (or of CUDA in this build)
st=0
"${L[@]}" --model $F/deepseek-yarn --device cuda --tp 2 >/dev/null 2>"$TMP/err" || st=$?
if nvidia-smi -L 2>/dev/null | grep -q '^GPU 1'; then
    [ "$st" -eq 0 ] || { cat "$TMP/err"; exit 1; }
else
    [ "$st" -ne 0 ] && grep -qi "cuda\|GPU" "$TMP/err" || { echo "exit $st:"; cat "$TMP/err"; exit 1; }
fi

# generate: the same refusal, nothing written
printf '{"prompt": [1, 2, 3]}\n' >"$TMP/p.jsonl"
expect 2 "a rank holds 48 q_proj rows" "$BIN" generate --teacher $F/deepseek-fp8 \
    --prompts "$TMP/p.jsonl" --out "$TMP/g" --device cuda --tp 2 --max-new-tokens 4
[ ! -e "$TMP/g" ] || { echo "generate wrote $TMP/g"; ls -la "$TMP/g"; exit 1; }

# --tp 1 is the plain one-device path
"${L[@]}" --model $F/deepseek-yarn --out "$TMP/a" >/dev/null
"${L[@]}" --model $F/deepseek-yarn --tp 1 --out "$TMP/b" >/dev/null
cmp "$TMP/a" "$TMP/b"
echo "tp errors: ok"
