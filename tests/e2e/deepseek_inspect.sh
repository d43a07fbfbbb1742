#!/usr/bin/env bash
# san
# `r1-distill inspect`: the published DeepSeek-R1 config gives about 671 B parameters, about 37 B
# active per token and 70,272 bytes of bf16 latent cache per token; Qwen2.5-1.5B and Llama-3.1-8B
# give their published parameter counts; with weights present, the counts from config.json
# agree with the safetensors headers.
set -euo pipefail
cd "$ROOT"

field() {  # json-file key -> number
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"
}
between() {  # what value lo hi
    python3 -c "import sys; v,lo,hi=map(float,sys.argv[2:]); sys.exit(0 if lo<=v<=hi else 1)" "$@" ||
        { echo "$1 = $2, want [$3, $4]"; exit 1; }
}

"$BIN" inspect --model tests/fixtures/configs/deepseek-r1.json --json >"$TMP/r1.json"
between params_total "$(field "$TMP/r1.json" params_total)" 671e9 672e9
between params_active "$(field "$TMP/r1.json" params_active)" 36.5e9 38e9
[ "$(field "$TMP/r1.json" kv_cache_bytes_per_token)" = 70272 ] || { cat "$TMP/r1.json"; exit 1; }
# the MTP module (DeepSeek counts 685 B with it) is reported apart
between params_mtp "$(field "$TMP/r1.json" params_mtp)" 11e9 12e9
# FP8 checkpoint: about 670 GB of e4m3 weights, BF16 embeddings/head/norms/router, F32 scales
python3 - "$TMP/r1.json" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))["bytes_by_dtype"]
assert 660e9 < b["F8_E4M3"] < 680e9 and 3e9 < b["BF16"] < 5e9 and 0 < b["F32"] < 1e9, b
EOF

# the human-readable form says the same
"$BIN" inspect --model tests/fixtures/configs/deepseek-r1.json >"$TMP/r1.txt"
grep -q '671.03 B total' "$TMP/r1.txt" && grep -q '37.55 B active' "$TMP/r1.txt" &&
    grep -q '70272 bytes per token' "$TMP/r1.txt" || { cat "$TMP/r1.txt"; exit 1; }

# dense models: total = active; published counts
"$BIN" inspect --model tests/fixtures/configs/qwen2.5-1.5b.json --json >"$TMP/q.json"
[ "$(field "$TMP/q.json" params_total)" = 1543714304 ] || { cat "$TMP/q.json"; exit 1; }
[ "$(field "$TMP/q.json" params_active)" = 1543714304 ] || { cat "$TMP/q.json"; exit 1; }
[ "$(field "$TMP/q.json" kv_cache_bytes_per_token)" = $((28 * 2 * 2 * 128 * 2)) ] || exit 1
"$BIN" inspect --model tests/fixtures/configs/llama-3.1-8b.json --json >"$TMP/l.json"
[ "$(field "$TMP/l.json" params_total)" = 8030261248 ] || { cat "$TMP/l.json"; exit 1; }
[ "$(field "$TMP/l.json" kv_cache_bytes_per_token)" = $((32 * 2 * 8 * 128 * 2)) ] || exit 1

# with weights: config-derived counts and bytes match the files (no MTP layer in these two)
for name in deepseek-yarn deepseek-fp8; do
    "$BIN" inspect --model "tests/fixtures/$name" --json >"$TMP/$name.json"
done
python3 - "$TMP/deepseek-yarn.json" "$TMP/deepseek-fp8.json" <<'EOF'
import json, sys
y = json.load(open(sys.argv[1]))
assert y["files"]["params"] == y["params_total"], y
assert y["files"]["bytes_by_dtype"] == y["bytes_by_dtype"], y
assert y["params_active"] < y["params_total"], y
# the FP8 fixture also stores an MTP layer with its own embedding and head copies
f = json.load(open(sys.argv[2]))
V, d = 256, 64
assert f["files"]["params"] == f["params_total"] + f["params_mtp"] + 2 * V * d, f
assert set(f["bytes_by_dtype"]) == {"F8_E4M3", "BF16", "F32"}, f
EOF

# bad input: exit 2, message names the file
set +e; "$BIN" inspect --model "$TMP/nothing" 2>"$TMP/err"; rc=$?; set -e
[ "$rc" -eq 2 ] && grep -q "no such model directory" "$TMP/err" || { cat "$TMP/err"; exit 1; }
mkdir "$TMP/bad" && echo '{"model_type": "gpt2"}' >"$TMP/bad/config.json"
set +e; "$BIN" inspect --model "$TMP/bad" 2>"$TMP/err"; rc=$?; set -e
[ "$rc" -eq 2 ] && grep -q 'unsupported model_type "gpt2"' "$TMP/err" || { cat "$TMP/err"; exit 1; }
