#!/usr/bin/env python3
"""Reference fixtures for the DeepSeek-V3 forward pass (MLA + MoE), made by transformers.

Each fixture is a small random deepseek_v3 checkpoint written the way DeepSeek publishes theirs
(one tensor per routed expert, BF16 or FP8 e4m3 linear weights with F32 `weight_scale_inv` block
scales, an F32 `e_score_correction_bias`) plus the logits transformers' DeepseekV3ForCausalLM
computes in float32 for a fixed token sequence:

  tests/fixtures/<name>/config.json        the model config
  tests/fixtures/<name>/model.safetensors  weights (or model-0000k-of-00000n.safetensors shards
                                           with model.safetensors.index.json)
  tests/fixtures/<name>/ref.json           {"tokens": [...], "shape": [T, V], "argmax": [...], ...}
  tests/fixtures/<name>/logits.f32         float32 little-endian logits [T, V]

transformers 5 keeps the routed experts fused in memory (mlp.experts.gate_up_proj [E, 2I, d],
mlp.experts.down_proj [E, d, I]), so this script writes the checkpoint files itself with
safetensors' save_file, in DeepSeek's per-expert names and dtypes, and proves the naming by
loading the files back with from_pretrained and requiring the same parameters and logits.

Cases:
  deepseek-yarn   BF16 weights, config.json in the published (transformers 4) layout with
                  rope_scaling {type: yarn}: factor 4 over 32 original positions, 48 tokens, a
                  rope dimension whose YaRN ramp is fractional, mscale != mscale_all_dim (so both
                  the cos/sin multiplier and the mscale^2 softmax correction are exercised), a
                  non-zero correction bias that changes routing decisions, 12 experts in 4 groups
                  (2 kept), 2 shared experts, a dense first layer, v_head_dim != qk_nope_head_dim.
  deepseek-fp8    FP8 e4m3 linear weights with [32, 32] block scales (partial edge blocks on both
                  axes), split over two shards with an index that puts some weight_scale_inv in
                  the other shard than its weight, a multi-token-prediction layer present in the
                  files (num_nextn_predict_layers 1) that the forward ignores, 8 experts in 2
                  groups (1 kept). The reference is the model with every FP8 weight dequantized
                  in float32 (fp8 value * scale_inv of its block); that model is also written as
                  a plain checkpoint and reloaded with from_pretrained to prove the names.
  deepseek-qnull  q_lora_rank null (a plain q_proj), rope_interleave false, one expert group,
                  norm_topk_prob false, routed_scaling_factor 1, default rope; config.json as
                  transformers 5 writes it (rope_parameters).

Every case checks, and reseeds the random weights until it holds, that no routing decision and
no argmax is a near tie (margins >= 1e-3), so float32 rounding differences between
implementations cannot flip an expert choice.

Run: python3 tests/ref/make_deepseek_fixtures.py tests/fixtures   (PyTorch + transformers; CPU)
"""
import json
import math
import os
import shutil
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

MARGIN = 1e-3


def fail(msg, model=None):
    if model is not None:
        print("model state_dict keys:", file=sys.stderr)
        for k, v in model.state_dict().items():
            print("  ", k, tuple(v.shape), v.dtype, file=sys.stderr)
    raise SystemExit("make_deepseek_fixtures: " + msg)


# ---- the config -----------------------------------------------------------------------------

def published_config(c):
    """config.json in the layout DeepSeek publishes (transformers 4: rope_scaling at top level)."""
    out = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "scoring_func": "sigmoid",
        "topk_method": "noaux_tc",
        "moe_layer_freq": 1,
        "ep_size": 1,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
    }
    out.update(c)
    return out


def build_config(cfg_json):
    """The transformers config, parsed from the config.json text we ship (quantization_config
    removed: the in-memory reference model is the dequantized one)."""
    d = tempfile.mkdtemp()
    j = dict(cfg_json)
    j.pop("quantization_config", None)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(j, f)
    cfg = DeepseekV3Config.from_pretrained(d)
    shutil.rmtree(d)
    cfg._attn_implementation = "eager"
    return cfg


