#!/usr/bin/env bash
# curate on bad input: records without the fields a filter needs, damaged and unreadable
# shards, an empty benchmark file, bad options, an output directory already in use. Each stops
# with exit 2 and a message that names the shard and member (or file and line, or option).
# san
set -euo pipefail
python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
def rec(line, **kw):
    r = {"line": line, "sample": 0, "prompt": "Compute %d + 1." % line,
         "text": "Add one.\n</think>\n\n\\boxed{%d}" % (line + 1), "finish_reason": "stop",
         "gold": str(line + 1), "completion_token_ids": [5, 6, 7]}
    r.update(kw)
    return {k: v for k, v in r.items() if v is not None}
def spec(name, records):
    json.dump({"samples": 1, "pairs_total": 3, "shards": [records]}, open(f"{tmp}/{name}.json", "w"))
spec("good", [rec(1), rec(2), rec(3)])
spec("notext", [rec(1), rec(2, text=None)])
spec("nogold", [rec(1), rec(2), rec(3, gold=None)])
spec("badgold", [rec(1, gold=[1, 2])])
spec("tokens", [rec(1, prompt=None)])
open(f"{tmp}/empty.jsonl", "w").close()
PY
for s in good notext nogold badgold tokens; do
    python3 "$ROOT/tests/e2e/lib/make_traces.py" "$TMP/$s.json" "$TMP/$s"
done

# expect_fail NAME PATTERN... -- ARGS: exit status 2 and every pattern in stderr.
expect_fail() {
    local name=$1 pats=() rc=0
    shift
    while [ "$1" != -- ]; do pats+=("$1"); shift; done
    shift
    "$BIN" curate "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    [ "$rc" = 2 ] || { echo "$name: exit $rc, want 2"; cat "$TMP/$name.err"; exit 1; }
    for p in "${pats[@]}"; do
        grep -qF -- "$p" "$TMP/$name.err" || { echo "$name: no '$p' in:"; cat "$TMP/$name.err"; exit 1; }
    done
}

expect_fail notext "shard-000000.tar.zst: 00000002_00.json" 'no "text" field' "tokenizer" -- \
    --traces "$TMP/notext" --out "$TMP/o1"
expect_fail nogold "00000003_00.json" 'no "gold" field' "--skip incorrect" -- \
    --traces "$TMP/nogold" --out "$TMP/o2"
"$BIN" curate --traces "$TMP/nogold" --out "$TMP/o2b" --skip incorrect >/dev/null 2>"$TMP/o2b.err" ||
    { echo "curate --skip incorrect failed:"; cat "$TMP/o2b.err"; exit 1; }
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["kept"]==3 and "incorrect" in r["off"], r' \
    "$TMP/o2b/report.json"
expect_fail badgold "00000001_00.json" '"gold" must be a string or a number' -- \
    --traces "$TMP/badgold" --out "$TMP/o3"
expect_fail tokens "00000001_00.json" 'no "prompt" field' -- \
    --traces "$TMP/tokens" --out "$TMP/o4" --decontaminate tasks:test:20

# A shard cut short inside a member, then one that is not an archive at all.
cp -r "$TMP/good" "$TMP/cut"
# (through a file: head closing a pipe early would kill the decompressor with SIGPIPE, which
# pipefail turns into a silent failure of this script)
zstd -q -dc "$TMP/good/shard-000000.tar.zst" >"$TMP/whole.tar"
head -c 2600 "$TMP/whole.tar" | zstd -q -f -o "$TMP/cut/shard-000000.tar.zst"
expect_fail cut "cut/shard-000000.tar.zst" "damaged shard: member 00000003_00.json" -- \
    --traces "$TMP/cut" --out "$TMP/o5"
cp -r "$TMP/good" "$TMP/junk"
head -c 300 /dev/urandom >"$TMP/junk/shard-000000.tar.zst"
expect_fail junk "junk/shard-000000.tar.zst" "damaged shard" -- --traces "$TMP/junk" --out "$TMP/o6"
# The partial output of a failed run never shows a shard or a manifest.
[ -z "$(ls "$TMP/o5" | grep -E '^(shard|manifest)' || true)" ] || { ls -la "$TMP/o5"; exit 1; }

expect_fail nodir "missing: cannot open the trace directory" -- --traces "$TMP/missing" --out "$TMP/o7"
mkdir "$TMP/bare"
expect_fail bare "no manifest.json" -- --traces "$TMP/bare" --out "$TMP/o7b"
expect_fail empty "empty.jsonl" "no questions: the file is empty" -- \
    --traces "$TMP/good" --out "$TMP/o8" --decontaminate "$TMP/empty.jsonl"
expect_fail skip '--skip' 'unknown filter "nonsense"' -- \
    --traces "$TMP/good" --out "$TMP/o9" --skip truncated,nonsense
expect_fail same '--out' "is the --traces directory" -- --traces "$TMP/good" --out "$TMP/good"
expect_fail range '--near-dup' -- --traces "$TMP/good" --out "$TMP/o10" --near-dup 0

# An output directory in use is refused, and replaced with --overwrite.
"$BIN" curate --traces "$TMP/good" --out "$TMP/out" >/dev/null 2>"$TMP/out.err" ||
    { echo "curate failed:"; cat "$TMP/out.err"; exit 1; }
expect_fail again "already holds" "--overwrite" -- --traces "$TMP/good" --out "$TMP/out"
"$BIN" curate --traces "$TMP/good" --out "$TMP/out" --overwrite --max-per-prompt 1 >/dev/null \
    2>"$TMP/over.err" || { echo "curate --overwrite failed:"; cat "$TMP/over.err"; exit 1; }
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["kept"]==3, r' "$TMP/out/report.json"
# --overwrite never deletes traces that curate did not write.
cp -r "$TMP/good" "$TMP/gen"
expect_fail notours "holds traces that curate did not write" -- --traces "$TMP/good" \
    --out "$TMP/gen" --overwrite
[ -f "$TMP/gen/shard-000000.tar.zst" ]
[ -f "$TMP/gen/manifest.json" ]
echo "curate errors ok"
