// Where node's headers (node_api.h) and node-addon-api (napi.h) are, for the scripts that build the CUDA addon
// outside node-gyp (build-cuda.js, build-cuda-emu.js).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');

/** The folder holding node_api.h: $NODE_INCLUDE_DIR, next to this node, node-gyp's cache, or /usr(/local). */
function findNodeInclude() {
  const cands = [
    process.env.NODE_INCLUDE_DIR,
    path.resolve(process.execPath, '../../include/node'),
    process.config && process.config.variables && process.config.variables.nodedir
      ? path.join(process.config.variables.nodedir, 'include', 'node')
      : null,
    '/usr/include/node',
    '/usr/local/include/node',
    process.env.HOME && path.join(process.env.HOME, '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ].filter(Boolean);
  return cands.find((d) => fs.existsSync(path.join(d, 'node_api.h'))) || null;
}

/** The folder holding napi.h (node-addon-api), or null before `npm install`. */
function findAddonApi() {
  try {
    const dir = require('node-addon-api').include_dir;
    const abs = path.resolve(root, dir.replace(/^"|"$/g, ''));
    if (fs.existsSync(path.join(abs, 'napi.h'))) return abs;
  } catch {}
  const local = path.join(root, 'node_modules', 'node-addon-api');
  return fs.existsSync(path.join(local, 'napi.h')) ? local : null;
}

module.exports = { findNodeInclude, findAddonApi };