# ---- random weights ---------------------------------------------------------------------------

def randomize(model, seed):
    """Unit-scale activations: linear weights ~ N(0, 1/fan_in), norms 1 + 0.2 N(0,1), embeddings
    N(0,1), correction bias 0.15 N(0,1); then every value rounded to bf16 (the on-disk dtype)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * r)
            elif n.endswith("embed_tokens.weight"):
                p.copy_(r)
            else:
                p.copy_(r / math.sqrt(p.shape[-1]))
            p.copy_(p.bfloat16().float())
        for n, b in model.named_buffers():
            if n.endswith("e_score_correction_bias"):
                b.copy_(0.15 * torch.randn(b.shape, generator=g))


# ---- DeepSeek's checkpoint naming -----------------------------------------------------------

def deepseek_tensors(model, cfg):
    """The in-memory state dict in DeepSeek's published names: routed experts one by one."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().clone().float()
        if k.endswith("mlp.experts.gate_up_proj"):
            pre = k[: -len("gate_up_proj")]
            inter = cfg.moe_intermediate_size
            if v.shape[1] != 2 * inter:
                fail(f"{k} has shape {tuple(v.shape)}; expected [E, 2*{inter}, d]", model)
            for e in range(v.shape[0]):
                out[f"{pre}{e}.gate_proj.weight"] = v[e, :inter].contiguous()
                out[f"{pre}{e}.up_proj.weight"] = v[e, inter:].contiguous()
        elif k.endswith("mlp.experts.down_proj"):
            pre = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[f"{pre}{e}.down_proj.weight"] = v[e].contiguous()
        else:
            out[k] = v
    return out


