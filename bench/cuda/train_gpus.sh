#!/usr/bin/env bash
# Data-parallel scaling of `r1-distill train` itself (make bench-cuda): a random-weight
# Qwen2.5-1.5B-shaped student (`r1-distill init`), documents of 4096 random tokens, 16 rows of
# 4096 tokens per optimizer step, micro-batches of 4 rows (16k tokens, the shape of
# bench/cuda/train.sh), on 1 GPU and on 2, 4, 8 as the machine has them (`--gpus N`: ZeRO-1,
# reduce-scatter of each layer's gradients overlapped with the backward; then the same with
# `--zero 2`, the gradients sharded and reduced every micro-batch, and `--zero 3`, the layers'
# weights sharded too and gathered a layer ahead). Reports the command's
# own tokens/s (its --log), the mean over the steps after the first two, and the scaling
# efficiency against N x one GPU, MFU, and the largest GPU memory nvidia-smi saw; then one GPU
# and two with --offload-all (AdamW on the host); then a 7B (on 1 and 2 GPUs) and a 14B (on 4) as
# sections below say. Reports, never fails. Logs go to $BENCH_OUT (default bench-out/);
# BENCH_ONLY="1 offload ..." runs only the cases named.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${R1_BIN:-$ROOT/r1-distill}
OUTDIR=${BENCH_OUT:-$ROOT/bench-out}
STEPS=${BENCH_GPU_STEPS:-8}
mkdir -p "$OUTDIR"
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
n_gpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
if [ "$n_gpu" -lt 1 ]; then
    echo "train_gpus: no GPU"
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

cat >"$TMP/config.json" <<'EOF'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
 "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
 "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
 "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151645}
EOF
"$BIN" init --config "$TMP/config.json" --out "$TMP/model" --dtype bf16 --seed 1 \
    >"$OUTDIR/train_gpus_init.log" 2>&1 || { echo "init failed: see train_gpus_init.log"; exit 0; }
# make_data FILE ROWS LENGTH: rows of random token ids, every token but the first counted
make_data() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, random, sys
r = random.Random(7)
n = int(sys.argv[3])
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        ids = [r.randrange(151643) for _ in range(n)]
        f.write(json.dumps({"input_ids": ids, "loss_mask": [0] + [1] * (n - 1)}) + "\n")
PY
}
make_data "$TMP/data.jsonl" $((16 * STEPS)) 4096

# init_shape NAME key=value...: $TMP/modelNAME, random bf16 weights of the 1.5B's config.json
# with other shape values (JSON values); the 1.5B's own weights go first, for the disk. Fails,
# saying so, where init does (its log: train_gpus_initNAME.log).
init_shape() {
    local name=$1; shift
    python3 - "$TMP/config.json" "$TMP/config$name.json" "$@" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update({k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])})
json.dump(c, open(sys.argv[2], "w"))
PY
    rm -rf "$TMP/model"
    "$BIN" init --config "$TMP/config$name.json" --out "$TMP/model$name" --dtype bf16 --seed 1 \
        >"$OUTDIR/train_gpus_init$name.log" 2>&1 && return 0
    echo "$name init failed: see train_gpus_init$name.log"
    rm -rf "$TMP/model$name"
    return 1
}

