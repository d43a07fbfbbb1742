#!/usr/bin/env python3
"""Generates the bulk part of the tokenizer test corpus from the hand-written part.

    python3 tests/ref/make_tokenizer_corpus.py [tests/fixtures/tokenizer/corpus]

The hand-written files in the corpus directory (en_prose.txt, code_*.txt, zh.txt, ...) are the
seed. This script writes gen_*.txt next to them: numbers, whitespace oddities, decomposed
(NFD) text, special-token strings in odd places, mixed and long runs. It is deterministic (a
fixed seed; only the standard library) so re-running it reproduces the committed files
byte for byte. Whatever it writes must then be tokenized by the references again
(tests/ref/make_tokenizer_refs.js).
"""
import random
import sys
import unicodedata
from pathlib import Path

SEED = 20250214


def seed_lines(corpus: Path) -> list[str]:
    lines = []
    for p in sorted(corpus.glob("*.txt")):
        if p.name.startswith("gen_"):
            continue
        lines += [ln for ln in p.read_text(encoding="utf-8").split("\n") if ln.strip()]
    return lines


def numbers(rng: random.Random) -> str:
    out = []
    digits = "0123456789"
    for n in list(range(1, 41)) + [50, 64, 80, 100, 128, 200, 333]:
        out.append("".join(rng.choice(digits) for _ in range(n)))
    for _ in range(300):
        v = rng.randrange(10**rng.randint(1, 15))
        out.append(rng.choice([
            f"{v:,}", f"{v:_}", f"{v:,}".replace(",", " "), f"{v:,}".replace(",", "."),
            f"-{v}", f"+{v}", f"{v / 1000:.3f}", f"{v:e}", f"{v:#x}", f"{v:#o}", f"{v:#b}",
            f"{v}%", f"${v:,}.{rng.randrange(100):02d}", f"{v}th", f"#{v}", f"v{v % 10}.{v % 7}.{v % 13}",
            f"{v}px", f"{v}ms", f"x{v}y", f"{v}km/h", f"({v})", f"[{v}]", f"{v}...{v + 1}",
        ]))
    for _ in range(120):
        y, mo, d = rng.randint(1800, 2099), rng.randint(1, 12), rng.randint(1, 28)
        h, mi, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
        out.append(rng.choice([
            f"{y}-{mo:02d}-{d:02d}", f"{d}/{mo}/{y}", f"{mo:02d}/{d:02d}/{y % 100:02d}",
            f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z", f"{h:02d}:{mi:02d}:{s:02d}.{rng.randrange(1000):03d}",
            f"{y}年{mo}月{d}日", f"{d}.{mo}.{y}", f"{h}h{mi:02d}",
        ]))
    for _ in range(40):
        out.append(".".join(str(rng.randrange(256)) for _ in range(4)))
        out.append("+%d %d %d %d" % (rng.randint(1, 99), rng.randint(100, 999), rng.randint(100, 999), rng.randint(1000, 9999)))
        out.append("%08x-%04x-%04x-%04x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48)))
        out.append("%040x" % rng.getrandbits(160))
    wide = "０１２３４５６７８９"
    arabic = "٠١٢٣٤٥٦٧٨٩"
    persian = "۰۱۲۳۴۵۶۷۸۹"
    deva = "०१२३४५६७८९"
    beng = "০১২৩৪৫৬৭৮৯"
    thai = "๐๑๒๓๔๕๖๗๘๙"
    sup = "⁰¹²³⁴⁵⁶⁷⁸⁹"
    sub = "₀₁₂₃₄₅₆₇₈₉"
    circ = "⓪①②③④⑤⑥⑦⑧⑨"
    mathbold = "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"
    for table in (wide, arabic, persian, deva, beng, thai, sup, sub, circ, mathbold):
        for n in (1, 2, 3, 4, 7, 12):
            out.append("".join(rng.choice(table) for _ in range(n)))
        out.append("12" + "".join(rng.choice(table) for _ in range(3)) + "345")
    out.append("MMXXV MCMLXXXIV XLII Ⅻ Ⅳ ⅸ")
    out.append("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803482534211706798214808651328230664709384460955058223172535940812848111745028410270193852110555964462294895493038196")
    out.append("2^64 = 18446744073709551616; 2^128 = 340282366920938463463374607431768211456; 100! = 93326215443944152681699238856266700490715968264381621468592963895217599993229915608941463976156518286253697920827223758251185210916864000000000000000000000000")
    rng.shuffle(out)
    lines, cur = [], []
    for tok in out:
        cur.append(tok)
        if rng.random() < 0.15:
            lines.append(rng.choice([" ", ", ", "; ", " | ", "\t"]).join(cur))
            cur = []
    lines.append(" ".join(cur))
    return "\n".join(lines) + "\n"


SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", " \t", "\t ", "\u00a0", "\u202f", "\u3000", "\u2002",
          "\u2003", "\u2009", "\u200a", "\u2007", "\u2005", "\u1680", "\u205f", "\u000b", "\u000c",
          "\u0085", "\u2028", "\u2029", "\ufeff", "\u200b", "\u180e", "\u00a0\u00a0", "\u3000\u3000", " \u00a0 "]
