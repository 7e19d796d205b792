'use strict';
// GPT-3's Pareto resampling: keep when pareto(α) > 1 − score, NumPy's Lomax form. Keep-rates against the
// closed form P(keep | s) = (2 − s)^(−α) within sampling error, seeded determinism, shard independence.
const test = require('ava');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { lomax, keepProbability, paretoKeep, filterFiles } = require('../dist/index');
const { uniform, stringKey } = require('../dist/data/hash');
const C = require('./data/pipeline/corpus');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

test('closed form: (2 − s)^(−9) is 0.2% at 0, 2.6% at 0.5, 42% at 0.9, 1 at 1', (t) => {
  t.true(Math.abs(keepProbability(0) - 2 ** -9) < 1e-15);
  t.true(Math.abs(keepProbability(0.5) - 0.026012) < 1e-6);
  t.true(Math.abs(keepProbability(0.9) - 0.424098) < 1e-6);
  t.is(keepProbability(1), 1);
  // NumPy's pareto: (1 − u)^(−1/α) − 1; its survival function is (1 + x)^(−α)
  for (const x of [0.01, 0.1, 0.5, 1]) {
    const u = 1 - (1 + x) ** -9; // the quantile of x
    t.true(Math.abs(lomax(u, 9) - x) < 1e-12);
  }
  t.is(lomax(0, 9), 0);
});

test('keep-rates match the closed form within 4 standard errors (200,000 draws per score)', (t) => {
  const N = 200000;
  for (const s of [0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95]) {
    let kept = 0;
    const key = stringKey(`shard-${s}`);
    for (let i = 0; i < N; i++) if (paretoKeep(s, uniform(42, key, i), 9)) kept++;
    const p = keepProbability(s, 9);
    const se = Math.sqrt((p * (1 - p)) / N);
    const rate = kept / N;
    t.log(`score ${s}: kept ${(100 * rate).toFixed(3)}%, closed form ${(100 * p).toFixed(3)}% (±${(100 * se).toFixed(3)})`);
    t.true(Math.abs(rate - p) < 4 * se, `score ${s}: ${rate} vs ${p}`);
  }
});

test('uniform draws: counter-based, in [0, 1), mean 1/2', (t) => {
  let sum = 0;
  const N = 100000;
  for (let i = 0; i < N; i++) {
    const u = uniform(3, 99, i);
    t.true(u >= 0 && u < 1);
    sum += u;
  }
  t.true(Math.abs(sum / N - 0.5) < 0.005);
  t.is(uniform(3, 99, 17), uniform(3, 99, 17));
  t.not(uniform(3, 99, 17), uniform(4, 99, 17));
});

test('filterFiles: keep-rates by score, determinism, worker count and sharding do not change the result', async (t) => {
  const dir = C.tmpDir('filter');
  fs.mkdirSync(path.join(dir, 'in'));
  const scores = [0.05, 0.5, 0.9];
  const perScore = 6000;
  const docs = [];
  for (const s of scores) for (let i = 0; i < perScore; i++) docs.push({ text: `document ${docs.length}`, score: s, n: docs.length });
  C.writeJsonl(path.join(dir, 'in', 'a.jsonl'), docs.slice(0, 9000));
  C.writeJsonl(path.join(dir, 'in', 'b.jsonl'), docs.slice(9000));
  const s0 = await filterFiles({ in: path.join(dir, 'in'), out: path.join(dir, 'kept0.jsonl'), alpha: 9, seed: 5, workers: 0 });
  const s2 = await filterFiles({ in: path.join(dir, 'in'), out: path.join(dir, 'kept2.jsonl'), alpha: 9, seed: 5, workers: 2, chunkBytes: 4096 });
  t.is(fs.readFileSync(path.join(dir, 'kept0.jsonl'), 'utf8'), fs.readFileSync(path.join(dir, 'kept2.jsonl'), 'utf8'));
  t.is(s0.docs, docs.length);
  t.is(s0.kept, s2.kept);
  // per-shard output: the same documents, shard by shard
  await filterFiles({ in: path.join(dir, 'in'), out: path.join(dir, 'perShard') + '/', seed: 5 });
  const perShard = [...C.readJsonl(path.join(dir, 'perShard', 'a.jsonl')), ...C.readJsonl(path.join(dir, 'perShard', 'b.jsonl'))];
  t.deepEqual(perShard, C.readJsonl(path.join(dir, 'kept0.jsonl')));
  // one shard alone decides as it does among the others
  await filterFiles({ in: path.join(dir, 'in', 'b.jsonl'), out: path.join(dir, 'b-alone.jsonl'), seed: 5 });
  t.deepEqual(C.readJsonl(path.join(dir, 'b-alone.jsonl')), C.readJsonl(path.join(dir, 'perShard', 'b.jsonl')));
  // rates: the histogram bins by score
  const kept = C.readJsonl(path.join(dir, 'kept0.jsonl'));
  for (const s of scores) {
    const k = kept.filter((d) => d.score === s).length;
    const p = keepProbability(s);
    const se = Math.sqrt((p * (1 - p)) / perScore);
    t.log(`score ${s}: ${k}/${perScore} kept = ${((100 * k) / perScore).toFixed(2)}%, closed form ${(100 * p).toFixed(2)}%`);
    t.true(Math.abs(k / perScore - p) < 4 * se + 1 / perScore);
  }
  t.is(s0.keptHist.reduce((a, b) => a + b, 0), kept.length);
  // another seed, another draw
  const s9 = await filterFiles({ in: path.join(dir, 'in'), out: path.join(dir, 'kept9.jsonl'), seed: 9 });
  t.not(fs.readFileSync(path.join(dir, 'kept9.jsonl'), 'utf8'), fs.readFileSync(path.join(dir, 'kept0.jsonl'), 'utf8'));
  t.true(s9.kept > 0);
});

test('filter: a missing or bad score is reported with file and line; the rest goes on', async (t) => {
  const dir = C.tmpDir('filter-bad');
  const inp = path.join(dir, 'in.jsonl');
  fs.writeFileSync(inp, '{"text":"a","score":1}\n{"text":"b"}\n{"text":"c","score":1.5}\n{"text":"d","score":1}\n');
  const r = spawnSync(process.execPath, [CLI, 'data', 'filter', '--in', inp, '--out', path.join(dir, 'out.jsonl'), '--alpha', '9', '--seed', '3'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /in\.jsonl:2: Expected a number in \[0, 1\] for "score" but received nothing \(run `data quality score` first\)/);
  t.regex(r.stderr, /in\.jsonl:3: Expected a number in \[0, 1\] for "score" but received 1\.5/);
  t.deepEqual(C.readJsonl(path.join(dir, 'out.jsonl')).map((d) => d.text), ['a', 'd']);
  t.regex(r.stdout, /kept 2, dropped 0, bad lines 2/);
  const bad = spawnSync(process.execPath, [CLI, 'data', 'filter', '--in', inp, '--out', path.join(dir, 'o2.jsonl'), '--alpha', '-1'], { encoding: 'utf8' });
  t.is(bad.status, 1);
  t.regex(bad.stderr, /Expected a positive number for alpha but received -1/);
});
