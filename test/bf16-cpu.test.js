'use strict';
// precision 'bf16' on the CPU: the matrix products read a bf16 copy of the weights, and products of more than 8
// rows run in bf16 arithmetic where the processor has it (fp32 sums). Exact against an fp32 model whose weights
// are bf16 values at up to 8 rows, within bf16 arithmetic at more; within bf16 error of an fp32 model otherwise;
// the copy follows host edits and optimizer steps; KV decoding and generate() agree with full recomputation;
// the benchmark takes the option.
const test = require('ava');
const path = require('path');
const { execFileSync } = require('child_process');
const { GPT, AdamW, generate, KVDecoder } = require('../dist');
const { native } = require('../dist/native');
const { relErr, freshSeed, randInts } = require('./helpers/util');

const FIX = path.join(__dirname, 'data', 'fixtures');
const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

function rounded(a) {
  const h = new Uint16Array(a.length);
  native.toBf16(h, a);
  return h;
}
function widened(h) {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return new Float32Array(u.buffer);
}
/** Rounds every weight of m to a bf16 value, in place (so its bf16 copy is exact). */
function roundWeights(m) {
  for (const [, p] of m.parameters()) p.data.set(widened(rounded(p.data)));
}
/** fp32 and bf16 models with the same weights (both start from `seed`). */
function pair(variant, seed) {
  const cfg = { variant, n_layer: 2, n_head: 3, n_embd: 48, vocab_size: 101, n_positions: 40, window_size: 8 };
  return [GPT.create(cfg, { seed }), GPT.create(cfg, { seed, precision: 'bf16' })];
}

// Does this processor do bf16 arithmetic (AVX512-BF16)? Then products of more than 8 rows of a bf16 model
// round their activations too; otherwise only the weights are bf16.
const BF16_MATH = native.setMathMode('bf16') === 'bf16';
native.setMathMode('fp32');

for (const v of ['gpt1', 'gpt2', 'gpt3']) {
  test(`${v}: with bf16-valued weights and at most 8 rows, bf16 logits and loss equal fp32 (1e-5)`, (t) => {
    const seed = freshSeed();
    t.log(`seed ${seed}`);
    const [a, b] = pair(v, seed);
    roundWeights(a);
    roundWeights(b);
    t.is(b.precision, 'bf16');
    t.is(b.activationDtype, 'fp32', 'activations stay fp32 on the CPU');
    const ids = randInts(8, 101, seed + 1), tg = randInts(8, 101, seed + 2);
    const shape = { shape: [1, 8] };
    t.true(relErr(b.forward(ids, shape), a.forward(ids, shape)) < 1e-5);
    const la = a.loss(ids, tg, shape), lb = b.loss(ids, tg, shape);
    t.true(Math.abs(la - lb) < 1e-5 * la, `loss ${lb} vs ${la}`);
  });

  test(`${v}: with bf16-valued weights and many rows, logits, loss and every gradient are within bf16 arithmetic of fp32`, (t) => {
    const seed = freshSeed();
    t.log(`seed ${seed}, bf16 arithmetic ${BF16_MATH}`);
    const [a, b] = pair(v, seed);
    roundWeights(a);
    roundWeights(b);
    const ids = randInts(2 * 29, 101, seed + 1), tg = randInts(2 * 29, 101, seed + 2);
    const shape = { shape: [2, 29] };
    // with bf16 arithmetic the activations are rounded too (about 2^-9 relative each); without it, the same numbers
    const tol = BF16_MATH ? 1e-2 : 1e-5; // measured worst over 45 models: 2e-3
    const e = relErr(b.forward(ids, shape), a.forward(ids, shape));
    t.true(e < tol, `logits ${e}`);
    if (BF16_MATH) t.true(e > 1e-6, 'the products ran in bf16');
    const la = a.loss(ids, tg, shape), lb = b.loss(ids, tg, shape);
    t.true(Math.abs(la - lb) < tol * la, `loss ${lb} vs ${la}`);
    a.backward();
    b.backward();
    for (const [name, p] of a.parameters()) {
      const q = b.parameters().get(name);
      t.true(relErr(q.grad, p.grad) < (BF16_MATH ? 2e-2 : 1e-5), `${name}: ${relErr(q.grad, p.grad)}`); // worst seen 6e-3
    }
    t.is(native.mathMode(), 'fp32', 'the bf16 model put fp32 arithmetic back after its pass');
  });
}

