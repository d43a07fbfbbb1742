#!/usr/bin/env bash
# train --student NAME: base model and hyperparameters from a recipe (tests/fixtures/recipes),
# the base checkpoint from --base or $R1_MODELS/<base>; options on the command line win.
set -euo pipefail
F=$ROOT/tests/fixtures
R1_MODELS=$F "$BIN" train --student tiny-test --recipes "$F/recipes" --data "$F/tiny-sft/train.jsonl" \
    --out "$TMP/a" --log "$TMP/a.jsonl" --quiet 2>"$TMP/a.err"
# steps 5, constant lr 0.002, batch 4 rows
[ "$(grep -c '"loss"' "$TMP/a.jsonl")" -eq 5 ]
[ "$(grep -c '"lr": 0.002,' "$TMP/a.jsonl")" -eq 5 ]
grep -q "batch 4 rows, micro-batch 2" "$TMP/a.err"
grep -q '"adam_beta2":[[:space:]]*0.95' "$TMP/a/trainer_state.json"
grep -q '"seed":[[:space:]]*7' "$TMP/a/trainer_state.json"
# the same through --base and a recipe path, with --lr and --steps given on the command line
"$BIN" train --student "$F/recipes/tiny-test.json" --base "$F/tiny-student-qwen2" \
    --data "$F/tiny-sft/train.jsonl" --out "$TMP/b" --log "$TMP/b.jsonl" --lr 1e-3 --steps 3 --quiet 2>/dev/null
[ "$(grep -c '"loss"' "$TMP/b.jsonl")" -eq 3 ]
[ "$(grep -c '"lr": 0.001,' "$TMP/b.jsonl")" -eq 3 ]
# the first step is the same in both (same weights, data order and batch)
diff <(head -1 "$TMP/a.jsonl" | sed 's/"lr".*//') <(head -1 "$TMP/b.jsonl" | sed 's/"lr".*//')
# errors: no base location, unknown recipe, unknown hyperparameter
set +e
env -u R1_MODELS "$BIN" train --student tiny-test --recipes "$F/recipes" --data "$F/tiny-sft/train.jsonl" --out "$TMP/c" 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "R1_MODELS" "$TMP/err" || { cat "$TMP/err"; exit 1; }
"$BIN" train --student nosuch --recipes "$F/recipes" --data "$F/tiny-sft/train.jsonl" --out "$TMP/c" 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "no such recipe" "$TMP/err" || { cat "$TMP/err"; exit 1; }
sed 's/"seed"/"sede"/' "$F/recipes/tiny-test.json" >"$TMP/typo.json"
"$BIN" train --student "$TMP/typo.json" --base "$F/tiny-student-qwen2" --data "$F/tiny-sft/train.jsonl" --out "$TMP/c" 2>"$TMP/err"
[ $? -eq 2 ] && grep -q 'unknown hyperparameter "sede"' "$TMP/err" || { cat "$TMP/err"; exit 1; }
set -e
echo "ok: recipes"
