#!/usr/bin/env python3
"""PyTorch + transformers SFT step on a random-weight Qwen2.5-shaped model: the peer of
build/bench/cuda_train (same shapes, tokens and MFU convention).

    python3 bench/torch_train.py --shape 0.5b --seq 4096 --batch 4 [--recompute] [--master-f32]

bf16 weights, fused torch.optim.AdamW on the bf16 parameters (no float32 master copy), SDPA
attention, full-vocabulary logits, labels=input_ids, as docs/performance-anchors.md "Measured
here". With --master-f32: float32 parameters, gradients and moments and the forward under
torch.autocast(bfloat16), which is what the Hugging Face Trainer's bf16=True runs: the same
optimizer-state precision as r1-distill's float32 master weights. Prints a human line and a JSON line ("result {...}"); out of memory is reported, not raised.
MFU counts 6 N + 12 L d T FLOPs per token against 989 TFLOP/s.
"""
import argparse
import json
import time

import torch

SHAPES = {
    "0.5b": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
    "7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="0.5b", choices=sorted(SHAPES))
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--recompute", action="store_true", help="gradient checkpointing")
    ap.add_argument("--master-f32", action="store_true",
                    help="float32 parameters and optimizer state, bf16 autocast (Trainer bf16=True)")
    a = ap.parse_args()

    from transformers import Qwen2Config, Qwen2ForCausalLM

    res = dict(impl="torch", shape=a.shape, seq=a.seq, batch=a.batch, recompute=int(a.recompute),
               master_f32=int(a.master_f32))
    label = f"torch {a.shape} seq={a.seq} batch={a.batch} recompute={int(a.recompute)}" + (
        " master-f32" if a.master_f32 else "")
    torch.manual_seed(0)
    cfg = Qwen2Config(**SHAPES[a.shape], max_position_embeddings=32768, rope_theta=1e6,
                      rms_norm_eps=1e-6, use_cache=False)
    cfg._attn_implementation = "sdpa"
    try:
        if not a.master_f32:
            torch.set_default_dtype(torch.bfloat16)
        with torch.device("cuda"):
            model = Qwen2ForCausalLM(cfg)
        torch.set_default_dtype(torch.float32)
        model.train()
        if a.recompute:
            model.gradient_checkpointing_enable()
        n_params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=0.1,
                                fused=True)
        g = torch.Generator(device="cuda").manual_seed(12345)
        ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device="cuda", generator=g)
        losses = []

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.master_f32):
                out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(out.loss.item())  # synchronises, as ours does

        for _ in range(a.warmup):
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / a.steps
    except torch.cuda.OutOfMemoryError as e:
        res.update(fits=False, error="out of memory", detail=str(e).split("\n")[0][:200])
        print(f"{label}: out of memory")
        print("result " + json.dumps(res))
        return
    n = a.batch * a.seq
    flops_tok = 6.0 * n_params + 12.0 * cfg.num_hidden_layers * cfg.hidden_size * a.seq
    tps = n / dt
    mfu = tps * flops_tok / 989e12
    peak = torch.cuda.max_memory_allocated() / 2**30
    res.update(fits=True, tokens_per_s=round(tps, 1), mfu=round(mfu, 4), step_s=round(dt, 4),
               peak_gib=round(peak, 3), reserved_gib=round(torch.cuda.max_memory_reserved() / 2**30, 3),
               params=n_params, loss_first=losses[0], loss_last=losses[-1],
               torch=torch.__version__)
    print(f"{label}: {tps:.0f} tokens/s, "
          f"MFU {100 * mfu:.1f}%, step {dt:.3f} s, peak {peak:.1f} GiB allocated")
    print("result " + json.dumps(res))


if __name__ == "__main__":
    main()
