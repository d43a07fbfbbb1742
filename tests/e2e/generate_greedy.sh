#!/usr/bin/env bash
# Greedy generation equals transformers' greedy generate, token for token: for every reference
# in tests/fixtures/generate/ (made by tests/ref/make_generate_fixtures.py) the chat-formatted
# prompts give the same prompt ids as apply_chat_template, the same completion ids (up to the
# first near tie the reference marks), the same finish, and the same decoded text; token-id
# prompts give the same completions. Covers Qwen2, Llama and DeepSeek-V3 (bf16 and FP8).
set -euo pipefail
refs=("$ROOT"/tests/fixtures/generate/*.json)
if [ ! -e "${refs[0]}" ]; then
    echo "no references in tests/fixtures/generate/: run"
    echo "  python3 tests/ref/make_generate_fixtures.py tests/fixtures/generate"
    exit 1
fi
export OMP_NUM_THREADS=2
for ref in "${refs[@]}"; do
    name=$(basename "$ref" .json)
    m=$TMP/$name
    mkdir -p "$m"
    python3 - "$ref" "$ROOT" "$m" "$TMP/$name" <<'PY'
import json, os, shutil, sys
ref, root, model, base = sys.argv[1:5]
r = json.load(open(ref))
src = os.path.join(root, r["model_dir"])
for f in os.listdir(src):
    if f.endswith(".safetensors") or f in ("config.json", "generation_config.json",
                                           "model.safetensors.index.json"):
        shutil.copy(os.path.join(src, f), model)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(root, r["tokenizer_dir"], f), model)
with open(base + ".chat.jsonl", "w") as f:
    for c in r["chat_cases"]:
        f.write(json.dumps({"prompt": c["messages"]}, ensure_ascii=False) + "\n")
with open(base + ".tok.jsonl", "w") as f:
    for c in r["token_cases"]:
        f.write(json.dumps({"prompt": c["prompt_ids"]}) + "\n")
PY
    n_max=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_new_tokens"])' "$ref")
    for kind in chat tok; do
        [ -s "$TMP/$name.$kind.jsonl" ] || continue
        "$BIN" generate --teacher "$m" --prompts "$TMP/$name.$kind.jsonl" --out "$TMP/$name.$kind" \
            --temperature 0 --max-new-tokens "$n_max" --batch 3 2>"$TMP/$name.$kind.err" ||
            { cat "$TMP/$name.$kind.err"; exit 1; }
        "$BIN" traces cat "$TMP/$name.$kind" >"$TMP/$name.$kind.out"
    done
    python3 - "$ref" "$TMP/$name" <<'PY'
import json, os, sys
ref, base = sys.argv[1:3]
r = json.load(open(ref))
eos = set(r["eos_ids"])
bad = 0
for kind, cases in (("chat", r["chat_cases"]), ("tok", r["token_cases"])):
    if not cases:
        continue
    got = {}
    for l in open(base + "." + kind + ".out"):
        rec = json.loads(l)
        got[rec["line"]] = rec
    for i, c in enumerate(cases):
        rec = got[i + 1]
        want, have, k = c["completion_ids"], rec["completion_token_ids"], c["exact_prefix"]
        where = f"{r['model']} {kind} case {i + 1}"
        if rec["prompt_token_ids"] != c["prompt_ids"]:
            print(f"{where}: prompt ids differ\n  want {c['prompt_ids']}\n  have {rec['prompt_token_ids']}")
            bad += 1
            continue
        if have[:k] != want[:k]:
            j = next(j for j in range(k) if j >= len(have) or have[j] != want[j])
            print(f"{where}: completion differs at token {j}: want {want[:k]}, have {have[:k]}")
            bad += 1
            continue
        if k == len(want):
            stopped = bool(want) and want[-1] in eos
            if have != want or rec["finish_reason"] != ("stop" if stopped else "length"):
                print(f"{where}: completion or finish differs: want {want}, have {have} "
                      f"({rec['finish_reason']})")
                bad += 1
                continue
            if "text" in c and rec.get("text") != c["text"]:
                print(f"{where}: text differs: want {c['text']!r}, have {rec.get('text')!r}")
                bad += 1
                continue
        print(f"{where}: {len(have)} tokens equal ({k} exact, margin {c['min_margin']:.2g})")
sys.exit(1 if bad else 0)
PY
done
