#!/usr/bin/env bash
# Shapes the K-quants cannot take: a Qwen2 model shaped like tests/fixtures/qwen2-tied (rows of
# 96 and 160 values, not multiples of 256) and one whose rows of 80 are not even multiples of
# 32. Every type exports with llama.cpp's fallbacks (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, and F16
# when 32 does not divide the row), llama.cpp loads every file, and the checks of
# tests/e2e/lib/export_check.sh hold (types, KL, greedy agreement, exact f32 read-back).
set -euo pipefail
source "$ROOT/tests/e2e/lib/export_check.sh"
BASE=$TMP
M=$BASE/q96
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch qwen2 --hidden 96 --ff 160 --layers 2 \
    --heads 6 --kv 2 --vocab 384 --tied --dtype f32 --seed 21 --bos 364 --eos 365
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 370
TMP=$BASE/a && mkdir -p "$TMP" && QUANTS="f32 q4_k_m q5_k_m q6_k" && export_check "$M" 2 1 1
grep -q "use llama.cpp's fallback type" "$TMP/export-q4_k_m.log"
grep -q '^blk.0.attn_q.weight Q5_0 96x96$' "$TMP/types-q4_k_m"
grep -q '^blk.1.ffn_down.weight Q8_0 160x96$' "$TMP/types-q4_k_m"
grep -q '^blk.0.attn_q.weight Q5_1 96x96$' "$TMP/types-q5_k_m"

M=$BASE/q80
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch llama --hidden 80 --ff 96 --layers 2 \
    --heads 5 --kv 1 --vocab 384 --dtype f32 --seed 22 --bos 364 --eos 365
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 370 --pre llama3
TMP=$BASE/b && mkdir -p "$TMP" && QUANTS="f32 q8_0 q4_k_m" && export_check "$M" 2 0 0
grep -q '^blk.0.attn_q.weight F16 80x80$' "$TMP/types-q8_0"
grep -q '^blk.0.ffn_down.weight Q8_0 96x80$' "$TMP/types-q8_0"
grep -q '^output.weight F16 80x384$' "$TMP/types-q4_k_m"
