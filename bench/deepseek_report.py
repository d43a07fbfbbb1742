#!/usr/bin/env python3
"""The DeepSeek part of `make bench-cuda`: tokens/s of the scaled DeepSeek-V3 model against its
own bandwidth limit, and the projection to DeepSeek-R1 on one 8xH200 node.

    python3 bench/deepseek_report.py --model DIR --results results.jsonl \
        --profile prof64.jsonl [--gbps 2990] > ds_report.jsonl

Inputs: the bench model's directory (its config.json); results.jsonl with the "decode" lines of
build/bench/decode on that model (batch 1 and 64) and a "bandwidth" line (copy bandwidth,
bytes read + written per second, from bench/hf_generate.py); the --profile-json output of the
batch-64 run (per-op GPU times of an eager run).

Bandwidth limit: the bytes a decode step must read, divided by the copy bandwidth: every weight
outside the routed experts (FP8 with their scales, BF16 head and router), the routed experts a
batch touches (E (1 - (1 - k/E)^B) per MoE layer, random routing being close to uniform), and
the latent cache rows attended.

Projection (printed with every assumption): the measured batch-64 step time (graphs on) is split
into kinds of work in proportion to the profiled op times, and each kind is scaled to what one
GPU of an 8xH200 node does for DeepSeek-R1 (61 layers: 3 dense, 58 MoE; 256 experts, 32 per GPU)
under tensor-parallel attention and dense layers and expert-parallel MoE:
  attention split by head (q_b, kv_b absorbed products, attention, o): / 8
  attention replicated (q_a and kv_a projections, norms, rope, cache writes): x 1
  dense MLP and shared expert (split by channel): / 8
  routed experts: x (32 / E_bench) (each GPU holds 32 experts; the bench layer holds E_bench)
  head: x 1 (the engine keeps it whole on every GPU; teacher/deepseek.c)
  weight-streaming parts x (H100 / H200 bandwidth: 3.35 / 4.8 TB/s, datasheet)
  two all-reduces of the [64, 7168] float32 activations (1.8 MB) per layer (after attention,
  after the MoE), 25 us each on NVLink (assumed: NCCL's small-message latency on 8 GPUs; the
  engine's --tp runs them, `make bench-cuda` measures --tp 2/4/8 where the GPUs are there)
and compared with SGLang's published 1.8k output tokens/s at 64 concurrent requests
(SemiAnalysisAI/InferenceX#870, shared/reference/performance-anchors.md).
"""
import argparse
import json
import math
import sys


def emit(o):
    print(json.dumps(o), flush=True)


def fp8_bytes(r, c):
    return r * c + math.ceil(r / 128) * math.ceil(c / 128) * 4


def bytes_per_step(cfg, batch, ctx):
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    ql, kl, rope = cfg["q_lora_rank"], cfg["kv_lora_rank"], cfg["qk_rope_head_dim"]
    nope, vd = cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    L, dense = cfg["num_hidden_layers"], cfg["first_k_dense_replace"]
    E, k, ff = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["moe_intermediate_size"]
    attn = (fp8_bytes(ql, d) + fp8_bytes(H * (nope + rope), ql) + fp8_bytes(kl + rope, d) +
            fp8_bytes(H * (nope + vd), kl) + fp8_bytes(d, H * vd))
    expert = 3 * fp8_bytes(ff, d)
    active = E * (1 - (1 - k / E) ** batch)
    moe = E * d * 2 + expert * cfg["n_shared_experts"] + active * expert
    mlp = 3 * fp8_bytes(cfg["intermediate_size"], d)
    head = cfg["vocab_size"] * d * 2
    cache = batch * ctx * L * (kl + rope) * 2
    return L * attn + dense * mlp + (L - dense) * moe + head + cache


