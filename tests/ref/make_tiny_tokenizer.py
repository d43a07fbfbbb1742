#!/usr/bin/env python3
r"""A tiny byte-level BPE tokenizer in Hugging Face tokenizer.json form, for test models.

It has the real structure of the Qwen2 / R1-Distill-Qwen tokenizers (NFC normalizer, the Qwen2
Split regex + ByteLevel pre-tokenizer, ByteLevel decoder, BPE with "a b" merges, the R1 special
tokens as added tokens, and an R1 chat template in tokenizer_config.json) with a vocabulary small
enough for the random fixture models: 256 byte tokens, merges learned greedily from a small
built-in text, then the added tokens, VOCAB ids in all.

Pure Python (no numpy, no tokenizers package), deterministic.
Run: python3 tests/ref/make_tiny_tokenizer.py tests/fixtures/tiny-tokenizer [VOCAB]
     python3 tests/ref/make_tiny_tokenizer.py OUT VOCAB --text FILE... --regex llama3
       (merges learned from the given text files instead; the demo's tokenizer is made so, with
       the Llama 3 pattern, whose \p{N}{1,3} lets whole numbers up to 999 become tokens)
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_bpe_tokenizer import bytes_to_unicode  # noqa: E402  (GPT-2's byte map, shared)

# The Qwen2 and Llama 3 pre-tokenizer patterns, as tokenizer.json stores them, and ASCII
# approximations of each for splitting the training text (merges only ever join bytes within one
# pre-tokenized word, so the split used for training must not cross the real one's boundaries).
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
               r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TRAIN_SPLIT = {
    "qwen2": r"[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama3": r"[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}

SPECIALS = [  # (content, special) in id order after the BPE vocabulary
    ("<｜end▁of▁sentence｜>", True),
    ("<｜User｜>", False),
    ("<｜Assistant｜>", False),
    ("<｜begin▁of▁sentence｜>", True),
    ("<｜▁pad▁｜>", True),
    ("<think>", False),
    ("</think>", False),
]

# An R1-format chat template (the R1-Distill layout: BOS, the last system prompt, user and
# assistant turns, reasoning stripped from earlier assistant turns, <think>\n prefill).
CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='') -%}"
    "{%- for m in messages -%}{%- if m['role'] == 'system' -%}{%- set ns.system = m['content'] -%}"
    "{%- endif -%}{%- endfor -%}"
    "{{ bos_token }}{{ ns.system }}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}{{ '<｜User｜>' + m['content'] }}"
    "{%- elif m['role'] == 'assistant' -%}"
    "{%- set c = m['content'] -%}"
    "{%- if '</think>' in c -%}{%- set c = c.split('</think>')[-1] -%}{%- endif -%}"
    "{{ '<｜Assistant｜>' + c + '<｜end▁of▁sentence｜>' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<｜Assistant｜><think>\\n' }}{%- endif -%}"
)


def training_text():
    prose = ("The teacher writes a careful chain of thought before the answer. Let us think "
             "step by step: first we add the numbers, then we multiply the result, and finally "
             "we check the answer. Please reason step by step, and put your final answer within "
             "\\boxed{}. The student learns to reason from the traces of the teacher. ")
    lines = [prose] * 3
    a, b = 7, 3
    for i in range(300):  # deterministic arithmetic in the style of the demo tasks
        a = (a * 31 + 17) % 97
        b = (b * 13 + 5) % 89
        lines.append(f"Compute ({a} + {b}) * {i % 9 + 2}. First {a} + {b} = {a + b}. "
                     f"Then {a + b} * {i % 9 + 2} = {(a + b) * (i % 9 + 2)}. "
                     f"The answer is \\boxed{{{(a + b) * (i % 9 + 2)}}}.\n")
    return "".join(lines)


def apply_merges(word, merges):
    for pair in merges:
        out, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                out.append(word[i] + word[i + 1])
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = tuple(out)
    return word


def train_merges(text, n_merges, b2u, split=None, fixed=()):
    # Word split for training only (merges apply within pre-tokenized words at encode time).
    words = re.findall(split or r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+", text)
    counts = {}
    for w in words:
        key = tuple(b2u[b] for b in w.encode("utf-8"))
        counts[key] = counts.get(key, 0) + 1
    if fixed:
        counts = {apply_merges(w, fixed): c for w, c in counts.items()}
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in counts.items():
            for p in zip(w, w[1:]):
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]  # most frequent, ties by text
        merges.append(best)
        merged = {}
        for w, c in counts.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + c
        counts = merged
    return merges


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="tests/fixtures/tiny-tokenizer")
    ap.add_argument("vocab", nargs="?", type=int, default=320)
    ap.add_argument("--text", nargs="*", help="train the merges on these files")
    ap.add_argument("--regex", choices=["qwen2", "llama3"], default="qwen2")
    ap.add_argument("--numbers", type=int, default=0,
                    help="first make every integer 10..N one token (with --regex llama3)")
    args = ap.parse_args()
    out, total = args.out, args.vocab
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    if args.numbers:
        # "1 2" -> "12", then "12 3" -> "123": each number joins its prefix and its last digit
        merges = [(str(k // 10), str(k % 10)) for k in range(10, args.numbers + 1)]
    if args.text:
        text = "".join(open(p, encoding="utf-8").read() for p in args.text)
        # apply the fixed merges' effect by treating whole numbers as single symbols in training
        merges += train_merges(text, total - 256 - len(SPECIALS) - len(merges), b2u,
                               TRAIN_SPLIT[args.regex], fixed=merges)
    else:
        merges = train_merges(training_text(), total - 256 - len(SPECIALS), b2u)
    regex = LLAMA3_REGEX if args.regex == "llama3" else QWEN2_REGEX
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    added = []
    for content, special in SPECIALS:
        added.append({"id": len(vocab) + len(added), "content": content, "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False, "special": special})
    assert len(vocab) + len(added) == total, (len(vocab), len(added), total)
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
             "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                  "merges": [a + " " + b for a, b in merges]},
    }
    config = {
        "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
        "pad_token": "<｜▁pad▁｜>", "clean_up_tokenization_spaces": False,
        "model_max_length": 16384,
        # PreTrainedTokenizerFast: transformers 5's LlamaTokenizerFast rebuilds a SentencePiece-
        # style pipeline instead of reading tokenizer.json (it drops the spaces of byte-level BPE)
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    print(f"{out}: {len(vocab)} BPE tokens ({len(merges)} merges) + {len(added)} added = {total}")


if __name__ == "__main__":
    main()
