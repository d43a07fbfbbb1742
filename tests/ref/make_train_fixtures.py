#!/usr/bin/env python3
"""Reference fixtures for the CPU trainer (student/), made with PyTorch + transformers on CPU.

For each case it builds a small random checkpoint, a set of pre-tokenized SFT documents with loss
masks, and records what transformers + torch.optim compute for them:

  tests/fixtures/train-ref/<case>/model/             the base checkpoint (save_pretrained)
  tests/fixtures/train-ref/<case>/data.jsonl         one document per line:
                                                     {"input_ids": [...], "loss_mask": [...]}
  tests/fixtures/train-ref/<case>/grads.safetensors  every parameter's gradient of the first step
                                                     (float32, transformers' parameter names)
  tests/fixtures/train-ref/<case>/final_logits.f32   logits [T, V] (float32, little-endian) of
                                                     the probe tokens after the last step
  tests/fixtures/train-ref/<case>/ref.json           seq_len, the packed rows (document indices
                                                     per row, as `train --pack on` lays them),
                                                     the hyperparameters, and per step: loss,
                                                     grad_norm (before clipping), lr

The loss of a step is the sum of token cross-entropies over all loss positions of all documents
divided by their count (position t predicts token t + 1 and counts when mask[t + 1] is 1). Each
document runs as its own sequence (positions from 0, causal attention inside it): exactly what
the trainer's packed rows with document masking must give. Every step uses all documents (the
trainer runs with --batch-size = all rows, so each epoch is one step). Then
clip_grad_norm_, torch.optim.AdamW (weight decay on 2-D weights only; norms and biases in a
no-decay group, as the HF Trainer groups them) and the HF scheduler, for STEPS steps.

Cases:
  qwen2-tied   Qwen2, tied embeddings, GQA ratio 3 (6 heads, 2 KV heads), q/k/v biases, float32
               weights; cosine schedule with a minimum lr, 2 warmup steps, 7 steps.
  llama3-bf16  Llama, llama3 rope scaling (all three frequency bands in use), GQA ratio 2, untied
               head, bfloat16 weights on disk (trained in float32 from them); linear schedule,
               1 warmup step, 6 steps.

Run (CPU is enough):
  python3 tests/ref/make_train_fixtures.py tests/fixtures/train-ref

Checking a checkpoint our trainer wrote, against logits `r1-distill logits` wrote for it:
  python3 tests/ref/make_train_fixtures.py --check-checkpoint DIR --tokens 1,2,3 --logits FILE
"""
import argparse
import json
import math
import os
import random
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          get_cosine_with_min_lr_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

torch.set_num_threads(1)  # one summation order, and plenty fast for these sizes


def make_docs(rng, vocab, n_docs, min_len, max_len):
    """Random documents: a prompt (mask 0) then a completion (mask 1)."""
    docs = []
    for _ in range(n_docs):
        n = rng.randint(min_len, max_len)
        p = rng.randint(1, n - 2)  # at least two completion tokens
        ids = [rng.randrange(vocab) for _ in range(n)]
        docs.append((ids, [0] * p + [1] * (n - p)))
    return docs


def pack_rows(docs, seq_len):
    """The trainer's packing: in order, a document joins the current row while it fits."""
    rows, cur, used = [], [], 0
    for i, (ids, _) in enumerate(docs):
        assert len(ids) <= seq_len
        if cur and used + len(ids) > seq_len:
            rows.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += len(ids)
    rows.append(cur)
    return rows


def step_loss(model, docs):
    """Sum of masked token CE over all documents / number of loss tokens."""
    total = sum(sum(m[1:]) for _, m in docs)
    loss = torch.zeros((), dtype=torch.float32)
    for ids, mask in docs:
        x = torch.tensor([ids])
        logits = model(input_ids=x).logits[0].float()  # [T, V]
        tgt = torch.tensor(ids[1:])
        sel = torch.tensor(mask[1:], dtype=torch.bool)
        loss = loss + torch.nn.functional.cross_entropy(logits[:-1][sel], tgt[sel],
                                                        reduction="sum")
    return loss / total, total


