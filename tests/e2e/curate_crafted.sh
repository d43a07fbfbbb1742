#!/usr/bin/env bash
# curate on a hand-crafted trace set whose outcome per filter is known: every count of the
# report (first-failure removals, any-failure flags, acceptance per source, reasoning-length
# percentiles) is asserted, the kept records are read back from the new shards (with their
# .topk member and verdict), and a second run with filters turned off shifts the counts as
# predicted. The shards are written by tests/e2e/lib/make_traces.py, not by the C writer.
# san
set -euo pipefail
python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
THINK_END = "\n</think>\n\n"
def resp(reasoning, answer):
    return reasoning + THINK_END + answer

L3_GOOD = ("Tom starts with 7 apples and buys 5 more at the market on Monday.\n\nAdding them "
           "gives 7 + 5 = 12 apples in total, and nothing is eaten or given away before the end "
           "of the story.\n\nSo the count stays the same until the question is asked. Checking "
           "once more by counting up from seven: eight, nine, ten, eleven, twelve.\n\nA second check "
           "subtracts: twelve apples minus the five bought leaves the seven he started with, "
           "which matches the story, so the total of twelve is right.")
LOOP = "\n\n".join(["Wait, let me add the apples again to be sure of it."] * 6)
R = []   # (line, sample, source, prompt, gold, text, finish, n_tokens, first, flags)
def rec(line, sample, text, finish="stop", first=None, flags=(), n=None, **kw):
    R.append(dict(line=line, sample=sample, text=text, finish=finish, first=first,
                  flags=set(flags), n=n if n is not None else 10 + 3 * len(R), **kw))
P1 = dict(prompt="Compute 17 + 25.", gold="42", source="arith")
rec(1, 0, resp("First add 17 and 25. That is 42.", "The answer is \\boxed{42}."), n=40, **P1,
    topk=True)
rec(1, 1, "First add 17 and 25. Tens: 10 + 20 = 30, ones: 7 + 5", finish="length",
    first="truncated", flags={"truncated", "unclosed_think", "empty_answer", "incorrect"}, **P1)
rec(1, 2, "First add 17 and 25. I think it is 37", first="unclosed_think",
    flags={"unclosed_think", "empty_answer", "incorrect"}, **P1)
rec(1, 3, resp("Adding 17 and 25 gives 42.", ""), first="empty_answer",
    flags={"empty_answer", "incorrect"}, **P1)
P2 = dict(prompt="Solve for x: 3x + 4 = 19.", gold="5", kind="linear")   # "kind": the fallback
rec(2, 0, resp("Subtract 4: 3x = 15. Divide by 2: x = 6.", "\\boxed{6}"), first="incorrect",
    flags={"incorrect"}, **P2)
rec(2, 1, resp("Subtract 4 from both sides: 3x = 15. 所以 x 等于五。 Divide by 3.", "x = \\boxed{5}"),
    first="mixed_script", flags={"mixed_script"}, **P2)
rec(2, 2, resp("Let me check with code.\n```python\nprint((19 - 4) / 3)\n```\nIt prints 5.0.",
               "\\boxed{5}"), first="code_block", flags={"code_block"}, **P2)
rec(2, 3, resp(("Subtracting four from both sides leaves three x equal to fifteen, and dividing "
                "both sides by three leaves x equal to five, which we can verify by substituting "
                "it back: three times five is fifteen, plus four is nineteen."), "\\boxed{5}"),
    first="long_paragraph", flags={"long_paragraph"}, **P2)
P3 = dict(prompt="Tom has 7 apples. He buys 5 more. How many apples does he have?", gold="12",
          source="word")
rec(3, 0, resp("7 + 5 = 12.\n\n" + LOOP, "\\boxed{12}"), first="repetition", flags={"repetition"},
    **P3)
rec(3, 1, resp(L3_GOOD, "He has \\boxed{12} apples."), n=90, **P3)
rec(3, 2, resp(L3_GOOD.replace(" ", "  ").replace(". ", ".\n"), "He has \\boxed{12} apples."),
    first="duplicate", **P3)
rec(3, 3, resp(L3_GOOD.replace("Monday", "Tuesday"), "He has \\boxed{12} apples."),
    first="near_duplicate", **P3)
P4 = dict(prompt=("Here is a problem: find the number of ordered pairs of positive integers "
                  "whose product is 12."), gold="6", source="arith")
rec(4, 0, resp("The divisors of 12 are 1, 2, 3, 4, 6, 12, so there are 6 pairs.", "\\boxed{6}"),
    first="decontaminated", flags={"decontaminated"}, **P4)
rec(4, 1, "The divisors of 12 are 1, 2, 3", finish="length", first="decontaminated",
    flags={"decontaminated", "truncated", "unclosed_think", "empty_answer", "incorrect"}, **P4)
