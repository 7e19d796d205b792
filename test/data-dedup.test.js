'use strict';
// MinHash-LSH fuzzy dedup on real text with planted near-duplicates (a few words changed): recall ≥ 0.95 on
// pairs with Jaccard ≥ 0.8, unrelated documents not merged, first of each cluster kept; decontamination by
// 13-grams and by MinHash.
const test = require('ava');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { MinHasher, LshIndex, estimateJaccard, exactJaccard, dedupFiles, decontaminateFiles } = require('../dist/index');
const C = require('./data/pipeline/corpus');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

/** Replaces `k` distinct random words of a passage by made-up ones. */
function mutate(text, k, rand) {
  const w = text.split(' ');
  const done = new Set();
  while (done.size < Math.min(k, w.length)) {
    const i = Math.floor(rand() * w.length);
    if (done.has(i)) continue;
    done.add(i);
    w[i] = `qx${Math.floor(rand() * 1e9).toString(36)}`;
  }
  return w.join(' ');
}

test('signatures: Ĵ tracks the exact shingle Jaccard; empty text; parameters checked', (t) => {
  const mh = new MinHasher({ hashes: 256, shingle: 5, seed: 3 });
  const rand = C.rng(1);
  const ps = C.passages(C.sotu(), 200).slice(0, 40);
  let sq = 0;
  let n = 0;
  for (const p of ps)
    for (const k of [1, 3, 6, 12, 25]) {
      const q = mutate(p, k, rand);
      const J = exactJaccard(p, q, 5);
      const e = estimateJaccard(mh.sign(p), mh.sign(q));
      sq += (e - J) ** 2;
      n++;
    }
  const rmse = Math.sqrt(sq / n);
  t.log(`RMSE of Ĵ vs J over ${n} pairs at k=256: ${rmse.toFixed(4)} (binomial bound ≈ ${(0.5 / 16).toFixed(4)})`);
  t.true(rmse < 0.04);
  t.is(mh.sign('... 123? !!'.replace(/\d/g, '')), null);
  t.deepEqual(mh.sign('Hello,   WORLD'), mh.sign('hello world'));
  const short = mh.sign('two words');
  t.is(estimateJaccard(short, mh.sign('two words')), 1);
  t.is(estimateJaccard(short, mh.sign('three words')), 0);
  t.throws(() => new LshIndex(128, { bands: 20, rows: 7 }), { message: /bands × rows ≤ hashes \(128\)/ });
});

