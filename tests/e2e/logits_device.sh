#!/usr/bin/env bash
# `r1-distill logits --device`: cpu is the default and gives the same bytes; an unknown device is
# a usage error (exit 2) that lists the devices; with a usable GPU, cuda-fp32 logits are within
# 1e-5 (relative L2) of the CPU's and cuda (bf16) within 3e-2 with the same top id, and without
# one `--device cuda` fails with exit 1 (or 2 in a build without CUDA) saying why.
set -euo pipefail
cd "$ROOT"
fx=tests/fixtures/llama3-bf16
tokens=$(python3 -c "import json; print(','.join(map(str, json.load(open('$fx/ref.json'))['tokens'])))")

"$BIN" logits --model "$fx" --tokens "$tokens" --out "$TMP/default.f32" >"$TMP/default.txt"
"$BIN" logits --model "$fx" --tokens "$tokens" --device cpu --out "$TMP/cpu.f32" >"$TMP/cpu.txt"
cmp "$TMP/default.f32" "$TMP/cpu.f32"
cmp "$TMP/default.txt" "$TMP/cpu.txt"

set +e
"$BIN" logits --model "$fx" --tokens 1 --device tpu >/dev/null 2>"$TMP/err"; rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "unknown device: exit $rc, want 2"; cat "$TMP/err"; exit 1; }
grep -q 'unknown device "tpu"' "$TMP/err" || { cat "$TMP/err"; exit 1; }
grep -q 'cuda-fp32' "$TMP/err" || { echo "the hint should list the devices"; cat "$TMP/err"; exit 1; }

for dev in cuda-fp32 cuda; do
    set +e
    "$BIN" logits --model "$fx" --tokens "$tokens" --device "$dev" --out "$TMP/$dev.f32" \
        >"$TMP/$dev.txt" 2>"$TMP/err"; rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ] || { echo "--device $dev: exit $rc"; cat "$TMP/err"; exit 1; }
        grep -qE 'no CUDA device|built without CUDA|sm_[0-9]+' "$TMP/err" ||
            { echo "--device $dev failed without saying why"; cat "$TMP/err"; exit 1; }
        continue
    fi
    tol=$([ "$dev" = cuda-fp32 ] && echo 1e-5 || echo 3e-2)
    python3 - "$TMP/cpu.f32" "$TMP/$dev.f32" "$tol" <<'PY'
import math, struct, sys
a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read()
assert len(a) == len(b), f"sizes {len(a)} vs {len(b)}"
x = struct.unpack(f"<{len(a) // 4}f", a); y = struct.unpack(f"<{len(b) // 4}f", b)
num = sum((p - q) ** 2 for p, q in zip(y, x)); den = sum(p * p for p in x)
rel = math.sqrt(num / den)
print(f"{sys.argv[2]}: relative L2 {rel:.3g} vs the CPU")
assert rel <= float(sys.argv[3]), f"relative L2 {rel} > {sys.argv[3]}"
PY
    # the same top id for the last position
    [ "$(sed -n 2p "$TMP/$dev.txt" | awk '{print $1}')" = "$(sed -n 2p "$TMP/cpu.txt" | awk '{print $1}')" ] ||
        { echo "--device $dev: top id differs"; cat "$TMP/$dev.txt" "$TMP/cpu.txt"; exit 1; }
done
