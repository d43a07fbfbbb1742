#!/usr/bin/env python3
"""A small random Qwen2 / Llama checkpoint in the Hugging Face layout, for end-to-end tests.

  python3 make_model.py OUTDIR --arch qwen2|llama --hidden D --ff F --layers L --heads H
                        --kv KV --vocab V [--tied] [--dtype f32|bf16] [--seed S] [--llama3-rope]
                        [--bos ID] [--eos ID]

writes OUTDIR/config.json (transformers-4 layout) and OUTDIR/model.safetensors with Gaussian
weights: embeddings std 0.1 (so the next-token distribution is neither flat nor one-hot),
projections std 1/sqrt(fan_in), norms 1 + 0.2 N(0,1), Qwen2 q/k/v biases 0.1 N(0,1). Pure
Python, deterministic. Tokenizer files come from tests/ref/make_bpe_tokenizer.py.
"""
import argparse
import array
import json
import math
import os
import random
import struct


def tensor_bytes(values, dtype):
    a = array.array("f", values)
    if dtype == "f32":
        return a.tobytes()
    # bf16: the high half of each little-endian float32 (truncation; the model is whatever
    # these values are, so no rounding rule is needed)
    return array.array("H", a.tobytes())[1::2].tobytes()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--arch", choices=["qwen2", "llama"], required=True)
    for k in ("hidden", "ff", "layers", "heads", "kv", "vocab"):
        p.add_argument("--" + k, type=int, required=True)
    p.add_argument("--tied", action="store_true")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--llama3-rope", action="store_true")
    p.add_argument("--bos", type=int)
    p.add_argument("--eos", type=int)
    a = p.parse_args()
    rng = random.Random(a.seed)
    hd = a.hidden // a.heads
    d, ff = a.hidden, a.ff
    tensors = []

    def add(name, shape, std=None, mean=0.0):
        n = 1
        for s in shape:
            n *= s
        tensors.append((name, shape, [mean + std * rng.gauss(0, 1) for _ in range(n)]))

    add("model.embed_tokens.weight", [a.vocab, d], 0.1)
    for i in range(a.layers):
        pre = "model.layers.%d." % i
        add(pre + "input_layernorm.weight", [d], 0.2, 1.0)
        add(pre + "self_attn.q_proj.weight", [a.heads * hd, d], 1 / math.sqrt(d))
        add(pre + "self_attn.k_proj.weight", [a.kv * hd, d], 1 / math.sqrt(d))
        add(pre + "self_attn.v_proj.weight", [a.kv * hd, d], 1 / math.sqrt(d))
        if a.arch == "qwen2":
            add(pre + "self_attn.q_proj.bias", [a.heads * hd], 0.1)
            add(pre + "self_attn.k_proj.bias", [a.kv * hd], 0.1)
            add(pre + "self_attn.v_proj.bias", [a.kv * hd], 0.1)
        add(pre + "self_attn.o_proj.weight", [d, a.heads * hd], 1 / math.sqrt(a.heads * hd))
        add(pre + "post_attention_layernorm.weight", [d], 0.2, 1.0)
        add(pre + "mlp.gate_proj.weight", [ff, d], 1 / math.sqrt(d))
        add(pre + "mlp.up_proj.weight", [ff, d], 1 / math.sqrt(d))
        add(pre + "mlp.down_proj.weight", [d, ff], 1 / math.sqrt(ff))
    add("model.norm.weight", [d], 0.2, 1.0)
    if not a.tied:
        add("lm_head.weight", [a.vocab, d], 0.1)

    st_dtype = "F32" if a.dtype == "f32" else "BF16"
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, shape, vals in tensors:
        b = tensor_bytes(vals, a.dtype)
        header[name] = {"dtype": st_dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    cfg = {
        "architectures": ["Qwen2ForCausalLM" if a.arch == "qwen2" else "LlamaForCausalLM"],
        "model_type": a.arch, "vocab_size": a.vocab, "hidden_size": d, "intermediate_size": ff,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6 if a.arch == "qwen2" else 1e-5,
        "rope_theta": 10000.0 if a.arch == "qwen2" else 500000.0,
        "rope_scaling": None, "tie_word_embeddings": a.tied, "hidden_act": "silu",
        "torch_dtype": "float32" if a.dtype == "f32" else "bfloat16",
    }
    if a.bos is not None:
        cfg["bos_token_id"] = a.bos
    if a.eos is not None:
        cfg["eos_token_id"] = a.eos
    if a.llama3_rope:
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


if __name__ == "__main__":
    main()
