#!/usr/bin/env bash
# Training step throughput, gpt-native next to tuned PyTorch 1.13 (fp32) on this machine, in one run,
# alternating the two so both see the same conditions. Needs Debian's python3-torch for the peer
# (apt-get install -y python3-torch); ../shared/peers/torch_gpt.py is the peer. Prints a markdown table.
# Usage: bash scripts/bench-train-vs-torch.sh [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
ROUNDS=${1:-2}
export OMP_WAIT_POLICY=passive GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184
declare -A ours theirs
configs=("gpt2-small 4 64 gpt2" "small6 8 256 small6")
for r in $(seq "$ROUNDS"); do
  for c in "${configs[@]}"; do
    set -- $c
    o=$(node dist/cli.js bench train --preset "$1" --batch "$2" --seq "$3" --steps 4 --json | tail -1 | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tokensPerSec.toFixed(1)))')
    t=$(/usr/bin/python3 "$PEERS/torch_gpt.py" train --preset "$4" --B "$2" --T "$3" --steps 4 --warmup 1 2>/dev/null | tail -1 | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log((j.tokens_per_s??j.tokens_per_sec??j.tok_per_s).toFixed(1))})')
    ours[$1]="${ours[$1]:-} $o"; theirs[$1]="${theirs[$1]:-} $t"
    echo "round $r $1 B=$2 T=$3: gpt-native $o tokens/s, PyTorch $t tokens/s" >&2
  done
done
med() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "| config | gpt-native tokens/s | PyTorch 1.13 fp32 tokens/s | ratio |"
echo "|---|---:|---:|---:|"
for c in "${configs[@]}"; do
  set -- $c
  a=$(med "${ours[$1]}"); b=$(med "${theirs[$1]}")
  echo "| $1 B=$2 T=$3 | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f×", a/b}') |"
done
