'use strict';
// Every kernel of the CUDA addon against the CPU kernel of the same name, on fresh random inputs at odd sizes,
// GPT-2 widths, T = 1, banded windows, dropout and KV-cache strides: outputs and every gradient, within 1e-4
// normalised error (bf16 GEMM: 1e-2). One case per test, so a GPU run names each kernel that fails.
// By default the stand-in addon (test/helpers/fake-cuda.js) runs, and these tests check the argument plumbing
// only. `npm test` runs them a second time against the CUDA kernels compiled for the CPU emulator
// (scripts/test-cuda-emu.js, GPT_NATIVE_CUDA_TEST=emu); GPT_NATIVE_CUDA_TEST=real (scripts/gpu-check.sh) runs
// them on a GPU.
const test = require('ava');
const path = require('path');

// 'real': the CUDA addon on a GPU; 'emu': the same kernel sources on the CUDA emulator (scripts/test-cuda-emu.js)
const REAL = ['real', 'emu'].includes(process.env.GPT_NATIVE_CUDA_TEST);
if (!REAL) process.env.GPT_NATIVE_CUDA_ADDON = path.join(__dirname, 'helpers', 'fake-cuda.js');
const { native } = require('../dist');
const { cuda } = require('../dist/cuda');
const { normErr, freshSeed, randF32, randInts, roundBf16, probeProducts } = require('./helpers/util');

const TOL = REAL ? 1e-4 : 1e-12;
const dev = cuda();

const TOL_BF16 = 1e-2;

/**
 * Runs `op` on the CPU with host arrays and on the device with views; compares every array argument after.
 * `bf16` lists the arguments held in bf16 device buffers (activations): their inputs are rounded to bf16 for
 * both backends first, so the two differ only by what the device computes and stores in bf16.
 */
/** The first `width` of every `ld` elements of a (the entries of padded rows), and the rest (their padding). */
function splitRows(a, ld, width) {
  const rows = a.length / ld, body = new Float32Array(rows * width), pad = new Float32Array(rows * (ld - width));
  for (let r = 0; r < rows; r++) {
    body.set(a.subarray(r * ld, r * ld + width), r * width);
    pad.set(a.subarray(r * ld + width, (r + 1) * ld), r * (ld - width));
  }
  return { body, pad };
}

// `padded: [ld, width]`: outputs of rows·ld elements are rows padded to ld: their entries are compared within the
// tolerance on their own (padding values would swamp a normalised error), and their padding must be unchanged
function cross(t, op, args, { outputs, tol, ret = false, mode = 'fp32', bf16 = [], aligned = false, padded = null } = {}) {
  tol ??= bf16.length && REAL ? TOL_BF16 : TOL;
  args = args.map((a, i) => (bf16.includes(i) && a instanceof Float32Array ? roundBf16(a) : a));
  const host = args.map((a) => (a instanceof Float32Array ? a.slice() : a));
  const views = args.map((a, i) => {
    if (!(a instanceof Float32Array)) return a;
    // an offset view, as the model uses: 3 elements in (so the kernels' 16-byte forms cannot apply), or with
    // `aligned` 8 elements into a buffer of a multiple of 8 elements (16-byte aligned on a GPU and on the emulator,
    // whose buffers end at a guard page)
    const len = aligned ? Math.ceil(a.length / 8) * 8 + 8 : a.length + 3;
    const v = { buf: dev.alloc(len, bf16.includes(i) ? 'bf16' : 'fp32'), off: aligned ? 8 : 3, len: a.length };
    dev.upload(v, a);
    return v;
  });
  dev.setMathMode(mode);
  const rc = native[op](...host);
  const rd = dev[op](...views);
  dev.setMathMode('fp32');
  if (ret) t.true(Math.abs(rc - rd) <= Math.sqrt(tol) * Math.abs(rc) + 1e-30, `${op} returned ${rd} vs ${rc}`);
  for (const i of outputs) {
    const got = new Float32Array(args[i].length);
    dev.download(views[i], got);
    if (padded && got.length % padded[0] === 0) {
      const g = splitRows(got, ...padded), h = splitRows(host[i], ...padded), a = splitRows(args[i], ...padded);
      const e = normErr(g.body, h.body);
      t.true(e <= tol, `${op} argument ${i}: normalised error ${e} in the rows' first ${padded[1]}`);
      t.deepEqual(g.pad, a.pad, `${op} argument ${i}: the padding changed`);
      continue;
    }
    const e = normErr(got, host[i]);
    t.true(e <= tol, `${op} argument ${i}: normalised error ${e}`);
  }
  for (const v of views) if (v && v.buf) dev.free(v.buf);
}

const seedOf = (t) => { const s = freshSeed(); t.log(`seed ${s}`); return s; };

// GEMMs without an epilogue run in cublasLtMatmul ('cublaslt', the default) or cublasGemmEx ('cublas'): both are
// checked. On the emulator (an algorithm for every shape) every such GEMM must have gone through cuBLASLt under
// 'cublaslt' and none under 'cublas': a mistake in the descriptors would make its heuristic refuse, and the
// cublasGemmEx fallback would hide it. On a GPU cuBLASLt may decline a shape, so this logs.
const withGemm = (kind, fn) => {
  const prev = dev.setGemm(kind);
  try { fn(); } finally { dev.setGemm(prev); }
};
function matmulRan(t, kind, before, calls) {
  const after = dev.biasEpilogueStats();
  const lt = after.matmul - before.matmul, fb = after.matmulFallbacks - before.matmulFallbacks;
  if (process.env.GPT_NATIVE_CUDA_TEST === 'emu') t.deepEqual([lt, fb], kind === 'cublaslt' ? [calls, 0] : [0, 0], 'GEMMs cublasLtMatmul ran, and fallbacks');
  else t.log(`cublasLtMatmul ran ${lt} of ${calls} GEMMs (${fb} took cublasGemmEx)`);
}
for (const kind of ['cublaslt', 'cublas']) for (const [M, N, K] of [[1, 50257 % 997, 768 % 129], [13, 37, 29], [64, 96, 80], [129, 65, 257]]) {
  for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
    test(`gemm (${kind}) ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} M=${M} N=${N} K=${K}, accumulate, bias, leading dims`, (t) => withGemm(kind, () => {
      const s = seedOf(t);
      const before = dev.biasEpilogueStats();
      const lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
      const A = randF32((ta ? K : M) * lda, s), B = randF32((tb ? N : K) * ldb, s + 1), C = randF32(M * ldc, s + 2), bias = randF32(N, s + 3);
      // (accumulating with a bias: the product, then the bias pass)
      cross(t, 'gemm', [ta, tb, M, N, K, 0.7, A, lda, B, ldb, C, ldc, true, bias], { outputs: [10] });
      cross(t, 'gemm', [ta, tb, M, N, K, 1, A, lda, B, ldb, C, ldc, false, null], { outputs: [10] });
      cross(t, 'gemm', [ta, tb, M, N, K, 1, A, lda, B, ldb, C, ldc, false, null], { outputs: [10], tol: REAL ? 1e-2 : TOL, mode: 'bf16' });
      matmulRan(t, kind, before, 3);
    }));
  }
}

// setGemmAlgo('timed') (an opt-in): a plan's first call that overwrites its output times the heuristic's algorithms
// (the emulator offers 3) and keeps the fastest; a plan first met accumulating keeps the heuristic's first choice
test("setGemmAlgo('timed'): new cuBLASLt plans time the heuristic's algorithms once, at a call that overwrites its output; results as on the CPU", (t) => {
  const s = seedOf(t);
  const prev = dev.setGemmAlgo('timed');
  try {
    const before = dev.biasEpilogueStats();
    const gemmArgs = (M, N, K, acc, seed) => [false, true, M, N, K, 0.9, randF32(M * K, seed), K, randF32(N * K, seed + 1), K,
      randF32(M * N, seed + 2), N, acc, null];
    cross(t, 'gemm', gemmArgs(23, 41, 19, false, s), { outputs: [10] }); // a new plan, overwriting: timed
    cross(t, 'gemm', gemmArgs(23, 41, 19, false, s + 3), { outputs: [10] }); // the same plan: not again
    cross(t, 'gemm', gemmArgs(29, 41, 19, true, s + 6), { outputs: [10] }); // a new plan, accumulating: not timed
    cross(t, 'gemm', gemmArgs(29, 41, 19, false, s + 9), { outputs: [10] }); // (and not later either)
    // a linear layer with its bias in the epilogue: another new plan, timed
    cross(t, 'linearForward', [randF32(31 * 43, s + 12), randF32(31 * 21, s + 13), randF32(21 * 43, s + 14), randF32(43, s + 15), 31, 21, 43], { outputs: [0] });
    const after = dev.biasEpilogueStats();
    const timed = [after.timedPlans - before.timedPlans, after.timedAlgos - before.timedAlgos];
    if (process.env.GPT_NATIVE_CUDA_TEST === 'emu') t.deepEqual(timed, [2, 6], 'plans timed, and algorithms timed');
    else t.log(`plans timed ${timed[0]}, algorithms timed ${timed[1]}`);
  } finally {
    dev.setGemmAlgo(prev);
  }
});

for (const [N, C, OC] of [[1, 768, 2304], [13, 37, 111], [64, 96, 384], [333, 45, 70]]) {
  test(`linear forward/backward N=${N} C=${C} OC=${OC}`, (t) => {
    const s = seedOf(t);
    const inp = randF32(N * C, s), w = randF32(C * OC, s + 1, 0.1), b = randF32(OC, s + 2), out = randF32(N * OC, s + 3), dout = randF32(N * OC, s + 4);
    cross(t, 'linearForward', [out, inp, w, b, N, C, OC], { outputs: [0] });
    const dinp = randF32(N * C, s + 5), dw = randF32(C * OC, s + 6), db = randF32(OC, s + 7);
    cross(t, 'linearBackward', [dinp, dw, db, dout, inp, w, N, C, OC], { outputs: [0, 1, 2] });
    cross(t, 'linearBackward', [null, dw, null, dout, inp, w, N, C, OC], { outputs: [1] });
  });
}

for (const [N, C] of [[1, 768], [13, 37], [300, 96]]) {
  test(`layernorm forward/backward N=${N} C=${C}`, (t) => {
    const s = seedOf(t);
    const inp = randF32(N * C, s, 3), w = randF32(C, s + 1), b = randF32(C, s + 2), out = randF32(N * C, s + 3);
    const mean = randF32(N, s + 4), rstd = randF32(N, s + 5);
    cross(t, 'layernormForward', [out, mean, rstd, inp, w, b, N, C, 1e-5], { outputs: [0, 1, 2] });
    // with the residual add: inp = addA + addB written first
    cross(t, 'layernormForward', [out, mean, rstd, randF32(N * C, s + 10), w, b, N, C, 1e-5, randF32(N * C, s + 11, 2), randF32(N * C, s + 12)], { outputs: [0, 1, 2, 3] });
    native.layernormForward(out, mean, rstd, inp, w, b, N, C, 1e-5);
    const dout = randF32(N * C, s + 6), dinp = randF32(N * C, s + 7), dw = randF32(C, s + 8), db = randF32(C, s + 9);
    cross(t, 'layernormBackward', [dinp, dw, db, dout, inp, w, mean, rstd, N, C], { outputs: [0, 1, 2] });
    cross(t, 'layernormBackward', [dinp, dw, db, dout, inp, w, mean, rstd, N, C, true], { outputs: [0, 1, 2] }); // dinp +=
    cross(t, 'layernormBackward', [null, dw, db, dout, inp, w, mean, rstd, N, C], { outputs: [1, 2] }); // parameters only
  });
}