def expected_names(cfg):
    """What DeepSeek's checkpoints hold for this config (without MTP layers)."""
    n = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        n |= {p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
        a = p + "self_attn."
        if cfg.q_lora_rank is None:
            n.add(a + "q_proj.weight")
        else:
            n |= {a + "q_a_proj.weight", a + "q_a_layernorm.weight", a + "q_b_proj.weight"}
        n |= {a + "kv_a_proj_with_mqa.weight", a + "kv_a_layernorm.weight",
              a + "kv_b_proj.weight", a + "o_proj.weight"}
        m = p + "mlp."
        if i < cfg.first_k_dense_replace:
            n |= {m + "gate_proj.weight", m + "up_proj.weight", m + "down_proj.weight"}
        else:
            n |= {m + "gate.weight", m + "gate.e_score_correction_bias"}
            for e in range(cfg.n_routed_experts):
                n |= {f"{m}experts.{e}.{w}_proj.weight" for w in ("gate", "up", "down")}
            n |= {f"{m}shared_experts.{w}_proj.weight" for w in ("gate", "up", "down")}
    return n


def mtp_tensors(cfg, layer, g):
    """A multi-token-prediction module as DeepSeek stores it (model.layers.<num_hidden_layers>):
    enorm, hnorm, eh_proj, a full MoE decoder layer and its own embedding and head. Random
    values: the forward must ignore them."""
    d, V = cfg.hidden_size, cfg.vocab_size
    H, nope, rope, vd = (cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim,
                         cfg.v_head_dim)
    E, I = cfg.n_routed_experts, cfg.moe_intermediate_size
    p = f"model.layers.{layer}."
    shapes = {
        "enorm.weight": [d], "hnorm.weight": [d], "eh_proj.weight": [d, 2 * d],
        "embed_tokens.weight": [V, d], "shared_head.norm.weight": [d],
        "shared_head.head.weight": [V, d],
        "input_layernorm.weight": [d], "post_attention_layernorm.weight": [d],
        "self_attn.q_a_proj.weight": [cfg.q_lora_rank, d],
        "self_attn.q_a_layernorm.weight": [cfg.q_lora_rank],
        "self_attn.q_b_proj.weight": [H * (nope + rope), cfg.q_lora_rank],
        "self_attn.kv_a_proj_with_mqa.weight": [cfg.kv_lora_rank + rope, d],
        "self_attn.kv_a_layernorm.weight": [cfg.kv_lora_rank],
        "self_attn.kv_b_proj.weight": [H * (nope + vd), cfg.kv_lora_rank],
        "self_attn.o_proj.weight": [d, H * vd],
        "mlp.gate.weight": [E, d], "mlp.gate.e_score_correction_bias": [E],
        "mlp.shared_experts.gate_proj.weight": [I * cfg.n_shared_experts, d],
        "mlp.shared_experts.up_proj.weight": [I * cfg.n_shared_experts, d],
        "mlp.shared_experts.down_proj.weight": [d, I * cfg.n_shared_experts],
    }
    for e in range(E):
        shapes[f"mlp.experts.{e}.gate_proj.weight"] = [I, d]
        shapes[f"mlp.experts.{e}.up_proj.weight"] = [I, d]
        shapes[f"mlp.experts.{e}.down_proj.weight"] = [d, I]
    return {p + k: torch.randn(s, generator=g) / math.sqrt(s[-1]) for k, s in shapes.items()}


def is_fp8_weight(name):
    """DeepSeek's FP8 tensors: every *_proj linear weight (attention, dense MLP, experts, shared
    experts); embeddings, head, norms, the router weight and its bias stay BF16 / F32."""
    return name.endswith("_proj.weight") or name.endswith("_proj_with_mqa.weight")


def on_disk_dtype(name):
    return torch.float32 if name.endswith("e_score_correction_bias") else torch.bfloat16


# ---- FP8 block quantization (DeepSeek's weight_dequant, inverted) ----------------------------

def quantize_fp8(w, block):
    """w [M, N] float32 -> (float8_e4m3fn [M, N], scale_inv float32 [ceil(M/bm), ceil(N/bn)]),
    one scale per block, amax/448 so the block's largest value maps to the e4m3 maximum."""
    M, N = w.shape
    bm, bn = block
    sm, sn = (M + bm - 1) // bm, (N + bn - 1) // bn
    s = torch.empty(sm, sn, dtype=torch.float32)
    q = torch.empty(M, N, dtype=torch.float8_e4m3fn)
    for i in range(sm):
        for j in range(sn):
            blk = w[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn]
            sc = max(blk.abs().max().item(), 1e-12) / 448.0
            s[i, j] = sc
            q[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn] = (blk / s[i, j]).to(torch.float8_e4m3fn)
    return q, s


def dequantize_fp8(q, s, block):
    bm, bn = block
    M, N = q.shape
    full = s.repeat_interleave(bm, 0)[:M].repeat_interleave(bn, 1)[:, :N]
    return q.to(torch.float32) * full


# ---- routing and logit margins ----------------------------------------------------------------

def route(h, gate_w, bias, cfg):
    """DeepSeek's noaux_tc gate, written out: which experts each row of h picks, plus the
    smallest margin of any decision (group choice and expert choice)."""
    s = torch.sigmoid(h.float() @ gate_w.float().t())
    b = s + bias
    E, G, kg, k = cfg.n_routed_experts, cfg.n_group, cfg.topk_group, cfg.num_experts_per_tok
    gs = b.view(-1, G, E // G).topk(min(2, E // G), dim=-1)[0].sum(-1)
    margin = float("inf")
    if kg < G:
        srt = gs.sort(dim=-1, descending=True)[0]
        margin = min(margin, (srt[:, kg - 1] - srt[:, kg]).min().item())
    keep = torch.zeros_like(gs)
    keep.scatter_(1, gs.topk(kg, dim=-1)[1], 1.0)
    keep = keep.bool()
    masked = b.masked_fill(~keep.repeat_interleave(E // G, dim=1), float("-inf"))
    srt = masked.sort(dim=-1, descending=True)[0]
    if k < E:
        nxt = srt[:, k]
        fin = torch.isfinite(nxt)
        if fin.any():
            margin = min(margin, (srt[:, k - 1] - nxt)[fin].min().item())
    chosen = masked.topk(k, dim=-1)[1]
    return [set(r.tolist()) for r in chosen], margin


class RouterProbe:
    """Records each MoE gate's input and choice during a forward pass."""

    def __init__(self, model):
        self.calls = []
        self.hooks = []
        for layer in model.model.layers:
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None:
                self.hooks.append(gate.register_forward_hook(self.hook))

    def hook(self, module, inputs, output):
        idx = output[2] if isinstance(output, tuple) else output
        self.calls.append((module, inputs[0].detach().reshape(-1, inputs[0].shape[-1]).clone(),
                           idx.detach().clone()))

    def close(self):
        for h in self.hooks:
            h.remove()


def check_routing(model, cfg, tokens):
    """Runs the model; returns (logits [T, V], min routing margin, whether the correction bias
    changed any decision). Also checks our reading of the gate against transformers' choice."""
    probe = RouterProbe(model)
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].float()
    probe.close()
    margin, bias_matters = float("inf"), False
    for gate, h, idx in probe.calls:
        chosen, m = route(h, gate.weight, gate.e_score_correction_bias, cfg)
        theirs = [set(r.tolist()) for r in idx]
        if m >= MARGIN and chosen != theirs:
            fail(f"our reading of the router disagrees with transformers: {chosen} vs {theirs}")
        unbiased, _ = route(h, gate.weight, torch.zeros_like(gate.e_score_correction_bias), cfg)
        bias_matters |= unbiased != chosen
        margin = min(margin, m)
    return logits, margin, bias_matters


def logit_margin(logits):
    top2 = logits.topk(2, dim=-1)[0]
    return (top2[:, 0] - top2[:, 1]).min().item()


def rel_l2(a, b):
    return ((a - b).norm() / b.norm()).item()


# ---- writing a case ------------------------------------------------------------------------------

def write_ref(d, tokens, logits, extra):
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))
    ref = {"tokens": tokens, "shape": list(logits.shape), "argmax": logits.argmax(-1).tolist(),
           "transformers": transformers.__version__, "torch": torch.__version__}
    ref.update(extra)
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f)


