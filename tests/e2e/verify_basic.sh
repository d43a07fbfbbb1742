#!/usr/bin/env bash
# r1-distill verify: one JSON verdict per record, in order, with the summary on stderr.
# san
set -euo pipefail
cd "$TMP"

# Records cover: reasoning before </think> ignored, equal forms, near misses, a missing answer
# (unclosed <think>), a numeric gold, multiple choice, a blank line (skipped, but counted in line
# numbers) and a CRLF line ending.
cat > in.jsonl <<'JSONL'
{"response": "<think>maybe \\boxed{3}</think>So the answer is $\\boxed{\\dfrac{1}{2}}$.", "gold": "\\frac12"}
{"response": "We get \\boxed{\\frac{1}{3}}", "gold": "\\frac{1}{2}"}
{"response": "<think>still thinking \\boxed{4}", "gold": "4"}

{"response": "so the pair is \\boxed{(2,1)}", "gold": "(1, 2)"}
{"response": "Total: 1,000 dollars\n#### 1,000", "gold": 1000}
{"response": "The answer is (B).", "gold": "B"}
{"response": "Thus \\boxed{2.5}", "gold": "2"}
{"response": "x = \\boxed{\\left[ 1, \\infty \\right)}", "gold": "[1,\\infty)"}
JSONL
printf '%s\r\n' '{"response": "Answer: yes", "gold": "\\text{Yes}"}' >> in.jsonl

"$BIN" verify --in in.jsonl > out.jsonl 2> err.txt

cat > want.jsonl <<'JSONL'
{"line":1,"extracted":"\\dfrac{1}{2}","gold":"\\frac12","correct":true}
{"line":2,"extracted":"\\frac{1}{3}","gold":"\\frac{1}{2}","correct":false}
{"line":3,"extracted":null,"gold":"4","correct":false}
{"line":5,"extracted":"(2,1)","gold":"(1, 2)","correct":false}
{"line":6,"extracted":"1,000","gold":"1000","correct":true}
{"line":7,"extracted":"B","gold":"B","correct":true}
{"line":8,"extracted":"2.5","gold":"2","correct":false}
{"line":9,"extracted":"\\left[ 1, \\infty \\right)","gold":"[1,\\infty)","correct":true}
{"line":10,"extracted":"yes","gold":"\\text{Yes}","correct":true}
JSONL
diff want.jsonl out.jsonl
grep -qx 'verify: 9 records: 5 correct (55.56%), 3 wrong, 1 without an answer' err.txt \
    || { echo "unexpected summary:"; cat err.txt; exit 1; }

# Other field names, and standard input.
cat > named.jsonl <<'JSONL'
{"solution": "so $x=\\boxed{3\\sqrt{13}}$", "answer": "\\sqrt{117}", "id": 1}
{"solution": "so $x=\\boxed{3\\sqrt{12}}$", "answer": "\\sqrt{117}", "id": 2}
JSONL
"$BIN" verify --in - --response-field solution --gold-field answer < named.jsonl > out2.jsonl 2> err2.txt
grep -c '"correct":true' out2.jsonl | grep -qx 1
grep -c '"correct":false' out2.jsonl | grep -qx 1
grep -q '^verify: 2 records: 1 correct (50.00%)' err2.txt

# --help names every option with its default.
"$BIN" verify --help > help.txt
grep -q -- '--response-field NAME' help.txt
grep -q 'default: response' help.txt
grep -q 'default: gold' help.txt

# verify is listed by the top-level help.
"$BIN" --help | grep -q '^  verify '
echo "verify_basic: ok"
