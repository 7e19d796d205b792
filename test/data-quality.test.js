'use strict';
// The quality classifier on real text: curated public-domain prose (Moby Dick, State of the Union) against
// spam e-mail bodies (SpamAssassin), held-out AUC above 0.95; model files; `data quality` from the CLI.
const test = require('ava');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { QualityClassifier, rocAuc, trainQualityFiles, scoreFiles, Featurizer } = require('../dist/index');
const C = require('./data/pipeline/corpus');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

test('rocAuc: perfect, inverted, ties', (t) => {
  t.is(rocAuc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]), 1);
  t.is(rocAuc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]), 0);
  t.is(rocAuc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]), 0.5);
  t.is(rocAuc([0.3, 0.7, 0.5], [0, 1, 1]), 1);
});

test('features: lower-cased words split on non-letters, L2-normalised counts', (t) => {
  const f = new Featurizer(1 << 10);
  const a = f.features('The cat, the CAT; the_cat!');
  const b = f.features('the cat the cat the cat');
  t.deepEqual([...a.indices], [...b.indices]);
  t.deepEqual([...a.values], [...b.values]);
  const norm = Math.hypot(...a.values);
  t.true(Math.abs(norm - 1) < 1e-6);
  t.throws(() => new Featurizer(1000), { message: /power of two/ });
  t.is(f.features('123 ... !!').indices.length, 0);
});

test('curated prose vs spam: held-out AUC > 0.95 (library, files)', async (t) => {
  const dir = C.tmpDir('quality');
  const pos = C.passages([...C.mobyDick(), ...C.sotu()], 300);
  const neg = C.spam();
  C.writeJsonl(path.join(dir, 'curated.jsonl'), pos);
  C.writeJsonl(path.join(dir, 'spam.jsonl'), neg);
  const { model, heldOut, summary } = await trainQualityFiles({
    positive: path.join(dir, 'curated.jsonl'),
    negative: path.join(dir, 'spam.jsonl'),
    out: path.join(dir, 'model.json'),
    holdout: 0.2,
    seed: 7,
  });
  t.log(`${pos.length} curated passages, ${neg.length} spam bodies; held-out n=${heldOut.n} accuracy ${heldOut.accuracy.toFixed(4)} AUC ${heldOut.auc.toFixed(4)}`);
  t.true(heldOut.auc > 0.95, `AUC ${heldOut.auc}`);
  t.true(heldOut.accuracy > 0.9, `accuracy ${heldOut.accuracy}`);
  t.is(summary.docs, pos.length + neg.length);
  // the saved model scores the same
  const loaded = QualityClassifier.load(path.join(dir, 'model.json'));
  t.is(loaded.buckets, 1 << 18);
  for (const s of [pos[3], neg[5]]) t.is(loaded.score(s), model.score(s));
  // out of domain for the positives: trained on Moby Dick only, tested on State of the Union passages
  const m2 = QualityClassifier.train(C.passages(C.mobyDick(), 300), neg.slice(0, 1200), { holdout: 0, seed: 1 }).model;
  const sotu = C.passages(C.sotu(), 300).slice(0, 600);
  const rest = neg.slice(1200);
  const auc2 = rocAuc([...sotu, ...rest].map((x) => m2.score(x)), [...sotu.map(() => 1), ...rest.map(() => 0)]);
  t.log(`Moby Dick-trained model on SOTU vs unseen spam: AUC ${auc2.toFixed(4)}`);
  t.true(auc2 > 0.9, `cross-domain AUC ${auc2}`);
});

test('model.json: validated on load', (t) => {
  const dir = C.tmpDir('qmodel');
  const m = QualityClassifier.train(['a fine sentence of prose'], ['buy now cheap pills'], { buckets: 1 << 8, holdout: 0 }).model;
  const p = path.join(dir, 'm.json');
  m.save(p);
  const j = JSON.parse(fs.readFileSync(p, 'utf8'));
  t.is(j.format, 'gpt-native-quality');
  t.throws(() => QualityClassifier.fromJSON({ ...j, format: 'other' }, 'x.json'), { message: /Expected a gpt-native-quality model for x.json/ });
  t.throws(() => QualityClassifier.fromJSON({ ...j, weights: 'AAAA' }, 'x.json'), { message: /Expected 1024 bytes of weights/ });
  fs.writeFileSync(p, '{not json');
  t.throws(() => QualityClassifier.load(p), { message: /Cannot read quality model/ });
  t.throws(() => QualityClassifier.train([], ['x']), { message: /at least one positive/ });
});