def classify(op, a, b, c, cfg):
    """The kind of work of a profiled (op, shape) in a decode step."""
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    ql, kl, rope = cfg["q_lora_rank"], cfg["kv_lora_rank"], cfg["qk_rope_head_dim"]
    nope, vd = cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    ff, mff, E = cfg["intermediate_size"], cfg["moe_intermediate_size"], cfg["n_routed_experts"]
    sff = mff * cfg["n_shared_experts"]
    if op in ("mla_q_absorb", "mla_attention", "mla_v_up"):
        return "attn_split"
    if op in ("linear", "linear_add", "linear_multi"):
        if (a, b) in ((H * (nope + rope), ql), (d, H * vd)):
            return "attn_split"
        if (a, b) == (ql + kl + rope, d):
            return "attn_rep"
        if (a, b) in ((2 * ff, d), (d, ff)):
            return "dense_mlp"
        if (a, b) in ((2 * sff, d), (d, sff)):
            return "shared"
        if (a, b) == (E, d):
            return "routed"
        if a == cfg["vocab_size"]:
            return "head"
        return "other"
    if op in ("linear_segments", "combine_rows", "zero"):
        return "routed"
    if op == "gather_rows":
        return "routed" if a > 64 else "head"
    if op == "swiglu":
        if b == ff:
            return "dense_mlp"
        if b == mff and a > 64:
            return "routed"
        return "shared"
    if op == "rmsnorm" and b in (ql, kl):
        return "attn_rep"
    if op in ("rope", "copy_strided", "kv_store"):
        return "attn_rep"
    return "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--gbps", type=float, default=0)
    a = ap.parse_args()
    cfg = json.load(open(a.model.rstrip("/") + "/config.json"))
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    gbps = a.gbps or next((r["gbps"] for r in rows if r.get("kind") == "bandwidth"), 0)
    dec = [r for r in rows if r.get("kind") == "decode" and r.get("device") == "cuda" and
           r.get("tp", 1) == 1 and r.get("model", "").rstrip("/") == a.model.rstrip("/")]
    assert dec, "no decode results for the DeepSeek bench model"
    for r in dec:
        ctx = r["prompt"] + r["new"] / 2
        limit = gbps * 1e9 / bytes_per_step(cfg, r["batch"], ctx) * r["batch"] if gbps else 0
        emit({"kind": "ds_decode", "batch": r["batch"], "decode_tok_s": r["decode_tok_s"],
              "e2e_tok_s": r["e2e_tok_s"], "limit_tok_s": limit,
              "pct_of_limit": 100 * r["decode_tok_s"] / limit if limit else None,
              "step_ms": 1e3 * r["batch"] / r["decode_tok_s"],
              "bytes_per_step": bytes_per_step(cfg, r["batch"], ctx)})

    prof = [json.loads(l) for l in open(a.profile) if l.strip()]
    run = next(p for p in prof if p["kind"] == "profiled_run")
    B = run["batch"]
    # decode-step ops run (new - 1) times per layer or more; the prefill's once per layer
    ops = [p for p in prof if p["kind"] == "op" and p["calls"] >= run["new"] - 1]
    kinds = {}
    for p in ops:
        kd = classify(p["op"], p["a"], p["b"], p["c"], cfg)
        kinds[kd] = kinds.get(kd, 0.0) + p["ms"] / (run["new"] - 1)
    prof_step = sum(kinds.values())
    meas = next(r for r in dec if r["batch"] == B)
    step_ms = 1e3 * B / meas["decode_tok_s"]
    scale = step_ms / prof_step
    L, dense = cfg["num_hidden_layers"], cfg["first_k_dense_replace"]
    moe_layers = L - dense
    per = {k: v * scale for k, v in kinds.items()}  # ms per step, graphs on
    bw = 3.35 / 4.8
    E = cfg["n_routed_experts"]
    # per layer on one GPU of the 8xH200 node, then R1's 61 layers
    attn_split = per.get("attn_split", 0) / L / 8 * bw
    attn_rep = per.get("attn_rep", 0) / L * bw
    other = per.get("other", 0) / L
    dense_mlp = per.get("dense_mlp", 0) / max(dense, 1) / 8 * bw
    shared = per.get("shared", 0) / max(moe_layers, 1) / 8 * bw
    routed = per.get("routed", 0) / max(moe_layers, 1) * (32 / E) * bw
    head = per.get("head", 0) * bw
    comm = 2 * 0.025
    r1_dense, r1_moe = 3, 58
    layer_common = attn_split + attn_rep + other + comm
    r1_step = (r1_dense * (layer_common + dense_mlp) + r1_moe * (layer_common + shared + routed) +
               head)
    r1_tok_s = 64 / (r1_step / 1e3)
    emit({"kind": "ds_profile_split", "batch": B, "profiled_step_ms": prof_step,
          "measured_step_ms": step_ms, "ms_per_step_by_kind": per})
    emit({"kind": "ds_projection", "r1_step_ms": r1_step, "r1_tok_s": r1_tok_s,
          "per_layer_ms": {"attention_split_by_head": attn_split, "attention_replicated": attn_rep,
                           "other": other, "allreduce_x2": comm, "dense_mlp": dense_mlp,
                           "shared_expert": shared, "routed_experts": routed},
          "head_ms": head, "sglang_tok_s": 1800})
    print(f"deepseek bench: step {step_ms:.2f} ms at batch {B} (profiled eager {prof_step:.2f} ms)",
          file=sys.stderr)
    for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"  {k:12s} {v:8.3f} ms/step", file=sys.stderr)
    print(f"projection, DeepSeek-R1 on 8xH200 at 64 concurrent: {r1_step:.1f} ms/step, "
          f"{r1_tok_s:.0f} tokens/s (SGLang: ~1.8k)", file=sys.stderr)


if __name__ == "__main__":
    main()
