// GEMM against the double-precision reference: every trans form, alpha, accumulate, bias, padded leading
// dimensions, odd sizes, K = 0 and 1, serial and threaded, on every micro-kernel this machine can run.
const test = require('ava');
const path = require('path');
const { execFileSync } = require('child_process');
const { native } = require('../dist/native');
const { cases, runCase } = require('./helpers/gemm-check');

const TOL = 1e-10;

function describe(c) {
  const form = `${c.transA ? 'Aᵀ' : 'A'}·${c.transB ? 'Bᵀ' : 'B'}`;
  const opts = [c.alpha !== undefined && c.alpha !== 1 ? `alpha=${c.alpha}` : '', c.accumulate ? 'acc' : '',
    c.bias ? 'bias' : '', c.padA || c.padB || c.padC ? `pad=${c.padA || 0}/${c.padB || 0}/${c.padC || 0}` : '',
    c.threaded === false ? 'serial' : '', c.bf16 ? 'B bf16' : '', c.math === 'bf16' ? 'math bf16' : ''].filter(Boolean).join(' ');
  return `${form} M=${c.M} N=${c.N} K=${c.K} ${opts}`.trim();
}

for (const c of cases()) {
  test(`gemm ${describe(c)}`, (t) => {
    const e = runCase(c);
    t.true(e < TOL, `normalised error ${e}`);
  });
}

test('gemm reports its micro-kernel', (t) => {
  t.true(['avx512', 'avx2', 'generic'].includes(native.gemmIsa()));
});

// The dispatcher reads GPT_NATIVE_ISA once per process, so each forced ISA runs in a child process.
const helper = path.join(__dirname, 'helpers', 'gemm-check.js');
const supported = { avx512: ['avx512', 'avx2', 'generic'], avx2: ['avx2', 'generic'], generic: ['generic'] }[native.gemmIsa()];
for (const isa of ['avx2', 'generic']) {
  test(`gemm with GPT_NATIVE_ISA=${isa} matches the reference`, (t) => {
    if (!supported.includes(isa)) return t.pass(`${isa} not available on this processor`);
    const out = execFileSync(process.execPath, [helper], { env: { ...process.env, GPT_NATIVE_ISA: isa }, encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop());
    t.is(r.isa, isa);
    t.true(r.cases > 100);
    t.true(r.worst < TOL, `worst normalised error ${r.worst} at ${JSON.stringify(r.worstCase)}`);
  });
}

test('gemm rejects a too-short operand with a RangeError naming the shape', (t) => {
  const M = 4, N = 5, K = 6;
  const A = new Float32Array(M * K - 1), B = new Float32Array(K * N), C = new Float32Array(M * N);
  const err = t.throws(() => native.gemm(false, false, M, N, K, 1, A, K, B, N, C, N, false, null), { instanceOf: RangeError });
  t.is(err.message, 'gemm: A has 23 elements but shape (4,6) needs 24');
});

test('toBf16 rounds to nearest, ties to even, and keeps NaN, infinities and signed zeros', (t) => {
  const f = new Float32Array([1, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 3.3895313892515355e38,
    3.4028234663852886e38, Infinity, -Infinity, -0, 0, NaN, 1e-40]);
  const h = new Uint16Array(f.length);
  native.toBf16(h, f);
  const hex = Array.from(h, (x) => x.toString(16).padStart(4, '0'));
  t.deepEqual(hex, [
    '3f80', 'c020', // exact
    '3f80', // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1
    '3f82', // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: ties to the even one above
    '3f81', // above halfway rounds up
    '7f7f', // bf16's largest finite value stays
    '7f80', // float32's largest rounds to infinity
    '7f80', 'ff80', '8000', '0000',
    '7fc0', // NaN stays a (quiet) NaN
    '0001', // a float32 denormal goes to the nearest bf16 denormal (1e-40 = 0x000116c2)
  ]);
  t.throws(() => native.toBf16(new Uint16Array(2), new Float32Array(3)), { instanceOf: RangeError, message: /dst has 2 elements but src has 3/ });
});

test('gemm and the linear kernels take a Float32Array or bf16 Uint16Array weight, and say so otherwise', (t) => {
  const A = new Float32Array(6).fill(0.5), C = new Float32Array(6);
  t.throws(() => native.gemm(false, false, 2, 3, 2, 1, A, 2, new Int16Array(6), 3, C, 3, false, null),
    { instanceOf: TypeError, message: 'gemm: expected a Float32Array, or a Uint16Array of bf16 values, for B (argument 8)' });
  t.throws(() => native.gemm(false, false, 2, 3, 2, 1, A, 2, new Uint16Array(5), 3, C, 3, false, null),
    { instanceOf: RangeError, message: 'gemm: B has 5 elements but shape (2,3) needs 6' });
  t.throws(() => native.linearForward(C, A, new Uint16Array(5), null, 2, 3, 2),
    { instanceOf: RangeError, message: 'linear_forward: weight has 5 elements but shape (3,2) has 6' });
  t.throws(() => native.linearBackward(A, null, null, C, A, new Float64Array(6), 2, 3, 2),
    { instanceOf: TypeError, message: /linear_backward: expected a Float32Array, or a Uint16Array of bf16 values, for weight/ });
});

test('linear forward and backward with a bf16 weight equal the fp32 kernels on the widened weight', (t) => {
  const N = 37, C = 53, OC = 71;
  const r = (n, s) => { const a = new Float32Array(n); let x = s; for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648; a[i] = x / 1073741824 - 1 || 0.25; } return a; };
  const inp = r(N * C, 3), w = r(C * OC, 5), b = r(OC, 7), dout = r(N * OC, 11);
  const h = new Uint16Array(C * OC);
  native.toBf16(h, w);
  const u = new Uint32Array(C * OC);
  for (let i = 0; i < u.length; i++) u[i] = h[i] << 16;
  const wide = new Float32Array(u.buffer);
  t.true(wide.some((x, i) => x !== w[i]), 'the rounding changed some weights');
  for (const rows of [N, 1, 3]) {
    const o1 = new Float32Array(rows * OC), o2 = new Float32Array(rows * OC);
    native.linearForward(o1, inp, h, b, rows, C, OC);
    native.linearForward(o2, inp, wide, b, rows, C, OC);
    let e = 0, s = 0;
    for (let i = 0; i < o1.length; i++) { e += (o1[i] - o2[i]) ** 2; s += o2[i] ** 2; }
    t.true(e / s < 1e-12, `forward, ${rows} rows: ${e / s}`);
  }
  const d1 = new Float32Array(N * C), d2 = new Float32Array(N * C);
  const dw1 = new Float32Array(C * OC).fill(0.5), dw2 = dw1.slice(), db1 = new Float32Array(OC), db2 = new Float32Array(OC);
  native.linearBackward(d1, dw1, db1, dout, inp, h, N, C, OC);
  native.linearBackward(d2, dw2, db2, dout, inp, wide, N, C, OC);
  let e = 0, s = 0;
  for (let i = 0; i < d1.length; i++) { e += (d1[i] - d2[i]) ** 2; s += d2[i] ** 2; }
  t.true(e / s < 1e-12, `dinp ${e / s}`);
  t.deepEqual(dw1, dw2, 'the weight gradient does not read the weight');
  t.deepEqual(db1, db2);
});

