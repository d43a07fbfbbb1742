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
    ! cmp -s "$TMP/$fx-a/model.safetensors" "$TMP/$fx-c/model.safetensors"
    [ -f "$TMP/$fx-a/tokenizer.json" ] && [ -f "$TMP/$fx-a/tokenizer_config.json" ]
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
set +e; "$BIN" init --config tests/fixtures/qwen2-tied/config.json --out "$TMP/x" --dtype f8 2>"$TMP/err"; rc=$?; set -e
[ "$rc" -eq 2 ] && grep -q "expected f32, bf16 or f16" "$TMP/err"
echo "init: ok"
