#!/usr/bin/env bash
# eval end to end on the qwen2-tied fixture with the tiny tokenizer: a small MATH-layout file is
# sampled once, its gold answers are then set from those samples (some right, some never
# given), and the same samples are judged again. summary.json must equal a hand count made by
# an independent script from samples.jsonl (pass@1 and its standard error, cons@K with its tie
# rule, unbiased pass@k from exact binomials, mean length, truncated share); the samples must
# not depend on --batch; the R1 chat format prefills <think> and leaves cut-off samples without
# an answer; tasks:SPLIT:N:SEED asks the built-in tasks with their answers as gold.
set -euo pipefail
export OMP_NUM_THREADS=1  # a tiny model: threads only add synchronisation
M="$TMP/model"
mkdir -p "$M"
cp "$ROOT"/tests/fixtures/qwen2-tied/{config.json,generation_config.json,model.safetensors} "$M"/
cp "$ROOT"/tests/fixtures/tiny-tokenizer/{tokenizer.json,tokenizer_config.json} "$M"/
python3 - "$TMP" <<'PY'
import json, sys
with open(sys.argv[1] + "/b1.jsonl", "w") as f:
    for i in range(9):
        f.write(json.dumps({"problem": "Compute %d + %d." % (i, 2 * i + 1), "answer": "0",
                            "unique_id": "q%d" % i}) + "\n")
PY
COMMON=(--model "$M" --samples 4 --max-new-tokens 24 --temperature 1 --top-p 1 --seed 3
        --chat-format none)
"$BIN" eval "${COMMON[@]}" --bench "$TMP/b1.jsonl" --out "$TMP/o1" >/dev/null 2>&1

# Gold answers from the first run: the most common answer, the last answer given, or one
# that never appears, by question.
python3 - "$TMP" <<'PY'
import collections, json, sys
tmp = sys.argv[1]
by_q = collections.defaultdict(list)
for l in open(tmp + "/o1/samples.jsonl"):
    r = json.loads(l)
    by_q[r["question_id"]].append(r["extracted"])
rows = [json.loads(l) for l in open(tmp + "/b1.jsonl")]
with open(tmp + "/b2.jsonl", "w") as f:
    for i, row in enumerate(rows):
        answers = [a for a in by_q[row["unique_id"]] if a is not None]
        if i % 3 == 2 or not answers:
            row["answer"] = "999999"
        elif i % 3 == 0:
            row["answer"] = collections.Counter(answers).most_common(1)[0][0]
        else:
            row["answer"] = answers[-1]
        f.write(json.dumps(row) + "\n")
PY
"$BIN" eval "${COMMON[@]}" --bench "$TMP/b2.jsonl" --out "$TMP/o2" --batch 3 >"$TMP/o2.txt" 2>"$TMP/o2.err"
grep -q "eval:.*36/36 samples" "$TMP/o2.err" || { echo "no progress line"; cat "$TMP/o2.err"; exit 1; }

python3 - "$TMP" <<'PY'
import json, math, sys
tmp = sys.argv[1]
s1 = [json.loads(l) for l in open(tmp + "/o1/samples.jsonl")]
s2 = [json.loads(l) for l in open(tmp + "/o2/samples.jsonl")]
gold = {json.loads(l)["unique_id"]: json.loads(l)["answer"] for l in open(tmp + "/b2.jsonl")}
K = 4
assert len(s2) == 9 * K
# The samples do not depend on the golds or on --batch.
for a, b in zip(s1, s2):
    assert (a["question_id"], a["sample"], a["response"], a["tokens"]) == \
           (b["question_id"], b["sample"], b["response"], b["tokens"]), (a, b)
# Hand count. The extracted answers of this model are plain numbers, so equality is string
# equality here; every judgement must agree with it.
qs = {}
for r in s2:
    assert r["gold"] == gold[r["question_id"]]
    hand = r["extracted"] is not None and r["extracted"] == r["gold"]
    assert r["correct"] == hand, r
    assert r["finish_reason"] == ("length" if r["tokens"] == 24 and r["stop_reason"] ==
                                  "max_new_tokens" else "stop"), r
    qs.setdefault(r["question_id"], []).append(r)
