'use strict';
// Every CPU kernel family against its double-precision reference (native/ref), and every reference
// backward against central finite differences in float64. Sizes include T=1, non-multiples of 8/16,
// multi-block attention and banded windows. Inputs are fresh random draws each run (seed logged).
const test = require('ava');
const { native } = require('../dist/native');
const { freshSeed, randF32, randInts, f64, normErr, finiteDiff, pickIndices, dot } = require('./helpers/util');

const ref = native.ref;
const TOL = 1e-10; // normalised error Σ(a−b)²/Σb² between float32 kernels and the float64 reference

// ---------------------------------------------------------------- layernorm
for (const [N, C] of [[1, 5], [7, 33], [64, 768], [13, 100]]) {
  test(`layernorm forward/backward vs reference N=${N} C=${C}`, (t) => {
    const seed = freshSeed(); t.log(`seed ${seed}`);
    const x = randF32(N * C, seed, 2), w = randF32(C, seed + 1), b = randF32(C, seed + 2), dy = randF32(N * C, seed + 3);
    const y = new Float32Array(N * C), mean = new Float32Array(N), rstd = new Float32Array(N);
    native.layernormForward(y, mean, rstd, x, w, b, N, C, 1e-5);
    const yr = new Float64Array(N * C);
    ref.layernormForward(yr, f64(x), f64(w), f64(b), N, C, 1e-5);
    t.true(normErr(y, yr) < TOL, `forward err ${normErr(y, yr)}`);
    // parameter grads accumulate: start from a non-zero value
    const dw0 = randF32(C, seed + 4), db0 = randF32(C, seed + 5);
    const dx = new Float32Array(N * C), dw = dw0.slice(), db = db0.slice();
    native.layernormBackward(dx, dw, db, dy, x, w, mean, rstd, N, C);
    const dxr = new Float64Array(N * C), dwr = f64(dw0), dbr = f64(db0);
    ref.layernormBackward(dxr, dwr, dbr, f64(dy), f64(x), f64(w), N, C, 1e-5);
    t.true(normErr(dx, dxr) < TOL, `dinp err ${normErr(dx, dxr)}`);
    t.true(normErr(dw, dwr) < TOL, `dweight err ${normErr(dw, dwr)}`);
    t.true(normErr(db, dbr) < TOL, `dbias err ${normErr(db, dbr)}`);
    // accumulate: dinp += the same gradient (a residual stream's), the parameter gradients += as always
    const dx0 = randF32(N * C, seed + 6), dxa = dx0.slice(), dwa = dw0.slice(), dba = db0.slice();
    native.layernormBackward(dxa, dwa, dba, dy, x, w, mean, rstd, N, C, true);
    const dxar = f64(dx0).map((v, i) => v + dxr[i]);
    t.true(normErr(dxa, dxar) < TOL, `dinp += err ${normErr(dxa, dxar)}`);
    t.deepEqual(dwa, dw, 'dweight does not depend on accumulate');
    t.deepEqual(dba, db, 'dbias does not depend on accumulate');
    // the residual add in the same pass: inp = a + b written, then normalised: equal to an add and a LayerNorm
    const ra = randF32(N * C, seed + 7, 2), rb = randF32(N * C, seed + 8), sum = randF32(N * C, seed + 9);
    const ys = new Float32Array(N * C), ms = new Float32Array(N), rs = new Float32Array(N);
    native.layernormForward(ys, ms, rs, sum, w, b, N, C, 1e-5, ra, rb);
    const sumRef = new Float32Array(N * C), y2 = new Float32Array(N * C), m2 = new Float32Array(N), r2 = new Float32Array(N);
    native.add(sumRef, ra, rb);
    native.layernormForward(y2, m2, r2, sumRef, w, b, N, C, 1e-5);
    t.deepEqual(sum, sumRef, 'inp = addA + addB');
    t.deepEqual([ys, ms, rs], [y2, m2, r2], 'out, mean, rstd as after a separate add');
  });
}

