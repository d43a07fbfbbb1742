#!/usr/bin/env bash
# GGUF export of a Qwen2 model (tied embeddings, q/k/v biases, GQA, vocabulary padded from 500
# tokenizer entries to 512 rows, every row a multiple of 256 so the K-quants apply) in all eight
# types, checked against llama.cpp (tests/e2e/lib/export_check.sh); the f32 file reads back with
# the HF directory's logits bit for bit.
set -euo pipefail
source "$ROOT/tests/e2e/lib/export_check.sh"
M=$TMP/qwen2
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch qwen2 --hidden 256 --ff 512 --layers 2 \
    --heads 4 --kv 2 --vocab 512 --tied --dtype f32 --seed 11 --bos 494 --eos 495
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 500
export_check "$M" 2 1 1
grep -q "padded the vocabulary from 500 tokens to config.json's 512" "$TMP/export-f32.log"
grep -q '^tokenizer.ggml.pre="qwen2"$' "$TMP/meta-f32"
# [PAD] rows are UNUSED tokens; the R1 specials are CONTROL, <think> USER_DEFINED
python3 - "$TMP/meta-f32" <<'PY'
import json, sys
meta = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]))
toks, types = json.loads(meta["tokenizer.ggml.tokens"]), json.loads(meta["tokenizer.ggml.token_type"])
assert len(toks) == len(types) == 512, len(toks)
assert toks[500:] == ["[PAD%d]" % i for i in range(500, 512)] and set(types[500:]) == {5}, toks[500:]
assert toks[494:500] == ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>",
                         "<｜Assistant｜>", "<think>", "</think>"], toks[494:500]
assert types[494:500] == [3, 3, 3, 3, 4, 4], types[494:500]
assert set(types[:494]) == {1}
PY
