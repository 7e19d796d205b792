#!/usr/bin/env bash
# Run ON THE GPU MACHINE (see scripts/gpu-prepare.sh, which packs what this needs): builds the CUDA addon,
# runs the cross-backend tests (every CUDA kernel and the whole model, training, decoding and fine-tuning
# against the CPU backend; the fixtures; first the flash kernels' tensor-core building blocks alone (flashProbe),
# then the flash kernels, each in a process apart from the rest; where these fail, the rest runs with the cuBLAS
# attention; then the opt-in flash2 kernels and atomic dQ backward, whose rows are skipped where they fail), then
# the benchmarks: first the
# acceptance figures (GPT-2 124M training at B=16, T=1024 in bf16 with the defaults, tokens/s and MFU; batch-1
# decoding, whose one-token steps replay a CUDA graph, timed beside launching each kernel), then each default against what it replaced (the lm head over V rather than Vp rows, cublasGemmEx for
# cuBLASLt, the cuBLAS attention for flash, all the earlier defaults at once; fp32 too), flash2 and the atomic dQ
# backward against flash, timed cuBLASLt algorithms against the heuristic's, PyTorch on the same GPU (the peer:
# scripts/torch-gpu-peer.py, the same training step eager, and SDPA's attention backends at each attention shape),
# then the kernels, each GEMM row with its cublasGemmEx twin, the attention paths side by side (flash, flash2,
# cuBLAS at other chunk and scratch settings, fused), the fused row kernels beside what they replaced (layernorm's
# backward in two passes, the residual add and LayerNorm apart, the loss and its gradient apart), and prints a
# short table last; late stages are the flash and row kernels under Nsight Compute (ncu), the peer compiled
# (torch.compile), and compute-sanitizer. Each stage has its own time
# limit, and the whole run a deadline (GN_BUDGET_S seconds, default 510, under the device tool's timeout_s):
# a stage that would pass it is cut short or skipped, so the table always prints. Logs go to $OUT (the device
# tool brings them back: at most 8 files, so this writes 7: gpu-check.log, table.txt, cuda-kernels.tap, cuda.tap,
# kernels.md, bench.jsonl, profile-bf16.txt; scratch goes to $WORK); the table's rows also go to
# $OUT/table.txt as they come.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
WORK=/tmp/gn-check
mkdir -p "$WORK"
: > "$LOG"
declare -a ROWS
OURS_TPS=""
: > "$OUT/table.txt"
row() { ROWS+=("$(printf '%-34s %s' "$1" "$2")"); echo "${ROWS[-1]}" >> "$OUT/table.txt"; }
say() { echo "== $*" | tee -a "$LOG"; }
DEADLINE=$(( $(date +%s) + ${GN_BUDGET_S:-510} ))
# GN_DRY=1: a dry run on a machine without a GPU, to check this script's flow before a device session: the CUDA
# emulator's addon instead of the build (the tests as test:cuda-emu runs them), and every benchmark at a tiny size
# (bench's 'tiny' preset; kernels at B=1, T=32, C=128, V=1000), so each stage, row and table is exercised in minutes
DRY=${GN_DRY:-0}
TEST_MODE=real
MODEL=(--preset gpt2-small --batch 16 --seq 1024)
SMALL=(--preset gpt2-small --batch 4 --seq 64)
DECODE=(--preset gpt2-small --prompt-tokens 16 --new-tokens 128 --runs 3)
KSHAPE=("${KSHAPE[@]}")
if (( DRY )); then
  TEST_MODE=emu
  MODEL=(--preset tiny --batch 2 --seq 64)
  SMALL=(--preset tiny --batch 1 --seq 16)
  DECODE=(--preset tiny --prompt-tokens 4 --new-tokens 8 --runs 1)
  KSHAPE=(--b 1 --t 32 --c 128 --nh 2 --v 1000)
  export GPT_NATIVE_CUBLAS="$PWD/build/cuda-emu/libcublas.so"  # the emulator's stand-in (built below)
fi
# t SECONDS CMD…: CMD under a time limit of SECONDS, or less where the deadline is nearer (10 s kept for the
# table); skipped (status 124) when under 5 s remain
t() {
  local s=$1 left=$(( DEADLINE - $(date +%s) - 10 ))
  shift
  (( left < s )) && s=$left
  if (( s < 5 )); then echo "skipped (deadline): $*" >> "$LOG"; return 124; fi
  timeout "$s" "$@"
}