Q = len(qs)
c = [sum(r["correct"] for r in rs) for rs in qs.values()]
p = [x / K for x in c]
mean = sum(p) / Q
sd = math.sqrt(sum((x - mean) ** 2 for x in p) / (Q - 1))
def pass_k(n, c, k):
    return 1.0 if n - c < k else 1 - math.comb(n - c, k) / math.comb(n, k)
def cons(rs):
    groups = []                                   # [answer, votes, first index]
    for i, r in enumerate(rs):
        if r["extracted"] is None:
            continue
        g = next((g for g in groups if g[0] == r["extracted"]), None)
        if g: g[1] += 1
        else: groups.append([r["extracted"], 1, i])
    if not groups:
        return 0
    best = max(groups, key=lambda g: (g[1], -g[2]))
    return int(best[0] == rs[0]["gold"])
hand = {
    "questions": Q, "samples": K, "pass@1": mean, "pass@1_stderr": sd / math.sqrt(Q),
    "cons@k": sum(cons(rs) for rs in qs.values()) / Q,
    "pass@k": {str(k): sum(pass_k(K, x, k) for x in c) / Q for k in (1, 2, 4)},
    "mean_response_tokens": sum(r["tokens"] for r in s2) / len(s2),
    "truncated_share": sum(r["finish_reason"] == "length" for r in s2) / len(s2),
}
summ = json.load(open(tmp + "/o2/summary.json"))
for k, v in hand.items():
    if isinstance(v, dict):
        assert summ[k].keys() == v.keys(), (k, summ[k], v)
        for kk in v:
            assert abs(summ[k][kk] - v[kk]) < 1e-12, (k, kk, summ[k][kk], v[kk])
    else:
        assert abs(summ[k] - v) < 1e-12, (k, summ[k], v)
for k in ("model", "bench", "seconds"):
    assert k in summ, k
assert summ["bench"] == "b2.jsonl" and summ["model"] == "model" and summ["layout"] == "math"
assert summ["settings"]["chat_format"] == "none" and not summ["settings"]["think_prefilled"]
# The numbers are not degenerate: some questions right, some wrong, cons@K agreeing somewhere.
assert 0 < mean < 1 and 0 < hand["cons@k"] < 1, hand
# summary.md: one table row with the same figures as percentages.
md = open(tmp + "/o2/summary.md").read()
assert md == open(tmp + "/o2.txt").read().split("results:")[0], md
row = md.strip().splitlines()[2]
assert "%.1f ± %.1f" % (100 * mean, 100 * hand["pass@1_stderr"]) in row, row
assert " %.1f " % (100 * hand["cons@k"]) in row, row
print("eval hand count ok: pass@1 %.4f +- %.4f, cons@4 %.4f, pass@4 %.4f" %
      (mean, hand["pass@1_stderr"], hand["cons@k"], hand["pass@k"]["4"]))
PY

# The R1 chat format (detected from the tokenizer): "<think>\n" prefilled, so a sample with no
# </think> has no answer; the built-in tasks give their answers as gold.
"$BIN" eval --model "$M" --bench tasks:test:4:2 --samples 3 --max-new-tokens 40 --out "$TMP/o3" \
    >/dev/null 2>&1
"$BIN" tasks --split test --n 4 --seed 2 --out "$TMP/tasks.jsonl"
python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
summ = json.load(open(tmp + "/o3/summary.json"))
assert summ["settings"]["chat_format"] == "r1" and summ["settings"]["think_prefilled"], summ
assert summ["settings"]["temperature"] == 0.6 and summ["settings"]["top_p"] == 0.95, summ
assert summ["settings"]["instruction"].startswith("Please reason step by step"), summ
assert summ["bench"] == "tasks:test:4:2" and summ["questions"] == 4 and summ["layout"] == "tasks"
tasks = {json.loads(l)["id"]: json.loads(l)["answer"] for l in open(tmp + "/tasks.jsonl")}
rows = [json.loads(l) for l in open(tmp + "/o3/samples.jsonl")]
assert {r["question_id"] for r in rows} == set(tasks) and len(rows) == 12
closed = 0
for r in rows:
    assert r["gold"] == tasks[r["question_id"]], r
    if "</think>" not in r["response"]:
        assert r["extracted"] is None and not r["correct"], r
    else:
        closed += 1
no_answer = sum(r["extracted"] is None for r in rows) / len(rows)
assert abs(summ["no_answer_share"] - no_answer) < 1e-12
print("r1 format ok: %d of %d samples closed </think>" % (closed, len(rows)))
PY