test('bf16 on the CPU: unrounded weights give logits within bf16 rounding of fp32, and not equal to them', async (t) => {
  const dir = path.join(FIX, 'gpt2-tiny');
  const a = await GPT.load(dir), b = await GPT.load(dir, { precision: 'bf16' });
  const ids = [[5, 17, 33, 2, 90, 41, 7, 60, 12, 88, 3, 19]];
  const e = relErr(b.forward(ids), a.forward(ids));
  t.log(`normalised logits error ${e}`);
  t.true(e > 1e-6 && e < 1e-2, `${e}`);
  // and back: to('cpu', { precision: 'fp32' }) drops the copy and gives the fp32 logits again
  b.to('cpu', { precision: 'fp32' });
  t.deepEqual(b.forward(ids), a.forward(ids));
});

test('the bf16 copy follows host edits of the weights and optimizer steps', (t) => {
  const seed = freshSeed();
  t.log(`seed ${seed}`);
  const [, m] = pair('gpt2', seed);
  const name = 'h.1.mlp.c_fc.weight';
  const copyOk = () => {
    const want = rounded(m.weight(name));
    const have = m.matrixBuffer(name);
    t.true(have instanceof Uint16Array, 'the matrix operand is the bf16 copy');
    t.deepEqual(Array.from(have), Array.from(want));
  };
  const ids = [Array.from(randInts(20, 101, seed + 3))];
  const before = m.forward(ids).slice();
  copyOk();
  // a host edit through parameters()
  const w = m.parameters().get(name).data;
  for (let i = 0; i < w.length; i++) w[i] = w[i] * 1.5 + 0.01 * Math.sin(i);
  const edited = m.forward(ids).slice(); // before copyOk(), whose weight() call would mark the copy stale itself
  t.true(relErr(edited, before) > 1e-3, 'the edit reached the products');
  copyOk();
  t.deepEqual(m.forward(ids), edited, 'the copy the edit left was already current');
  // an edit after a forward pass, through an array held from before, needs markUpdated()
  w[7] += 0.5;
  m.markUpdated();
  copyOk();
  // an optimizer step
  const opt = new AdamW(m, { lr: 1e-2 });
  m.train();
  m.loss(ids, [Array.from(randInts(20, 101, seed + 4))]);
  m.backward();
  opt.step();
  m.eval();
  const stepped = m.forward(ids).slice(); // before anything reads the weights on the host
  t.true(relErr(stepped, edited) > 1e-3, 'the step reached the products');
  copyOk();
  t.deepEqual(m.forward(ids), stepped, 'the copy the step left was already current');
  // AdamW rewrites the copy in its own pass: after a step it is the new weights rounded, untouched since
  m.train();
  m.loss(ids, [Array.from(randInts(20, 101, seed + 5))]);
  m.backward();
  const old16 = m.deviceBuffers().params16.slice();
  opt.step();
  const { params, params16 } = m.deviceBuffers(); // neither refreshes nor marks the copy
  t.notDeepEqual(params16, old16, 'the step wrote the copy');
  t.deepEqual(params16, rounded(params));
});

for (const v of ['gpt2', 'gpt3']) {
  test(`${v}: bf16 KV-cache decoding matches bf16 full recomputation, and generate() agrees`, async (t) => {
    const m = await GPT.load(path.join(FIX, `${v}-tiny`), { precision: 'bf16' });
    const V = m.config.vocab_size;
    const seq = [5, 17, 33, 2, 90, 41, 7, 60, 12, 88, 3, 19, 27, 70, 44, 1, 9, 55, 66, 13]; // past gpt3's window
    const dec = new KVDecoder(m, 1, 24);
    let logits = dec.forward(Int32Array.from(seq.slice(0, 6)), 6).slice();
    for (let i = 6; i <= seq.length; i++) {
      // a recomputation of more than 8 rows runs in bf16 arithmetic where the processor has it
      const tol = BF16_MATH && i > 8 ? 2e-2 : 1e-5; // 4e-3 seen
      const ref = m.forward([seq.slice(0, i)]).subarray((i - 1) * V, i * V);
      t.true(relErr(logits, ref) < tol, `position ${i}: ${relErr(logits, ref)}`);
      if (i < seq.length) logits = dec.forward(Int32Array.of(seq[i]), 1).slice();
    }
    // greedy generate() with precision 'bf16' from an fp32 model switches it, and equals a KV-cache greedy loop
    const f = await GPT.load(path.join(FIX, `${v}-tiny`));
    const prompt = [3, 14, 15, 92, 65];
    const r = await generate({ model: f, prompt, maxNewTokens: 8, temperature: 0, stopAtEos: false, precision: 'bf16' });
    t.is(f.precision, 'bf16');
    const loop = new KVDecoder(m, 1, 16);
    let l = loop.forward(Int32Array.from(prompt), prompt.length);
    const greedy = [];
    for (let i = 0; i < 8; i++) {
      const x = l.indexOf(Math.max(...l));
      greedy.push(x);
      l = loop.forward(Int32Array.of(x), 1);
    }
    t.deepEqual(r.tokens, greedy);
  });
}

