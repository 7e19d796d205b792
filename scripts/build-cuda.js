#!/usr/bin/env node
// Builds the optional CUDA addon build/cuda/gpt_native_cuda.node with plain cmake (no cmake-js needed).
// Finds nvcc (PATH, $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, /usr/local/cuda-*), node's headers
// (node_api.h) and node-addon-api, then runs `cmake -S . -B build/cuda` and `cmake --build build/cuda`.
// Exits 1 with a message when there is no CUDA toolkit; the CPU addon (node-gyp) is not affected.
// Environment: CUDA_ARCHS overrides the GPU architectures (a CMake list, e.g. "90-real;90-virtual"),
// GN_CUDA_JOBS the build parallelism (default 2), GN_CUDART_STATIC=1 links the CUDA runtime statically.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const buildDir = path.join(root, 'build', 'cuda');

function fail(msg) {
  console.error(`build-cuda: ${msg}`);
  process.exit(1);
}

function which(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const f = path.join(dir, name);
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch {}
  }
  return null;
}

function findNvcc() {
  const cands = [];
  const onPath = which('nvcc');
  if (onPath) cands.push(onPath);
  for (const v of ['CUDA_HOME', 'CUDA_PATH', 'CUDACXX']) {
    const e = process.env[v];
    if (!e) continue;
    cands.push(v === 'CUDACXX' ? e : path.join(e, 'bin', 'nvcc'));
  }
  cands.push('/usr/local/cuda/bin/nvcc');
  try {
    const dirs = fs.readdirSync('/usr/local').filter((d) => /^cuda-\d/.test(d)).sort().reverse();
    for (const d of dirs) cands.push(path.join('/usr/local', d, 'bin', 'nvcc'));
  } catch {}
  return cands.find((f) => fs.existsSync(f)) || null;
}

const { findNodeInclude, findAddonApi } = require('./node-paths');

function run(cmd, args) {
  console.log(`build-cuda: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} exited with status ${r.status}`);
}

const nvcc = findNvcc();
if (!nvcc)
  fail('no CUDA toolkit found (nvcc not on PATH, nor under $CUDA_HOME, $CUDA_PATH, /usr/local/cuda*). ' +
    'Install the CUDA toolkit (nvcc and the runtime headers; cuBLAS is loaded at run time) or set CUDA_HOME. ' +
    'The CPU backend does not need it.');
if (!which('cmake')) fail('cmake (>= 3.18) is not on PATH; install it to build the CUDA addon');
const nodeInc = findNodeInclude();
if (!nodeInc) fail('node_api.h not found; set NODE_INCLUDE_DIR to the folder of node\'s headers');
const addonApi = findAddonApi();
if (!addonApi) fail('node-addon-api not found; run `npm install` in the package folder first');

// The toolkit root. nvcc may be a wrapper script (/usr/local/bin/nvcc running /usr/local/cuda-X/bin/nvcc), so
// ask nvcc (--dryrun prints "#$ TOP=<root>/bin/.."), else take the folder above the resolved binary; CMake is
// given the real nvcc inside the toolkit when there is one.
function toolkitRoot(nvccPath) {
  const r = spawnSync(nvccPath, ['--dryrun', '-c', '-x', 'cu', '/dev/null', '-o', '/dev/null'], { encoding: 'utf8' });
  const m = /^#\$ TOP=(.*)$/m.exec(`${r.stdout || ''}${r.stderr || ''}`);
  if (m && fs.existsSync(path.join(m[1].trim(), 'include', 'cuda_runtime_api.h'))) return path.resolve(m[1].trim());
  return path.resolve(path.dirname(fs.realpathSync(nvccPath)), '..');
}
const cudaRoot = toolkitRoot(nvcc);
if (!fs.existsSync(path.join(cudaRoot, 'include', 'cuda_runtime_api.h')))
  fail(`the CUDA toolkit at ${cudaRoot} (from ${nvcc}) has no include/cuda_runtime_api.h; set CUDA_HOME`);
const realNvcc = fs.existsSync(path.join(cudaRoot, 'bin', 'nvcc')) ? path.join(cudaRoot, 'bin', 'nvcc') : nvcc;
console.log(`build-cuda: CUDA toolkit ${cudaRoot}`);
const args = [
  '-S', root, '-B', buildDir,
  `-DCMAKE_CUDA_COMPILER=${realNvcc}`,
  `-DCUDAToolkit_ROOT=${cudaRoot}`,
  `-DNODE_INCLUDE_DIR=${nodeInc}`,
  `-DNODE_ADDON_API_DIR=${addonApi}`,
  '-DCMAKE_BUILD_TYPE=Release',
];
// Ninja where it is installed (a machine may have cmake and ninja but no make), unless this build folder was
// configured with another generator (cmake refuses to switch)
const cache = path.join(buildDir, 'CMakeCache.txt');
const cachedGenerator = fs.existsSync(cache) ? (/^CMAKE_GENERATOR:INTERNAL=(.*)$/m.exec(fs.readFileSync(cache, 'utf8')) || [])[1] : undefined;
if (which('ninja') && (cachedGenerator === undefined || cachedGenerator === 'Ninja')) args.push('-G', 'Ninja');
else if (!cachedGenerator && !which('make')) fail('neither ninja nor make is on PATH; install one to build the CUDA addon');
if (process.env.CUDA_ARCHS) args.push(`-DCMAKE_CUDA_ARCHITECTURES=${process.env.CUDA_ARCHS}`);
args.push(`-DGN_CUDART_STATIC=${process.env.GN_CUDART_STATIC === '1' ? 'ON' : 'OFF'}`);
run('cmake', args);
run('cmake', ['--build', buildDir, '--parallel', process.env.GN_CUDA_JOBS || '2']);

// Both generators write the library at the top of the build folder.
const out = path.join(buildDir, 'gpt_native_cuda.node');
if (!fs.existsSync(out)) fail(`the build finished but ${out} is missing`);
console.log(`build-cuda: built ${path.relative(root, out)}`);
