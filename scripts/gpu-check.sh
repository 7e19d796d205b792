#!/usr/bin/env bash
# Run ON THE GPU MACHINE (see scripts/gpu-prepare.sh, which packs what this needs): builds the CUDA addon,
# runs the cross-backend tests (every CUDA kernel and the whole model, training, decoding and fine-tuning
# against the CPU backend; the fixtures; the flash kernels' tensor-core building blocks alone (flashProbe), then the
# flash kernels, each in a process apart from the defaults' tests; the flash benchmarks run only where these
# pass), then the benchmarks: first the acceptance figures (GPT-2 124M
# training at B=16, T=1024 in bf16 (cuBLAS attention, then the flash attention kernels) and fp32, tokens/s and
# MFU; batch-1 decoding; bf16 with every opt-in), then the kernels and the alternatives side by side (flash and
# the fused attention kernels, the cuBLAS attention at other chunk and scratch settings, the biases and the MLP's
# GELU in cuBLASLt's epilogues), and prints a short table last. Each stage has its own time
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
: > "$OUT/table.txt"
row() { ROWS+=("$(printf '%-34s %s' "$1" "$2")"); echo "${ROWS[-1]}" >> "$OUT/table.txt"; }
say() { echo "== $*" | tee -a "$LOG"; }
DEADLINE=$(( $(date +%s) + ${GN_BUDGET_S:-510} ))
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
if CUDA_ARCHS="${CUDA_ARCHS:-$ARCH}" GN_CUDA_JOBS="$(nproc)" t 300 node scripts/build-cuda.js >> "$LOG" 2>&1; then row "build" "ok ($(( $(date +%s) - START )) s)"
else row "build" "FAILED (see gpu-check.log)"; tail -40 "$LOG"; printf '%s\n' "${ROWS[@]}"; exit 1; fi

AVA="node node_modules/ava/entrypoints/cli.mjs --tap"
# tests FILE LABEL SECONDS MATCH…: one ava run of test/FILE.test.js on the GPU, appended to $OUT/FILE.tap, and a row.
# Each run is its own process: a kernel fault spoils the CUDA context of its process only, so the flash kernels
# (new, opt-in) run apart from the defaults, and their building blocks (flashProbe) before them.
# Status 0 when ava passed every test it ran (and ran some), else 1.
tests() {
  local f=$1 label=$2 s=$3 rc pass fail; shift 3
  say "tests: test/$f.test.js$label (real GPU)"
  GPT_NATIVE_CUDA_TEST=real t "$s" $AVA "$@" "test/$f.test.js" > "$WORK/run.tap" 2>&1
  rc=$?
  cat "$WORK/run.tap" >> "$OUT/$f.tap"
  pass=$(grep -c '^ok ' "$WORK/run.tap"); fail=$(grep -c '^not ok ' "$WORK/run.tap")
  row "test/$f.test.js$label" "$pass passed, $fail failed$( (( rc == 124 )) && echo ' (time limit)')"
  grep -A12 '^not ok ' "$WORK/run.tap" | head -120 | tee -a "$LOG"
  (( rc == 0 && fail == 0 && pass > 0 ))
}
: > "$OUT/cuda-kernels.tap"
: > "$OUT/cuda.tap"
tests cuda-kernels "" 200 --match '!*flash*'
# the flash benchmarks below run only where the flash tests passed (a failing or hanging kernel would spend the
# time of the rows after it)
FLASH_OK=1
tests cuda-kernels " (flashProbe)" 45 --match '*flashProbe*' || FLASH_OK=0
tests cuda-kernels " (flash)" 90 --match '*flash*' --match '!*flashProbe*' || FLASH_OK=0
tests cuda "" 200 --match '!*flash*'
tests cuda " (flash)" 90 --match '*flash*' || FLASH_OK=0

