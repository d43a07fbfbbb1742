#!/usr/bin/env bash
# CPU decode speed of `r1-distill generate` (reports, never fails).
#
# Models (random weights written by `r1-distill init`, bf16 on disk):
#   small  the qwen2-tied fixture shape: vocab 384, hidden 96, 2 layers, 6 heads / 2 KV heads,
#          intermediate 160, tied embeddings (0.1M parameters): engine and sampler overhead
#   100m   Llama-shaped: vocab 32000, hidden 768, 12 layers, 12 heads / 4 KV heads (head 64),
#          intermediate 2048, tied embeddings: 100.1M parameters
# Work: 16 prompts of 16 random token ids, 1 sample each, 128 new tokens, temperature 0.6,
# top-p 0.95, at --batch 1, 8 and 16, all cores. Figures: generated tokens per second of wall
# time (the run's "done" log line, prefill included), peak RSS.
# Peer: transformers' generate() on the CPU needs PyTorch, absent here; run
# bench/generate_cpu_peer.py on a machine with it to print its figure beside ours.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/r1-distill}
T=$(mktemp -d "${TMPDIR:-/tmp}/r1bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
NEW=${NEW:-128}

cat >"$T/small.json" <<'J'
{"model_type": "qwen2", "vocab_size": 384, "hidden_size": 96, "intermediate_size": 160,
 "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 16,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
 "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}
J
cat >"$T/100m.json" <<'J'
{"model_type": "llama", "vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048,
 "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 4, "head_dim": 64,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
 "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}
J
for m in small 100m; do "$BIN" init --config "$T/$m.json" --out "$T/$m" --dtype bf16 --seed 1 >/dev/null; done
python3 - "$T/prompts.jsonl" <<'PY'
import json, random, sys
r = random.Random(0)
with open(sys.argv[1], "w") as f:
    for _ in range(16):
        f.write(json.dumps({"prompt": [r.randrange(3, 384) for _ in range(16)]}) + "\n")
PY

echo "generate, CPU decode ($(nproc --all) cores, ${OMP_NUM_THREADS:-all} threads), $NEW new tokens x 16 prompts:"
printf '  %-6s %6s %12s %10s %10s\n' model batch "tok/s" "wall s" "RSS MB"
for m in small 100m; do
    for b in 1 8 16; do
        out=$T/out-$m-$b
        /usr/bin/time -f '%e %M' -o "$T/time" "$BIN" generate --teacher "$T/$m" \
            --prompts "$T/prompts.jsonl" --out "$out" --max-new-tokens "$NEW" --batch "$b" \
            --temperature 0.6 --top-p 0.95 2>/dev/null
        read -r wall rss <"$T/time"
        tps=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "done": print(e["tokens_per_s"])' "$out/generate.log.jsonl")
        printf '  %-6s %6d %12s %10s %10d\n' "$m" "$b" "$tps" "$wall" $((rss / 1024))
    done
done
