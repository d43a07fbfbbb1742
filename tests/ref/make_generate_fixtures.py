#!/usr/bin/env python3
"""Greedy-generation references for `r1-distill generate`, made by transformers' generate().

For each model directory given (default: the dense and DeepSeek-V3 fixtures), with the tiny
tokenizer (tests/fixtures/tiny-tokenizer), this writes tests/fixtures/generate/<model>.json:

  {"model": "qwen2-tied", "model_dir": "tests/fixtures/qwen2-tied",
   "tokenizer_dir": "tests/fixtures/tiny-tokenizer", "max_new_tokens": 24,
   "eos_ids": [...],                      config + generation_config + tokenizer eos, as generate
   "chat_cases": [                         chat-formatted prompts (models whose vocabulary holds
     {"messages": [...],                   the tokenizer's 320 ids)
      "prompt_ids": [...],                 apply_chat_template(messages, add_generation_prompt=True)
      "completion_ids": [...],             greedy generate, eos included when it stopped there
      "text": "...",                       tokenizer.decode of completion_ids without a final eos
      "exact_prefix": k,                   tokens before the first step whose top-2 logit margin
                                           is under 1e-3 (a near tie float32 rounding could flip)
      "min_margin": m}, ...],
   "token_cases": [{"prompt_ids": [...], "completion_ids": [...], "exact_prefix": k,
                    "min_margin": m}, ...],   token-id prompts (every model, no template)
   "transformers": "...", "torch": "..."}

Generation runs in float32 on the CPU, do_sample=False, num_beams=1, no logits processors,
max_new_tokens = min(24, max_position_embeddings - prompt length + 1) (what `generate` does at
the model's position limit), eos_token_id = the eos set above. An FP8 checkpoint is dequantized
(fp8 value x its block's scale_inv, with tests/ref/make_deepseek_fixtures.py's dequantize_fp8)
into a float32 copy first, as that script's reference does. The script checks its own work: the
template output ends with the R1 generation prompt, tokenizing the rendered text gives the same
ids, and one full forward pass over prompt + completion has the generated ids as its argmax at
every generated step (so the incremental generate was plain greedy).

Run (CPU; PyTorch 2.11, transformers 5.17, tokenizers 0.23):
    python3 tests/ref/make_generate_fixtures.py tests/fixtures/generate \\
        tests/fixtures/qwen2-tied tests/fixtures/llama3-bf16 \\
        tests/fixtures/deepseek-yarn tests/fixtures/deepseek-fp8 tests/fixtures/deepseek-qnull
(with no model directories, those five are used).
"""
import json
import os
import random
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_deepseek_fixtures import dequantize_fp8  # noqa: E402  (the same dequantization)

MAX_NEW = 24
MARGIN = 1e-3
TOKENIZER = "tests/fixtures/tiny-tokenizer"
DEFAULT_MODELS = ["tests/fixtures/qwen2-tied", "tests/fixtures/llama3-bf16",
                  "tests/fixtures/deepseek-yarn", "tests/fixtures/deepseek-fp8",
                  "tests/fixtures/deepseek-qnull"]