# Node.js and the packages (the machine has neither)
# (xz, or Python's lzma and tarfile where the machine has no xz)
unxz_to() { if command -v xz >/dev/null; then xz -dc "$1" > "$2"; else python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as f, open(sys.argv[2], "wb") as o: shutil.copyfileobj(f, o)' "$1" "$2"; fi; }
untar_xz() { if command -v xz >/dev/null; then tar -C "$2" -xJf "$1"; else python3 -c 'import sys, tarfile
tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$1" "$2"; fi; }
mkdir -p /tmp/gn/bin /tmp/gn/include
if [ -f .gpu/node.xz ]; then unxz_to .gpu/node.xz /tmp/gn/bin/node && chmod +x /tmp/gn/bin/node; fi
[ -f .gpu/node-include.tar.xz ] && untar_xz .gpu/node-include.tar.xz /tmp/gn/include
[ -d node_modules ] || { [ -f .gpu/node_modules.tar.xz ] && untar_xz .gpu/node_modules.tar.xz .; }
export PATH=/tmp/gn/bin:$PATH
if ! command -v node >/dev/null; then echo "no node: run scripts/gpu-prepare.sh here and carry .gpu" | tee -a "$LOG"; exit 1; fi
say "machine"
{ node --version; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader; nvcc --version | tail -1; } 2>&1 | tee -a "$LOG"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)

# cuBLAS: the toolkit's, else the pip wheel's (nvidia-cublas: nvidia/cu13/lib for CUDA 13, nvidia/cublas/lib for
# the cu12 wheels; `nvidia` is a namespace package, so ask python where its parts are)
if [ -z "${GPT_NATIVE_CUBLAS:-}" ]; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           $(python3 -c 'import nvidia, os; [print(os.path.join(p, s, "lib")) for p in nvidia.__path__ for s in ("cu13", "cublas")]' 2>/dev/null); do
    f=$(ls "$d"/libcublas.so* 2>/dev/null | head -1)
    if [ -n "$f" ]; then export GPT_NATIVE_CUBLAS="$f"; export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; break; fi
  done
fi
say "cuBLAS: ${GPT_NATIVE_CUBLAS:-not found}"

say "build the CUDA addon"
# only this GPU's architecture (compute_cap "9.0" -> 90-real), which halves the build; PTX as a fallback
GPU_CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
ARCH=$([ -n "$GPU_CC" ] && echo "${GPU_CC}-real;${GPU_CC}-virtual" || echo "80-real;90-real;90-virtual")
START=$(date +%s)
if (( DRY )); then
  BUILD=(node scripts/build-cuda-emu.js)
  export GPT_NATIVE_CUDA_ADDON="$PWD/build/cuda-emu/gpt_native_cuda.node"
else
  BUILD=(env CUDA_ARCHS="${CUDA_ARCHS:-$ARCH}" GN_CUDA_JOBS="$(nproc)" node scripts/build-cuda.js)
fi
if t 300 "${BUILD[@]}" >> "$LOG" 2>&1; then row "build$( (( DRY )) && echo ' (emulator, dry run)')" "ok ($(( $(date +%s) - START )) s)"
else row "build" "FAILED (see gpu-check.log)"; tail -40 "$LOG"; printf '%s\n' "${ROWS[@]}"; exit 1; fi

AVA="node node_modules/ava/entrypoints/cli.mjs --tap"
# tests FILE LABEL SECONDS MATCH…: one ava run of test/FILE.test.js on the GPU, appended to $OUT/FILE.tap, and a row.
# Each run is its own process: a kernel fault spoils the CUDA context of its process only, so the flash kernels
# (new, opt-in) run apart from the defaults, and their building blocks (flashProbe) before them.
# Status 0 when ava passed every test it ran (and ran some), else 1.
tests() {
  local f=$1 label=$2 s=$3 rc pass fail; shift 3
  say "tests: test/$f.test.js$label ($( (( DRY )) && echo 'CUDA emulator' || echo 'real GPU'))"
  GPT_NATIVE_CUDA_TEST=$TEST_MODE t "$s" $AVA "$@" "test/$f.test.js" > "$WORK/run.tap" 2>&1
  rc=$?
  cat "$WORK/run.tap" >> "$OUT/$f.tap"
  pass=$(grep -c '^ok ' "$WORK/run.tap"); fail=$(grep -c '^not ok ' "$WORK/run.tap")
  row "test/$f.test.js$label" "$pass passed, $fail failed$( (( rc == 124 )) && echo ' (time limit)')"
  grep -A12 '^not ok ' "$WORK/run.tap" | head -120 | tee -a "$LOG"
  (( rc == 0 && fail == 0 && pass > 0 ))
}
: > "$OUT/cuda-kernels.tap"
: > "$OUT/cuda.tap"
# the flash kernels (the bf16 default) first, their building blocks before them; where they fail, the other tests
# and every benchmark take the cuBLAS attention (a failing or hanging kernel would spoil the rest's results and time)
FLASH_OK=1
tests cuda-kernels " (flashProbe)" 45 --match '*flashProbe*' || FLASH_OK=0
tests cuda-kernels " (flash)" 90 --match '*flash*' --match '!*flashProbe*' --match '!*flash2*' --match '!*atomic*' || FLASH_OK=0
tests cuda " (flash)" 90 --match '*flash*' --match '!*flash2*' --match '!*atomic*' || FLASH_OK=0
(( FLASH_OK )) || { export GPT_NATIVE_CUDA_ATTENTION=gemm; row "flash attention" "FAILED: the rest runs with GPT_NATIVE_CUDA_ATTENTION=gemm"; }
# flash2 (an opt-in: 32 query rows a warp in the forward, cp.async double-buffered tiles): its own process too;
# where it fails, its benchmark rows are skipped
FLASH2_OK=$FLASH_OK
(( FLASH_OK )) && { tests cuda-kernels " (flash2)" 90 --match '*flash2*' --match '!*atomic*' || FLASH2_OK=0; }
(( FLASH2_OK )) && { tests cuda " (flash2)" 60 --match '*flash2*' --match '!*atomic*' || FLASH2_OK=0; }
# the atomic dQ backward (an opt-in, setFlashBackward('atomic'): flash2's dK/dV kernel adds dS·K into fp32 sums),
# with either forward: its own process; where it fails, its rows are skipped
ATOMIC_OK=$FLASH2_OK
(( FLASH2_OK )) && { tests cuda-kernels " (atomic dQ)" 90 --match '*atomic*' || ATOMIC_OK=0; }
(( ATOMIC_OK )) && { tests cuda " (atomic dQ)" 60 --match '*atomic*' || ATOMIC_OK=0; }
tests cuda-kernels "" 200 --match '!*flash*'
tests cuda "" 200 --match '!*flash*'

bench() { # name, command…
  local name=$1; shift
  say "bench: $name"
  local line
  line=$(t 180 "$@" --json 2>>"$LOG" | tail -1)
  echo "$line" >> "$LOG"
  echo "$line" >> "$OUT/bench.jsonl"
  # (the defaults' training figure, which the PyTorch peer's rows are compared with; not in a dry run, whose
  # peer is a different model on the CPU)
  [ "$name" = "train gpt2-small B16 T1024 bf16" ] && OURS_TPS=$(node -e '
    try { const r = JSON.parse(process.argv[1]); if (r.tokensPerSec) console.log(r.tokensPerSec); } catch {}' "$line")
  row "$name" "$(node -e '
    const r = JSON.parse(process.argv[1] || "{}");
    if (r.tokensPerSec === undefined) { console.log("FAILED"); process.exit(); }
    const s = r.settings || {};
    const mfu = (r.mfu !== undefined ? `, MFU ${(100 * r.mfu).toFixed(1)}%` : "") +
      ((s.attention === "flash" || s.attention === "flash2") && s.flashCalls > 0 ? `, ${s.flashCalls} ${s.attention} / ${s.attentionFallbacks} other attention calls` : "") +
      (s.ltCalls !== undefined ? `, ${s.ltCalls} cuBLASLt / ${s.gemmExCalls} fallback GEMMs` : "");
    const extra = r.msPerStep !== undefined ? `${r.msPerStep.toFixed(1)} ms/step` : `${r.msPerToken.toFixed(2)} ms/token`;
    const g = r.graphs ? `; CUDA graphs ${r.graphs.enabled ? `on (${r.graphs.launched} launches)` : "off"}` +
      (r.noGraphs ? `; without: ${Math.round(r.noGraphs.tokensPerSec).toLocaleString("en-US")} tokens/s (${r.noGraphs.msPerToken.toFixed(2)} ms/token)` : "") : "";
    console.log(`${Math.round(r.tokensPerSec).toLocaleString("en-US")} tokens/s (${extra}${mfu}${g})`);' "$line" 2>/dev/null || echo FAILED)"
}
TRAIN=(node dist/cli.js bench train --device cuda "${MODEL[@]}")
# the acceptance figures first (GPT-2 124M training with the defaults: flash attention, every GEMM in cuBLASLt,
# biases and GELU in its epilogues; batch-1 decoding), then the opt-ins that could become defaults, then where a
# step's time goes, then each default against what it replaced, so a run cut short by the deadline still has the
# figures that decide something
bench "train gpt2-small B16 T1024 bf16" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
# (decoding with its one-token steps as CUDA graphs, the default, alternating with every kernel launched from JS)
bench "decode gpt2-small batch 1" node dist/cli.js bench generate --device cuda "${DECODE[@]}" --bandwidth-gbps 4800 --compare-graphs
bench "decode gpt2-small batch 1, bf16" node dist/cli.js bench generate --device cuda --precision bf16 "${DECODE[@]}" --bandwidth-gbps 4800 --compare-graphs
(( FLASH2_OK )) && GPT_NATIVE_CUDA_ATTENTION=flash2 bench "train bf16, flash2 attention" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
(( ATOMIC_OK )) && GPT_NATIVE_CUDA_FLASH_BWD=atomic bench "train bf16, flash + atomic dQ" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
(( ATOMIC_OK )) && GPT_NATIVE_CUDA_ATTENTION=flash2 GPT_NATIVE_CUDA_FLASH_BWD=atomic bench "train bf16, flash2 + atomic dQ" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
GPT_NATIVE_CUDA_GEMM_ALGO=timed bench "train bf16, timed GEMM algorithms" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
# every opt-in at once (what the defaults would become if each wins on its own)
(( ATOMIC_OK )) && GPT_NATIVE_CUDA_ATTENTION=flash2 GPT_NATIVE_CUDA_FLASH_BWD=atomic GPT_NATIVE_CUDA_GEMM_ALGO=timed \
  bench "train bf16, flash2 + atomic dQ + timed GEMMs" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
# PyTorch on this GPU, the peer (scripts/torch-gpu-peer.py: the same GPT-2 step as bench train, bf16 autocast,
# SDPA attention, fused AdamW; then SDPA's backends at the model's attention shape). The device image's python3
# holds torch 2.x with CUDA; GN_PYTHON names another. The dry run takes this machine's torch on the CPU, tiny sizes.
PY=""
for p in ${GN_PYTHON:-} python3 /usr/bin/python3; do "$p" -c 'import torch' >/dev/null 2>&1 && { PY=$p; break; }; done
PEER=(--B 16 --T 1024); PEER_ATTN=(--B 16 --H 12 --T 1024 --HS 64); PEER_GEMM=(--B 16 --T 1024 --vocab 50304)
PEER_DRY=()  # (peer() adds these to every dry run's arguments)
if (( DRY )); then
  PEER_DRY=(--device cpu --steps 2 --warmup 1)
  PEER=(--n-layer 2 --n-head 2 --n-embd 64 --vocab 1000 --B 2 --T 64)
  PEER_ATTN=(--B 1 --H 2 --T 32 --HS 32)
  PEER_GEMM=(--B 1 --T 32 --n-embd 64 --vocab 1000)
fi
# peer NAME SECONDS ARGS…: the peer script with ARGS; its JSON lines to bench.jsonl and the log, a row for each
peer() {
  local name=$1 s=$2; shift 2
  say "peer: $name"
  if [ -z "$PY" ]; then row "$name" "skipped (no python3 with torch)"; return; fi
  t "$s" "$PY" scripts/torch-gpu-peer.py "$@" ${PEER_DRY[@]+"${PEER_DRY[@]}"} > "$WORK/peer.jsonl" 2>>"$LOG"
  cat "$WORK/peer.jsonl" | tee -a "$LOG" >> "$OUT/bench.jsonl"
  [ -s "$WORK/peer.jsonl" ] || { row "$name" "FAILED (see gpu-check.log)"; return; }
  node -e '
    for (const line of require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
      const r = JSON.parse(line), f = (x, d = 3) => x.toFixed(d);
      const label = r.mode === "attention" ? ` [${r.backend}]` : r.mode === "gemm" ? ` [${r.layer}]` : "";
      let v;
      if (r.error) v = `skipped: ${r.error}`;
      else if (r.mode === "train") v = `${Math.round(r.tokensPerSec).toLocaleString("en-US")} tokens/s (${f(r.msPerStep, 1)} ms/step, MFU ${f(100 * r.mfu, 1)}%; torch ${r.torch}${r.fusedAdamW ? ", fused AdamW" : ""}${r.compile ? `, compiled in ${f(r.warmupSeconds, 0)} s of warm-up` : ""})` +
        (Number(process.argv[2]) > 0 ? `; gpt-native defaults: ${f(Number(process.argv[2]) / r.tokensPerSec, 2)}× this` : "");
      else if (r.mode === "gemm") v = ["forward", "dX", "dW"].map((k) => `${k} ${f(r[k + "Ms"])} ms (${f(r[k + "Tflops"], 0)} TFLOP/s)`).join(", ");
      else v = `forward ${f(r.forwardMs)} ms (${f(r.forwardTflops, 0)} TFLOP/s), backward ${f(r.backwardMs)} ms (${f(r.backwardTflops, 0)} TFLOP/s)`;
      console.log(label + "|" + v);
    }' "$WORK/peer.jsonl" "$( (( DRY )) || echo "$OURS_TPS")" > "$WORK/peer-rows.txt" 2>>"$LOG" || { row "$name" "FAILED (see gpu-check.log)"; return; }
  while IFS='|' read -r label v; do row "$name$label" "$v"; done < "$WORK/peer-rows.txt"
}
peer "torch train B16 T1024 bf16 (eager)" 120 train "${PEER[@]}"
peer "torch sdpa B16 T1024 HS64" 60 attention "${PEER_ATTN[@]}"
# (torch.matmul at the linear layers' shapes, the lm head over nanoGPT's 50304 rows as ours runs it)
peer "torch matmul M16384" 60 gemm "${PEER_GEMM[@]}"
# where a bf16 step's time goes: on the device (synchronised around every call), then on the host
say "profile: one bf16 training step by kernel family (profile-bf16.txt)"
t 120 node dist/cli.js bench train --device cuda --precision bf16 "${MODEL[@]}" \
  --steps 2 --warmup 1 --profile > "$OUT/profile-bf16.txt" 2>>"$LOG"
# the host's side of the same step, not synchronised: if the addon calls and the JavaScript around them take about
# as long as the step, the GPU waits for the host (then CUDA graphs or fewer launches are the fix, not kernels)
say "profile: the host's time in a bf16 training step, by call family (appended to profile-bf16.txt)"
t 60 node dist/cli.js bench train --device cuda --precision bf16 "${MODEL[@]}" \
  --steps 3 --warmup 1 --profile-host >> "$OUT/profile-bf16.txt" 2>>"$LOG"
# and batch-1 decoding's: the calls a token makes and the host's time in them (is it launch-bound?)
say "profile: the host's time a decoded token, bf16 (appended to profile-bf16.txt)"
t 60 node dist/cli.js bench generate --device cuda --precision bf16 "${DECODE[@]}" --bandwidth-gbps 4800 \
  --profile-host >> "$OUT/profile-bf16.txt" 2>>"$LOG"
cat "$OUT/profile-bf16.txt" >> "$LOG"
# then the defaults' earlier comparisons (measured at 6a0aef6: each default against what it replaced)
GPT_NATIVE_CUDA_PAD_VOCAB=0 bench "train bf16, lm head unpadded" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
GPT_NATIVE_CUDA_GEMM=cublas bench "train bf16, cublasGemmEx" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
GPT_NATIVE_CUDA_ATTENTION=gemm bench "train bf16, cuBLAS attention" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
GPT_NATIVE_CUDA_ATTENTION=gemm GPT_NATIVE_CUDA_GEMM=cublas GPT_NATIVE_CUDA_LT=0 GPT_NATIVE_CUDA_LT_GELU=0 GPT_NATIVE_CUDA_PAD_VOCAB=0 \
  bench "train bf16, the earlier defaults" "${TRAIN[@]}" --precision bf16 --steps 5 --warmup 2
bench "train gpt2-small B16 T1024 fp32" "${TRAIN[@]}" --precision fp32 --steps 3 --warmup 1
GPT_NATIVE_CUDA_GEMM=cublas bench "train fp32, cublasGemmEx" "${TRAIN[@]}" --precision fp32 --steps 3 --warmup 1
# kernels FILE TITLE: appends a finished kernel table to $OUT/kernels.md (and the log) under a heading
kernels() { { echo; echo "## $2"; echo; cat "$1"; } | tee -a "$OUT/kernels.md" >> "$LOG"; }
# krow FILE LABEL-SUFFIX NAME…: a table row per kernel name (its ms, GFLOP/s, GB/s)
krow() {
  local f=$1 suffix=$2 k line; shift 2
  for k in "$@"; do
    line=$(grep -F "| $k" "$f" | head -1)
    row "kernel $(echo "$k" | sed 's/ [|(]$//; s/ \[$/ [cublasGemmEx]/')$suffix" "$([ -n "$line" ] && echo "$line" | awk -F'|' '{ printf "%s ms, %s GFLOP/s %s GB/s", $3, $4, $5 }' || echo FAILED)"
  done
}
: > "$OUT/kernels.md"
EXCLUDE=(); (( ATOMIC_OK )) || EXCLUDE=(--exclude 'atomic dQ]'); (( FLASH2_OK )) || EXCLUDE=(--exclude '[flash2|atomic dQ]')
(( FLASH_OK )) || EXCLUDE=(--exclude '[flash')
say "bench: kernels at B=16, T=1024, bf16 (kernels.md)"
t 100 node dist/cli.js bench kernels --device cuda --precision bf16 "${KSHAPE[@]}" --runs 3 \
  ${EXCLUDE[@]+"${EXCLUDE[@]}"} > "$WORK/kernels-bf16.md" 2>>"$LOG"
kernels "$WORK/kernels-bf16.md" "bf16 (the cuBLAS attention rows unmarked, the flash ones [flash])"
krow "$WORK/kernels-bf16.md" " (bf16)" 'lm_head forward (' 'lm_head forward [unpadded]' 'lm_head forward [cublasGemmEx]' \
  'lm_head backward (' 'lm_head backward [unpadded]' 'lm_head backward [cublasGemmEx]' \
  'linear_forward qkv (' 'linear_forward qkv [' 'linear_backward qkv |' 'linear_backward qkv [' 'mlp fc+gelu forward (' \
  'mlp fc+gelu forward [' 'mlp proj backward + dgelu |' 'mlp proj backward + dgelu [' 'attention_forward |' \
  'attention_backward |' 'attention_forward [flash]' 'attention_backward [flash]' 'attention_forward [flash2]' \
  'attention_backward [flash2]' 'attention_backward [flash, atomic dQ]' 'attention_backward [flash2, atomic dQ]' \
  'softmax_xent_forward' 'softmax_xent_backward' \
  'softmax_xent loss+grad' 'layernorm_forward' 'residual add + layernorm' 'residual add |' 'layernorm_backward |' \
  'layernorm_backward (dinp'
# layernorm's backward in two passes (what the one-pass kernel replaced), beside the rows above
GPT_NATIVE_CUDA_LN_FUSED=0 t 60 node dist/cli.js bench kernels --device cuda --precision bf16 "${KSHAPE[@]}" --runs 3 \
  --filter layernorm_backward > "$WORK/kernels-ln2.md" 2>>"$LOG"
kernels "$WORK/kernels-ln2.md" "bf16, layernorm backward in two passes (GPT_NATIVE_CUDA_LN_FUSED=0)"
krow "$WORK/kernels-ln2.md" " (bf16, two passes)" 'layernorm_backward |' 'layernorm_backward (dinp'
# the GEMM rows again with setGemmAlgo('timed') (the fastest of cuBLASLt's first 8 algorithms, timed at first use)
GPT_NATIVE_CUDA_GEMM_ALGO=timed t 60 node dist/cli.js bench kernels --device cuda --precision bf16 "${KSHAPE[@]}" --runs 3 \
  --exclude 'attention|layernorm|gelu_|residual add|embedding|softmax|adamw|sumsq|[cublasGemmEx|[unpadded]' \
  > "$WORK/kernels-timed.md" 2>>"$LOG"
kernels "$WORK/kernels-timed.md" "bf16, GEMMs with timed cuBLASLt algorithms (GPT_NATIVE_CUDA_GEMM_ALGO=timed)"
krow "$WORK/kernels-timed.md" " (bf16, timed algos)" 'lm_head forward (' 'lm_head backward (' 'linear_forward qkv (' \
  'linear_backward qkv |' 'mlp fc+gelu forward (' 'mlp proj backward + dgelu |'
# the cuBLAS attention path at other settings than its defaults (bench kernels times them side by side)
grep -F '| attention_' "$WORK/kernels-bf16.md" | grep -F '[' | grep -vF '[flash' | while IFS='|' read -r _ name ms _; do
  echo "$(echo "$name" | sed 's/^ *//; s/ *$//') (bf16): $(echo "$ms" | tr -d ' ') ms"
done > "$WORK/attention-tuning.txt"
while read -r l; do row "${l%%:*}" "${l#*: }"; done < "$WORK/attention-tuning.txt"
# head sizes 128 (GPT-3 XL: C = 2048, 16 heads), 96 (GPT-3 Large: C = 1536, 16 heads) and 80 (GPT-3 2.7B: C = 2560,
# 32 heads), T = 2048 as GPT-3 trains: the flash forward and backward beside the cuBLAS path (its tunings left out)
declare -A WIDE=([128]="2048 16 GPT-3 XL" [96]="1536 16 GPT-3 Large" [80]="2560 32 GPT-3 2.7B")
(( FLASH_OK )) && for hs in 128 96 80; do
  read -r c nh name <<< "${WIDE[$hs]}"
  shape=(--b 4 --t 2048 --c "$c" --nh "$nh" --v 1000); (( DRY )) && shape=(--b 1 --t 32 --c $(( 2 * hs )) --nh 2 --v 1000)
  t 60 node dist/cli.js bench kernels --device cuda --precision bf16 "${shape[@]}" --runs 3 --filter attention_ \
    --exclude 'chunks]|one query chunk]|scratch]' > "$WORK/kernels-hs$hs.md" 2>>"$LOG"
  kernels "$WORK/kernels-hs$hs.md" "bf16, head size $hs ($name attention, B=4, T=2048)"
  krow "$WORK/kernels-hs$hs.md" " (bf16, HS $hs)" 'attention_forward |' 'attention_forward [flash]' \
    'attention_backward |' 'attention_backward [flash]'
  pshape=(--B 4 --T 2048 --H "$nh" --HS "$hs"); (( DRY )) && pshape=(--B 1 --T 32 --H 2 --HS "$hs")
  peer "torch sdpa B4 T2048 HS$hs" 40 attention "${pshape[@]}"
done
bench "train gpt2-small B4 T64 (cf. CPU)" node dist/cli.js bench train --device cuda "${SMALL[@]}" --steps 5
# Nsight Compute (hardware counters; the device tool's Firecracker machines allow them, and --clock-control none
# leaves the clocks as they are) over the third call of each kernel whose name matches a regex, in a bench kernels
# run at B=16, T=1024, appended to profile-bf16.txt, so a session without a GPU can see what limits each kernel:
#   ncu_stage TITLE LIMIT_S REGEX "SECTION …" BENCH_KERNELS_ARGS…
ncu_stage() {
  local title=$1 limit=$2 re=$3 sections=() sec rc n
  for sec in $4; do sections+=(--section "$sec"); done
  shift 4
  if (( DRY )) || ! command -v ncu >/dev/null; then
    row "ncu ($title)" "skipped ($( (( DRY )) && echo 'dry run' || echo 'no ncu'))"
    return
  fi
  say "ncu: the $title (appended to profile-bf16.txt)"
  { echo; echo "## ncu: the $title at B=16, T=1024 (kernels matching /$re/, third call each)"; } >> "$OUT/profile-bf16.txt"
  t "$limit" ncu --clock-control none --kernel-name-base demangled --kernel-id "::regex:$re:3" "${sections[@]}" \
    node dist/cli.js bench kernels --device cuda --precision bf16 "${KSHAPE[@]}" --runs 3 "$@" \
    > "$WORK/ncu.txt" 2>>"$LOG"
  rc=$?
  cat "$WORK/ncu.txt" >> "$OUT/profile-bf16.txt"
  n=$(grep -cE "($re).*\(" "$WORK/ncu.txt")
  row "ncu ($title)" "$( (( rc == 0 )) && echo ok || echo "status $rc"): $n kernel lines in profile-bf16.txt"
}
# the flash kernels (bench kernels' [flash…] attention rows, HS 64): throughput, occupancy, launch and warp stalls
ncu_stage "flash kernels" 120 'flash_' \
  "SpeedOfLight LaunchStats Occupancy ComputeWorkloadAnalysis MemoryWorkloadAnalysis WarpStateStats" --filter '[flash'
# the row kernels (layernorm, the residual add, embedding, softmax cross-entropy, AdamW, the norm): memory-bound if
# they run near the card's bandwidth; the issue slots and warp stalls say when instructions bound them instead
ncu_stage "row kernels" 90 'layernorm|colsum|softmax_xent|adamw|add_|sumsq|embedding' \
  "SpeedOfLight ComputeWorkloadAnalysis MemoryWorkloadAnalysis WarpStateStats" \
  --exclude 'attention|linear_|mlp |lm_head|gelu'
# the opt-in flash kernels (flash2, the atomic dQ backward) under compute-sanitizer's race and barrier checkers
# (hazards the emulator cannot show: it runs a warp at a time; the default flash kernels ran clean at 6a0aef6)
if command -v compute-sanitizer >/dev/null; then
  for tool in racecheck synccheck; do
    say "compute-sanitizer --tool $tool: the flash attention tests"
    GPT_NATIVE_CUDA_TEST=$TEST_MODE t 120 compute-sanitizer --tool "$tool" --target-processes all $AVA --match '*flash2*' \
      --match '*atomic*' test/cuda-kernels.test.js > "$WORK/$tool.txt" 2>&1
    cat "$WORK/$tool.txt" >> "$LOG"
    sum=$(grep -E 'SUMMARY' "$WORK/$tool.txt" | tail -1 | sed 's/^=* *//')
    row "$tool (flash2, atomic tests)" "${sum:-no summary (see gpu-check.log)}; $(grep -c '^ok ' "$WORK/$tool.txt") tests ok"
  done
fi
# the peer again with torch.compile (its compilation is most of a minute, so it comes late)
peer "torch train B16 T1024 bf16 (compiled)" 180 train "${PEER[@]}" --compile 1
# the fp32 kernels (cuBLAS attention), and the fused fp32 attention kernels
say "bench: kernels at B=16, T=1024, fp32 (kernels.md)"
t 150 node dist/cli.js bench kernels --device cuda "${KSHAPE[@]}" --runs 3 > "$WORK/kernels.md" 2>>"$LOG"
kernels "$WORK/kernels.md" "fp32 (cuBLAS attention)"
krow "$WORK/kernels.md" "" 'lm_head forward (' 'lm_head forward [' 'lm_head backward (' 'lm_head backward [' 'attention_forward |' 'attention_backward |'
GPT_NATIVE_CUDA_ATTENTION=fused t 100 node dist/cli.js bench kernels --device cuda "${KSHAPE[@]}" --runs 3 --filter attention \
  > "$WORK/kernels-fused.md" 2>>"$LOG"
kernels "$WORK/kernels-fused.md" "fp32, fused attention kernels"
krow "$WORK/kernels-fused.md" " (fused)" 'attention_forward |' 'attention_backward |'

echo
echo "gpt-native GPU check$( (( DRY )) && echo " (DRY RUN on the CUDA emulator: tiny sizes, no timings worth reading)") — $(date -u +%F), ${GPU:-unknown GPU}, commit $( { tr '\n' ' ' < .gpu/commit; } 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '%s\n' "${ROWS[@]}" | tee -a "$LOG"