test('layernormForward with addA but no addB (or a short one) is a clear error', (t) => {
  const N = 3, C = 8, f = (n) => new Float32Array(n).fill(0.5);
  t.throws(() => native.layernormForward(f(N * C), f(N), f(N), f(N * C), f(C), f(C), N, C, 1e-5, f(N * C)), { instanceOf: TypeError, message: /layernorm_forward: expected a Float32Array for addB \(argument 10\)/ });
  t.throws(() => native.layernormForward(f(N * C), f(N), f(N), f(N * C), f(C), f(C), N, C, 1e-5, f(N * C), f(N * C - 1)), { instanceOf: RangeError, message: /addB/ });
});

test('layernorm reference backward matches finite differences (float64)', (t) => {
  const seed = freshSeed(); t.log(`seed ${seed}`);
  const N = 3, C = 11;
  const x = f64(randF32(N * C, seed, 2)), w = f64(randF32(C, seed + 1)), b = f64(randF32(C, seed + 2));
  const g = f64(randF32(N * C, seed + 3));
  const y = new Float64Array(N * C);
  const loss = () => { ref.layernormForward(y, x, w, b, N, C, 1e-5); return dot(y, g); };
  const dx = new Float64Array(N * C), dw = new Float64Array(C), db = new Float64Array(C);
  ref.layernormBackward(dx, dw, db, g, x, w, N, C, 1e-5);
  for (const [arr, grad] of [[x, dx], [w, dw], [b, db]]) {
    const idx = pickIndices(arr.length, 8, seed + 9);
    const fd = finiteDiff(loss, arr, idx);
    idx.forEach((i, k) => t.true(Math.abs(fd[k] - grad[i]) < 1e-6 * (1 + Math.abs(grad[i])), `i=${i} fd=${fd[k]} an=${grad[i]}`));
  }
});

// ---------------------------------------------------------------- gelu
for (const n of [1, 17, 4099, 65536 + 3]) {
  test(`gelu forward/backward vs reference n=${n}`, (t) => {
    const seed = freshSeed(); t.log(`seed ${seed}`);
    const x = randF32(n, seed, 6), dy = randF32(n, seed + 1);
    const y = new Float32Array(n), dx = new Float32Array(n);
    native.geluForward(y, x);
    native.geluBackward(dx, x, dy);
    const yr = new Float64Array(n), dxr = new Float64Array(n);
    ref.geluForward(yr, f64(x));
    ref.geluBackward(dxr, f64(x), f64(dy));
    t.true(normErr(y, yr) < TOL, `forward ${normErr(y, yr)}`);
    t.true(normErr(dx, dxr) < TOL, `backward ${normErr(dx, dxr)}`);
  });
}

test('gelu reference backward matches finite differences (float64)', (t) => {
  const seed = freshSeed();
  const n = 40;
  const x = f64(randF32(n, seed, 5)), g = f64(randF32(n, seed + 1));
  const y = new Float64Array(n);
  const loss = () => { ref.geluForward(y, x); return dot(y, g); };
  const dx = new Float64Array(n);
  ref.geluBackward(dx, x, g);
  const idx = [...Array(n).keys()];
  const fd = finiteDiff(loss, x, idx);
  idx.forEach((i) => t.true(Math.abs(fd[i] - dx[i]) < 1e-7 * (1 + Math.abs(dx[i])), `i=${i}`));
});

// ---------------------------------------------------------------- embedding
test('embedding forward/backward vs reference, with a position offset', (t) => {
  const seed = freshSeed(); t.log(`seed ${seed}`);
  const B = 3, T = 5, C = 19, V = 23, P = 11, pos0 = 4;
  const ids = randInts(B * T, V, seed);
  ids[0] = ids[7] = ids[9]; // repeated ids must accumulate
  const wte = randF32(V * C, seed + 1), wpe = randF32(P * C, seed + 2), dy = randF32(B * T * C, seed + 3);
  const y = new Float32Array(B * T * C);
  native.embeddingForward(y, ids, wte, wpe, B, T, C, V, P, pos0);
  const yr = new Float64Array(B * T * C);
  ref.embeddingForward(yr, ids, f64(wte), f64(wpe), B, T, C, pos0);
  t.true(normErr(y, yr) < TOL);
  const dwte0 = randF32(V * C, seed + 4), dwpe0 = randF32(P * C, seed + 5);
  const dwte = dwte0.slice(), dwpe = dwpe0.slice();
  native.embeddingBackward(dwte, dwpe, dy, ids, B, T, C, V, P, pos0);
  const dwter = f64(dwte0), dwper = f64(dwpe0);
  ref.embeddingBackward(dwter, dwper, f64(dy), ids, B, T, C, pos0);
  t.true(normErr(dwte, dwter) < TOL);
  t.true(normErr(dwpe, dwper) < TOL);
});