// Host copies go through a page-locked staging buffer (up to 8 MiB a copy; uploads do not wait for the device and
// take successive regions, used again once the device has read them): uploads of both dtypes back to back (more
// than the buffer holds, so it wraps and grows; each source array changed right after its upload), one past 8 MiB
// (copied directly), kernels between them, then every buffer read back
test('uploads back to back through the page-locked staging, its wrap and growth, a direct copy past 8 MiB: every buffer reads back as uploaded', (t) => {
  const s = seedOf(t);
  const sizes = [200003, 70001, 262147, 5, 300007, 1 << 20, 2500007, 130001];
  const bufs = [], want = [];
  for (const [i, n] of sizes.entries()) {
    const dt = i % 3 === 1 ? 'bf16' : 'fp32';
    const a = randF32(n, s + i);
    const v = { buf: dev.alloc(n, dt), off: 0, len: n };
    dev.upload(v, a);
    want.push(dt === 'bf16' && REAL ? roundBf16(a) : a.slice()); // (the stand-in addon keeps fp32 in bf16 buffers)
    a.fill(7); // the upload has its own copy already
    bufs.push(v);
    if (i === 2) dev.scale(v, 1); // a kernel between uploads
  }
  for (const [i, v] of bufs.entries()) {
    const got = new Float32Array(v.len);
    dev.download(v, got);
    t.deepEqual(got, want[i], `buffer ${i} (${v.len} values)`);
    dev.free(v.buf);
  }
});

test('gelu, add, scale, dropout, sumsq on 100,003 values', (t) => {
  const s = seedOf(t);
  const n = 100003;
  const x = randF32(n, s, 4), y = randF32(n, s + 1), out = randF32(n, s + 2), d = randF32(n, s + 3);
  cross(t, 'geluForward', [out, x], { outputs: [0] });
  cross(t, 'geluBackward', [out, x, d], { outputs: [0] });
  cross(t, 'add', [out, x, y], { outputs: [0] });
  cross(t, 'scale', [x, 0.37], { outputs: [0] });
  // seeds above 2^32 and an offset: the masks must be identical, not only alike
  cross(t, 'dropout', [out, x, 0.3, 2 ** 40 + 12345, 77], { outputs: [0], tol: REAL ? 1e-12 : TOL });
  cross(t, 'sumsq', [x], { outputs: [], ret: true });
});

for (const [B, T, C, V, P, pos0] of [[2, 13, 37, 97, 29, 0], [1, 1, 768, 50257, 1024, 900], [4, 64, 96, 300, 128, 3]]) {
  test(`embedding forward/backward B=${B} T=${T} C=${C} V=${V} pos0=${pos0}`, (t) => {
    const s = seedOf(t);
    const ids = randInts(B * T, V, s), wte = randF32(V * C, s + 1), wpe = randF32(P * C, s + 2), out = randF32(B * T * C, s + 3);
    ids[0] = ids[B * T - 1]; // a repeated id: gradients from two positions add up
    cross(t, 'embeddingForward', [out, ids, wte, wpe, B, T, C, V, P, pos0], { outputs: [0] });
    const dout = randF32(B * T * C, s + 4);
    cross(t, 'embeddingBackward', [wte, wpe, dout, ids, B, T, C, V, P, pos0], { outputs: [0, 1] });
  });
}

for (const [N, V] of [[1, 50257], [13, 97], [64, 1000]]) {
  test(`softmax cross-entropy forward/backward N=${N} V=${V} (with an ignored target)`, (t) => {
    const s = seedOf(t);
    const logits = randF32(N * V, s, 5), targets = randInts(N, V, s + 1), losses = randF32(N, s + 2), lse = randF32(N, s + 3);
    if (N > 1) targets[1] = -1;
    cross(t, 'softmaxXentForward', [losses, lse, logits, targets, N, V, -1], { outputs: [0, 1], ret: true });
    native.softmaxXentForward(losses, lse, logits, targets, N, V, -1);
    const dl = randF32(N * V, s + 4);
    cross(t, 'softmaxXentBackward', [dl, logits, lse, targets, N, V, -1, 0.25], { outputs: [0] });
    // loss and gradient in one pass
    cross(t, 'softmaxXentForward', [losses, lse, logits, targets, N, V, -1, V, dl, 0.25], { outputs: [0, 1, 8], ret: true });
    // padded rows (the model's logits on the GPU): row stride ld > V, padding untouched
    const ld = V + 11, padded = randF32(N * ld, s + 5, 5);
    cross(t, 'softmaxXentForward', [losses, lse, padded, targets, N, V, -1, ld], { outputs: [0, 1], ret: true });
    native.softmaxXentForward(losses, lse, padded, targets, N, V, -1, ld);
    cross(t, 'softmaxXentBackward', [padded, padded, lse, targets, N, V, -1, 0.25, ld], { outputs: [0], padded: [ld, V] });
  });
}

// The kernels' 16-byte forms (add, sumsq, layernorm, softmax cross-entropy take 8 bf16 or 4 floats at a time where
// their rows start 16-byte aligned, as the model's buffers do): sizes with a tail after the last whole vector, rows
// whose width is a multiple of 8 (vectors in fp32 and bf16) and of 4 only (vectors in fp32, one at a time in bf16),
// and a padded logits stride whose padding must stay as it was
const alignedCases = {
  // the bias gradient's column sums (8 bf16 or 4 floats a thread): OC = 200 (vectors in both), 100 (fp32 only),
  // over several row chunks; the weight gradient and dinp ride along
  'linear backward': (t, s, o) => {
    for (const [N, C, OC] of [[333, 24, 200], [70, 16, 100]]) {
      cross(t, 'linearBackward', [randF32(N * C, s + 5), randF32(C * OC, s + 6), randF32(OC, s + 7), randF32(N * OC, s + 4),
        randF32(N * C, s), randF32(C * OC, s + 1, 0.1), N, C, OC], o([0, 1, 2], [0, 3, 4, 5]));
      cross(t, 'linearBackward', [null, null, randF32(OC, s + 8), randF32(N * OC, s + 9), randF32(N * C, s + 10), randF32(C * OC, s + 11, 0.1), N, C, OC], o([2], [3, 4, 5]));
    }
  },
  add: (t, s, o) => {
    const n = 1003;
    cross(t, 'add', [randF32(n, s + 2), randF32(n, s, 4), randF32(n, s + 1)], o([0], [0, 1, 2]));
  },
  sumsq: (t, s, o) => cross(t, 'sumsq', [randF32(1003, s, 4)], o([], [0], { ret: true })),
  // (C <= 1024 with aligned rows: the row in registers, with a last partial chunk at C = 100 and 200; C = 1064: the
  // three passes, 16 bytes at a time)
  'layernorm forward': (t, s, o) => {
    for (const [N, C] of [[13, 96], [13, 100], [333, 200], [40, 1024], [13, 1064]]) {
      const mean = randF32(N, s + 7), rstd = randF32(N, s + 8);
      cross(t, 'layernormForward', [randF32(N * C, s + 6), mean, rstd, randF32(N * C, s + 3, 3), randF32(C, s + 4), randF32(C, s + 5), N, C, 1e-5], o([0, 1, 2], [0, 3]));
      // with the residual add (inp = addA + addB, written, then normalised)
      cross(t, 'layernormForward', [randF32(N * C, s + 6), mean, rstd, randF32(N * C, s + 9), randF32(C, s + 4), randF32(C, s + 5), N, C, 1e-5, randF32(N * C, s + 3, 3), randF32(N * C, s + 10)], o([0, 1, 2, 3], [0, 3, 9, 10]));
    }
  },
  // (C <= 1024 with aligned rows: the one-pass kernel, over several blocks at N = 333 and with a last partial
  // chunk of columns at C = 100 and 200; C = 1064: the two passes, 16 bytes at a time)
  'layernorm backward': (t, s, o, bf) => {
    for (const [N, C] of [[13, 96], [13, 100], [333, 200], [40, 1024], [13, 1064]]) {
      const inp = randF32(N * C, s + 3, 3), w = randF32(C, s + 4), mean = new Float32Array(N), rstd = new Float32Array(N);
      native.layernormForward(randF32(N * C, s + 6), mean, rstd, bf ? roundBf16(inp) : inp, w, randF32(C, s + 5), N, C, 1e-5);
      for (const acc of [false, true]) // dinp = and dinp += (the residual stream's gradient)
        cross(t, 'layernormBackward', [randF32(N * C, s + 10), randF32(C, s + 11), randF32(C, s + 12), randF32(N * C, s + 9), inp, w, mean, rstd, N, C, acc], o([0, 1, 2], [0, 3, 4]));
    }
  },
  'softmax cross-entropy forward': (t, s, o) => {
    const N = 7, V = 1001, ld = 1024;
    const targets = randInts(N, V, s + 14);
    targets[1] = -1;
    targets[2] = V - 1; // the last entry, in the tail after the vectors
    cross(t, 'softmaxXentForward', [randF32(N, s + 15), randF32(N, s + 16), randF32(N * ld, s + 13, 5), targets, N, V, -1, ld], o([0, 1], [2], { ret: true }));
    cross(t, 'softmaxXentForward', [randF32(N, s + 15), randF32(N, s + 16), randF32(N * ld, s + 13, 5), targets, N, V, -1, ld, randF32(N * ld, s + 17), 0.25], o([0, 1, 8], [2, 8], { ret: true, padded: [ld, V] }));
  },
  // as a training step runs it: the loss and the gradient in one pass, dlogits written over the logits themselves
  // (one device view for both); the padding columns must keep their values
  'softmax cross-entropy, loss and gradient in one pass, in place': (t, s, o, bf) => {
    const N = 7, V = 1001, ld = 1024;
    const targets = randInts(N, V, s + 14);
    targets[1] = -1;
    targets[2] = V - 1;
    let x = randF32(N * ld, s + 13, 5);
    if (bf) x = roundBf16(x);
    const lossC = new Float32Array(N), lseC = new Float32Array(N), dC = x.slice();
    const count = native.softmaxXentForward(lossC, lseC, dC, targets, N, V, -1, ld, dC, 0.25);
    const v = { buf: dev.alloc(N * ld + 8, bf ? 'bf16' : 'fp32'), off: 8, len: N * ld };
    const lossV = { buf: dev.alloc(N), off: 0, len: N }, lseV = { buf: dev.alloc(N), off: 0, len: N };
    dev.upload(v, x);
    t.is(dev.softmaxXentForward(lossV, lseV, v, targets, N, V, -1, ld, v, 0.25), count);
    const got = new Float32Array(N * ld), loss = new Float32Array(N);
    dev.download(v, got);
    dev.download(lossV, loss);
    const tol = REAL && bf ? TOL_BF16 : TOL;
    t.true(normErr(loss, lossC) <= tol, `loss: normalised error ${normErr(loss, lossC)}`);
    const g = splitRows(got, ld, V), h = splitRows(dC, ld, V);
    t.true(normErr(g.body, h.body) <= tol, `dlogits: normalised error ${normErr(g.body, h.body)}`);
    t.deepEqual(g.pad, splitRows(x, ld, V).pad, 'the padding changed');
    for (const b of [v.buf, lossV.buf, lseV.buf]) dev.free(b);
  },
  'softmax cross-entropy backward': (t, s, o, bf) => {
    const N = 7, V = 1001, ld = 1024;
    const logits = randF32(N * ld, s + 13, 5), targets = randInts(N, V, s + 14), lse = new Float32Array(N);
    targets[1] = -1;
    targets[2] = V - 1;
    native.softmaxXentForward(new Float32Array(N), lse, bf ? roundBf16(logits) : logits, targets, N, V, -1, ld);
    cross(t, 'softmaxXentBackward', [logits, logits, lse, targets, N, V, -1, 0.25, ld], o([0], [0, 1], { padded: [ld, V] }));
  },
};
for (const bf of [false, true]) for (const [name, run] of Object.entries(alignedCases)) {
  test(`16-byte aligned views${bf ? ', bf16' : ''}: ${name}`, (t) => {
    const o = (outputs, bfArgs, more = {}) => ({ outputs, aligned: true, ...(bf ? { bf16: bfArgs } : {}), ...more });
    run(t, seedOf(t), o, bf);
  });
}