test('an empty operand is checked like any other, never read through a null pointer', (t) => {
  const one = () => new Float32Array(1);
  t.throws(() => native.gemm(false, false, 1, 1, 1, 1, one(), 1, new Uint16Array(0), 1, one(), 1, false, null),
    { instanceOf: RangeError, message: 'gemm: B has 0 elements but shape (1,1) needs 1' });
  t.throws(() => native.gemm(false, false, 1, 1, 1, 1, new Float32Array(0), 1, one(), 1, one(), 1, false, null),
    { instanceOf: RangeError, message: 'gemm: A has 0 elements but shape (1,1) needs 1' });
  t.throws(() => native.linearForward(new Float32Array(2), new Float32Array(2), new Float32Array(4), new Float32Array(0), 1, 2, 2),
    { instanceOf: RangeError, message: /linear_forward: bias has 0 elements/ });
  // nothing to read: an empty product of shape (0, N) is fine
  t.notThrows(() => native.gemm(false, false, 0, 1, 1, 1, new Float32Array(0), 1, one(), 1, new Float32Array(0), 1, false, null));
});

test('few-row products give the same result whatever the thread count and the number of rows', (t) => {
  const K = 777, N = 301, r = (n, s) => Float32Array.from({ length: n }, (_, i) => Math.sin(s + i * 0.37) || 0.5);
  const A = r(8 * K, 1), B = r(K * N, 2), B16 = new Uint16Array(K * N);
  native.toBf16(B16, B);
  const prev = native.threads();
  for (const transB of [false, true]) {
    for (const Bop of [B, B16]) {
      const out = [];
      for (const threads of [1, 2]) {
        native.setThreads(threads);
        for (const M of [1, 4, 8]) {
          const C = new Float32Array(M * N);
          native.gemm(false, transB, M, N, K, 1, A, K, Bop, transB ? K : N, C, N, false, null);
          out.push(C.subarray(0, N)); // row 0 of every run
        }
      }
      native.setThreads(prev);
      for (let i = 1; i < out.length; i++) t.deepEqual(out[i], out[0], `${transB ? 'A·Bᵀ' : 'A·B'} ${Bop.constructor.name}: run ${i}`);
    }
  }
});

test('math mode: bf16 only where the processor has bf16 arithmetic; a bad mode is a RangeError', (t) => {
  const got = native.setMathMode('bf16');
  t.true(got === 'bf16' || got === 'fp32');
  t.is(native.mathMode(), got);
  t.is(native.setMathMode('fp32'), 'fp32');
  t.is(native.mathMode(), 'fp32');
  t.throws(() => native.setMathMode('fp16'), { instanceOf: RangeError, message: /expected 'fp32' or 'bf16' for mode/ });
});