test('embedding rejects ids outside the vocabulary and positions past the context', (t) => {
  const C = 4, V = 10, P = 6;
  const wte = randF32(V * C, 1), wpe = randF32(P * C, 2), out = new Float32Array(2 * 3 * C);
  const e1 = t.throws(() => native.embeddingForward(out, Int32Array.from([1, 2, 10, 3, 4, 5]), wte, wpe, 2, 3, C, V, P, 0), { instanceOf: RangeError });
  t.regex(e1.message, /token id 10 .*outside the vocabulary \[0, 10\)/);
  const e2 = t.throws(() => native.embeddingForward(out, Int32Array.from([1, 2, 3, 3, 4, 5]), wte, wpe, 2, 3, C, V, P, 4), { instanceOf: RangeError });
  t.regex(e2.message, /exceed the context of 6 positions/);
  const e3 = t.throws(() => native.embeddingForward(out, Int32Array.from([-1, 2, 3, 3, 4, 5]), wte, wpe, 2, 3, C, V, P, 0), { instanceOf: RangeError });
  t.regex(e3.message, /token id -1/);
});

// ---------------------------------------------------------------- softmax + cross-entropy
for (const [N, V] of [[1, 7], [9, 1001], [4, 50257]]) {
  test(`softmax cross-entropy forward/backward vs reference N=${N} V=${V}`, (t) => {
    const seed = freshSeed(); t.log(`seed ${seed}`);
    const logits = randF32(N * V, seed, 8);
    const targets = randInts(N, V, seed + 1);
    if (N > 2) targets[1] = -1; // ignored row
    const losses = new Float32Array(N), lse = new Float32Array(N);
    const count = native.softmaxXentForward(losses, lse, logits, targets, N, V, -1);
    const lr = new Float64Array(N);
    const countR = ref.softmaxXentForward(lr, f64(logits), targets, N, V, -1);
    t.is(count, countR);
    t.true(normErr(losses, lr) < TOL, `loss err ${normErr(losses, lr)}`);
    if (N > 2) t.is(losses[1], 0);
    const scale = 1 / count;
    const d = new Float32Array(N * V);
    native.softmaxXentBackward(d, logits, lse, targets, N, V, -1, scale);
    const dr = new Float64Array(N * V);
    ref.softmaxXentBackward(dr, f64(logits), targets, N, V, -1, scale);
    t.true(normErr(d, dr) < TOL, `grad err ${normErr(d, dr)}`);
    // in place (dlogits aliasing logits)
    const inplace = logits.slice();
    native.softmaxXentBackward(inplace, inplace, lse, targets, N, V, -1, scale);
    t.true(normErr(inplace, dr) < TOL);
    // loss and gradient in one pass (the forward with dlogits): the same values as the two calls, in place too
    const copy = logits.slice();
    for (const [x, dl] of [[logits, new Float32Array(N * V)], [copy, copy]]) {
      const l2 = new Float32Array(N), s2 = new Float32Array(N);
      t.is(native.softmaxXentForward(l2, s2, x, targets, N, V, -1, V, dl, scale), count);
      t.deepEqual(l2, losses);
      t.deepEqual(s2, lse);
      t.deepEqual(dl, d);
    }
  });
}

