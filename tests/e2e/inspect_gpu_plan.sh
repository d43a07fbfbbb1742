#!/usr/bin/env bash
# san
# `inspect --gpus N --gpu-mem GB`: DeepSeek-R1 on one node of 8 H200s: 32 routed experts per GPU,
# about 85 GB of weights per GPU (81.8 GB of them experts), the latent cache of a 32k-token
# sequence (32768 x 70272 bytes) whole on every GPU under tensor-parallel attention and an
# eighth of it under data-parallel attention, and the sequence counts that follow from those
# numbers; a dense model splits its KV heads; bad values exit 2.
set -euo pipefail
cd "$ROOT"
"$BIN" inspect --model tests/fixtures/configs/deepseek-r1.json --gpus 8 --gpu-mem 141 --json \
    >"$TMP/r1.json"
python3 - "$TMP/r1.json" <<'PY'
import json, math, sys
p = json.load(open(sys.argv[1]))["gpu_plan"]
assert p["gpus"] == 8 and p["experts_per_gpu"] == 32, p
assert 80e9 < p["weights_per_gpu"] < 90e9, p
assert 80e9 < p["experts_bytes"] < 83e9, p
parts = sum(p[k] for k in ("experts_bytes", "attention_bytes", "dense_mlp_bytes",
                           "embed_head_bytes", "other_bytes"))
assert abs(parts - p["weights_per_gpu"]) < 1e3, p
assert p["kv_per_seq_tp"] == 32768 * 70272 and p["kv_per_seq_dp"] == 32768 * 70272 / 8, p
free = p["gpu_bytes"] - p["weights_per_gpu"] - p["reserve_bytes"]
assert p["fit_seqs_tp"] == math.floor(free / p["kv_per_seq_tp"]), p
assert p["fit_seqs_dp"] == 8 * math.floor(free / (8 * p["kv_per_seq_dp"])), p
assert 15 <= p["fit_seqs_tp"] < 64 <= p["fit_seqs_dp"], p
PY
"$BIN" inspect --model tests/fixtures/configs/deepseek-r1.json --gpus 8 --gpu-mem 141 >"$TMP/r1.txt"
grep -q "32 of 256 per GPU" "$TMP/r1.txt" && grep -q "fit with data-parallel attention only" \
    "$TMP/r1.txt" || { cat "$TMP/r1.txt"; exit 1; }

# Qwen2.5-1.5B (2 KV heads) on 2 GPUs: one KV head each, weights split in two
"$BIN" inspect --model tests/fixtures/configs/qwen2.5-1.5b.json --gpus 2 --gpu-mem 80 --json \
    >"$TMP/q.json"
python3 - "$TMP/q.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1])); p = o["gpu_plan"]
assert p["kv_per_seq_tp"] == 32768 * 28 * 2 * 1 * 128 * 2, p
total = sum(o["bytes_by_dtype"].values())
assert abs(p["weights_per_gpu"] - total / 2) < 0.01 * total, (p, total)
PY

status=0; "$BIN" inspect --model tests/fixtures/configs/deepseek-r1.json --gpus -1 2>/dev/null || status=$?
[ "$status" -eq 2 ]
status=0; "$BIN" inspect --model tests/fixtures/configs/deepseek-r1.json --gpus 8 --gpu-mem 0 \
    2>/dev/null || status=$?
[ "$status" -eq 2 ]
