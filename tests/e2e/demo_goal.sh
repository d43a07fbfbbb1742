#!/usr/bin/env bash
# The whole `make demo` (recipes/tiny.json, unchanged but for its run directory), asserting its
# goal: the distilled student reaches at least 80% of the teacher's accuracy on the held-out
# test questions, and the untrained student is below both. About two minutes on 2 cores; how
# long it takes is reported by the demo itself, never asserted.
set -euo pipefail
cd "$ROOT"
python3 tests/e2e/lib/demo_recipe.py "$TMP/tiny.json" "$TMP/run"
"$BIN" run "$TMP/tiny.json" 2>"$TMP/log" || { tail -40 "$TMP/log"; exit 1; }
python3 - "$TMP/run/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, b, a = r["teacher_accuracy"], r["student_before_accuracy"], r["student_after_accuracy"]
print(f"teacher {t:.3f}, student before {b:.3f}, after {a:.3f} ({a / t:.0%} of the teacher); "
      f"traces {r['traces_kept']}/{r['traces_generated']}; {r['seconds']} s")
assert t >= 0.4, "the committed teacher should score at least 40%"
assert a >= 0.8 * t, "the distilled student is below 80% of the teacher"
assert b < 0.8 * t and b < a, "the untrained student should not already solve the tasks"
assert 0 < r["traces_kept"] < r["traces_generated"]
PY