CONVERSATIONS = [
    [{"role": "user", "content": "What is 7 times 8?"}],
    [{"role": "system", "content": "You are a careful assistant."},
     {"role": "user", "content": "Solve: x + 3 = 10.\nPlease reason step by step, and put your "
                                 "final answer within \\boxed{}."}],
    [{"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "<think>\nsay hi\n</think>\n\nHello!"},
     {"role": "user", "content": "Name a prime number."}],
    [{"role": "user", "content": "Caf\u00e9 \u2014 na\u00efve? 3\u00b2=9 \u2713"}],
    [{"role": "user", "content": "Count: one, two, three,"}],
]


def fail(msg):
    print("make_generate_fixtures.py: " + msg, file=sys.stderr)
    sys.exit(1)


def eos_set(model_dir, tok):
    ids = set()
    for name in ("config.json", "generation_config.json"):
        p = os.path.join(model_dir, name)
        if os.path.exists(p):
            e = json.load(open(p)).get("eos_token_id")
            if isinstance(e, int):
                ids.add(e)
            elif isinstance(e, list):
                ids.update(x for x in e if isinstance(x, int))
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    return sorted(ids)


def load_model(model_dir, tmp):
    """float32 model; an FP8 checkpoint is dequantized into a plain copy under tmp first."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    q = cfg.get("quantization_config") or {}
    if q.get("quant_method") == "fp8":
        block = q["weight_block_size"]
        index = os.path.join(model_dir, "model.safetensors.index.json")
        if os.path.exists(index):
            files = sorted(set(json.load(open(index))["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        tensors = {}
        for f in files:
            tensors.update(load_file(os.path.join(model_dir, f)))
        n_layers = cfg["num_hidden_layers"]
        plain = {}
        for k, v in tensors.items():
            if k.endswith("_scale_inv") or k.startswith(f"model.layers.{n_layers}."):
                continue  # scales are folded in; the multi-token-prediction layer is not run
            if v.dtype == torch.float8_e4m3fn:
                plain[k] = dequantize_fp8(v, tensors[k + "_scale_inv"], block)
            else:
                plain[k] = v.float()
        save_file(plain, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        cfg.pop("quantization_config")
        cfg["torch_dtype"] = "float32"
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(cfg, f)
        model_dir = tmp
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    return model, cfg


def greedy(model, prompt, eos, max_pos):
    n_new = min(MAX_NEW, max_pos - len(prompt) + 1)
    if n_new < 1:
        fail(f"a prompt of {len(prompt)} tokens does not fit {max_pos} positions")
    gc = transformers.GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=n_new,
                                       eos_token_id=eos, pad_token_id=eos[0])
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             generation_config=gc, output_logits=True,
                             return_dict_in_generate=True)
    gen = out.sequences[0, len(prompt):].tolist()
    logits = torch.stack([l[0].float() for l in out.logits])  # [steps, vocab]
    if len(gen) != logits.shape[0]:
        fail(f"generate returned {len(gen)} tokens and {logits.shape[0]} logit rows")
    top2 = logits.topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    exact = next((i for i, m in enumerate(margins) if m < MARGIN), len(gen))
    # Plain greedy: the argmax of each step is the generated token, and one full forward pass
    # over prompt + completion agrees with the incremental one.
    if logits.argmax(-1).tolist() != gen:
        fail("generate's tokens are not the argmax of its logits (a logits processor ran?)")
    with torch.no_grad():
        full = model(torch.tensor([prompt + gen])).logits[0].float()
    again = full[len(prompt) - 1: len(prompt) - 1 + len(gen)].argmax(-1).tolist()
    if again[:exact] != gen[:exact]:
        fail("a full forward pass disagrees with incremental generate before any near tie")
    if gen and gen[-1] not in eos and len(gen) != n_new:
        fail(f"generate stopped after {len(gen)} tokens without eos (wanted {n_new})")
    return gen, exact, min(margins) if margins else float("inf")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/generate"
    models = sys.argv[2:] or DEFAULT_MODELS
    os.makedirs(out, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    n_tok = len(tok)
    for model_dir in models:
        name = os.path.basename(os.path.normpath(model_dir))
        with tempfile.TemporaryDirectory() as tmp:
            model, cfg = load_model(model_dir, tmp)
            vocab = cfg["vocab_size"]
            max_pos = cfg["max_position_embeddings"]
            eos = eos_set(model_dir, tok)
            result = {"model": name, "model_dir": model_dir, "tokenizer_dir": TOKENIZER,
                      "max_new_tokens": MAX_NEW, "eos_ids": eos, "chat_cases": [],
                      "token_cases": [], "transformers": transformers.__version__,
                      "torch": torch.__version__}
            if vocab >= n_tok:
                for msgs in CONVERSATIONS:
                    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
                    if not text.endswith("<\uff5cAssistant\uff5c><think>\n"):
                        fail(f"the template does not end with the R1 generation prompt: {text!r}")
                    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
                    if hasattr(ids, "input_ids"):
                        ids = ids["input_ids"]
                    ids = list(ids)
                    if ids != tok.encode(text, add_special_tokens=False):
                        fail("apply_chat_template ids differ from encoding its text")
                    gen, exact, margin = greedy(model, ids, eos, max_pos)
                    body = gen[:-1] if gen and gen[-1] in eos else gen
                    result["chat_cases"].append({
                        "messages": msgs, "prompt_ids": ids, "completion_ids": gen,
                        "text": tok.decode(body, skip_special_tokens=False),
                        "exact_prefix": exact, "min_margin": margin})
            # Token-id prompts are drawn until four continue without a near tie to the end, so
            # float32 rounding cannot flip a token the test compares exactly.
            rng = random.Random(11)
            for _ in range(40):
                if len(result["token_cases"]) == 4:
                    break
                ids = [rng.randrange(0, vocab) for _ in range(rng.randrange(1, 11))]
                gen, exact, margin = greedy(model, ids, eos, max_pos)
                if exact == len(gen):
                    result["token_cases"].append({"prompt_ids": ids, "completion_ids": gen,
                                                  "exact_prefix": exact, "min_margin": margin})
            if len(result["token_cases"]) < 4:
                fail(f"{name}: fewer than 4 of 40 token prompts continue without a near tie")
        cases = result["chat_cases"] + result["token_cases"]
        full = sum(c["exact_prefix"] == len(c["completion_ids"]) for c in cases)
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(result, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"{name}: {len(result['chat_cases'])} chat + {len(result['token_cases'])} token "
              f"cases, {full} exact to the end, eos {eos}")


if __name__ == "__main__":
    main()
