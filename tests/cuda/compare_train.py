#!/usr/bin/env python3
"""Comparisons for the GPU training scripts (plain Python, no numpy).

  compare_train.py curve A.jsonl B.jsonl --max-rel X --mean-rel Y [--steps a-b] [--fall F]
      the "loss" of each step of B against A: every step within X relative, their mean within
      Y; with --fall, B's last loss below F times its first. Prints every 10th step.
      --key eval_loss compares the evaluation losses instead.
  compare_train.py weights A/model.safetensors B/model.safetensors BASE/model.safetensors --max-rel X
      || wA - wB || / || wB - wBASE || over all tensors (float32 or bf16): how far apart two runs
      ended, measured against how far the reference run moved.
  compare_train.py state A/optimizer.safetensors B/optimizer.safetensors --prefix P --max-rel X
      || A - B || / || B || over the tensors whose names start with P (exp_avg., exp_avg_sq.).
"""
import json
import math
import struct
import sys
from array import array


def losses(path, key="loss"):
    out = {}
    for line in open(path):
        j = json.loads(line)
        if key in j:
            out[j["step"]] = j[key]
    return out


def curve(args):
    opts = dict(zip(args[2::2], args[3::2]))
    key = opts.get("--key", "loss")
    a, b = losses(args[0], key), losses(args[1], key)
    max_rel, mean_rel = float(opts["--max-rel"]), float(opts["--mean-rel"])
    steps = sorted(set(a) & set(b))
    if key != "loss":
        steps = steps[-1:]
    if "--steps" in opts:
        lo, hi = map(int, opts["--steps"].split("-"))
        steps = [s for s in steps if lo <= s <= hi]
        assert len(steps) == hi - lo + 1, f"steps {lo}-{hi} missing: have {sorted(b)}"
    assert steps, "no common steps"
    rels = []
    for s in steps:
        r = abs(b[s] - a[s]) / abs(a[s])
        rels.append(r)
        if s % 10 == 0 or s == steps[0] or s == steps[-1]:
            print(f"  step {s:4d}  {args[0].split('/')[-1]} {a[s]:.6f}  {args[1].split('/')[-1]} {b[s]:.6f}  rel {r:.2e}")
    worst = max(range(len(rels)), key=lambda i: rels[i])
    mean = sum(rels) / len(rels)
    print(f"  {len(steps)} steps: max rel {rels[worst]:.2e} (step {steps[worst]}, tol {max_rel:g}), "
          f"mean rel {mean:.2e} (tol {mean_rel:g})")
    ok = rels[worst] <= max_rel and mean <= mean_rel
    if "--fall" in opts:
        first, last = b[steps[0]], b[steps[-1]]
        fell = last < float(opts["--fall"]) * first
        print(f"  loss {first:.4f} -> {last:.4f} (must fall below {opts['--fall']} x)")
        ok = ok and fell
    return ok


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, t in head.items():
        b, e = t["data_offsets"]
        if t["dtype"] == "F32":
            v = array("f")
            v.frombytes(data[b:e])
        elif t["dtype"] == "BF16":
            h = array("H")
            h.frombytes(data[b:e])
            v = array("f", struct.unpack("<%df" % len(h), struct.pack("<%dI" % len(h), *[x << 16 for x in h])))
        else:
            raise SystemExit(f"{path}: {name} has dtype {t['dtype']}")
        out[name] = v
    return out


def weights(args):
    a, b, base = read_st(args[0]), read_st(args[1]), read_st(args[2])
    max_rel = float(args[args.index("--max-rel") + 1])
    assert a.keys() == b.keys() == base.keys(), "different tensors"
    num = den = 0.0
    for k in a:
        for x, y, z in zip(a[k], b[k], base[k]):
            num += (x - y) ** 2
            den += (y - z) ** 2
    rel = math.sqrt(num / den) if den else math.sqrt(num)
    print(f"  weights: ||A - B|| / ||B - base|| = {rel:.3e} (tol {max_rel:g})")
    return rel <= max_rel


def state(args):
    a, b = read_st(args[0]), read_st(args[1])
    prefix = args[args.index("--prefix") + 1]
    max_rel = float(args[args.index("--max-rel") + 1])
    names = sorted(k for k in b if k.startswith(prefix))
    assert names and all(k in a for k in names), f"no {prefix}* tensors in common"
    num = den = 0.0
    for k in names:
        for x, y in zip(a[k], b[k]):
            num += (x - y) ** 2
            den += y * y
    rel = math.sqrt(num / den) if den else math.sqrt(num)
    print(f"  {prefix}*: ||A - B|| / ||B|| = {rel:.3e} over {len(names)} tensors (tol {max_rel:g})")
    return rel <= max_rel


if __name__ == "__main__":
    what = sys.argv[1]
    ok = {"curve": curve, "weights": weights, "state": state}[what](sys.argv[2:])
    sys.exit(0 if ok else 1)
