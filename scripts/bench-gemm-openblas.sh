#!/usr/bin/env bash
# gpt-native's GEMM beside OpenBLAS's cblas_sgemm, shape by shape, alternating the two so both see the same
# machine conditions. Prints a markdown table of medians (GFLOP/s) for the GPT-2 training shapes:
#   forward   A·B    M × N × K            (activations (M,K) · weight (K,N))
#   dinp      A·Bᵀ   M × K × N            (dout (M,N) · weightᵀ)
#   dweight   Aᵀ·B   K × N × M            (inpᵀ · dout, the tall-skinny weight gradient)
# for M = B·T in {256, 1024} and (K,N) in {768×2304, 768×768, 768×3072, 3072×768, 768×50257}.
# OpenBLAS runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from the environment (its own core
# detection, i.e. its best kernel here); both use all cores unless THREADS is set.
# Needs libopenblas-dev (benchmark only: the package never links OpenBLAS) and a built package (npm install).
# Usage: bash scripts/bench-gemm-openblas.sh [rounds=3]      (~3 min for 3 rounds)
#        FORMS="fwd dinp" MS="256" SHAPES="768x768" bash scripts/bench-gemm-openblas.sh 1
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
THREADS=${THREADS:-$(nproc)}
FORMS=${FORMS:-"fwd dinp dweight"}
MS=${MS:-"256 1024"}
SHAPES=${SHAPES:-"768x2304 768x768 768x3072 3072x768 768x50257"}
BIN=${TMPDIR:-/tmp}/gemm-openblas-$$
gcc -O2 scripts/gemm-openblas.c -o "$BIN" -lopenblas
trap 'rm -f "$BIN"' EXIT

gf() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s.trim().split("\n").pop()).gflops))'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $THREADS threads, $(date -u +%F), ours: $(node -p "require('./dist/native').native.gemmIsa()") micro-kernel" >&2
echo "| M×N×K | form | ours GFLOP/s | OpenBLAS GFLOP/s | ours / OpenBLAS |"
echo "|---|---|---:|---:|---:|"
for M in $MS; do
  for S in $SHAPES; do
    K=${S%x*}; N=${S#*x}
    for F in $FORMS; do
      case $F in
        fwd)     m=$M; n=$N; k=$K; ta=0; tb=0; name="A·B" ;;
        dinp)    m=$M; n=$K; k=$N; ta=0; tb=1; name="A·Bᵀ" ;;
        dweight) m=$K; n=$N; k=$M; ta=1; tb=0; name="Aᵀ·B" ;;
      esac
      flags=""; [ $ta = 1 ] && flags="$flags --trans-a"; [ $tb = 1 ] && flags="$flags --trans-b"
      ours=""; blas=""
      for r in $(seq "$ROUNDS"); do
        ours="$ours $(node dist/cli.js bench gemm --m $m --n $n --k $k $flags --runs 5 --threads "$THREADS" --json | gf)"
        blas="$blas $(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$THREADS" "$BIN" $m $n $k $ta $tb 300 5 | gf)"
      done
      o=$(echo $ours | median); b=$(echo $blas | median)
      printf "| %s×%s×%s | %s | %.0f | %.0f | %.2f |\n" $m $n $k "$name" "$o" "$b" "$(awk -v o="$o" -v b="$b" 'BEGIN{print o/b}')"
    done
  done
done
