#!/usr/bin/env bash
# generate --device on a GPU (run by `make test-cuda`): the same trace records as the CPU for
# greedy decoding in float32 (cuda-fp32), with and without --logprobs (which samples on the host
# from downloaded logits); sampled records equal too but for at most one sample (float32 logits
# differ from the CPU's by ~1e-6, which can move a cumulative boundary past the draw); bf16
# (--device cuda) runs and makes every record; a directory made on one device kind is refused
# on another (the device is part of the settings).
set -euo pipefail
. "$ROOT/tests/e2e/lib/generate_setup.sh"
gen_teacher "$TMP/teacher"
gen_token_prompts "$TMP/prompts.jsonl" 12 5
ARGS=(--teacher "$TMP/teacher" --prompts "$TMP/prompts.jsonl" --samples 2 --max-new-tokens 40
      --seed 3 --batch 5)

"$BIN" generate "${ARGS[@]}" --temperature 0 --device cpu --out "$TMP/g_cpu" 2>/dev/null
"$BIN" generate "${ARGS[@]}" --temperature 0 --device cuda-fp32 --out "$TMP/g_gpu" 2>/dev/null
[ "$(sorted_records "$TMP/g_cpu")" = "$(sorted_records "$TMP/g_gpu")" ] ||
    { echo "greedy records on cuda-fp32 differ from the CPU's"; exit 1; }
[ "$(sorted_records "$TMP/g_gpu" | wc -l)" -eq 24 ]

"$BIN" generate "${ARGS[@]}" --temperature 0 --logprobs 3 --device cpu --out "$TMP/l_cpu" 2>/dev/null
"$BIN" generate "${ARGS[@]}" --temperature 0 --logprobs 3 --device cuda-fp32 --out "$TMP/l_gpu" \
    2>/dev/null
python3 - "$BIN" "$TMP/l_cpu" "$TMP/l_gpu" <<'PY'
import json, subprocess, sys
def recs(d):
    out = subprocess.run([sys.argv[1], "traces", "cat", d], check=True, capture_output=True, text=True).stdout
    return {r["id"]: r for r in map(json.loads, out.splitlines())}
a, b = recs(sys.argv[2]), recs(sys.argv[3])
assert a.keys() == b.keys() and len(a) == 24, (len(a), len(b))
for k in a:
    assert a[k]["completion_token_ids"] == b[k]["completion_token_ids"], k
PY

S=(--temperature 0.8 --top-p 0.9 --top-k 50)
"$BIN" generate "${ARGS[@]}" "${S[@]}" --device cpu --out "$TMP/s_cpu" 2>/dev/null
"$BIN" generate "${ARGS[@]}" "${S[@]}" --device cuda-fp32 --out "$TMP/s_gpu" 2>/dev/null
differ=$(diff <(sorted_records "$TMP/s_cpu") <(sorted_records "$TMP/s_gpu") | grep -c '^<' || true)
echo "sampled on cuda-fp32: $differ of 24 records differ from the CPU's"
[ "$differ" -le 1 ]

"$BIN" generate "${ARGS[@]}" "${S[@]}" --device cuda --out "$TMP/s_bf16" 2>/dev/null
[ "$(sorted_records "$TMP/s_bf16" | wc -l)" -eq 24 ]

status=0
"$BIN" generate "${ARGS[@]}" "${S[@]}" --device cuda-fp32 --out "$TMP/s_cpu" 2>"$TMP/err" || status=$?
[ "$status" -eq 2 ] || { echo "resuming a CPU run on the GPU: exit $status"; cat "$TMP/err"; exit 1; }