test('softmax cross-entropy over padded rows (row stride ld > V): same values, padding untouched', (t) => {
  const seed = freshSeed(); t.log(`seed ${seed}`);
  const N = 7, V = 97, ld = 128;
  const dense = randF32(N * V, seed, 6), targets = randInts(N, V, seed + 1);
  targets[2] = -1;
  const padded = randF32(N * ld, seed + 2, 6); // random padding, which must be neither read nor written
  for (let n = 0; n < N; n++) padded.set(dense.subarray(n * V, (n + 1) * V), n * ld);
  const l1 = new Float32Array(N), s1 = new Float32Array(N), l2 = new Float32Array(N), s2 = new Float32Array(N);
  t.is(native.softmaxXentForward(l2, s2, padded, targets, N, V, -1, ld), native.softmaxXentForward(l1, s1, dense, targets, N, V, -1));
  t.deepEqual(l2, l1);
  t.deepEqual(s2, s1);
  const d1 = new Float32Array(N * V), d2 = padded.slice();
  native.softmaxXentBackward(d1, dense, s1, targets, N, V, -1, 0.5);
  native.softmaxXentBackward(d2, d2, s2, targets, N, V, -1, 0.5, ld);
  for (let n = 0; n < N; n++) {
    t.deepEqual(d2.subarray(n * ld, n * ld + V), d1.subarray(n * V, (n + 1) * V), `row ${n}`);
    t.deepEqual(d2.subarray(n * ld + V, (n + 1) * ld), padded.subarray(n * ld + V, (n + 1) * ld), `padding of row ${n}`);
  }
  // the one-pass form in place over padded rows: the same gradient, padding untouched
  const d3 = padded.slice();
  native.softmaxXentForward(l2, s2, d3, targets, N, V, -1, ld, d3, 0.5);
  t.deepEqual(l2, l1);
  t.deepEqual(d3, d2);
  t.throws(() => native.softmaxXentForward(l1, s1, padded, targets, N, V, -1, ld, padded.subarray(0, (N - 1) * ld + V - 1), 0.5), { message: /dlogits has/ });
  t.throws(() => native.softmaxXentForward(l1, s1, padded, targets, N, V, -1, V - 1), { message: /row stride ld = 96 is less than V = 97/ });
  t.throws(() => native.softmaxXentForward(l1, s1, padded.subarray(0, (N - 1) * ld + V - 1), targets, N, V, -1, ld), { instanceOf: RangeError });
});

test('softmax cross-entropy reference backward matches finite differences (float64)', (t) => {
  const seed = freshSeed();
  const N = 3, V = 13;
  const x = f64(randF32(N * V, seed, 3));
  const targets = randInts(N, V, seed + 1);
  const l = new Float64Array(N);
  const loss = () => { ref.softmaxXentForward(l, x, targets, N, V, -1); return (l[0] + l[1] + l[2]) / N; };
  const d = new Float64Array(N * V);
  ref.softmaxXentBackward(d, x, targets, N, V, -1, 1 / N);
  const idx = pickIndices(N * V, 12, seed + 2);
  const fd = finiteDiff(loss, x, idx);
  idx.forEach((i, k) => t.true(Math.abs(fd[k] - d[i]) < 1e-8, `i=${i}`));
});

test('softmax cross-entropy rejects a target outside the vocabulary', (t) => {
  const e = t.throws(() => native.softmaxXentForward(new Float32Array(2), null, randF32(10, 3), Int32Array.from([1, 5]), 2, 5, -1), { instanceOf: RangeError });
  t.regex(e.message, /target 5 at row 1 is outside the vocabulary/);
});

// ---------------------------------------------------------------- attention
// Packed qkv (B,T,3,NH,HS) as the model uses it; the reference takes separate contiguous q,k,v.
function splitQKV(qkv, B, T, NH, HS) {
  const C = NH * HS;
  const q = new Float64Array(B * T * C), k = new Float64Array(B * T * C), v = new Float64Array(B * T * C);
  for (let bt = 0; bt < B * T; bt++)
    for (let c = 0; c < C; c++) {
      q[bt * C + c] = qkv[bt * 3 * C + c];
      k[bt * C + c] = qkv[bt * 3 * C + C + c];
      v[bt * C + c] = qkv[bt * 3 * C + 2 * C + c];
    }
  return { q, k, v };
}

