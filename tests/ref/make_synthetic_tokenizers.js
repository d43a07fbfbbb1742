#!/usr/bin/env node
// Small synthetic tokenizer.json files that exercise what the three real ones do not (lstrip,
// rstrip, single_word and normalized added tokens, ByteLevel add_prefix_space and use_regex,
// TemplateProcessing with BOS and EOS, a String Split, unk_token with fuse_unk, ignore_merges on
// a word the merges cannot reach), with the HF Rust tokenizer's (npm `tokenizers`) ids for a set
// of strings. Run by tests/ref/make_tokenizer_refs.sh; writes tests/fixtures/tokenizer/synthetic/
//   <variant>/tokenizer.json
//   <variant>/expected.tsv   one line per string: base64(text) TAB ids TAB ids with special
//                            tokens TAB base64(decode(ids)) TAB base64(decode(ids with special
//                            tokens, skip_special_tokens=true)); an empty field is written -
// The merges are learnt here by a plain BPE trainer on the English prose of the corpus, so the
// vocabulary is small (~600 tokens) but realistic.
'use strict';
const fs = require('fs');
const path = require('path');

const [nodeModules, root] = process.argv.slice(2);
const { Tokenizer } = require(path.join(nodeModules, 'tokenizers'));
const outDir = path.join(root, 'tests/fixtures/tokenizer/synthetic');

// GPT-2's bytes_to_unicode.
const BYTE_CHAR = (() => {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = bs.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++);
  return map;
})();
const toByteLevel = (s) => [...Buffer.from(s, 'utf8')].map((b) => BYTE_CHAR[b]).join('');

function trainMerges(text, count) {
  const re = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const freq = new Map();
  for (const m of text.matchAll(re)) {
    const w = toByteLevel(m[0]);
    freq.set(w, (freq.get(w) || 0) + 1);
  }
  let words = [...freq.entries()].map(([w, f]) => [[...w], f]);
  const merges = [];
  for (let k = 0; k < count; k++) {
    const pairs = new Map();
    for (const [syms, f] of words)
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = syms[i] + ' ' + syms[i + 1];
        pairs.set(key, (pairs.get(key) || 0) + f);
      }
    let best = null, bestF = 0;
    for (const [key, f] of pairs) if (f > bestF || (f === bestF && key < best)) (best = key), (bestF = f);
    if (!best || bestF < 2) break;
    const [a, b] = best.split(' ');
    merges.push([a, b]);
    words = words.map(([syms, f]) => {
      const out = [];
      for (let i = 0; i < syms.length; i++)
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) out.push(a + b), i++;
        else out.push(syms[i]);
      return [out, f];
    });
  }
  return merges;
}

const prose = fs.readFileSync(path.join(root, 'tests/fixtures/tokenizer/corpus/en_prose.txt'), 'utf8');
const MERGES = trainMerges(prose, 320);

function vocabFor(merges, { drop = [], extra = [] } = {}) {
  const vocab = {};
  let id = 0;
  for (let b = 0; b < 256; b++) if (!drop.includes(b)) vocab[BYTE_CHAR[b]] = id++;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = id++;
  for (const t of extra) if (!(t in vocab)) vocab[t] = id++;
  return vocab;
}

const added = (id, content, o = {}) => ({
  id, content, single_word: !!o.single_word, lstrip: !!o.lstrip, rstrip: !!o.rstrip,
  normalized: o.normalized ?? !o.special, special: !!o.special,
});
const byteLevel = (aps, regex) => ({ type: 'ByteLevel', add_prefix_space: aps, trim_offsets: true, use_regex: regex });
const LLAMA_RE = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const DEEPSEEK_RE = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

function model(vocab, merges, extra = {}) {
  return { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
           fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges, ...extra };
}

