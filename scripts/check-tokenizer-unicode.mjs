#!/usr/bin/env node
// Checks gpt-native's GPT-2 tokenizer against tiktoken for every Unicode code point in several contexts
// (between letters, digits, punctuation and spaces), which exercises the character classes of
// lib/tokenizer/unicode-classes.ts. Prints the code points whose ids differ.
// usage: TOK_PEERS_NODE_MODULES=/tmp/tok-peers/node_modules node scripts/check-tokenizer-unicode.mjs
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const req = createRequire(path.join(process.env.TOK_PEERS_NODE_MODULES || '/tmp/tok-peers/node_modules', '_x_.js'));
const tk = req('tiktoken').get_encoding('gpt2');
const { Tokenizer } = createRequire(import.meta.url)(root);
const tok = Tokenizer.gpt2();
const probe = (c) => `x${c}y 1${c}2 ${c}. ${c}${c} ${c}\n \t${c}a'${c}s${c}'s\n`;
const same = (s) => {
  const a = tk.encode_ordinary(s), b = tok.encodeToUint32(s);
  return a.length === b.length && a.every((x, i) => x === b[i]);
};
const bad = [];
function check(lo, hi) { // [lo, hi)
  const cps = [];
  for (let cp = lo; cp < hi; cp++) if (cp < 0xd800 || cp > 0xdfff) cps.push(cp);
  if (!cps.length) return;
  const text = cps.map((cp) => probe(String.fromCodePoint(cp))).join('');
  if (same(text)) return;
  if (hi - lo === 1) { bad.push(lo); return; }
  const mid = (lo + hi) >> 1;
  check(lo, mid);
  check(mid, hi);
}
for (let lo = 0; lo < 0x110000; lo += 4096) check(lo, lo + 4096);
console.log(`code points whose ids differ from tiktoken: ${bad.length}`);
const runs = [];
for (const cp of bad) {
  if (runs.length && runs[runs.length - 1][1] === cp - 1) runs[runs.length - 1][1] = cp;
  else runs.push([cp, cp]);
}
const hex = (cp) => 'U+' + cp.toString(16).toUpperCase().padStart(4, '0');
for (const [a, b] of runs.slice(0, 50)) console.log(a === b ? hex(a) : `${hex(a)}..${hex(b)}`, JSON.stringify(String.fromCodePoint(a)));
// --json: the runs as [[first, last], ...], the input of gen-tokenizer-unicode.js --other
if (process.argv.includes('--json')) console.log(JSON.stringify(runs));
