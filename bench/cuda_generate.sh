#!/usr/bin/env bash
# make bench-cuda: decode throughput of the CUDA engine beside transformers' generate, on
# random-weight Qwen2.5-1.5B- and Qwen2.5-7B-shaped bf16 models, one GPU, one run.
#
# For each shape: bench/hf_generate.py builds the model with transformers on the GPU, saves it
# under $BENCH_MODELS and times model.generate (64-token prompts, exactly 128 new tokens,
# sampling T=0.6 top-p 0.95, and greedy) at batch 1 and 64; then build/bench/decode loads the
# saved checkpoint and times our engine with the same sampling (the token chosen on the GPU by
# the CPU sampler's algorithm) and greedy, and the CPU engine on a shorter run. Also: the GPU's
# copy bandwidth (the roofline) and our decode GEMV vs cuBLASLt on the 7B shapes. Then the
# DeepSeek-V3-shaped MoE scaled to one GPU (bench/make_deepseek_bench.py): tokens/s at batch 1
# and 64, % of its bandwidth limit, and the projection to DeepSeek-R1 on 8xH200
# (bench/deepseek_report.py). A table comes last; everything is in $OUT.
#
# Environment: OUT (results, default build/bench-cuda), BENCH_MODELS (checkpoints, default
# /tmp/r1-bench-models; reused when present), BENCH_SHAPES ("1.5b 7b"), BENCH_BATCHES ("1 64"),
# BENCH_CPU (1: also the CPU engine), CPU_PROMPT / CPU_NEW (16 / 4: the CPU engine runs float32
# loops over the bf16 weights, seconds per 7B token), BENCH_DEEPSEEK (1: the DeepSeek part;
# DS_LAYERS / DS_EXPERTS: 4 / 32).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
OUT=${OUT:-$BUILD/bench-cuda}
MODELS=${BENCH_MODELS:-/tmp/r1-bench-models}
SHAPES=${BENCH_SHAPES:-1.5b 7b}
BATCHES=${BENCH_BATCHES:-1 64}
DEC=$BUILD/bench/decode
mkdir -p "$OUT" "$MODELS"
RES=$OUT/results.jsonl
LOG=$OUT/bench.log
: >"$RES"
: >"$LOG"
say() { echo "bench-cuda: $*" | tee -a "$LOG" >&2; }

nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv \
    >"$OUT/gpu.txt" 2>&1 || true
say "GPU: $(tail -n 1 "$OUT/gpu.txt")"

say "linear: decode GEMV shapes, our kernel vs cuBLASLt"
"$DEC" --linear-bench >>"$RES" 2>>"$LOG"

first=1
for shape in $SHAPES; do
    dir=$MODELS/qwen2.5-$shape-random
    say "$shape: transformers (builds and saves $dir)"
    python3 bench/hf_generate.py --shape "$shape" --dir "$dir" --batches "${BATCHES// /,}" \
        $([ $first = 1 ] && echo --bandwidth) >>"$RES" 2>>"$LOG"
    first=0
    for b in $BATCHES; do
        say "$shape: ours, batch $b (sampling T 0.6 top-p 0.95, and greedy)"
        "$DEC" --model "$dir" --device cuda --batch "$b" --prompt 64 --new 128 >>"$RES" 2>>"$LOG"
        "$DEC" --model "$dir" --device cuda --batch "$b" --prompt 64 --new 128 --temperature 0 \
            >>"$RES" 2>>"$LOG"
    done
    if [ "${BENCH_CPU:-1}" = 1 ]; then
        say "$shape: CPU engine, batch 1, ${CPU_PROMPT:-16}-token prompt, ${CPU_NEW:-4} new"
        "$DEC" --model "$dir" --device cpu --batch 1 --prompt "${CPU_PROMPT:-16}" \
            --new "${CPU_NEW:-4}" --warmup 0 >>"$RES" 2>>"$LOG"
    fi
done

if [ "${BENCH_DEEPSEEK:-1}" = 1 ]; then
    ds=$MODELS/deepseek-v3-scaled
    say "deepseek: checkpoint ${DS_LAYERS:-4} layers, ${DS_EXPERTS:-32} experts ($ds)"
    python3 bench/make_deepseek_bench.py --dir "$ds" --layers "${DS_LAYERS:-4}" \
        --experts "${DS_EXPERTS:-32}" >>"$RES" 2>>"$LOG"
    for b in 1 64; do
        say "deepseek: ours, batch $b"
        "$DEC" --model "$ds" --device cuda --batch "$b" --prompt 64 --new 128 --profile \
            --profile-json "$OUT/ds_prof$b.jsonl" >>"$RES" 2>>"$LOG"
    done
    python3 bench/deepseek_report.py --model "$ds" --results "$RES" --profile "$OUT/ds_prof64.jsonl" \
        >>"$RES" 2>>"$LOG"
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    for tp in 2 4 8; do
        [ "${gpus:-0}" -ge "$tp" ] || break
        for b in 1 64; do
            say "deepseek: ours split over $tp GPUs (--tp $tp), batch $b"
            NCCL_NVLS_ENABLE=0 "$DEC" --model "$ds" --device cuda --tp "$tp" --batch "$b" \
                --prompt 64 --new 128 >>"$RES" 2>>"$LOG"
        done
    done
    if [ "${BENCH_CPU:-1}" = 1 ]; then
        say "deepseek: CPU engine, batch 1, 8-token prompt, 2 new"
        "$DEC" --model "$ds" --device cpu --batch 1 --prompt 8 --new 2 --warmup 0 >>"$RES" 2>>"$LOG"
    fi
fi

