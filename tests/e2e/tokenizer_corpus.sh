#!/usr/bin/env bash
# Token-for-token equality with the HF tokenizer on the real tokenizer.json of DeepSeek-V3/R1,
# Qwen (the Qwen2.5/Qwen3 vocabulary) and Llama 3.1, over the 250 KB corpus in
# tests/fixtures/tokenizer/corpus; decode(encode(x)) as HF gives it (x itself, or its NFC for
# Qwen); short encode cases with and without special tokens; decode of id windows that cut
# UTF-8 sequences, with and without skip_special. References: tests/ref/make_tokenizer_refs.sh.
set -euo pipefail
source "$ROOT/tests/lib/npm_fixture.sh"
for t in deepseek_v3 qwen3 llama3_1; do tokenizer_fixture "$t" >/dev/null; done
node "$ROOT/tests/lib/tokenizer_check.mjs" corpus "$BIN" "$(npm_fixture_dir)" "$ROOT"