bench() { # name, command…
  local name=$1; shift
  say "bench: $name"
  local line
  line=$(t 180 "$@" --json 2>>"$LOG" | tail -1)
  echo "$line" >> "$LOG"
  echo "$line" >> "$OUT/bench.jsonl"
  row "$name" "$(node -e '
    const r = JSON.parse(process.argv[1] || "{}");
    if (r.tokensPerSec === undefined) { console.log("FAILED"); process.exit(); }
    const mfu = (r.mfu !== undefined ? `, MFU ${(100 * r.mfu).toFixed(1)}%` : "") +
      (r.settings && r.settings.attention === "flash" ? `, ${r.settings.flashCalls} flash / ${r.settings.attentionFallbacks} other attention calls` : "") +
      (r.settings && r.settings.geluEpilogue === "cublaslt" ? `, ${r.settings.geluEpilogueCalls} GEMMs with GELU epilogue` : "");
    const extra = r.msPerStep !== undefined ? `${r.msPerStep.toFixed(1)} ms/step` : `${r.msPerToken.toFixed(2)} ms/token`;
    console.log(`${Math.round(r.tokensPerSec).toLocaleString("en-US")} tokens/s (${extra}${mfu})`);' "$line" 2>/dev/null || echo FAILED)"
}
# the acceptance figures first (GPT-2 124M training, batch-1 decoding), then the side-by-side alternatives,
# so a run cut short by the deadline still has them
bench "train gpt2-small B16 T1024 bf16" node dist/cli.js bench train --device cuda --precision bf16 --preset gpt2-small --batch 16 --seq 1024 --steps 5 --warmup 2
# the same with the tensor-core flash attention kernels (the candidate default for bf16)
if (( FLASH_OK )); then
  GPT_NATIVE_CUDA_ATTENTION=flash bench "train B16 T1024 bf16, flash attn" node dist/cli.js bench train --device cuda --precision bf16 --preset gpt2-small --batch 16 --seq 1024 --steps 5 --warmup 2
else
  row "train B16 T1024 bf16, flash attn" "skipped (the flash tests failed)"
fi
# and with every opt-in at once (flash attention where its tests passed, the biases and the GELU in cuBLASLt's
# epilogues)
ALL=(flash "all opt-ins"); (( FLASH_OK )) || ALL=(gemm "all opt-ins but flash")
GPT_NATIVE_CUDA_ATTENTION=${ALL[0]} GPT_NATIVE_CUDA_LT=1 GPT_NATIVE_CUDA_LT_GELU=1 bench "train B16 T1024 bf16, ${ALL[1]}" node dist/cli.js bench train --device cuda --precision bf16 --preset gpt2-small --batch 16 --seq 1024 --steps 5 --warmup 2
bench "train gpt2-small B16 T1024 fp32" node dist/cli.js bench train --device cuda --precision fp32 --preset gpt2-small --batch 16 --seq 1024 --steps 3 --warmup 1
bench "decode gpt2-small batch 1" node dist/cli.js bench generate --device cuda --preset gpt2-small --prompt-tokens 16 --new-tokens 128 --runs 3 --bandwidth-gbps 4800
bench "decode gpt2-small batch 1, bf16" node dist/cli.js bench generate --device cuda --precision bf16 --preset gpt2-small --prompt-tokens 16 --new-tokens 128 --runs 3 --bandwidth-gbps 4800
# kernels FILE TITLE: appends a finished kernel table to $OUT/kernels.md (and the log) under a heading
kernels() { { echo; echo "## $2"; echo; cat "$1"; } | tee -a "$OUT/kernels.md" >> "$LOG"; }
: > "$OUT/kernels.md"
say "bench: kernels at B=16, T=1024 (kernels.md)"
t 150 node dist/cli.js bench kernels --device cuda --b 16 --t 1024 --runs 5 > "$WORK/kernels.md" 2>>"$LOG"
kernels "$WORK/kernels.md" "fp32, cuBLAS attention (the default)"
for k in 'lm_head forward' 'linear_forward qkv' 'attention_forward' 'attention_backward' 'softmax_xent_forward'; do
  line=$(grep -F "| $k" "$WORK/kernels.md" | head -1)
  row "kernel $k" "$([ -n "$line" ] && echo "$line" | awk -F'|' '{ printf "%s ms, %s GFLOP/s %s GB/s", $3, $4, $5 }' || echo FAILED)"
done
GPT_NATIVE_CUDA_ATTENTION=fused t 100 node dist/cli.js bench kernels --device cuda --b 16 --t 1024 --runs 3 \
  > "$WORK/kernels-fused.md" 2>>"$LOG"