def reload_and_compare(d, model, tokens, logits, what):
    """from_pretrained on the files we wrote must give the in-memory parameters and logits."""
    loaded = DeepseekV3ForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                   attn_implementation="eager").eval()
    mine, theirs = model.state_dict(), loaded.state_dict()
    if set(mine) != set(theirs):
        fail(f"{what}: reloaded keys differ: only in memory {sorted(set(mine) - set(theirs))}, "
             f"only reloaded {sorted(set(theirs) - set(mine))}", loaded)
    for k in mine:
        if not torch.equal(mine[k].float(), theirs[k].float()):
            fail(f"{what}: tensor {k} differs after from_pretrained (max abs diff "
                 f"{(mine[k].float() - theirs[k].float()).abs().max().item():.3g})", loaded)
    with torch.no_grad():
        again = loaded(torch.tensor([tokens])).logits[0].float()
    err = rel_l2(again, logits)
    if err > 1e-6:
        fail(f"{what}: reloaded logits differ from the in-memory model (rel L2 {err:.3g})")
    return err


def make_model(cfg_json, seed_base, tokens_fn, checks):
    """Builds the config, then tries seeds until the routing and argmax margins are safe and the
    case's own checks pass. Returns (cfg, model, tokens, logits, info)."""
    cfg = build_config(cfg_json)
    for attempt in range(50):
        seed = seed_base + attempt
        torch.manual_seed(seed)
        model = DeepseekV3ForCausalLM(cfg).float().eval()
        randomize(model, seed)
        tokens = tokens_fn(seed)
        logits, rmargin, bias_matters = check_routing(model, cfg, tokens)
        lmargin = logit_margin(logits)
        if rmargin >= MARGIN and lmargin >= MARGIN and checks(bias_matters):
            info = {"seed": seed, "min_router_margin": rmargin, "min_argmax_margin": lmargin}
            return cfg, model, tokens, logits, info
    fail("no seed in 50 gave safe routing and argmax margins")


