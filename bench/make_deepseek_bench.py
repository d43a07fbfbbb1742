#!/usr/bin/env python3
"""A DeepSeek-V3-shaped MoE checkpoint scaled to one GPU, for `make bench-cuda`.

    python3 bench/make_deepseek_bench.py --dir /tmp/ds-bench [--layers 4] [--experts 32]

Every per-layer shape is DeepSeek-V3/R1's (hidden 7168, 128 MLA heads with q_lora 1536, kv_lora
512, nope 128, rope 64, v 128; dense intermediate 18432; moe_intermediate 2048, 8 experts per
token from groups of the routed experts, 1 shared expert; vocabulary 129280; YaRN as published);
only the layer count (first_k_dense_replace 1, the rest MoE) and the routed experts per layer are
fewer. With 32 experts a layer holds what one GPU holds of R1 under 8-way expert parallelism.

Weights are random and stored as DeepSeek publishes them: FP8 e4m3 linear weights with F32
weight_scale_inv per 128 x 128 block (values N(0, 1/fan_in) after scaling), BF16 embedding,
head, norms and router, F32 e_score_correction_bias. Made on the GPU with torch, written with
safetensors in shards of at most 4 GB. Prints one JSON line {"kind": "ds_model", "dir",
"config", "bytes"}; reuses an existing directory with the same config.
"""
import argparse
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file


def config(layers, experts):
    assert experts % 8 == 0, "experts in 8 groups"
    return {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "vocab_size": 129280,
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "num_hidden_layers": layers,
        "first_k_dense_replace": 1,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "n_shared_experts": 1,
        "n_routed_experts": experts,
        "routed_scaling_factor": 2.5,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "qk_nope_head_dim": 128,
        "topk_method": "noaux_tc",
        "n_group": 8,
        "topk_group": 4,
        "num_experts_per_tok": 8,
        "moe_layer_freq": 1,
        "norm_topk_prob": True,
        "scoring_func": "sigmoid",
        "hidden_act": "silu",
        "max_position_embeddings": 163840,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000,
        "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                         "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                         "type": "yarn"},
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "bos_token_id": 0,
        "eos_token_id": 1,
        "attention_bias": False,
        "num_nextn_predict_layers": 0,
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                                "quant_method": "fp8", "weight_block_size": [128, 128]},
    }


