#!/usr/bin/env node
// The peers' side of bench/tokenizer.sh: load time and encode throughput of transformers.js
// (@lenml/tokenizers) and of the HF Rust tokenizer's Node binding on the same inputs.
// Prints "tjs_load_ms tjs_mb_s rust_load_ms rust_mb_s".
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';

const require = createRequire(import.meta.url);
const [nodeModules, name, work] = process.argv.slice(2);
const { TokenizerLoader } = require(path.join(nodeModules, '@lenml/tokenizers'));
const { Tokenizer } = require(path.join(nodeModules, 'tokenizers'));
const dir = path.join(nodeModules, `@lenml/tokenizer-${name}/models`);
const texts = fs.readFileSync(work, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

let tjsLoad = Infinity, t;
for (let i = 0; i < 3; i++) {
  const t0 = process.hrtime.bigint();
  t = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
  });
  tjsLoad = Math.min(tjsLoad, ms(t0));
}
let tjsBest = Infinity;
for (let pass = 0; pass < 3; pass++) {
  const t0 = process.hrtime.bigint();
  for (const s of texts) t.encode(s, { add_special_tokens: false });
  tjsBest = Math.min(tjsBest, ms(t0));
}

let rustLoad = Infinity, r;
for (let i = 0; i < 3; i++) {
  const t0 = process.hrtime.bigint();
  r = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  rustLoad = Math.min(rustLoad, ms(t0));
}
let rustBest = Infinity;
for (let pass = 0; pass < 3; pass++) {
  const t0 = process.hrtime.bigint();
  for (const s of texts) await r.encode(s, null, { addSpecialTokens: false });
  rustBest = Math.min(rustBest, ms(t0));
}
console.log(tjsLoad.toFixed(1), (bytes / tjsBest / 1e3).toFixed(3), rustLoad.toFixed(1), (bytes / rustBest / 1e3).toFixed(3));
