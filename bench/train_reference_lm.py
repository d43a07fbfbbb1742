#!/usr/bin/env python3
"""Train a small reference language model on real text, for measuring quantization quality
(bench/gguf_quality.sh) when no trained student is at hand. Runs on a GPU machine with PyTorch,
transformers and tokenizers.

  python3 bench/train_reference_lm.py CORPUS.txt EVAL.txt OUTDIR [--arch qwen2|llama]
      [--hidden 512] [--layers 8] [--heads 8] [--kv 2] [--ff 1536] [--vocab 4096]
      [--seq 512] [--batch 64] [--minutes 5] [--epochs 3] [--shard-mb 15]

writes OUTDIR as a Hugging Face model directory:
  model-*.safetensors + index   bf16 weights (shards of at most --shard-mb MB)
  config.json                   the architecture (untied embeddings, GQA)
  tokenizer.json                byte-level BPE trained on the corpus, Qwen2 pre-tokenizer regex
                                (GGUF pre "qwen2"), R1 special tokens
  tokenizer_config.json         BOS added, R1 conversation template
  reference.json                training log, held-out loss, the HF tokenizer's ids of all of
                                EVAL.txt, and transformers' float32 logits for its first 256
                                tokens in
  reference_logits.f32          [256, vocab] float32 (checks our forward on a trained model)

CORPUS.txt: any plain text (bench/make_corpus.sh builds one from a Debian machine's own files).
Every 100th window of --seq tokens is held out for the loss; training stops at the time budget or
after --epochs passes. Deterministic given the seed up to GPU nondeterminism.
"""
import argparse
import json
import math
import os
import time

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = [("<｜begin▁of▁sentence｜>", True), ("<｜end▁of▁sentence｜>", True),
            ("<｜User｜>", False), ("<｜Assistant｜>", False), ("<think>", False), ("</think>", False)]
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


