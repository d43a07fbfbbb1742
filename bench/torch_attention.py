#!/usr/bin/env python3
"""PyTorch's causal attention, forward and backward, on the shapes of build/bench/cuda_attention:
the peer of our training attention kernels.

    python3 bench/torch_attention.py --seq 4096 --batch 4 --heads 12 --kv-heads 2 --head-dim 128

Times what transformers' Qwen2 attention runs with attn_implementation="sdpa": repeat_kv (the
key/value heads expanded to the query heads), then torch.nn.functional.scaled_dot_product_attention
with is_causal: on the backend SDPA picks itself (sdpa-default, what transformers gets; the name
of the one it picks is printed), then on each backend that takes the shape (flash:
FlashAttention-2 inside PyTorch; cudnn), and flash_attn's own flash_attn_func (GQA without
expansion) where that package is installed. bf16 [B, H, T, hd] inputs; the backward is one .backward() of the output with a fixed
gradient. FLOPs as bench/cuda_attention.c counts them (the causal half; backward 2.5x forward).
Prints a human line and a JSON line ("result {...}") per variant; a failure is reported, not raised.
"""
import argparse
import json

import torch
import torch.nn.functional as F


def timed(fn, reps):
    """Mean milliseconds of fn() over reps calls, after 3 untimed ones."""
    for _ in range(3):
        fn()
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0.record()
    for _ in range(reps):
        fn()
    t1.record()
    torch.cuda.synchronize()
    return t0.elapsed_time(t1) / reps


def sdpa_variant(backend):
    """SDPA on one backend, or on the one PyTorch picks itself (backend None: what transformers
    gets)."""
    from contextlib import nullcontext

    from torch.nn.attention import sdpa_kernel

    def run(q, k, v, groups):
        k = k.repeat_interleave(groups, dim=1)  # transformers' repeat_kv
        v = v.repeat_interleave(groups, dim=1)
        with sdpa_kernel(backend) if backend is not None else nullcontext():
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return run


def default_backend(q, k, v, groups):
    """The backend SDPA picks for these inputs without being told (a private PyTorch call; None
    where it is missing)."""
    from torch.nn.attention import SDPBackend

    try:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        return SDPBackend(torch._fused_sdp_choice(q, k, v, is_causal=True)).name.lower()
    except Exception:
        return None


def flash_attn_variant():
    from flash_attn import flash_attn_func  # raises ImportError where it is not installed

    def run(q, k, v, groups):
        # flash_attn takes [B, T, H, hd] and grouped key/value heads as they are
        o = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)
        return o.transpose(1, 2)

    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    from torch.nn.attention import SDPBackend

    B, T, H, KV, hd = a.batch, a.seq, a.heads, a.kv_heads, a.head_dim
    fwd_flop = 4.0 * hd * H * (T * (T + 1) / 2) * B
    torch.manual_seed(0)
    dev = dict(device="cuda", dtype=torch.bfloat16)
    q = (torch.rand(B, H, T, hd, **dev) * 2 - 1).requires_grad_()
    k = (torch.rand(B, KV, T, hd, **dev) * 2 - 1).requires_grad_()
    v = (torch.rand(B, KV, T, hd, **dev) * 2 - 1).requires_grad_()
    dout = torch.rand(B, H, T, hd, **dev) * 2 - 1
    picked = default_backend(q, k, v, H // KV)
    print(f"torch {torch.__version__}: SDPA picks {picked} for these inputs by itself")
    variants = [("sdpa-default", lambda: sdpa_variant(None)),
                ("sdpa-flash", lambda: sdpa_variant(SDPBackend.FLASH_ATTENTION)),
                ("sdpa-cudnn", lambda: sdpa_variant(SDPBackend.CUDNN_ATTENTION)),
                ("flash_attn", flash_attn_variant)]
    for name, make in variants:
        res = dict(impl="torch", kernels=name, seq=T, batch=B, heads=H, kv_heads=KV, head_dim=hd,
                   torch=torch.__version__, default_backend=picked)
        try:
            run = make()
            with torch.no_grad():
                fwd_ms = timed(lambda: run(q, k, v, H // KV), a.reps)

            def fwd_bwd():
                q.grad = k.grad = v.grad = None
                run(q, k, v, H // KV).backward(dout)

            fb_ms = timed(fwd_bwd, a.reps)
            bwd_ms = fb_ms - fwd_ms
            res.update(fits=True, fwd_ms=round(fwd_ms, 4), bwd_ms=round(bwd_ms, 4),
                       fwd_tflops=round(fwd_flop / (fwd_ms * 1e9), 1),
                       bwd_tflops=round(2.5 * fwd_flop / (bwd_ms * 1e9), 1))
            print(f"torch attention ({name}) T={T} B={B} H={H} KV={KV} hd={hd}: forward "
                  f"{fwd_ms:.3f} ms ({res['fwd_tflops']:.0f} TFLOP/s), backward {bwd_ms:.3f} ms "
                  f"({res['bwd_tflops']:.0f} TFLOP/s)")
        except Exception as e:  # a backend that refuses the shape, a package not installed
            res.update(fits=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
            print(f"torch attention ({name}): not run: {res['error']}")
        print("result " + json.dumps(res))
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
