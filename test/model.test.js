'use strict';
// The model against an independent reference (test/data/fixtures: logits, loss, every gradient, the clipped
// norm, the weights after one AdamW step, a greedy continuation) for GPT-1, GPT-2 and GPT-3; presets and
// parameter counts; checkpoint round trips and bad checkpoints; input validation; dropout gradients.
const test = require('ava');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { GPT, AdamW, presets, countParameters, readSafetensors, writeSafetensors } = require('../dist');
const { relErr, freshSeed } = require('./helpers/util');

const FIX = path.join(__dirname, 'data', 'fixtures');
const made = [];
const tmpdir = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt-native-test-')); made.push(d); return d; };
test.after.always(() => { for (const d of made) fs.rmSync(d, { recursive: true, force: true }); });

async function fixture(v) {
  const dir = path.join(FIX, `${v}-tiny`);
  const read = async (f) => (await readSafetensors(path.join(dir, f))).tensors;
  return {
    dir,
    case: JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8')),
    logits: (await read('logits.safetensors')).get('logits').data,
    grads: await read('grads.safetensors'),
    after: await read('after_step.safetensors'),
  };
}

for (const v of ['gpt1', 'gpt2', 'gpt3']) {
  test(`${v}-tiny: logits, loss and every gradient match the reference within 1e-4`, async (t) => {
    const f = await fixture(v);
    const m = await GPT.load(f.dir);
    t.is(m.config.variant, v);
    const logits = m.forward(f.case.input_ids);
    t.true(relErr(logits, f.logits) < 1e-4, `logits ${relErr(logits, f.logits)}`);
    const loss = m.loss(f.case.input_ids, f.case.targets);
    t.true(Math.abs(loss - f.case.loss) / f.case.loss < 1e-4, `loss ${loss} vs ${f.case.loss}`);
    m.backward();
    t.is(m.parameters().size, f.grads.size);
    for (const [name, p] of m.parameters()) {
      const ref = f.grads.get(name);
      t.truthy(ref, `reference gradient for ${name}`);
      t.true(relErr(p.grad, ref.data) < 1e-4, `${name}: ${relErr(p.grad, ref.data)}`);
    }
  });

  test(`${v}-tiny: clipped norm and the weights after one AdamW step match the reference`, async (t) => {
    const f = await fixture(v);
    const o = f.case.optimizer;
    const m = await GPT.load(f.dir);
    m.loss(f.case.input_ids, f.case.targets);
    m.backward();
    const norm = m.clipGradNorm(o.max_grad_norm);
    t.true(Math.abs(norm - f.case.grad_norm) / f.case.grad_norm < 1e-4, `norm ${norm} vs ${f.case.grad_norm}`);
    t.true(Math.abs(m.gradNorm() - o.max_grad_norm) < 1e-4, 'after clipping the norm is max_grad_norm');
    const opt = new AdamW(m, { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weight_decay });
    opt.step();
    const all = [], allRef = [];
    for (const [name, p] of m.parameters()) {
      const ref = f.after.get(name).data;
      all.push(...p.data); allRef.push(...ref);
      const e = relErr(p.data, ref);
      if (/attn\.c_attn\.bias$/.test(name) && e >= 1e-4) {
        // The key bias has an exactly-zero true gradient (softmax ignores a shift shared by all keys):
        // float32 leaves ~1e-10 there, and Adam's first step turns any nonzero gradient into up to ±lr.
        const C = m.config.n_embd;
        const g = f.grads.get(name).data;
        for (let i = C; i < 2 * C; i++) t.true(Math.abs(g[i]) < 1e-12, 'the reference key-bias gradient is zero');
        for (let i = 0; i < ref.length; i++) {
          const bound = i >= C && i < 2 * C ? o.lr * 1.01 : 1e-6;
          t.true(Math.abs(p.data[i] - ref[i]) <= bound, `${name}[${i}]`);
        }
      } else {
        t.true(e < 1e-4, `${name}: ${e}`);
      }
    }
    t.true(relErr(all, allRef) < 1e-5, `whole model ${relErr(all, allRef)}`);
  });

  test(`${v}-tiny: AdamW applied to the reference gradients reproduces the reference step`, async (t) => {
    const f = await fixture(v);
    const o = f.case.optimizer;
    const m = await GPT.load(f.dir);
    m.zeroGrad();
    m.flatGradients; // allocate
    for (const [name, p] of m.parameters()) p.grad.set(f.grads.get(name).data);
    m.clipGradNorm(o.max_grad_norm);
    const opt = new AdamW(m, { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weight_decay });
    opt.step();
    for (const [name, p] of m.parameters()) {
      const e = relErr(p.data, f.after.get(name).data);
      t.true(e < 1e-5, `${name}: ${e}`);
    }
  });

  test(`${v}-tiny: greedy continuation equals the reference token for token`, async (t) => {
    const f = await fixture(v);
    const m = await GPT.load(f.dir);
    const seq = f.case.greedy.prompt.slice();
    const V = m.config.vocab_size;
    for (let i = 0; i < f.case.greedy.new_tokens.length; i++) {
      const logits = m.forward([seq]);
      const last = logits.subarray((seq.length - 1) * V, seq.length * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (last[j] > last[best]) best = j;
      seq.push(best);
    }
    t.deepEqual(seq.slice(f.case.greedy.prompt.length), f.case.greedy.new_tokens);
  });

  test(`${v}-tiny: save then load gives the same tensors, and the saved file reads back identically`, async (t) => {
    const f = await fixture(v);
    const m = await GPT.load(f.dir);
    const dir = tmpdir();
    await m.save(dir);
    const m2 = await GPT.load(dir);
    t.deepEqual(m2.config.attention_layers, m.config.attention_layers);
    t.is(m2.config.window_size, m.config.window_size);
    const orig = (await readSafetensors(path.join(f.dir, 'model.safetensors'))).tensors;
    const saved = (await readSafetensors(path.join(dir, 'model.safetensors'))).tensors;
    t.deepEqual([...saved.keys()].sort(), [...orig.keys()].sort());
    for (const [name, tns] of orig) {
      t.deepEqual(saved.get(name).shape, tns.shape);
      t.deepEqual(saved.get(name).data, tns.data, name);
      t.deepEqual(m2.parameters().get(name).data, tns.data, name);
    }
    t.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors'], 'no temporary files left');
  });
}

test('Hugging Face layouts load: transformer. prefix, attention-mask buffers and lm_head are ignored', async (t) => {
  const f = await fixture('gpt2');
  const orig = (await readSafetensors(path.join(f.dir, 'model.safetensors'))).tensors;
  const dir = tmpdir();
  const entries = [];
  for (const [k, v] of orig) entries.push([`transformer.${k}`, v]);
  entries.push(['transformer.h.0.attn.bias', { data: new Float32Array(4).fill(1), shape: [1, 1, 2, 2] }]);
  entries.push(['transformer.h.0.attn.masked_bias', { data: new Float32Array([-1e4]), shape: [] }]);
  entries.push(['lm_head.weight', orig.get('wte.weight')]);
  await writeSafetensors(path.join(dir, 'model.safetensors'), entries);
  const cfg = JSON.parse(fs.readFileSync(path.join(f.dir, 'config.json'), 'utf8'));
  delete cfg.variant; // a plain Hugging Face gpt2 config
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  const m = await GPT.load(dir);
  t.is(m.config.variant, 'gpt2');
  t.true(relErr(m.forward(f.case.input_ids), f.logits) < 1e-4);
});

// ------------------------------------------------------------------ bad checkpoints
async function badCheckpoint(t, mutate) {
  const f = await fixture('gpt2');
  const dir = tmpdir();
  for (const file of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(f.dir, file), path.join(dir, file));
  await mutate(dir, path.join(dir, 'model.safetensors'));
  return t.throwsAsync(GPT.load(dir));
}

test('bad checkpoint: truncated safetensors file', async (t) => {
  const e = await badCheckpoint(t, (dir, file) => {
    const b = fs.readFileSync(file);
    fs.writeFileSync(file, b.subarray(0, b.length - 1000));
  });
  t.regex(e.message, /model\.safetensors: tensor \S+: data ends at byte \d+ but the file holds only \d+ data bytes \(truncated\?\)/);
});

test('bad checkpoint: file shorter than the header length', async (t) => {
  const e = await badCheckpoint(t, (dir, file) => fs.writeFileSync(file, Buffer.from([1, 2, 3])));
  t.regex(e.message, /model\.safetensors: file is 3 bytes/);
  const e2 = await badCheckpoint(t, (dir, file) => {
    const b = Buffer.alloc(64);
    b.writeBigUInt64LE(10n ** 6n, 0);
    fs.writeFileSync(file, b);
  });
  t.regex(e2.message, /header claims 1000000 bytes/);
});

test('bad checkpoint: a header that lies about sizes', async (t) => {
  const e = await badCheckpoint(t, async (dir, file) => {
    const orig = (await readSafetensors(file)).tensors;
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    header['wpe.weight'].shape = [33, 48]; // claims more values than its byte range
    let json = JSON.stringify(header);
    while ((8 + json.length) % 8) json += ' ';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length), 0);
    fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), buf.subarray(8 + n)]));
    t.truthy(orig.size);
  });
  t.regex(e.message, /tensor wpe\.weight: shape \[33,48\] of F32 needs 6336 bytes but data_offsets span 6144/);
});