python3 - "$RES" <<'EOF' | tee "$OUT/table.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bw = next((r["gbps"] for r in rows if r["kind"] == "bandwidth"), None)
models = {r["shape"]: r for r in rows if r["kind"] == "model"}
dirs = {r["dir"]: r["shape"] for r in rows if r["kind"] == "model"}
print()
print(f"copy bandwidth (read + write): {bw:.0f} GB/s" if bw else "copy bandwidth: not measured")
lin = [r for r in rows if r["kind"] == "linear"]
if lin:
    print("\nbf16 linear, 1 token (weight bytes / time; % of copy bandwidth):")
    print(f"  {'W shape':>16}  {'GEMV kernel':>16}  {'cuBLASLt':>16}")
    shapes = sorted({(r["rows"], r["cols"]) for r in lin}, key=lambda s: s[0] * s[1])
    for s in shapes:
        cell = []
        for path in ("gemv", "cublaslt"):
            g = next((r["gbps"] for r in lin if (r["rows"], r["cols"]) == s and r["path"] == path), None)
            cell.append(f"{g:6.0f} GB/s ({100 * g / bw:3.0f}%)" if g and bw else "-")
        print(f"  {s[0]:>7} x {s[1]:<6}  {cell[0]:>16}  {cell[1]:>16}")
hf = {(r["shape"], r["batch"], r["mode"]): r["tok_s"] for r in rows if r["kind"] == "hf"}
dec = [r for r in rows if r["kind"] == "decode" and r["model"] in dirs]
print("\ndecode, 64-token prompts, 128 new tokens, tokens/s (end to end = new tokens / (prefill +")
print("decode), as generate is timed; sampling T=0.6 top-p 0.95 (transformers and ours) and greedy;")
print("roofline = copy bandwidth / weight bytes, batch-1 decode steps only):")
print(f"  {'shape':>5} {'batch':>5} {'mode':>6} | {'ours e2e':>9} {'ours steps':>10} | {'HF':>9} | {'x HF':>6} | {'roofline':>8} {'% roof':>6}")
for r in dec:
    if r["device"] != "cuda":
        continue
    shape = dirs.get(r["model"], "?")
    b = r["batch"]
    mode = "greedy" if r.get("temperature", 0) == 0 else "sample"
    h = hf.get((shape, b, mode))
    roof = bw * 1e9 / models[shape]["weight_bytes"] if bw and shape in models else None
    pct = f"{100 * r['decode_tok_s'] / roof:5.0f}%" if roof and b == 1 else "     -"
    print(f"  {shape:>5} {b:>5} {mode:>6} | {r['e2e_tok_s']:9.1f} {r['decode_tok_s']:10.1f} | "
          f"{h or 0:9.1f} | {r['e2e_tok_s'] / h if h else 0:5.1f}x | {roof or 0:8.1f} {pct:>6}")
cpu = [r for r in dec if r["device"] == "cpu" and r["model"] in dirs]
if cpu:
    print("\nCPU engine on this machine (same checkpoints, float32 arithmetic):")
    for r in cpu:
        print(f"  {dirs.get(r['model'], '?'):>5} batch {r['batch']}, {r['prompt']}-token prompt, "
              f"{r['new']} new: {r['e2e_tok_s']:.2f} tokens/s end to end, "
              f"{r['decode_tok_s']:.2f} decoding, prefill {r['prefill_s']:.1f} s")
ds = [r for r in rows if r["kind"] == "ds_decode"]
if ds:
    print("\nDeepSeek-V3-shaped MoE scaled to one GPU (bench/make_deepseek_bench.py), FP8 weights,")
    print("sampling T=0.6 top-p 0.95; limit = copy bandwidth / bytes a decode step reads:")
    for r in ds:
        print(f"  batch {r['batch']:>3}: {r['decode_tok_s']:8.1f} tokens/s decoding ({r['step_ms']:.2f} ms "
              f"a step), {r['e2e_tok_s']:8.1f} end to end; limit " +
              (f"{r['limit_tok_s']:8.1f} ({r['pct_of_limit']:.0f}%)" if r["pct_of_limit"] else
               "not known (no copy bandwidth measured: BENCH_SHAPES was empty)"))
    pr = next((r for r in rows if r["kind"] == "ds_projection"), None)
    if pr:
        print(f"  projection, DeepSeek-R1 on one 8xH200 node, 64 concurrent sequences: "
              f"{pr['r1_step_ms']:.1f} ms a step, {pr['r1_tok_s']:.0f} output tokens/s "
              f"(SGLang published ~{pr['sglang_tok_s']}; bench/deepseek_report.py lists the assumptions)")
        print("    per layer (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in pr["per_layer_ms"].items()))
    tps = [r for r in rows if r["kind"] == "decode" and r.get("tp", 1) > 1]
    if tps:
        one = {r["batch"]: r for r in rows if r["kind"] == "decode" and r.get("tp", 1) == 1
               and r["device"] == "cuda" and r["model"] == tps[0]["model"]}
        print("  split over GPUs (--tp N: tensor-parallel MLA and MLPs, expert-parallel MoE, NCCL):")
        for r in tps:
            base = one.get(r["batch"])
            x = f"{r['decode_tok_s'] / base['decode_tok_s']:.2f}x one GPU" if base else "-"
            print(f"    --tp {r['tp']} batch {r['batch']:>3}: {r['decode_tok_s']:8.1f} tokens/s decoding "
                  f"({1e3 * r['decode_s'] / max(r['new'] - 1, 1):.2f} ms a step; {x})")
    dcpu = [r for r in rows if r["kind"] == "decode" and r["device"] == "cpu" and "deepseek" in r["model"]]
    for r in dcpu:
        print(f"  CPU engine: {r['decode_tok_s']:.3f} tokens/s decoding at batch 1")
print("\ntargets (issue 11): 7b batch 1 >= 85% of roofline; 7b batch 64 >= 8x transformers")
EOF