P5 = dict(prompt="What is 6 times 7?", gold="42", source="arith")
rec(5, 0, resp("Six sevens: 7, 14, 21, 28, 35, 42.", "\\boxed{42}"), n=20, **P5)
rec(5, 1, resp("6 * 7 equals 6 * 5 + 6 * 2, which is 30 + 12.", "The answer is 42."), n=30, **P5)
rec(5, 2, resp("Seven times six is forty-two by the times table.", "\\boxed{42}"),
    first="max_per_prompt", **P5)
rec(5, 3, resp("Compute it in C:\nint a = 6;\nint b = 7;\nreturn a * b;\nIt returns 48.",
               "\\boxed{48}"), first="incorrect", flags={"incorrect", "code_block"}, **P5)
P6 = dict(messages=[{"role": "user", "content": "What is 2 cubed?"}], gold=8)
rec(6, 0, resp("2 * 2 * 2 = 8.", "\\boxed{8.0}"), n=60, **P6)

def record(r):
    o = {"line": r["line"], "sample": r["sample"], "prompt_id": str(r["line"])}
    if "prompt" in r: o["prompt"] = r["prompt"]
    if "messages" in r: o["messages"] = r["messages"]
    if "source" in r: o["source"] = r["source"]
    if "kind" in r: o["kind"] = r["kind"]
    o["text"] = r["text"]
    o["completion_token_ids"] = [4 + i % 300 for i in range(r["n"])]
    o["completion_tokens"] = r["n"]
    o["finish_reason"] = r["finish"]
    o["gold"] = r["gold"]
    if r.get("topk"):
        n = r["n"]
        o["_topk"] = {"k": 2, "ids": [i % 300 for i in range(2 * n)],
                      "logprobs": [-0.5] * (2 * n), "chosen": [-0.25] * n}
    return o
spec = {"samples": 4, "pairs_total": 24, "settings": {"teacher": {"model_type": "qwen2"}},
        "shards": [[record(r) for r in R if r["line"] <= 3], [record(r) for r in R if r["line"] > 3]]}
json.dump(spec, open(tmp + "/spec.json", "w"))
json.dump([{k: (sorted(v) if isinstance(v, set) else v) for k, v in r.items()} for r in R],
          open(tmp + "/expect.json", "w"))
with open(tmp + "/bench.jsonl", "w") as f:
    f.write(json.dumps({"problem": "Find the number of ordered pairs of positive integers whose "
                        "product is 12 and whose sum is 7.", "answer": "2"}) + "\n")
    f.write(json.dumps({"problem": "What is the remainder when 2 to the 100 is divided by 7?",
                        "answer": "2"}) + "\n")
PY
python3 "$ROOT/tests/e2e/lib/make_traces.py" "$TMP/spec.json" "$TMP/traces"
"$BIN" traces ls "$TMP/traces" >/dev/null

"$BIN" curate --traces "$TMP/traces" --out "$TMP/cur" --max-per-prompt 2 \
    --decontaminate "math:$TMP/bench.jsonl" --max-paragraph-chars 200 --shard-records 2 \
    >"$TMP/out.txt" 2>"$TMP/err.txt"
cat "$TMP/out.txt"
"$BIN" traces cat "$TMP/cur" --topk >"$TMP/kept.jsonl"
"$BIN" traces ls "$TMP/cur" >"$TMP/ls.txt"

# Filters off: decontamination, mixed_script, code_block, max_per_prompt.
"$BIN" curate --traces "$TMP/traces" --out "$TMP/cur2" --skip mixed_script,code_block \
    --max-paragraph-chars 200 >/dev/null 2>&1
"$BIN" traces cat "$TMP/cur2" >"$TMP/kept2.jsonl"

python3 - "$TMP" <<'PY'
import json, math, sys
tmp = sys.argv[1]
R = json.load(open(tmp + "/expect.json"))
rep = json.load(open(tmp + "/cur/report.json"))
ORDER = ["decontaminated", "truncated", "unclosed_think", "empty_answer", "incorrect",
         "mixed_script", "code_block", "long_paragraph", "repetition", "duplicate",
         "near_duplicate", "max_per_prompt"]
PER_RECORD = ORDER[:9]
kept = [r for r in R if r["first"] is None]
assert rep["input"] == len(R) == 19, rep["input"]
assert rep["kept"] == len(kept) == 5, rep["kept"]
want = {f: sum(r["first"] == f for r in R) for f in ORDER}
assert list(rep["filters"]) == ORDER, list(rep["filters"])
assert rep["filters"] == want, (rep["filters"], want)
assert sum(want.values()) + len(kept) == len(R)
flagged = {f: sum(f in r["flags"] for r in R) for f in PER_RECORD}
assert rep["flagged"] == flagged, (rep["flagged"], flagged)
assert rep["off"] == [], rep["off"]
src = {}
for r in R:
    s = src.setdefault(r.get("source", r.get("kind", "unknown")), {"input": 0, "kept": 0})
    s["input"] += 1
    s["kept"] += r["first"] is None