echo "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x $n_gpu"
: >"$TMP/results"
MODEL=$TMP/model BATCH=16 MICRO=4
# wanted PATTERN: BENCH_ONLY="name ..." names a case that matches (a glob), or is unset (all
# cases run); the 7B and 14B are made only where one of their cases is wanted
wanted() {
    [ -z "${BENCH_ONLY:-}" ] && return 0
    local n
    for n in $BENCH_ONLY; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        [[ $n == $1 ]] && return 0
    done
    return 1
}
run_case() {  # name, GPUs, more train options
    local name=$1 g=$2; shift 2
    wanted "$name" || return 0
    local log="$OUTDIR/train_gpus_$name.jsonl"
    rm -f "$log"
    # the GPUs' memory as nvidia-smi sees it (the plan, plus the CUDA context and NCCL's buffers)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$TMP/smi" 2>/dev/null &
    local smi=$!
    timeout 600 "$BIN" train --model "$MODEL" --data "${DATA:-$TMP/data.jsonl}" \
        --out "$TMP/out$name" --steps "$STEPS" --batch-size "$BATCH" --micro-batch "$MICRO" \
        --seq-len "${SEQ:-4096}" --lr 1e-5 \
        --save-every 0 --gpus "$g" --log "$log" --quiet "$@" >"$OUTDIR/train_gpus_$name.log" 2>&1
    local rc=$?
    kill "$smi" 2>/dev/null
    wait "$smi" 2>/dev/null
    rm -rf "$TMP/out$name"
    python3 - "$log" "$name" "$g" "$rc" "$OUTDIR/train_gpus_$name.log" "$TMP/smi" \
        "$MODEL/config.json" "${SEQ:-4096}" >>"$TMP/results" <<'PY'
import json, re, sys
path, name, g, rc, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
seq = int(sys.argv[8])
smi = [int(x) for x in open(sys.argv[6]).read().split() if x.isdigit()]
cfg = json.load(open(sys.argv[7]))
try:
    rows = [json.loads(l) for l in open(path) if '"tokens_per_s"' in l]
except OSError:
    rows = []
text = open(out).read()
dev = next((l for l in text.splitlines() if l.startswith("device: ")), "")
mem = re.search(r"; ([0-9.]+ [MG]iB)( per GPU)?,", dev)
rss = re.search(r"peak RSS ([0-9.]+) MiB", text)
ranks = re.search(r"peak RSS per rank: ([0-9., ]+) MiB", text)
how = re.search(r"[MG]iB( per GPU)?, ([^;]*);", dev)
share = re.search(r"on the hosts? for ([0-9]+)%", dev)
timed = [r["tokens_per_s"] for r in rows[2:]]
# MFU as bench/cuda_train.c counts it: 6 N + 12 L d T FLOPs per token, 989 TFLOP/s per GPU
n_params = re.search(r"([0-9]+) parameters", text)
flops_tok = 6.0 * int(n_params.group(1)) + 12.0 * cfg["num_hidden_layers"] * cfg["hidden_size"] * seq \
    if n_params else None
host = [r["host_update_s"] for r in rows[2:] if "host_update_s" in r]
if rc or not timed:
    print(json.dumps({"name": name, "gpus": g, "error": "exit %d, %d steps logged" % (rc, len(rows))}))
else:
    print(json.dumps({"name": name, "gpus": g, "tokens_per_s": sum(timed) / len(timed),
                      "steps": len(timed), "loss": rows[-1]["loss"],
                      "step_s": sum(r["tokens"] / r["tokens_per_s"] for r in rows[2:]) / len(timed),
                      "host_update_s": sum(host) / len(host) if host else None,
                      "mode": how.group(2) if how else "?",
                      "host_share_pct": int(share.group(1)) if share else None,
                      "gpu_memory": mem.group(1) if mem else "?",
                      "nvidia_smi_gib": round(max(smi) / 1024, 1) if smi else None,
                      "mfu": sum(timed) / len(timed) / g * flops_tok / 989e12 if flops_tok else None,
                      "host_rss_gib": round(float(rss.group(1)) / 1024, 1) if rss else None,
                      "rank_rss_gib": [round(float(x) / 1024, 1) for x in ranks.group(1).split(",")]
                                      if ranks else None}))
PY
    tail -n 1 "$TMP/results"
}
for g in 1 2 4 8; do
    [ "$g" -le "$n_gpu" ] || break
    run_case "$g" "$g"
    [ "$g" -gt 1 ] && run_case "${g}z2" "$g" --zero 2
    [ "$g" -gt 1 ] && run_case "${g}z3" "$g" --zero 3
done
# all of the optimizer state and AdamW on the host: one GPU, then 2 (each rank its shard's)
run_case offload 1 --offload-all
[ "$n_gpu" -ge 2 ] && run_case offload_2 2 --offload-all
# A Qwen2.5-7B-shaped student with the optimizer offloaded, 8 x 4096 tokens per step in
# micro-batches of one: what lets a 7B full fine-tune run on one 80 GB GPU. --offload-optimizer
# keeps on the GPU the state that fits, --offload-all none. The host holds the float32 master
# weights and moments, 12 bytes per parameter (85 GiB), so it runs only where that much memory is
# free; it needs 15 GB of disk for the initial weights. Then the least GPU memory: one sequence
# per step, all recomputed, all the state on the host (30.3 GiB on an H200). Where there are 2
# GPUs, the same steps run on both with --zero 2 and with --zero 3.
avail_gib=$(awk '/^MemAvailable:/ {print int($2 / 1048576)}' /proc/meminfo)
if [ "${BENCH_SKIP_7B:-0}" = 1 ]; then
    echo "7B offload: skipped (BENCH_SKIP_7B=1)"
elif ! wanted '*7b*'; then
    echo "7B: no case of it in BENCH_ONLY"
elif [ "$avail_gib" -lt 100 ]; then
    echo "7B offload: skipped, $avail_gib GiB of host memory available (needs 100)"
elif init_shape 7b vocab_size=152064 hidden_size=3584 intermediate_size=18944 \
    num_attention_heads=28 num_key_value_heads=4 tie_word_embeddings=false; then
    MODEL=$TMP/model7b BATCH=8 MICRO=1 STEPS=${BENCH_7B_STEPS:-5}
    if [ "${BENCH_7B_OFFLOAD:-1}" = 1 ]; then
        run_case offload7b 1 --offload-optimizer
        [ "${BENCH_7B_ALL:-1}" = 1 ] && run_case offload7b_all 1 --offload-all
        # the least GPU memory a 7B step takes: one sequence per step (bf16 gradients, as no
        # micro-batches are added up), every layer recomputed, all the state on the host
        BATCH=1 run_case offload7b_least 1 --offload-all --recompute
    fi
    # R1's length: one 32768-token sequence per step, no recomputation option, so train takes
    # the fastest mode that fits (on a 141 GB GPU: all but the attention, 118.6 GiB)
    if wanted 7b_32k; then
        make_data "$TMP/data32k.jsonl" "$STEPS" 32768
        SEQ=32768 BATCH=1 DATA=$TMP/data32k.jsonl run_case 7b_32k 1
    fi
    # the same steps on 2 GPUs, the gradients sharded, then the weights too; then as if the
    # GPUs had 40 GB (--gpu-mem 38): the state that does not fit goes to the hosts
    if [ "$n_gpu" -ge 2 ]; then
        run_case 7b_2z2 2 --zero 2
        run_case 7b_2z3 2 --zero 3
        run_case 7b_2_38g 2 --offload-optimizer --gpu-mem 38
    fi
    rm -rf "$TMP/model7b"
