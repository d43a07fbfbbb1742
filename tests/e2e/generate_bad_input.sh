#!/usr/bin/env bash
# san
# Bad input and failing output: every case ends with a clear message and the right exit status
# (2 for bad input or usage, 1 for runtime failures), and a write error (file size limit) keeps
# the completed shards, discards the partial one, and a re-run finishes exactly once.
set -euo pipefail
. "$ROOT/tests/e2e/lib/generate_setup.sh"
export OMP_NUM_THREADS=1
gen_teacher "$TMP/teacher"
gen_token_prompts "$TMP/good.jsonl" 12 3
BASE=(--teacher "$TMP/teacher" --max-new-tokens 24 --shard-records 3 --batch 4)

expect() { # status pattern command... : runs the command, checks its exit status and stderr
    local want=$1 pat=$2 st=0
    shift 2
    "$@" >"$TMP/out.txt" 2>"$TMP/err.txt" || st=$?
    if [ "$st" -ne "$want" ] || ! grep -q -- "$pat" "$TMP/err.txt"; then
        echo "FAILED: $* -> status $st (want $want), stderr:"; cat "$TMP/err.txt"
        echo "(wanted /$pat/)"; exit 1
    fi
}

# A malformed line: reported with its line number, or skipped and counted with --skip-bad.
{ sed -n 1,2p "$TMP/good.jsonl"; echo '{"prompt": [5, 6,'; sed -n '3,$p' "$TMP/good.jsonl"; } >"$TMP/bad.jsonl"
expect 2 "bad.jsonl:3: invalid JSON" "$BIN" generate "${BASE[@]}" --prompts "$TMP/bad.jsonl" --out "$TMP/o1"
grep -q "hint: .*--skip-bad" "$TMP/err.txt"
expect 0 "skipped 1 bad line of" "$BIN" generate "${BASE[@]}" --prompts "$TMP/bad.jsonl" --out "$TMP/o2" --skip-bad
[ "$("$BIN" traces cat "$TMP/o2" | wc -l)" -eq 12 ]
out_has '"line":13,' "$BIN" traces cat "$TMP/o2"   # the last prompt moved to line 13

# Invalid UTF-8 is a bad line too; CRLF line ends are fine.
printf '{"prompt": [4, 5]}\r\n{"prompt": "caf\xe9"}\r\n{"prompt": [6]}\r\n' >"$TMP/latin1.jsonl"
expect 2 "latin1.jsonl:2: invalid UTF-8" "$BIN" generate "${BASE[@]}" --prompts "$TMP/latin1.jsonl" --out "$TMP/o3"
expect 0 "skipped 1 bad line of" "$BIN" generate "${BASE[@]}" --prompts "$TMP/latin1.jsonl" --out "$TMP/o8" --skip-bad
[ "$("$BIN" traces cat "$TMP/o8" | wc -l)" -eq 2 ]

# A missing prompt field, a wrong shape, an id outside the vocabulary, a repeated id.
printf '{"prompt": [4, 5]}\n{"question": "x"}\n' >"$TMP/nofield.jsonl"
expect 2 ':2: no "prompt" field' "$BIN" generate "${BASE[@]}" --prompts "$TMP/nofield.jsonl" --out "$TMP/o3"
printf '{"prompt": {"a": 1}}\n' >"$TMP/shape.jsonl"
expect 2 ":1: \"prompt\" must be a string" "$BIN" generate "${BASE[@]}" --prompts "$TMP/shape.jsonl" --out "$TMP/o3"
printf '{"prompt": [4, 5]}\n\n{"prompt": [7, 400]}\n' >"$TMP/vocab.jsonl"
expect 2 ":3: token id 400 is outside the teacher's vocabulary" "$BIN" generate "${BASE[@]}" --prompts "$TMP/vocab.jsonl" --out "$TMP/o3"
expect 0 "skipping" "$BIN" generate "${BASE[@]}" --prompts "$TMP/vocab.jsonl" --out "$TMP/o4" --skip-bad
out_has "1 of 2 (prompt, sample) pairs (1 skipped as bad)" "$BIN" traces ls "$TMP/o4"
printf '{"id": "a", "prompt": [4]}\n{"id": "b", "prompt": [5]}\n{"id": "a", "prompt": [6]}\n' >"$TMP/dup.jsonl"
expect 2 ':3: id "a" repeats line 1' "$BIN" generate "${BASE[@]}" --prompts "$TMP/dup.jsonl" --id-field id --out "$TMP/o3"
expect 2 'no "uid" field' "$BIN" generate "${BASE[@]}" --prompts "$TMP/dup.jsonl" --id-field uid --out "$TMP/o3"
expect 2 "cannot open" "$BIN" generate "${BASE[@]}" --prompts "$TMP/missing.jsonl" --out "$TMP/o3"
expect 2 "text prompts and stop strings need the teacher's tokenizer" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --stop '</think>' --out "$TMP/o3"