test('dedupFiles: planted near-duplicates found (recall ≥ 0.95 at J ≥ 0.8), unrelated documents kept, first of each cluster kept', async (t) => {
  const dir = C.tmpDir('dedup');
  const rand = C.rng(11);
  // 300 passages of 200 words and 100 of 600 words, all distinct
  const bases = [
    ...C.passages(C.sotu().slice(100, 200), 200, 200).slice(0, 300),
    ...C.passages(C.mobyDick().slice(20, 80), 600, 600).slice(0, 100),
  ];
  const docs = bases.map((text, i) => ({ text, id: `base${i}` }));
  const planted = [];
  for (let i = 0; i < 400; i++) {
    const b = i % bases.length;
    const len = bases[b].split(' ').length;
    const k = 1 + Math.floor((rand() * len) / 25); // 1 to len/25 words changed: J from ~0.7 to ~0.98
    const text = mutate(bases[b], k, rand);
    planted.push({ text, id: `copy${i}`, of: `base${b}`, J: exactJaccard(bases[b], text, 5) });
  }
  for (let i = planted.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [planted[i], planted[j]] = [planted[j], planted[i]];
  }
  fs.mkdirSync(path.join(dir, 'in'));
  C.writeJsonl(path.join(dir, 'in', '0.jsonl'), docs.slice(0, 250));
  C.writeJsonl(path.join(dir, 'in', '1.jsonl'), [...docs.slice(250), ...planted.map(({ text, id, of }) => ({ text, id, of }))]);
  const s = await dedupFiles({ in: path.join(dir, 'in'), out: path.join(dir, 'out.jsonl'), duplicates: path.join(dir, 'dupes.jsonl'), threshold: 0.8, workers: 2, chunkBytes: 64 * 1024 });
  const kept = new Set(C.readJsonl(path.join(dir, 'out.jsonl')).map((d) => d.id));
  const dupes = C.readJsonl(path.join(dir, 'dupes.jsonl'));
  t.is(s.docs, docs.length + planted.length);
  t.is(s.kept + s.duplicates, s.docs);
  t.is(dupes.length, s.duplicates);
  const high = planted.filter((p) => p.J >= 0.8);
  const found = high.filter((p) => !kept.has(p.id)).length;
  const recall = found / high.length;
  const low = planted.filter((p) => p.J < 0.8);
  t.log(`${s.checked} borderline pairs checked exactly`);
  t.log(`${high.length} planted pairs with J ≥ 0.8 (J from ${Math.min(...high.map((p) => p.J)).toFixed(3)}): recall ${recall.toFixed(4)}; ${low.length} with J < 0.8, ${low.filter((p) => !kept.has(p.id)).length} of them merged`);
  t.true(recall >= 0.95, `recall ${recall}`);
  // every base (the first of its cluster) is kept: unrelated documents are not merged with each other
  const lostBases = docs.filter((d) => !kept.has(d.id));
  t.deepEqual(lostBases.map((d) => d.id), []);
  // each dropped copy points at its own base
  for (const d of dupes) t.is(`${d.duplicate_of.file}:${d.duplicate_of.line}`, `${path.join(dir, 'in', Number(d.of.slice(4)) < 250 ? '0.jsonl' : '1.jsonl')}:${(Number(d.of.slice(4)) % 250) + 1}`);
  // same result on the calling thread
  const s0 = await dedupFiles({ in: path.join(dir, 'in'), out: path.join(dir, 'out0.jsonl'), workers: 0 });
  t.is(fs.readFileSync(path.join(dir, 'out0.jsonl'), 'utf8'), fs.readFileSync(path.join(dir, 'out.jsonl'), 'utf8'));
  t.is(s0.kept, s.kept);
});

test('dedup from stdin: near and exact duplicates dropped, first kept, bad lines reported', (t) => {
  const dir = C.tmpDir('dedup-cli');
  const base = C.passages(C.mobyDick().slice(70, 71), 120, 120)[0];
  const a = base;
  const b = mutate(base, 1, C.rng(2)); // J ≈ 0.92
  const other = C.passages(C.sotu().slice(150, 151), 120, 120)[0];
  const lines = [JSON.stringify({ text: other, n: 0 }), JSON.stringify({ text: b, n: 1 }), 'not json', JSON.stringify({ text: a, n: 2 }), JSON.stringify({ text: a, n: 3 }), JSON.stringify({ n: 4 })];
  const r = spawnSync(process.execPath, [CLI, 'data', 'dedup', '--in', '-', '--out', '-', '--threshold', '0.8'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l).n), [0, 1]);
  t.regex(r.stderr, /-:3: invalid JSON/);
  t.regex(r.stderr, /-:6: Expected a string "text" field but it is missing/);
  t.regex(r.stderr, /kept 2, dropped 2, duplicates 2, bad lines 2/);
});

test('dedup: a chain A~B~C with A, C apart is one cluster (connected components), its first member kept', async (t) => {
  const dir = C.tmpDir('chain');
  const rand = C.rng(9);
  const A = C.passages(C.mobyDick().slice(90, 91), 200, 200)[0];
  const B = mutate(A, 3, rand);
  const Cc = mutate(B, 4, rand);
  const jab = exactJaccard(A, B), jbc = exactJaccard(B, Cc), jac = exactJaccard(A, Cc);
  t.log(`J(A,B)=${jab.toFixed(3)} J(B,C)=${jbc.toFixed(3)} J(A,C)=${jac.toFixed(3)}`);
  t.true(jab >= 0.8 && jbc >= 0.8 && jac < 0.8);
  C.writeJsonl(path.join(dir, 'in.jsonl'), [{ text: A, n: 'A' }, { text: Cc, n: 'C' }, { text: B, n: 'B' }]);
  const s = await dedupFiles({ in: path.join(dir, 'in.jsonl'), out: path.join(dir, 'out.jsonl'), workers: 0 });
  t.deepEqual(C.readJsonl(path.join(dir, 'out.jsonl')).map((d) => d.n), ['A']);
  t.is(s.duplicates, 2);
});

