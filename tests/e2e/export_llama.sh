#!/usr/bin/env bash
# GGUF export of a Llama model (untied output, GQA, Llama 3 rope scaling -> rope_freqs.weight,
# q/k rows permuted for llama.cpp's RoPE, bf16 weights, Llama-3 pre-tokenizer "llama-bpe") in
# all eight types, checked against llama.cpp (tests/e2e/lib/export_check.sh). Our reader runs
# the permuted q/k with adjacent-pair RoPE, so its f32 logits match the HF directory's to float
# rounding rather than bit for bit.
set -euo pipefail
source "$ROOT/tests/e2e/lib/export_check.sh"
M=$TMP/llama
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch llama --hidden 256 --ff 512 --layers 2 \
    --heads 4 --kv 2 --vocab 320 --dtype bf16 --llama3-rope --seed 12 --bos 304 --eos 305
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 310 --pre llama3
export_check "$M" 2 0 0
grep -q '^tokenizer.ggml.pre="llama-bpe"$' "$TMP/meta-f32"
grep -q '^llama.vocab_size=320$' "$TMP/meta-f32"
grep -q '^rope_freqs.weight F32 32$' "$TMP/types-q4_k_m"
# our reader vs the HF directory on f32: float rounding only
md=$(field maxdiff "$TMP/kl-ours-f32")
lt "$md" 1e-4 || fail "f32 GGUF logits differ from HF by $md"
