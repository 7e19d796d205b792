// A stand-in for the CUDA addon (lib/cuda.ts's CudaAddon) over host memory, computing with the CPU addon.
// With GPT_NATIVE_CUDA_ADDON pointing here, `device: 'cuda'` runs the whole device path of the JS layer
// (views with offsets, uploads, downloads, which side holds the newer weights, freeing) on a machine without
// a GPU. It checks the plumbing, not the CUDA kernels: scripts/gpu-check.sh runs the same tests on a GPU.
'use strict';
const path = require('path');
const { native } = require(path.join(__dirname, '..', '..', 'dist', 'native.js'));
const { KERNELS } = require(path.join(__dirname, '..', '..', 'dist', 'cuda.js'));
const { probeProducts } = require('./util');

let live = 0;
const tuning = { queryChunk: 0, scratchBytes: 256 * 2 ** 20 };
let biasEpilogue = 'cublaslt';
let geluEpilogue = 'cublaslt';
let mathMode = 'fp32';
let attention = 'flash';
let flashBackward = 'split';
let gemmAlgo = 'heuristic';
let gemmPath = 'cublaslt';
const stats = { allocs: 0, frees: 0 };

function buffer(v, what) {
  if (!v || typeof v !== 'object' || !v.buf || !v.buf.__fake) throw new TypeError(`fake cuda: expected a device view for ${what}`);
  if (v.buf.freed) throw new Error(`fake cuda: ${what}: buffer was freed`);
  if (!Number.isInteger(v.off) || !Number.isInteger(v.len) || v.off < 0 || v.len < 0 || v.off + v.len > v.buf.data.length)
    throw new RangeError(`fake cuda: ${what}: view [${v.off}, ${v.off + v.len}) outside a buffer of ${v.buf.data.length}`);
  return v.buf.data.subarray(v.off, v.off + v.len);
}


