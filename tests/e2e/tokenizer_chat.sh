#!/usr/bin/env bash
# --chat renders conversations exactly as the chat templates of DeepSeek-R1, R1-Distill-Qwen,
# Qwen3, Qwen2.5-Instruct, Llama 3 and Llama 3.1 render them (@huggingface/jinja), detected from
# the template and forced with --format, and tokenizes them as HF does.
set -euo pipefail
source "$ROOT/tests/lib/npm_fixture.sh"
for t in deepseek_v3 qwen3 llama3_1; do tokenizer_fixture "$t" >/dev/null; done
node "$ROOT/tests/lib/tokenizer_check.mjs" chat "$BIN" "$(npm_fixture_dir)" "$ROOT"

# DeepSeek-V3's own template (the package's) is recognised as the R1 family.
dir=$(tokenizer_fixture deepseek_v3)
out=$(echo '[{"role":"user","content":"hi"}]' | "$BIN" tokenize --tokenizer "$dir" --chat --render)
[ "$out" = $'<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>' ] || { echo "V3 template: got [$out]"; exit 1; }
# A format whose marker tokens the vocabulary lacks is refused for ids (rendering still works).
qwen=$(tokenizer_fixture qwen3)
if echo '[{"role":"user","content":"hi"}]' | "$BIN" tokenize --tokenizer "$qwen" --chat --format r1 2>"$TMP/err"; then
    echo "--format r1 on Qwen's vocabulary should fail"; exit 1
fi
grep -q "needs the token <｜User｜>" "$TMP/err"
echo '[{"role":"user","content":"hi"}]' | "$BIN" tokenize --tokenizer "$qwen" --chat --format r1 --render | grep -q '<｜User｜>hi'
