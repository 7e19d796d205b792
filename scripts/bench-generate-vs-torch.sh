#!/usr/bin/env bash
# Batch-1 greedy decoding with a KV cache, GPT-2 124M: gpt-native with fp32 and with bf16 weights next to
# PyTorch 1.13 fp32 in one run (alternating), and the machine's read bandwidth (../shared/peers/run_stream.sh)
# for the limit. Needs Debian's python3-torch for the peer.
# Usage: bash scripts/bench-generate-vs-torch.sh [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
export OMP_WAIT_POLICY=passive
bash "$PEERS/run_stream.sh" 1024 10 | grep -A3 'threads=2' | grep read | sed 's/^/stream 2 threads: /'
for r in $(seq "${1:-2}"); do
  for p in fp32 bf16; do
    node dist/cli.js bench generate --preset gpt2-small --prompt-tokens 16 --new-tokens 128 --runs 3 --precision $p --json | tail -1 | sed "s/^/round $r gpt-native $p: /"
  done
  /usr/bin/python3 "$PEERS/torch_gpt.py" generate --preset gpt2 --prompt 16 --new 128 --kv-cache 1 --B 1 2>/dev/null | tail -1 | sed "s/^/round $r pytorch fp32: /"
done
