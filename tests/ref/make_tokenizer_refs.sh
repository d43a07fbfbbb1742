#!/usr/bin/env bash
# Regenerates the tokenizer reference fixtures (tests/fixtures/tokenizer/ref/, chat/, synthetic/) with the
# HF tokenizer (npm `tokenizers`, the Rust library) and @huggingface/jinja. Run from anywhere:
#   bash tests/ref/make_tokenizer_refs.sh
# Re-run it after changing the corpus (tests/ref/make_tokenizer_corpus.py) or the chat cases.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/npm_fixture.sh"
for t in deepseek_v3 qwen3 llama3_1; do tokenizer_fixture "$t" >/dev/null; done
npm_fixture_install "tokenizers@$R1_HF_TOKENIZERS_VERSION" "@huggingface/jinja@$R1_JINJA_VERSION"
node "$ROOT/tests/ref/make_tokenizer_refs.js" "$(npm_fixture_dir)" "$ROOT"
node "$ROOT/tests/ref/make_chat_refs.mjs" "$(npm_fixture_dir)" "$ROOT"
node "$ROOT/tests/ref/make_synthetic_tokenizers.js" "$(npm_fixture_dir)" "$ROOT"
