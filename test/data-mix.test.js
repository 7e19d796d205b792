'use strict';
// Token shards (llm.c format) and weighted mixing with an injected encoder: GPT-3's Table 2.2 weights hit to
// the token, sampling without replacement within an epoch, epochs reported, bad sources and weights refused.
const test = require('ava');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { writeShard, readShard, readShardHeader, ShardWriter, SHARD_MAGIC, SHARD_HEADER_BYTES, mix, normaliseWeights } = require('../dist/index');
const C = require('./data/pipeline/corpus');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');
const EOT = 50256;

test('writeShard/readShard: llm.c header, uint16 body, round trip', (t) => {
  const dir = C.tmpDir('shard');
  const f = path.join(dir, 'a.bin');
  const toks = [EOT, 0, 1, 65535, 464, 2068];
  writeShard(f, toks);
  const buf = fs.readFileSync(f);
  t.is(buf.length, SHARD_HEADER_BYTES + 2 * toks.length);
  t.is(buf.readInt32LE(0), SHARD_MAGIC);
  t.is(buf.readInt32LE(4), 1);
  t.is(buf.readInt32LE(8), toks.length);
  for (let i = 3; i < 256; i++) t.is(buf.readInt32LE(4 * i), 0);
  t.is(buf.readUInt16LE(SHARD_HEADER_BYTES + 6), 65535);
  t.deepEqual([...readShard(f)], toks);
  t.deepEqual(readShardHeader(f), { tokens: 6, version: 1 });
  writeShard(path.join(dir, 'empty.bin'), new Uint16Array(0));
  t.is(readShard(path.join(dir, 'empty.bin')).length, 0);
  t.deepEqual(fs.readdirSync(dir).sort(), ['a.bin', 'empty.bin']);
  t.throws(() => writeShard(path.join(dir, 'b.bin'), [1, 65536]), { message: /Expected token ids in \[0, 65535\] for .*b\.bin but received 65536 at index 1/ });
});

test('readShard: corrupt and truncated shards are errors naming the file and the fault', (t) => {
  const dir = C.tmpDir('shard-bad');
  const f = path.join(dir, 'ok.bin');
  writeShard(f, [1, 2, 3, 4]);
  const good = fs.readFileSync(f);
  const put = (name, b) => (fs.writeFileSync(path.join(dir, name), b), path.join(dir, name));
  t.throws(() => readShard(put('trunc.bin', good.subarray(0, good.length - 2))), { message: /Token shard .*trunc\.bin is truncated: the header says 4 tokens \(1032 bytes\) but the file has 1030 bytes/ });
  t.throws(() => readShard(put('short.bin', good.subarray(0, 100))), { message: /short\.bin is truncated: 100 bytes, shorter than the 1024-byte header/ });
  const magic = Buffer.from(good);
  magic.writeInt32LE(20240801, 0);
  t.throws(() => readShard(put('magic.bin', magic)), { message: /magic\.bin has magic 20240801, expected 20240520/ });
  const ver = Buffer.from(good);
  ver.writeInt32LE(2, 4);
  t.throws(() => readShard(put('ver.bin', ver)), { message: /ver\.bin has version 2, expected 1/ });
  t.throws(() => readShard(put('long.bin', Buffer.concat([good, Buffer.alloc(2)]))), { message: /long\.bin is corrupt: the header says 4 tokens/ });
  t.throws(() => readShard(path.join(dir, 'missing.bin')), { message: /Cannot open token shard .*missing\.bin/ });
});

test('ShardWriter: rolls over at N tokens, names files in order, last shard partial', (t) => {
  const dir = C.tmpDir('shardw');
  const w = new ShardWriter(dir, { shardTokens: 1000, prefix: 'mix' });
  const all = [];
  for (let i = 0; i < 37; i++) {
    const piece = Array.from({ length: 97 }, (_, j) => (i * 97 + j) % 50000);
    all.push(...piece);
    w.append(piece);
  }
  w.append(new Uint16Array(0));
  const files = w.close();
  t.deepEqual(files.map((f) => path.basename(f)), ['mix_000000.bin', 'mix_000001.bin', 'mix_000002.bin', 'mix_000003.bin']);
  t.deepEqual(files.map((f) => readShard(f).length), [1000, 1000, 1000, 589]);
  t.deepEqual(files.flatMap((f) => [...readShard(f)]), all);
  t.is(w.tokens, all.length);
  t.throws(() => w.append([1]), { message: /is closed/ });
  t.throws(() => new ShardWriter(dir, { shardTokens: 0 }), { message: /Expected a positive integer below 2\^31 for shardTokens but received 0/ });
});