function packedShape(B, T, NH, HS, window, dropout, seed) {
  const C = NH * HS;
  return { B, Tq: T, Tk: T, NH, HS, qPos0: 0, window, dropout, seed, q: [T * 3 * C, 3 * C], k: [T * 3 * C, 3 * C], v: [T * 3 * C, 3 * C], o: [T * C, C] };
}

const attnCases = [
  { B: 2, T: 17, NH: 3, HS: 8, window: 0 },
  { B: 1, T: 1, NH: 2, HS: 5, window: 0 },
  { B: 2, T: 21, NH: 2, HS: 7, window: 5 },
  { B: 1, T: 130, NH: 2, HS: 16, window: 0 },
  { B: 1, T: 150, NH: 1, HS: 12, window: 70 },
  { B: 2, T: 33, NH: 2, HS: 9, window: 0, dropout: 0.3 },
  { B: 1, T: 70, NH: 2, HS: 8, window: 9, dropout: 0.25 },
];

for (const c of attnCases) {
  const { B, T, NH, HS, window } = c;
  const dropout = c.dropout ?? 0;
  test(`attention forward/backward vs reference B=${B} T=${T} NH=${NH} HS=${HS} window=${window} dropout=${dropout}`, (t) => {
    const seed = freshSeed(); t.log(`seed ${seed}`);
    const C = NH * HS;
    const qkv = randF32(B * T * 3 * C, seed, 1.5);
    const dout = randF32(B * T * C, seed + 1);
    const shape = packedShape(B, T, NH, HS, window, dropout, seed % 100000);
    const out = new Float32Array(B * T * C), lse = new Float32Array(B * NH * T);
    native.attentionForward(out, lse, qkv, qkv.subarray(C), qkv.subarray(2 * C), shape);
    const { q, k, v } = splitQKV(qkv, B, T, NH, HS);
    const outR = new Float64Array(B * T * C);
    ref.attentionForward(outR, q, k, v, B, T, T, NH, HS, 0, window, dropout, shape.seed);
    t.true(normErr(out, outR) < TOL, `forward err ${normErr(out, outR)}`);
    const dqkv = new Float32Array(B * T * 3 * C).fill(7); // must be overwritten, not accumulated
    native.attentionBackward(dqkv, dqkv.subarray(C), dqkv.subarray(2 * C), dout, qkv, qkv.subarray(C), qkv.subarray(2 * C), out, lse, shape);
    const dq = new Float64Array(B * T * C), dk = new Float64Array(B * T * C), dv = new Float64Array(B * T * C);
    ref.attentionBackward(dq, dk, dv, f64(dout), q, k, v, B, T, T, NH, HS, 0, window, dropout, shape.seed);
    const got = splitQKV(dqkv, B, T, NH, HS);
    if (T === 1) {
      // one key: the weights are constant, so q and k get exactly zero gradient
      t.true(got.q.every((x) => Math.abs(x) < 1e-6) && got.k.every((x) => Math.abs(x) < 1e-6));
    } else {
      t.true(normErr(got.q, dq) < TOL, `dq err ${normErr(got.q, dq)}`);
      t.true(normErr(got.k, dk) < TOL, `dk err ${normErr(got.k, dk)}`);
    }
    t.true(normErr(got.v, dv) < TOL, `dv err ${normErr(got.v, dv)}`);
  });
}

test('attention with a KV cache: queries at an offset see exactly the allowed keys', (t) => {
  const seed = freshSeed(); t.log(`seed ${seed}`);
  for (const window of [0, 6]) {
    const B = 2, NH = 2, HS = 8, C = NH * HS, Tq = 3, Tk = 20, Tmax = 32, pos0 = Tk - Tq;
    const q = randF32(B * Tq * C, seed), kc = randF32(B * Tmax * C, seed + 1), vc = randF32(B * Tmax * C, seed + 2);
    const out = new Float32Array(B * Tq * C);
    native.attentionForward(out, null, q, kc, vc, {
      B, Tq, Tk, NH, HS, qPos0: pos0, window, dropout: 0, seed: 0,
      q: [Tq * C, C], k: [Tmax * C, C], v: [Tmax * C, C], o: [Tq * C, C],
    });
    // reference with compact k/v of Tk rows
    const k = new Float64Array(B * Tk * C), v = new Float64Array(B * Tk * C);
    for (let b = 0; b < B; b++) for (let i = 0; i < Tk * C; i++) { k[b * Tk * C + i] = kc[b * Tmax * C + i]; v[b * Tk * C + i] = vc[b * Tmax * C + i]; }
    const outR = new Float64Array(B * Tq * C);
    ref.attentionForward(outR, f64(q), k, v, B, Tq, Tk, NH, HS, pos0, window, 0, 0);
    t.true(normErr(out, outR) < TOL, `window ${window}: ${normErr(out, outR)}`);
  }
});

