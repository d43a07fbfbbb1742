#!/usr/bin/env bash
# `r1-distill init`: deterministic random models with transformers' initialisation statistics,
# every tensor of the architecture present, loadable by the forward pass.
set -euo pipefail
cd "$ROOT"
for fx in qwen2-tied llama3-bf16; do
    "$BIN" init --config tests/fixtures/$fx/config.json --out "$TMP/$fx-a" --seed 5 --tokenizer tests/fixtures/tiny-tokenizer 2>/dev/null
    "$BIN" init --config tests/fixtures/$fx/config.json --out "$TMP/$fx-b" --seed 5 2>/dev/null
    "$BIN" init --config tests/fixtures/$fx/config.json --out "$TMP/$fx-c" --seed 6 2>/dev/null
    cmp "$TMP/$fx-a/model.safetensors" "$TMP/$fx-b/model.safetensors"
    ! cmp -s "$TMP/$fx-a/model.safetensors" "$TMP/$fx-c/model.safetensors" || exit 1
    [ -f "$TMP/$fx-a/tokenizer.json" ]
    [ -f "$TMP/$fx-a/tokenizer_config.json" ]
    "$BIN" logits --model "$TMP/$fx-a" --tokens 1,2,3,4 >/dev/null
    python3 - "$TMP/$fx-a/model.safetensors" tests/fixtures/$fx/model.safetensors <<'PY'
import json, math, struct, sys
def read(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    return h, b[8 + n:]
h, data = read(sys.argv[1]); ref, _ = read(sys.argv[2])
# the same tensor names and shapes as the transformers-made checkpoint of this config
assert {k: v['shape'] for k, v in h.items()} == {k: v['shape'] for k, v in ref.items()}, \
    sorted(set(h) ^ set(ref))
for k, v in h.items():
    b, e = v['data_offsets']; assert v['dtype'] == 'F32'
    x = struct.unpack('<%df' % ((e - b) // 4), data[b:e])
    if k.endswith('norm.weight'): assert all(t == 1.0 for t in x), k
    elif k.endswith('bias'): assert all(t == 0.0 for t in x), k
    else:
        m = sum(x) / len(x); sd = math.sqrt(sum((t - m) ** 2 for t in x) / len(x))
        assert abs(m) < 0.002 and abs(sd - 0.02) < 0.001, (k, m, sd)
PY
done
# tensors of more than one block (2^18 values) are filled in parallel: the bits are the stream's
# drawn in order, whatever the thread count; recomputed here from splitmix64 and Box-Muller
python3 - "$TMP/wide.json" <<'PY'
import json, sys
c = json.load(open('tests/fixtures/qwen2-tied/config.json'))
c.update(vocab_size=4099, hidden_size=128, num_attention_heads=4, num_key_value_heads=2)
json.dump(c, open(sys.argv[1], 'w'))
PY
OMP_NUM_THREADS=1 "$BIN" init --config "$TMP/wide.json" --out "$TMP/wide1" --seed 9 2>/dev/null
OMP_NUM_THREADS=3 "$BIN" init --config "$TMP/wide.json" --out "$TMP/wide3" --seed 9 2>/dev/null
cmp "$TMP/wide1/model.safetensors" "$TMP/wide3/model.safetensors"
# ... and the conversion to bf16, in parallel too, gives the same bits
OMP_NUM_THREADS=1 "$BIN" init --config "$TMP/wide.json" --out "$TMP/wideb1" --seed 9 --dtype bf16 2>/dev/null
OMP_NUM_THREADS=3 "$BIN" init --config "$TMP/wide.json" --out "$TMP/wideb3" --seed 9 --dtype bf16 2>/dev/null
cmp "$TMP/wideb1/model.safetensors" "$TMP/wideb3/model.safetensors"
python3 - "$TMP/wide3/model.safetensors" <<'PY'
import json, math, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
M = (1 << 64) - 1; G = 0x9e3779b97f4a7c15
def mix(s):
    z = (s ^ (s >> 30)) * 0xbf58476d1ce4e5b9 & M
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb & M
    return z ^ (z >> 31)
s0 = 9 ^ 0x5deece66d  # the embedding comes first in the stream
lo, hi = h['model.embed_tokens.weight']['data_offsets']
for j in (0, 262142, 262144, 262146, 4099 * 128 - 2):
    u = ((mix((s0 + (j + 1) * G) & M) >> 11) + 0.5) * 2.0 ** -53
    v = ((mix((s0 + (j + 2) * G) & M) >> 11) + 0.5) * 2.0 ** -53
    r = math.sqrt(-2.0 * math.log(u))
    want = [struct.unpack('<f', struct.pack('<f', 0.02 * r * f(2 * math.pi * v)))[0]
            for f in (math.cos, math.sin)]
    got = list(struct.unpack_from('<2f', data, lo + 4 * j))
    assert got == want, (j, got, want)
PY
set +e; "$BIN" init --config tests/fixtures/qwen2-tied/config.json --out "$TMP/x" --dtype f8 2>"$TMP/err"; rc=$?; set -e
[ "$rc" -eq 2 ]
grep -q "expected f32, bf16 or f16" "$TMP/err"
echo "init: ok"
