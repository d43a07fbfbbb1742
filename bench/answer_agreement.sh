#!/usr/bin/env bash
# Agreement of the answer verifier (r1-distill verify) with public labelled data. The data is
# not ours and is never committed; pass its path.
#
#   bench/answer_agreement.sh FILE [--response-field F] [--gold-field G] [--label-field L]
#
# Without --label-field every record is a known-correct pair, e.g. a MATH reference solution and
# its labelled answer (MATH-500 test.jsonl: --response-field solution --gold-field answer, the
# 500 problems of openai/prm800k prm800k/math_splits/test.jsonl, also HuggingFaceH4/MATH-500);
# agreement is the share judged correct. With --label-field the field holds the expected
# verdict (true/false, or a list whose first item is one, as in RealCritic's previous_score);
# agreement is the share where verify's verdict equals the label, and the two kinds of
# disagreement are counted apart. Every disagreement is listed: line, extracted, gold, label.
# Needs: the built binary (BIN, default ./r1-distill) and python3 (standard library only).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/r1-distill}
[ $# -ge 1 ] || { sed -n '2,16p' "$0"; exit 2; }
FILE=$1; shift
RESP=response GOLD=gold LABEL=
while [ $# -gt 0 ]; do
    case $1 in
    --response-field) RESP=$2; shift 2 ;;
    --gold-field) GOLD=$2; shift 2 ;;
    --label-field) LABEL=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
start=$(date +%s.%N)
"$BIN" verify --in "$FILE" --response-field "$RESP" --gold-field "$GOLD" > "$OUT"
end=$(date +%s.%N)
python3 - "$FILE" "$OUT" "$LABEL" "$start" "$end" <<'PY'
import json, sys
src_path, out_path, label_field, t0, t1 = sys.argv[1:6]
verdicts = [json.loads(l) for l in open(out_path, encoding="utf-8")]
lines = open(src_path, encoding="utf-8").read().split("\n")
def label(v):
    if not label_field:
        return True
    x = json.loads(lines[v["line"] - 1]).get(label_field)
    if isinstance(x, list):
        x = x[0] if x else None
    if not isinstance(x, bool):
        sys.exit(f"{src_path}:{v['line']}: {label_field} is not a boolean")
    return x
agree, fp, fn, dis = 0, 0, 0, []
for v in verdicts:
    want = label(v)
    if v["correct"] == want:
        agree += 1
    else:
        fp += v["correct"] and not want
        fn += want and not v["correct"]
        dis.append(v | {"label": want})
n = len(verdicts)
for d in dis:
    print(f"  line {d['line']}: extracted {d['extracted']!r} gold {d['gold']!r} label {d['label']}")
print(f"{src_path}: {n} records, agreement {agree}/{n} = {100.0 * agree / n:.2f}%"
      + (f" (verify true where the label is false: {fp}; verify false where it is true: {fn})"
         if label_field else "")
      + f"; verify took {float(t1) - float(t0):.3f} s")
PY