test('decontaminate: documents sharing a 13-gram, or near-copies of protected text (even short ones) are removed', async (t) => {
  const dir = C.tmpDir('decon');
  const evals = C.passages(C.sotu().slice(200, 233), 150, 150).slice(0, 30);
  // short evaluation items (9 words): too short for any 13-gram, found by MinHash only
  const shorts = C.passages(C.sotu().slice(190, 200), 9, 9).filter((_, i) => i % 7 === 0).slice(0, 10);
  const train = C.passages(C.mobyDick().slice(80, 120), 150, 150).slice(0, 200);
  const rand = C.rng(5);
  const docs = train.map((text, i) => ({ text, kind: 'clean', i }));
  // a training document quoting 20 words of an eval passage inside other text
  for (let i = 0; i < 10; i++) {
    const ev = evals[i].split(' ');
    const at = Math.floor(rand() * (ev.length - 20));
    docs.push({ text: `${train[i]} ${ev.slice(at, at + 20).join(' ')} ${train[i + 1]}`, kind: 'quote' });
  }
  // near-copies of eval passages, two words changed
  for (let i = 10; i < 20; i++) docs.push({ text: mutate(evals[i], 2, rand), kind: 'near' });
  // the short items again, in other case and punctuation
  for (const q of shorts) docs.push({ text: `“${q.toUpperCase()}!”`, kind: 'short' });
  C.writeJsonl(path.join(dir, 'evals.jsonl'), [...evals, ...shorts]);
  C.writeJsonl(path.join(dir, 'train.jsonl'), docs);
  const both = await decontaminateFiles({ in: path.join(dir, 'train.jsonl'), out: path.join(dir, 'clean.jsonl'), protected: path.join(dir, 'evals.jsonl') });
  const kept = C.readJsonl(path.join(dir, 'clean.jsonl'));
  t.log(`removed ${both.contaminated.ngram} by 13-grams, ${both.contaminated.minhash} by MinHash`);
  t.deepEqual(kept.map((d) => d.i), train.map((_, i) => i));
  t.deepEqual(both.contaminated, { ngram: 20, minhash: 10 });
  const ng = await decontaminateFiles({ in: path.join(dir, 'train.jsonl'), out: path.join(dir, 'ng.jsonl'), protected: path.join(dir, 'evals.jsonl'), method: 'ngram', workers: 0 });
  t.deepEqual(ng.contaminated, { ngram: 20, minhash: 0 });
  t.deepEqual(C.readJsonl(path.join(dir, 'ng.jsonl')).filter((d) => d.kind !== 'clean').map((d) => d.kind), shorts.map(() => 'short'));
  const mh = await decontaminateFiles({ in: path.join(dir, 'train.jsonl'), out: path.join(dir, 'mh.jsonl'), protected: path.join(dir, 'evals.jsonl'), method: 'minhash' });
  t.deepEqual(mh.contaminated, { ngram: 0, minhash: 20 }); // the 20-word quotes inside 300 words are not near-copies
  await t.throwsAsync(
    decontaminateFiles({ in: path.join(dir, 'train.jsonl'), out: path.join(dir, 'x.jsonl'), protected: path.join(dir, 'none'), method: 'ngram' }),
    { message: /Expected an existing file or folder/ },
  );
  fs.writeFileSync(path.join(dir, 'empty.jsonl'), '');
  await t.throwsAsync(
    decontaminateFiles({ in: path.join(dir, 'train.jsonl'), out: path.join(dir, 'x.jsonl'), protected: path.join(dir, 'empty.jsonl') }),
    { message: /Expected documents in the protected set .*empty\.jsonl but it has none/ },
  );
  // CLI
  const r = spawnSync(process.execPath, [CLI, 'data', 'decontaminate', '--in', path.join(dir, 'train.jsonl'), '--out', path.join(dir, 'cli.jsonl'), '--protected', path.join(dir, 'evals.jsonl'), '--ngram', '13'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /kept 200, dropped 30 \(n-gram overlap 20, MinHash 10\)/);
});
