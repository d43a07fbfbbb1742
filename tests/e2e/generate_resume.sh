#!/usr/bin/env bash
# Kill-and-resume: generate is killed with SIGKILL at random moments, and stopped once with
# SIGTERM, and re-run each time. After every kill, all shards under final names read whole and
# the manifest is valid; at the end the directory holds every (prompt, sample) exactly once,
# with the same records as an uninterrupted run, and no temporary files.
set -euo pipefail
. "$ROOT/tests/e2e/lib/generate_setup.sh"
export OMP_NUM_THREADS=1
gen_teacher "$TMP/teacher"
N_PROMPTS=48 TOTAL=144   # 3 samples each
gen_token_prompts "$TMP/prompts.jsonl" $N_PROMPTS 1
ARGS=(--teacher "$TMP/teacher" --prompts "$TMP/prompts.jsonl" --samples 3 --max-new-tokens 64
      --temperature 0.9 --shard-records 4 --batch 6 --logprobs 3 --gold-field answer
      --progress-interval 0.2)

t0=$(date +%s%N)
"$BIN" generate "${ARGS[@]}" --out "$TMP/ref" 2>"$TMP/ref.err"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "uninterrupted run: ${ms} ms"
want=$(sorted_records "$TMP/ref")
# Progress: plain lines on stderr (not a terminal here) and the same figures in the JSONL log.
grep -Eq "^generate: [0-9]+s [0-9]+/$N_PROMPTS prompts  samples [0-9]+  [0-9.]+ tok/s  ETA " "$TMP/ref.err"
python3 - "$TMP/ref/generate.log.jsonl" $N_PROMPTS $TOTAL <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
kinds = [e["event"] for e in ev]
assert kinds[0] == "start" and kinds[-1] == "done" and "progress" in kinds and "shard" in kinds, kinds
d = ev[-1]
n, total = int(sys.argv[2]), int(sys.argv[3])
assert d["done"] == n and d["total"] == n and d["samples"] == total and d["tokens_per_s"] > 0, d
assert sum(e["records"] for e in ev if e["event"] == "shard") == total
PY
[ "$(printf '%s\n' "$want" | wc -l)" -eq $TOTAL ] || { echo "reference holds the wrong count"; exit 1; }

RANDOM=$(( $(date +%s) % 32768 ))
listed=0 kills=0 tries=0
while [ "$kills" -lt 6 ] && [ "$tries" -lt 12 ] && [ "$listed" -lt $TOTAL ]; do
    tries=$((tries + 1))
    # A random moment in the first half of the time the remaining work should take.
    left_ms=$(( ms * (TOTAL - listed) / TOTAL ))
    delay_ms=$(( 10 + RANDOM % (left_ms / 2 + 1) ))
    "$BIN" generate "${ARGS[@]}" --out "$TMP/out" 2>>"$TMP/kill.err" &
    pid=$!
    sleep "$(printf '0.%03d' $((delay_ms % 1000)))"
    sleep $((delay_ms / 1000))
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null || true
    n=$(check_shards "$TMP/out")
    if [ -e "$TMP/out/manifest.json" ]; then
        "$BIN" traces ls "$TMP/out" >/dev/null
        listed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$TMP/out/manifest.json")
    fi
    echo "kill after ${delay_ms} ms: $n whole shards, $listed records in the manifest"
done
[ "$kills" -ge 3 ] || { echo "only $kills kills hit a running generate"; exit 1; }

# A kill between a shard's rename and the manifest update (deterministic, by a test hook): the
# next run adopts the unlisted shard instead of making its samples again.
status=0
R1_TEST_KILL_AFTER_SHARD=3 "$BIN" generate "${ARGS[@]}" --out "$TMP/adopt" 2>/dev/null || status=$?
[ "$status" -eq 137 ] || { echo "the hook did not kill (status $status)"; exit 1; }
[ "$(ls "$TMP"/adopt/shard-*.tar.zst | wc -l)" -eq 3 ]
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert len(m["shards"]) == 2, m' \
    "$TMP/adopt/manifest.json"
"$BIN" generate "${ARGS[@]}" --out "$TMP/adopt" 2>"$TMP/adopt.err"
grep -q "adopted shard-000002.tar.zst (4 records)" "$TMP/adopt.err"

# SIGTERM: the open shard's records are kept, the exit status is 1, a re-run finishes.
"$BIN" generate "${ARGS[@]}" --out "$TMP/term" 2>"$TMP/term.err" &
pid=$!
sleep "$(printf '0.%03d' $(( (ms / 3) % 1000 )))"; sleep $(( ms / 3000 ))
kill -TERM "$pid"
status=0; wait "$pid" || status=$?
if [ "$status" -ne 0 ]; then
    [ "$status" -eq 1 ] || { echo "SIGTERM exit status $status, want 1"; cat "$TMP/term.err"; exit 1; }
    grep -q "interrupted by SIGTERM" "$TMP/term.err"
    grep -q "re-run the same command" "$TMP/term.err"
    out_has "incomplete" "$BIN" traces ls "$TMP/term"
else
    echo "(the run finished before SIGTERM arrived)"
fi
"$BIN" generate "${ARGS[@]}" --out "$TMP/term" 2>/dev/null

"$BIN" generate "${ARGS[@]}" --out "$TMP/out" 2>"$TMP/final.err"
for d in out term adopt; do
    got=$(sorted_records "$TMP/$d")
    [ "$got" = "$want" ] || {
        echo "$d: records differ from the uninterrupted run"
        diff <(printf '%s\n' "$want" | cut -c1-60) <(printf '%s\n' "$got" | cut -c1-60) | head
        exit 1
    }
    ids=$(printf '%s\n' "$got" | python3 -c 'import json,sys; print(len({json.loads(l)["id"] for l in sys.stdin}))')
    [ "$ids" -eq $TOTAL ] || { echo "$d: $ids distinct ids, want $TOTAL"; exit 1; }
    if compgen -G "$TMP/$d/*.tmp.*" >/dev/null; then echo "$d: temporary files left"; ls "$TMP/$d"; exit 1; fi
    n=$(check_shards "$TMP/$d")
    python3 - "$TMP/$d" $TOTAL <<'PY'
import json, os, subprocess, sys
d, total = sys.argv[1], int(sys.argv[2])
m = json.load(open(os.path.join(d, "manifest.json")))
assert m["complete"] is True and m["records"] == total and m["pairs_total"] == total, m
for s in m["shards"]:
    names = subprocess.run(["bsdtar", "-tf", os.path.join(d, s["name"])], capture_output=True,
                           text=True, check=True).stdout.split()
    assert len(names) == 2 * s["records"], (s["name"], len(names))  # .json + .topk per record
PY
    echo "$d: $TOTAL records exactly once in $n shards"
done
# Nothing is left to do: a further run adds nothing.
before=$(ls "$TMP/out" | wc -l)
"$BIN" generate "${ARGS[@]}" --out "$TMP/out" 2>"$TMP/again.err"
grep -q "0 to make" "$TMP/again.err"
[ "$(ls "$TMP/out" | wc -l)" -eq "$before" ]
