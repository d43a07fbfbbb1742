#!/usr/bin/env bash
# The dense fixtures made by transformers (tests/fixtures/qwen2-tied: rows of 96 and 160 values;
# tests/fixtures/llama3-bf16: rows of 64 and 128, bf16, llama3 rope scaling in all three bands),
# each given a synthetic tokenizer, export to every type. Their rows are no multiples of 256, so
# the K-quants take llama.cpp's fallbacks (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0); a third model
# with rows of 80 falls back to F16 where even 32 does not divide. llama.cpp loads every file,
# the checks of tests/e2e/lib/export_check.sh hold, and on the fixtures' own tokens both
# llama.cpp and our reader give transformers' logits from the f32 file.
set -euo pipefail
source "$ROOT/tests/e2e/lib/export_check.sh"
BASE=$TMP

# holds llama.cpp's and our f32 logits on the fixture's tokens against transformers' logits
vs_transformers() {
    local F=$1 V=$2 toks
    toks=$(python3 -c 'import json, sys; print(",".join(map(str, json.load(open(sys.argv[1]))["tokens"])))' "$F/ref.json")
    "$BIN" logits --model "$TMP/m-f32.gguf" --tokens "$toks" --out "$TMP/pt-ours.f32" >/dev/null
    printf '%s\n' "logits $TMP/m-f32.gguf $toks $TMP/pt-lc.f32 > $TMP/pt-lc.log" \
        "compare $F/logits.f32 $TMP/pt-lc.f32 $V > $TMP/pt-kl-lc" \
        "compare $F/logits.f32 $TMP/pt-ours.f32 $V > $TMP/pt-kl-ours" >"$TMP/jobs-pt"
    llamacpp batch "$TMP/jobs-pt"
    for who in lc ours; do
        echo "transformers vs $who (f32 GGUF): $(cat "$TMP/pt-kl-$who")"
        lt "$(field kl "$TMP/pt-kl-$who")" 1e-9 && [ "$(field top1 "$TMP/pt-kl-$who")" = 1.0000 ] &&
            lt "$(field maxdiff "$TMP/pt-kl-$who")" 1e-4 || fail "$who f32 logits differ from transformers'"
    done
}

M=$BASE/qwen2-tied
cp -r "$ROOT/tests/fixtures/qwen2-tied" "$M"
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 370
TMP=$BASE/a && mkdir -p "$TMP" && QUANTS="f32 q4_k_m q5_k_m q6_k" && export_check "$M" 2 1 1
vs_transformers "$M" 384
grep -q "use llama.cpp's fallback type" "$TMP/export-q4_k_m.log"
grep -q '^blk.0.attn_q.weight Q5_0 96x96$' "$TMP/types-q4_k_m"
grep -q '^blk.1.ffn_down.weight Q8_0 160x96$' "$TMP/types-q4_k_m"
grep -q '^blk.0.attn_q.weight Q5_1 96x96$' "$TMP/types-q5_k_m"

M=$BASE/llama3-bf16
cp -r "$ROOT/tests/fixtures/llama3-bf16" "$M"
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 310 --pre llama3
TMP=$BASE/b && mkdir -p "$TMP" && QUANTS="f32 q4_k_m" && export_check "$M" 2 0 0
vs_transformers "$M" 320
grep -q '^rope_freqs.weight F32 8$' "$TMP/types-f32"

M=$BASE/q80
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch llama --hidden 80 --ff 96 --layers 2 \
    --heads 5 --kv 1 --vocab 384 --dtype f32 --seed 22 --bos 364 --eos 365
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 370 --pre llama3
TMP=$BASE/c && mkdir -p "$TMP" && QUANTS="f32 q8_0" && export_check "$M" 2 0 0
grep -q '^blk.0.attn_q.weight F16 80x80$' "$TMP/types-q8_0"
grep -q '^blk.0.ffn_down.weight Q8_0 96x80$' "$TMP/types-q8_0"
grep -q '^output.weight F16 80x384$' "$TMP/types-q8_0"