const attnCases = [
  { B: 2, T: 17, NH: 3, HS: 8, window: 0 },
  { B: 1, T: 1, NH: 2, HS: 5, window: 0 },
  { B: 2, T: 21, NH: 2, HS: 7, window: 5 },
  { B: 2, T: 130, NH: 12, HS: 64, window: 0 },
  { B: 1, T: 150, NH: 1, HS: 128, window: 70 },
  { B: 1, T: 64, NH: 2, HS: 256, window: 0 },
  { B: 2, T: 33, NH: 2, HS: 9, window: 0, dropout: 0.3 },
  { B: 1, T: 70, NH: 2, HS: 8, window: 9, dropout: 0.25 },
];
// attention runs two ways on the device (besides the flash kernels, below): cuBLAS GEMMs with row kernels ('gemm') and fused kernels
// (a kind 'flash+atomic' or 'flash2+atomic' is that kind with setFlashBackward('atomic'))
const withAttention = (kind, fn) => {
  const [attn, bwd] = kind.split('+');
  const prev = dev.setAttention(attn), prevBwd = dev.setFlashBackward(bwd ?? 'split');
  try { fn(); } finally { dev.setAttention(prev); dev.setFlashBackward(prevBwd); }
};
for (const c of attnCases) for (const kind of ['gemm', 'fused']) {
  const { B, T, NH, HS, window } = c;
  const dropout = c.dropout ?? 0;
  test(`attention (${kind}) forward/backward B=${B} T=${T} NH=${NH} HS=${HS} window=${window} dropout=${dropout}`, (t) => withAttention(kind, () => {
    const s = seedOf(t);
    const C = NH * HS;
    const qkvLen = B * T * 3 * C;
    const shape = { B, Tq: T, Tk: T, NH, HS, qPos0: 0, window, dropout, seed: s % 100000 + 2 ** 35, q: [T * 3 * C, 3 * C], k: [T * 3 * C, 3 * C], v: [T * 3 * C, 3 * C], o: [T * C, C] };
    const qkv = randF32(qkvLen, s), out = randF32(B * T * C, s + 1), lse = randF32(B * NH * T, s + 2);
    // q, k, v are views into one qkv buffer: run each backend with its own views of its own copy
    const views = (a, k) => a.subarray(k * C);
    const runCpu = () => {
      const o = out.slice(), l = lse.slice();
      native.attentionForward(o, l, qkv, views(qkv, 1), views(qkv, 2), shape);
      return { o, l };
    };
    const h = runCpu();
    const qkvD = { buf: dev.alloc(qkvLen), off: 0, len: qkvLen };
    dev.upload(qkvD, qkv);
    const sub = (v, off) => ({ buf: v.buf, off: v.off + off, len: v.len - off });
    const oD = { buf: dev.alloc(out.length), off: 0, len: out.length }, lD = { buf: dev.alloc(lse.length), off: 0, len: lse.length };
    dev.attentionForward(oD, lD, qkvD, sub(qkvD, C), sub(qkvD, 2 * C), shape);
    const o = new Float32Array(out.length), l = new Float32Array(lse.length);
    dev.download(oD, o); dev.download(lD, l);
    t.true(normErr(o, h.o) <= TOL, `out ${normErr(o, h.o)}`);
    t.true(normErr(l, h.l) <= TOL, `lse ${normErr(l, h.l)}`);
    // backward: dq, dk, dv are views into one dqkv buffer
    const dout = randF32(B * T * C, s + 3);
    const dqkv = randF32(qkvLen, s + 4);
    native.attentionBackward(dqkv, views(dqkv, 1), views(dqkv, 2), dout, qkv, views(qkv, 1), views(qkv, 2), h.o, h.l, shape);
    const dqkvD = { buf: dev.alloc(qkvLen), off: 0, len: qkvLen }, doutD = { buf: dev.alloc(dout.length), off: 0, len: dout.length };
    dev.upload(dqkvD, randF32(qkvLen, s + 4));
    dev.upload(doutD, dout);
    dev.attentionBackward(dqkvD, sub(dqkvD, C), sub(dqkvD, 2 * C), doutD, qkvD, sub(qkvD, C), sub(qkvD, 2 * C), oD, lD, shape);
    const g = new Float32Array(qkvLen);
    dev.download(dqkvD, g);
    t.true(normErr(g, dqkv) <= TOL, `dqkv ${normErr(g, dqkv)}`);
    for (const v of [qkvD, oD, lD, dqkvD, doutD]) dev.free(v.buf);
  }));
}

for (const window of [0, 6]) for (const kind of ['gemm', 'fused']) {
  test(`attention (${kind}) over a KV cache (Tq = 1 and 3, strided cache, qPos0 > 0) window=${window}`, (t) => withAttention(kind, () => {
    const s = seedOf(t);
    const B = 2, NH = 3, HS = 16, C = NH * HS, Tmax = 40;
    for (const [Tq, pos0] of [[1, 17], [3, 30]]) {
      const Tk = pos0 + Tq;
      const q = randF32(B * Tq * 3 * C, s), kc = randF32(B * Tmax * C, s + 1), vc = randF32(B * Tmax * C, s + 2), out = randF32(B * Tq * C, s + 3);
      const shape = { B, Tq, Tk, NH, HS, qPos0: pos0, window, dropout: 0, seed: 0, q: [Tq * 3 * C, 3 * C], k: [Tmax * C, C], v: [Tmax * C, C], o: [Tq * C, C] };
      cross(t, 'attentionForward', [out, null, q, kc, vc, shape], { outputs: [0] });
    }
  }));
}

test('adamw step (decay and no-decay groups, grad scale) on 10,007 values', (t) => {
  const s = seedOf(t);
  const n = 10007;
  const p = randF32(n, s), g = randF32(n, s + 1), m = randF32(n, s + 2, 0.1), v = randF32(n, s + 3, 0.1).map(Math.abs);
  cross(t, 'adamwStep', [p, g, m, v, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7, 0.5], { outputs: [0, 2, 3] });
  cross(t, 'adamwStep', [p, g, m, v, 6e-4, 0.9, 0.95, 1e-8, 0, 1, 1], { outputs: [0, 2, 3] });
  // 16-byte aligned (4 elements a thread, the last 3 one by one); the views above are 3 elements into their buffers,
  // so the vectors start after a head of 1 to 3 elements, as the buffer's own alignment decides
  cross(t, 'adamwStep', [p, g, m, v, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7, 0.5], { outputs: [0, 2, 3], aligned: true });
});

test('adamw step with a bf16 weight copy: the copy is the new weights rounded to nearest even, the rest unchanged', (t) => {
  const s = seedOf(t);
  const n = 4099;
  const p = randF32(n, s), g = randF32(n, s + 1), m = randF32(n, s + 2, 0.1), v = randF32(n, s + 3, 0.1).map(Math.abs);
  const up = (a, dtype = 'fp32') => {
    const x = { buf: dev.alloc(a.length + 5, dtype), off: 5, len: a.length };
    dev.upload(x, a);
    return x;
  };
  const args = (p16) => [up(p), up(g), up(m), up(v), 1e-3, 0.9, 0.95, 1e-8, 0.1, 3, 0.8, p16];
  const plain = args(null), fused = args(up(randF32(n, s + 4), 'bf16'));
  dev.adamwStep(...plain);
  dev.adamwStep(...fused);
  const get = (x) => { const o = new Float32Array(x.len); dev.download(x, o); return o; };
  for (const i of [0, 2, 3]) t.deepEqual(get(fused[i]), get(plain[i]), `argument ${i} is as without the copy`);
  const want = get(plain[0]);
  t.deepEqual(get(fused[11]), REAL ? roundBf16(want) : want, 'the bf16 copy');
  // the same update with the arrays at offsets that do not align together (one element a thread): the same bits
  const at = (a, off, dtype = 'fp32') => {
    const x = { buf: dev.alloc(a.length + off, dtype), off, len: a.length };
    dev.upload(x, a);
    return x;
  };
  const mixed = [at(p, 5), at(g, 6), at(m, 5), at(v, 4), 1e-3, 0.9, 0.95, 1e-8, 0.1, 3, 0.8, at(randF32(n, s + 5), 5, 'bf16')];
  dev.adamwStep(...mixed);
  for (const i of [0, 2, 3, 11]) t.deepEqual(get(mixed[i]), get(fused[i]), `argument ${i} at mixed offsets`);
  // views at an alignment known on a GPU (cudaMalloc: 256 bytes) and on the emulator (buffers end at a guard page,
  // so one of a multiple of 16 bytes starts 16-byte aligned), `off` elements in
  const pinned = (a, off, dtype = 'fp32') => {
    const per = dtype === 'bf16' ? 8 : 4;
    const x = { buf: dev.alloc(Math.ceil((a.length + off) / per) * per, dtype), off, len: a.length };
    dev.upload(x, a);
    return x;
  };
  const r16 = randF32(n, s + 6);
  const pinnedArgs = (off16) => [pinned(p, 2), pinned(g, 2), pinned(m, 2), pinned(v, 2), 1e-3, 0.9, 0.95, 1e-8, 0.1, 3, 0.8, pinned(r16, off16, 'bf16')];
  // 2 elements in: the first 2 one by one, then 1024 vectors of 4, then the last one
  const headTail = pinnedArgs(2);
  // the bf16 copy 3 elements in, so not 8-byte aligned after that head: one element a thread
  const odd16 = pinnedArgs(3);
  for (const [name, a] of [['a head and a tail', headTail], ['an unaligned bf16 copy', odd16]]) {
    dev.adamwStep(...a);
    for (const i of [0, 2, 3, 11]) t.deepEqual(get(a[i]), get(mixed[i]), `argument ${i}, ${name}`);
  }
  const bad32 = args(up(p)), badLen = args(up(p.subarray(1), 'bf16'));
  t.throws(() => dev.adamwStep(...bad32), { message: /param16/ }, 'an fp32 param16');
  t.throws(() => dev.adamwStep(...badLen), { message: /param16/ }, 'a param16 of another length');
  for (const x of [...plain, ...fused, ...mixed, ...headTail, ...odd16, ...bad32, ...badLen]) if (x && x.buf) dev.free(x.buf);
});

