#!/usr/bin/env bash
# make demo-teacher: reproduces the demo's committed models in recipes/tiny/.
#
#   tokenizer/     a 640-token byte-level BPE (Llama 3 pre-tokenizer; every integer up to 199 is
#                  one token) with the R1 special tokens and chat template, merges learned from
#                  the data below
#   teacher/       a 0.95M-parameter Llama-shaped reasoning model, trained by `r1-distill train`
#                  on programmatic step-by-step solutions of the built-in tasks (train split;
#                  the linear-equation and word-problem families, which a model this small learns
#                  well in minutes): "<think>\n{steps}\n</think>\n\nThe answer is \boxed{n}."
#   student-base/  a 0.58M-parameter Llama-shaped base model, trained only on the arithmetic
#                  facts the solutions use ("12 + 7 = 19.") and arithmetic prose that reuses
#                  numbers ("Take 6 and 9: 6 * 9 = 54.") -- it knows the facts but has never
#                  seen a question, a chat turn or a chain of thought, like a pretrained base
#                  before distillation
#
# Everything runs through r1-distill except the tokenizer's merge learning
# (tests/ref/make_tiny_tokenizer.py, pure Python). Deterministic for a given machine; about an
# hour on 2 CPU cores, a few minutes on 16. Environment: BIN (the binary), WORK (scratch,
# default build/demo-teacher), OUT (default recipes/tiny), STAGES (default "tokenizer teacher base":
# which models to remake), KINDS (task families, default linear,word), TEACHER_N (SFT examples),
# EPOCHS_TEACHER, EPOCHS_BASE, FACT_COPIES (shuffled copies of the facts in the base corpus), PROSE_N (paragraphs of arithmetic prose in it), MICRO (rows per forward pass: more rows, more parallel work per GEMM).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-./r1-distill}
WORK=${WORK:-build/demo-teacher}
OUT=${OUT:-recipes/tiny}
mkdir -p "$WORK"

STAGES=${STAGES:-tokenizer teacher base}
KINDS=${KINDS:-linear,word}
has() { case " $STAGES " in *" $1 "*) return 0 ;; esac; return 1; }

echo "== data"
# The demo's prompts carry no instruction: the questions alone, answered in the R1 format.
"$BIN" tasks --split train --n "${TEACHER_N:-8000}" --seed 1 --kinds "$KINDS" --format messages \
    --out "$WORK/teacher-sft.jsonl"
"$BIN" tasks --format facts --seed 1 --out "$WORK/facts.jsonl"
# The base model's corpus: many independently shuffled copies of the facts, so that it learns the
# facts themselves (one fixed text seen for many epochs teaches the order of its paragraphs
# instead), and arithmetic prose that names numbers before using them and chains results, so that
# it learns to copy from the context as a pretrained model can. No question, chat turn or chain
# of thought of any task is in it.
"$BIN" tasks --format facts --seed 1 --copies "${FACT_COPIES:-80}" --out "$WORK/facts-copies.jsonl"
"$BIN" tasks --format prose --seed 1 --n "${PROSE_N:-30000}" --out "$WORK/prose.jsonl"
cat "$WORK/facts-copies.jsonl" "$WORK/prose.jsonl" > "$WORK/base-corpus.jsonl"

if has tokenizer; then
    echo "== tokenizer"
    # merges from solutions of every family and the facts (fixed, whatever KINDS says)
    "$BIN" tasks --split train --n 6000 --seed 1 --format messages --out "$WORK/all-sft.jsonl"
    python3 - "$WORK" <<'EOF'
import json, sys
w = sys.argv[1]
with open(f"{w}/text.txt", "w") as o:
    for line in open(f"{w}/all-sft.jsonl"):
        for m in json.loads(line)["messages"]:
            o.write(m["content"] + "\n")
    for line in open(f"{w}/facts.jsonl"):
        o.write(json.loads(line)["text"] + "\n")
EOF
    rm -rf "$OUT/tokenizer"
    python3 tests/ref/make_tiny_tokenizer.py "$OUT/tokenizer" 640 --text "$WORK/text.txt" \
        --regex llama3 --numbers 199
fi

if has teacher; then
    echo "== teacher"
    rm -rf "$WORK/teacher-init" "$WORK/teacher"
    "$BIN" init --config "$OUT/teacher-config.json" --tokenizer "$OUT/tokenizer" \
        --out "$WORK/teacher-init" --seed 1
    "$BIN" train --model "$WORK/teacher-init" --data "$WORK/teacher-sft.jsonl" --out "$WORK/teacher" \
        --epochs "${EPOCHS_TEACHER:-10}" --lr 3e-3 --schedule cosine --min-lr 3e-4 --warmup 20 \
        --batch-size 32 --micro-batch "${MICRO:-8}" --seq-len 512 --grad-clip 1.0 \
        --weight-decay 0.01 --save-every 0 --seed 1 --log "$WORK/teacher-train.jsonl" --quiet
    rm -rf "$OUT/teacher"
    "$BIN" export --model "$WORK/teacher" --format hf --out "$OUT/teacher"
fi

if has base; then
    echo "== student base"
    rm -rf "$WORK/student-init" "$WORK/student-base"
    "$BIN" init --config "$OUT/student-config.json" --tokenizer "$OUT/tokenizer" \
        --out "$WORK/student-init" --seed 2
    "$BIN" train --model "$WORK/student-init" --data "$WORK/base-corpus.jsonl" --out "$WORK/student-base" \
        --epochs "${EPOCHS_BASE:-1}" --lr 3e-3 --schedule cosine --min-lr 3e-4 --warmup 10 \
        --batch-size 16 --micro-batch "${MICRO:-8}" --seq-len 256 --grad-clip 1.0 --save-every 0 \
        --seed 2 --log "$WORK/student-base-train.jsonl" --quiet
    rm -rf "$OUT/student-base"
    "$BIN" export --model "$WORK/student-base" --format hf --out "$OUT/student-base"
fi

has teacher || exit 0
echo "== teacher accuracy on the test split (greedy)"
"$BIN" eval --model "$OUT/teacher" --bench "tasks:test:300:1:$KINDS" --samples 1 --temperature 0 \
    --max-new-tokens 160 --instruction none --out "$WORK/teacher-eval"