test('bad checkpoint: a missing tensor, a wrong shape, a wrong dtype, corrupt JSON', async (t) => {
  const f = await fixture('gpt2');
  const orig = (await readSafetensors(path.join(f.dir, 'model.safetensors'))).tensors;
  const e1 = await badCheckpoint(t, (dir, file) => writeSafetensors(file, [...orig].filter(([k]) => k !== 'h.1.mlp.c_fc.bias')));
  t.regex(e1.message, /model\.safetensors: tensor h\.1\.mlp\.c_fc\.bias is missing/);
  const e2 = await badCheckpoint(t, (dir, file) => writeSafetensors(file, [...orig].map(([k, v]) => k === 'ln_f.weight' ? [k, { data: v.data.subarray(0, 47), shape: [47] }] : [k, v])));
  t.regex(e2.message, /tensor ln_f\.weight has shape \[47\] but the config needs \[48\]/);
  const e3 = await badCheckpoint(t, (dir, file) => {
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const s = buf.subarray(8, 8 + n).toString().replace('"dtype":"F32"', '"dtype":"I64"');
    fs.writeFileSync(file, Buffer.concat([buf.subarray(0, 8), Buffer.from(s), buf.subarray(8 + n)]));
  });
  t.regex(e3.message, /unsupported dtype "I64"/);
  const e4 = await badCheckpoint(t, (dir, file) => {
    const buf = fs.readFileSync(file);
    buf[8] = 0x78; // corrupt the JSON ('{' -> 'x')
    fs.writeFileSync(file, buf);
  });
  t.regex(e4.message, /header is not valid JSON/);
  const e5 = await badCheckpoint(t, (dir) => fs.rmSync(path.join(dir, 'config.json')));
  t.regex(e5.message, /config\.json: not found/);
  const e6 = await badCheckpoint(t, (dir) => fs.writeFileSync(path.join(dir, 'config.json'), '{"n_layer": 2, "n_head": 3, "n_embd": 50, "vocab_size": 97, "n_positions": 32}'));
  t.regex(e6.message, /n_embd divisible by n_head/);
});

