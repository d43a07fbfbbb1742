#!/usr/bin/env bash
# `r1-distill plan` against hand arithmetic for the published shapes.
set -euo pipefail
cd "$ROOT"
check() {  # recipe gpus mem python-assertions
    "$BIN" plan --recipe "$1" --gpus "$2" --gpu-mem "$3" --json >"$TMP/p.json"
    python3 - "$TMP/p.json" "$4" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
exec(sys.argv[2])
PY
}
# Qwen2.5-7B: 7,615,616,512 parameters (its safetensors index: total_size 15,231,233,024 bf16
# bytes). By hand: per layer attention 3584*3584*2 + 2*3584*512 + biases (3584 + 1024) =
# 29,364,736; MLP 3*3584*18944 = 203,685,888; norms 7168; 28 layers + untied 152064x3584
# embedding and head + final norm.
# One 140.4 GiB GPU at 32k tokens with recomputation, bytes:
#   bf16 weights 2P = 15,231,233,024; gradients float32, as train keeps them when a step adds up
#   several micro-batches, 4P = 30,462,466,048; fp32 master weights as the low halves beside the
#   bf16 ones 2P = 15,231,233,024; AdamW moments 8P = 60,924,932,096; activations
#   28*32768*3584*2 + 2*32768*(4*3584 + 2*3584 + 2*512 + 3*18944)*2 = 16,978,542,592; loss
#   1024*152064*8 = 1,245,708,288; overhead 2^30.
#   one sequence 141,147,856,896 (131.45 GiB), two 158,126,399,488 (147.27 GiB) -> fits at
#   stage 0 with micro-batch 1 (of 128 sequences: 128 accumulation steps).
# FLOPs/token: 6 * (28 * 233,050,624 + 152064*3584) + 12*28*3584*32768 = 81,882,501,120.
check qwen-7b 1 140.4 '
assert p["params"] == 7615616512, p["params"]
assert p["weights_bytes"] == 15231233024 and p["grads_bytes"] == 30462466048
assert p["master_bytes"] == 15231233024 and p["optimizer_bytes"] == 60924932096
assert p["activations_bytes_per_seq"] == 16978542592, p["activations_bytes_per_seq"]
assert p["total_bytes"] == 141147856896, p["total_bytes"]
assert p["fits"] and p["zero_stage"] == 0 and p["micro_batch"] == 1 and p["accumulation"] == 128
assert p["flops_per_token"] == 81882501120 or abs(p["flops_per_token"] / 81882501120 - 1) < 1e-6
assert p["auto_recompute_mode"] == "all-but-attention", p["auto_recompute_mode"]
assert p["auto_total_bytes"] == 147827286016, p["auto_total_bytes"]
'
# The recipe names no recomputation mode, so train on a GPU takes the fastest that fits: no
# recomputation and cheap do not (cheap's activations alone are 99,421,782,016 bytes a
# sequence, below), all but the attention does: each layer keeps its attention output and
# log-sum-exp besides, 28*32768*(2*3584 + 4*28) = 6,679,429,120 bytes more than the plan above:
# 147,827,286,016 (137.68 GiB). The plan itself assumes recomputation.
# ... and it does not fit on one 80 GB H100, in any mode.
check qwen-7b 1 79.6 '
assert not p["fits"] and p["zero_stage"] == -1
assert p["auto_recompute_mode"] is None
'
# Llama-3.1-8B: 8,030,261,248 parameters (no biases; 128256-token untied embedding and head).
# On 8 H100s (79.6 GiB = 85,469,849,190 bytes) the fp32 optimizer state must be sharded: stage 0
# needs 16P = 128.5e9 bytes before activations (float32 gradients: 16 sequences per GPU and
# step). At ZeRO-1: 2P + 4P + 2P/8 + 8P/8 = 58,219,394,048; activations per sequence
# 32*32768*4096*2 + 2*32768*(4*4096 + 2*4096 + 2*1024 + 3*14336)*2 = 8,589,934,592 +
# 9,126,805,504; loss 1024*128256*8 = 1,050,673,152; overhead 1.5 * 2^30 (several GPUs: NCCL's
# buffers). One sequence: 78,597,420,032 bytes (fits); two would need 96.3e9 (does not); so
# micro-batch 1 and 128/8 = 16 accumulation steps.
check llama-8b 8 79.6 '
assert p["params"] == 8030261248, p["params"]
assert p["zero_stage"] == 1 and p["micro_batch"] == 1 and p["accumulation"] == 16, p
assert p["total_bytes"] == 78597420032, p["total_bytes"]
assert p["activations_bytes_per_seq"] == 8589934592 + 9126805504
assert p["optimizer_bytes"] == 8 * 8030261248 / 8 and p["master_bytes"] == 2 * 8030261248 / 8
assert p["grads_bytes"] == 4 * 8030261248
'
# One micro-batch per step keeps bf16 gradients: 8 sequences per step on 8 GPUs, 1 per GPU.
"$BIN" plan --recipe llama-8b --gpus 8 --gpu-mem 79.6 --batch-size 8 --json >"$TMP/p.json"
python3 -c 'import json, sys; p = json.load(open(sys.argv[1])); assert p["accumulation"] == 1 and p["grads_bytes"] == 2 * 8030261248, p' "$TMP/p.json"
# --offload-optimizer: the 7B on one 80 GB H100 at 32k tokens. On the GPU 2P + 4P + two
# sequences' activations 2 * 16,978,542,592 + loss + overhead = 81,970,234,368 bytes (76.34 GiB);
# on the host the fp32 master and both moments, 12P = 91,387,398,144.
"$BIN" plan --recipe qwen-7b --gpus 1 --gpu-mem 79.6 --offload-optimizer --json >"$TMP/p.json"
python3 - "$TMP/p.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["offload"] and p["fits"] and p["zero_stage"] == 0 and p["micro_batch"] == 2, p
assert p["master_bytes"] == 0 and p["optimizer_bytes"] == 0
assert p["total_bytes"] == 81970234368 and p["host_bytes"] == 91387398144, p
PY
# Qwen2.5-1.5B-shaped (R1-Distill-1.5B unties the head): 1,777,088,000 parameters.
check qwen-1.5b 8 79.6 'assert p["params"] == 1777088000, p["params"]; assert p["zero_stage"] == 0'
# The same 7B recipe with cheap recomputation (the products' outputs kept): per sequence
# 28*32768*(2*3584 + 2*3584 + 2*512 + 2*18944)*2 = 97,710,505,984 kept, plus the shared norms'
# and SwiGLU's outputs 32768*(2*3584 + 18944)*2 = 1,711,276,032: 99,421,782,016 bytes.
sed 's/"pack": "off",/"pack": "off", "recompute_cheap": true,/' recipes/qwen-7b.json \
    >"$TMP/qwen-7b-cheap.json"
