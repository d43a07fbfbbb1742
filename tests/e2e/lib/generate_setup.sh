# Shared setup for the generate_*.sh tests (sourced, not run by tests/run.sh).
#   gen_teacher DIR [with_tokenizer]   a copy of the qwen2-tied fixture (vocab 384), optionally
#                                      with the tiny tokenizer beside it
#   gen_token_prompts FILE N SEED      N JSONL prompts of random token ids, with an "answer" field
#   sorted_records DIR                 every record of a trace directory, one JSON per line, sorted
#   check_shards DIR                   every final shard reads whole with bsdtar, GNU tar and zstd
gen_teacher() {
    mkdir -p "$1"
    cp "$ROOT"/tests/fixtures/qwen2-tied/{config.json,generation_config.json,model.safetensors} "$1"/
    if [ "${2:-}" = with_tokenizer ]; then
        cp "$ROOT"/tests/fixtures/tiny-tokenizer/{tokenizer.json,tokenizer_config.json} "$1"/
    fi
}

gen_token_prompts() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, random, sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "w") as f:
    for i in range(n):
        ids = [r.randrange(4, 384) for _ in range(r.randrange(1, 14))]
        f.write(json.dumps({"prompt": ids, "answer": str(i)}) + "\n")
PY
}

sorted_records() { "$BIN" traces cat "$1" | LC_ALL=C sort; }

check_shards() {
    local s n=0
    for s in "$1"/shard-*.tar.zst; do
        [ -e "$s" ] || continue
        bsdtar -tf "$s" >/dev/null || { echo "bsdtar cannot read $s"; return 1; }
        tar --zstd -tf "$s" >/dev/null || { echo "tar --zstd cannot read $s"; return 1; }
        zstd -q -t "$s" || { echo "zstd -t fails on $s"; return 1; }
        n=$((n + 1))
    done
    echo "$n"
}

# out_has PATTERN COMMAND...: the command succeeds and its stdout matches (no SIGPIPE under
# pipefail, unlike `command | grep -q`).
out_has() {
    local pat=$1 out
    shift
    out=$("$@") || { echo "failed: $*"; return 1; }
    grep -q -- "$pat" <<<"$out" || { echo "no /$pat/ in the output of $*:"; echo "$out"; return 1; }
}
