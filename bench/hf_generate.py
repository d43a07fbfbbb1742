#!/usr/bin/env python3
"""The peer side of `make bench-cuda`: transformers' generate on a random-weight Qwen2.5-shaped
bf16 model, and the GPU's copy bandwidth.

    python3 bench/hf_generate.py --shape 7b --dir /tmp/qwen7b --batches 1,64 > hf-7b.jsonl

Creates the model on the GPU (transformers' own initialisation, bf16), saves it to --dir as a
Hugging Face checkpoint (config.json + safetensors) for our engine to load, then times
model.generate on random prompts: --prompt tokens, exactly --new new tokens (no end-of-sequence
stop), sampling at temperature 0.6 and top-p 0.95 (top-k off), and greedy. Each timing follows a
short warm-up generate with the same batch. Prints JSON lines:
    {"kind": "bandwidth", "gbps"}                      device-to-device copy, bytes read + written
    {"kind": "model", "shape", "params", "weight_bytes", "dir"}
    {"kind": "hf", "shape", "batch", "prompt", "new", "mode": "sample"|"greedy", "seconds", "tok_s"}
"""
import argparse
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

SHAPES = {
    # Qwen2.5-7B / -1.5B (their config.json), random weights
    "7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
}


def emit(obj):
    print(json.dumps(obj), flush=True)


def log(msg):
    print(f"hf_generate: {msg}", file=sys.stderr, flush=True)


def copy_bandwidth():
    n = 2 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    a.random_(0, 255)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        b.copy_(a)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    gbps = 2 * n / times[len(times) // 2] / 1e9
    assert 500 < gbps < 10000, f"implausible copy bandwidth {gbps} GB/s"
    del a, b
    torch.cuda.empty_cache()
    return gbps


def make_model(shape, out_dir):
    cfg = Qwen2Config(max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      bos_token_id=151643, eos_token_id=151643, use_sliding_window=False,
                      **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device("cuda"):
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        except TypeError:
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model = model.to("cuda").eval()
    assert next(model.parameters()).is_cuda
    # exactly --new tokens: no end-of-sequence stop
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    params = sum(p.numel() for p in model.parameters())  # tied embeddings counted once
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    for p in model.parameters():
        assert p.dtype == torch.bfloat16 and torch.isfinite(p).all(), "bad initial weights"
    if not os.path.exists(os.path.join(out_dir, "config.json")):
        t = time.time()
        model.save_pretrained(out_dir, max_shard_size="5GB")
        log(f"saved {shape} ({weight_bytes / 1e9:.2f} GB) to {out_dir} in {time.time() - t:.1f} s")
    assert os.path.exists(os.path.join(out_dir, "config.json"))
    emit({"kind": "model", "shape": shape, "params": params, "weight_bytes": weight_bytes,
          "dir": out_dir})
    return model


def time_generate(model, shape, batch, prompt, new, mode):
    g = torch.Generator(device="cpu").manual_seed(batch)
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt), generator=g).cuda()
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, pad_token_id=0, eos_token_id=None)
    if mode == "sample":
        kw.update(do_sample=True, temperature=0.6, top_p=0.95, top_k=0)
    else:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)  # warm-up
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, **kw)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
    assert out.shape == (batch, prompt + new), f"generate returned {tuple(out.shape)}"
    tok_s = batch * new / dt
    log(f"{shape} batch {batch} {mode}: {tok_s:.1f} tokens/s ({dt:.2f} s)")
    emit({"kind": "hf", "shape": shape, "batch": batch, "prompt": prompt, "new": new,
          "mode": mode, "seconds": dt, "tok_s": tok_s})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--dir", required=True, help="where to save the checkpoint")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--modes", default="sample,greedy")
    ap.add_argument("--bandwidth", action="store_true", help="also measure copy bandwidth")
    a = ap.parse_args()
    assert torch.cuda.is_available(), "needs a GPU"
    if a.bandwidth:
        gbps = copy_bandwidth()
        log(f"device-to-device copy: {gbps:.0f} GB/s")
        emit({"kind": "bandwidth", "gbps": gbps})
    model = make_model(a.shape, a.dir)
    for b in [int(x) for x in a.batches.split(",") if x]:
        for mode in [m for m in a.modes.split(",") if m]:
            time_generate(model, a.shape, b, a.prompt, a.new, mode)


if __name__ == "__main__":
    main()