/** A word-level test encoder: token 0 carries the document id, then one id per word (hashed). */
function makeEncoder() {
  return (text) => {
    const m = /^doc(\d+)\s/.exec(text);
    const ids = [m ? Number(m[1]) : 49999];
    for (const w of text.split(/\s+/).slice(1)) if (w) ids.push(1000 + ((w.length * 7919 + w.charCodeAt(0)) % 40000));
    return ids;
  };
}

function writeSource(dir, name, texts) {
  const f = path.join(dir, `${name}.jsonl`);
  C.writeJsonl(f, texts.map((x, i) => ({ text: `doc${i} ${x}` })));
  return f;
}

test('mix: GPT-3 Table 2.2 weights hit to the token, epochs reported, no repeats within an epoch', async (t) => {
  const dir = C.tmpDir('mix');
  const moby = C.passages(C.mobyDick(), 120);
  const sotu = C.passages(C.sotu(), 120);
  const spam = C.spam().slice(0, 600);
  const sources = [
    { name: 'common-crawl', path: writeSource(dir, 'cc', spam), weight: 60 },
    { name: 'webtext2', path: writeSource(dir, 'wt', sotu.slice(0, 1500)), weight: 22 },
    { name: 'books1', path: writeSource(dir, 'b1', moby.slice(0, 300)), weight: 8 },
    { name: 'books2', path: writeSource(dir, 'b2', moby.slice(300, 900)), weight: 8 },
    { name: 'wikipedia', path: writeSource(dir, 'wiki', sotu.slice(1500, 1530)), weight: 3 },
  ];
  // Table 2.2's weights as printed (they sum to 101%: normalised)
  const budget = 300000;
  const r = await mix({ sources, tokens: budget, out: path.join(dir, 'shards'), encode: makeEncoder(), eot: EOT, shardTokens: 65536, seed: 3 });
  t.is(r.tokens, budget);
  const w = normaliseWeights(sources);
  for (const [i, s] of r.sources.entries()) {
    t.log(`${s.name.padEnd(13)} weight ${(100 * s.weight).toFixed(2)}% share ${(100 * s.share).toFixed(2)}% epochs ${s.epochs.toFixed(3)} (${s.tokens}/${s.sourceTokens})`);
    t.true(Math.abs(s.share - w[i]) <= 1 / budget, `${s.name} share ${s.share} vs ${w[i]}`);
    t.true(Math.abs(s.epochs - s.tokens / s.sourceTokens) < 1e-12);
  }
  t.true(r.sources[4].epochs > 1, 'the small source is repeated');
  // shards: sizes, and the stream is documents each led by EOT
  t.deepEqual(r.files.map((f) => readShard(f).length), [65536, 65536, 65536, 65536, budget - 4 * 65536]);
  const stream = r.files.flatMap((f) => [...readShard(f)]);
  t.is(stream[0], EOT);
  // document ids per source, in order of appearance: no repeat before the source's whole epoch is used
  const seen = new Map();
  let docs = 0;
  for (let i = 0; i < stream.length - 1; i++) if (stream[i] === EOT) docs++;
  t.true(docs > 100);
  // sampling without replacement: mix the small source alone over several epochs and read back the document ids
  const one = await mix({ sources: [sources[4]], tokens: 20000, out: path.join(dir, 'one'), encode: makeEncoder(), eot: EOT, seed: 5 });
  const s1 = one.files.flatMap((f) => [...readShard(f)]);
  const order = [];
  for (let i = 0; i < s1.length - 1; i++) if (s1[i] === EOT) order.push(s1[i + 1]);
  const n = one.sources[0].docs;
  t.true(order.length > 2 * n);
  for (let e = 0; e + n <= order.length; e += n) t.is(new Set(order.slice(e, e + n)).size, n, `epoch ${e / n} is a permutation`);
  t.notDeepEqual(order.slice(0, n), order.slice(n, 2 * n));
  for (const x of order) seen.set(x, (seen.get(x) || 0) + 1);
  t.is(seen.size, n);
  // same seed, same shards
  const again = await mix({ sources: [sources[4]], tokens: 20000, out: path.join(dir, 'again'), encode: makeEncoder(), eot: EOT, seed: 5 });
  t.deepEqual(again.files.flatMap((f) => [...readShard(f)]), s1);
});

