'use strict';
// GEMM in every form the model uses (A·B, A·Bᵀ, Aᵀ·B, Aᵀ·Bᵀ), alpha, accumulate, bias, padded leading
// dimensions, odd sizes and K = 0, against the double reference — on each micro-kernel this processor can
// run (GPT_NATIVE_ISA forces the lower ones in a child process).
const test = require('ava');
const path = require('path');
const { execFileSync } = require('child_process');
const { native } = require('../dist/native');
const { freshSeed, randF32, f64, normErr } = require('./helpers/util');

for (const isa of ['default', 'avx2', 'generic']) {
  test(`gemm (${isa} kernel): all forms and odd sizes vs the float64 reference`, (t) => {
    const seed = freshSeed(); t.log(`seed ${seed}`);
    const env = { ...process.env };
    if (isa !== 'default') env.GPT_NATIVE_ISA = isa; else delete env.GPT_NATIVE_ISA;
    const out = JSON.parse(execFileSync(process.execPath, [path.join(__dirname, 'helpers', 'gemm-check.js'), String(seed)], { env, encoding: 'utf8' }));
    t.log(out);
    if (isa !== 'default') t.true(out.isa === isa || out.isa === 'generic', `asked ${isa}, got ${out.isa}`);
    t.is(out.cases, 72);
    t.true(out.worst < 1e-10, `worst normalised error ${out.worst}`);
  });
}

test('gemm: serial (no pool) equals threaded; K = 0 gives bias or the accumulated C', (t) => {
  const seed = freshSeed();
  const M = 70, N = 300, K = 90;
  const A = randF32(M * K, seed), B = randF32(K * N, seed + 1);
  const C1 = new Float32Array(M * N), C2 = new Float32Array(M * N);
  native.setThreads(1);
  native.gemm(false, false, M, N, K, 1, A, K, B, N, C1, N, false, null);
  native.setThreads(2);
  native.gemm(false, false, M, N, K, 1, A, K, B, N, C2, N, false, null);
  t.deepEqual(C1, C2, 'each C element is computed by one thread in the same order');
  const bias = randF32(N, seed + 2);
  const C = randF32(M * N, seed + 3);
  const keep = C.slice();
  native.gemm(false, false, M, N, 0, 1, A, 1, B, N, C, N, true, null);
  t.deepEqual(C, keep);
  native.gemm(false, false, M, N, 0, 1, A, 1, B, N, C, N, false, bias);
  for (let i = 0; i < N; i++) t.is(C[5 * N + i], bias[i]);
  const R = new Float64Array(M * N);
  native.ref.gemm(false, false, M, N, K, 1, f64(A), K, f64(B), N, R, N, false, null);
  t.true(normErr(C1, R) < 1e-10);
});

test('gemm rejects operands too short for their shape', (t) => {
  const e = t.throws(() => native.gemm(false, true, 4, 5, 6, 1, new Float32Array(24), 6, new Float32Array(29), 6, new Float32Array(20), 5, false, null), { instanceOf: RangeError });
  t.regex(e.message, /gemm: B has 29 elements but shape \(5,6\) needs 30/);
});
