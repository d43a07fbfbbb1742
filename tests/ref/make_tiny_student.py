#!/usr/bin/env python3
"""Tiny random student models and SFT data for the trainer's end-to-end tests.

Pure Python (no numpy, no torch), deterministic: it runs anywhere the tests run.

  tests/fixtures/tiny-student-qwen2/   Qwen2, tied embeddings, GQA 2 (4 heads, 2 KV heads),
                                       q/k/v biases, float32 weights, transformers-4 config
  tests/fixtures/tiny-student-llama/   Llama, llama3 rope scaling, untied head, GQA 4 (4 heads,
                                       1 KV head), bfloat16 weights, transformers-5 config
  tests/fixtures/tiny-sft/train.jsonl  pre-tokenized examples {"input_ids", "loss_mask"}: a
  tests/fixtures/tiny-sft/eval.jsonl   prompt of random "digit" tokens, then their reverse and
                                       the end-of-sentence token as the learned completion

Both models use the vocabulary of tests/fixtures/tiny-tokenizer (320 ids; its tokenizer.json and
tokenizer_config.json are copied in), so `pack` and `train` see a complete model directory.
Initialisation follows transformers' _init_weights: normal(0, 0.02) matrices; norms and biases
are perturbed (1 + 0.1 N(0,1), 0.05 N(0,1)) so that a gradient bug in them shows.

Run: python3 tests/ref/make_tiny_student.py tests/fixtures
"""
import json
import os
import random
import shutil
import struct
import sys

VOCAB, BOS, EOS = 320, 316, 313


def bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (as torch's .to(torch.bfloat16))."""
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, shape, list of floats); dtype "F32" or "BF16"."""
    header, blobs, off = {}, [], 0
    for name, shape, vals in tensors:
        if dtype == "F32":
            blob = struct.pack("<%df" % len(vals), *vals)
        else:
            blob = struct.pack("<%dH" % len(vals), *[bf16_bits(v) for v in vals])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def make_model(out, name, cfg, config_json, dtype, seed, tok_dir):
    rng = random.Random(seed)
    d, ff, V = cfg["hidden"], cfg["ff"], VOCAB
    H, KV, hd = cfg["heads"], cfg["kv"], cfg["head_dim"]

    def mat(rows, cols):
        return [f32(rng.gauss(0, 0.02)) for _ in range(rows * cols)]

    def norm(n):
        return [f32(1 + 0.1 * rng.gauss(0, 1)) for _ in range(n)]

    def bias(n):
        return [f32(0.05 * rng.gauss(0, 1)) for _ in range(n)]

    t = [("model.embed_tokens.weight", [V, d], mat(V, d))]
    for l in range(cfg["layers"]):
        p = "model.layers.%d." % l
        t.append((p + "self_attn.q_proj.weight", [H * hd, d], mat(H * hd, d)))
        if cfg["bias"]:
            t.append((p + "self_attn.q_proj.bias", [H * hd], bias(H * hd)))
        t.append((p + "self_attn.k_proj.weight", [KV * hd, d], mat(KV * hd, d)))
        if cfg["bias"]:
            t.append((p + "self_attn.k_proj.bias", [KV * hd], bias(KV * hd)))
        t.append((p + "self_attn.v_proj.weight", [KV * hd, d], mat(KV * hd, d)))
        if cfg["bias"]:
            t.append((p + "self_attn.v_proj.bias", [KV * hd], bias(KV * hd)))
        t.append((p + "self_attn.o_proj.weight", [d, H * hd], mat(d, H * hd)))
        t.append((p + "mlp.gate_proj.weight", [ff, d], mat(ff, d)))
        t.append((p + "mlp.up_proj.weight", [ff, d], mat(ff, d)))
        t.append((p + "mlp.down_proj.weight", [d, ff], mat(d, ff)))
        t.append((p + "input_layernorm.weight", [d], norm(d)))
        t.append((p + "post_attention_layernorm.weight", [d], norm(d)))
    t.append(("model.norm.weight", [d], norm(d)))
    if not cfg["tied"]:
        t.append(("lm_head.weight", [V, d], mat(V, d)))
    dst = os.path.join(out, name)
    os.makedirs(dst, exist_ok=True)
    write_safetensors(os.path.join(dst, "model.safetensors"), t, dtype)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config_json, f, indent=2)
    with open(os.path.join(dst, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": BOS, "eos_token_id": EOS}, f, indent=2)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tok_dir, fn), os.path.join(dst, fn))
    print(name, sum(len(x[2]) for x in t), "parameters,", dtype)


def make_data(out):
    rng = random.Random(7)
    dst = os.path.join(out, "tiny-sft")
    os.makedirs(dst, exist_ok=True)
    digits = list(range(16, 26))  # ten ordinary byte tokens stand for digits
    sep = 30
    for fn, count in (("train.jsonl", 48), ("eval.jsonl", 12)):
        with open(os.path.join(dst, fn), "w") as f:
            for _ in range(count):
                k = rng.randint(3, 14)
                xs = [rng.choice(digits) for _ in range(k)]
                prompt = [BOS] + xs + [sep]
                completion = list(reversed(xs)) + [EOS]
                ids = prompt + completion
                mask = [0] * len(prompt) + [1] * len(completion)
                f.write(json.dumps({"input_ids": ids, "loss_mask": mask}) + "\n")
    print("tiny-sft: train.jsonl 48, eval.jsonl 12 examples")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    tok_dir = os.path.join(out, "tiny-tokenizer")
    qcfg = dict(hidden=32, ff=64, layers=2, heads=4, kv=2, head_dim=8, bias=True, tied=True)
    make_model(out, "tiny-student-qwen2", qcfg, {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": VOCAB,
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "rope_scaling": None, "tie_word_embeddings": True, "bos_token_id": BOS,
        "eos_token_id": EOS, "torch_dtype": "float32", "hidden_act": "silu",
        "use_sliding_window": False}, "F32", 11, tok_dir)
    lcfg = dict(hidden=32, ff=64, layers=2, heads=4, kv=1, head_dim=8, bias=False, tied=False)
    make_model(out, "tiny-student-llama", lcfg, {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 32,
                            "rope_theta": 500000.0},
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": BOS, "eos_token_id": EOS, "dtype": "bfloat16", "hidden_act": "silu"},
        "BF16", 12, tok_dir)
    make_data(out)


if __name__ == "__main__":
    main()