test('attention reference backward matches finite differences (float64), banded and dropout', (t) => {
  const seed = freshSeed();
  for (const [window, dropout] of [[0, 0], [3, 0], [0, 0.4]]) {
    const B = 1, T = 6, NH = 2, HS = 3, C = NH * HS;
    const q = f64(randF32(T * C, seed)), k = f64(randF32(T * C, seed + 1)), v = f64(randF32(T * C, seed + 2));
    const g = f64(randF32(T * C, seed + 3));
    const out = new Float64Array(T * C);
    const loss = () => { ref.attentionForward(out, q, k, v, B, T, T, NH, HS, 0, window, dropout, 42); return dot(out, g); };
    const dq = new Float64Array(T * C), dk = new Float64Array(T * C), dv = new Float64Array(T * C);
    ref.attentionBackward(dq, dk, dv, g, q, k, v, B, T, T, NH, HS, 0, window, dropout, 42);
    for (const [x, dx] of [[q, dq], [k, dk], [v, dv]]) {
      const idx = [...Array(T * C).keys()];
      const fd = finiteDiff(loss, x, idx);
      idx.forEach((i) => t.true(Math.abs(fd[i] - dx[i]) < 1e-7 * (1 + Math.abs(dx[i])), `w=${window} p=${dropout} i=${i} fd=${fd[i]} an=${dx[i]}`));
    }
  }
});

test('attention rejects queries that need more keys than given', (t) => {
  const e = t.throws(() => native.attentionForward(new Float32Array(16), null, new Float32Array(16), new Float32Array(16), new Float32Array(16), {
    B: 1, Tq: 2, Tk: 1, NH: 1, HS: 8, qPos0: 0, window: 0, dropout: 0, seed: 0, q: [16, 8], k: [16, 8], v: [16, 8], o: [16, 8],
  }), { instanceOf: RangeError });
  t.regex(e.message, /need 2 keys but only Tk=1/);
});

// ---------------------------------------------------------------- linear (Conv1D layout) over GEMM
for (const [N, C, OC] of [[1, 8, 5], [37, 29, 71], [64, 96, 288]]) {
  test(`linear forward/backward vs reference N=${N} C=${C} OC=${OC}`, (t) => {
    const seed = freshSeed(); t.log(`seed ${seed}`);
    const x = randF32(N * C, seed), w = randF32(C * OC, seed + 1), b = randF32(OC, seed + 2), dy = randF32(N * OC, seed + 3);
    const y = new Float32Array(N * OC);
    native.linearForward(y, x, w, b, N, C, OC);
    const yr = new Float64Array(N * OC);
    ref.gemm(false, false, N, OC, C, 1, f64(x), C, f64(w), OC, yr, OC, false, f64(b));
    t.true(normErr(y, yr) < TOL);
    const dw0 = randF32(C * OC, seed + 4), db0 = randF32(OC, seed + 5);
    const dx = new Float32Array(N * C), dw = dw0.slice(), db = db0.slice();
    native.linearBackward(dx, dw, db, dy, x, w, N, C, OC);
    const dxr = new Float64Array(N * C), dwr = f64(dw0);
    ref.gemm(false, true, N, C, OC, 1, f64(dy), OC, f64(w), OC, dxr, C, false, null);
    ref.gemm(true, false, C, OC, N, 1, f64(x), C, f64(dy), OC, dwr, OC, true, null);
    const dbr = f64(db0);
    for (let n = 0; n < N; n++) for (let o = 0; o < OC; o++) dbr[o] += dy[n * OC + o];
    t.true(normErr(dx, dxr) < TOL);
    t.true(normErr(dw, dwr) < TOL);
    t.true(normErr(db, dbr) < TOL);
  });
}

