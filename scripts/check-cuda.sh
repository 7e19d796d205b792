#!/usr/bin/env bash
# Build check of the CUDA addon on a machine without a GPU (a CUDA toolkit is needed; cuBLAS is not):
#   1. every native/cuda/*.cu compiles with nvcc for sm_90 and sm_80, warnings as errors;
#      every native/cuda/*.cc compiles with the host compiler, -Wall -Wextra -Werror;
#   2. the dropout generator of native/cuda/rng.h equals the CPU's bit for bit (host test); the cuBLAS
#      prototypes and enum values of native/cuda/cublas.h match NVIDIA's cublas_api.h, when one can be found;
#   3. scripts/build-cuda.js links build/cuda/gpt_native_cuda.node;
#   4. node loads it: deviceCount() is a number (0 here) without throwing, and, with no GPU, init() throws
#      an Error that says no CUDA GPU is visible.
# Exits non-zero on any failure. Kernels are not run (that needs a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

NVCC=""
for c in "$(command -v nvcc || true)" ${CUDA_HOME:+$CUDA_HOME/bin/nvcc} ${CUDA_PATH:+$CUDA_PATH/bin/nvcc} \
         /usr/local/cuda/bin/nvcc $(ls -d /usr/local/cuda-*/bin/nvcc 2>/dev/null | sort -r); do
  if [ -n "$c" ] && [ -x "$c" ]; then NVCC=$c; break; fi
done
if [ -z "$NVCC" ]; then
  echo "check-cuda: no CUDA toolkit (nvcc) found; set CUDA_HOME or put nvcc on PATH" >&2
  exit 1
fi
# the toolkit root: nvcc may be a wrapper script (e.g. /usr/local/bin/nvcc -> exec /usr/local/cuda-X/bin/nvcc),
# so ask nvcc itself (its --dryrun prints TOP=<root>/bin/..)
CUDA_ROOT=$("$NVCC" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)
[ -n "$CUDA_ROOT" ] || CUDA_ROOT="$(dirname "$(readlink -f "$NVCC")")/.."
CUDA_INC="$CUDA_ROOT/include"
if [ ! -f "$CUDA_INC/cuda_runtime_api.h" ]; then
  echo "check-cuda: cuda_runtime_api.h not found under $CUDA_INC (toolkit root from $NVCC)" >&2
  exit 1
fi
NAPI_DIR=$(node -p "require('node-addon-api').include_dir")
NODE_INC=$(node -e "
  const fs=require('fs'),path=require('path');
  const c=[process.env.NODE_INCLUDE_DIR, path.resolve(process.execPath,'../../include/node'),
           (process.config.variables||{}).nodedir && path.join(process.config.variables.nodedir,'include','node'),
           '/usr/include/node','/usr/local/include/node'].filter(Boolean);
  console.log(c.find(d=>fs.existsSync(path.join(d,'node_api.h')))||'')")
if [ -z "$NODE_INC" ]; then echo "check-cuda: node_api.h not found (set NODE_INCLUDE_DIR)" >&2; exit 1; fi
echo "check-cuda: nvcc $("$NVCC" --version | tail -1)"

DEFS="-DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED"
# ptxas reports each kernel's registers and spills (-Xptxas -v): a kernel that spills to local memory, or uses
# more than 128 registers a thread (our blocks have up to 512 threads; 65536 registers a block), fails here
# instead of running slowly or failing to launch on the GPU. The flash attention kernels (blocks of 128 threads,
# __launch_bounds__(128)) may use up to 255, the most a thread has; they hold their tiles' products in registers
for f in native/cuda/*.cu native/cuda/emu/selftest.cu; do
  echo "check-cuda: nvcc $f (sm_90, sm_80)"
  "$NVCC" -std=c++17 -O2 -Inative -c "$f" -o "$TMP/$(basename "$f").o" \
    -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=sm_80 \
    --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -Xptxas -v 2> "$TMP/ptxas.txt" || { cat "$TMP/ptxas.txt" >&2; exit 1; }
  awk -v file="$f" '
    /Compiling entry function/ { fn = $0; sub(/.*function ./, "", fn); sub(/. for .*/, "", fn) }
    /bytes spill stores/ { if ($5 + 0 > 0 || $9 + 0 > 0) { print "check-cuda: " file ": " fn " spills registers: " $0; bad = 1 } }
    /Used [0-9]+ registers/ { lim = fn ~ /flash_(forward|dq|dq2|dkv|dkv_pipe)_kernel/ ? 255 : 128
      for (i = 1; i <= NF; ++i) if ($i == "Used" && $(i + 1) + 0 > lim) { print "check-cuda: " file ": " fn " uses " $(i + 1) " registers (at most " lim ")"; bad = 1 } }
    END { exit bad }' "$TMP/ptxas.txt" || exit 1
