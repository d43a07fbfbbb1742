#!/usr/bin/env bash
# Our quantized exports are what llama.cpp's own llama-quantize makes: for a Qwen2 model (rows of
# 256 and 512; every quantized type), an 8-layer Llama model with q/k permutation and rope_freqs
# (the layer-dependent Q4_K_M / Q5_K_M mixes) and the qwen2-tied fixture (rows of 96/160: the
# shape fallbacks of the K-quant types), llama_model_quantize run on our f32 export gives a file
# whose tensors (types, shapes, bytes) and metadata equal our direct export's
# (tests/e2e/lib/gguf_same.py), and our reader gives the same logits from llama.cpp's files as
# from ours. Since our f32 file reproduces transformers' logits, this ties
# every quantized file to llama.cpp's own choices of type mix and block contents.
set -euo pipefail
source "$ROOT/tests/e2e/lib/llamacpp.sh"
Q=$(llamacpp_quantizer)
declare -A FTYPE=([q8_0]=7 [q4_0]=2 [q4_k_m]=15 [q5_k_m]=17 [q6_k]=18)
check() {
    local M=$1 name=$2 types=$3
    "$BIN" export --model "$M" --out "$TMP/$name-f32.gguf" --quant f32 2>/dev/null
    for q in $types; do
        "$BIN" export --model "$M" --out "$TMP/$name-$q.gguf" --quant $q 2>/dev/null
        "$Q" "$TMP/$name-f32.gguf" "$TMP/$name-lq-$q.gguf" ${FTYPE[$q]} >"$TMP/lq.log" 2>&1 ||
            { tail -5 "$TMP/lq.log"; echo "FAIL: llama-quantize $q" >&2; exit 1; }
        echo -n "$name $q: "
        python3 "$ROOT/tests/e2e/lib/gguf_same.py" "$TMP/$name-$q.gguf" "$TMP/$name-lq-$q.gguf"
    done
    # our reader takes llama.cpp's file (its own tensor order and offsets) to the same logits
    "$BIN" logits --model "$TMP/$name-q4_k_m.gguf" --tokens 1,2,3,4,5 --out "$TMP/ours.f32" >/dev/null
    "$BIN" logits --model "$TMP/$name-lq-q4_k_m.gguf" --tokens 1,2,3,4,5 --out "$TMP/lq.f32" >/dev/null
    cmp "$TMP/ours.f32" "$TMP/lq.f32"
}
M=$TMP/qwen2
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch qwen2 --hidden 256 --ff 512 --layers 2 \
    --heads 4 --kv 2 --vocab 512 --tied --seed 11 --bos 494 --eos 495
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 500
check "$M" qwen2 "q8_0 q4_0 q4_k_m q5_k_m q6_k"
M=$TMP/llama
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch llama --hidden 256 --ff 256 --layers 8 \
    --heads 4 --kv 2 --vocab 320 --dtype bf16 --llama3-rope --seed 12 --bos 304 --eos 305
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 310 --pre llama3
check "$M" llama "q4_k_m q5_k_m"
M=$TMP/qwen2-tied
cp -r "$ROOT/tests/fixtures/qwen2-tied" "$M"
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 370
check "$M" fixture "q4_k_m q5_k_m"