// cuBLASLt's bias epilogue (setBiasEpilogue('cublaslt')): gemm with a bias and no accumulation, and the linear
// forward, in fp32 and bf16, at odd sizes and offsets (the views start 3 elements into their buffers, so the
// operands are only 4- or 2-byte aligned); where cuBLASLt has no algorithm the bias pass runs instead
const withBiasEpilogue = (kind, fn) => {
  const prev = dev.setBiasEpilogue(kind);
  try { fn(); } finally { dev.setBiasEpilogue(prev); }
};
for (const [M, N, K] of [[1, 50257 % 997, 768 % 129], [13, 37, 29], [129, 65, 257]]) {
  test(`cuBLASLt bias epilogue: gemm M=${M} N=${N} K=${K} (4 transposes), linear forward, fp32 and bf16`, (t) => withBiasEpilogue('cublaslt', () => {
    const s = seedOf(t);
    const before = dev.biasEpilogueStats();
    const bias = randF32(N, s + 3);
    for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
      const lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
      const A = randF32((ta ? K : M) * lda, s), B = randF32((tb ? N : K) * ldb, s + 1), C = randF32(M * ldc, s + 2);
      cross(t, 'gemm', [ta, tb, M, N, K, 0.7, A, lda, B, ldb, C, ldc, false, bias], { outputs: [10] });
      cross(t, 'gemm', [ta, tb, M, N, K, 1, A, lda, B, ldb, C, ldc, false, bias], { outputs: [10], bf16: [6, 8, 10] });
    }
    const inp = randF32(M * K, s + 4), w = randF32(K * N, s + 5, 0.1), out = randF32(M * N, s + 6);
    cross(t, 'linearForward', [out, inp, w, bias, M, K, N], { outputs: [0] });
    cross(t, 'linearForward', [out, inp, w, bias, M, K, N], { outputs: [0], bf16: [0, 1, 2] });
    ltRan(t, before, 10);
  }));
}
// Every one of `calls` GEMMs went through cuBLASLt: on the emulator, which has an algorithm for every shape, none
// may fall back to the bias pass (a mistake in the descriptors makes its heuristic refuse, and the fallback
// would hide it); on a GPU cuBLASLt may decline a shape (it has no kernels for some alignments), so this logs.
function ltRan(t, before, calls) {
  const after = dev.biasEpilogueStats();
  const lt = after.cublaslt - before.cublaslt, fb = after.fallbacks - before.fallbacks;
  if (process.env.GPT_NATIVE_CUDA_TEST === 'emu') {
    t.is(lt, calls, 'GEMMs whose bias cuBLASLt added');
    t.is(fb, 0, 'GEMMs that fell back to the bias pass');
  } else {
    t.log(`cuBLASLt added the bias in ${lt} of ${calls} GEMMs (${fb} fell back)`);
  }
}
// A and B aligned differently (their views start 0 and 1 elements into fresh buffers), so the alignment each
// operand declares to cuBLASLt's heuristic must be its own: the emulator refuses an operand less aligned than
// declared, as the kernel the heuristic chose would on a GPU
test('cuBLASLt bias epilogue: operands aligned differently, each declared with its own alignment', (t) => withBiasEpilogue('cublaslt', () => {
  const s = seedOf(t);
  const before = dev.biasEpilogueStats();
  const M = 21, N = 19, K = 17;
  for (const [offA, offB] of [[0, 1], [1, 0]]) {
    const A = randF32(M * K, s + offA), B = randF32(K * N, s + 1), bias = randF32(N, s + 2), C = randF32(M * N, s + 3);
    const put = (x, off) => { const v = { buf: dev.alloc(x.length + off), off, len: x.length }; dev.upload(v, x); return v; };
    const aD = put(A, offA), bD = put(B, offB), cD = put(C, 0), biasD = put(bias, 0);
    dev.gemm(false, false, M, N, K, 1, aD, K, bD, N, cD, N, false, biasD);
    const got = new Float32Array(M * N);
    dev.download(cD, got);
    const want = C.slice();
    native.gemm(false, false, M, N, K, 1, A, K, B, N, want, N, false, bias);
    t.true(normErr(got, want) <= TOL, `gemm with A at +${offA}, B at +${offB}: ${normErr(got, want)}`);
    for (const v of [aD, bD, cD, biasD]) dev.free(v.buf);
  }
  ltRan(t, before, 2);
}));
// An MLP's layers with their GELU (linearForward with geluOut, linearBackward with geluPre), the GELU as a pass
// after the GEMM ('kernel') and in cuBLASLt's GELU_AUX_BIAS / DGELU epilogues ('cublaslt'); an output width that
// is a multiple of 8 (cuBLASLt's rule for the auxiliary matrix) and one that is not (the pass runs instead)
const withGeluEpilogue = (kind, fn) => {
  const prev = dev.setGeluEpilogue(kind);
  try { fn(); } finally { dev.setGeluEpilogue(prev); }
};
for (const kind of ['kernel', 'cublaslt']) for (const [N, C, OC] of [[13, 37, 48], [70, 24, 37]]) {
  test(`linear with GELU (${kind}) N=${N} C=${C} OC=${OC}: forward with geluOut, backward with geluPre, fp32 and bf16`, (t) => withGeluEpilogue(kind, () => {
    const s = seedOf(t);
    const before = dev.biasEpilogueStats();
    const inp = randF32(N * C, s), w = randF32(C * OC, s + 1, 0.3), b = randF32(OC, s + 2);
    const fwd = [randF32(N * OC, s + 3), inp, w, b, N, C, OC, randF32(N * OC, s + 4)];
    cross(t, 'linearForward', fwd, { outputs: [0, 7] });
    cross(t, 'linearForward', fwd, { outputs: [0, 7], bf16: [0, 1, 2, 7] });
    const pre = randF32(N * C, s + 5, 2), dout = randF32(N * OC, s + 6);
    const bwd = [randF32(N * C, s + 7), randF32(C * OC, s + 8), randF32(OC, s + 9), dout, inp, w, N, C, OC, pre];
    cross(t, 'linearBackward', bwd, { outputs: [0, 1, 2] });
    cross(t, 'linearBackward', bwd, { outputs: [0, 1, 2], bf16: [0, 3, 4, 5, 9] });
    const after = dev.biasEpilogueStats();
    const lt = after.gelu - before.gelu, fb = after.geluFallbacks - before.geluFallbacks;
    if (kind === 'kernel') t.deepEqual([lt, fb], [0, 0], 'no GELU epilogue asked for');
    else if (process.env.GPT_NATIVE_CUDA_TEST === 'emu') t.deepEqual([lt, fb], [2, 2], 'cuBLASLt fused the GELU where the width allows');
    else t.log(`cuBLASLt fused the GELU in ${lt} GEMMs (${fb} fell back)`);
  }));
}
test('linear with GELU: geluOut may not share memory with out, nor dinp with geluPre', (t) => {
  const N = 3, C = 4, OC = 5;
  const buf = dev.alloc(64), w = dev.alloc(C * OC);
  const v = (off, len) => ({ buf, off, len });
  const wv = { buf: w, off: 0, len: C * OC };
  t.throws(() => dev.linearForward(v(0, N * OC), v(40, N * C), wv, null, N, C, OC, v(10, N * OC)), { instanceOf: RangeError, message: /geluOut shares memory with out/ });
  t.throws(() => dev.linearBackward(v(0, N * C), null, null, v(20, N * OC), v(40, N * C), wv, N, C, OC, v(11, N * C)), { instanceOf: RangeError, message: /dinp shares memory with geluPre/ });
  dev.free(buf); dev.free(w);
});
// the two-way settings: [setter, the default, the other value, the variable that sets it at load]
for (const [fn, on, off, env] of [['setGeluEpilogue', 'cublaslt', 'kernel', 'GPT_NATIVE_CUDA_LT_GELU'],
  ['setBiasEpilogue', 'cublaslt', 'kernel', 'GPT_NATIVE_CUDA_LT'], ['setGemm', 'cublaslt', 'cublas', 'GPT_NATIVE_CUDA_GEMM'],
  ['setFlashBackward', 'split', 'atomic', 'GPT_NATIVE_CUDA_FLASH_BWD'], ['setGemmAlgo', 'heuristic', 'timed', 'GPT_NATIVE_CUDA_GEMM_ALGO']]) {
  test(`${fn} takes ${on} or ${off} and says what it was`, (t) => {
    const prev = dev[fn](on);
    if (!process.env[env]) t.is(prev, on, `${on} is the default`);
    t.is(dev[fn](off), on);
    t.throws(() => dev[fn]('fused'), { instanceOf: TypeError });
    t.is(dev[fn](prev), off, 'a refused setting changes nothing');
  });
}

test('cudaSettings reads the six settings without changing them', (t) => {
  const { cudaSettings } = require('../dist/cuda');
  const prev = cudaSettings(dev);
  const other = { attention: 'fused', flashBackward: 'atomic', biasEpilogue: 'kernel', geluEpilogue: 'kernel', gemm: 'cublas', gemmAlgo: 'timed' };
  try {
    dev.setAttention(other.attention);
    dev.setFlashBackward(other.flashBackward);
    dev.setBiasEpilogue(other.biasEpilogue);
    dev.setGeluEpilogue(other.geluEpilogue);
    dev.setGemm(other.gemm);
    dev.setGemmAlgo(other.gemmAlgo);
    t.deepEqual(cudaSettings(dev), other);
    t.deepEqual(cudaSettings(dev), other, 'a second read sees the same');
  } finally {
    dev.setAttention(prev.attention);
    dev.setFlashBackward(prev.flashBackward);
    dev.setBiasEpilogue(prev.biasEpilogue);
    dev.setGeluEpilogue(prev.geluEpilogue);
    dev.setGemm(prev.gemm);
    dev.setGemmAlgo(prev.gemmAlgo);
  }
  t.deepEqual(cudaSettings(dev), prev);
});

test('setMathMode takes fp32 or bf16 and says what it was', (t) => {
  t.is(dev.setMathMode('bf16'), 'fp32', 'the addon starts (and the tests leave it) in fp32');
  t.is(dev.setMathMode('bf16'), 'bf16');
  t.is(dev.setMathMode('fp32'), 'bf16');
  t.throws(() => dev.setMathMode('fp16'));
  t.is(dev.setMathMode('fp32'), 'fp32', 'a refused mode changes nothing');
});

// ---- bf16 activations: every kernel that takes activations, with them in bf16 device buffers ----------------
// (parameters, gradients and statistics stay fp32; the GEMMs take bf16 operands with fp32 accumulation)
for (const kind of ['cublaslt', 'cublas']) for (const [M, N, K] of [[13, 37, 29], [64, 96, 80]]) {
  test(`bf16: gemm (${kind}) M=${M} N=${N} K=${K} into fp32 (accumulate) and into bf16 (bias)`, (t) => withGemm(kind, () => {
    const s = seedOf(t);
    const before = dev.biasEpilogueStats();
    const A = randF32(M * K, s), B = randF32(K * N, s + 1), C = randF32(M * N, s + 2), bias = randF32(N, s + 3);
    cross(t, 'gemm', [false, false, M, N, K, 0.5, A, K, B, N, C, N, true, null], { outputs: [10], bf16: [6, 8] });
    matmulRan(t, kind, before, 1);
    cross(t, 'gemm', [true, true, M, N, K, 1, randF32(K * M, s + 4), M, randF32(N * K, s + 5), K, C, N, false, bias], { outputs: [10], bf16: [6, 8, 10] });
  }));
}

