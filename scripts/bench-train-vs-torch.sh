#!/usr/bin/env bash
# Training step throughput, gpt-native next to tuned PyTorch 1.13 on this machine, in one run, alternating the
# contenders so all see the same conditions: fp32 on both sides, and bf16 on both sides (gpt-native
# --precision bf16: bf16 weights and bf16 arithmetic in the products where the processor has AVX512-BF16;
# PyTorch --bf16 1: torch.autocast(cpu, bfloat16)). Needs Debian's python3-torch for the peer
# (apt-get install -y python3-torch); ../shared/peers/torch_gpt.py is the peer. Prints a markdown table.
# Usage: bash scripts/bench-train-vs-torch.sh [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
ROUNDS=${1:-2}
export OMP_WAIT_POLICY=passive GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184
declare -A res
configs=("gpt2-small 4 64 gpt2" "small6 8 256 small6")
ours() { node dist/cli.js bench train --preset "$1" --batch "$2" --seq "$3" --steps 4 --precision "$4" --json | tail -1 |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tokensPerSec.toFixed(1)))'; }
theirs() { /usr/bin/python3 "$PEERS/torch_gpt.py" train --preset "$1" --B "$2" --T "$3" --steps 4 --warmup 1 --bf16 "$4" 2>/dev/null | tail -1 |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log((j.tokens_per_s??j.tokens_per_sec??j.tok_per_s).toFixed(1))})'; }
for r in $(seq "$ROUNDS"); do
  for c in "${configs[@]}"; do
    set -- $c
    a=$(ours "$1" "$2" "$3" fp32); b=$(theirs "$4" "$2" "$3" 0); c16=$(ours "$1" "$2" "$3" bf16); d=$(theirs "$4" "$2" "$3" 1)
    res[$1.o32]="${res[$1.o32]:-} $a"; res[$1.t32]="${res[$1.t32]:-} $b"; res[$1.o16]="${res[$1.o16]:-} $c16"; res[$1.t16]="${res[$1.t16]:-} $d"
    echo "round $r $1 B=$2 T=$3: gpt-native fp32 $a, PyTorch fp32 $b, gpt-native bf16 $c16, PyTorch bf16 autocast $d tokens/s" >&2
  done
done
med() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f×", a/b}'; }
echo "| config | precision | gpt-native tokens/s | PyTorch 1.13 tokens/s | ratio |"
echo "|---|---|---:|---:|---:|"
for c in "${configs[@]}"; do
  set -- $c
  for p in 32 16; do
    a=$(med "${res[$1.o$p]}"); b=$(med "${res[$1.t$p]}")
    name=$([ $p = 32 ] && echo "fp32" || echo "bf16 (PyTorch: autocast)")
    echo "| $1 B=$2 T=$3 | $name | $a | $b | $(ratio "$a" "$b") |"
  done
done
