#!/usr/bin/env bash
# The training attention kernels alone beside PyTorch's (make bench-cuda): causal forward and
# backward on the attention shapes of Qwen2.5-0.5B, 1.5B and 7B, at 4 x 4096 and 1 x 32768 tokens
# (R1's traces run to 32k, where attention is half of a 1.5B's FLOPs). Ours: build/bench/
# cuda_attention; PyTorch: bench/torch_attention.py (SDPA's flash and cudnn backends after
# transformers' repeat_kv, and flash_attn where installed). Logs and JSON lines go to $BENCH_OUT
# (default bench-out/). R1_BENCH_ATTN=mma|simple times our other kernels. Reports, never fails.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
OUTDIR=${BENCH_OUT:-$ROOT/bench-out}
mkdir -p "$OUTDIR"
RES="$OUTDIR/attention_results.jsonl"
: >"$RES"
BIN=${CUDA_ATTENTION_BIN:-$ROOT/$BUILD/bench/cuda_attention}
PY=${PYTHON:-python3}

run() {  # label, command...
    local label=$1; shift
    echo "== $label"
    timeout "${BENCH_TIMEOUT:-120}" "$@" >"$OUTDIR/attn-$label.log" 2>&1
    local rc=$?
    grep -v '^result ' "$OUTDIR/attn-$label.log" | tail -n 4
    grep '^result ' "$OUTDIR/attn-$label.log" | sed 's/^result //' >>"$RES"
    [ "$rc" = 0 ] || echo "   (exit $rc; see $OUTDIR/attn-$label.log)"
}

nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
# name, heads, kv heads, head size, sequence, documents
while read -r name h kv hd t b; do
    shape=(--heads "$h" --kv-heads "$kv" --head-dim "$hd" --seq "$t" --batch "$b")
    run "ours-$name" "$BIN" --attn "${R1_BENCH_ATTN:-auto}" "${shape[@]}"
    # the backward as it was before it kept dS (head_dim 128 only: 64 always recomputes)
    [ "$hd" = 128 ] && run "ours-$name-rds" "$BIN" --attn "${R1_BENCH_ATTN:-auto}" --ds-mib 0 "${shape[@]}"
    run "torch-$name" "$PY" "$ROOT/bench/torch_attention.py" "${shape[@]}"
done <<'EOF'
0.5b-4k 14 2 64 4096 4
1.5b-4k 12 2 128 4096 4
1.5b-32k 12 2 128 32768 1
7b-4k 28 4 128 4096 4
7b-32k 28 4 128 32768 1
EOF

echo
echo "summary ($RES): ours against each PyTorch kernel (time ratio: theirs / ours, > 1 is faster)"
"$PY" - "$RES" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
key = lambda r: (r["heads"], r["kv_heads"], r["head_dim"], r["seq"], r["batch"])
print("%-26s %-24s | %-22s | %-22s | %s" % ("shape (H/KV/hd T x B)", "kernels", "forward ms (TFLOP/s)",
                                            "backward ms (TFLOP/s)", "ours x"))
for o in (r for r in rows if r["impl"] == "r1-distill"):
    k = key(o)
    label = "%d/%d/%d %d x %d" % k
    # each of our runs against the PyTorch runs of its shape (the rds run: dS recomputed)
    mine = [r for r in rows if r["impl"] == "r1-distill" and key(r) == k]
    if o is not mine[0]:
        continue
    for r in mine + [r for r in rows if r["impl"] == "torch" and key(r) == k]:
        if not r.get("fits", True):
            print("%-26s %-11s | not run: %s" % (label, r["kernels"], r.get("error", "")))
            continue
        ours = r["impl"] == "r1-distill"
        ratio = "" if r is o else "fwd %.2f, bwd %.2f" % (r["fwd_ms"] / o["fwd_ms"], r["bwd_ms"] / o["bwd_ms"])
        name = r["kernels"] if not ours else "ours-" + r["kernels"] + (
            ", dS kept" if r.get("ds_heads_per_pass") else ", dS recomputed")
        print("%-26s %-24s | %8.3f (%4.0f)        | %8.3f (%4.0f)        | %s" % (
            label, name, r["fwd_ms"], r["fwd_tflops"], r["bwd_ms"], r["bwd_tflops"], ratio))
        label = ""
PYEOF
exit 0