test('precision options: a folder loads in bf16 for generate(); bad values are clear errors', async (t) => {
  const dir = path.join(FIX, 'gpt2-tiny');
  const r = await generate({ model: dir, prompt: [1, 2, 3], maxNewTokens: 3, temperature: 0, precision: 'bf16', stopAtEos: false });
  t.is(r.tokens.length, 3);
  await t.throwsAsync(generate({ model: dir, prompt: [1, 2, 3], maxNewTokens: 3, precision: 'fp16' }),
    { instanceOf: RangeError, message: "Expected 'fp32' or 'bf16' for precision but received \"fp16\"" });
  const run = (args) => {
    try {
      return { code: 0, out: execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: 'pipe' }) };
    } catch (e) {
      return { code: e.status, out: String(e.stderr) };
    }
  };
  const bad = run(['bench', 'kernels', '--precision', 'bf16']);
  t.not(bad.code, 0);
  t.regex(bad.out, /times the cuda kernels .* 'bench generate --precision bf16'/);
  const bench = run(['bench', 'generate', '--model', dir, '--prompt-tokens', '3', '--new-tokens', '2', '--runs', '1',
    '--precision', 'bf16', '--json']);
  t.is(bench.code, 0, bench.out);
  const j = JSON.parse(bench.out.trim().split('\n').pop());
  t.is(j.precision, 'bf16');
  t.is(j.newTokens, 2);
  t.true(j.tokensPerSec > 0);
});

test('the CPU backend refuses bf16 buffers where only fp32 makes sense', (t) => {
  const { backendOf } = require('../dist/backend');
  const be = backendOf('cpu');
  const h = be.alloc(8, 'bf16'), f = be.alloc(8);
  t.true(h instanceof Uint16Array);
  t.throws(() => be.fill(h, 0.5), { instanceOf: TypeError, message: /fill: expected an fp32 buffer but received a bf16 one/ });
  t.throws(() => be.copyRows(f, 4, h, 4, 2, 4), { instanceOf: TypeError, message: /copyRows: expected an fp32 buffer/ });
  t.throws(() => be.download(h, false), { instanceOf: TypeError, message: /pass copy = true/ });
  be.upload(h, Float32Array.from([1, 1.00390625, -2, 3.5, 0.1, 1e30, -0, 7]));
  t.deepEqual(Array.from(be.download(h)), [1, 1, -2, 3.5, 0.10009765625, 1.0002555517425873e30, -0, 7]);
});

test('a bf16 pass leaves the process in fp32 arithmetic afterwards, also when it throws', (t) => {
  const seed = freshSeed();
  t.log(`seed ${seed}, bf16 arithmetic ${BF16_MATH}`);
  const [, b] = pair('gpt2', seed);
  const M = 33, K = 29, N = 17; // more than 8 rows: bf16 arithmetic would round A
  const A = Float32Array.from(randInts(M * K, 1000, seed + 3), (x) => x / 997 - 0.5);
  const Bm = Float32Array.from(randInts(K * N, 1000, seed + 4), (x) => x / 991 - 0.5);
  const product = () => {
    const C = new Float32Array(M * N);
    native.gemm(false, false, M, N, K, 1, A, K, Bm, N, C, N, false, null);
    return C;
  };
  const before = product();
  t.is(native.mathMode(), 'fp32');
  const ids = randInts(2 * 20, 101, seed + 1), tg = randInts(2 * 20, 101, seed + 2);
  const shape = { shape: [2, 20] };
  b.loss(ids, tg, shape);
  t.is(native.mathMode(), 'fp32', 'after forward');
  b.backward();
  t.is(native.mathMode(), 'fp32', 'after backward');
  const dec = new KVDecoder(b, 1, 30);
  dec.forward(Int32Array.from(ids.slice(0, 12)), 12);
  t.is(native.mathMode(), 'fp32', 'after a KV decoder step');
  b.loss(ids, tg, shape);
  t.throws(() => b.backward(1, { hiddenGrad: new Float32Array(3) }), { instanceOf: RangeError });
  t.is(native.mathMode(), 'fp32', 'after a backward that threw');
  t.deepEqual(product(), before, 'a later native product is fp32 arithmetic');
  // and the model's own passes still run in bf16 where the processor has it: more rows differ from fp32
  const [a] = pair('gpt2', seed);
  const la = a.loss(ids, tg, shape), lb = b.loss(ids, tg, shape);
  if (BF16_MATH) t.not(la, lb);
  t.true(Math.abs(la - lb) < 2e-2 * la, `loss ${lb} vs ${la}`);
});