for (const [N, C, OC] of [[13, 37, 111], [333, 45, 70]]) {
  test(`bf16: linear forward/backward N=${N} C=${C} OC=${OC}`, (t) => {
    const s = seedOf(t);
    const inp = randF32(N * C, s), w = randF32(C * OC, s + 1, 0.1), b = randF32(OC, s + 2), out = randF32(N * OC, s + 3), dout = randF32(N * OC, s + 4);
    cross(t, 'linearForward', [out, inp, w, b, N, C, OC], { outputs: [0], bf16: [0, 1, 2] });
    const dinp = randF32(N * C, s + 5), dw = randF32(C * OC, s + 6), db = randF32(OC, s + 7);
    cross(t, 'linearBackward', [dinp, dw, db, dout, inp, w, N, C, OC], { outputs: [0, 1, 2], bf16: [0, 3, 4, 5] });
  });
}

test('bf16: layernorm, gelu, add, scale, dropout, sumsq', (t) => {
  const s = seedOf(t);
  const N = 300, C = 96, n = N * C;
  const inp = randF32(n, s, 3), w = randF32(C, s + 1), b = randF32(C, s + 2), out = randF32(n, s + 3);
  const mean = randF32(N, s + 4), rstd = randF32(N, s + 5);
  cross(t, 'layernormForward', [out, mean, rstd, inp, w, b, N, C, 1e-5], { outputs: [0, 1, 2], bf16: [0, 3] });
  cross(t, 'layernormForward', [out, mean, rstd, randF32(n, s + 13), w, b, N, C, 1e-5, randF32(n, s + 14, 3), randF32(n, s + 15)], { outputs: [0, 1, 2, 3], bf16: [0, 3, 9, 10] });
  native.layernormForward(out, mean, rstd, roundBf16(inp), w, b, N, C, 1e-5);
  const dout = randF32(n, s + 6), dinp = randF32(n, s + 7), dw = randF32(C, s + 8), db = randF32(C, s + 9);
  cross(t, 'layernormBackward', [dinp, dw, db, dout, inp, w, mean, rstd, N, C], { outputs: [0, 1, 2], bf16: [0, 3, 4] });
  cross(t, 'layernormBackward', [dinp, dw, db, dout, inp, w, mean, rstd, N, C, true], { outputs: [0, 1, 2], bf16: [0, 3, 4] });
  const x = randF32(n, s + 10, 4), y = randF32(n, s + 11), d = randF32(n, s + 12);
  cross(t, 'geluForward', [out, x], { outputs: [0], bf16: [0, 1] });
  cross(t, 'geluBackward', [out, x, d], { outputs: [0], bf16: [0, 1, 2] });
  cross(t, 'add', [out, x, y], { outputs: [0], bf16: [0, 1, 2] });
  cross(t, 'scale', [x, 0.37], { outputs: [0], bf16: [0] });
  cross(t, 'dropout', [out, x, 0.3, 2 ** 40 + 12345, 77], { outputs: [0], bf16: [0, 1] });
  cross(t, 'sumsq', [x], { outputs: [], ret: true, bf16: [0] });
});

test('bf16: embedding and softmax cross-entropy', (t) => {
  const s = seedOf(t);
  const B = 4, T = 64, C = 96, V = 300, P = 128, pos0 = 3;
  const ids = randInts(B * T, V, s), wte = randF32(V * C, s + 1), wpe = randF32(P * C, s + 2), out = randF32(B * T * C, s + 3);
  cross(t, 'embeddingForward', [out, ids, wte, wpe, B, T, C, V, P, pos0], { outputs: [0], bf16: [0] });
  cross(t, 'embeddingBackward', [wte, wpe, randF32(B * T * C, s + 4), ids, B, T, C, V, P, pos0], { outputs: [0, 1], bf16: [2] });
  const N = 64, Vx = 1000;
  const logits = roundBf16(randF32(N * Vx, s + 5, 5)), targets = randInts(N, Vx, s + 6), losses = randF32(N, s + 7), lse = randF32(N, s + 8);
  targets[1] = -1;
  cross(t, 'softmaxXentForward', [losses, lse, logits, targets, N, Vx, -1], { outputs: [0, 1], ret: true, bf16: [2] });
  native.softmaxXentForward(losses, lse, logits, targets, N, Vx, -1);
  cross(t, 'softmaxXentBackward', [randF32(N * Vx, s + 9), logits, lse, targets, N, Vx, -1, 0.25], { outputs: [0], bf16: [0, 1] });
});

for (const kind of ['gemm', 'fused']) {
  for (const { B, T, NH, HS, window, dropout } of [{ B: 2, T: 17, NH: 3, HS: 8, window: 0, dropout: 0 }, { B: 1, T: 40, NH: 2, HS: 16, window: 7, dropout: 0.2 }]) {
    test(`bf16: attention (${kind}) B=${B} T=${T} NH=${NH} HS=${HS} window=${window} dropout=${dropout}`, (t) => withAttention(kind, () => {
      const s = seedOf(t);
      const C = NH * HS, n = B * T * C;
      const shape = { B, Tq: T, Tk: T, NH, HS, qPos0: 0, window, dropout, seed: s % 100000, q: [T * C, C], k: [T * C, C], v: [T * C, C], o: [T * C, C] };
      const q = roundBf16(randF32(n, s)), k = roundBf16(randF32(n, s + 1)), v = roundBf16(randF32(n, s + 2));
      const out = randF32(n, s + 3), lse = randF32(B * NH * T, s + 4);
      cross(t, 'attentionForward', [out, lse, q, k, v, shape], { outputs: [0, 1], bf16: [0, 2, 3, 4] });
      native.attentionForward(out, lse, q, k, v, shape);
      const dq = randF32(n, s + 5), dk = randF32(n, s + 6), dv = randF32(n, s + 7), dout = randF32(n, s + 8);
      cross(t, 'attentionBackward', [dq, dk, dv, dout, q, k, v, out, lse, shape], { outputs: [0, 1, 2], bf16: [0, 1, 2, 3, 4, 5, 6, 7] });
    }));
  }
}

/**
 * Attention with q, k, v packed in one bf16 qkv buffer at offset 0 (16-byte aligned rows), against the CPU on the same
 * bf16-rounded inputs: the forward's out and lse, then the backward from the device's own forward (out rounded to
 * bf16, as stored) against the CPU's from the same. Returns the packed shape.
 */
function packedAttention(t, s, { B, T, NH, HS, window, dropout }, seedOffset) {
  const C = NH * HS, n = B * T * C, qkvLen = 3 * n;
  const packed = { B, Tq: T, Tk: T, NH, HS, qPos0: 0, window, dropout, seed: s % 100000 + seedOffset, q: [T * 3 * C, 3 * C], k: [T * 3 * C, 3 * C], v: [T * 3 * C, 3 * C], o: [T * C, C] };
  const qkv = roundBf16(randF32(qkvLen, s));
  const at = (a, k) => a.subarray(k * C);
  const o = new Float32Array(n), l = new Float32Array(B * NH * T);
  native.attentionForward(o, l, qkv, at(qkv, 1), at(qkv, 2), packed);
  const up = (a, dt) => { const v = { buf: dev.alloc(a.length, dt), off: 0, len: a.length }; dev.upload(v, a); return v; };
  const sub = (v, off) => ({ buf: v.buf, off: v.off + off, len: v.len - off });
  const qkvD = up(qkv, 'bf16'), oD = up(randF32(n, s + 1), 'bf16'), lD = up(randF32(B * NH * T, s + 2), 'fp32');
  dev.attentionForward(oD, lD, qkvD, sub(qkvD, C), sub(qkvD, 2 * C), packed);
  const og = new Float32Array(n), lg = new Float32Array(B * NH * T);
  dev.download(oD, og); dev.download(lD, lg);
  t.true(normErr(og, o) <= TOL_BF16, `out ${normErr(og, o)}`);
  t.true(normErr(lg, l) <= TOL_BF16, `lse ${normErr(lg, l)}`);
  const dout = roundBf16(randF32(n, s + 3)), dqkv = randF32(qkvLen, s + 4);
  native.attentionBackward(dqkv, at(dqkv, 1), at(dqkv, 2), dout, qkv, at(qkv, 1), at(qkv, 2), roundBf16(og), lg, packed);
  const dqkvD = up(randF32(qkvLen, s + 5), 'bf16'), doutD = up(dout, 'bf16');
  dev.attentionBackward(dqkvD, sub(dqkvD, C), sub(dqkvD, 2 * C), doutD, qkvD, sub(qkvD, C), sub(qkvD, 2 * C), oD, lD, packed);
  const g = new Float32Array(qkvLen);
  dev.download(dqkvD, g);
  t.true(normErr(g, dqkv) <= TOL_BF16, `dqkv ${normErr(g, dqkv)}`);
  for (const v of [qkvD, oD, lD, dqkvD, doutD]) dev.free(v.buf);
  return packed;
}

// Flash attention (setAttention('flash'): tensor-core kernels, bf16 activations, head size 64 or 32) against
// the CPU on bf16-rounded inputs: q, k, v packed in one qkv buffer (16-byte aligned rows: the kernels' 8-wide
// loads), then as separate offset views (unaligned: element loads); odd lengths, a window, dropout.
const flashCases = [
  { B: 2, T: 77, NH: 3, HS: 64, window: 0, dropout: 0 },
  { B: 1, T: 130, NH: 2, HS: 32, window: 37, dropout: 0 },
  { B: 1, T: 65, NH: 2, HS: 64, window: 0, dropout: 0.2 },
  { B: 2, T: 19, NH: 1, HS: 32, window: 5, dropout: 0.1 },
  { B: 1, T: 200, NH: 1, HS: 32, window: 130, dropout: 0 }, // tiles wholly inside the band (no mask) and not
  // flash2's 128-query blocks: warps whose rows lie wholly after a tile (causal) or past its band skip it
  { B: 1, T: 300, NH: 1, HS: 64, window: 50, dropout: 0 },
];
const flashRuns = () => { const st = dev.attentionStats(); return st.flash; };
// 'flash2' (an opt-in): the forward with 32 query rows a warp, forward and dQ with cp.async double-buffered tiles;
// '+atomic' (setFlashBackward('atomic'), an opt-in): dQ from the dK/dV kernel through atomics (head size 64; 32 runs
// split)
for (const kind of ['flash', 'flash2', 'flash+atomic', 'flash2+atomic']) for (const { B, T, NH, HS, window, dropout } of flashCases) {
  test(`bf16: attention (${kind}) B=${B} T=${T} NH=${NH} HS=${HS} window=${window} dropout=${dropout}`, (t) => withAttention(kind, () => {
    const s = seedOf(t);
    const C = NH * HS, n = B * T * C;
    const ran0 = flashRuns();
    const packed = packedAttention(t, s, { B, T, NH, HS, window, dropout }, 7);
    // separate buffers behind an offset of 3 elements (rows not 16-byte aligned)
    const shape = { ...packed, q: [T * C, C], k: [T * C, C], v: [T * C, C] };
    const q = randF32(n, s + 6), k = randF32(n, s + 7), v = randF32(n, s + 8);
    cross(t, 'attentionForward', [randF32(n, s + 9), randF32(B * NH * T, s + 10), q, k, v, shape], { outputs: [0, 1], bf16: [0, 2, 3, 4] });
    const out2 = new Float32Array(n), lse2 = new Float32Array(B * NH * T);
    native.attentionForward(out2, lse2, roundBf16(q), roundBf16(k), roundBf16(v), shape);
    cross(t, 'attentionBackward', [randF32(n, s + 11), randF32(n, s + 12), randF32(n, s + 13), randF32(n, s + 14), q, k, v, out2, lse2, shape], { outputs: [0, 1, 2], bf16: [0, 1, 2, 3, 4, 5, 6, 7] });
    if (REAL) t.is(flashRuns() - ran0, 4, 'both forward and both backward calls ran the flash kernels');
  }));
}

