#!/usr/bin/env bash
# The tokenizer metadata `export` writes makes llama.cpp tokenize like the HF tokenizer: a
# byte-level BPE of 4096 tokens trained on real text (tests/fixtures/bpe-4k, made with
# tokenizers 0.23 by tests/ref/make_bpe4k_fixture.py) goes into a GGUF file with a tiny model,
# and llama.cpp's ids for the whole GNU GPL v3 text (11414 tokens, BOS first) equal the ids the
# HF tokenizer gave, and those of `r1-distill tokenize`.
set -euo pipefail
source "$ROOT/tests/e2e/lib/llamacpp.sh"
F=$ROOT/tests/fixtures/bpe-4k
text=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["text"])' "$F/gpl3_ids.json")
want=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sha256"])' "$F/gpl3_ids.json")
[ "$(sha256sum "$text" | cut -d' ' -f1)" = "$want" ] || { echo "FAIL: $text is not the text the ids were made from" >&2; exit 1; }
M=$TMP/m
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch qwen2 --hidden 64 --ff 64 --layers 1 \
    --heads 2 --kv 1 --vocab 4096 --tied --seed 3
cp "$F/tokenizer.json" "$F/tokenizer_config.json" "$M/"
"$BIN" export --model "$M" --out "$TMP/m.gguf" --quant q8_0 2>/dev/null
llamacpp tokenize "$TMP/m.gguf" "$text" >"$TMP/ids"
"$BIN" tokenize --tokenizer "$M" --add-special <"$text" | tr ' ' ',' >"$TMP/ours"
cmp "$TMP/ids" "$TMP/ours" || { echo "FAIL: llama.cpp and r1-distill tokenize differ" >&2; exit 1; }
python3 - "$F/gpl3_ids.json" "$TMP/ids" <<'PY'
import json, sys
want = json.load(open(sys.argv[1]))["ids"]
got = [int(x) for x in open(sys.argv[2]).read().strip().split(",")]
bad = [i for i in range(min(len(want), len(got))) if want[i] != got[i]]
assert got == want, f"{len(got)} ids vs {len(want)}; first differences at {bad[:5]}"
print(f"llama.cpp and the HF tokenizer agree on all {len(want)} ids")
PY
