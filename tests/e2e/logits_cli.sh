#!/usr/bin/env bash
# san
# `r1-distill logits` end to end: output file layout, printed top ids, the CLI's exit statuses,
# and a clear exit-2 error naming the file (and tensor) for each kind of bad checkpoint.
set -euo pipefail
cd "$ROOT"
fx=tests/fixtures/qwen2-tied
tokens=$(python3 -c "import json; print(','.join(map(str, json.load(open('$fx/ref.json'))['tokens'])))")
last_argmax=$(python3 -c "import json; print(json.load(open('$fx/ref.json'))['argmax'][-1])")

"$BIN" logits --model "$fx" --tokens "$tokens" --out "$TMP/l.f32" >"$TMP/top.txt"
size=$(stat -c %s "$TMP/l.f32")
[ "$size" -eq $((20 * 384 * 4)) ] || { echo "logits file is $size bytes, want 20*384*4"; exit 1; }
top1=$(sed -n 2p "$TMP/top.txt" | awk '{print $1}')
[ "$top1" = "$last_argmax" ] || { echo "top-1 $top1, transformers argmax $last_argmax"; exit 1; }

# exit statuses: --help and --version 0, usage errors 2
"$BIN" --help >/dev/null
"$BIN" --version | grep -q '^r1-distill '
"$BIN" logits --help | grep -q -- '--top K.*(default: 5)'
expect_fail() {  # expected-status, needle, command...
    local want=$1 needle=$2; shift 2
    set +e; "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?; set -e
    if [ "$rc" -ne "$want" ]; then echo "exit $rc (want $want): $*"; cat "$TMP/err"; exit 1; fi
    if ! grep -qF -- "$needle" "$TMP/err"; then echo "stderr lacks '$needle': $*"; cat "$TMP/err"; exit 1; fi
    if ! grep -q '^r1-distill' "$TMP/err"; then echo "error not in 'r1-distill <command>: ...' form"; cat "$TMP/err"; exit 1; fi
}
expect_fail 2 "unknown command" "$BIN" frobnicate
expect_fail 2 "--model is required" "$BIN" logits --tokens 1
expect_fail 2 "unknown option" "$BIN" logits --model "$fx" --tokens 1 --bogus
expect_fail 2 "expected an integer" "$BIN" logits --model "$fx" --tokens 1 --top x
expect_fail 2 "comma-separated integers" "$BIN" logits --model "$fx" --tokens 1,a
expect_fail 2 "outside the vocabulary" "$BIN" logits --model "$fx" --tokens 1,384
expect_fail 2 "no such model directory" "$BIN" logits --model "$TMP/none" --tokens 1

# bad checkpoints: copy the fixture and break one thing at a time
mk() { rm -rf "$TMP/m"; cp -r "$fx" "$TMP/m"; }
st=$TMP/m/model.safetensors
py() { python3 - "$st" "$@"; }
bad() { expect_fail 2 "$1" "$BIN" logits --model "$TMP/m" --tokens 1,2,3; }

mk; truncate -s 5 "$st"; bad "truncated"
mk; py <<'EOF'
import sys, struct
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
b[0:8] = struct.pack('<Q', len(b) + 100); open(p, 'wb').write(b)
EOF
bad "past the end"
# header edits: rewrite the header (and its length field) in front of the same data
edit_header() {  # python expression turning h (str) into the new header
    python3 - "$st" "$1" <<'EOF'
import sys, struct
p, expr = sys.argv[1], sys.argv[2]
b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h = b[8:8 + n].decode()
new = eval(expr).encode()
open(p, 'wb').write(struct.pack('<Q', len(new)) + new + b[8 + n:])
EOF
}
mk; edit_header 'h.replace("{", "[", 1)'; bad "header does not start"
mk; edit_header 'h[: len(h) // 2]'; bad "invalid JSON"
mk; edit_header 'h.replace("\"F32\"", "\"F33\"", 1)'; bad 'unknown dtype "F33"'
mk; edit_header 'h.replace("\"data_offsets\":[0,", "\"data_offsets\":[9999999999,", 1)'; bad "outside"
mk; python3 - "$st" <<'EOF'
import sys, struct, json
p = sys.argv[1]; b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); names = sorted(k for k in h if k != '__metadata__')
a, c = h[names[0]], h[names[1]]
# make the second tensor start 4 bytes inside the first one's range (same size, so it overlaps)
c['data_offsets'] = [a['data_offsets'][1] - 4, a['data_offsets'][1] - 4 + c['data_offsets'][1] - c['data_offsets'][0]]
new = json.dumps(h, separators=(',', ':')).encode()
open(p, 'wb').write(struct.pack('<Q', len(new)) + new + b[8 + n:])
EOF
bad "overlaps"
mk; edit_header 'h.replace("model.norm.weight", "model.norm.weighs", 1)'; bad 'missing tensor "model.norm.weight"'
mk; sed -i 's/"intermediate_size": 160/"intermediate_size": 192/' "$TMP/m/config.json"
bad 'tensor "model.layers.0.mlp.gate_proj.weight" has shape [160, 96], but config.json'
mk; rm "$TMP/m/config.json"; bad "missing config.json"
mk; echo '{"model_type": "qwen2",' >"$TMP/m/config.json"; bad "invalid JSON at line"
mk; sed -i 's/"model_type": "qwen2"/"model_type": "mistral"/' "$TMP/m/config.json"; bad 'unsupported model_type "mistral"'
mk; rm "$st"; bad "no model.safetensors"
echo "logits CLI: ok"
