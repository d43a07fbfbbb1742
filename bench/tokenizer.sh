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

best() { sort -g | sed -n "${1}p"; } # best 1: smallest; best '$': largest
ours() { # NAME -> "load_ms load_cpu_ms mb_s"
    local dir="$NM/@lenml/tokenizer-$1/models" loads=() cpus=() rates=() s
    for _ in 1 2 3 4 5; do
        s=$("$BIN" tokenize --tokenizer "$dir" --stats </dev/null 2>&1 >/dev/null)
        loads+=("$(sed -n 's/.* in \([0-9.]*\) ms (.*/\1/p' <<<"$s")")
        cpus+=("$(sed -n 's/.* ms (\([0-9.]*\) ms CPU).*/\1/p' <<<"$s")")
    done
    for _ in 1 2 3; do
        s=$("$BIN" tokenize --tokenizer "$dir" --jsonl --stats <"$TMPD/work.jsonl" 2>&1 >/dev/null)
        rates+=("$(sed -n 's/.* ms, \([0-9.]*\) MB\/s (.*/\1/p' <<<"$s")")
    done
    echo "$(printf '%s\n' "${loads[@]}" | best 1) $(printf '%s\n' "${cpus[@]}" | best 1) $(printf '%s\n' "${rates[@]}" | best '$')"
}

printf '%-12s %14s %15s %14s %7s   %s\n' tokenizer "r1-distill" "transformers.js" "HF Rust (node)" ratio "load ms: r1-distill (CPU) / transformers.js / HF Rust"
for t in deepseek_v3 qwen3 llama3_1; do
    read -r load loadcpu mbs < <(ours "$t")
    read -r pload pmbs rload rmbs < <(node "$ROOT/bench/tokenizer_peer.mjs" "$NM" "$t" "$TMPD/work.jsonl")
    ratio=$(awk -v a="$mbs" -v b="$pmbs" 'BEGIN{printf "%.1fx", a / b}')
    printf '%-12s %9.2f MB/s %10.2f MB/s %9.2f MB/s %7s   %.0f (%.0f) / %.0f / %.0f\n' "$t" "$mbs" "$pmbs" "$rmbs" "$ratio" "$load" "$loadcpu" "$pload" "$rload"
done
echo "(encode MB/s over $(($(wc -c <"$TMPD/work.jsonl") / 1024)) KB of JSON-quoted corpus text, one thread; ratio = r1-distill / transformers.js; $(nproc) cores, $(uptime | sed 's/.*load average/load average/'))"
