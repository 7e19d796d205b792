#!/usr/bin/env bash
# Speculative decoding on a trained pair: trains (once) a target (6 layers × 384) and a draft (2 × 128) on the
# built-in corpus with the default recipe, 300 steps each (~10 min on 2 cores), then times greedy decoding of
# 128 tokens, plain and speculative alternately, for k = 2, 3, 4, in fp32 and bf16.
# Usage: bash scripts/bench-speculative.sh [dir=/tmp/gn-spec]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/gn-spec}
[ -f "$DIR/target/model.safetensors" ] || node dist/train.js --n-layer 6 --n-head 6 --n-embd 384 --steps 300 --out "$DIR/target" --json > "$DIR.target.log"
[ -f "$DIR/draft/model.safetensors" ] || node dist/train.js --n-layer 2 --n-head 2 --n-embd 128 --steps 300 --out "$DIR/draft" --json > "$DIR.draft.log"
for p in fp32 bf16; do
  for k in 2 3 4; do
    node dist/cli.js bench generate --model "$DIR/target" --draft "$DIR/draft" --speculate $k --precision $p \
      --prompt "It was the best of times" --new-tokens 128 --runs 5 | tail -2
  done
done
