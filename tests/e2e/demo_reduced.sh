#!/usr/bin/env bash
# A reduced `make demo`: recipes/tiny.json with fewer prompts, test questions and epochs, run
# end to end on the committed tiny teacher; then killed in the middle of training and re-run,
# which must finish without redoing the completed stages.
set -euo pipefail
cd "$ROOT"
python3 tests/e2e/lib/demo_recipe.py "$TMP/tiny.json" "$TMP/run" --reduced
OMP_NUM_THREADS=1 "$BIN" run "$TMP/tiny.json" 2>"$TMP/log1" || { cat "$TMP/log1"; exit 1; }
R=$TMP/run
for f in report.json report.md report.html loss.svg accuracy.svg student-q8_0.gguf Modelfile; do
    [ -s "$R/$f" ] || { echo "missing $R/$f"; exit 1; }
done
python3 - "$R" <<'PY'
import json, sys
r = json.load(open(sys.argv[1] + "/report.json"))
for k in ["teacher_accuracy", "student_before_accuracy", "student_after_accuracy",
          "traces_generated", "traces_kept", "seconds"]:
    assert k in r, k
assert r["traces_generated"] == 80, r
assert 0 <= r["traces_kept"] <= 80
for k in ["teacher_accuracy", "student_before_accuracy", "student_after_accuracy"]:
    assert 0 <= r[k] <= 1, (k, r[k])
assert r["seconds"] >= 0
# the numbers agree with the stages' own outputs
cur = json.load(open(sys.argv[1] + "/curated/report.json"))
assert cur["kept"] == r["traces_kept"] and cur["input"] == r["traces_generated"]
t = json.load(open(sys.argv[1] + "/eval-teacher/summary.json"))
assert t["pass@1"] == r["teacher_accuracy"]
svg = open(sys.argv[1] + "/loss.svg").read()
assert svg.startswith("<svg") and "polyline" in svg
PY
grep -q "Modelfile\|FROM" "$R/Modelfile"

# kill in the middle of the train stage, then re-run: earlier stages are skipped
rm -f "$R/stages/train.done" "$R/stages/export.done" "$R"/stages/eval-*.done "$R/stages/report.done"
rm -rf "$R/student"
OMP_NUM_THREADS=1 "$BIN" run "$TMP/tiny.json" 2>"$TMP/log2" &
pid=$!
for i in $(seq 1 200); do [ -d "$R/student/checkpoint-1" ] && break; sleep 0.05; done
pkill -KILL -P "$pid" || true; kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
OMP_NUM_THREADS=1 "$BIN" run "$TMP/tiny.json" 2>"$TMP/log3" || { cat "$TMP/log3"; exit 1; }
for s in prompts traces curate pack; do
    grep -q "\] $s: done, skipped" "$TMP/log3" || { echo "$s was redone"; cat "$TMP/log3"; exit 1; }
done
grep -q "\] report: finished" "$TMP/log3"
echo "demo (reduced): ok"