BREAKS = ["\n", "\r\n", "\r", "\n\n", "\r\n\r\n", "\n\n\n", " \n", "\t\n", "\n ", "\n\t", "  \r\n",
          "\n" + " " * 8, "\n\u3000", "\r\r\n"]


def whitespace(rng: random.Random, lines: list[str]) -> str:
    out = []
    for _ in range(340):
        words = rng.choice(lines).split(" ")
        pieces = []
        for w in words:
            pieces.append(w)
            pieces.append(rng.choice(SPACES) if rng.random() < 0.25 else " ")
        if rng.random() < 0.2:
            pieces.insert(0, " " * rng.randint(1, 24))
        out.append("".join(pieces).rstrip(" ") + (" " * rng.randint(1, 6) if rng.random() < 0.2 else ""))
        out.append(rng.choice(BREAKS))
    for n in (1, 2, 3, 7, 15, 16, 17, 31, 64, 100, 257):
        out.append("x" + " " * n + "y" + "\t" * (n % 9) + "z" + "\n" * (n % 5 + 1))
        out.append(" " * n + "\n")
        out.append("\u3000" * (n % 13) + "全角空格" + "\u00a0" * (n % 7) + "nbsp\n")
    out.append(" \n \n  \n\t\n\r\n\r\n   \r\n")
    return "".join(out)


def decomposed(rng: random.Random, lines: list[str]) -> str:
    out = []
    accented = [ln for ln in lines if any(ord(c) > 0x7f for c in ln)]
    for ln in rng.sample(accented, 160):
        form = rng.choice(["NFD", "NFD", "NFKD", "mixed"])
        if form == "mixed":
            ws = ln.split(" ")
            ln = " ".join(unicodedata.normalize("NFD", w) if rng.random() < 0.5 else w for w in ws)
        else:
            ln = unicodedata.normalize(form, ln)
        out.append(ln)
    # Hand-picked cases: mark reordering, singletons, Hangul jamo, CJK compatibility ideographs.
    out += [
        "a\u0301\u0323 a\u0323\u0301 \u1ea1\u0301 \u00e1\u0323 q\u0307\u0323 q\u0323\u0307",
        "\u212b \u2126 \u212a \u00c5 \u03a9 K \u0041\u030a \u03a9\u0301",
        "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af \u110b\u1161\u11ab\u1102\u1167\u11bc\u1112\u1161\u1109\u1166\u110b\u116d",
        "\uac00\u11a8 \ud55c\u11ab \u1100\u1161 \u1100\u1161\u11a8\u11a8",
        "\uf900\uf901\uf902 \ufa10\ufa12 \U0002f800\U0002f801 \u2126\u212b",
        "e\u0301e\u0300e\u0302e\u0308 n\u0303 c\u0327 o\u0308\u0304 u\u031b\u0300 a\u0306\u0303",
        "\u0915\u093c \u0916\u093c \u0921\u093c \u09a1\u09bc \u0b21\u0b3c \u0b47\u0b3e \u0bc6\u0bbe \u0d46\u0d3e",
        "\u304b\u3099 \u30cf\u309a \u3046\u3099 \u30a6\u3099 \u309b\u309c \uff76\uff9e",
        "\u0627\u0653 \u0627\u0654 \u0648\u0654 \u064a\u0654 \u05e9\u05c1 \u05e9\u05bc\u05c1",
        "\u1e9b\u0323 \u0344 \u0340\u0341 \u0374 \u037e \u0387 \u1f71 \u2000\u2001",
        "Zalgo: Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u0357\u0350\u0305l\u0304\u034bg\u036do\u0315\u0335",
        "combining on space and digits: \u0301 \u0308x 1\u20e3 a\u20dd b\u20de \u0020\u0301",
    ]
    rng.shuffle(out)
    return "\n".join(out) + "\n"


SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
            "</tool_call>", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>",
            "<｜Assistant｜>", "<｜▁pad▁｜>", "<｜tool▁sep｜>", "<|begin_of_text|>", "<|end_of_text|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>",
            "<|reserved_special_token_3|>", "<|vision_pad|>", "<|fim_pad|>", "<|repo_name|>",
            "<|im_", "im_end|>", "<｜User", "｜>", "<|", "|>", "<|<|", "|>|>", "< |im_end| >"]


def specials(rng: random.Random, lines: list[str]) -> str:
    out = []
    for _ in range(220):
        s = rng.choice(lines)
        for _ in range(rng.randint(1, 4)):
            i = rng.randint(0, len(s))
            tok = rng.choice(SPECIALS)
            pad = rng.choice(["", "", " ", "\n", "  ", "\t", "\n\n"])
            s = s[:i] + rng.choice(["", pad]) + tok + rng.choice(["", pad]) + s[i:]
        out.append(s)
    return "\n".join(out) + "\n"


def mixed(rng: random.Random, lines: list[str]) -> str:
    out = []
    words = [w for ln in lines for w in ln.split() if w]
    for _ in range(520):
        kind = rng.random()
        if kind < 0.45:
            s = rng.choice(lines)
            s = rng.choice([s, s, s.upper(), s.lower(), s.title(), s.swapcase()])
        elif kind < 0.75:
            s = " ".join(rng.choice(words) for _ in range(rng.randint(3, 30)))
        elif kind < 0.85:
            c = rng.choice("a-=_.!?*#~xz0 ")
            s = rng.choice(["", "word", "The "]) + c * rng.randint(2, 90) + rng.choice(["", "end", "!"])
        elif kind < 0.92:
            s = rng.choice([
                "https://example.org/path/to/page?q=%E4%B8%AD%E6%96%87&lang=zh-CN#section-2",
                "mailto:first.last+tag@sub.example.co.uk", "C:\\Users\\Public\\Documents\\report (final) v2.docx",
                "/usr/local/lib/python3.11/site-packages/torch/__init__.py:1024", "~/.cache/huggingface/hub/",
                "git@github.com:owner/repo.git", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==",
                "I'M, YOU'RE, HE'S, WE'VE, THEY'LL, SHE'D, DON'T, can't, won't, o'clock, rock 'n' roll, '90s, 'tis",
                "it's it'S IT's iT'S it’s (curly) — ’re ’ve ’ll ’d ’m ’s ’t",
            ])
        else:
            n = rng.randint(50, 400)
            s = rng.choice(["ha", "ab", "🙂", "中", "の", "데", "ـ", "=", "-", "\t", "é", "e\u0301"]) * n
        out.append(s)
    # Long unbroken runs: the pre-tokenizer yields one long piece and BPE works on all of it.
    zh = "".join(c for c in "".join(ln for ln in lines if any("\u4e00" <= ch <= "\u9fff" for ch in ln)) if "\u4e00" <= c <= "\u9fff")
    out.append(zh[:1200])
    out.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(600)))
    out.append(" " * 1000 + "after a thousand spaces")
    out.append("".join(rng.choice("0123456789") for _ in range(700)))
    out.append("👨‍👩‍👧‍👦" * 60)
    return "\n".join(out) + "\n"


def main() -> None:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "fixtures/tokenizer/corpus")
    lines = seed_lines(corpus)
    assert len(lines) > 300, "the hand-written corpus files are missing"
    rng = random.Random(SEED)
    parts = {
        "gen_numbers.txt": numbers(rng),
        "gen_whitespace.txt": whitespace(rng, lines),
        "gen_decomposed.txt": decomposed(rng, lines),
        "gen_specials.txt": specials(rng, lines),
        "gen_mixed.txt": mixed(rng, lines),
    }
    for name, text in parts.items():
        # newline="" keeps \r and \r\n exactly as generated.
        with open(corpus / name, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"{name}: {len(text.encode('utf-8'))} bytes")


if __name__ == "__main__":
    main()