// ------------------------------------------------------------------ presets
test('every preset counts its parameters exactly; gpt1 and gpt2-small match Hugging Face', (t) => {
  t.is(countParameters(presets['gpt2-small']), 124439808);
  t.is(countParameters(presets.gpt1), 116534784);
  t.is(countParameters('gpt2-medium'), 354823168);
  t.is(countParameters('gpt2-large'), 774030080);
  t.is(countParameters('gpt2-xl'), 1557611200);
  for (const [name, c] of Object.entries(presets)) {
    // independent count from the layer formula: embeddings + per layer (2 LN + qkv + proj + fc + proj) + ln_f
    const C = c.n_embd, L = c.n_layer;
    const perLayer = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * 4 * C + 4 * C) + (4 * C * C + C);
    const expect = c.vocab_size * C + c.n_positions * C + L * perLayer + (c.variant === 'gpt1' ? 0 : 2 * C);
    t.is(countParameters(c), expect, name);
    t.is(C % c.n_head, 0, `${name}: heads divide the width`);
  }
  t.is(presets['gpt3-13b'].n_embd, 5120);
  t.is(presets['gpt3-175b'].n_layer, 96);
  t.throws(() => GPT.create('gpt2-tiny'), { instanceOf: RangeError, message: /Expected one of gpt1, gpt2-small.* for preset but received "gpt2-tiny"/ });
});

