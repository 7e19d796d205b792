'use strict';
// Zero-shot and in-context evaluation and perplexity, checked against hand computations from the logits.
const test = require('ava');
const path = require('path');
const { GPT, zeroShotClassify, evaluate, perplexity, scoreContinuation } = require('../dist');
const { byteTokenizer } = require('./helpers/bytetok');

const model = () => GPT.create({ variant: 'gpt2', n_layer: 2, n_head: 2, n_embd: 32, vocab_size: 300, n_positions: 40 }, { seed: 7 });

function logSoftmaxAt(logits, V, t, id) {
  const row = logits.subarray(t * V, (t + 1) * V);
  let mx = -Infinity;
  for (const x of row) mx = Math.max(mx, x);
  let z = 0;
  for (const x of row) z += Math.exp(x - mx);
  return row[id] - mx - Math.log(z);
}

test('continuation scores equal the hand computation from the logits (and from model.loss)', (t) => {
  const m = model();
  const ctx = byteTokenizer.encode('Call me'), cont = byteTokenizer.encode(' Ishmael');
  const seq = [...ctx, ...cont];
  const logits = m.forward([seq]);
  let hand = 0;
  for (let i = 0; i < cont.length; i++) hand += logSoftmaxAt(logits, 300, ctx.length - 1 + i, cont[i]);
  t.true(Math.abs(scoreContinuation(m, ctx, cont) - hand) < 1e-4, `${scoreContinuation(m, ctx, cont)} vs ${hand}`);
  const targets = seq.slice(1).map((x, i) => (i >= ctx.length - 1 ? x : -1));
  t.true(Math.abs(-m.loss([seq.slice(0, -1)], [targets]) * cont.length - hand) < 1e-4);
});

test('multiple choice: acc and acc_norm pick by summed and per-character log-likelihood; shots fit the context', async (t) => {
  const m = model();
  const items = [
    { context: 'The sea', choices: [' is wide', ' x', ' qqqqqq'], label: 0 },
    { context: 'A whale', choices: [' swims', ' flies high'], label: 1 },
    { context: 'Ahab', choices: [' a', ' b', ' c', ' d'], label: 2 },
  ];
  const r0 = await evaluate({ model: m, data: items, shots: 0, tokenizer: byteTokenizer });
  // hand computation
  let right = 0, rightNorm = 0;
  for (const it of items) {
    const s = it.choices.map((c) => scoreContinuation(m, byteTokenizer.encode(it.context), byteTokenizer.encode(c)));
    const n = s.map((v, i) => v / it.choices[i].length);
    if (s.indexOf(Math.max(...s)) === it.label) right++;
    if (n.indexOf(Math.max(...n)) === it.label) rightNorm++;
  }
  t.is(r0.acc, right / 3);
  t.is(r0.accNorm, rightNorm / 3);
  t.is(r0.meanShots, 0);
  // with a 40-token context, two shots of ~20 bytes each cannot fit: fewer are used, never overflowing
  const r2 = await evaluate({ model: m, data: items, shots: 2, seed: 1, tokenizer: byteTokenizer });
  t.true(r2.meanShots < 2 && r2.meanShots >= 0, `mean shots ${r2.meanShots}`);
  const big = GPT.create({ variant: 'gpt2', n_layer: 1, n_head: 2, n_embd: 16, vocab_size: 300, n_positions: 256 }, { seed: 1 });
  const r3 = await evaluate({ model: big, data: items, shots: 2, seed: 1, tokenizer: byteTokenizer });
  t.is(r3.meanShots, 2);
});

test('zero-shot classification compares the label words after the template', async (t) => {
  const m = model();
  const r = await zeroShotClassify({ model: m, text: 'A fine day', template: '{text} very', labels: { pos: ' good', neg: ' bad' }, tokenizer: byteTokenizer });
  const ctx = byteTokenizer.encode('A fine day very');
  const lp = { pos: scoreContinuation(m, ctx, byteTokenizer.encode(' good')), neg: scoreContinuation(m, ctx, byteTokenizer.encode(' bad')) };
  t.true(Math.abs(r.logprobs.pos - lp.pos) < 1e-9);
  const p = Math.exp(lp.pos) / (Math.exp(lp.pos) + Math.exp(lp.neg));
  t.true(Math.abs(r.probs.pos - p) < 1e-9);
  t.is(r.label, lp.pos > lp.neg ? 'pos' : 'neg');
});

test('perplexity with a sliding window scores every token once; stride changes only the context', async (t) => {
  const m = model();
  const text = 'It is a way I have of driving off the spleen and regulating the circulation. '.repeat(2);
  const full = await perplexity({ model: m, text, stride: 39, tokenizer: byteTokenizer });
  t.is(full.tokens, byteTokenizer.encode(text).length - 1);
  const short = await perplexity({ model: m, text, stride: 5, tokenizer: byteTokenizer });
  t.is(short.tokens, full.tokens);
  t.true(Number.isFinite(short.perplexity) && short.perplexity > 1);
  // a text that fits one window equals exp(mean loss)
  const small = byteTokenizer.encode('Call me Ishmael.');
  const pp = await perplexity({ model: m, text: 'Call me Ishmael.', tokenizer: byteTokenizer });
  t.true(Math.abs(Math.log(pp.perplexity) - m.loss([small.slice(0, -1)], [small.slice(1)])) < 1e-6);
});

test('evaluate reports bad data files with the line', async (t) => {
  const fs = require('fs'), os = require('os');
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gn-ev-')), 'x.jsonl');
  fs.writeFileSync(f, '{"context":"a","choices":["b","c"],"label":0}\n{"context":"a","choices":["b"],"label":3}\n');
  await t.throwsAsync(evaluate({ model: model(), data: f, tokenizer: byteTokenizer }), { message: /x\.jsonl:2: "label" must index "choices"/ });
  fs.rmSync(path.dirname(f), { recursive: true, force: true });
});