# Bad option values.
expect 2 "top-p: must be in (0, 1]" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o3" --top-p 1.5
expect 2 "samples: must be between" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o3" --samples 0
expect 2 "rank 4 is outside 0..1" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o3" --rank 4 --world-size 2
expect 2 "SLURM_PROCID: expected an integer" env SLURM_PROCID=x "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o3"

# An output directory that cannot be made.
touch "$TMP/afile"
expect 2 "cannot create directory" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/afile/sub"

# The same directory with other settings is refused, naming what differs.
"$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o5" 2>/dev/null
expect 2 "sampling.temperature: 0.7 here, 0.6 there" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o5" --temperature 0.7
expect 2 "samples: 2 here, 1 there" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o5" --samples 2
{ cat "$TMP/good.jsonl"; echo '{"prompt": [9]}'; } >"$TMP/other.jsonl"
cp "$TMP/good.jsonl" "$TMP/good-copy.jsonl"
expect 2 "prompts.file_hash" "$BIN" generate "${BASE[@]}" --prompts "$TMP/other.jsonl" --out "$TMP/o5"
expect 0 "0 to make" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good-copy.jsonl" --out "$TMP/o5"

# Another generate holding this rank's lock is refused.
flock "$TMP/o5/.generate.lock" sleep 3 &
lockpid=$!
sleep 0.3
expect 1 "another \`generate\` is writing rank 0 here" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o5"
wait "$lockpid"

# A damaged manifest and a damaged shard are reported, not read past.
cp -r "$TMP/o5" "$TMP/o6"
head -c 100 "$TMP/o5/manifest.json" >"$TMP/o6/manifest.json"
expect 2 "manifest.json: invalid JSON" "$BIN" generate "${BASE[@]}" --prompts "$TMP/good.jsonl" --out "$TMP/o6"
expect 2 "manifest.json: invalid JSON" "$BIN" traces ls "$TMP/o6"
cp "$TMP/o5/manifest.json" "$TMP/o6/manifest.json"
s=$TMP/o6/shard-000001.tar.zst
head -c $(( $(stat -c %s "$s") / 2 )) "$TMP/o5/shard-000001.tar.zst" >"$s"
expect 2 "damaged shard" "$BIN" traces cat "$TMP/o6"
rm "$TMP/o6/shard-000002.tar.zst"
expect 2 "lists shard shard-000002.tar.zst, which is missing" "$BIN" traces stats "$TMP/o6"

# Write errors: with a 4 KiB file size limit the second shard cannot be written. The error is
# clear, the partial shard is gone, the completed one is kept, and a re-run finishes the job
# with every sample exactly once.
FULL=(--teacher "$TMP/teacher" --prompts "$TMP/good.jsonl" --shard-records 1 --logprobs 16
      --max-new-tokens 64 --batch 4)
"$BIN" generate "${FULL[@]}" --out "$TMP/ref" 2>/dev/null
st=0
( ulimit -f 4; exec "$BIN" generate "${FULL[@]}" --out "$TMP/full" ) 2>"$TMP/full.err" || st=$?
[ "$st" -eq 1 ] || { echo "status $st under the file size limit"; cat "$TMP/full.err"; exit 1; }
grep -q "write failed: File too large" "$TMP/full.err"
grep -q "hint: the file size limit (ulimit -f) was reached" "$TMP/full.err"
if compgen -G "$TMP/full/*.tmp.*" >/dev/null; then echo "a partial shard was left"; exit 1; fi
kept=$("$BIN" traces cat "$TMP/full" | wc -l)
[ "$kept" -ge 1 ] || { echo "no completed shard was kept"; exit 1; }
check_shards "$TMP/full" >/dev/null
"$BIN" generate "${FULL[@]}" --out "$TMP/full" 2>"$TMP/resume.err"
grep -q "$kept samples done" "$TMP/resume.err"
[ "$(sorted_records "$TMP/full")" = "$(sorted_records "$TMP/ref")" ]

# An empty prompt file is a complete job with no records.
: >"$TMP/empty.jsonl"
expect 0 "complete: 0 samples" "$BIN" generate "${BASE[@]}" --prompts "$TMP/empty.jsonl" --out "$TMP/o7"
out_has "records            0 of 0" "$BIN" traces stats "$TMP/o7"
echo "bad-input cases ok"
