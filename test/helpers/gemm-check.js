'use strict';
// Run as a child process (so GPT_NATIVE_ISA takes effect at load): checks every GEMM form against the
// double reference and prints {isa, worst} as JSON.
const { native } = require('../../dist/native');
const { randF32, f64, normErr } = require('./util');
const seed = Number(process.argv[2] || 1);
let worst = 0, cases = 0;
const sizes = [[1, 1, 1], [3, 7, 2], [2, 33, 1500], [17, 33, 31], [14, 32, 384], [15, 33, 385], [65, 97, 129], [100, 257, 63], [300, 520, 700]];
for (const [M, N, K] of sizes)
  for (const ta of [false, true]) for (const tb of [false, true]) for (const acc of [false, true]) {
    const pad = 3;
    const lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    const A = randF32((ta ? K : M) * lda, seed + M), B = randF32((tb ? N : K) * ldb, seed + N), C0 = randF32(M * ldc, seed + K);
    const bias = acc ? null : randF32(N, seed + 5);
    const C = C0.slice();
    native.gemm(ta, tb, M, N, K, 0.75, A, lda, B, ldb, C, ldc, acc, bias);
    const R = f64(C0);
    native.ref.gemm(ta, tb, M, N, K, 0.75, f64(A), lda, f64(B), ldb, R, ldc, acc, bias ? f64(bias) : null);
    worst = Math.max(worst, normErr(C, R));
    cases++;
  }
console.log(JSON.stringify({ isa: native.gemmIsa(), worst, cases }));