// Scores that grow along the keys, against the CPU: the flash forward keeps each row's softmax base until a score
// passes it by 2^8 (then rescales the warp's rows). 'steep': keys scaled by j/8 and positive q·k, so each row's
// scores grow by about 0.8 (log2 units) a key and 240 over the sequence: a part without its rescale overflows
// fp32. 'drifting': signed scores whose spread grows with the key (scale 1 + j/16), so rows pass their base now
// and then, after the first tile. Head size 64 (flash2: 32 rows a warp) and 128 (16), aligned rows (cp.async).
for (const kind of ['flash', 'flash2']) for (const HS of [64, 128]) for (const shape of ['steep', 'drifting']) {
  test(`bf16: attention (${kind}) at head size ${HS}, scores ${shape} along the keys: forward and backward`, (t) => withAttention(kind, () => {
    const s = seedOf(t);
    const B = 1, T = 301, NH = 2, C = NH * HS, n = B * T * C;
    const q = randF32(n, s), k = randF32(n, s + 1), v = randF32(n, s + 2);
    for (let j = 0; j < T; j++)
      for (let c = 0; c < C; c++) {
        const at = j * C + c;
        if (shape === 'steep') {
          q[at] = 0.75 + 0.25 * q[at];
          k[at] = (0.75 + 0.25 * k[at]) * (j / 8);
        } else {
          k[at] *= 1 + j / 16;
        }
      }
    const dims = { B, Tq: T, Tk: T, NH, HS, qPos0: 0, window: 0, dropout: 0, seed: 1, q: [T * C, C], k: [T * C, C], v: [T * C, C], o: [T * C, C] };
    const opts = { bf16: [0, 2, 3, 4], aligned: true };
    const before = dev.attentionStats();
    cross(t, 'attentionForward', [randF32(n, s + 3), randF32(B * NH * T, s + 4), q, k, v, dims], { ...opts, outputs: [0, 1] });
    const out = new Float32Array(n), lse = new Float32Array(B * NH * T);
    native.attentionForward(out, lse, roundBf16(q), roundBf16(k), roundBf16(v), dims);
    t.true(lse.every(Number.isFinite), 'the reference lse is finite');
    if (shape === 'steep') t.true(lse[T - 1] - lse[0] > 150, `the last row's lse passes the first's by over 150 nats (216 in log2): ${lse[T - 1] - lse[0]}`);
    cross(t, 'attentionBackward', [randF32(n, s + 5), randF32(n, s + 6), randF32(n, s + 7), randF32(n, s + 8), q, k, v, out, lse, dims],
      { outputs: [0, 1, 2], bf16: [0, 1, 2, 3, 4, 5, 6, 7], aligned: true });
    if (REAL) t.is(dev.attentionStats().flash - before.flash, HS === 64 || wideFlash ? 2 : 1, 'the forward (and the backward where built) ran flash');
  }));
}

// Head sizes 80 (GPT-3 2.7B: five 16-column chunks, the last taken alone), 96 (GPT-3 Large) and 128 (GPT-3 XL, 6.7B,
// 13B, 175B): the flash forward (16 query rows a warp, also under 'flash2'), and the flash backward where flash2's
// kernels are built (sm_90+: its dK/dV kernel takes a query tile 32 (80, 96) or 16 (128) queries at a time, in
// dynamic shared memory; dQ's kernel takes keys likewise; 'atomic' runs split at these sizes), else the cuBLAS path
// from the lse the flash forward wrote; packed aligned rows and offset views, a window, dropout (the forward's mask
// and the backward's must agree)
const wideFlash = REAL && dev.init().computeCapability[0] >= 9;
for (const kind of ['flash', 'flash2+atomic']) for (const { B, T, NH, HS, window, dropout } of [
  { B: 2, T: 77, NH: 2, HS: 128, window: 0, dropout: 0 }, { B: 1, T: 130, NH: 1, HS: 128, window: 30, dropout: 0.1 },
  { B: 1, T: 70, NH: 2, HS: 96, window: 0, dropout: 0.1 }, { B: 2, T: 45, NH: 1, HS: 96, window: 20, dropout: 0 },
  { B: 2, T: 67, NH: 2, HS: 80, window: 0, dropout: 0.1 }, { B: 1, T: 140, NH: 1, HS: 80, window: 45, dropout: 0 }]) {
  test(`bf16: attention (${kind}) at head size ${HS} B=${B} T=${T} NH=${NH} window=${window} dropout=${dropout}: flash forward and backward`, (t) => withAttention(kind, () => {
    const s = seedOf(t);
    const C = NH * HS, n = B * T * C;
    const before = dev.attentionStats();
    const packed = packedAttention(t, s, { B, T, NH, HS, window, dropout }, 3);
    // separate views 3 elements in (element loads)
    const shape = { ...packed, q: [T * C, C], k: [T * C, C], v: [T * C, C] };
    const q = randF32(n, s + 6), k = randF32(n, s + 7), v = randF32(n, s + 8);
    cross(t, 'attentionForward', [randF32(n, s + 9), randF32(B * NH * T, s + 10), q, k, v, shape], { outputs: [0, 1], bf16: [0, 2, 3, 4] });
    const out2 = new Float32Array(n), lse2 = new Float32Array(B * NH * T);
    native.attentionForward(out2, lse2, roundBf16(q), roundBf16(k), roundBf16(v), shape);
    cross(t, 'attentionBackward', [randF32(n, s + 11), randF32(n, s + 12), randF32(n, s + 13), randF32(n, s + 14), q, k, v, out2, lse2, shape], { outputs: [0, 1, 2], bf16: [0, 1, 2, 3, 4, 5, 6, 7] });
    const after = dev.attentionStats();
    if (REAL) t.deepEqual([after.flash - before.flash, after.fallbacks - before.fallbacks], wideFlash ? [4, 0] : [2, 2], 'the forwards ran flash, and the backwards where sm_90+');
  }));
}

// A GPU whose blocks may have less dynamic shared memory than sm_90's 227 KiB (99 KiB on sm_120): the backward at
// head size 128 (103 KiB for its dK/dV kernel) takes the cuBLAS path, at 96 (81 KiB) the flash kernels. On the
// emulator, in a process of its own (the addon reads the limit once): GN_EMU_SMEM_OPTIN sets it.
if (process.env.GPT_NATIVE_CUDA_TEST === 'emu') test('wide head sizes on a device with 99 KiB of shared memory a block: the backward at 128 falls back, at 96 runs flash', (t) => {
  const { execFileSync } = require('child_process');
  const outText = execFileSync(process.execPath, [path.join(__dirname, 'helpers', 'flash-smem-child.js'), '96', '128'],
    { env: { ...process.env, GN_EMU_SMEM_OPTIN: String(99 * 1024) }, encoding: 'utf8' });
  const r = JSON.parse(outText.trim().split('\n').pop());
  t.deepEqual([r[96].flash, r[96].fallbacks], [2, 0], 'head size 96: both calls flash');
  t.deepEqual([r[128].flash, r[128].fallbacks], [1, 1], 'head size 128: the forward flash, the backward the cuBLAS path');
  for (const hs of [96, 128]) t.true(r[hs].maxDq > 0 && Number.isFinite(r[hs].maxDq), `head size ${hs}: dq written (${r[hs].maxDq})`);
});

// queries after a prefix (qPos0 > 0) and more keys than the last query sees (Tk > qPos0 + Tq), as with a KV cache
// whose tail is not written yet: those keys are NaN here, and no output of any attention path may depend on them
for (const kind of ['gemm', 'fused', 'flash', 'flash2', 'flash2+atomic']) test(`bf16: attention (${kind}) after a prefix (qPos0 > 0, Tk > qPos0 + Tq, unseen keys NaN): forward and backward`, (t) => withAttention(kind, () => {
  const s = seedOf(t);
  const B = 2, NH = 2, HS = 64, C = NH * HS, Tq = 70, pos0 = 50, Tk = 150;
  for (const window of [0, 40]) {
    const q = randF32(B * Tq * C, s + window), k = randF32(B * Tk * C, s + 1), v = randF32(B * Tk * C, s + 2);
    for (let b = 0; b < B; b++) {
      k.fill(NaN, (b * Tk + pos0 + Tq) * C, (b + 1) * Tk * C);
      v.fill(NaN, (b * Tk + pos0 + Tq) * C, (b + 1) * Tk * C);
    }
    const shape = { B, Tq, Tk, NH, HS, qPos0: pos0, window, dropout: 0, seed: 0, q: [Tq * C, C], k: [Tk * C, C], v: [Tk * C, C], o: [Tq * C, C] };
    const out = randF32(B * Tq * C, s + 3), lse = randF32(B * NH * Tq, s + 4);
    cross(t, 'attentionForward', [out, lse, q, k, v, shape], { outputs: [0, 1], bf16: [0, 2, 3, 4] });
    native.attentionForward(out, lse, roundBf16(q), roundBf16(k), roundBf16(v), shape);
    t.false(out.some(Number.isNaN), 'the CPU reference reads no unseen key');
    cross(t, 'attentionBackward', [randF32(B * Tq * C, s + 5), randF32(B * Tk * C, s + 6), randF32(B * Tk * C, s + 7), randF32(B * Tq * C, s + 8), q, k, v, out, lse, shape],
      { outputs: [0, 1, 2], bf16: [0, 1, 2, 3, 4, 5, 6, 7] });
  }
}));

