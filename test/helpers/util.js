'use strict';
// Shared test helpers: seeded random arrays, normalised error, finite differences.

/** xorshift32-based generator; uniform in [-scale, scale). */
function rng(seed) {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

let seedCounter = (Date.now() ^ (process.pid << 8)) >>> 0;
/** A fresh seed per call (inputs differ run to run); printed by failing tests through t.log. */
function freshSeed() {
  seedCounter = (seedCounter * 1664525 + 1013904223) >>> 0;
  return seedCounter;
}

function randF32(n, seed, scale = 1) {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

function randInts(n, max, seed) {
  const r = rng(seed);
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(r() * max);
  return a;
}

const f64 = (a) => Float64Array.from(a);

/** Σ(a−b)²/Σb² */
function normErr(a, b) {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (den === 0) throw new Error('normErr: reference is all zeros (tests must not compare zeros)');
  return num / den;
}

/** ‖a−b‖/‖b‖ */
function relErr(a, b) {
  return Math.sqrt(normErr(a, b));
}

/**
 * Central finite differences of scalar f(x) at coordinates idx of x (a Float64Array, restored after).
 * Returns the estimated partial derivatives.
 */
function finiteDiff(f, x, idx, h = 1e-6) {
  return idx.map((i) => {
    const x0 = x[i];
    x[i] = x0 + h;
    const fp = f();
    x[i] = x0 - h;
    const fm = f();
    x[i] = x0;
    return (fp - fm) / (2 * h);
  });
}

function pickIndices(n, k, seed) {
  const r = rng(seed);
  const out = [];
  for (let i = 0; i < k; i++) out.push(Math.floor(r() * n));
  return out;
}

function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** A copy of a rounded to bfloat16 (round to nearest even), as fp32 values. */
function roundBf16(a) {
  const out = Float32Array.from(a);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    if ((x & 0x7fffffff) > 0x7f800000) continue; // NaN
    u[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) << 16;
  }
  return out;
}

/**
 * flashProbe's plain products of 64×64 row-major tiles: out (6·4096) = x·yᵀ three times, p·v, xᵀ·v, then x·yᵀ
 * rounded to bf16.
 */
function probeProducts(out, x, y, p, v) {
  for (let i = 0; i < 64; i++)
    for (let j = 0; j < 64; j++) {
      let xy = 0, pv = 0, xtv = 0;
      for (let k = 0; k < 64; k++) {
        xy += x[i * 64 + k] * y[j * 64 + k];
        pv += p[i * 64 + k] * v[k * 64 + j];
        xtv += x[k * 64 + i] * v[k * 64 + j];
      }
      for (let r = 0; r < 3; r++) out[r * 4096 + i * 64 + j] = xy;
      out[3 * 4096 + i * 64 + j] = pv;
      out[4 * 4096 + i * 64 + j] = xtv;
      out[5 * 4096 + i * 64 + j] = roundBf16([xy])[0];
    }
  return out;
}

module.exports = { probeProducts, rng, freshSeed, randF32, randInts, f64, normErr, relErr, finiteDiff, pickIndices, dot, roundBf16 };
