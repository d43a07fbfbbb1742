#!/usr/bin/env bash
# train --student NAME: a recipe (core/recipe.h schema, tests/fixtures/recipes/tiny-test.json)
# gives the base checkpoint (--base, or the directory in student.base_env), config changes merged
# into its config.json (here: rope_theta, an untied head) and the hyperparameters; options on the
# command line win over the recipe.
set -euo pipefail
F=$ROOT/tests/fixtures
R1_RECIPES=$F/recipes R1_TEST_TINY_BASE=$F/tiny-student-qwen2 "$BIN" train --student tiny-test \
    --data "$F/tiny-sft/train.jsonl" --out "$TMP/a" --log "$TMP/a.jsonl" --quiet 2>"$TMP/a.err"
# steps 5, constant lr 0.002, batch 4 rows of micro-batches of 2
[ "$(grep -c '"loss"' "$TMP/a.jsonl")" -eq 5 ]
[ "$(grep -c '"lr": 0.002,' "$TMP/a.jsonl")" -eq 5 ]
grep -q "batch 4 rows, micro-batch 2" "$TMP/a.err"
grep -q '"adam_beta2":[[:space:]]*0.95' "$TMP/a/trainer_state.json"
grep -q '"seed":[[:space:]]*7' "$TMP/a/trainer_state.json"
# the config changes: in the written config.json, and an lm_head of its own in the weights
grep -q '"rope_theta":[[:space:]]*20000' "$TMP/a/config.json"
grep -q '"tie_word_embeddings":[[:space:]]*false' "$TMP/a/config.json"
grep -aq '"lm_head.weight"' "$TMP/a/model.safetensors"
! grep -aq '"lm_head.weight"' "$F/tiny-student-qwen2/model.safetensors" || exit 1
"$BIN" logits --model "$TMP/a" --tokens 316,20,21,30 >/dev/null
# --base and a recipe path; --lr and --steps given on the command line win
"$BIN" train --student "$F/recipes/tiny-test.json" --base "$F/tiny-student-qwen2" \
    --data "$F/tiny-sft/train.jsonl" --out "$TMP/b" --log "$TMP/b.jsonl" --lr 1e-3 --steps 3 --quiet 2>/dev/null
[ "$(grep -c '"loss"' "$TMP/b.jsonl")" -eq 3 ]
[ "$(grep -c '"lr": 0.001,' "$TMP/b.jsonl")" -eq 3 ]
# the first step is the same in both runs (same weights, data order and batch)
diff <(head -1 "$TMP/a.jsonl" | sed 's/"lr".*//') <(head -1 "$TMP/b.jsonl" | sed 's/"lr".*//')
# recomputation: the recipe's "recompute" gives way to --recompute-cheap on the command line
# (on the CPU both recompute whole layers), and "recompute_cheap" is a recipe key too
sed 's/"seed": 7,/"seed": 7, "recompute": true,/' "$F/recipes/tiny-test.json" >"$TMP/rc.json"
"$BIN" train --student "$TMP/rc.json" --base "$F/tiny-student-qwen2" --data "$F/tiny-sft/train.jsonl" \
    --out "$TMP/r1" --steps 1 --recompute-cheap --quiet 2>"$TMP/r1.err"
grep -q "(recomputing)" "$TMP/r1.err"
sed 's/"seed": 7,/"seed": 7, "recompute_cheap": true,/' "$F/recipes/tiny-test.json" >"$TMP/rcc.json"
"$BIN" train --student "$TMP/rcc.json" --base "$F/tiny-student-qwen2" --data "$F/tiny-sft/train.jsonl" \
    --out "$TMP/r2" --steps 1 --quiet 2>"$TMP/r2.err"
grep -q "(recomputing)" "$TMP/r2.err"
# errors (exit 2): no base location, unknown recipe, a mistyped value, both recomputations
set +e
env -u R1_TEST_TINY_BASE "$BIN" train --student "$F/recipes/tiny-test.json" --data "$F/tiny-sft/train.jsonl" --out "$TMP/c" 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "R1_TEST_TINY_BASE" "$TMP/err" || { cat "$TMP/err"; exit 1; }
"$BIN" train --student "$TMP/nosuch.json" --data "$F/tiny-sft/train.jsonl" --out "$TMP/c" 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "no such recipe" "$TMP/err" || { cat "$TMP/err"; exit 1; }
sed 's/"seq_len": 64/"seq_len": "long"/' "$F/recipes/tiny-test.json" >"$TMP/typo.json"
"$BIN" train --student "$TMP/typo.json" --base "$F/tiny-student-qwen2" --data "$F/tiny-sft/train.jsonl" --out "$TMP/c" 2>"$TMP/err"
[ $? -eq 2 ] && grep -q 'train.seq_len has the wrong type' "$TMP/err" || { cat "$TMP/err"; exit 1; }
sed 's/"seed": 7,/"seed": 7, "recompute": true, "recompute_cheap": true,/' "$F/recipes/tiny-test.json" >"$TMP/both.json"
"$BIN" train --student "$TMP/both.json" --base "$F/tiny-student-qwen2" --data "$F/tiny-sft/train.jsonl" --out "$TMP/c" 2>"$TMP/err"
[ $? -eq 2 ] && grep -q 'both true; keep one' "$TMP/err" || { cat "$TMP/err"; exit 1; }
"$BIN" train --student "$TMP/rc.json" --base "$F/tiny-student-qwen2" --data "$F/tiny-sft/train.jsonl" --out "$TMP/c" --recompute --recompute-cheap 2>"$TMP/err"
[ $? -eq 2 ] && grep -q 'not both' "$TMP/err" || { cat "$TMP/err"; exit 1; }
set -e
echo "ok: recipes"
