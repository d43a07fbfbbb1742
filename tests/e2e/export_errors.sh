#!/usr/bin/env bash
# san
# Bad input to export and to the GGUF reader: each refusal exits 2 and names the file and what
# is wrong; nothing is left behind under the output name.
set -euo pipefail
M=$TMP/m
python3 "$ROOT/tests/e2e/lib/make_model.py" "$M" --arch qwen2 --hidden 64 --ff 96 --layers 1 \
    --heads 4 --kv 2 --vocab 300 --tied --seed 5
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$M" 300

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error STATUS NEEDLE COMMAND...: the command exits STATUS and stderr holds NEEDLE
expect_error() {
    local want=$1 needle=$2 rc=0
    shift 2
    "$@" 2>"$TMP/err" >/dev/null || rc=$?
    [ $rc = "$want" ] || { cat "$TMP/err"; fail "exit $rc, expected $want: $*"; }
    grep -qF -- "$needle" "$TMP/err" || { cat "$TMP/err"; fail "no \"$needle\" in the message of: $*"; }
}

"$BIN" export --model "$M" --out "$TMP/ok.gguf" --quant q8_0 2>/dev/null
[ -f "$TMP/ok.gguf" ]

# usage
expect_error 2 'unknown type "q3_k"' "$BIN" export --model "$M" --out "$TMP/x.gguf" --quant q3_k
expect_error 2 "--quant, --modelfile and --pre apply to --format gguf" \
    "$BIN" export --model "$M" --out "$TMP/hf" --format hf --quant q8_0
expect_error 2 'unknown format "onnx"' "$BIN" export --model "$M" --out "$TMP/x" --format onnx

# unsupported architecture (a valid deepseek_v3 config)
D=$TMP/ds && mkdir -p "$D"
cat >"$D/config.json" <<'JSON'
{"model_type": "deepseek_v3", "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
 "num_hidden_layers": 1, "num_attention_heads": 4, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
 "qk_rope_head_dim": 8, "v_head_dim": 8, "first_k_dense_replace": 1}
JSON
expect_error 2 'cannot export model_type "deepseek_v3" to GGUF' "$BIN" export --model "$D" --out "$TMP/x.gguf"
sed -i 's/deepseek_v3/mistral/' "$D/config.json"
expect_error 2 'unsupported model_type "mistral"' "$BIN" export --model "$D" --out "$TMP/x.gguf"

# missing tokenizer
N=$TMP/notok && mkdir -p "$N" && cp "$M/config.json" "$M/model.safetensors" "$N/"
expect_error 2 "$N: missing tokenizer.json" "$BIN" export --model "$N" --out "$TMP/x.gguf"
expect_error 2 "missing tokenizer.json" "$BIN" export --model "$N" --out "$TMP/hf" --format hf

# a pre-tokenizer llama.cpp has no name for: refused, unless --pre names one
U=$TMP/unk && cp -r "$M" "$U"
python3 - "$U/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\w+|\s+|[^\w\s]+"
json.dump(t, open(sys.argv[1], "w"), ensure_ascii=False)
PY
expect_error 2 'unrecognised pre-tokenizer regex' "$BIN" export --model "$U" --out "$TMP/x.gguf"
grep -q -- "--pre NAME" "$TMP/err" || fail "no --pre hint"
"$BIN" export --model "$U" --out "$TMP/pre.gguf" --pre qwen2 2>/dev/null

# more tokenizer entries than embedding rows
B=$TMP/big && cp -r "$M" "$B"
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$B" 310
expect_error 2 "the tokenizer has 310 tokens but config.json vocab_size is 300" \
    "$BIN" export --model "$B" --out "$TMP/x.gguf"

# a NaN in the weights
X=$TMP/nan && cp -r "$M" "$X"
python3 - "$X/model.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
off = 8 + n + h["model.layers.0.mlp.up_proj.weight"]["data_offsets"][0] + 4 * (64 * 7 + 3)
b[off:off + 4] = struct.pack("<f", float("nan"))
open(sys.argv[1], "wb").write(b)
PY
expect_error 2 'tensor "model.layers.0.mlp.up_proj.weight" row 7 holds NaN or infinity' \
    "$BIN" export --model "$X" --out "$TMP/nan.gguf" --quant q4_0
[ ! -e "$TMP/nan.gguf" ] || fail "a failed export left $TMP/nan.gguf"
ls "$TMP" | grep -q 'nan.gguf.tmp' && fail "a failed export left its temporary file"

# the GGUF reader refuses damaged or unsupported files (through teacher_open)
head -c 1000 "$TMP/ok.gguf" >"$TMP/cut.gguf"
expect_error 2 "$TMP/cut.gguf: " "$BIN" logits --model "$TMP/cut.gguf" --tokens 1,2
printf 'not a gguf file at all' >"$TMP/text.gguf"
expect_error 2 "not a GGUF file" "$BIN" logits --model "$TMP/text.gguf" --tokens 1,2
python3 - "$TMP/ok.gguf" "$TMP/gemma.gguf" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
key = b"general.architecture"
i = b.index(key) + len(key) + 4 + 8  # type u32, string length u64
assert b[i:i + 5] == b"qwen2"
open(sys.argv[2], "wb").write(b[:i] + b"gemma" + b[i + 5:])
PY
expect_error 2 'unsupported architecture "gemma"' "$BIN" logits --model "$TMP/gemma.gguf" --tokens 1,2
# a tensor of a type with the same block size as Q4_0 but no reader here (IQ4_NL)
"$BIN" export --model "$M" --out "$TMP/q40.gguf" --quant q4_0 2>/dev/null
python3 - "$TMP/q40.gguf" "$TMP/iq4.gguf" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
name = b"blk.0.attn_q.weight"
i = b.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
nd = struct.unpack("<I", b[i:i + 4])[0]
t = i + 4 + 8 * nd
assert struct.unpack("<I", b[t:t + 4])[0] == 2  # Q4_0
b[t:t + 4] = struct.pack("<I", 20)              # IQ4_NL: 32 values in 18 bytes too
open(sys.argv[2], "wb").write(b)
PY
expect_error 2 'tensor "blk.0.attn_q.weight" has type IQ4_NL, which this toolkit cannot read' \
    "$BIN" logits --model "$TMP/iq4.gguf" --tokens 1,2
echo "all refusals exit 2 with their reason"
