#!/usr/bin/env bash
# export --format hf: a checkpoint directory with a trainer's leftovers becomes a clean Hugging
# Face directory (bf16 safetensors rounded to nearest even, config.json saying bfloat16, R1
# generation defaults, tokenizer files) that loads with the same logits as its source.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
S=$TMP/ckpt
python3 "$ROOT/tests/e2e/lib/make_model.py" "$S" --arch llama --hidden 64 --ff 128 --layers 2 \
    --heads 4 --kv 2 --vocab 300 --dtype f32 --seed 9 --bos 294 --eos 295
python3 "$ROOT/tests/ref/make_bpe_tokenizer.py" "$S" 300 --pre llama3
echo '{"global_step": 10}' >"$S/trainer_state.json"
cp "$S/model.safetensors" "$S/optimizer.safetensors"

"$BIN" export --model "$S" --out "$TMP/hf" --format hf 2>"$TMP/log" || { cat "$TMP/log"; exit 1; }
ls "$TMP/hf" | sort >"$TMP/files"
printf '%s\n' config.json generation_config.json model.safetensors tokenizer.json \
    tokenizer_config.json >"$TMP/want"
diff "$TMP/want" "$TMP/files" || fail "unexpected files in the HF directory"
cmp "$S/tokenizer.json" "$TMP/hf/tokenizer.json"
python3 - "$S" "$TMP/hf" <<'PY'
import json, struct, sys
def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return {k: (v, b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items()}
src, out = tensors(sys.argv[1] + "/model.safetensors"), tensors(sys.argv[2] + "/model.safetensors")
assert src.keys() == out.keys()
for k, (meta, data) in out.items():
    assert meta["dtype"] == "BF16" and meta["shape"] == src[k][0]["shape"], (k, meta)
    f = struct.unpack("<%dI" % (len(src[k][1]) // 4), src[k][1])
    want = b"".join(struct.pack("<H", ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF) for u in f)
    assert data == want, k  # round to nearest even, as torch's .to(torch.bfloat16)
cfg = json.load(open(sys.argv[2] + "/config.json"))
assert cfg["torch_dtype"] == "bfloat16" and cfg["model_type"] == "llama", cfg
gen = json.load(open(sys.argv[2] + "/generation_config.json"))
assert gen == {"bos_token_id": 294, "eos_token_id": 295, "do_sample": True, "temperature": 0.6,
               "top_p": 0.95}, gen
PY
# the bf16 directory reads back, and exports onward to GGUF
"$BIN" logits --model "$TMP/hf" --tokens 294,5,6,7 --out "$TMP/hf.f32" >/dev/null
"$BIN" export --model "$TMP/hf" --out "$TMP/hf.gguf" --quant bf16 2>/dev/null
"$BIN" logits --model "$TMP/hf.gguf" --tokens 294,5,6,7 --out "$TMP/gguf.f32" >/dev/null
python3 - "$TMP/hf.f32" "$TMP/gguf.f32" <<'PY'
import array, sys
a, b = (array.array("f", open(p, "rb").read()) for p in sys.argv[1:])
assert len(a) == len(b) == 4 * 300
d = max(abs(x - y) for x, y in zip(a, b))
assert d < 1e-4, d  # same bf16 weights; llama q/k permuted in the GGUF
PY
# the source directory is never the output
rc=0
"$BIN" export --model "$S" --out "$S" --format hf 2>"$TMP/err" || rc=$?
[ $rc = 2 ] && grep -q "is the model directory itself" "$TMP/err" || fail "exporting onto the source"
