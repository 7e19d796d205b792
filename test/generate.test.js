'use strict';
// Generation: the KV cache against full recomputation on all three variants, greedy against the reference
// fixtures, sampling rules, stop handling, streaming of whole characters, the event loop, concurrency,
// batches, speculative decoding, errors and the command line.
const test = require('ava');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { GPT, generate, KVDecoder } = require('../dist');
const { distribution, sampleToken } = require('../dist/sampling');
const { Rng } = require('../dist/random');
const { relErr } = require('./helpers/util');
const { byteTokenizer } = require('./helpers/bytetok');

const FIX = path.join(__dirname, 'data', 'fixtures');
const loadFix = (v) => GPT.load(path.join(FIX, `${v}-tiny`));
const caseOf = (v) => JSON.parse(fs.readFileSync(path.join(FIX, `${v}-tiny`, 'case.json'), 'utf8'));

for (const v of ['gpt1', 'gpt2', 'gpt3']) {
  test(`${v}: KV-cache decoding matches full recomputation (logits within 1e-5)`, async (t) => {
    const m = await loadFix(v);
    const V = m.config.vocab_size;
    const seq = [5, 17, 33, 2, 90, 41, 7, 60, 12, 88, 3, 19, 27, 70, 44, 1, 9, 55, 66, 13]; // past gpt3's window of 8
    const dec = new KVDecoder(m, 1, 24);
    const prefill = 6;
    let logits = dec.forward(Int32Array.from(seq.slice(0, prefill)), prefill).slice();
    for (let i = prefill; i <= seq.length; i++) {
      const full = m.forward([seq.slice(0, i)]);
      const ref = full.subarray((i - 1) * V, i * V);
      t.true(relErr(logits, ref) < 1e-5, `position ${i}: ${relErr(logits, ref)}`);
      if (i < seq.length) logits = dec.forward(Int32Array.of(seq[i]), 1).slice();
    }
  });

  test(`${v}: greedy generate() equals the reference continuation`, async (t) => {
    const m = await loadFix(v);
    const c = caseOf(v);
    const r = await generate({ model: m, prompt: c.greedy.prompt, maxNewTokens: c.greedy.new_tokens.length, temperature: 0 });
    t.deepEqual(r.tokens, c.greedy.new_tokens);
    t.is(r.finishReason, 'length');
    t.is(r.text, undefined, 'ids in, no tokenizer for a 97-token vocabulary: no text');
  });
}

test('generate() from a checkpoint folder, cached; batches of prompts give each prompt its own result', async (t) => {
  const dir = path.join(FIX, 'gpt2-tiny');
  const c = caseOf('gpt2');
  const a = await generate({ model: dir, prompt: c.greedy.prompt, maxNewTokens: 12, temperature: 0 });
  t.deepEqual(a.tokens, c.greedy.new_tokens);
  const prompts = [c.greedy.prompt, [1, 2, 3, 4, 5], [9, 8], c.greedy.prompt];
  const many = await generate({ model: dir, prompt: prompts, maxNewTokens: 6, temperature: 0 });
  t.is(many.length, 4);
  for (let i = 0; i < prompts.length; i++) {
    const one = await generate({ model: dir, prompt: prompts[i], maxNewTokens: 6, temperature: 0 });
    t.deepEqual(many[i].tokens, one.tokens, `prompt ${i}`);
  }
});

test('sampling: topK 1 is greedy; the same seed repeats, another seed differs', async (t) => {
  const m = await loadFix('gpt2');
  const prompt = [3, 1, 4, 1, 5];
  const greedy = await generate({ model: m, prompt, maxNewTokens: 16, temperature: 0 });
  const k1 = await generate({ model: m, prompt, maxNewTokens: 16, temperature: 1.3, topK: 1, seed: 9 });
  t.deepEqual(k1.tokens, greedy.tokens);
  const s1 = await generate({ model: m, prompt, maxNewTokens: 24, temperature: 1, seed: 1 });
  const s1b = await generate({ model: m, prompt, maxNewTokens: 24, temperature: 1, seed: 1 });
  const s2 = await generate({ model: m, prompt, maxNewTokens: 24, temperature: 1, seed: 2 });
  t.deepEqual(s1.tokens, s1b.tokens);
  t.notDeepEqual(s1.tokens, s2.tokens);
});