test('scoreFiles: score field added, other fields kept, bad lines reported with file and line, rest kept', async (t) => {
  const dir = C.tmpDir('score');
  const model = QualityClassifier.train(C.passages(C.mobyDick(), 200).slice(0, 400), C.spam().slice(0, 400), { holdout: 0 }).model;
  const inp = path.join(dir, 'in.jsonl');
  const good = [{ text: C.mobyDick()[5], id: 1, meta: { a: [1, 2] } }, { text: C.spam()[900], id: 2 }, { text: 'x', score: 'old', id: 3 }, { id: 4, text: '' }];
  fs.writeFileSync(
    inp,
    JSON.stringify(good[0]) + '\n{"text": "broken\n' + JSON.stringify(good[1]) + '\r\n{"id": 5}\n\n' + JSON.stringify(good[2]) + '\n[1,2]\n' + JSON.stringify(good[3]),
  );
  const errors = [];
  for (const workers of [0, 2]) {
    errors.length = 0;
    const out = path.join(dir, `out${workers}.jsonl`);
    const s = await scoreFiles({ in: inp, out, model, workers, onError: (e) => errors.push(e.message) });
    t.is(s.docs, 4);
    t.is(s.errors, 3);
    t.deepEqual(errors, [
      `${inp}:2: invalid JSON (Unterminated string in JSON at position 16)`,
      `${inp}:4: Expected a string "text" field but it is missing`,
      `${inp}:7: Expected a JSON object but received an array`,
    ]);
    const docs = C.readJsonl(out);
    t.deepEqual(docs.map((d) => d.id), [1, 2, 3, 4]);
    t.deepEqual(docs[0].meta, { a: [1, 2] });
    t.true(docs[0].score > 0.5, `prose ${docs[0].score}`);
    t.true(docs[1].score < 0.5, `spam ${docs[1].score}`);
    t.is(typeof docs[2].score, 'number');
    t.is(s.hist.reduce((a, b) => a + b, 0), 4);
  }
  t.is(fs.readFileSync(path.join(dir, 'out0.jsonl'), 'utf8'), fs.readFileSync(path.join(dir, 'out2.jsonl'), 'utf8'));
  t.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
});

test('CLI: data quality train and score', (t) => {
  const dir = C.tmpDir('qcli');
  C.writeJsonl(path.join(dir, 'pos.jsonl'), C.passages(C.mobyDick(), 300).slice(0, 600));
  C.writeJsonl(path.join(dir, 'neg.jsonl'), C.spam().slice(0, 600));
  const model = path.join(dir, 'model.json');
  let r = spawnSync(process.execPath, [CLI, 'data', 'quality', 'train', '--positive', path.join(dir, 'pos.jsonl'), '--negative', path.join(dir, 'neg.jsonl'), '--out', model], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /held-out: 120 documents \(60 curated, 60 raw\): accuracy [\d.]+%, AUC 0\.9\d+|AUC 1\.0000/);
  fs.writeFileSync(path.join(dir, 'in.jsonl'), '{"text":"Call me Ishmael. Some years ago, never mind how long precisely."}\n{oops\n');
  r = spawnSync(process.execPath, [CLI, 'data', 'quality', 'score', '--model', model, '--in', path.join(dir, 'in.jsonl'), '--out', '-'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const docs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.is(docs.length, 1);
  t.is(typeof docs[0].score, 'number');
  t.regex(r.stderr, /in\.jsonl:2: invalid JSON/);
  t.regex(r.stderr, /kept 1, dropped 0, bad lines 1/);
  r = spawnSync(process.execPath, [CLI, 'data', 'quality', 'score', '--model', model, '--in', path.join(dir, 'in.jsonl'), '--out', '-', '--strict'], { encoding: 'utf8' });
  t.is(r.status, 1);
  r = spawnSync(process.execPath, [CLI, 'data', 'quality', 'score', '--modle', model], { encoding: 'utf8' });
  t.is(r.status, 2);
  t.regex(r.stderr, /Unknown option --modle/);
});
