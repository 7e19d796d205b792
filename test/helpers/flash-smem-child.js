'use strict';
// Run by cuda-kernels.test.js on the CUDA emulator with GN_EMU_SMEM_OPTIN set (a device whose blocks may have less
// dynamic shared memory than sm_90's 227 KiB): a forward and a backward attention call at each head size given on
// the command line; prints, per head size, the flash calls and fallbacks (attentionStats) and the largest |dq| entry
// (the backward ran, whichever path took it).
const { cuda } = require('../../dist/cuda');
const { randF32 } = require('./util');

const dev = cuda();
dev.init();
const res = {};
for (const HS of process.argv.slice(2).map(Number)) {
  const B = 1, T = 40, NH = 2, C = NH * HS, n = B * T * C;
  const shape = { B, Tq: T, Tk: T, NH, HS, qPos0: 0, window: 0, dropout: 0, seed: 0, q: [T * C, C], k: [T * C, C], v: [T * C, C], o: [T * C, C] };
  const up = (a, dt) => { const v = { buf: dev.alloc(a.length, dt), off: 0, len: a.length }; dev.upload(v, a); return v; };
  const [q, k, v, out, dout, dq, dk, dv] = [1, 2, 3, 4, 5, 6, 7, 8].map((s) => up(randF32(n, s), 'bf16'));
  const lse = up(randF32(B * NH * T, 9), 'fp32');
  const before = dev.attentionStats();
  dev.attentionForward(out, lse, q, k, v, shape);
  dev.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, shape);
  const after = dev.attentionStats();
  const g = new Float32Array(n);
  dev.download(dq, g);
  res[HS] = { flash: after.flash - before.flash, fallbacks: after.fallbacks - before.fallbacks, maxDq: Math.max(...g.map(Math.abs)) };
}
console.log(JSON.stringify(res));
