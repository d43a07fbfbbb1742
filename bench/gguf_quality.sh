#!/usr/bin/env bash
# Quantization quality of `r1-distill export` on a trained model, beside llama.cpp's own figures.
#
#   bench/gguf_quality.sh MODEL_DIR [TEXT_FILE] [MAX_TOKENS]
#
# MODEL_DIR: a trained qwen2/llama Hugging Face directory with its tokenizer (the demo student,
# or bench/train_reference_lm.py's model). TEXT_FILE (default: the GNU GPL v3 text) is tokenized
# by llama.cpp from the exported f32 file and cut to MAX_TOKENS (default 512). For every type the
# table gives the file size, bits per weight, export time, and against the unquantized model
# (`r1-distill logits` on MODEL_DIR): mean KL divergence of the next-token distribution and top-1
# agreement, as llama.cpp computes them on the exported file and as our own GGUF reader does.
# Peer: llama.cpp's published KL for Llama-3-8B on wikitext (tools/perplexity README):
# Q8_0 0.0014, Q6_K 0.0058, Q5_K_M 0.0118, Q4_K_M 0.0310, Q4_0 0.0733 (a 28M model trained for
# minutes is more sensitive than an 8B one; the figures say what llama.cpp's format costs there).
# Reports; never fails on a number.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/r1-distill}
M=$(cd "$1" && pwd)
TEXT=${2:-/usr/share/common-licenses/GPL-3}
MAX=${3:-512}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gguf_quality.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
source "$ROOT/tests/e2e/lib/llamacpp.sh"
QUANTS="f32 f16 bf16 q8_0 q6_k q5_k_m q4_k_m q4_0"
declare -A PEER=([q8_0]=0.0014 [q6_k]=0.0058 [q5_k_m]=0.0118 [q4_k_m]=0.0310 [q4_0]=0.0733)
declare -A SECS
V=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$M/config.json")
params=0
for q in $QUANTS; do
    start=$(date +%s.%N)
    "$BIN" export --model "$M" --out "$TMP/m-$q.gguf" --quant $q 2>"$TMP/export-$q.log"
    SECS[$q]=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
done
llamacpp tokenize "$TMP/m-f32.gguf" "$TEXT" >"$TMP/all-ids"
tr ',' '\n' <"$TMP/all-ids" | sed -n "1,${MAX}p" | paste -sd, >"$TMP/ids"
ids=$(cat "$TMP/ids")
n=$(tr ',' '\n' <"$TMP/ids" | wc -l)
"$BIN" logits --model "$M" --tokens "$ids" --out "$TMP/ref.f32" >/dev/null
: >"$TMP/jobs"
for q in $QUANTS; do
    "$BIN" logits --model "$TMP/m-$q.gguf" --tokens "$ids" --out "$TMP/ours-$q.f32" >/dev/null
    echo "logits $TMP/m-$q.gguf $ids $TMP/lc-$q.f32 > $TMP/lc-$q.log" >>"$TMP/jobs"
    echo "compare $TMP/ref.f32 $TMP/lc-$q.f32 $V > $TMP/kl-lc-$q" >>"$TMP/jobs"
    echo "compare $TMP/ref.f32 $TMP/ours-$q.f32 $V > $TMP/kl-ours-$q" >>"$TMP/jobs"
done
llamacpp batch "$TMP/jobs"
# parameters: the f32 file's tensor bytes / 4
params=$(llamacpp types "$TMP/m-f32.gguf" | awk '{ n = 1; split($3, d, "x"); for (i in d) n *= d[i]; s += n } END { print s }')
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" "$2"; }
echo "model: $M ($params parameters), text: $TEXT ($n tokens)"
printf '%-7s %10s %6s %7s | %-24s | %-24s | %s\n' type bytes bpw export "llama.cpp: KL  top-1" \
    "r1-distill: KL  top-1" "llama.cpp on Llama-3-8B"
for q in $QUANTS; do
    bytes=$(stat -c %s "$TMP/m-$q.gguf")
    printf '%-7s %10d %6.2f %6ss | %-12s %-11s | %-12s %-11s | %s\n' $q "$bytes" \
        "$(awk -v b="$bytes" -v p="$params" 'BEGIN { print 8 * b / p }')" "${SECS[$q]}" \
        "$(field kl "$TMP/kl-lc-$q")" "$(field top1 "$TMP/kl-lc-$q")" \
        "$(field kl "$TMP/kl-ours-$q")" "$(field top1 "$TMP/kl-ours-$q")" "${PEER[$q]:--}"
done