done
for f in native/cuda/*.cc; do
  echo "check-cuda: c++ $f"
  c++ -std=c++17 -O2 -fsyntax-only -Wall -Wextra -Werror $DEFS -Inative -I"$NODE_INC" -I"$NAPI_DIR" \
    -isystem "$CUDA_INC" "$f"
done

echo "check-cuda: dropout generator parity with the CPU kernels"
c++ -std=c++17 -O2 -Inative native/cuda/test/rng_parity.cc native/cpu/elementwise.cpp native/cpu/threading.cc \
  -pthread -o "$TMP/rng_parity"
"$TMP/rng_parity"

# cublas.h writes its few cuBLAS prototypes and enum values by hand (cuBLAS is opened at run time); check them
# against NVIDIA's cublas_api.h, and the loader against a real libcublas (every entry point resolves, status
# texts come from the library, cublasCreate without a GPU fails with a status instead of crashing), when a copy
# is at hand: the toolkit's, an installed nvidia-cublas wheel's (PYTHONPATH or the current python's), or one
# that pip can fetch. Each step is skipped, and says so, when there is none.
# wheel_dirs SUB: <wheel>/SUB for the nvidia-cublas wheels python sees (nvidia/cu13 for CUDA 13, nvidia/cublas for
# the cu12 ones; `nvidia` is a namespace package)
wheel_dirs() {
  python3 -c 'import nvidia, os, sys; [print(os.path.join(p, s, sys.argv[1])) for p in nvidia.__path__ for s in ("cu13", "cublas")]' "$1" 2>/dev/null
}
CUBLAS_INC=""; CUBLAS_LIB=""
for d in "$CUDA_INC" $(wheel_dirs include); do
  if [ -f "$d/cublas_api.h" ]; then CUBLAS_INC=$d; break; fi
done
for d in "$CUDA_ROOT/lib64" "$CUDA_ROOT/targets/x86_64-linux/lib" $(wheel_dirs lib); do
  if ls "$d"/libcublas.so* >/dev/null 2>&1; then CUBLAS_LIB=$d; break; fi
done
if { [ -z "$CUBLAS_INC" ] || [ -z "$CUBLAS_LIB" ]; } && command -v python3 >/dev/null && command -v unzip >/dev/null; then
  if timeout 180 python3 -m pip download -q --no-deps --only-binary=:all: -d "$TMP/whl" nvidia-cublas >/dev/null 2>&1; then
    whl=$(ls "$TMP"/whl/nvidia_cublas-*.whl 2>/dev/null | head -1)
    if [ -n "$whl" ] && unzip -q -j -o "$whl" '*/include/*' '*/lib/libcublas*.so*' -d "$TMP/cublas" 2>/dev/null; then
      echo "check-cuda: cuBLAS from $(basename "$whl")"
      [ -z "$CUBLAS_INC" ] && [ -f "$TMP/cublas/cublas_api.h" ] && CUBLAS_INC="$TMP/cublas"
      [ -z "$CUBLAS_LIB" ] && ls "$TMP"/cublas/libcublas.so* >/dev/null 2>&1 && CUBLAS_LIB="$TMP/cublas"
    fi
    rm -rf "$TMP/whl"
  fi
fi
if [ -n "$CUBLAS_INC" ]; then
  echo "check-cuda: native/cuda/cublas.h against $CUBLAS_INC/cublas_api.h"
  c++ -std=c++17 -Wall -Wextra -Werror -Inative -I"$CUBLAS_INC" -isystem "$CUDA_INC" native/cuda/test/cublas_abi.cc -c \
    -o "$TMP/cublas_abi.o"
else
  echo "check-cuda: no cuBLAS headers found (toolkit or nvidia-cublas wheel): prototype check skipped"
fi
if [ -n "$CUBLAS_LIB" ]; then
  echo "check-cuda: the cuBLAS loader against $CUBLAS_LIB"
  c++ -std=c++17 -O1 -Wall -Wextra -Werror -Inative -isystem "$CUDA_INC" native/cuda/test/cublas_load.cc \
    native/cuda/cublas.cc -ldl -o "$TMP/cublas_load"
  GPT_NATIVE_CUBLAS="$CUBLAS_LIB" "$TMP/cublas_load"
else
  echo "check-cuda: no libcublas found (toolkit or nvidia-cublas wheel): loader check skipped"
fi
rm -rf "$TMP/cublas"

echo "check-cuda: building the addon"
node scripts/build-cuda.js