test('gpt1 and gpt2-small really build, with the paper initialisation', (t) => {
  const m = GPT.create('gpt2-small', { seed: 3 });
  t.is(m.numParameters(), 124439808);
  const p = m.parameters();
  const std = (a) => { let s = 0; for (const x of a) s += x * x; return Math.sqrt(s / a.length); };
  t.true(Math.abs(std(p.get('h.0.mlp.c_fc.weight').data) - 0.02) < 0.0005);
  t.true(Math.abs(std(p.get('h.3.attn.c_proj.weight').data) - 0.02 / Math.sqrt(24)) < 0.0002);
  t.true(p.get('h.0.ln_1.weight').data.every((x) => x === 1));
  t.true(p.get('h.0.attn.c_attn.bias').data.every((x) => x === 0));
  const logits = m.forward([[464, 3290, 318]]);
  t.is(logits.length, 3 * 50257);
  t.true(logits.every(Number.isFinite));
  m.dispose();
  const g1 = GPT.create('gpt1', { seed: 3 });
  t.is(g1.numParameters(), 116534784);
  t.true(g1.parameters().has('tokens_embed.weight'));
  t.false(g1.parameters().has('ln_f.weight'));
  g1.dispose();
  t.throws(() => g1.forward([[1]]), { message: /disposed/ });
});

// ------------------------------------------------------------------ input validation
test('bad ids: out of range, too long for the context, ragged, wrong type, mismatched targets', async (t) => {
  const m = await GPT.load(path.join(FIX, 'gpt2-tiny'));
  t.throws(() => m.forward([[1, 2, 97]]), { instanceOf: RangeError, message: /Expected a token id in \[0, 97\) for ids\[0\]\[2\] but received 97/ });
  t.throws(() => m.forward([Array(33).fill(1)]), { instanceOf: RangeError, message: /at most n_positions = 32 tokens .* received 33/ });
  t.throws(() => m.forward([[1, 2], [3]]), { instanceOf: RangeError, message: /rows of equal length 2 for ids\[1\]/ });
  t.throws(() => m.forward('hello'), { instanceOf: TypeError, message: /Expected number\[\]\[\] or a typed array of token ids for ids/ });
  t.throws(() => m.forward([[1.5]]), { instanceOf: TypeError, message: /an integer token id for ids\[0\]\[0\] but received 1.5/ });
  t.throws(() => m.loss([[1, 2, 3]], [[1, 2]]), { instanceOf: RangeError, message: /targets of shape \[1, 3\]/ });
  t.throws(() => m.backward(), { message: /needs a loss\(\) first/ });
  // flat typed arrays with an explicit shape
  const ids = Int32Array.from([1, 2, 3, 4, 5, 6]);
  const a = m.forward(ids, { shape: [2, 3] });
  const b = m.forward([[1, 2, 3], [4, 5, 6]]);
  t.deepEqual(a, b);
  t.throws(() => m.forward(ids, { shape: [4, 2] }), { instanceOf: RangeError, message: /a shape \[B, T\] with B·T = 6/ });
});