function variants() {
  const v = {};
  {
    const vocab = vocabFor(MERGES);
    const n = Object.keys(vocab).length;
    v.gpt2_template = {
      version: '1.0', truncation: null, padding: null,
      added_tokens: [
        added(n, '<s>', { special: true }), added(n + 1, '</s>', { special: true }),
        added(n + 2, '<mask>', { special: true, lstrip: true, rstrip: true }),
        added(n + 3, '[ANS]', { single_word: true, normalized: false }),
        added(n + 4, 'xyz!', { normalized: true }),
        added(n + 5, ' spaced ', { special: true }),
      ],
      normalizer: null,
      pre_tokenizer: byteLevel(true, true),
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<s>': { id: '<s>', ids: [n], tokens: ['<s>'] }, '</s>': { id: '</s>', ids: [n + 1], tokens: ['</s>'] } },
      },
      decoder: byteLevel(true, true),
      model: model(vocab, MERGES.map(([a, b]) => `${a} ${b}`)),
    };
  }
  {
    const word = toByteLevel(' supercalifragilistic');
    const vocab = vocabFor(MERGES, { extra: [word] });
    const n = Object.keys(vocab).length;
    v.llama_like = {
      version: '1.0', truncation: null, padding: null,
      added_tokens: [
        added(n, '<|bos|>', { special: true, normalized: false }),
        added(n + 1, 'cafe\u0301', { normalized: true }),
        added(n + 2, '<|eos|>', { special: true, normalized: false }),
      ],
      normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }] },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA_RE }, behavior: 'Isolated', invert: false }, byteLevel(false, false)] },
      post_processor: { type: 'Sequence', processors: [byteLevel(true, false), {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|bos|>': { id: '<|bos|>', ids: [n], tokens: ['<|bos|>'] } },
      }] },
      decoder: byteLevel(true, true),
      model: model(vocab, MERGES, { ignore_merges: true }),
    };
  }
  {
    // No '~' (126) or '^' (94) bytes: they become <unk>, fused when adjacent.
    const merges = MERGES.filter(([a, b]) => !(a + b).includes('~') && !(a + b).includes('^'));
    const vocab = vocabFor(merges, { drop: [94, 126], extra: ['<unk>'] });
    const n = Object.keys(vocab).length;
    v.deepseek_like = {
      version: '1.0', truncation: null, padding: null,
      added_tokens: [added(vocab['<unk>'], '<unk>', { special: true, normalized: false }),
                     added(n, '<｜User｜>', { special: false, normalized: true })],
      normalizer: { type: 'Sequence', normalizers: [] },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { String: '::' }, behavior: 'Isolated', invert: false },
        { type: 'Split', pattern: { Regex: '\\p{N}{1,3}' }, behavior: 'Isolated', invert: false },
        { type: 'Split', pattern: { Regex: '[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+' }, behavior: 'Isolated', invert: false },
        { type: 'Split', pattern: { Regex: DEEPSEEK_RE }, behavior: 'Isolated', invert: false },
        byteLevel(false, false)] },
      post_processor: byteLevel(true, true),
      decoder: byteLevel(true, true),
      model: model(vocab, merges.map(([a, b]) => `${a} ${b}`), { unk_token: '<unk>', fuse_unk: true }),
    };
  }
  {
    const vocab = vocabFor(MERGES);
    v.prefix_no_regex = {
      version: '1.0', truncation: null, padding: null, added_tokens: [],
      normalizer: null, pre_tokenizer: byteLevel(true, false), post_processor: null,
      decoder: byteLevel(false, false), model: model(vocab, MERGES),
    };
  }
  return v;
}

const STRINGS = [
  '', ' ', 'Hello world', ' Hello world', 'the keeper wrote in the ledger', "I'm sure it's the keeper's",
  '<mask>', 'a <mask> b', 'a<mask>b', 'a \t<mask>\t b', '<mask><mask>', ' <mask>  <mask> ',
  '[ANS]', 'x [ANS] y', 'x[ANS] y', 'x [ANS]y', '([ANS])', '_[ANS]', 'é[ANS]', '[ANS][ANS]',
  'xyz!', 'axyz!b', ' spaced ', 'a spaced b', 'not  spaced  ',
  'café', 'cafe\u0301', 'un café au lait', 'CAFÉ', 'cafe\u0301s',
  ' supercalifragilistic', 'supercalifragilistic', 'a supercalifragilistic day',
  '<|bos|>hi', 'hi<|eos|>', '<s>x</s>', '<｜User｜>hello', 'x<｜User｜>y',
  'a::b::c', ':::', '2024-02-29 12345678', '中文日本語テキスト', 'ﾊﾝｶｸ',
  '~^~', 'a~b^^c', '~~~', 'emoji 👨‍👩‍👧 ok', 'tabs\tand\r\nCRLF\n\n', '   leading', 'trailing   ',
  'the the the the the the the the the the the the the the the the the the the the the',
  "Don't SHOUT'LL IT'S", '123 4567 89', 'x\u00a0y\u3000z\u2009w',
];

async function main() {
  for (const [name, json] of Object.entries(variants())) {
    const dir = path.join(outDir, name);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(file, JSON.stringify(json, null, 1) + '\n');
    const t = Tokenizer.fromFile(file);
    const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
    const rows = [];
    for (const s of STRINGS) {
      const ids = (await t.encode(s, null, { addSpecialTokens: false })).getIds();
      const sids = (await t.encode(s, null, { addSpecialTokens: true })).getIds();
      rows.push([b64(s), ids.join(' '), sids.join(' '), b64(await t.decode(ids, false)),
                 b64(await t.decode(sids, true))].map((f) => f || '-').join('\t'));
    }
    fs.writeFileSync(path.join(dir, 'expected.tsv'), rows.join('\n') + '\n');
    console.log(`synthetic/${name}: ${Object.keys(json.model.vocab).length} vocab, ${json.model.merges.length} merges, ${STRINGS.length} strings`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