def train_tokenizer(text, vocab):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab - len(SPECIALS), min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    sample = text[:20_000_000]
    tok.train_from_iterator((sample[i:i + 100_000] for i in range(0, len(sample), 100_000)),
                            trainer=trainer)
    assert tok.get_vocab_size() == vocab - len(SPECIALS), tok.get_vocab_size()
    for content, special in SPECIALS:
        t = AddedToken(content, special=special, normalized=False)
        (tok.add_special_tokens if special else tok.add_tokens)([t])
    bos = SPECIALS[0][0]
    bos_id = tok.token_to_id(bos)
    assert bos_id == vocab - len(SPECIALS) and tok.get_vocab_size() == vocab
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    return tok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("eval_text")
    p.add_argument("out")
    p.add_argument("--arch", choices=["qwen2", "llama"], default="qwen2")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv", type=int, default=2)
    p.add_argument("--ff", type=int, default=1536)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--shard-mb", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    t0 = time.time()
    text = open(a.corpus, encoding="utf-8", errors="replace").read()
    tok = train_tokenizer(text, a.vocab)
    print(f"tokenizer: {a.vocab} tokens in {time.time() - t0:.0f}s", flush=True)
    ids = []
    chunks = [text[i:i + 200_000] for i in range(0, len(text), 200_000)]
    for enc in tok.encode_batch(chunks, add_special_tokens=False):
        ids.extend(enc.ids)
    data = torch.tensor(ids, dtype=torch.int32)
    # held-out: every 100th window of seq+1 tokens, so it is drawn from the whole corpus
    n_win = len(data) // (a.seq + 1)
    wins = data[:n_win * (a.seq + 1)].view(n_win, a.seq + 1)
    is_held = torch.arange(n_win) % 100 == 99
    train, held = wins[~is_held], wins[is_held]
    print(f"corpus: {len(text)} chars, {len(data)} tokens ({len(text) / len(data):.2f} chars/token), "
          f"{time.time() - t0:.0f}s", flush=True)

    import transformers
    common = dict(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.ff,
                  num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv,
                  max_position_embeddings=4096, tie_word_embeddings=False,
                  bos_token_id=a.vocab - len(SPECIALS), eos_token_id=a.vocab - len(SPECIALS) + 1)
    if a.arch == "qwen2":
        cfg = transformers.Qwen2Config(rms_norm_eps=1e-6, rope_theta=10000.0, **common)
        model = transformers.Qwen2ForCausalLM(cfg)
    else:
        cfg = transformers.LlamaConfig(rms_norm_eps=1e-5, rope_theta=500000.0, **common)
        model = transformers.LlamaForCausalLM(cfg)
    dev = torch.device("cuda")
    model = model.to(dev).train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    gen = torch.Generator().manual_seed(a.seed)

    def batch(src, n):
        x = src[torch.randint(0, len(src), (n,), generator=gen)].long().to(dev)
        return x[:, :-1], x[:, 1:]

    def loss_of(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, a.vocab), y.reshape(-1))

    # steps: what fits the time budget (timed over steps 20-60, after warm-up), at most
    # --epochs passes over the training windows
    budget, warmup, step, total, log = a.minutes * 60, 100, 0, None, []
    max_steps = int(a.epochs * len(train) / a.batch)
    t_train = time.time()
    while True:
        if step == 20:
            t20 = time.time()
        if total is None and step == 60:
            per = (time.time() - t20) / 40
            total = max(min(int((budget - (time.time() - t_train)) / per) + 60, max_steps), 200)
        if total is not None and step >= total:
            break
        lr = a.lr * min(1.0, (step + 1) / warmup)
        if total is not None and step > warmup:
            lr = a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train, a.batch)
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            log.append({"step": step, "loss": round(loss.item(), 4), "lr": lr,
                        "seconds": round(time.time() - t_train, 1)})
            print(log[-1], flush=True)
        step += 1
    model.eval()
    with torch.no_grad():
        held_loss = sum(loss_of(*batch(held, 16)).item() for _ in range(20)) / 20
    print(f"trained {step} steps ({n_params / 1e6:.1f}M parameters, "
          f"{step * a.batch * a.seq / 1e6:.0f}M tokens) in {time.time() - t_train:.0f}s; "
          f"held-out loss {held_loss:.3f}", flush=True)

    os.makedirs(a.out, exist_ok=True)
    model = model.to(torch.bfloat16).cpu()
    model.save_pretrained(a.out, max_shard_size=f"{a.shard_mb}MB", safe_serialization=True)
    tok.save(os.path.join(a.out, "tokenizer.json"))
    bos, eos = SPECIALS[0][0], SPECIALS[1][0]
    with open(os.path.join(a.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": bos,
                   "eos_token": eos, "pad_token": eos, "clean_up_tokenization_spaces": False,
                   "model_max_length": 4096, "tokenizer_class": "PreTrainedTokenizerFast",
                   "chat_template": CHAT_TEMPLATE}, f, ensure_ascii=False, indent=1)

    # transformers' own float32 logits of the saved bf16 model over the evaluation text
    ref = type(model).from_pretrained(a.out, dtype=torch.float32).eval()
    all_ids = tok.encode(open(a.eval_text, encoding="utf-8").read()).ids
    eval_ids = all_ids[:256]
    with torch.no_grad():
        logits = ref(torch.tensor([eval_ids])).logits[0].float()
    logits.numpy().astype("<f4").tofile(os.path.join(a.out, "reference_logits.f32"))
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump({"params": n_params, "steps": step, "tokens_seen": step * a.batch * a.seq,
                   "corpus_tokens": len(data), "held_out_loss": held_loss, "log": log,
                   "eval_ids": eval_ids, "eval_argmax": logits.argmax(-1).tolist(),
                   "eval_text_ids": all_ids,
                   "torch": torch.__version__, "transformers": transformers.__version__}, f)
    for name in os.listdir(a.out):
        print(name, os.path.getsize(os.path.join(a.out, name)))


if __name__ == "__main__":
    main()
