#!/usr/bin/env bash
# What `train` writes exports: a few steps of `r1-distill train` on the tiny Qwen2 (f32, tied)
# and Llama (bf16, llama3 rope) students of tests/fixtures, then the trained output directories
# go through tests/e2e/lib/export_check.sh (f32 and q4_k_m with its Modelfile: llama.cpp
# loads them, greedy agreement, KL, type mix, tokenizer) and `export --format hf` leaves the
# trainer's state behind and keeps the logits.
set -euo pipefail
source "$ROOT/tests/e2e/lib/export_check.sh"
BASE=$TMP
F=$ROOT/tests/fixtures
common=(--data "$F/tiny-sft/train.jsonl" --steps 6 --lr 3e-3 --batch-size 4 --micro-batch 2
        --seq-len 64 --warmup 2 --quiet)
"$BIN" train --model "$F/tiny-student-qwen2" --out "$BASE/q" --log "$BASE/q.jsonl" "${common[@]}" 2>/dev/null
"$BIN" train --model "$F/tiny-student-llama" --out "$BASE/l" --log "$BASE/l.jsonl" "${common[@]}" 2>/dev/null
[ -f "$BASE/q/trainer_state.json" ]
[ -f "$BASE/l/trainer_state.json" ]
QUANTS="f32 q4_k_m"
TMP=$BASE/a && mkdir -p "$TMP" && export_check "$BASE/q" 2 1 1
TMP=$BASE/b && mkdir -p "$TMP" && export_check "$BASE/l" 2 0 0

"$BIN" export --model "$BASE/l" --out "$BASE/hf" --format hf 2>/dev/null
[ ! -e "$BASE/hf/trainer_state.json" ] && ! ls -d "$BASE/hf"/checkpoint-* 2>/dev/null ||
    fail "--format hf copied the trainer's state"
"$BIN" logits --model "$BASE/l" --tokens 316,20,21,30 --out "$BASE/l.f32" >/dev/null
"$BIN" logits --model "$BASE/hf" --tokens 316,20,21,30 --out "$BASE/hf.f32" >/dev/null
cmp "$BASE/l.f32" "$BASE/hf.f32" || fail "the bf16 HF export changed the logits"
