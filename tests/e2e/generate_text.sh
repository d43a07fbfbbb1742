#!/usr/bin/env bash
# Text prompts through the tokenizer and the R1 chat format: records carry the prompt as given,
# the id and gold fields, prompt ids that end with the "<think>\n" generation prompt, text split
# into reasoning and answer; --instruction equals writing it into the prompt after a newline; a
# stop string and an extra eos id stop a (seeded) sample exactly where it first produces them.
set -euo pipefail
. "$ROOT/tests/e2e/lib/generate_setup.sh"
export OMP_NUM_THREADS=2
gen_teacher "$TMP/teacher" with_tokenizer
INSTR="Please reason step by step, and put your final answer within \\boxed{}."
python3 - "$TMP" "$INSTR" <<'PY'
import json, sys
tmp, instr = sys.argv[1:3]
problems = [("q1", "What is 7 times 8?", "56"), ("q2", "Caf\u00e9 \u2014 na\u00efve? 3\u00b2=9", "9"),
            ("q3", "Count: one, two, three,", "four"), ("q4", "Name a prime number.", "2")]
with open(tmp + "/text.jsonl", "w") as f, open(tmp + "/inline.jsonl", "w") as g:
    for i, p, a in problems:
        f.write(json.dumps({"uid": i, "problem": p, "answer": a}, ensure_ascii=False) + "\n")
        g.write(json.dumps({"uid": i, "problem": p + "\n" + instr, "answer": a},
                           ensure_ascii=False) + "\n")
with open(tmp + "/chat.jsonl", "w") as f:
    f.write(json.dumps({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nsay hi\n</think>\n\nHello!"},
        {"role": "user", "content": "Name a prime number."}]}) + "\n")
PY
COMMON=(--teacher "$TMP/teacher" --temperature 1 --top-p 1 --seed 3 --max-new-tokens 48 --batch 3)
"$BIN" generate "${COMMON[@]}" --prompts "$TMP/text.jsonl" --prompt-field problem --id-field uid \
    --gold-field answer --instruction "$INSTR" --out "$TMP/a" 2>/dev/null
"$BIN" generate "${COMMON[@]}" --prompts "$TMP/inline.jsonl" --prompt-field problem --id-field uid \
    --gold-field answer --out "$TMP/b" 2>/dev/null
"$BIN" generate "${COMMON[@]}" --prompts "$TMP/chat.jsonl" --prompt-field messages --out "$TMP/c" 2>/dev/null
"$BIN" traces cat "$TMP/a" >"$TMP/a.jsonl"
"$BIN" traces cat "$TMP/b" >"$TMP/b.jsonl"
"$BIN" traces cat "$TMP/c" >"$TMP/c.jsonl"

# Pick a stop string and an eos id from the greedy output of q1, and re-run with them.
read -r STOP EOS_ID < <(python3 - "$TMP/a.jsonl" <<'PY'
import json, sys
r = next(json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["prompt_id"] == "q1")
t, ids = r["text"], r["completion_token_ids"]
assert len(ids) > 12, "q1's greedy completion is too short to cut"
# A stop string: printable ASCII from past the first third of the text (a random model's text
# may hold broken UTF-8, which decodes to U+FFFD; ASCII matches bytes and text alike).
ok = lambda w: all(33 <= ord(ch) < 127 for ch in w)
stop = next(t[i:i + n] for n in (3, 2, 1) for i in range(len(t) // 3, len(t) - n + 1)
            if ok(t[i:i + n]))
print(json.dumps(stop), ids[8])
PY
)
STOP=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]))' "$STOP")
"$BIN" generate "${COMMON[@]}" --prompts "$TMP/text.jsonl" --prompt-field problem --id-field uid \
    --gold-field answer --instruction "$INSTR" --stop "$STOP" --out "$TMP/s" 2>/dev/null
"$BIN" generate "${COMMON[@]}" --prompts "$TMP/text.jsonl" --prompt-field problem --id-field uid \
    --gold-field answer --instruction "$INSTR" --eos "$EOS_ID" --out "$TMP/e" 2>/dev/null
"$BIN" traces cat "$TMP/s" >"$TMP/s.jsonl"
"$BIN" traces cat "$TMP/e" >"$TMP/e.jsonl"

python3 - "$TMP" "$INSTR" "$STOP" "$EOS_ID" <<'PY'
import json, sys
tmp, instr, stop, eos_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
load = lambda n: {json.loads(l)["prompt_id"]: json.loads(l) for l in open(f"{tmp}/{n}.jsonl")}
a, b, c, s, e = load("a"), load("b"), load("c"), load("s"), load("e")
BOS, USER, ASSISTANT, THINK, END_THINK = 316, 314, 315, 318, 319
problems = {json.loads(l)["uid"]: json.loads(l) for l in open(f"{tmp}/text.jsonl")}
WS = " \t\r\n"
def split_think(t):  # the rule of trace_split_think (datasets/traces.h)
    s = t.lstrip(WS)
    if s.startswith("<think>"):
        s = s[7:]
    if "</think>" in s:
        r, a = s.split("</think>", 1)
        return r.strip(WS), a.strip(WS), True
    return s.strip(WS), "", False
assert split_think("\n<think>\nx\n</think>\n\ny ") == ("x", "y", True)
assert split_think("a <think> b") == ("a <think> b", "", False)
assert set(a) == set(problems), a.keys()
for pid, r in a.items():
    p = problems[pid]
    assert r["prompt"] == p["problem"] and r["gold"] == p["answer"], r  # as given, no instruction
    ids = r["prompt_token_ids"]
    assert ids[0] == BOS and USER in ids, ids
    i = ids.index(ASSISTANT)
    assert ids[i + 1] == THINK and i + 2 < len(ids), ids      # "<think>" then "\n"
    assert (r["reasoning"], r["answer"], r["think_closed"]) == split_think(r["text"]), r
    assert r["finish_reason"] in ("stop", "length") and r["teacher"]["name"] == "teacher"
    # --instruction is the same as writing it after a newline
    assert b[pid]["prompt_token_ids"] == ids, pid
    assert b[pid]["completion_token_ids"] == r["completion_token_ids"], pid
# The conversation: the system text first, two user turns, the earlier reasoning dropped.
cr = next(iter(c.values()))
assert cr["messages"][3]["content"] == "Name a prime number." and "prompt" not in cr
assert cr["prompt_token_ids"].count(USER) == 2 and cr["prompt_token_ids"].count(THINK) == 1
# Stop string: the sample ends at the first token whose text completes it.
for pid, r in s.items():
    full = a[pid]
    if stop in full["text"]:
        assert r["finish_reason"] == "stop" and r["stop_reason"] == "stop_string", r
        assert r["stop_string"] == stop
        assert full["completion_token_ids"][:len(r["completion_token_ids"])] == r["completion_token_ids"]
        assert r["text"].find(stop) == full["text"].index(stop), (r["text"], full["text"])
    else:
        assert r["completion_token_ids"] == full["completion_token_ids"], pid
# Extra eos id: kept as the last token, nothing after its first occurrence.
for pid, r in e.items():
    full = a[pid]["completion_token_ids"]
    if eos_id in full:
        k = full.index(eos_id) + 1
        assert r["completion_token_ids"] == full[:k] and r["stop_reason"] == "eos", pid
    else:
        assert r["completion_token_ids"] == full, pid
print("text path ok; stop string %r, eos id %d" % (stop, eos_id))
PY