test('targets of -1 are ignored in the mean loss', async (t) => {
  const m = await GPT.load(path.join(FIX, 'gpt2-tiny'));
  const ids = [[5, 6, 7, 8]];
  const full = m.loss(ids, [[6, 7, 8, 9]]);
  const l2 = m.loss([[5, 6]], [[6, 7]]);
  const masked = m.loss(ids, [[6, 7, -1, -1]]);
  t.true(Math.abs(masked - l2) < 1e-6, `${masked} vs ${l2}`);
  t.not(full, masked);
});

test('loss(…, { gradient: true }): the logits gradient from the loss pass gives the same gradients as backward() alone', async (t) => {
  for (const v of ['gpt1', 'gpt2', 'gpt3']) {
    const seed = freshSeed();
    const cfg = { variant: v, n_layer: 2, n_head: 3, n_embd: 24, vocab_size: 101, n_positions: 17, window_size: 3 };
    const a = GPT.create(cfg, { seed }), b = GPT.create(cfg, { seed });
    const ids = Int32Array.from({ length: 2 * 11 }, (_, i) => (i * 37 + seed) % 101);
    const tg = Int32Array.from({ length: 2 * 11 }, (_, i) => (i * 53 + 7 + seed) % 101);
    tg[4] = -1; tg[15] = -1; // ignored positions
    const opts = { shape: [2, 11] };
    const la = a.loss(ids, tg, opts);
    a.backward(0.3);
    const lb = b.loss(ids, tg, { ...opts, gradient: true });
    t.is(lb, la, `${v}: the same loss`);
    b.backward(0.3);
    const e = relErr(b.flatGradients, a.flatGradients);
    t.true(e < 1e-6, `${v} (seed ${seed}): gradients ${e}`);
    t.true(a.gradNorm() > 0);
    // the logits are gone: only one backward may follow
    t.throws(() => b.backward(), { message: /needs a loss\(\) first/ });
  }
  const m = GPT.create({ variant: 'gpt2', n_layer: 1, n_head: 2, n_embd: 8, vocab_size: 11, n_positions: 8 });
  t.throws(() => m.loss([[1, 2]], [[2, 3]], { gradient: 1 }), { instanceOf: TypeError, message: /Expected true or false for gradient but received 1/ });
});

// ------------------------------------------------------------------ dropout
test('dropout: on only in training mode; backward matches finite differences of the same masks', (t) => {
  const seed = freshSeed(); t.log(`seed ${seed}`);
  for (const variant of ['gpt1', 'gpt2', 'gpt3']) {
    const cfg = { variant, n_layer: 2, n_head: 2, n_embd: 16, vocab_size: 31, n_positions: 9, window_size: 3, embd_pdrop: 0.2, resid_pdrop: 0.3, attn_pdrop: 0.25 };
    const m = GPT.create(cfg, { seed: seed % 1000 });
    const ids = [[1, 5, 9, 2, 30, 7, 7], [3, 3, 8, 0, 1, 2, 29]];
    const tg = [[5, 9, 2, 30, 7, 7, 4], [3, 8, 0, 1, 2, 29, 11]];
    const e1 = m.loss(ids, tg), e2 = m.loss(ids, tg);
    t.is(e1, e2, 'eval mode is deterministic');
    m.train();
    m.dropoutStep = 5;
    const l1 = m.loss(ids, tg);
    t.not(l1, e1, 'dropout changes the loss in training mode');
    m.dropoutStep = 5;
    t.is(m.loss(ids, tg), l1, 'same step, same masks');
    m.zeroGrad();
    m.dropoutStep = 5;
    m.loss(ids, tg);
    m.backward();
    const params = m.parameters();
    const names = ['h.1.mlp.c_fc.weight', 'h.0.attn.c_attn.weight', 'h.0.ln_1.weight', variant === 'gpt1' ? 'tokens_embed.weight' : 'wte.weight'];
    for (const name of names) {
      const p = params.get(name);
      for (const i of [3, 17, 40].map((k) => k % p.data.length)) {
        const x0 = p.data[i];
        const at = (x) => { p.data[i] = x; m.dropoutStep = 5; return m.loss(ids, tg); };
        // central differences at h and h/2 combined (Richardson), so the h² truncation error cancels: in fp32
        // a step small enough for plain differences would drown in rounding
        const h = 1e-2;
        const d1 = (at(x0 + h) - at(x0 - h)) / (2 * h), d2 = (at(x0 + h / 2) - at(x0 - h / 2)) / h;
        p.data[i] = x0;
        const fd = (4 * d2 - d1) / 3;
        t.true(Math.abs(fd - p.grad[i]) < 2e-3 + 2e-2 * Math.abs(fd), `${variant} ${name}[${i}] fd ${fd} vs ${p.grad[i]}`);
      }
    }
  }
});