def dump_case(out, name, files):
    d = os.path.join(out, name)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: {size} bytes: {sorted(os.listdir(d))}  ({files})")
    return size


# ---- the cases -------------------------------------------------------------------------------------

def case_yarn(out):
    name = "deepseek-yarn"
    c = published_config({
        "vocab_size": 256, "hidden_size": 64, "intermediate_size": 96,
        "moe_intermediate_size": 16, "num_hidden_layers": 3, "first_k_dense_replace": 1,
        "num_attention_heads": 4, "num_key_value_heads": 4,
        "q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 16,
        "v_head_dim": 12, "n_routed_experts": 12, "n_group": 4, "topk_group": 2,
        "num_experts_per_tok": 3, "n_shared_experts": 2, "routed_scaling_factor": 2.5,
        "norm_topk_prob": True, "num_nextn_predict_layers": 0,
        "max_position_embeddings": 128, "rope_theta": 10000.0,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                         "mscale_all_dim": 0.8},
    })
    T = 48
    cfg, model, tokens, logits, info = make_model(
        c, 100, lambda s: torch.randint(0, 256, (T,), generator=torch.Generator().manual_seed(s)).tolist(),
        lambda bias_matters: bias_matters)
    # The YaRN pieces the fixture is meant to exercise.
    rp = cfg.rope_parameters
    if rp.get("rope_type") != "yarn" or rp.get("factor") != 4.0:
        fail(f"{name}: rope_parameters parsed as {rp}")
    rot = model.model.rotary_emb
    default = 1.0 / (10000.0 ** (torch.arange(0, 16, 2, dtype=torch.float) / 16))
    ratio = (rot.inv_freq / default).tolist()
    if not any(0.26 < r < 0.99 for r in ratio):
        fail(f"{name}: no fractional YaRN ramp; inv_freq / default = {ratio}")
    if abs(rot.attention_scaling - 1.0) < 1e-3:
        fail(f"{name}: YaRN cos/sin multiplier is 1 ({rot.attention_scaling})")
    ms = 0.1 * 0.8 * math.log(4.0) + 1.0
    want = (16 + 16) ** -0.5 * ms * ms
    if abs(model.model.layers[0].self_attn.scaling - want) > 1e-9:
        fail(f"{name}: softmax scale {model.model.layers[0].self_attn.scaling} != {want}")
    if T <= 32:
        fail(f"{name}: positions do not pass original_max_position_embeddings")

    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    tensors = deepseek_tensors(model, cfg)
    if set(tensors) != expected_names(cfg):
        fail(f"{name}: names {sorted(set(tensors) ^ expected_names(cfg))} differ from DeepSeek's "
             "layout", model)
    save_file({k: v.to(on_disk_dtype(k)).contiguous() for k, v in sorted(tensors.items())},
              os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    err = reload_and_compare(d, model, tokens, logits, name)
    info.update({"reload_rel_l2": err, "yarn_inv_freq_ratio": ratio,
                 "yarn_attention_factor": rot.attention_scaling,
                 "softmax_scale": model.model.layers[0].self_attn.scaling})
    write_ref(d, tokens, logits, info)
    return dump_case(out, name, "bf16, one file")


def case_fp8(out):
    name = "deepseek-fp8"
    block = [32, 32]
    c = published_config({
        "vocab_size": 256, "hidden_size": 64, "intermediate_size": 80,
        "moe_intermediate_size": 24, "num_hidden_layers": 2, "first_k_dense_replace": 1,
        "num_attention_heads": 4, "num_key_value_heads": 4,
        "q_lora_rank": 48, "kv_lora_rank": 40, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
        "v_head_dim": 16, "n_routed_experts": 8, "n_group": 2, "topk_group": 1,
        "num_experts_per_tok": 2, "n_shared_experts": 1, "routed_scaling_factor": 2.5,
        "norm_topk_prob": True, "num_nextn_predict_layers": 1,
        "max_position_embeddings": 32, "rope_theta": 10000.0,
        "rope_scaling": {"type": "yarn", "factor": 2.0, "original_max_position_embeddings": 16,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                                "quant_method": "fp8", "weight_block_size": block},
    })
    T = 24
    cfg = build_config(c)

    def quantized_model(seed):
        torch.manual_seed(seed)
        model = DeepseekV3ForCausalLM(cfg).float().eval()
        randomize(model, seed)
        tensors = deepseek_tensors(model, cfg)
        disk = {}
        for k, v in tensors.items():
            if is_fp8_weight(k):
                q, s = quantize_fp8(v, block)
                disk[k], disk[k + "_scale_inv"] = q, s
            else:
                disk[k] = v.to(on_disk_dtype(k))
        # The reference model holds exactly the dequantized values.
        deq = {k: (dequantize_fp8(disk[k], disk[k + "_scale_inv"], block) if is_fp8_weight(k)
                   else disk[k].float()) for k in tensors}
        return model, disk, deq

    for attempt in range(50):
        seed = 200 + attempt
        model, disk, deq = quantized_model(seed)
        load_deepseek_into(model, deq, cfg)
        tokens = torch.randint(0, 256, (T,), generator=torch.Generator().manual_seed(seed)).tolist()
        logits, rmargin, bias_matters = check_routing(model, cfg, tokens)
        lmargin = logit_margin(logits)
        if rmargin >= MARGIN and lmargin >= MARGIN:
            break
    else:
        fail(f"{name}: no seed in 50 gave safe margins")
    info = {"seed": seed, "min_router_margin": rmargin, "min_argmax_margin": lmargin,
            "bias_changes_routing": bias_matters}

    # The MTP layer, in the files only.
    g = torch.Generator().manual_seed(seed + 1000)
    for k, v in mtp_tensors(cfg, cfg.num_hidden_layers, g).items():
        if is_fp8_weight(k):
            q, s = quantize_fp8(v, block)
            disk[k], disk[k + "_scale_inv"] = q, s
        else:
            disk[k] = v.to(on_disk_dtype(k))

    partial = [k for k, v in disk.items() if v.dtype == torch.float8_e4m3fn and
               (v.shape[0] % block[0] or v.shape[1] % block[1])]
    if not any(disk[k].shape[0] % block[0] for k in partial) or \
            not any(disk[k].shape[1] % block[1] for k in partial):
        fail(f"{name}: need partial edge blocks on both axes; have {partial}")

    # Two shards: embeddings and layer 0 in the first, the rest in the second; layer 0's
    # scales sit in the second shard, and layer 1's kv_b_proj weight in the second with its
    # scale in the first.
    def shard_of(k):
        base = k[: -len("_scale_inv")] if k.endswith("_scale_inv") else k
        first = base.startswith("model.embed_tokens") or base.startswith("model.layers.0.")
        if k.endswith("_scale_inv") and base.startswith("model.layers.0."):
            first = False
        if base == "model.layers.1.self_attn.kv_b_proj.weight":
            first = k.endswith("_scale_inv")
        return 1 if first else 2
    names = {1: "model-00001-of-000002.safetensors", 2: "model-00002-of-000002.safetensors"}
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    weight_map, total = {}, 0
    for s in (1, 2):
        part = {k: v.contiguous() for k, v in sorted(disk.items()) if shard_of(k) == s}
        save_file(part, os.path.join(d, names[s]), metadata={"format": "pt"})
        for k, v in part.items():
            weight_map[k] = names[s]
            total += v.numel() * v.element_size()
    split = [k for k in weight_map if k.endswith("_scale_inv") and
             weight_map[k] != weight_map[k[: -len("_scale_inv")]]]
    if not split:
        fail(f"{name}: no scale sits in another shard than its weight")
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
                  f, indent=2)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)

    # Prove the names and the dequantization: read our shards back through the index, dequantize
    # each F8 weight with the scale the index points to, write a plain checkpoint, reload it.
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        back = {}
        for k, f_ in weight_map.items():
            if f_ not in files:
                files[f_] = load_file(os.path.join(d, f_))
            back[k] = files[f_][k]
        plain = {}
        for k, v in back.items():
            if k.endswith("_scale_inv") or k.startswith(f"model.layers.{cfg.num_hidden_layers}."):
                continue
            if v.dtype == torch.float8_e4m3fn:
                plain[k] = dequantize_fp8(v, back[k + "_scale_inv"], block)
            else:
                plain[k] = v.float()
        save_file(plain, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        j = dict(c)
        j.pop("quantization_config")
        j["torch_dtype"] = "float32"
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(j, f)
        err = reload_and_compare(tmp, model, tokens, logits, name + " (dequantized)")
    info.update({"reload_rel_l2": err, "scales_in_other_shard": sorted(split),
                 "partial_block_weights": len(partial)})
    write_ref(d, tokens, logits, info)
    return dump_case(out, name, "fp8 e4m3 + scales, two shards")


def load_deepseek_into(model, tensors, cfg):
    """Inverse of deepseek_tensors: per-expert tensors back into the in-memory model."""
    sd = model.state_dict()
    new = {}
    for k in sd:
        if k.endswith("mlp.experts.gate_up_proj"):
            pre = k[: -len("gate_up_proj")]
            new[k] = torch.stack([torch.cat([tensors[f"{pre}{e}.gate_proj.weight"],
                                             tensors[f"{pre}{e}.up_proj.weight"]], 0)
                                  for e in range(sd[k].shape[0])])
        elif k.endswith("mlp.experts.down_proj"):
            pre = k[: -len("down_proj")]
            new[k] = torch.stack([tensors[f"{pre}{e}.down_proj.weight"]
                                  for e in range(sd[k].shape[0])])
        else:
            new[k] = tensors[k]
    model.load_state_dict(new, strict=True)


def case_qnull(out):
    name = "deepseek-qnull"
    T = 20
    cfg = DeepseekV3Config(
        vocab_size=256, hidden_size=64, intermediate_size=64, moe_intermediate_size=16,
        num_hidden_layers=2, first_k_dense_replace=1, num_attention_heads=4,
        num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16, qk_nope_head_dim=8,
        qk_rope_head_dim=8, v_head_dim=8, n_routed_experts=8, n_group=1, topk_group=1,
        num_experts_per_tok=2, n_shared_experts=1, routed_scaling_factor=1.0,
        norm_topk_prob=False, num_nextn_predict_layers=0, max_position_embeddings=64,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, rope_interleave=False,
        tie_word_embeddings=False, bos_token_id=0, eos_token_id=1, rms_norm_eps=1e-6)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    cfg.save_pretrained(d)  # transformers 5's own config.json layout
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    if "rope_parameters" not in c or c.get("q_lora_rank", 0) is not None or c.get("rope_interleave"):
        fail(f"{name}: unexpected saved config {c}")
    cfg, model, tokens, logits, info = make_model(
        c, 300, lambda s: torch.randint(0, 256, (T,), generator=torch.Generator().manual_seed(s)).tolist(),
        lambda bias_matters: True)
    tensors = deepseek_tensors(model, cfg)
    if set(tensors) != expected_names(cfg):
        fail(f"{name}: names {sorted(set(tensors) ^ expected_names(cfg))} differ from DeepSeek's "
             "layout", model)
    save_file({k: v.to(on_disk_dtype(k)).contiguous() for k, v in sorted(tensors.items())},
              os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    for n in os.listdir(d):
        if n.endswith(".json") and n != "config.json":
            os.remove(os.path.join(d, n))
    err = reload_and_compare(d, model, tokens, logits, name)
    info["reload_rel_l2"] = err
    write_ref(d, tokens, logits, info)
    return dump_case(out, name, "bf16, q_proj, transformers-5 config")


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    torch.set_num_threads(1)  # deterministic CPU reductions
    sizes = [case_yarn(out), case_fp8(out), case_qnull(out)]
    print(f"total {sum(sizes)} bytes")