test('top-p keeps the smallest most-likely set reaching the mass, renormalised; top-k cuts by rank', (t) => {
  // probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 from logits log(p)
  const p = [0.5, 0.25, 0.125, 0.0625, 0.0625];
  const logits = Float32Array.from(p.map(Math.log));
  const d = distribution(logits, { temperature: 1, topP: 0.7 });
  t.deepEqual(Array.from(d.ids), [0, 1]);
  t.true(Math.abs(d.probs[0] - 2 / 3) < 1e-6 && Math.abs(d.probs[1] - 1 / 3) < 1e-6);
  t.deepEqual(Array.from(distribution(logits, { temperature: 1, topP: 0.75 }).ids), [0, 1], 'exactly reaching p stops there');
  t.deepEqual(Array.from(distribution(logits, { temperature: 1, topP: 0.76 }).ids), [0, 1, 2]);
  const k = distribution(logits, { temperature: 1, topK: 3 });
  t.deepEqual(Array.from(k.ids), [0, 1, 2]);
  t.true(Math.abs(k.probs[2] - 0.125 / 0.875) < 1e-6);
  // draws follow the distribution
  const rng = new Rng(5);
  const counts = [0, 0, 0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[sampleToken(logits, { temperature: 1, topP: 0.7 }, rng)]++;
  t.is(counts[2] + counts[3] + counts[4], 0);
  t.true(Math.abs(counts[0] / 20000 - 2 / 3) < 0.02, `${counts}`);
});

// a random model over bytes, so streaming meets multi-byte characters split across tokens
const byteModel = () => GPT.create({ variant: 'gpt2', n_layer: 2, n_head: 2, n_embd: 32, vocab_size: 300, n_positions: 128 }, { seed: 4 });

test('streaming yields whole characters that concatenate to the returned text (multi-byte split across tokens)', async (t) => {
  const m = byteModel();
  // bias the output towards the lead and continuation bytes of 2-4 byte characters
  const wte = m.parameters().get('wte.weight').data;
  for (let i = 0; i < 300 * 32; i++) wte[i] *= 0.0;
  for (const b of [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0x61]) for (let c = 0; c < 32; c++) wte[b * 32 + c] = 0.3 * Math.sin(b + c);
  let multi = 0;
  for (const seed of [1, 2, 3]) {
    const o = { model: m, prompt: 'é€', tokenizer: byteTokenizer, maxNewTokens: 60, temperature: 1.5, seed };
    const full = await generate(o);
    const pieces = [];
    for await (const piece of generate.stream(o)) pieces.push(piece);
    t.is(pieces.join(''), full.text);
    for (const piece of pieces) {
      t.is(Buffer.from(piece, 'utf8').toString('utf8'), piece, 'no broken surrogate pairs');
      t.false(/[\ud800-\udbff]$/.test(piece), 'no piece ends in half a pair');
    }
    multi += [...full.text].filter((ch) => Buffer.byteLength(ch) > 1 && ch !== '\ufffd').length;
  }
  t.true(multi > 0, 'multi-byte characters were generated');
});

test('stop strings and stop ids end the text before the stop; streaming never shows part of a stop', async (t) => {
  const m = byteModel();
  const base = await generate({ model: m, prompt: 'ab', tokenizer: byteTokenizer, maxNewTokens: 40, temperature: 0 });
  const text = base.text;
  t.true(text.length > 10);
  const stop = text.slice(5, 8);
  const cut = text.indexOf(stop);
  const r = await generate({ model: m, prompt: 'ab', tokenizer: byteTokenizer, maxNewTokens: 40, temperature: 0, stop: ['zzzz', stop] });
  t.is(r.finishReason, 'stop');
  t.is(r.text, text.slice(0, cut));
  const pieces = [];
  for await (const p of generate.stream({ model: m, prompt: 'ab', tokenizer: byteTokenizer, maxNewTokens: 40, temperature: 0, stop })) pieces.push(p);
  t.is(pieces.join(''), text.slice(0, cut));
  const id = base.tokens[3];
  const r2 = await generate({ model: m, prompt: 'ab', tokenizer: byteTokenizer, maxNewTokens: 40, temperature: 0, stop: id });
  t.deepEqual(r2.tokens, base.tokens.slice(0, base.tokens.indexOf(id)));
  t.is(r2.finishReason, 'stop');
});

test('a timer keeps firing while a long generation runs', async (t) => {
  const m = GPT.create({ variant: 'gpt2', n_layer: 4, n_head: 4, n_embd: 128, vocab_size: 2000, n_positions: 256 }, { seed: 1 });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const t0 = Date.now();
  await generate({ model: m, prompt: [1, 2, 3], maxNewTokens: 200, temperature: 0, stopAtEos: false });
  const ms = Date.now() - t0;
  clearInterval(timer);
  t.log(`${ticks} ticks in ${ms} ms`);
  t.true(ticks >= Math.min(20, ms / 20), `only ${ticks} ticks in ${ms} ms`);
});

test('concurrent generate() calls on one model give the same results as one at a time', async (t) => {
  const m = await loadFix('gpt3');
  const opts = (seed) => ({ model: m, prompt: [seed, 7, 8], maxNewTokens: 20, temperature: 0.9, seed });
  const one = [];
  for (const s of [1, 2, 3, 4]) one.push((await generate(opts(s))).tokens);
  const all = await Promise.all([1, 2, 3, 4].map((s) => generate(opts(s))));
  t.deepEqual(all.map((r) => r.tokens), one);
});

test('speculative decoding: greedy tokens equal plain greedy, and the acceptance rate is reported', async (t) => {
  const target = await loadFix('gpt2');
  const draft = await loadFix('gpt3'); // same vocabulary, different model
  const c = caseOf('gpt2');
  for (const k of [1, 3, 5]) {
    const plain = await generate({ model: target, prompt: c.greedy.prompt, maxNewTokens: 20, temperature: 0 });
    const spec = await generate({ model: target, draft, speculate: k, prompt: c.greedy.prompt, maxNewTokens: 20, temperature: 0 });
    t.deepEqual(spec.tokens, plain.tokens, `k=${k}`);
    t.true(spec.speculative.proposed > 0);
    t.true(spec.speculative.acceptanceRate >= 0 && spec.speculative.acceptanceRate <= 1);
  }
  // the model as its own draft accepts everything
  const self = await generate({ model: target, draft: target, speculate: 4, prompt: c.greedy.prompt, maxNewTokens: 20, temperature: 0 });
  t.is(self.speculative.acceptanceRate, 1);
  t.deepEqual(self.tokens, c.greedy.new_tokens.concat(self.tokens.slice(12)).slice(0, 20));
  // sampling with a draft keeps the target's distribution: with the model as its own draft, all accepted
  const s = await generate({ model: target, draft: target, speculate: 3, prompt: [1, 2], maxNewTokens: 15, temperature: 1, seed: 3 });
  t.is(s.tokens.length, 15);
});

test('bad input: prompt longer than the context, ids out of range, bad options', async (t) => {
  const m = await loadFix('gpt2');
  await t.throwsAsync(generate({ model: m, prompt: Array(40).fill(1) }), { instanceOf: RangeError, message: /fewer than n_positions = 32 tokens for prompt .*truncate: 'left'/ });
  const r = await generate({ model: m, prompt: Array(40).fill(1), truncate: 'left', maxNewTokens: 4, temperature: 0 });
  t.is(r.tokens.length, 4);
  await t.throwsAsync(generate({ model: m, prompt: [1, 97] }), { instanceOf: RangeError, message: /a token id in \[0, 97\) for prompt\[1\] but received 97/ });
  await t.throwsAsync(generate({ model: m, prompt: [1], maxNewTokens: -1 }), { instanceOf: RangeError, message: /maxNewTokens/ });
  await t.throwsAsync(generate({ model: m, prompt: [1], temperature: 'hot' }), { instanceOf: TypeError, message: /for temperature but received "hot"/ });
  await t.throwsAsync(generate({ model: m, prompt: [1], topP: 0 }), { instanceOf: RangeError, message: /topP/ });
  await t.throwsAsync(generate({ model: m, prompt: 'hello' }), { instanceOf: TypeError, message: /no default tokenizer/ });
  await t.throwsAsync(generate({ model: path.join(FIX, 'missing') }), { message: /config\.json: not found/ });
  // generation that reaches the context ends with finishReason 'context'
  const long = await generate({ model: m, prompt: Array(28).fill(2), maxNewTokens: 50, temperature: 0 });
  t.is(long.tokens.length, 5, 'the last token is predicted from a full context of 32');
  t.is(long.finishReason, 'context');
});

test('command line: gpt-native generate streams text from a checkpoint', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gn-gen-'));
  const m = GPT.create({ variant: 'gpt2', n_layer: 1, n_head: 2, n_embd: 32, vocab_size: 50257, n_positions: 64 }, { seed: 2 });
  await m.save(dir);
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', 'dist', 'cli.js'), 'generate', '--model', dir, '--prompt', 'Call me', '--max-new-tokens', '8', '--temperature', '0'], { encoding: 'utf8' });
  const api = await generate({ model: dir, prompt: 'Call me', maxNewTokens: 8, temperature: 0 });
  t.is(out, 'Call me' + api.text + '\n');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bench generate times a checkpoint, and with --draft speculative decoding beside plain decoding', (t) => {
  const cli = path.join(__dirname, '..', 'dist', 'cli.js');
  const dir = path.join(FIX, 'gpt2-tiny');
  const run = (...args) => JSON.parse(execFileSync(process.execPath, [cli, 'bench', 'generate', ...args, '--runs', '1', '--json'],
    { encoding: 'utf8' }).trim().split('\n').pop());
  // the model as its own draft: every proposal is accepted
  const self = run('--model', dir, '--draft', dir, '--speculate', '3', '--prompt-tokens', '5', '--new-tokens', '12');
  t.is(self.model, dir);
  t.is(self.newTokens, 12);
  t.is(self.speculative.k, 3);
  t.is(self.speculative.acceptanceRate, 1);
  t.is(self.speculative.newTokens, 12);
  t.true(self.speculative.speedup > 0 && self.tokensPerSec > 0);
  const other = run('--model', dir, '--draft', path.join(FIX, 'gpt3-tiny'), '--prompt-tokens', '4', '--new-tokens', '10');
  t.true(other.speculative.acceptanceRate >= 0 && other.speculative.acceptanceRate < 1, `${other.speculative.acceptanceRate}`);
  const bad = (() => {
    try { execFileSync(process.execPath, [cli, 'bench', 'generate', '--draft', dir], { encoding: 'utf8', stdio: 'pipe' }); return null; } catch (e) { return e; }
  })();
  t.truthy(bad);
  t.is(bad.status, 2);
  t.regex(String(bad.stderr), /--draft needs --model/);
});