echo "check-cuda: loading build/cuda/gpt_native_cuda.node"
node -e "
  const assert = require('assert');
  const cuda = require('$ROOT/build/cuda/gpt_native_cuda.node');
  const ops = ['deviceCount','init','alloc','free','bufferLength','upload','download','copy','copyRows','fill','synchronize',
    'setMathMode','setAttention','setAttentionTuning','setBiasEpilogue','setGeluEpilogue','setGemm','setGemmAlgo','setFlashBackward','biasEpilogueStats','memoryInfo','gemm','linearForward','linearBackward','layernormForward','layernormBackward',
    'geluForward','geluBackward','add','scale','dropout','sumsq','embeddingForward','embeddingBackward',
    'softmaxXentForward','softmaxXentBackward','attentionForward','attentionBackward','adamwStep','flashProbe',
    'decodeSlots','freeDecodeSlots','setDecodeSlots','decodeEmbed','decodeAppend','graphBegin','graphEnd','graphLaunch','graphFree',
    'setGraphs','graphStats'];
  for (const f of ops) assert.strictEqual(typeof cuda[f], 'function', 'missing export ' + f);
  assert.strictEqual(typeof cuda.abiVersion, 'number');
  const n = cuda.deviceCount();
  assert.strictEqual(typeof n, 'number');
  console.log('check-cuda: deviceCount() = ' + n);
  // before init(), ops throw a plain Error instead of touching the device
  assert.throws(() => cuda.alloc(4), (e) => e instanceof Error && /init\(\) first/.test(e.message));
  cuda.setMathMode('bf16'); cuda.setMathMode('fp32');
  assert.throws(() => cuda.setMathMode('fp16'), TypeError);
  // the defaults: flash attention, cuBLASLt for the GEMMs, the biases and the MLP's GELU
  assert.strictEqual(cuda.setAttention('fused'), 'flash'); assert.strictEqual(cuda.setAttention('gemm'), 'fused');
  assert.strictEqual(cuda.setAttention('flash'), 'gemm'); assert.strictEqual(cuda.setAttention('gemm'), 'flash');
  assert.throws(() => cuda.setAttention('tensor'), TypeError);
  assert.strictEqual(cuda.setGeluEpilogue('kernel'), 'cublaslt'); assert.strictEqual(cuda.setGeluEpilogue('cublaslt'), 'kernel');
  assert.throws(() => cuda.setGeluEpilogue('fused'), TypeError);
  assert.strictEqual(cuda.setBiasEpilogue('kernel'), 'cublaslt'); assert.strictEqual(cuda.setBiasEpilogue('cublaslt'), 'kernel');
  assert.strictEqual(cuda.setGemm('cublas'), 'cublaslt'); assert.strictEqual(cuda.setGemm('cublaslt'), 'cublas');
  assert.throws(() => cuda.setGemm('cutlass'), TypeError);
  // the opt-ins are off by default: the flash backward's own dQ kernel, the heuristic's cuBLASLt algorithm
  assert.strictEqual(cuda.setFlashBackward('atomic'), 'split'); assert.strictEqual(cuda.setFlashBackward('split'), 'atomic');
  assert.strictEqual(cuda.setGemmAlgo('timed'), 'heuristic'); assert.strictEqual(cuda.setGemmAlgo('heuristic'), 'timed');
  assert.deepStrictEqual(cuda.attentionStats(), { flash: 0, fallbacks: 0 });
  // the KV decoder's CUDA graphs are on by default
  assert.strictEqual(cuda.setGraphs(false), true); assert.strictEqual(cuda.setGraphs(true), false);
  assert.deepStrictEqual(cuda.graphStats(), { enabled: true, captured: 0, launched: 0, stale: 0, scratchReallocs: 0 });
  assert.throws(() => cuda.graphBegin(), (e) => e instanceof Error && /init\(\) first/.test(e.message));
  const t0 = cuda.setAttentionTuning({ queryChunk: 64 });
  assert.deepStrictEqual(cuda.setAttentionTuning(t0), { queryChunk: 64, scratchBytes: t0.scratchBytes });
  assert.throws(() => cuda.setAttentionTuning({ scratchBytes: 0 }), TypeError);
  assert.throws(() => cuda.setAttentionTuning({ queryChunk: 1.5 }), TypeError);
  if (n === 0) {
    assert.throws(() => cuda.init(), (e) => {
      console.log('check-cuda: init() threw: ' + e.message);
      return e instanceof Error && /no CUDA GPU/.test(e.message);
    });
  } else {
    console.log('check-cuda: a GPU is visible; init() = ' + JSON.stringify(cuda.init()));
  }
"
echo "check-cuda: OK"