class Writer:
    """Collects tensors (moved to the CPU) and writes shards of at most 4 GB."""

    def __init__(self, out):
        self.out, self.cur, self.cur_bytes, self.shards, self.index, self.total = out, {}, 0, [], {}, 0

    def add(self, name, t):
        t = t.contiguous().cpu()
        nb = t.numel() * t.element_size()
        if self.cur and self.cur_bytes + nb > 4e9:
            self.flush()
        self.cur[name] = t
        self.cur_bytes += nb
        self.total += nb

    def flush(self):
        if not self.cur:
            return
        name = f"model-{len(self.shards) + 1:05d}.safetensors"
        save_file(self.cur, os.path.join(self.out, name), metadata={"format": "pt"})
        for k in self.cur:
            self.index[k] = name
        self.shards.append(name)
        self.cur, self.cur_bytes = {}, 0

    def finish(self):
        self.flush()
        n = len(self.shards)
        mapping = {}
        for k, v in self.index.items():
            i = self.shards.index(v) + 1
            mapping[k] = f"model-{i:05d}-of-{n:05d}.safetensors"
        for i, s in enumerate(self.shards):
            os.rename(os.path.join(self.out, s),
                      os.path.join(self.out, f"model-{i + 1:05d}-of-{n:05d}.safetensors"))
        with open(os.path.join(self.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": self.total}, "weight_map": mapping}, f)


def fp8_linear(w, name, rows, cols, g):
    """FP8 e4m3 values N(0, 48^2) clipped to the format, scale 1 / (48 sqrt(cols)) per block."""
    v = (torch.randn(rows, cols, device="cuda", generator=g) * 48).clamp_(-448, 448)
    w.add(name + ".weight", v.to(torch.float8_e4m3fn))
    sr, sc = math.ceil(rows / 128), math.ceil(cols / 128)
    w.add(name + ".weight_scale_inv",
          torch.full((sr, sc), 1.0 / (48 * math.sqrt(cols)), dtype=torch.float32))


def bf16(w, name, shape, std, g, mean=0.0):
    w.add(name, (torch.randn(*shape, device="cuda", generator=g) * std + mean).to(torch.bfloat16))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=32)
    a = ap.parse_args()
    assert torch.cuda.is_available(), "needs a GPU (the weights are made there)"
    cfg = config(a.layers, a.experts)
    path = os.path.join(a.dir, "config.json")
    if os.path.exists(path) and json.load(open(path)) == cfg and \
            os.path.exists(os.path.join(a.dir, "model.safetensors.index.json")):
        print(json.dumps({"kind": "ds_model", "dir": a.dir, "config": cfg, "reused": True}))
        return
    os.makedirs(a.dir, exist_ok=True)
    g = torch.Generator(device="cuda").manual_seed(0)
    w = Writer(a.dir)
    d, V = cfg["hidden_size"], cfg["vocab_size"]
    H, ql, kl = cfg["num_attention_heads"], cfg["q_lora_rank"], cfg["kv_lora_rank"]
    nope, rope, vd = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    bf16(w, "model.embed_tokens.weight", (V, d), 1.0, g)
    for l in range(a.layers):
        p = f"model.layers.{l}."
        bf16(w, p + "input_layernorm.weight", (d,), 0.0, g, 1.0)
        bf16(w, p + "post_attention_layernorm.weight", (d,), 0.0, g, 1.0)
        a_ = p + "self_attn."
        fp8_linear(w, a_ + "q_a_proj", ql, d, g)
        bf16(w, a_ + "q_a_layernorm.weight", (ql,), 0.0, g, 1.0)
        fp8_linear(w, a_ + "q_b_proj", H * (nope + rope), ql, g)
        fp8_linear(w, a_ + "kv_a_proj_with_mqa", kl + rope, d, g)
        bf16(w, a_ + "kv_a_layernorm.weight", (kl,), 0.0, g, 1.0)
        fp8_linear(w, a_ + "kv_b_proj", H * (nope + vd), kl, g)
        fp8_linear(w, a_ + "o_proj", d, H * vd, g)
        m = p + "mlp."
        if l < cfg["first_k_dense_replace"]:
            ff = cfg["intermediate_size"]
            fp8_linear(w, m + "gate_proj", ff, d, g)
            fp8_linear(w, m + "up_proj", ff, d, g)
            fp8_linear(w, m + "down_proj", d, ff, g)
            continue
        E, ff = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
        bf16(w, m + "gate.weight", (E, d), 1.0 / math.sqrt(d), g)
        w.add(m + "gate.e_score_correction_bias",
              torch.randn(E, device="cuda", generator=g) * 0.01)
        for e in range(E):
            fp8_linear(w, m + f"experts.{e}.gate_proj", ff, d, g)
            fp8_linear(w, m + f"experts.{e}.up_proj", ff, d, g)
            fp8_linear(w, m + f"experts.{e}.down_proj", d, ff, g)
        sff = ff * cfg["n_shared_experts"]
        fp8_linear(w, m + "shared_experts.gate_proj", sff, d, g)
        fp8_linear(w, m + "shared_experts.up_proj", sff, d, g)
        fp8_linear(w, m + "shared_experts.down_proj", d, sff, g)
    bf16(w, "model.norm.weight", (d,), 0.0, g, 1.0)
    bf16(w, "lm_head.weight", (V, d), 1.0 / math.sqrt(d), g)
    w.finish()
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    print(json.dumps({"kind": "ds_model", "dir": a.dir, "config": cfg, "bytes": w.total}))
    print(f"make_deepseek_bench: {w.total / 1e9:.2f} GB in {len(w.shards)} shards", file=sys.stderr)


if __name__ == "__main__":
    main()