kernels "$WORK/kernels-fused.md" "fp32, fused attention kernels"
for k in 'attention_forward' 'attention_backward'; do
  line=$(grep -F "| $k" "$WORK/kernels-fused.md" | head -1)
  row "kernel $k (fused)" "$([ -n "$line" ] && echo "$line" | awk -F'|' '{ printf "%s ms, %s GFLOP/s %s GB/s", $3, $4, $5 }' || echo FAILED)"
done
EXCLUDE=(); (( FLASH_OK )) || EXCLUDE=(--exclude '[flash]')
t 100 node dist/cli.js bench kernels --device cuda --precision bf16 --b 16 --t 1024 --runs 3 \
  ${EXCLUDE[@]+"${EXCLUDE[@]}"} > "$WORK/kernels-bf16.md" 2>>"$LOG"
kernels "$WORK/kernels-bf16.md" "bf16, cuBLAS attention"
for k in 'lm_head forward' 'linear_forward qkv' 'linear_forward qkv [cuBLASLt' 'mlp fc+gelu forward (' 'mlp fc+gelu forward [' 'mlp proj backward + dgelu |' 'mlp proj backward + dgelu [' 'attention_forward' 'attention_backward' 'attention_forward [flash]' 'attention_backward [flash]' 'softmax_xent_forward'; do
  line=$(grep -F "| $k" "$WORK/kernels-bf16.md" | head -1)
  row "kernel $(echo "$k" | sed 's/ [|(]$//; s/ \[$/ [Lt]/') (bf16)" "$([ -n "$line" ] && echo "$line" | awk -F'|' '{ printf "%s ms, %s GFLOP/s %s GB/s", $3, $4, $5 }' || echo FAILED)"
done
# the cuBLAS attention path at other settings than its defaults (bench kernels times them side by side)
grep -F '| attention_' "$WORK/kernels-bf16.md" | grep -F '[' | grep -vF '[flash]' | while IFS='|' read -r _ name ms _; do
  echo "$(echo "$name" | sed 's/^ *//; s/ *$//') (bf16): $(echo "$ms" | tr -d ' ') ms"
done > "$WORK/attention-tuning.txt"
while read -r l; do row "${l%%:*}" "${l#*: }"; done < "$WORK/attention-tuning.txt"
GPT_NATIVE_CUDA_LT=1 bench "train B16 T1024 bf16, cuBLASLt bias" node dist/cli.js bench train --device cuda --precision bf16 --preset gpt2-small --batch 16 --seq 1024 --steps 3 --warmup 1
GPT_NATIVE_CUDA_LT_GELU=1 bench "train B16 T1024 bf16, cuBLASLt GELU" node dist/cli.js bench train --device cuda --precision bf16 --preset gpt2-small --batch 16 --seq 1024 --steps 3 --warmup 1
bench "train gpt2-small B4 T64 (cf. CPU)" node dist/cli.js bench train --device cuda --preset gpt2-small --batch 4 --seq 64 --steps 5
say "profile: one bf16 training step by kernel family (profile-bf16.txt)"
t 120 node dist/cli.js bench train --device cuda --precision bf16 --preset gpt2-small --batch 16 --seq 1024 \
  --steps 2 --warmup 1 --profile > "$OUT/profile-bf16.txt" 2>>"$LOG"
cat "$OUT/profile-bf16.txt" >> "$LOG"
# the flash attention kernels under compute-sanitizer's race and barrier checkers (shared-memory hazards that the
# emulator, which runs threads one at a time, cannot show)
if command -v compute-sanitizer >/dev/null; then
  for tool in racecheck synccheck; do
    say "compute-sanitizer --tool $tool: the flash attention tests"
    GPT_NATIVE_CUDA_TEST=real t 90 compute-sanitizer --tool "$tool" --target-processes all $AVA --match '*flash*' \
      test/cuda-kernels.test.js > "$WORK/$tool.txt" 2>&1
    cat "$WORK/$tool.txt" >> "$LOG"
    sum=$(grep -E 'SUMMARY' "$WORK/$tool.txt" | tail -1 | sed 's/^=* *//')
    row "$tool (flash tests)" "${sum:-no summary (see gpu-check.log)}; $(grep -c '^ok ' "$WORK/$tool.txt") tests ok"
  done
fi

echo
echo "gpt-native GPU check — $(date -u +%F), ${GPU:-unknown GPU}, commit $( { tr '\n' ' ' < .gpu/commit; } 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '%s\n' "${ROWS[@]}" | tee -a "$LOG"