// ------------------------------------------------------------------ hooks for fine-tuning
test('extendVocab adds embedding rows and keeps every other weight and the old logits', async (t) => {
  for (const v of ['gpt1', 'gpt2']) {
    const m = await GPT.load(path.join(FIX, `${v}-tiny`));
    const ids = [[3, 14, 15, 92, 65]];
    const before = m.forward(ids);
    const wteName = v === 'gpt1' ? 'tokens_embed.weight' : 'wte.weight';
    const oldW = m.parameters().get('h.0.mlp.c_fc.weight').data.slice();
    const first = m.extendVocab(3, { seed: 5 });
    t.is(first, 97);
    t.is(m.config.vocab_size, 100);
    t.deepEqual(m.parameters().get(wteName).shape, [100, 48]);
    t.deepEqual(m.parameters().get('h.0.mlp.c_fc.weight').data, oldW);
    const after = m.forward(ids);
    for (let tt = 0; tt < 5; tt++)
      for (let j = 0; j < 97; j++) t.is(after[tt * 100 + j], before[tt * 97 + j]);
    const rows = m.parameters().get(wteName).data.subarray(97 * 48);
    t.true(rows.some((x) => x !== 0) && rows.every((x) => Math.abs(x) < 0.2));
    t.notThrows(() => m.forward([[99, 98, 97]]));
    const dir = tmpdir();
    await m.save(dir);
    const m2 = await GPT.load(dir);
    t.is(m2.config.vocab_size, 100);
    t.deepEqual(m2.forward([[99, 1]]), m.forward([[99, 1]]));
  }
});

test('backward with a hidden-state gradient matches finite differences of loss + w·hidden', async (t) => {
  const m = await GPT.load(path.join(FIX, 'gpt2-tiny'));
  const ids = [[3, 14, 15, 92, 65, 35]], tg = [[14, 15, 92, 65, 35, 89]];
  const seed = freshSeed();
  const N = 6, C = 48;
  const w = new Float32Array(N * C);
  for (let i = 0; i < w.length; i++) w[i] = Math.sin(seed + i * 1.7);
  const objective = () => {
    const l = m.loss(ids, tg);
    const h = m.lastHidden();
    let s = 0;
    for (let i = 0; i < h.length; i++) s += w[i] * h[i];
    return l + s;
  };
  m.zeroGrad();
  objective();
  m.backward(1, { hiddenGrad: w });
  const p = m.parameters().get('h.1.attn.c_attn.weight');
  for (const i of [5, 333, 1800, 4000]) {
    const x0 = p.data[i];
    const h = 1e-2;
    p.data[i] = x0 + h; const fp = objective();
    p.data[i] = x0 - h; const fm = objective();
    p.data[i] = x0;
    const fd = (fp - fm) / (2 * h);
    t.true(Math.abs(fd - p.grad[i]) < 2e-3 + 2e-2 * Math.abs(fd), `[${i}] fd ${fd} vs ${p.grad[i]}`);
  }
  t.throws(() => { m.loss(ids, tg); m.backward(1, { hiddenGrad: new Float32Array(3) }); }, { instanceOf: RangeError, message: /hiddenGrad/ });
});
