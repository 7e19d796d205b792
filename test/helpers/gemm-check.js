// Runs a table of GEMM cases against the double reference and prints {isa, worst, cases} as JSON.
// Used by test/gemm.test.js directly and in child processes with GPT_NATIVE_ISA set.
'use strict';
const { native } = require('../../dist/native');

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s / 4294967296) * 2 - 1 || 0.5;  // never exactly zero
  };
}

/** bf16 bit patterns widened to float64 (exact). */
function widen(h) {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return Float64Array.from(new Float32Array(u.buffer));
}

/**
 * One case: returns the normalised error Σ(a−b)²/Σb² of native.gemm against native.ref.gemm. With `bf16`, B
 * goes in as bf16 (native.toBf16) and the reference takes those rounded values widened back.
 */
function runCase(c, seed = 1) {
  const { transA = false, transB = false, M, N, K, alpha = 1, accumulate = false, bias = false,
    padA = 0, padB = 0, padC = 0, threaded = true, bf16 = false, math = 'fp32' } = c;
  const r = rng(seed + M * 7 + N * 13 + K * 17);
  const lda = (transA ? M : K) + padA, ldb = (transB ? K : N) + padB, ldc = N + padC;
  const nA = Math.max(1, (transA ? K : M) * lda), nB = Math.max(1, (transB ? N : K) * ldb), nC = Math.max(1, M * ldc);
  const A = new Float32Array(nA).map(r), B = new Float32Array(nB).map(r), C = new Float32Array(nC).map(r);
  const bs = bias ? new Float32Array(N).map(r) : null;
  let Bop = B;
  if (bf16) {
    Bop = new Uint16Array(nB);
    native.toBf16(Bop, B);
  }
  // bf16 arithmetic (math mode bf16, products of more than 8 rows): both operands rounded to bf16
  const bf16math = math === 'bf16' && M > 8;
  const round = (x) => { const h = new Uint16Array(x.length); native.toBf16(h, x); return widen(h); };
  const Ad = bf16math ? round(A) : Float64Array.from(A);
  const Bd = bf16 ? widen(Bop) : bf16math ? round(B) : Float64Array.from(B);
  const Cd = Float64Array.from(C);
  const bd = bs ? Float64Array.from(bs) : null;
  const prev = native.threads();
  if (!threaded) native.setThreads(1);
  if (native.setMathMode(math) !== math) throw new Error(`math mode ${math} is not available here`);
  try {
    native.gemm(transA, transB, M, N, K, alpha, A, lda, Bop, ldb, C, ldc, accumulate, bs);
  } finally {
    if (!threaded) native.setThreads(prev);
    native.setMathMode('fp32');
  }
  native.ref.gemm(transA, transB, M, N, K, alpha, Ad, lda, Bd, ldb, Cd, ldc, accumulate, bd);
  let num = 0, den = 0;
  for (let i = 0; i < nC; i++) { const d = C[i] - Cd[i]; num += d * d; den += Cd[i] * Cd[i]; }
  return den === 0 ? num : num / den;
}

const sizes = [1, 2, 3, 7, 17, 31, 33, 63, 65, 97, 129, 257];

/** The table: every trans combination × odd sizes, plus options and a larger product. */
function cases() {
  const out = [];
  const forms = [[false, false], [false, true], [true, false], [true, true]];
  let i = 0;
  for (const [transA, transB] of forms) {
    for (const M of sizes) {
      // walk N and K through the list at different strides so each form sees many combinations
      const N = sizes[(i * 5 + 3) % sizes.length], K = sizes[(i * 7 + 1) % sizes.length];
      const v = i++;
      out.push({ transA, transB, M, N, K, alpha: v % 3 === 0 ? 1 : -0.75, accumulate: v % 2 === 1, bias: v % 4 >= 2,
        padA: v % 5 === 0 ? 3 : 0, padB: v % 3 === 1 ? 5 : 0, padC: v % 4 === 3 ? 2 : 0, threaded: v % 2 === 0 });
    }
    for (const K of [0, 1]) {
      for (const accumulate of [false, true]) {
        out.push({ transA, transB, M: 33, N: 65, K, alpha: 1.5, accumulate, bias: true, padC: 1 });
        out.push({ transA, transB, M: 5, N: 3, K, accumulate, bias: false });
      }
    }
    out.push({ transA, transB, M: 300, N: 520, K: 700, alpha: 0.5, accumulate: true, bias: true, padA: 1, padB: 2, padC: 3 });
    out.push({ transA, transB, M: 300, N: 520, K: 700, threaded: false });
    // K beyond one cache block: later blocks add to C, the bias goes in once
    out.push({ transA, transB, M: 37, N: 70, K: 2100, alpha: -1.25, accumulate: true, bias: true, threaded: false });
    out.push({ transA, transB, M: 150, N: 100, K: 1500, bias: true });
    // N beyond one cache block
    out.push({ transA, transB, M: 40, N: 1700, K: 50, alpha: 2, accumulate: true, bias: true, padB: 3, threaded: false });
    // attention-like serial blocks
    out.push({ transA, transB, M: 64, N: 200, K: 64, alpha: 0.125, threaded: false, padA: 64, padB: 64 });
    out.push({ transA, transB, M: 200, N: 64, K: 64, accumulate: true, threaded: false, padA: 7, padC: 64 });
  }
  // few rows (decoding): the threaded paths (A·B split over K, A·Bᵀ over N), K not a multiple of 4 or 16, K
  // beyond the staged 1024, N beyond one column chunk and with a ragged tail
  for (const [transA, transB] of forms) {
    out.push({ transA, transB, M: 1, N: 3001, K: 777, bias: true, accumulate: true });
    out.push({ transA, transB, M: 3, N: 1029, K: 515, alpha: -0.5, padA: 2, padB: 3, padC: 1 });
    out.push({ transA, transB, M: 4, N: 50, K: 2051, bias: true });
    out.push({ transA, transB, M: 2, N: 17, K: 9, threaded: false, accumulate: true });
    out.push({ transA, transB, M: 6, N: 2001, K: 383, alpha: 1.5, bias: true, padB: 1 });
    out.push({ transA, transB, M: 8, N: 95, K: 1031, accumulate: true });
    out.push({ transA, transB, M: 20, N: 50, K: 2049, bias: true }); // an odd K in the last of several K blocks
  }
  out.push({ M: 0, N: 5, K: 3 }, { M: 5, N: 0, K: 3 }, { M: 1, N: 1, K: 1 });
  // every case again with B in bf16 (a bf16 model's weights), and where the processor has bf16 arithmetic,
  // everything again in math mode bf16
  const all = [...out, ...out.map((c) => ({ ...c, bf16: true }))];
  const bf16math = native.setMathMode('bf16') === 'bf16';
  native.setMathMode('fp32');
  return bf16math ? [...all, ...all.map((c) => ({ ...c, math: 'bf16' }))] : all;
}

function runAll() {
  let worst = 0, worstCase = null;
  const list = cases();
  for (const c of list) {
    const e = runCase(c);
    if (!(e <= worst)) { worst = e; worstCase = c; }  // also catches NaN
  }
  return { isa: native.gemmIsa(), worst, worstCase, cases: list.length };
}

module.exports = { runCase, cases, runAll };

if (require.main === module) console.log(JSON.stringify(runAll()));