for s in src.values():
    s["rate"] = s["kept"] / s["input"]
assert rep["acceptance_by_source"] == src, (rep["acceptance_by_source"], src)
assert src["arith"] == {"input": 10, "kept": 3, "rate": 0.3} and src["linear"]["input"] == 4
toks = sorted(r["n"] for r in kept)            # [20, 30, 40, 60, 90]
rank = lambda q: toks[max(1, math.ceil(q / 100 * len(toks))) - 1]
rt = rep["reasoning_tokens"]
assert (rt["p10"], rt["p50"], rt["p90"], rt["max"]) == (rank(10), rank(50), rank(90), 90), rt
assert (rt["p10"], rt["p50"], rt["p90"]) == (20, 40, 90), rt
assert rep["reasoning_tokens_input"]["max"] == max(r["n"] for r in R)
assert rep["shards"] == 3, rep["shards"]

# The kept records: the right keys, intact, with a verdict; the .topk member carried over.
got = {json.loads(l)["id"]: json.loads(l) for l in open(tmp + "/kept.jsonl")}
want_keys = {"%08d_%02d" % (r["line"], r["sample"]) for r in kept}
assert set(got) == want_keys, (sorted(got), sorted(want_keys))
for r in kept:
    g = got["%08d_%02d" % (r["line"], r["sample"])]
    assert g["text"] == r["text"] and g["gold"] == r["gold"], g
    assert g["verdict"]["correct"] is True and g["verdict"]["extracted"] is not None, g
assert got["00000001_00"]["topk"]["k"] == 2 and len(got["00000001_00"]["topk"]["chosen"]) == 40
assert "topk" not in got["00000005_00"]
assert got["00000006_00"]["verdict"]["extracted"] == "8.0"
man = json.load(open(tmp + "/cur/manifest.json"))
assert man["complete"] and man["records"] == 5 and man["pairs_total"] == 24, man
assert man["settings"]["samples"] == 4 and "curation" in man["settings"], man["settings"]
assert [s["records"] for s in man["shards"]] == [2, 2, 1], man["shards"]

# The printed table carries the same numbers.
out = open(tmp + "/out.txt").read()
assert "19 traces read, 5 kept (26.3%)" in out, out
for f in ORDER:
    line = next(l for l in out.splitlines() if l.startswith(f + " "))
    assert line.split()[1] == str(want[f]), line

# Second run: what the turned-off filters removed moves to the next filter that fails, or kept.
rep2 = json.load(open(tmp + "/cur2/report.json"))
assert rep2["off"] == ["decontaminated", "mixed_script", "code_block", "max_per_prompt"], rep2["off"]
assert rep2["filters"] == {"truncated": 2, "unclosed_think": 1, "empty_answer": 1, "incorrect": 2,
                           "long_paragraph": 1, "repetition": 1, "duplicate": 1,
                           "near_duplicate": 1}, rep2["filters"]
assert rep2["kept"] == 9, rep2["kept"]
keys2 = {json.loads(l)["id"] for l in open(tmp + "/kept2.jsonl")}
assert keys2 == want_keys | {"00000002_01", "00000002_02", "00000004_00", "00000005_02"}, keys2
print("curate crafted set ok: %d read, %d kept" % (rep["input"], rep["kept"]))
PY

# With --tokenizer, reasoning tokens are those before the first </think> id (319 in the tiny
# tokenizer): at index 5 and 9 here, whatever the completion's length.
python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
def rec(line, ids):
    return {"line": line, "sample": 0, "prompt": "p%d" % line, "gold": "1", "finish_reason": "stop",
            "text": "a%d\n</think>\n\n\\boxed{1}" % line, "completion_token_ids": ids}
json.dump({"samples": 1, "pairs_total": 2, "shards": [[rec(1, [5] * 5 + [319] + [6] * 30),
                                                      rec(2, [7] * 9 + [319, 8])]]},
          open(tmp + "/tok.json", "w"))
PY
python3 "$ROOT/tests/e2e/lib/make_traces.py" "$TMP/tok.json" "$TMP/tok"
"$BIN" curate --traces "$TMP/tok" --out "$TMP/tokc" --tokenizer "$ROOT/tests/fixtures/tiny-tokenizer" \
    >/dev/null 2>&1
python3 - "$TMP" <<'PY'
import json, sys
r = json.load(open(sys.argv[1] + "/tokc/report.json"))
assert r["kept"] == 2, r
assert (r["reasoning_tokens"]["p10"], r["reasoning_tokens"]["max"]) == (5, 9), r["reasoning_tokens"]
assert r["reasoning_tokens_measure"].endswith("(tokenizer)"), r["reasoning_tokens_measure"]
PY