test('mix: bad weights, an empty source, bad lines (reported, the rest used)', async (t) => {
  const dir = C.tmpDir('mix-bad');
  const a = writeSource(dir, 'a', ['one two three', 'four five']);
  const enc = makeEncoder();
  const base = { tokens: 100, out: path.join(dir, 'o'), encode: enc, eot: EOT };
  await t.throwsAsync(mix({ ...base, sources: [{ name: 'a', path: a, weight: 0 }, { name: 'b', path: a, weight: 0 }] }), {
    message: 'Expected weights that sum to a positive number but received a=0, b=0 (sum 0)',
  });
  await t.throwsAsync(mix({ ...base, sources: [{ name: 'a', path: a, weight: -1 }] }), { message: /Expected a finite weight ≥ 0 for source "a" but received -1/ });
  await t.throwsAsync(mix({ ...base, sources: [{ name: 'a', path: a, weight: NaN }] }), { message: /finite weight/ });
  await t.throwsAsync(mix({ ...base, sources: [] }), { message: /at least one source/ });
  await t.throwsAsync(mix({ ...base, sources: [{ name: 'a', path: a, weight: 1 }, { name: 'a', path: a, weight: 1 }] }), { message: /distinct source names/ });
  const empty = path.join(dir, 'empty.jsonl');
  fs.writeFileSync(empty, '\n');
  await t.throwsAsync(mix({ ...base, sources: [{ name: 'a', path: a, weight: 1 }, { name: 'books2', path: empty, weight: 1 }] }), {
    message: `Expected documents in source "books2" (${empty}) but it has none`,
  });
  const bad = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(bad, '{"text":"doc0 alpha beta"}\n{"text": 3}\nnope\n{"text":"doc1 gamma"}\n');
  const errors = [];
  const r = await mix({ ...base, sources: [{ name: 'bad', path: bad, weight: 1 }], onError: (e) => errors.push(e.message) });
  t.deepEqual(errors, [`${bad}:2: Expected a string "text" field but received number`, `${bad}:3: invalid JSON (Unexpected token 'o', "nope" is not valid JSON)`]);
  t.is(r.sources[0].docs, 2);
  t.is(r.errors, 2);
  t.is(r.tokens, 100);
  await t.throwsAsync(mix({ ...base, eot: 70000, sources: [{ name: 'a', path: a, weight: 1 }] }), { message: /end-of-text id in \[0, 65535\]/ });
});

test('CLI: data mix with --source and with a spec file; errors exit non-zero', (t) => {
  const dir = C.tmpDir('mix-cli');
  const a = writeSource(dir, 'a', C.passages(C.mobyDick().slice(0, 5), 100));
  const b = writeSource(dir, 'b', C.spam().slice(0, 50));
  let r = spawnSync(process.execPath, [CLI, 'data', 'mix', '--source', `books=${a}:3`, '--source', `crawl=${b}:1`, '--tokens', '40000', '--out', path.join(dir, 's1'), '--shard-tokens', '16384', '--tokenizer', 'bytes'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /mix: 40,000 tokens in 3 shards/);
  t.regex(r.stdout, /books\s+75\.0%\s+75\.0%/);
  t.deepEqual(fs.readdirSync(path.join(dir, 's1')), ['train_000000.bin', 'train_000001.bin', 'train_000002.bin']);
  const bytes = readShard(path.join(dir, 's1', 'train_000000.bin'));
  t.is(bytes[0], 256);
  fs.writeFileSync(path.join(dir, 'mix.json'), JSON.stringify({ sources: [{ name: 'books', path: a, weight: 1 }, { name: 'crawl', path: b, weight: -2 }] }));
  r = spawnSync(process.execPath, [CLI, 'data', 'mix', '--in', path.join(dir, 'mix.json'), '--tokens', '100', '--out', path.join(dir, 's2'), '--tokenizer', 'bytes'], { encoding: 'utf8' });
  t.is(r.status, 1);
  t.regex(r.stderr, /Expected a finite weight ≥ 0 for source "crawl" but received -2/);
  r = spawnSync(process.execPath, [CLI, 'data', 'mix', '--source', 'nocolon', '--tokens', '100', '--out', path.join(dir, 's3')], { encoding: 'utf8' });
  t.is(r.status, 2);
  t.regex(r.stderr, /Expected NAME=PATH:WEIGHT for --source but received "nocolon"/);
});