// an MLP's layers with their GELU: linearForward(…, geluOut) is linearForward then geluForward, and
// linearBackward(…, geluPre) is linearBackward then geluBackward at geluPre, bit for bit
for (const [N, C, OC] of [[1, 8, 5], [37, 29, 71]]) {
  test(`linear with GELU: forward with geluOut, backward with geluPre N=${N} C=${C} OC=${OC}`, (t) => {
    const seed = freshSeed(); t.log(`seed ${seed}`);
    const x = randF32(N * C, seed), w = randF32(C * OC, seed + 1), b = randF32(OC, seed + 2);
    const y = new Float32Array(N * OC), g = new Float32Array(N * OC);
    native.linearForward(y, x, w, b, N, C, OC, g);
    const y2 = new Float32Array(N * OC), g2 = new Float32Array(N * OC);
    native.linearForward(y2, x, w, b, N, C, OC);
    native.geluForward(g2, y2);
    t.deepEqual(y, y2, 'out keeps the GELU input');
    t.deepEqual(g, g2, 'geluOut = GELU(out)');
    t.true(g.some((v, i) => v !== y[i]), 'GELU changed the values');
    const pre = randF32(N * C, seed + 3, 2), dy = randF32(N * OC, seed + 4);
    const dx = new Float32Array(N * C), dw = new Float32Array(C * OC), db = new Float32Array(OC);
    native.linearBackward(dx, dw, db, dy, x, w, N, C, OC, pre);
    const dx2 = new Float32Array(N * C), dw2 = new Float32Array(C * OC), db2 = new Float32Array(OC);
    native.linearBackward(dx2, dw2, db2, dy, x, w, N, C, OC);
    native.geluBackward(dx2, pre, dx2);
    t.deepEqual(dx, dx2, 'dinp is the gradient at geluPre');
    t.deepEqual(dw, dw2);
    t.deepEqual(db, db2);
    t.throws(() => native.linearForward(y, x, w, b, N, C, OC, new Float32Array(N * OC - 1)), { instanceOf: RangeError, message: /linear_forward: geluOut/ });
    t.throws(() => native.linearBackward(dx, dw, db, dy, x, w, N, C, OC, new Float32Array(N * C - 1)), { instanceOf: RangeError, message: /linear_backward: geluPre/ });
    // the fused forms read one buffer after writing the other: the two may not share memory
    t.throws(() => native.linearForward(y, x, w, b, N, C, OC, y), { instanceOf: RangeError, message: /geluOut shares memory with out/ });
    t.throws(() => native.linearBackward(dx, dw, db, dy, x, w, N, C, OC, dx), { instanceOf: RangeError, message: /dinp shares memory with geluPre/ });
  });
}

test('linear rejects a weight of the wrong shape, naming the shapes', (t) => {
  const e = t.throws(() => native.linearForward(new Float32Array(6), new Float32Array(8), new Float32Array(7), null, 2, 4, 3), { instanceOf: RangeError });
  t.regex(e.message, /linear_forward: weight has 7 elements but shape \(4,3\) has 12/);
  const e2 = t.throws(() => native.linearForward(new Float32Array(6), [1, 2], new Float32Array(12), null, 2, 4, 3), { instanceOf: TypeError });
  t.regex(e2.message, /expected a Float32Array for inp/);
});

// ---------------------------------------------------------------- AdamW
test('adamw step vs reference over several steps, with gradient scaling', (t) => {
  const seed = freshSeed(); t.log(`seed ${seed}`);
  const n = 1000 + 7;
  const p = randF32(n, seed), m = new Float32Array(n), v = new Float32Array(n);
  const pr = f64(p), mr = new Float64Array(n), vr = new Float64Array(n);
  for (let step = 1; step <= 3; step++) {
    const g = randF32(n, seed + step);
    native.adamwStep(p, g, m, v, 1e-3, 0.9, 0.95, 1e-8, 0.1, step, 0.5);
    ref.adamwStep(pr, f64(g), mr, vr, 1e-3, 0.9, 0.95, 1e-8, 0.1, step, 0.5);
  }
  t.true(normErr(p, pr) < 1e-12, `param err ${normErr(p, pr)}`);
  t.true(normErr(m, mr) < TOL);
  t.true(normErr(v, vr) < TOL);
});

