'use strict';
// Reading documents: files, folders of shards, gzip, plain text, stdin; line numbers across chunk boundaries;
// bad lines reported with file and line while the stream goes on; per-shard outputs.
const test = require('ava');
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { spawnSync } = require('child_process');
const { readDocuments, listInputs, DataInputError, scoreFiles, QualityClassifier } = require('../dist/index');
const { readChunks, forEachDoc } = require('../dist/data/jsonl');
const C = require('./data/pipeline/corpus');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

test('line numbers stay right across chunk boundaries, CRLF and blank lines, unicode', async (t) => {
  const dir = C.tmpDir('lines');
  const f = path.join(dir, 'a.jsonl');
  const lines = [];
  for (let i = 0; i < 500; i++) {
    if (i % 50 === 7) lines.push('');
    else if (i % 97 === 3) lines.push('{"text": nope}');
    else lines.push(JSON.stringify({ text: `línea ${i} — ${'ü'.repeat(i % 13)} 🐋`, i }));
  }
  fs.writeFileSync(f, lines.join('\r\n'));
  const seen = [];
  const errors = [];
  for (const f0 of listInputs(f))
    for await (const c of readChunks(f0, 997)) forEachDoc(c, (d) => seen.push([d.line, d.doc.i, d.text]), (e) => errors.push([e.line, e.file]));
  const expect = lines.map((l, i) => [i + 1, l]).filter(([, l]) => l.startsWith('{"text":"'));
  t.deepEqual(seen.map((s) => s[0]), expect.map((e) => e[0]));
  t.deepEqual(seen.map((s) => s[1]), expect.map((e) => e[0] - 1));
  t.true(seen[3][2].endsWith('🐋'));
  t.deepEqual(errors.map((e) => e[0]), lines.map((l, i) => [i + 1, l]).filter(([, l]) => l.includes('nope')).map((e) => e[0]));
  t.true(errors.every((e) => e[1] === f));
});

test('readDocuments: folder of shards in name order, gzip, plain text, hidden files skipped; errors thrown by default', async (t) => {
  const dir = C.tmpDir('folder');
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'b.jsonl'), '{"text":"b1"}\n{"text":"b2"}\n');
  fs.writeFileSync(path.join(dir, 'a.jsonl.gz'), zlib.gzipSync('{"text":"a1"}\n'));
  fs.writeFileSync(path.join(dir, 'sub', 'c.txt'), 'a whole\n\nplain text file');
  fs.writeFileSync(path.join(dir, '.hidden.jsonl'), 'junk');
  const got = [];
  for await (const d of readDocuments(dir)) got.push([path.relative(dir, d.file), d.line, d.text]);
  t.deepEqual(got, [['a.jsonl.gz', 1, 'a1'], ['b.jsonl', 1, 'b1'], ['b.jsonl', 2, 'b2'], [path.join('sub', 'c.txt'), 1, 'a whole\n\nplain text file']]);
  fs.writeFileSync(path.join(dir, 'b.jsonl'), '{"text":"b1"}\n{"txt":"b2"}\n');
  const err = await t.throwsAsync(async () => {
    for await (const _ of readDocuments(dir)) void _;
  });
  t.true(err instanceof DataInputError);
  t.is(err.message, `${path.join(dir, 'b.jsonl')}:2: Expected a string "text" field but it is missing`);
  t.is(err.line, 2);
  t.throws(() => listInputs(path.join(dir, 'nope')), { message: /Expected an existing file or folder for --in but received/ });
});

test('a folder in, a folder out: one output per shard, same relative names; text shards become .jsonl', async (t) => {
  const dir = C.tmpDir('pershard');
  fs.mkdirSync(path.join(dir, 'in', 'x'), { recursive: true });
  C.writeJsonl(path.join(dir, 'in', 'p0.jsonl'), ['call me ishmael', 'some years ago']);
  fs.writeFileSync(path.join(dir, 'in', 'x', 'p1.txt'), 'never mind how long precisely');
  const model = QualityClassifier.train(['a b c'], ['d e f'], { buckets: 1 << 8, holdout: 0 }).model;
  const s = await scoreFiles({ in: path.join(dir, 'in'), out: path.join(dir, 'out') + '/', model, workers: 1 });
  t.deepEqual(s.outputs.map((p) => path.relative(dir, p)), [path.join('out', 'p0.jsonl'), path.join('out', 'x', 'p1.jsonl')]);
  const p1 = C.readJsonl(path.join(dir, 'out', 'x', 'p1.jsonl'));
  t.is(p1[0].text, 'never mind how long precisely');
  t.is(p1[0].source, path.join(dir, 'in', 'x', 'p1.txt'));
  t.is(typeof p1[0].score, 'number');
  t.is(C.readJsonl(path.join(dir, 'out', 'p0.jsonl')).length, 2);
});

test('CLI: stdin to stdout, summary on stderr; usage errors exit 2', (t) => {
  const dir = C.tmpDir('stdin');
  const model = path.join(dir, 'm.json');
  QualityClassifier.train(['a b c'], ['d e f'], { buckets: 1 << 8, holdout: 0 }).model.save(model);
  let r = spawnSync(process.execPath, [CLI, 'data', 'quality', 'score', '--model', model, '--in', '-', '--out', '-', '--workers', '0'], { input: '{"text":"a b"}\n{"text":"d"}\n', encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim().split('\n').length, 2);
  t.regex(r.stderr, /score: 2 documents from 1 file/);
  r = spawnSync(process.execPath, [CLI, 'data', 'quality', 'score', '--model', model, '--in', '-', '--out', '-', '--json'], { input: '{"text":"a b"}\n', encoding: 'utf8' });
  t.is(JSON.parse(r.stderr.trim().split('\n').pop()).docs, 1);
  r = spawnSync(process.execPath, [CLI, 'data', 'frobnicate'], { encoding: 'utf8' });
  t.is(r.status, 2);
  t.regex(r.stderr, /unknown data stage "frobnicate"/);
  r = spawnSync(process.execPath, [CLI, 'data', 'dedup', '--in', 'x'], { encoding: 'utf8' });
  t.is(r.status, 2);
  t.regex(r.stderr, /Expected --out/);
  r = spawnSync(process.execPath, [CLI, 'data', 'dedup', '--help'], { encoding: 'utf8' });
  t.is(r.status, 0);
  t.regex(r.stdout, /--threshold <number>\s+Jaccard threshold/);
  r = spawnSync(process.execPath, [CLI, 'data', 'filter', '--in', path.join(dir, 'missing.jsonl'), '--out', '-'], { encoding: 'utf8' });
  t.is(r.status, 1);
  t.regex(r.stderr, /Expected an existing file or folder for --in/);
});
