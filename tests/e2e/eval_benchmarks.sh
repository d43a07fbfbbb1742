#!/usr/bin/env bash
# Benchmark readers through `eval --dry-run` (questions, prompts and golds without a model):
# GSM8K, MATH-500, MATH with only a solution, AIME 2024 / 2025 field spellings, GPQA with its
# options shuffled by a permutation recomputed here from the documented formula; then bad
# files: a missing field (line named), an unknown layout, duplicate ids, an empty file, lines
# that are not objects, a bad tasks spec, a model without a tokenizer.
# san
set -euo pipefail
INSTR='Please reason step by step, and put your final answer within \boxed{}.'
python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
def write(name, rows):
    with open(f"{tmp}/{name}", "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
write("gsm8k.jsonl", [
    {"question": "Natalia sold clips to 48 friends. How many?", "answer": "48 / 2 = 24\n#### 72"},
    {"question": "A big sum?", "answer": "Work: 1000 + 234\n#### 1,234"},
])
write("math500.jsonl", [
    {"problem": "Convert $(0,3)$ to polar.", "solution": "... $\\boxed{(3,\\frac{\\pi}{2})}$.",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/807.json"},
])
write("math.jsonl", [
    {"problem": "Half of one?", "solution": "It is $\\boxed{\\frac{1}{2}}$.", "level": "Level 1"},
])
write("aime24.jsonl", [
    {"ID": "2024-I-1", "Problem": "Every morning Aya walks...", "Solution": "...", "Answer": 204},
    {"ID": "2024-I-2", "Problem": "There exist real numbers...", "Solution": "...", "Answer": 25},
])
write("aime25.jsonl", ["", {"question": "Find the sum of all integer bases...", "answer": "70"}, "  "])
rows = []
for i in range(40):
    rows.append({"Record ID": "rec%02d" % i, "Question": " What is item %d? \n" % i,
                 "Correct Answer": "right %d" % i, "Incorrect Answer 1": "wrong a%d" % i,
                 "Incorrect Answer 2": "wrong b%d" % i, "Incorrect Answer 3": "wrong c%d " % i,
                 "Subdomain": "Physics"})
write("gpqa.jsonl", rows)
# bad files
write("gsm8k_missing.jsonl", [{"question": "a", "answer": "#### 1"}, {"question": "b", "answer": "#### 2"},
                              {"question": "c"}])
write("gsm8k_nohash.jsonl", [{"question": "a", "answer": "#### 1"}, {"question": "b", "answer": "2"}])
write("unknown.jsonl", [{"text": "a", "label": 1}])
write("dup.jsonl", [{"id": "x", "problem": "a", "answer": "1"}, {"id": "y", "problem": "b", "answer": "2"},
                    {"id": "x", "problem": "c", "answer": "3"}])
write("gpqa_missing.jsonl", [{"Question": "q", "Correct Answer": "a", "Incorrect Answer 1": "b",
                              "Incorrect Answer 2": "c"}])
write("notobj.jsonl", ["[1, 2]"])
write("blank.jsonl", ["", "   "])
write("nosolution.jsonl", [{"problem": "a", "solution": "no box here, just 5"}])
open(f"{tmp}/empty.jsonl", "w").close()
PY

dry() { "$BIN" eval --model none --dry-run --bench "$@"; }
dry "$TMP/gsm8k.jsonl" >"$TMP/gsm8k.out"
dry "$TMP/math500.jsonl" >"$TMP/math500.out"
dry "$TMP/math.jsonl" >"$TMP/math.out"
dry "$TMP/aime24.jsonl" >"$TMP/aime24.out"
dry "aime:$TMP/aime25.jsonl" >"$TMP/aime25.out"
dry "$TMP/gpqa.jsonl" >"$TMP/gpqa.out"
dry "$TMP/gpqa.jsonl" --shuffle-seed 7 >"$TMP/gpqa7.out"
dry "$TMP/gsm8k.jsonl" --instruction none >"$TMP/gsm8k_none.out"

python3 - "$TMP" "$INSTR" <<'PY'
import json, sys
tmp, instr = sys.argv[1:3]
load = lambda n: [json.loads(l) for l in open(f"{tmp}/{n}.out")]
g = load("gsm8k")
assert [x["gold"] for x in g] == ["72", "1,234"], g
assert g[0]["id"] == "1" and g[1]["id"] == "2" and g[1]["line"] == 2
assert g[0]["prompt"] == "Natalia sold clips to 48 friends. How many?\n" + instr, g[0]
assert load("gsm8k_none")[0]["prompt"] == "Natalia sold clips to 48 friends. How many?"
m = load("math500")[0]
assert m["id"] == "test/precalculus/807.json" and m["gold"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
assert load("math")[0]["gold"] == "\\frac{1}{2}"
a = load("aime24")
assert [(x["id"], x["gold"], x["kind"]) for x in a] == [("2024-I-1", "204", "math"), ("2024-I-2", "25", "math")]
assert a[0]["question"] == "Every morning Aya walks..."
a5 = load("aime25")
assert len(a5) == 1 and a5[0]["gold"] == "70" and a5[0]["id"] == "2" and a5[0]["line"] == 2, a5

# GPQA: the documented permutation, recomputed independently.
M, G = (1 << 64) - 1, 0x9E3779B97F4A7C15
def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
def fnv(b):
    h = 0xCBF29CE484222325
    for x in b:
        h = ((h ^ x) * 0x100000001B3) & M
    return h
def perm(seed, ident):
    s, p = mix(mix(seed ^ G) ^ fnv(ident.encode())), [0, 1, 2, 3]
    for i in range(3, 0, -1):
        s = (s + G) & M
        j = mix(s) % (i + 1)
        p[i], p[j] = p[j], p[i]
    return p
HEAD = ("Answer the following multiple choice question. The last line of your response should "
        "be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of "
        "ABCD. Think step by step before answering.")
def check(rows, seed):
    letters = []
    for i, x in enumerate(rows):
        opts = ["right %d" % i, "wrong a%d" % i, "wrong b%d" % i, "wrong c%d" % i]
        p = perm(seed, "rec%02d" % i)
        want = HEAD + "\n\nWhat is item %d?\n\n" % i + "\n".join(
            "%s) %s" % ("ABCD"[k], opts[p[k]]) for k in range(4))
        assert x["prompt"] == want, (x["prompt"], want)        # no instruction for GPQA
        assert x["gold"] == "ABCD"[p.index(0)] and x["kind"] == "choice", x
        assert x["id"] == "rec%02d" % i and x["question"] == "What is item %d?" % i
        letters.append(x["gold"])
    return letters
l0, l7 = check(load("gpqa"), 0), check(load("gpqa7"), 7)
assert set(l0) == set("ABCD") and l0 != l7, (l0, l7)
print("benchmark readers ok")
PY

# expect_fail NAME PATTERN... -- ARGS
expect_fail() {
    local name=$1 pats=() rc=0
    shift
    while [ "$1" != -- ]; do pats+=("$1"); shift; done
    shift
    "$BIN" eval "$@" >"$TMP/$name.o" 2>"$TMP/$name.e" || rc=$?
    [ "$rc" = 2 ] || { echo "$name: exit $rc, want 2"; cat "$TMP/$name.e"; exit 1; }
    for p in "${pats[@]}"; do
        grep -qF -- "$p" "$TMP/$name.e" || { echo "$name: no '$p' in:"; cat "$TMP/$name.e"; exit 1; }
    done
}
D=(--model none --dry-run --bench)
expect_fail missing "gsm8k_missing.jsonl:3: the record has no \"answer\" field (gsm8k layout)" \
    "its fields are: question" -- "${D[@]}" "$TMP/gsm8k_missing.jsonl"
expect_fail nohash "gsm8k_nohash.jsonl:2" "####" -- "${D[@]}" "gsm8k:$TMP/gsm8k_nohash.jsonl"
expect_fail unknown "unknown.jsonl:1: cannot tell the benchmark layout" "gpqa:FILE" -- \
    "${D[@]}" "$TMP/unknown.jsonl"
expect_fail dup "dup.jsonl:3: question id \"x\" is already used on line 1" -- "${D[@]}" "$TMP/dup.jsonl"
expect_fail gpqa "gpqa_missing.jsonl:1" "\"Incorrect Answer 3\"" -- "${D[@]}" "$TMP/gpqa_missing.jsonl"
expect_fail notobj "notobj.jsonl:1: expected a JSON object" -- "${D[@]}" "$TMP/notobj.jsonl"
expect_fail empty "empty.jsonl: no questions: the file is empty" -- "${D[@]}" "$TMP/empty.jsonl"
expect_fail blank "blank.jsonl: no questions: the file has only blank lines" -- "${D[@]}" "$TMP/blank.jsonl"
expect_fail nobox "nosolution.jsonl:1" "no \\boxed{} answer" -- "${D[@]}" "$TMP/nosolution.jsonl"
expect_fail nofile "nothere.jsonl" -- "${D[@]}" "$TMP/nothere.jsonl"
expect_fail tasks "tasks:exam:5" "unknown split" -- "${D[@]}" tasks:exam:5
expect_fail tasks2 "tasks:test" "tasks:SPLIT:N[:SEED[:KINDS]]" -- "${D[@]}" tasks:test
expect_fail passk "--pass-k" "outside 1..4" -- "${D[@]}" tasks:test:3 --samples 4 --pass-k 1,8
# A model directory without tokenizer.json.
mkdir -p "$TMP/notok"
cp "$ROOT"/tests/fixtures/qwen2-tied/{config.json,model.safetensors} "$TMP/notok"/
expect_fail notok "tokenizer" "--tokenizer" -- --model "$TMP/notok" --bench tasks:test:2 \
    --max-new-tokens 2
echo "eval errors ok"