test('adamw step with param16: the bf16 copy is the new weights rounded to nearest even; nothing else changes', (t) => {
  const seed = freshSeed(); t.log(`seed ${seed}`);
  const n = 70001; // more than one thread's chunk
  const p = randF32(n, seed), g = randF32(n, seed + 1), m = randF32(n, seed + 2, 0.1), v = randF32(n, seed + 3, 0.1).map(Math.abs);
  const [p1, m1, v1, p2, m2, v2] = [p, m, v, p, m, v].map((a) => a.slice());
  const h = new Uint16Array(n).fill(0x7fc0);
  native.adamwStep(p1, g, m1, v1, 1e-3, 0.9, 0.95, 1e-8, 0.1, 5, 0.7);
  native.adamwStep(p2, g, m2, v2, 1e-3, 0.9, 0.95, 1e-8, 0.1, 5, 0.7, h);
  t.deepEqual(p2, p1);
  t.deepEqual(m2, m1);
  t.deepEqual(v2, v1);
  const want = new Uint16Array(n);
  native.toBf16(want, p1);
  t.deepEqual(h, want);
  t.throws(() => native.adamwStep(p2, g, m2, v2, 1e-3, 0.9, 0.95, 1e-8, 0.1, 5, 1, new Uint16Array(n - 1)), { message: /param16 has 70000 elements/ });
  t.throws(() => native.adamwStep(p2, g, m2, v2, 1e-3, 0.9, 0.95, 1e-8, 0.1, 5, 1, new Float32Array(n)), { message: /expected a Uint16Array for param16/ });
});

// ---------------------------------------------------------------- dropout, residual, norms
test('dropout keeps ~(1-p), scales by 1/(1-p), is reproducible from (seed, offset), and backward reuses the mask', (t) => {
  const n = 200003, p = 0.1;
  const x = randF32(n, freshSeed(), 1).map((v) => v + 2); // no zeros
  const y = new Float32Array(n), y2 = new Float32Array(n);
  native.dropout(y, x, p, 1234, 0);
  native.dropout(y2, x, p, 1234, 0);
  t.deepEqual(y, y2);
  let kept = 0;
  for (let i = 0; i < n; i++) {
    if (y[i] !== 0) { kept++; t.true(Math.abs(y[i] - x[i] / (1 - p)) < 1e-5); }
  }
  const frac = kept / n;
  t.true(Math.abs(frac - (1 - p)) < 4 * Math.sqrt(p * (1 - p) / n), `kept ${frac}`);
  // element i of a call at offset o draws uniform(seed, o+i)
  const y3 = new Float32Array(10);
  native.dropout(y3, x.subarray(5, 15), p, 1234, 5);
  t.deepEqual(y3, y.subarray(5, 15));
  for (let i = 0; i < 10; i++) t.is(y3[i] !== 0, native.ref.dropoutUniform(1234, 5 + i) >= p);
  const y4 = new Float32Array(n);
  native.dropout(y4, x, p, 999, 0);
  t.notDeepEqual(y4, y);
});

test('add and scale are elementwise; sumsq matches a double sum', (t) => {
  const seed = freshSeed();
  const n = 100003;
  const a = randF32(n, seed), b = randF32(n, seed + 1), out = new Float32Array(n);
  native.add(out, a, b);
  for (const i of [0, 1, 777, n - 1]) t.is(out[i], Math.fround(a[i] + b[i]));
  const s = out.slice();
  native.scale(s, 0.5);
  for (const i of [0, 5, n - 2]) t.is(s[i], Math.fround(out[i] * 0.5));
  let ss = 0;
  for (let i = 0; i < n; i++) ss += a[i] * a[i];
  t.true(Math.abs(native.sumsq(a) - ss) / ss < 1e-6);
});