for (const kind of ['flash', 'flash2']) test(`${kind} attention over a KV cache (Tq = 1 and 5, strided cache, qPos0 > 0), and where it does not apply`, (t) => withAttention(kind, () => {
  const s = seedOf(t);
  const B = 2, NH = 2, HS = 64, C = NH * HS, Tmax = 90;
  for (const window of [0, 20]) for (const [Tq, pos0] of [[1, 70], [5, 66]]) {
    const Tk = pos0 + Tq;
    const q = randF32(B * Tq * 3 * C, s + Tq + window), kc = randF32(B * Tmax * C, s + 1), vc = randF32(B * Tmax * C, s + 2), out = randF32(B * Tq * C, s + 3);
    const shape = { B, Tq, Tk, NH, HS, qPos0: pos0, window, dropout: 0, seed: 0, q: [Tq * 3 * C, 3 * C], k: [Tmax * C, C], v: [Tmax * C, C], o: [Tq * C, C] };
    cross(t, 'attentionForward', [out, null, q, kc, vc, shape], { outputs: [0], bf16: [0, 2, 3, 4] });
  }
  // fp32 activations and a head size without flash kernels run the other path, with the same results
  const before = dev.attentionStats();
  const T = 21, n = T * 2 * 48;
  const shape = { B: 1, Tq: T, Tk: T, NH: 2, HS: 48, qPos0: 0, window: 0, dropout: 0, seed: 0, q: [n, 96], k: [n, 96], v: [n, 96], o: [n, 96] };
  cross(t, 'attentionForward', [randF32(n, s + 4), randF32(2 * T, s + 5), randF32(n, s + 6), randF32(n, s + 7), randF32(n, s + 8), shape], { outputs: [0, 1], bf16: [0, 2, 3, 4] });
  const shape64 = { ...shape, HS: 64, q: [T * 128, 128], k: [T * 128, 128], v: [T * 128, 128], o: [T * 128, 128] };
  const m = T * 128;
  cross(t, 'attentionForward', [randF32(m, s + 9), randF32(2 * T, s + 10), randF32(m, s + 11), randF32(m, s + 12), randF32(m, s + 13), shape64], { outputs: [0, 1] });
  const after = dev.attentionStats();
  if (REAL) t.deepEqual([after.flash - before.flash, after.fallbacks - before.fallbacks], [0, 2], 'neither ran flash');
}));

// The flash kernels' building blocks one at a time (flashProbe), exactly: small integers, so every product is exact
// in bf16 operands and fp32 sums. A failure on a GPU names the block at fault (the mma fragment layout, ldmatrix, the
// second ldmatrix of A, or ldmatrix.trans with the accumulator-to-A packing of P·V; then the atomic backward's two
// blocks, in a test of their own) and where its first wrong entries are; the inputs are offset views, as the model's.
const PROBE_NAMES = ['x·yᵀ by mma alone (the fragment layout of mma.cuh)', 'x·yᵀ by mul_abt (B through ldmatrix.x4)',
  'x·yᵀ by mul_abt_shared (A through ldmatrix.x4 too)', 'p·v by mul_pb (A from the accumulators, B through ldmatrix.x4.trans)',
  'xᵀ·v by mul_atb_shared (A through ldmatrix.x4.trans of its transpose)', 'x·yᵀ rounded to bf16 through store_acc_tile (a shared tile)'];
function probeRows(t, rows) {
  const s = seedOf(t);
  const ints = (seed) => randF32(4096, seed).map((x) => Math.round(7 * x));
  const [x, y, p, v] = [0, 1, 2, 3].map((i) => ints(s + i));
  const want = probeProducts(new Float32Array(6 * 4096), x, y, p, v);
  t.true(want.some((w) => w !== 0) && x.some((e) => e !== 0), 'the inputs are not all zeros');
  const up = (a, dt) => { const w = { buf: dev.alloc(a.length + 5, dt), off: 5, len: a.length }; dev.upload(w, a); return w; };
  const out = up(randF32(6 * 4096, s + 4), 'fp32');
  const ins = [x, y, p, v].map((a) => up(a, 'bf16'));
  dev.flashProbe(out, ...ins);
  const got = new Float32Array(6 * 4096);
  dev.download(out, got);
  for (const r of rows) {
    const bad = [];
    for (let e = 0; e < 4096; e++) if (got[r * 4096 + e] !== want[r * 4096 + e]) bad.push(e);
    const first = bad.slice(0, 6).map((e) => `(${e >> 6}, ${e & 63}): ${got[r * 4096 + e]} for ${want[r * 4096 + e]}`);
    t.is(bad.length, 0, `${PROBE_NAMES[r]}: ${bad.length} of 4096 entries wrong; first (row, column): got for want: ${first.join('; ')}`);
  }
  return { out, ins, up, x };
}
test('flash building blocks (flashProbe): mma alone, through ldmatrix, and P·V through ldmatrix.trans equal the plain products exactly', (t) => {
  const { out, ins, up, x } = probeRows(t, [0, 1, 2, 3]);
  // fp32 tiles are refused with a message that names the argument, and a short out with its size
  const f = up(x, 'fp32');
  t.throws(() => dev.flashProbe(out, f, ins[1], ins[2], ins[3]), { instanceOf: TypeError, message: /flash_probe: expected a bf16 buffer for x \(argument 1\)/ });
  const short = up(randF32(4 * 4096, 1), 'fp32');
  t.throws(() => dev.flashProbe(short, ...ins), { instanceOf: RangeError });
  for (const w of [out, f, short, ...ins]) dev.free(w.buf);
});
// (named so that gpu-check runs it with the atomic backward's tests, not as a gate of the default flash kernels)
test('flash atomic dQ building blocks (the probe\'s last two): xᵀ·v with A through ldmatrix.trans, and dS\'s bf16 store through a shared tile', (t) => {
  const { out, ins } = probeRows(t, [4, 5]);
  for (const w of [out, ...ins]) dev.free(w.buf);
});

// bias_rows, zero_rows and the softmax-xent backward loop over rows when a matrix has more than one grid holds
// (device.cuh grid_rows: at most 65,535 block rows); gemm with K = 0 is zero_rows
test('row-looping kernels over more rows than one grid holds: linear bias, gemm with K = 0, softmax-xent backward', (t) => {
  const s = seedOf(t);
  const N = 70001, C = 3, OC = 5, V = 7;
  const inp = randF32(N * C, s), w = randF32(C * OC, s + 1), b = randF32(OC, s + 2);
  cross(t, 'linearForward', [randF32(N * OC, s + 3), inp, w, b, N, C, OC], { outputs: [0] });
  // K = 0 without accumulation zeroes C's N×OC block and leaves the padding of its leading dimension alone
  const ldc = OC + 2, c0 = randF32(N * ldc, s + 4);
  const cD = { buf: dev.alloc(c0.length), off: 0, len: c0.length };
  dev.upload(cD, c0);
  const aD = { buf: dev.alloc(inp.length), off: 0, len: inp.length }, wD = { buf: dev.alloc(w.length), off: 0, len: w.length };
  dev.gemm(false, false, N, OC, 0, 1, aD, C, wD, OC, cD, ldc, false, null);
  const c1 = new Float32Array(c0.length);
  dev.download(cD, c1);
  let wrong = 0;
  for (let i = 0; i < N; ++i) for (let j = 0; j < ldc; ++j) if (c1[i * ldc + j] !== (j < OC ? 0 : c0[i * ldc + j])) ++wrong;
  t.is(wrong, 0, 'elements of C not zeroed, or padding changed');
  for (const v of [cD, aD, wD]) dev.free(v.buf);
  const logits = randF32(N * V, s + 5), targets = randInts(N, V, s + 6), lse = randF32(N, s + 7);
  native.softmaxXentForward(randF32(N, s + 8), lse, logits, targets, N, V, -1);
  targets[5] = -1;
  cross(t, 'softmaxXentBackward', [randF32(N * V, s + 9), logits, lse, targets, N, V, -1, 0.5], { outputs: [0] });
});

test('bf16 buffers: upload rounds, download widens, copy converts, and fp32-only arguments refuse bf16', (t) => {
  const s = seedOf(t);
  const x = randF32(1001, s);
  const b = { buf: dev.alloc(1001, 'bf16'), off: 0, len: 1001 }, f = { buf: dev.alloc(1001), off: 0, len: 1001 };
  dev.upload(b, x);
  const got = new Float32Array(1001);
  dev.download(b, got);
  t.deepEqual(got, REAL ? roundBf16(x) : x, 'bf16 round trip');
  dev.copy(f, b); // bf16 -> fp32 conversion on the device
  dev.download(f, got);
  t.deepEqual(got, REAL ? roundBf16(x) : x, 'converting copy');
  if (REAL) {
    t.is(dev.bufferDtype(b.buf), 'bf16');
    const m = { buf: dev.alloc(1001), off: 0, len: 1001 };
    t.throws(() => dev.adamwStep(b, f, m, m, 1e-3, 0.9, 0.95, 1e-8, 0, 1, 1), { message: /param must be an fp32 buffer but holds bf16/ });
    t.throws(() => dev.add(f, b, f), { message: /add: out is fp32 but a is bf16/ });
    t.throws(() => dev.alloc(4, 'fp16'), { message: /dtype must be 'fp32' or 'bf16'/ });
    t.throws(() => dev.gemm(false, false, 1, 1, 1, 1, f, 1, f, 1, b, 1, false, null), { message: /fp32 operands cannot write a bf16 result/ });
    t.throws(() => dev.gemm(false, false, 1, 1, 1, 1, f, 1, b, 1, f, 1, false, null), { message: /must share a dtype/ });
    dev.free(m.buf);
  }
  dev.free(b.buf); dev.free(f.buf);
});

test('copyRows: a strided block of rows (the KV cache append), and a clear error outside the views', (t) => {
  const s = seedOf(t);
  const rows = 7, cols = 13, ss = 40, ds = 17;
  const src = randF32((rows - 1) * ss + cols + 5, s), dst = randF32((rows - 1) * ds + cols + 2, s + 1);
  const sv = { buf: dev.alloc(src.length + 4), off: 4, len: src.length }, dv = { buf: dev.alloc(dst.length), off: 0, len: dst.length };
  dev.upload(sv, src); dev.upload(dv, dst);
  dev.copyRows({ buf: dv.buf, off: 1, len: dst.length - 1 }, ds, { buf: sv.buf, off: 5, len: src.length - 1 }, ss, rows, cols);
  const want = dst.slice();
  for (let r = 0; r < rows; r++) want.set(src.subarray(1 + r * ss, 1 + r * ss + cols), 1 + r * ds);
  const got = new Float32Array(dst.length);
  dev.download(dv, got);
  t.deepEqual(got, want);
  t.throws(() => dev.copyRows(dv, ds, sv, ss, rows + 3, cols), { instanceOf: RangeError });
  dev.free(sv.buf); dev.free(dv.buf);
});

test('device memory: views outside a buffer and freed buffers are errors, not crashes', (t) => {
  const b = dev.alloc(10);
  t.is(dev.bufferLength(b), 10);
  t.throws(() => dev.upload({ buf: b, off: 5, len: 6 }, new Float32Array(6)), { instanceOf: RangeError });
  t.throws(() => dev.upload({ buf: b, off: 0, len: 10 }, new Float32Array(9)), { instanceOf: RangeError });
  dev.free(b);
  t.throws(() => dev.fill({ buf: b, off: 0, len: 10 }, 1), { message: /freed/ });
});

// ---- the KV decoder's steady state: decode slots and CUDA graphs (native/cuda/decode.cu, graph.cc) ----
// The stand-in addon has neither (the decoder then runs as before); the emulator and a GPU run these.
const withSlots = REAL ? test : test.skip;

/** A device view holding a (fp32 or bf16), `off` elements into its buffer (3: too little aligned for 16-byte loads). */
function put(a, dtype = 'fp32', off = 0) {
  const v = { buf: dev.alloc(a.length + off + 8, dtype), off, len: a.length };
  dev.upload(v, a);
  return v;
}
function get(v) {
  const out = new Float32Array(v.len);
  dev.download(v, out);
  return out;
}

