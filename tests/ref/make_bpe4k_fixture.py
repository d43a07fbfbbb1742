#!/usr/bin/env python3
"""tests/fixtures/bpe-4k: a byte-level BPE tokenizer of 4096 tokens trained on real text, and the
HF tokenizer's ids for a whole document, to check that llama.cpp tokenizes exactly as the HF
tokenizer does through the metadata `r1-distill export` writes (tests/e2e/export_tokenizer.sh).

  python3 tests/ref/make_bpe4k_fixture.py CORPUS.txt OUTDIR

CORPUS.txt from bench/make_corpus.sh; the tokenizer is bench/train_reference_lm.py's (Qwen2
pre-tokenizer regex, NFC, R1 special tokens, BOS post-processor). Writes OUTDIR/tokenizer.json,
OUTDIR/tokenizer_config.json and OUTDIR/gpl3_ids.json: the ids of /usr/share/common-licenses/GPL-3
(with BOS) and the file's sha256. Needs `tokenizers` (and torch, which the trainer module
imports); CPU is enough. The committed fixture came from the training run that made the
llama-architecture reference model of bench/gguf_quality.sh (same code, that machine's corpus).
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import train_reference_lm as t  # noqa: E402

TEXT = "/usr/share/common-licenses/GPL-3"


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    tok = t.train_tokenizer(open(corpus, encoding="utf-8", errors="replace").read(), 4096)
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    bos, eos = t.SPECIALS[0][0], t.SPECIALS[1][0]
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": bos,
                   "eos_token": eos, "pad_token": eos, "clean_up_tokenization_spaces": False,
                   "model_max_length": 4096, "tokenizer_class": "PreTrainedTokenizerFast",
                   "chat_template": t.CHAT_TEMPLATE}, f, ensure_ascii=False, indent=1)
    data = open(TEXT, "rb").read()
    ids = tok.encode(data.decode("utf-8")).ids
    assert ids[0] == tok.token_to_id(bos) and len(ids) > 5000, len(ids)
    import tokenizers
    import transformers
    with open(os.path.join(out, "gpl3_ids.json"), "w") as f:
        json.dump({"text": TEXT, "sha256": hashlib.sha256(data).hexdigest(),
                   "tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
                   "ids": ids}, f)
    print(len(ids), "ids")


if __name__ == "__main__":
    main()
