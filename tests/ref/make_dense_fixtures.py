#!/usr/bin/env python3
"""Reference fixtures for the dense (Qwen2 / Llama) forward pass, made by transformers.

Each fixture is a small random checkpoint plus the logits transformers computes for a fixed
token sequence:

  tests/fixtures/<name>/config.json        the model config (see each case for its layout)
  tests/fixtures/<name>/model.safetensors  weights as saved by save_pretrained
  tests/fixtures/<name>/ref.json           {"tokens": [...], "shape": [T, V], "argmax": [...]}
  tests/fixtures/<name>/logits.f32         float32 little-endian logits [T, V]

Cases:
  qwen2-tied   Qwen2, tied embeddings, GQA ratio 3 (6 heads, 2 KV heads), q/k/v biases, f32
               weights; config.json in the transformers-4 layout (rope_theta at top level).
  llama3-bf16  Llama with llama3 rope scaling (all three frequency bands in use), GQA ratio 2,
               bf16 weights on disk; config.json as transformers 5 saves it (rope_parameters).

Run: python3 tests/ref/make_dense_fixtures.py tests/fixtures   (PyTorch + transformers; CPU)
"""
import json
import os
import sys

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM


def save_case(out, name, model, tokens, config_override=None):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    if config_override is not None:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config_override, f, indent=2)
    # Reference: the saved checkpoint reloaded and run in float32, as a user would load it.
    ref = type(model).from_pretrained(d, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = ref(torch.tensor([tokens])).logits[0].float()
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump({"tokens": tokens, "shape": list(logits.shape),
                   "argmax": logits.argmax(-1).tolist(),
                   "transformers": transformers.__version__, "torch": torch.__version__}, f)
    for n in os.listdir(d):
        if n.endswith(".json") and n not in ("config.json", "ref.json", "generation_config.json"):
            os.remove(os.path.join(d, n))
    print(name, "logits", tuple(logits.shape), "argmax", logits.argmax(-1).tolist()[:8])


def qwen2_tied(out):
    torch.manual_seed(1)
    cfg = Qwen2Config(vocab_size=384, hidden_size=96, intermediate_size=160, num_hidden_layers=2,
                      num_attention_heads=6, num_key_value_heads=2, head_dim=16,
                      max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=[2, 3])
    model = Qwen2ForCausalLM(cfg).float().eval()
    with torch.no_grad():  # non-trivial norms and biases so a missed one shows
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    tokens = torch.randint(0, 384, (20,), generator=torch.Generator().manual_seed(2)).tolist()
    # transformers-4 layout, as the published Qwen2.5 checkpoints ship it.
    v4 = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 384,
          "hidden_size": 96, "intermediate_size": 160, "num_hidden_layers": 2,
          "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 16,
          "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
          "rope_scaling": None, "tie_word_embeddings": True, "bos_token_id": 1,
          "eos_token_id": [2, 3], "torch_dtype": "float32", "hidden_act": "silu",
          "use_sliding_window": False}
    save_case(out, "qwen2-tied", model, tokens, config_override=v4)


def llama3_bf16(out):
    torch.manual_seed(3)
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
            "rope_theta": 500000.0}
    cfg = LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                      max_position_embeddings=512, rms_norm_eps=1e-5,
                      rope_parameters=rope, tie_word_embeddings=False,
                      bos_token_id=0, eos_token_id=1)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    model = model.to(torch.bfloat16)
    tokens = torch.randint(0, 320, (40,), generator=torch.Generator().manual_seed(4)).tolist()
    save_case(out, "llama3-bf16", model, tokens)
    with open(os.path.join(out, "llama3-bf16", "config.json")) as f:
        c = json.load(f)
    assert "rope_parameters" in c and c["rope_parameters"]["rope_type"] == "llama3", c


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    qwen2_tied(out)
    llama3_bf16(out)
