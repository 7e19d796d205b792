#!/usr/bin/env node
// Builds the CUDA addon against gpt-native's CUDA emulator (native/cuda/emu): the real kernel sources of
// native/cuda, compiled by the host C++ compiler, with CUDA threads run as fibers on the CPU. Needs no CUDA
// toolkit and no GPU. Writes
//   build/cuda-emu/gpt_native_cuda.node   the addon (load it with GPT_NATIVE_CUDA_ADDON=<this file>)
//   build/cuda-emu/libcublas.so           host cuBLAS for it (GPT_NATIVE_CUBLAS=<this file>)
//   build/cuda-emu/emu-selftest           the emulator's self-test (native/cuda/emu/selftest.cu)
// `npm run test:cuda-emu` builds both and runs the CUDA tests against them (scripts/test-cuda-emu.js).
//
// Each .cu file is copied to build/cuda-emu/gen/<name>.cc with every launch `k<<<g, b, smem, s>>>(args)`
// rewritten as `::gn_emu::Launch(&k, "k", g, b, smem, s)(args)` (line numbers unchanged, and a #line
// directive keeps compiler messages pointing at the .cu file). Objects are rebuilt when a source or any
// header is newer. Environment: CXX (default c++), GN_EMU_JOBS (default 2).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'build', 'cuda-emu');
const gen = path.join(out, 'gen');
const objDir = path.join(out, 'obj');
const cxx = process.env.CXX || 'c++';
const jobs = Math.max(1, Number(process.env.GN_EMU_JOBS) || 2);

function fail(msg) {
  console.error(`build-cuda-emu: ${msg}`);
  process.exit(1);
}

const { findNodeInclude, findAddonApi } = require('./node-paths');

// `name<<<cfg>>>(` → `::gn_emu::Launch(&name, "name", cfg)(`; a template kernel `name<T><<<` works too
function rewriteLaunches(src, file) {
  const text = src.replace(/([A-Za-z_]\w*(?:\s*<[^<>;]*>)?)\s*<<<([\s\S]*?)>>>/g, (m, kernel, cfg) => {
    const name = kernel.replace(/\s+/g, '');
    return `::gn_emu::Launch(&${name}, "${name}", ${cfg})`;
  });
  if (/<<<|>>>/.test(text)) fail(`${file}: a kernel launch was not understood`);
  return text;
}

// Writes the C++ form of a .cu file to `cc` (only when it changed, so the object's mtime check holds).
function generate(cu, cc) {
  const body = `#line 1 "${path.relative(root, cu)}"\n${rewriteLaunches(fs.readFileSync(cu, 'utf8'), cu)}`;
  if (!fs.existsSync(cc) || fs.readFileSync(cc, 'utf8') !== body) fs.writeFileSync(cc, body);
  return cc;
}

const mtime = (f) => fs.statSync(f).mtimeMs;
const list = (dir, re) => fs.readdirSync(dir).filter((f) => re.test(f)).map((f) => path.join(dir, f));

function runCompiler(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cxx, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', (e) => reject(new Error(`could not run ${cxx}: ${e.message}`)));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cxx} ${args.join(' ')} exited with ${code}`))));
  });
}

async function pool(tasks) {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
}

async function main() {
  const nodeInc = findNodeInclude();
  if (!nodeInc) fail("node_api.h not found; set NODE_INCLUDE_DIR to the folder of node's headers");
  const addonApi = findAddonApi();
  if (!addonApi) fail('node-addon-api not found; run `npm install` first');
  for (const d of [out, gen, objDir]) fs.mkdirSync(d, { recursive: true });

  const cudaDir = path.join(root, 'native', 'cuda');
  const emuDir = path.join(cudaDir, 'emu');
  const headers = [...list(cudaDir, /\.(h|cuh)$/), ...list(emuDir, /\.h$/), ...list(path.join(root, 'native'), /\.h$/),
    ...list(path.join(root, 'native', 'napi'), /\.h$/)];
  const newestHeader = Math.max(...headers.map(mtime));

  const units = [];  // [source to compile, object, original source]
  for (const cu of list(cudaDir, /\.cu$/)) {
    const base = path.basename(cu, '.cu');
    const cc = generate(cu, path.join(gen, `${base}.cc`));
    units.push([cc, path.join(objDir, `${base}.cu.o`), cu]);
  }
  for (const cc of list(cudaDir, /\.cc$/)) units.push([cc, path.join(objDir, `${path.basename(cc, '.cc')}.o`), cc]);
  units.push([path.join(emuDir, 'runtime.cc'), path.join(objDir, 'emu_runtime.o'), path.join(emuDir, 'runtime.cc')]);

  const flags = ['-std=c++17', '-O2', '-g', '-fPIC', '-Wall', '-Wextra', '-Wno-unknown-pragmas', '-Wno-unused-parameter',
    '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DBUILDING_NODE_EXTENSION',
    `-I${emuDir}`, `-I${path.join(root, 'native')}`, `-I${nodeInc}`, `-I${addonApi}`];
  const stale = units.filter(([src, obj, orig]) =>
    !fs.existsSync(obj) || mtime(obj) < Math.max(mtime(src), mtime(orig), newestHeader));
  await pool(stale.map(([src, obj]) => async () => {
    console.log(`build-cuda-emu: ${cxx} ${path.relative(root, src)}`);
    await runCompiler([...flags, '-c', src, '-o', obj]);
  }));

  const addon = path.join(out, 'gpt_native_cuda.node');
  const objs = units.map((u) => u[1]);
  if (!fs.existsSync(addon) || stale.length || Math.max(...objs.map(mtime)) > mtime(addon)) {
    console.log('build-cuda-emu: linking build/cuda-emu/gpt_native_cuda.node');
    await runCompiler(['-shared', '-o', addon, ...objs, '-ldl', '-pthread']);
  }
  // the emulator's own self-test (native/cuda/emu/selftest.cu), an executable
  {
    const cc = generate(path.join(emuDir, 'selftest.cu'), path.join(gen, 'emu_selftest.cc'));
    const exe = path.join(out, 'emu-selftest');
    const rt = path.join(objDir, 'emu_runtime.o');
    if (!fs.existsSync(exe) || mtime(exe) < Math.max(mtime(cc), mtime(rt))) {
      console.log('build-cuda-emu: building build/cuda-emu/emu-selftest');
      await runCompiler([...flags, cc, rt, '-o', exe]);
    }
  }
  const blasSrc = path.join(emuDir, 'cublas.cc');
  const blas = path.join(out, 'libcublas.so');
  const blasDeps = Math.max(mtime(blasSrc), mtime(path.join(emuDir, 'capture_hook.h')));
  if (!fs.existsSync(blas) || mtime(blas) < blasDeps) {
    console.log('build-cuda-emu: building build/cuda-emu/libcublas.so');
    await runCompiler(['-std=c++17', '-O2', '-fPIC', '-shared', '-Wall', '-Wextra', blasSrc, '-o', blas]);
  }
  console.log('build-cuda-emu: OK');
}

main().catch((e) => fail(e.message));
