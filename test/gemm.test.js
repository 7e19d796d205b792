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
    c.threaded === false ? 'serial' : ''].filter(Boolean).join(' ');
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
    t.true(r.cases > 50);
    t.true(r.worst < TOL, `worst normalised error ${r.worst} at ${JSON.stringify(r.worstCase)}`);
  });
}

test('gemm rejects a too-short operand with a RangeError naming the shape', (t) => {
  const M = 4, N = 5, K = 6;
  const A = new Float32Array(M * K - 1), B = new Float32Array(K * N), C = new Float32Array(M * N);
  const err = t.throws(() => native.gemm(false, false, M, N, K, 1, A, K, B, N, C, N, false, null), { instanceOf: RangeError });
  t.is(err.message, 'gemm: A has 23 elements but shape (4,6) needs 24');
});