// one query a row at the position the slots hold, over a strided cache (keys then values in one row, as the decoder
// keeps them), against the CPU's attention at that position: head sizes that take 16-byte loads (64, 96: a second
// partial pass of 64) and those that do not (12, 25; 64 at an offset of 3 elements), windows, both dtypes; and a
// cache of 300 positions, whose keys are split between blocks of 128 (positions and windows across the splits)
for (const [HS, off, Tmax] of [[12, 0, 40], [25, 0, 40], [64, 0, 40], [64, 3, 40], [96, 0, 40], [25, 0, 300], [64, 0, 300]]) for (const dtype of ['fp32', 'bf16']) {
  withSlots(`attention from decode slots (one query a row) HS=${HS}${off ? ' at an unaligned offset' : ''} ${dtype}, ${Tmax} positions${Tmax > 256 ? ' (keys split between blocks)' : ''}`, (t) => {
    const s = seedOf(t);
    const B = 2, NH = 3, C = NH * HS, bf = dtype === 'bf16';
    const slots = dev.decodeSlots(B, Tmax);
    const r = (a) => (bf ? roundBf16(a) : a);
    const q = r(randF32(B * 3 * C, s)), cache = r(randF32(B * Tmax * 2 * C, s + 1));
    const qD = put(q, dtype, off), cacheD = put(cache, dtype, off);
    for (const window of Tmax > 256 ? [0, 5, 150] : [0, 5]) for (const pos of Tmax > 256 ? [0, 17, 130, 200, Tmax - 1] : [0, 17, Tmax - 1]) {
      dev.setDecodeSlots(slots, pos, randInts(B, 50, s + pos), 50);
      const strides = { q: [3 * C, 3 * C], k: [Tmax * 2 * C, 2 * C], v: [Tmax * 2 * C, 2 * C], o: [C, C] };
      const want = new Float32Array(B * C);
      native.attentionForward(want, null, q, cache, cache.subarray(C), { B, Tq: 1, Tk: pos + 1, NH, HS, qPos0: pos, window, dropout: 0, seed: 0, ...strides });
      const outD = put(randF32(B * C, s + 2), dtype);
      dev.attentionForward(outD, null, qD, cacheD, { buf: cacheD.buf, off: cacheD.off + C, len: cacheD.len - C },
        { B, Tq: 1, Tk: Tmax, NH, HS, qPos0: 0, window, dropout: 0, seed: 0, slots, ...strides });
      const e = normErr(get(outD), want);
      t.true(e <= (bf ? TOL_BF16 : TOL), `pos ${pos} window ${window}: normalised error ${e}`);
      dev.free(outD.buf);
    }
    dev.free(qD.buf);
    dev.free(cacheD.buf);
    dev.freeDecodeSlots(slots);
  });
}

withSlots('decodeEmbed and decodeAppend from decode slots; their argument checks', (t) => {
  const s = seedOf(t);
  const B = 3, C = 37, V = 97, P = 29, Tmax = 20;
  const slots = dev.decodeSlots(B, Tmax);
  const wte = randF32(V * C, s), wpe = randF32(P * C, s + 1);
  const wteD = put(wte), wpeD = put(wpe);
  const ids = randInts(B, V, s + 2), pos = 13;
  dev.setDecodeSlots(slots, pos, ids, V);
  const want = new Float32Array(B * C);
  native.embeddingForward(want, ids, wte, wpe, B, 1, C, V, P, pos);
  const outD = put(randF32(B * C, s + 3));
  dev.decodeEmbed(outD, slots, wteD, wpeD, B, C, V, P);
  t.deepEqual(get(outD), want, 'decodeEmbed = embeddingForward at the slots position');
  // a row of width 2C from each of B rows (stride 3C, from element C) into caches (B, Tmax, 2C) at position pos
  const src = randF32(B * 3 * C, s + 4), cache = randF32(B * Tmax * 2 * C, s + 5);
  const srcD = put(src), cacheD = put(cache);
  dev.decodeAppend(cacheD, Tmax * 2 * C, 2 * C, { buf: srcD.buf, off: C, len: src.length - C }, 3 * C, slots, B, 2 * C);
  const expect = cache.slice();
  for (let b = 0; b < B; b++) expect.set(src.subarray(b * 3 * C + C, b * 3 * C + 3 * C), (b * Tmax + pos) * 2 * C);
  t.deepEqual(get(cacheD), expect, 'decodeAppend wrote the row at pos and nothing else');
  t.throws(() => dev.setDecodeSlots(slots, Tmax, ids, V), { message: /position 20 is past the 20 positions/ });
  t.throws(() => dev.setDecodeSlots(slots, 0, Int32Array.of(1, 2, V), V), { message: /token id 97 at 2 is out of range for a vocabulary of 97/ });
  t.throws(() => dev.setDecodeSlots(slots, 0, new Int32Array(B + 1), V), { message: /4 token ids for slots of 3 rows/ });
  t.throws(() => dev.decodeEmbed(outD, slots, wteD, wpeD, B + 1, C, V, P), { message: /B=4 rows but the slots hold 3/ });
  t.throws(() => dev.decodeEmbed(outD, slots, wteD, { ...wpeD, len: 10 * C }, B, C, V, 10), { message: /positions up to 19 but wpe has P=10/ });
  t.throws(() => dev.decodeAppend({ ...cacheD, len: cacheD.len - 1 }, Tmax * 2 * C, 2 * C, srcD, 3 * C, slots, B, 2 * C), { message: /dst has .* elements but shape/ });
  const shape = { B, Tq: 2, Tk: Tmax, NH: 1, HS: C, qPos0: 0, window: 0, dropout: 0, seed: 0, q: [3 * C, 3 * C], k: [Tmax * 2 * C, 2 * C], v: [Tmax * 2 * C, 2 * C], o: [C, C], slots };
  t.throws(() => dev.attentionForward(outD, null, srcD, cacheD, cacheD, shape), { message: /with shape.slots, Tq must be 1/ });
  t.throws(() => dev.attentionForward(outD, null, srcD, cacheD, cacheD, { ...shape, Tq: 1, slots: {} }), { message: /expected decode slots/ });
  for (const v of [wteD, wpeD, outD, srcD, cacheD]) dev.free(v.buf);
  dev.freeDecodeSlots(slots);
  t.throws(() => dev.setDecodeSlots(slots, 0, ids, V), { message: /the decode slots were freed/ });
});

withSlots('a CUDA graph of a decode step replays at every position as the launches themselves; what a capture forbids', (t) => {
  const s = seedOf(t);
  const B = 2, NH = 2, HS = 16, C = NH * HS, V = 61, P = 300, Tmax = P; // (300 positions: attention in 3 splits and a merge)
  const slots = dev.decodeSlots(B, Tmax);
  const wteD = put(randF32(V * C, s)), wpeD = put(randF32(P * C, s + 1));
  const xD = put(randF32(B * 3 * C, s + 2)), cacheD = put(randF32(B * Tmax * 2 * C, s + 3)), outD = put(randF32(B * C, s + 4));
  const shape = { B, Tq: 1, Tk: Tmax, NH, HS, qPos0: 0, window: 0, dropout: 0, seed: 0, q: [3 * C, 3 * C], k: [Tmax * 2 * C, 2 * C], v: [Tmax * 2 * C, 2 * C], o: [C, C], slots };
  const at = (v, off) => ({ buf: v.buf, off: v.off + off, len: v.len - off });
  const embD = put(randF32(B * C, s + 5));
  // a step: the tokens' embeddings become the keys of their qkv rows (a device-to-device 2-D copy), each row's key
  // and value go into the cache at the position, then attention over it
  const step = () => {
    dev.decodeEmbed(embD, slots, wteD, wpeD, B, C, V, P);
    dev.copyRows(at(xD, C), 3 * C, embD, C, B, C);
    dev.decodeAppend(cacheD, Tmax * 2 * C, 2 * C, at(xD, C), 3 * C, slots, B, 2 * C);
    dev.attentionForward(outD, null, xD, cacheD, at(cacheD, C), shape);
  };
  const ids = (p) => randInts(B, V, s + 10 + p);
  const snapshot = () => [get(outD), get(cacheD)];
  // the launches themselves, position by position, from a fresh cache
  const cache0 = get(cacheD);
  const eager = [];
  for (let p = 0; p < 6; p++) {
    dev.setDecodeSlots(slots, p, ids(p), V);
    step();
    eager.push(snapshot());
  }
  dev.upload(cacheD, cache0);
  const before = dev.graphStats();
  dev.graphBegin();
  step();
  const g = dev.graphEnd(true);
  for (let p = 0; p < 6; p++) {
    dev.setDecodeSlots(slots, p, ids(p), V);
    t.true(dev.graphLaunch(g), `launch at position ${p}`);
    t.deepEqual(snapshot(), eager[p], `position ${p}: the replay equals the launches`);
  }
  const after = dev.graphStats();
  t.deepEqual([after.captured - before.captured, after.launched - before.launched], [1, 6]);
  // while capturing: no host copies, allocation, freeing or synchronising (each throws, naming it); the capture then
  // ends without a graph
  for (const [what, f] of [['a copy from host memory', () => dev.upload(outD, new Float32Array(outD.len))],
    ['a copy to host memory', () => get(outD)], ['alloc\\(\\)', () => dev.alloc(4)], ['synchronize\\(\\)', () => dev.synchronize()],
    ['free\\(\\)', () => dev.free(outD.buf)], ['graphLaunch\\(\\)', () => dev.graphLaunch(g)]]) {
    dev.graphBegin();
    t.throws(() => dev.graphBegin(), { message: /already being captured/ });
    t.throws(f, { message: new RegExp(`${what} is not allowed while a CUDA graph is being captured`) });
    t.is(dev.graphEnd(false), undefined);
  }
  t.throws(() => dev.graphEnd(true), { message: /no CUDA graph is being captured/ });
  // the work queued since is unaffected, and the graph still runs
  dev.setDecodeSlots(slots, 2, ids(2), V);
  t.true(dev.graphLaunch(g));
  t.deepEqual(get(outD), eager[2][0]);
  // a scratch buffer reallocated after the capture makes the graph stale: its launch refuses and says so. (A
  // layernorm backward wide enough needs more partial sums than any scratch so far.)
  const r0 = dev.graphStats().scratchReallocs;
  for (let w = 1 << 14; dev.graphStats().scratchReallocs === r0 && w <= 1 << 22; w *= 4) {
    const mk = (n, k) => put(randF32(n, s + k));
    const args = [mk(w, 20), mk(w, 21), mk(w, 22), mk(w, 23), mk(w, 24), mk(w, 25), mk(1, 26), put(Float32Array.of(1.5))];
    dev.layernormBackward(...args, 1, w);
    for (const v of args) dev.free(v.buf);
  }
  t.true(dev.graphStats().scratchReallocs > r0, 'a scratch buffer grew');
  const stale = dev.graphStats().stale;
  t.false(dev.graphLaunch(g), 'a stale graph does not run');
  t.is(dev.graphStats().stale, stale + 1);
  dev.graphFree(g);
  t.throws(() => dev.graphLaunch(g), { message: /the graph was freed/ });
  for (const v of [wteD, wpeD, xD, cacheD, outD, embD]) dev.free(v.buf);
  dev.freeDecodeSlots(slots);
});
