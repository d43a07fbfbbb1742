#!/usr/bin/env bash
# san
# Small synthetic tokenizer.json files for what the real ones do not use: lstrip/rstrip/
# single_word/normalized added tokens, ByteLevel add_prefix_space and use_regex, TemplateProcessing
# with BOS and EOS, a String Split, unk_token with fuse_unk, ignore_merges, NFC; ids, ids with
# special tokens and decodes as the HF tokenizer gives them (tests/ref/make_synthetic_tokenizers.js).
set -euo pipefail
node "$ROOT/tests/lib/tokenizer_check.mjs" synthetic "$BIN" "$ROOT"
