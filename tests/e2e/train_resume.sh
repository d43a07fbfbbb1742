#!/usr/bin/env bash
# train --resume: a run killed with SIGKILL and resumed from its last checkpoint logs the same
# losses, gradient norms and learning rates, bit for bit, as a run never interrupted; and ends
# with the same weights. Resuming with different options is refused.
set -euo pipefail
F=$ROOT/tests/fixtures
args=(--model "$F/tiny-student-llama" --data "$F/tiny-sft/train.jsonl" --steps 300 --lr 2e-3
      --batch-size 4 --micro-batch 2 --seq-len 64 --warmup 0.1 --schedule cosine --min-lr 1e-4
      --weight-decay 0.1 --grad-clip 0.5 --save-every 7 --keep 2 --quiet)
"$BIN" train "${args[@]}" --out "$TMP/a" --log "$TMP/a.jsonl" 2>/dev/null

"$BIN" train "${args[@]}" --out "$TMP/b" --log "$TMP/b.jsonl" 2>/dev/null &
pid=$!
# kill it once past a few checkpoints and well before the end
for _ in $(seq 1 2000); do
    n=$(grep -c '"loss"' "$TMP/b.jsonl" 2>/dev/null || true)
    [ "${n:-0}" -ge 40 ] && break
    sleep 0.01
done
kill -KILL "$pid" 2>/dev/null || { echo "the run finished before it could be killed"; exit 1; }
wait "$pid" 2>/dev/null || true
killed_at=$(grep -c '"loss"' "$TMP/b.jsonl")
[ "$killed_at" -lt 300 ] || { echo "not interrupted"; exit 1; }
ls "$TMP/b" | grep -q '^checkpoint-[0-9]*$'
echo "killed after $killed_at logged steps; checkpoints: $(ls "$TMP/b" | grep '^checkpoint' | tr '\n' ' ')"
[ ! -f "$TMP/b/model.safetensors" ]
# what a run killed while pruning leaves: an old checkpoint directory partly removed (its
# trainer_state.json goes first), which the resumed run's pruning must still remove
mkdir "$TMP/b/checkpoint-1"
cp "$F/tiny-student-llama/config.json" "$TMP/b/checkpoint-1/"

# different options are refused (exit 2), naming the option
set +e
"$BIN" train "${args[@]}" --lr 1e-3 --out "$TMP/b" --log "$TMP/b.jsonl" --resume 2>"$TMP/err"
rc=$?
set -e
[ $rc -eq 2 ]
grep -q "lr was" "$TMP/err"

"$BIN" train "${args[@]}" --out "$TMP/b" --log "$TMP/b.jsonl" --resume 2>"$TMP/resume.err"
grep -q "resuming from" "$TMP/resume.err"
strip() { grep '"loss"' "$1" | sed 's/, "tokens_per_s": [0-9.e+]*//'; }
[ "$(strip "$TMP/a.jsonl" | wc -l)" -eq 300 ]
diff <(strip "$TMP/a.jsonl") <(strip "$TMP/b.jsonl")
cmp "$TMP/a/model.safetensors" "$TMP/b/model.safetensors"
cmp "$TMP/a/checkpoint-294/optimizer.safetensors" "$TMP/b/checkpoint-294/optimizer.safetensors"
# --keep 2: only the two newest checkpoints remain
[ "$(ls "$TMP/b" | grep -c '^checkpoint-[0-9]*$')" -eq 2 ]
[ ! -e "$TMP/b/checkpoint-1" ]
echo "ok: resumed run is bit-identical (300 steps, killed at $killed_at)"