check "$TMP/qwen-7b-cheap.json" 8 140.4 '
assert p["recompute_mode"] == "cheap", p["recompute_mode"]
assert p["auto_recompute_mode"] is None  # the recipe names its mode
assert p["activations_bytes_per_seq"] == 99421782016, p["activations_bytes_per_seq"]
'
# bad input
set +e
"$BIN" plan --recipe nosuch 2>"$TMP/err"; rc=$?
set -e
[ "$rc" -eq 2 ]
grep -q "no such recipe" "$TMP/err"
echo '{"name": "x", "student": {"shape": {"hidden_size": 0}}, "train": {}}' >"$TMP/bad.json"
set +e
"$BIN" plan --recipe "$TMP/bad.json" 2>"$TMP/err"; rc=$?
set -e
[ "$rc" -eq 2 ]
grep -q "student.shape.hidden_size" "$TMP/err"
# ZeRO-2 counts train --zero 2's scratch beside the shards: a bucket's gradients before the
# reduction, the embedding's and the head's (one buffer when the head is untied: 152064 x 5120
# and the final norm for the 14B) and two layers'. So Qwen2.5-14B on 8 80 GB GPUs fits with
# ZeRO-2 at 16k tokens, and at 32k only with ZeRO-3, whose bf16 weights are each rank's pieces,
# one slot that the untied embedding and head take in turn, and two layer slots (train
# --zero 3).
"$BIN" plan --recipe qwen-14b --gpus 8 --gpu-mem 79.6 --seq-len 16384 --json >"$TMP/p.json"
"$BIN" plan --recipe qwen-14b --gpus 8 --gpu-mem 79.6 --json >"$TMP/p3.json"
python3 - "$TMP/p.json" "$TMP/p3.json" <<'PY'
import json, sys
p, p3 = (json.load(open(f)) for f in sys.argv[1:])
P, d, V, L = p["params"], 5120, 152064, 48
layer = (P - d - 2 * d * V) / L
assert p["fits"] and p["zero_stage"] == 2, p
assert abs(p["grads_bytes"] - 4 * (P / 8 + d * V + d + 2 * layer)) < 1, p
assert p3["fits"] and p3["zero_stage"] == 3, p3
assert abs(p3["weights_bytes"] - 2 * (P / 8 + d * V + d + 2 * layer)) < 1, p3
PY
"$BIN" plan --recipe qwen-14b --gpus 8 --gpu-mem 79.6 --seq-len 16384 >"$TMP/p.txt"
grep -q "train --zero 2" "$TMP/p.txt"
! grep -q "^does not fit" "$TMP/p.txt" || exit 1
"$BIN" plan --recipe qwen-14b --gpus 8 --gpu-mem 79.6 >"$TMP/p.txt"
grep -q "train --zero 3" "$TMP/p.txt"
! grep -q "^does not fit" "$TMP/p.txt" || exit 1
# a plan that does not fit still names the gradients' type it counted (float32 here: 16
# sequences per GPU and step)
"$BIN" plan --recipe qwen-32b --gpus 8 --gpu-mem 79.6 >"$TMP/p.txt"
grep -q "does not fit" "$TMP/p.txt"
grep -q "fp32 gradients" "$TMP/p.txt"
check qwen-7b 8 79.6 'assert p["fits"] and p["zero_stage"] <= 1, p'
# --offload-optimizer over 2 GPUs of 40 GiB at 4096 tokens: even ZeRO-3 needs 67 GiB per GPU with
# the state on them; offloaded, ZeRO-2 fits, the GPUs keep no master halves or moments, and the
# hosts keep the whole 12P between the two ranks.
"$BIN" plan --recipe qwen-7b --gpus 2 --gpu-mem 40 --seq-len 4096 >"$TMP/p.txt"
grep -q "does not fit: even with ZeRO-3, one sequence needs 67.03 GiB" "$TMP/p.txt"
# ... and the plan says what offloading would give, the very plan of --offload-optimizer below
grep -q "with --offload-optimizer it fits: ZeRO-2, micro-batch 2, 38.75 GiB per GPU, 85.11 GiB" \
    "$TMP/p.txt"
"$BIN" plan --recipe qwen-7b --gpus 2 --gpu-mem 40 --seq-len 4096 --offload-optimizer --json >"$TMP/p.json"
python3 - "$TMP/p.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["offload"] and p["fits"] and p["zero_stage"] == 2, p
assert p["master_bytes"] == 0 and p["optimizer_bytes"] == 0 and p["host_bytes"] == 12 * p["params"], p
assert p["total_bytes"] <= 40 * 2**30, p
PY
echo "plan: ok"