def param_groups(model, wd):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
        assert (p.ndim >= 2) == ("norm" not in name and "bias" not in name), name
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def run_case(out, name, model, docs, seq_len, hp, probe):
    d = os.path.join(out, name)
    os.makedirs(os.path.join(d, "model"), exist_ok=True)
    model.save_pretrained(os.path.join(d, "model"), safe_serialization=True)
    with open(os.path.join(d, "data.jsonl"), "w") as f:
        for ids, mask in docs:
            f.write(json.dumps({"input_ids": ids, "loss_mask": mask}) + "\n")
    rows = pack_rows(docs, seq_len)
    assert any(len(r) >= 3 for r in rows), "want rows holding several documents"

    # The reference: the saved checkpoint reloaded in float32, as a user (and our trainer) load it.
    cls = type(model)
    ref = cls.from_pretrained(os.path.join(d, "model"), dtype=torch.float32,
                              attn_implementation="eager")
    ref.train()
    params = list(ref.parameters())
    names = [n for n, _ in ref.named_parameters()]

    # The clipping threshold: below the first step's norm, so clipping is exercised.
    loss, n_loss = step_loss(ref, docs)
    loss.backward()
    norm0 = torch.nn.utils.clip_grad_norm_(params, float("inf")).item()
    max_norm = float("%.3g" % (0.7 * norm0))
    for p in params:
        p.grad = None

    opt = torch.optim.AdamW(param_groups(ref, hp["weight_decay"]), lr=hp["lr"],
                            betas=(hp["adam_beta1"], hp["adam_beta2"]), eps=hp["adam_eps"],
                            foreach=False)
    if hp["schedule"] == "cosine":
        sched = get_cosine_with_min_lr_schedule_with_warmup(
            opt, num_warmup_steps=hp["warmup"], num_training_steps=hp["steps"],
            min_lr=hp["min_lr"])
    else:
        assert hp["schedule"] == "linear" and hp["min_lr"] == 0
        sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=hp["warmup"],
                                                num_training_steps=hp["steps"])
    steps = []
    for step in range(1, hp["steps"] + 1):
        opt.zero_grad(set_to_none=True)
        loss, _ = step_loss(ref, docs)
        loss.backward()
        if step == 1:
            grads = {n: p.grad.detach().float().contiguous().clone()
                     for n, p in zip(names, params)}
            save_file(grads, os.path.join(d, "grads.safetensors"), metadata={"format": "pt"})
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        steps.append({"step": step, "loss": loss.item(), "grad_norm": norm, "lr": lr})
        print("%s step %d loss %.6f grad_norm %.5f lr %.3e" % (name, step, loss.item(), norm, lr))
    assert any(s["grad_norm"] > max_norm for s in steps), "clipping never happened"
    assert steps[0]["lr"] == 0.0 or hp["warmup"] == 0
    assert steps[-1]["loss"] < steps[0]["loss"], "the loss did not fall"
    ref.eval()
    with torch.no_grad():
        logits = ref(input_ids=torch.tensor([probe])).logits[0].float()
    logits.numpy().astype("<f4").tofile(os.path.join(d, "final_logits.f32"))
    hp = dict(hp, grad_clip=max_norm)
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump({"case": name, "seq_len": seq_len, "rows": rows, "n_loss_tokens": n_loss,
                   "hyperparameters": hp, "steps": steps, "probe_tokens": probe,
                   "final_logits_shape": list(logits.shape),
                   "tied": bool(getattr(ref.config, "tie_word_embeddings", False)),
                   "transformers": transformers.__version__, "torch": torch.__version__},
                  f, indent=1)
    for n in os.listdir(os.path.join(d, "model")):  # keep the checkpoint small: no extras
        if n not in ("config.json", "model.safetensors", "generation_config.json"):
            os.remove(os.path.join(d, "model", n))


def qwen2_tied(out):
    torch.manual_seed(21)
    cfg = Qwen2Config(vocab_size=256, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=6, num_key_value_heads=2, head_dim=8,
                      max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    model = Qwen2ForCausalLM(cfg).float()
    with torch.no_grad():  # non-trivial norms and biases so a missed gradient shows
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    assert "lm_head.weight" not in dict(model.named_parameters())
    docs = make_docs(random.Random(22), 256, 12, 5, 18)
    hp = {"lr": 3e-3, "min_lr": 3e-4, "schedule": "cosine", "warmup": 2, "steps": 7,
          "weight_decay": 0.1, "adam_beta1": 0.9, "adam_beta2": 0.95, "adam_eps": 1e-8}
    run_case(out, "qwen2-tied", model, docs, 32, hp, docs[0][0])


def llama3_bf16(out):
    torch.manual_seed(23)
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
            "rope_theta": 500000.0}
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                      max_position_embeddings=512, rms_norm_eps=1e-5, rope_parameters=rope,
                      tie_word_embeddings=False, bos_token_id=0, eos_token_id=1)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    model = model.to(torch.bfloat16)
    docs = make_docs(random.Random(24), 256, 10, 6, 30)
    hp = {"lr": 2e-3, "min_lr": 0.0, "schedule": "linear", "warmup": 1, "steps": 6,
          "weight_decay": 0.05, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8}
    run_case(out, "llama3-bf16", model, docs, 64, hp, docs[1][0])
    with open(os.path.join(out, "llama3-bf16", "model", "config.json")) as f:
        c = json.load(f)
    assert c["rope_parameters"]["rope_type"] == "llama3", c


def check_checkpoint(d, tokens, logits_path):
    """Loads a checkpoint our trainer wrote and compares transformers' logits with ours."""
    cfg = transformers.AutoConfig.from_pretrained(d)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([tokens])).logits[0].float()
    raw = open(logits_path, "rb").read()
    ours = torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(len(tokens), -1)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    rel = ((ours - ref).norm() / ref.norm()).item()
    same_argmax = bool((ours.argmax(-1) == ref.argmax(-1)).all())
    print("%s (%s): logits rel L2 %.3e, max abs %.3e, argmax equal %s" % (
        d, cfg.model_type, rel, (ours - ref).abs().max().item(), same_argmax))
    assert rel < 1e-4 and same_argmax, "the checkpoint's logits differ from transformers'"
    tok = os.path.join(d, "tokenizer.json")
    if os.path.exists(tok):
        transformers.AutoTokenizer.from_pretrained(d)  # loads as a tokenizer too
    print("ok")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="tests/fixtures/train-ref")
    ap.add_argument("--check-checkpoint", metavar="DIR")
    ap.add_argument("--tokens", help="comma-separated ids (with --check-checkpoint)")
    ap.add_argument("--logits", help="float32 [T, V] logits from `r1-distill logits --out`")
    a = ap.parse_args()
    if a.check_checkpoint:
        if not a.tokens or not a.logits:
            sys.exit("--check-checkpoint needs --tokens and --logits")
        check_checkpoint(a.check_checkpoint, [int(t) for t in a.tokens.split(",")], a.logits)
    else:
        qwen2_tied(a.out)
        llama3_bf16(a.out)
