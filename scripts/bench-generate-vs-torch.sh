#!/usr/bin/env bash
# Batch-1 greedy decoding with a KV cache, GPT-2 124M fp32, gpt-native next to PyTorch 1.13 in one run
# (alternating), and the memory-bandwidth limit. Needs Debian's python3-torch for the peer.
# Usage: bash scripts/bench-generate-vs-torch.sh [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
export OMP_WAIT_POLICY=passive
for r in $(seq "${1:-2}"); do
  node dist/cli.js bench generate --preset gpt2-small --prompt-tokens 16 --new-tokens 128 --runs 3 --json | tail -1 | sed "s/^/round $r gpt-native: /"
  /usr/bin/python3 "$PEERS/torch_gpt.py" generate --preset gpt2 --prompt 16 --new 128 --kv-cache 1 --B 1 2>/dev/null | tail -1 | sed "s/^/round $r pytorch: /"
done