const addon = {
  abiVersion: 1,
  __fake: true,
  stats,
  liveBuffers: () => live,
  deviceCount: () => 1,
  init: () => ({ name: 'fake (host memory)', totalMemory: 0, computeCapability: [0, 0], cublas: 'none' }),
  // bf16 buffers are recorded but hold fp32 values here (the CPU kernels compute in fp32)
  alloc(n, dtype = 'fp32') {
    if (dtype !== 'fp32' && dtype !== 'bf16') throw new TypeError(`fake cuda: alloc: dtype ${dtype}`);
    live++;
    stats.allocs++;
    stats[dtype] = (stats[dtype] || 0) + 1;
    return { __fake: true, data: new Float32Array(n), freed: false, dtype };
  },
  bufferDtype: (buf) => buf.dtype,
  free(buf) {
    if (buf.freed) throw new Error('fake cuda: free: buffer was freed'); // as the real addon
    buf.freed = true;
    live--;
    stats.frees++;
  },
  bufferLength: (buf) => buf.data.length,
  upload(dst, src) {
    const d = buffer(dst, 'upload dst');
    if (src.length !== d.length) throw new RangeError(`fake cuda: upload of ${src.length} floats into ${d.length}`);
    d.set(src);
  },
  download(src, dst) {
    const s = buffer(src, 'download src');
    if (dst.length !== s.length) throw new RangeError(`fake cuda: download of ${s.length} floats into ${dst.length}`);
    dst.set(s);
  },
  copy(dst, src) {
    const d = buffer(dst, 'copy dst'), s = buffer(src, 'copy src');
    if (d.length !== s.length) throw new RangeError('fake cuda: copy of different lengths');
    d.set(s);
  },
  copyRows(dst, ds, src, ss, rows, cols) {
    const d = buffer(dst, 'copyRows dst'), s = buffer(src, 'copyRows src');
    if (rows > 0 && ((rows - 1) * ds + cols > d.length || (rows - 1) * ss + cols > s.length)) throw new RangeError('fake cuda: copyRows outside a view');
    for (let r = 0; r < rows; r++) d.set(s.subarray(r * ss, r * ss + cols), r * ds);
  },
  fill: (dst, v) => void buffer(dst, 'fill').fill(v),
  synchronize: () => undefined,
  setMathMode(m) {
    if (m !== 'fp32' && m !== 'bf16') throw new RangeError(`fake cuda: math mode ${m}`);
    const prev = mathMode;
    mathMode = m;
    return prev;
  },
  mathMode: () => mathMode,
  setAttention(k) {
    if (!['gemm', 'fused', 'flash', 'flash2'].includes(k)) throw new TypeError(`fake cuda: attention ${k}`);
    const prev = attention;
    attention = k;
    return prev;
  },
  setGemmAlgo(k) {
    if (k !== 'heuristic' && k !== 'timed') throw new TypeError(`fake cuda: gemm algo ${k}`);
    const prev = gemmAlgo;
    gemmAlgo = k;
    return prev;
  },
  setFlashBackward(k) {
    if (k !== 'split' && k !== 'atomic') throw new TypeError(`fake cuda: flash backward ${k}`);
    const prev = flashBackward;
    flashBackward = k;
    return prev;
  },
  setBiasEpilogue(k) {
    if (k !== 'cublaslt' && k !== 'kernel') throw new TypeError(`fake cuda: bias epilogue ${k}`);
    const prev = biasEpilogue;
    biasEpilogue = k;
    return prev;
  },
  setGeluEpilogue(k) {
    if (k !== 'cublaslt' && k !== 'kernel') throw new TypeError(`fake cuda: gelu epilogue ${k}`);
    const prev = geluEpilogue;
    geluEpilogue = k;
    return prev;
  },
  setGemm(k) {
    if (k !== 'cublaslt' && k !== 'cublas') throw new TypeError(`fake cuda: gemm ${k}`);
    const prev = gemmPath;
    gemmPath = k;
    return prev;
  },
  biasEpilogueStats: () => ({ cublaslt: 0, fallbacks: 0, gelu: 0, geluFallbacks: 0, matmul: 0, matmulFallbacks: 0, timedPlans: 0, timedAlgos: 0 }),
  attentionStats: () => ({ flash: 0, fallbacks: 0 }),
  setAttentionTuning(t) {
    const prev = { ...tuning };
    for (const k of ['queryChunk', 'scratchBytes']) {
      if (t[k] === undefined) continue;
      if (!Number.isInteger(t[k]) || t[k] < (k === 'queryChunk' ? 0 : 1)) throw new TypeError(`fake cuda: ${k} ${t[k]}`);
      tuning[k] = t[k];
    }
    return prev;
  },
  memoryInfo: () => ({ free: 0, total: 0 }),
  // the plain products the real addon's tensor-core blocks must match (argument plumbing only)
  flashProbe(out, x, y, p, v) {
    const [o, X, Y, P, V] = [out, x, y, p, v].map((a, i) => buffer(a, `flashProbe argument ${i}`));
    ['x', 'y', 'p', 'v'].forEach((n, i) => {
      if ([x, y, p, v][i].buf.dtype !== 'bf16') throw new TypeError(`flash_probe: expected a bf16 buffer for ${n} (argument ${i + 1}) but received fp32`);
    });
    if (o.length !== 6 * 4096 || [X, Y, P, V].some((a) => a.length !== 4096)) throw new RangeError('fake cuda: flashProbe: sizes');
    probeProducts(o, X, Y, P, V);
  },
};
// stats.products counts the matrix-product calls by the math mode they ran in
const PRODUCTS = new Set(['gemm', 'linearForward', 'linearBackward', 'attentionForward', 'attentionBackward']);
stats.products = { fp32: 0, bf16: 0 };
for (const op of KERNELS) {
  addon[op] = (...args) => {
    if (PRODUCTS.has(op)) stats.products[mathMode]++;
    return native[op](...args.map((a, i) => (a && typeof a === 'object' && a.buf ? buffer(a, `${op} argument ${i}`) : a)));
  };
}
// bf16 buffers hold fp32 values here, so the weight copy AdamW refreshes is a plain copy of the new weights
addon.adamwStep = (...args) => {
  const p16 = args[11];
  if (p16 && p16.buf.dtype !== 'bf16') throw new TypeError('fake cuda: adamwStep: param16 must be a bf16 buffer');
  if (p16 && p16.len !== args[0].len) throw new RangeError('fake cuda: adamwStep: param16 and param differ in length');
  native.adamwStep(...args.slice(0, 11).map((a, i) => (a && typeof a === 'object' && a.buf ? buffer(a, `adamwStep argument ${i}`) : a)));
  if (p16) buffer(p16, 'adamwStep param16').set(buffer(args[0], 'adamwStep param'));
};
module.exports = addon;