fi
# A Qwen2.5-14B-shaped student on 4 GPUs (the first 4 where there are more), 8 x 4096 tokens per
# step in micro-batches of one, float32 gradients: --zero 2 and --zero 3 (which must give the same
# losses). It needs 30 GB of disk for the initial weights, and 141 GB GPUs (ZeRO-2 plans 109.0
# GiB per GPU, ZeRO-3 90.9).
if [ "${BENCH_SKIP_14B:-0}" = 1 ]; then
    echo "14B: skipped (BENCH_SKIP_14B=1)"
elif ! wanted '14b*'; then
    echo "14B: no case of it in BENCH_ONLY"
elif [ "$n_gpu" -lt 4 ]; then
    echo "14B: skipped, $n_gpu GPU(s) (needs 4)"
elif init_shape 14b vocab_size=152064 hidden_size=5120 intermediate_size=13824 \
    num_hidden_layers=48 num_attention_heads=40 num_key_value_heads=8 \
    tie_word_embeddings=false; then
    MODEL=$TMP/model14b BATCH=8 MICRO=1 STEPS=${BENCH_14B_STEPS:-4}
    run_case 14b_4z2 4 --zero 2
    run_case 14b_4z3 4 --zero 3
    rm -rf "$TMP/model14b"
fi
cp "$TMP/results" "$OUTDIR/train_gpus_results.jsonl"
python3 - "$TMP/results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
one = next((r for r in rows if r["name"] == "1" and "tokens_per_s" in r), None)
print("summary: r1-distill train, Qwen2.5-1.5B shape, 16 x 4096 tokens per step, micro-batch 4")
for r in rows:
    what = {"offload": "1 GPU, --offload-all",
            "offload7b": "7B: 1 GPU, --offload-optimizer, 8 x 4096 per step",
            "offload7b_all": "7B: 1 GPU, --offload-all, 8 x 4096 per step",
            "offload7b_least": "7B: 1 GPU, --offload-all --recompute, 1 x 4096 per step",
            "7b_32k": "7B: 1 GPU, 1 x 32768 per step, the mode that fits",
            "7b_2z2": "7B: 2 GPUs, --zero 2, 8 x 4096 per step",
            "7b_2z3": "7B: 2 GPUs, --zero 3, 8 x 4096 per step",
            "7b_2_38g": "7B: 2 GPUs, --offload-optimizer --gpu-mem 38, 8 x 4096 per step",
            "offload_2": "2 GPUs, --offload-all",
            "14b_4z2": "14B: 4 GPUs, --zero 2, 8 x 4096 per step",
            "14b_4z3": "14B: 4 GPUs, --zero 3, 8 x 4096 per step",
            "%dz2" % r["gpus"]: "%d GPUs, --zero 2" % r["gpus"],
            "%dz3" % r["gpus"]: "%d GPUs, --zero 3" % r["gpus"]}.get(
        r["name"], "%d GPU(s)" % r["gpus"])
    if "tokens_per_s" not in r:
        print("  %s: %s" % (what, r["error"]))
        continue
    rel = ""
    if one and r["gpus"] > 1 and r["name"][:3] not in ("7b_", "14b"):  # the 1.5B's scaling
        rel = " (%.0f%% of %d x one GPU)" % (100 * r["tokens_per_s"] / (r["gpus"] * one["tokens_per_s"]),
                                             r["gpus"])
    elif one and r["name"] == "offload":
        rel = " (%.0f%% of one GPU's speed)" % (100 * r["tokens_per_s"] / one["tokens_per_s"])
    if r["host_update_s"] is not None:
        rel += " (optimizer state on the host for %s%% of the parameters; step %.2f s, of which " \
               "the update %.2f s)" % (r["host_share_pct"], r["step_s"], r["host_update_s"])
    host = "%s GiB host peak RSS" % r["host_rss_gib"]
    if r.get("rank_rss_gib"):
        host += " (per rank: %s)" % ", ".join("%.1f" % x for x in r["rank_rss_gib"])
    mfu = " (MFU %.1f%%)" % (100 * r["mfu"]) if r.get("mfu") else ""
    smi = " (nvidia-smi: %.1f GiB)" % r["nvidia_smi_gib"] if r.get("nvidia_smi_gib") else ""
    print("  %s: %8.0f tok/s%s over %d steps, %s GPU memory%s, %s, last loss %.10g, %s%s"
          % (what, r["tokens_per_s"], mfu, r["steps"], r["gpu_memory"], smi, host, r["loss"],
             r["mode"], rel))
PY
exit 0
