#!/usr/bin/env bash
# san
# `r1-distill logits` on the DeepSeek-V3 fixtures (tests/ref/make_deepseek_fixtures.py): every
# position within 1e-4 relative L2 of transformers with the same argmax; and exit 2 with the
# tensor named for each kind of broken DeepSeek checkpoint (sharded FP8 copy edited in $TMP).
set -euo pipefail
cd "$ROOT"

for name in deepseek-yarn deepseek-fp8 deepseek-qnull; do
    fx=tests/fixtures/$name
    tokens=$(python3 -c "import json; print(','.join(map(str, json.load(open('$fx/ref.json'))['tokens'])))")
    "$BIN" logits --model "$fx" --tokens "$tokens" --out "$TMP/$name.f32" >"$TMP/top.txt"
    python3 - "$fx" "$TMP/$name.f32" <<'EOF'
import json, math, struct, sys
fx, out = sys.argv[1], sys.argv[2]
ref = json.load(open(fx + "/ref.json"))
T, V = ref["shape"]
mine = struct.unpack("<%df" % (T * V), open(out, "rb").read())
theirs = struct.unpack("<%df" % (T * V), open(fx + "/logits.f32", "rb").read())
worst = 0.0
for t in range(T):
    a, b = mine[t * V:(t + 1) * V], theirs[t * V:(t + 1) * V]
    err = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) / sum(y * y for y in b))
    worst = max(worst, err)
    if err > 1e-4:
        sys.exit("%s position %d: relative L2 error %.3g" % (fx, t, err))
    if max(range(V), key=a.__getitem__) != ref["argmax"][t]:
        sys.exit("%s position %d: argmax differs from transformers" % (fx, t))
print("%s: %d positions, worst relative L2 %.2e" % (fx, T, worst))
EOF
    top1=$(sed -n 2p "$TMP/top.txt" | awk '{print $1}')
    want=$(python3 -c "import json; print(json.load(open('$fx/ref.json'))['argmax'][-1])")
    [ "$top1" = "$want" ] || { echo "$name: printed top-1 $top1, transformers $want"; exit 1; }
done

expect_fail() {  # needle, command...
    local needle=$1; shift
    set +e; "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?; set -e
    if [ "$rc" -ne 2 ]; then echo "exit $rc (want 2): $*"; cat "$TMP/err"; exit 1; fi
    if ! grep -qF -- "$needle" "$TMP/err"; then echo "stderr lacks '$needle': $*"; cat "$TMP/err"; exit 1; fi
    grep -q '^r1-distill logits: ' "$TMP/err" || { echo "not in 'r1-distill logits: ...' form"; cat "$TMP/err"; exit 1; }
}

# Broken copies of the two-shard FP8 fixture: drop or reshape one tensor in whichever shard
# holds it (the index follows), or edit config.json.
fx=tests/fixtures/deepseek-fp8
mk() { rm -rf "$TMP/m"; cp -r "$fx" "$TMP/m"; }
edit_tensor() {  # name, "drop" | "shape R C"
    python3 - "$TMP/m" "$@" <<'EOF'
import json, os, struct, sys
d, name, op = sys.argv[1], sys.argv[2], sys.argv[3:]
index = json.load(open(d + "/model.safetensors.index.json"))
path = d + "/" + index["weight_map"][name]
b = open(path, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h, data = json.loads(b[8:8 + n]), b[8 + n:]
if op[0] == "drop":
    s, e = h.pop(name)["data_offsets"]
    data = data[:s] + data[e:]
    for k, v in h.items():
        if k != "__metadata__" and v["data_offsets"][0] >= e:
            v["data_offsets"] = [v["data_offsets"][0] - (e - s), v["data_offsets"][1] - (e - s)]
    del index["weight_map"][name]
    json.dump(index, open(d + "/model.safetensors.index.json", "w"))
else:
    h[name]["shape"] = [int(op[1]), int(op[2])]
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
EOF
}
bad() { expect_fail "$1" "$BIN" logits --model "$TMP/m" --tokens 1,2,3; }

scale=model.layers.1.self_attn.kv_b_proj.weight_scale_inv   # in the other shard than its weight
mk; edit_tensor "$scale" drop; bad "$scale"
mk; edit_tensor model.layers.0.self_attn.q_a_proj.weight_scale_inv shape 1 4
bad "model.layers.0.self_attn.q_a_proj.weight_scale_inv"
mk; edit_tensor model.layers.1.mlp.experts.5.gate_proj.weight drop
bad "model.layers.1.mlp.experts.5.gate_proj.weight"
mk; sed -i 's/"quant_method": "fp8"/"quant_method": "awq"/' "$TMP/m/config.json"
bad "unsupported quantization_config"
mk; sed -i 's/"scoring_func": "sigmoid"/"scoring_func": "softmax"/' "$TMP/m/config.json"
bad "scoring_func"
# the MTP layer's tensors are never read: breaking one changes nothing
mk; edit_tensor model.layers.2.mlp.experts.0.up_proj.weight_scale_inv drop
"$BIN" logits --model "$TMP/m" --tokens 1,2,3 >/dev/null
