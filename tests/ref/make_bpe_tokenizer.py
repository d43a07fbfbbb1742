#!/usr/bin/env python3
"""A small synthetic byte-level BPE tokenizer in the Hugging Face format, sized to a model.

  python3 tests/ref/make_bpe_tokenizer.py OUTDIR N_TOKENS [--pre qwen2|llama3]

writes OUTDIR/tokenizer.json and OUTDIR/tokenizer_config.json: the 256 byte tokens (GPT-2
byte-to-unicode alphabet), BPE merges learned from the text below until the vocabulary plus the
R1 special tokens holds N_TOKENS entries, and the R1-Distill conversation template. The
pre-tokenizer is the Qwen2 regex (GGUF pre "qwen2") or, with --pre llama3, the Llama-3 regex
(GGUF pre "llama-bpe"), followed by ByteLevel without its own regex, as the published R1-Distill
tokenizers have it. Pure Python (no numpy), deterministic: the same arguments give the same
bytes. Used for the GGUF export fixtures (llama.cpp must accept the tokenizer metadata) and by
tests at run time for models they generate.
"""
import json
import os
import re
import sys

TEXT = """\
The student model learns to reason step by step. First it reads the question, then it thinks
about the problem, and finally it writes the answer. What is 12 + 35? The sum is 47. What is
the square root of 144? It is 12, because 12 * 12 = 144. Numbers like 3.14159 and 2.71828 are
famous constants. A distilled model is smaller than its teacher, yet it keeps much of the
teacher's reasoning. We check the answer twice: 47 - 35 = 12, so the result is right.
Les élèves apprennent à raisonner. 数学很有趣。 Über die Brücke gehen wir nach Hause.
<think> Let me think about this carefully. </think> The answer is 7.
def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # prints 5
"""

# Pre-tokenizer patterns as the published tokenizer.json files spell them.
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# R1-Distill specials: (content, special). User/Assistant/think are special=false there.
SPECIALS = [
    ("<｜begin▁of▁sentence｜>", True),
    ("<｜end▁of▁sentence｜>", True),
    ("<｜User｜>", False),
    ("<｜Assistant｜>", False),
    ("<think>", False),
    ("</think>", False),
]

# The R1-Distill conversation template (system prompt first, assistant history keeps only the
# text after </think>, generation prompt "<｜Assistant｜><think>\n").
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"
    "{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{%- endif %}"
    "{%- if message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{%- endif %}"
    "{%- endfor -%}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def words(text):
    """Approximates the pre-tokenizer on this ASCII-heavy text (training only needs plausible
    words; the tokenizer itself is defined by its merges and the regex in tokenizer.json)."""
    return re.findall(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|"
                      r"\s+(?!\S)|\s+", text)


def train(n_merges):
    b2u = bytes_to_unicode()
    vocab = [b2u[b] for b in range(256)]
    freq = {}
    for w in words(TEXT):
        key = tuple(b2u[b] for b in w.encode("utf-8"))
        freq[key] = freq.get(key, 0) + 1
    merges = []
    seen = set(vocab)
    while len(merges) < n_merges:
        pairs = {}
        for w, f in freq.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + f
        # most frequent, then lexicographic: deterministic
        cands = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        cands = [p for p, _ in cands if p[0] + p[1] not in seen]
        if not cands:
            raise SystemExit(f"the training text supports only {len(merges)} merges")
        a, b = cands[0]
        merges.append((a, b))
        seen.add(a + b)
        vocab.append(a + b)
        new = {}
        for w, f in freq.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + f
        freq = new
    return vocab, merges


def main():
    args = sys.argv[1:]
    pre = "qwen2"
    if "--pre" in args:
        i = args.index("--pre")
        pre = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2 or pre not in ("qwen2", "llama3"):
        raise SystemExit(__doc__)
    out, n_tokens = args[0], int(args[1])
    n_merges = n_tokens - 256 - len(SPECIALS)
    if n_merges < 0:
        raise SystemExit("N_TOKENS must be at least %d" % (256 + len(SPECIALS)))
    vocab, merges = train(n_merges)
    assert len(vocab) == len(set(vocab)) == 256 + n_merges
    base = len(vocab)
    added = [{"id": base + i, "content": c, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": s}
             for i, (c, s) in enumerate(SPECIALS)]
    bos, eos = SPECIALS[0][0], SPECIALS[1][0]
    pattern = QWEN2_PATTERN if pre == "qwen2" else LLAMA3_PATTERN
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                  "use_regex": False}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"} if pre == "qwen2" else None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
             "invert": False},
            byte_level]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [base], "tokens": [bos]}}},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab)},
                  "merges": [a + " " + b for a, b in merges]},
    }
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": eos,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 16384,
        "tokenizer_class": "LlamaTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"}
                                 for a in added},
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
