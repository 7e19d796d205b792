#!/usr/bin/env node
// Runs the CUDA tests (test/cuda-kernels.test.js, test/cuda.test.js) against the real CUDA kernel sources
// compiled for gpt-native's CPU emulator (native/cuda/emu, built by scripts/build-cuda-emu.js): every kernel
// and whole training steps against the CPU backend, with the GPU tolerances. Part of `npm test`; needs only
// the C++ compiler that builds the CPU addon. A GPU run of the same tests is scripts/gpu-check.sh.
'use strict';
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const build = spawnSync(process.execPath, [path.join(__dirname, 'build-cuda-emu.js')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status || 1);

const out = path.join(root, 'build', 'cuda-emu');
const self = spawnSync(path.join(out, 'emu-selftest'), [], { cwd: root, stdio: 'inherit' });
if (self.status !== 0) {
  console.error('test-cuda-emu: the emulator failed its self-test (native/cuda/emu/selftest.cu)');
  process.exit(1);
}
const env = {
  ...process.env,
  GPT_NATIVE_CUDA_TEST: 'emu',
  GPT_NATIVE_CUDA_ADDON: path.join(out, 'gpt_native_cuda.node'),
  GPT_NATIVE_CUBLAS: path.join(out, 'libcublas.so'),
  // a small score scratch, so cuBLAS attention also runs in chunks of heads (the GPU default is 256 MiB)
  GPT_NATIVE_CUDA_ATTN_SCRATCH: String(16 * 1024),
  // and in chunks of 7 queries (on a GPU, whole short sequences and eighths of long ones)
  GPT_NATIVE_CUDA_ATTN_QCHUNK: '7',
};
delete env.GPT_NATIVE_CUDA_SYNC;
const ava = path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
const files = process.argv.slice(2).length ? process.argv.slice(2) : ['test/cuda-kernels.test.js', 'test/cuda.test.js'];
console.log(`test-cuda-emu: ${files.join(' ')} on the CUDA emulator`);
const r = spawnSync(process.execPath, [ava, ...files], { cwd: root, stdio: 'inherit', env });
process.exit(r.status === null ? 1 : r.status);
