#!/usr/bin/env bash
# `r1-distill run`: stages run in order, completed ones are skipped on a re-run (also after a
# kill in the middle of a later stage), changed arguments re-run a stage and everything after it,
# and a failing stage stops the pipeline with its exit status.
set -euo pipefail
cd "$TMP"
cat >recipe.json <<'R'
{"name": "toy", "run_dir": "${recipe_dir}/out",
 "pipeline": [
  {"name": "prompts", "command": "tasks", "args": {"split": "test", "n": 30, "out": "${run_dir}/test.jsonl"}},
  {"name": "big", "command": "tasks", "args": {"n": 100000, "seed": 7, "kinds": "arith,word", "out": "${run_dir}/big.jsonl"}},
  {"name": "small", "command": "tasks", "args": {"n": 5, "format": "messages", "out": "${run_dir}/small.jsonl"}}
 ]}
R
"$BIN" run recipe.json 2>log1
[ "$(wc -l <out/test.jsonl)" -eq 30 ]
[ "$(wc -l <out/big.jsonl)" -eq 100000 ]
ls out/stages/prompts.done out/stages/big.done out/stages/small.done >/dev/null
"$BIN" run recipe.json 2>log2
[ "$(grep -c 'done, skipped' log2)" -eq 3 ] || { cat log2; exit 1; }

# a kill in the middle of stage 2: stage 1 is not redone, stage 2 and 3 are
rm -rf out
"$BIN" run recipe.json 2>/dev/null --only prompts
sed -i 's/"n": 100000/"n": 300000/' recipe.json
"$BIN" run recipe.json 2>log3 &
pid=$!
for i in $(seq 1 100); do grep -q '\[2/3\] big: r1-distill' log3 2>/dev/null && break; sleep 0.05; done
sleep 0.3
pkill -KILL -P "$pid" || true; kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
[ ! -f out/stages/big.done ]
[ ! -f out/big.jsonl ]   # the atomic write never left a partial file
stamp=$(stat -c %Y out/test.jsonl)
"$BIN" run recipe.json 2>log4
grep -q '\[1/3\] prompts: done, skipped' log4
grep -q '\[2/3\] big: finished' log4
[ "$(stat -c %Y out/test.jsonl)" = "$stamp" ]
[ "$(wc -l <out/big.jsonl)" -eq 300000 ]

# changing stage 1's arguments re-runs it and every later stage
sed -i 's/"n": 30/"n": 31/' recipe.json
"$BIN" run recipe.json 2>log5
[ "$(grep -c 'finished in' log5)" -eq 3 ] || { cat log5; exit 1; }

# a failing stage stops the pipeline with its status; the stages before it stay done
sed -i 's/"format": "messages"/"format": "bogus"/' recipe.json
set +e; "$BIN" run recipe.json 2>log6; rc=$?; set -e
[ "$rc" -eq 2 ]
grep -q 'stage small failed (exit 2)' log6
grep -q 'expected prompts, messages, facts or prose' log6
[ ! -f out/stages/small.done ]
[ -f out/stages/big.done ]
set +e; "$BIN" run nosuch.json 2>log7; rc=$?; set -e
[ "$rc" -eq 2 ]
grep -q 'no such recipe' log7
echo "run pipeline: ok"
