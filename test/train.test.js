'use strict';
// Pre-training: schedules, packing with separators, sampling without replacement, shards, checkpoints that
// survive interruption, bitwise-exact resume, bad input, the command line.
const test = require('ava');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const { GPT, learningRate, batchSizeAt } = require('../dist');
const { train } = require('../dist/train');
const { prepareData } = require('../dist/data/prepare');
const { writeShard, readShard, ShardWriter } = require('../dist/data/shards');
const { ShardLoader } = require('../dist/data/loader');
const { saveCheckpoint, loadCheckpoint } = require('../dist/train/checkpoint');
const { AdamW } = require('../dist/optim');
const { byteTokenizer, mobyChapters } = require('./helpers/bytetok');

const made = [];
const tmp = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt-native-train-')); made.push(d); return d; };
test.after.always(() => { for (const d of made) fs.rmSync(d, { recursive: true, force: true }); });

test('learning rate: linear warmup, cosine decay to the floor, then constant', (t) => {
  const o = { lr: 1e-3, warmup: 10, totalSteps: 110, minLrRatio: 0.1 };
  t.is(learningRate(0, o), 1e-4);
  t.is(learningRate(4, o), 5e-4);
  t.is(learningRate(9, o), 1e-3);
  t.true(Math.abs(learningRate(10, o) - 1e-3) < 1e-12);
  t.true(Math.abs(learningRate(60, o) - (1e-4 + 0.5 * 9e-4)) < 1e-12, 'half way down the cosine');
  t.true(Math.abs(learningRate(110, o) - 1e-4) < 1e-12, 'floor at 10% (GPT-3)');
  t.true(Math.abs(learningRate(500, o) - 1e-4) < 1e-12);
  t.is(learningRate(110, { ...o, minLrRatio: 0 }), 0, 'GPT-1 decays to 0');
  t.true(Math.abs(learningRate(60, { ...o, decay: 'linear' }) - (1e-4 + 0.5 * 9e-4)) < 1e-12);
  for (let s = 10; s < 110; s++) t.true(learningRate(s + 1, o) <= learningRate(s, o), 'monotone decay');
});

test('batch-size warmup grows linearly in tokens from the start size to the full batch', (t) => {
  const o = { start: 1024, full: 16 * 1024, rampTokens: 1e6, seq: 1024 };
  t.is(batchSizeAt(0, o), 1);
  t.is(batchSizeAt(5e5, o), Math.floor((1024 + 15 * 1024 * 0.5) / 1024));
  t.is(batchSizeAt(1e6, o), 16);
  t.is(batchSizeAt(5e6, o), 16);
  let prev = 0;
  for (let s = 0; s <= 1e6; s += 5e4) { const b = batchSizeAt(s, o); t.true(b >= prev); prev = b; }
});

test('shards: llm.c header, round trip, rollover, and clear errors for corrupt files', (t) => {
  const dir = tmp();
  const toks = Array.from({ length: 1001 }, (_, i) => (i * 7919) % 50257);
  const f = path.join(dir, 'a_000000.bin');
  writeShard(f, toks);
  const buf = fs.readFileSync(f);
  t.is(buf.readInt32LE(0), 20240520);
  t.is(buf.readInt32LE(4), 1);
  t.is(buf.readInt32LE(8), 1001);
  t.is(buf.length, 1024 + 2 * 1001);
  t.deepEqual(Array.from(readShard(f)), toks);
  const w = new ShardWriter(dir, { shardTokens: 400, prefix: 'roll' });
  w.append(toks.slice(0, 500)); w.append(toks.slice(500));
  const files = w.close();
  t.is(files.length, 3);
  t.deepEqual(files.flatMap((x) => Array.from(readShard(x))), toks);
  fs.writeFileSync(path.join(dir, 'trunc.bin'), buf.subarray(0, buf.length - 10));
  t.throws(() => readShard(path.join(dir, 'trunc.bin')), { message: /trunc\.bin is truncated: the header says 1001 tokens \(3026 bytes\) but the file has 3016 bytes/ });
  const bad = Buffer.from(buf); bad.writeInt32LE(7, 0);
  fs.writeFileSync(path.join(dir, 'bad.bin'), bad);
  t.throws(() => readShard(path.join(dir, 'bad.bin')), { message: /bad\.bin has magic 7, expected 20240520/ });
  fs.writeFileSync(path.join(dir, 'tiny.bin'), Buffer.alloc(10));
  t.throws(() => readShard(path.join(dir, 'tiny.bin')), { message: /shorter than the 1024-byte header/ });
  t.throws(() => writeShard(path.join(dir, 'x.bin'), [70000]), { instanceOf: RangeError });
});

test('packing: documents joined with end-of-text, every k-th fragment held out for validation', async (t) => {
  const dir = tmp();
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const docs = ['first doc.', 'second document here', 'third', 'fourth one', 'fifth'];
  docs.forEach((d, i) => fs.writeFileSync(path.join(src, `d${i}.txt`), d));
  const r = await prepareData({ input: src, out: path.join(dir, 'data'), valFraction: 0.5, tokenizer: byteTokenizer });
  t.is(r.documents, 5);
  const trainToks = r.trainFiles.flatMap((f) => Array.from(readShard(f)));
  const valToks = r.valFiles.flatMap((f) => Array.from(readShard(f)));
  const expectTrain = [0, 2, 4].flatMap((i) => [...Buffer.from(docs[i]), 50256]);
  const expectVal = [1, 3].flatMap((i) => [...Buffer.from(docs[i]), 50256]);
  t.deepEqual(trainToks, expectTrain);
  t.deepEqual(valToks, expectVal);
});

test('sampling: every window once per epoch, a new order next epoch, and an exact restore', (t) => {
  const dir = tmp();
  const T = 4;
  // two shards whose windows are recognisable: window w starts with token 1000 + w
  const mk = (base, n) => { const a = []; for (let w = 0; w < n; w++) a.push(base + w, 1, 2, 3); a.push(9); return a; };
  writeShard(path.join(dir, 's_000000.bin'), mk(1000, 13));
  writeShard(path.join(dir, 's_000001.bin'), mk(2000, 8));
  const files = [path.join(dir, 's_000000.bin'), path.join(dir, 's_000001.bin')];
  const loader = new ShardLoader(files, T, 7);
  t.is(loader.windows, 21);
  const draw = (n) => { const b = loader.next(n); const firsts = []; for (let i = 0; i < n; i++) firsts.push(b.x[i * T]); return { firsts, b }; };
  const epoch1 = [...draw(7).firsts, ...draw(7).firsts, ...draw(7).firsts];
  t.deepEqual([...epoch1].sort(), [...Array(13).keys()].map((w) => 1000 + w).concat([...Array(8).keys()].map((w) => 2000 + w)).sort());
  const { firsts, b } = draw(5);
  // targets are inputs shifted by one
  t.deepEqual(Array.from(b.y.subarray(0, 3)), Array.from(b.x.subarray(1, 4)));
  const saved = loader.state();
  const next1 = draw(9).firsts;
  const other = new ShardLoader(files, T, 7);
  other.restore(saved);
  const b2 = other.next(9);
  t.deepEqual(Array.from({ length: 9 }, (_, i) => b2.x[i * T]), next1);
  const epoch2start = [...firsts, ...next1];
  t.notDeepEqual(epoch2start, epoch1.slice(0, 14), 'the second epoch is reshuffled');
});

function corpus(dir) {
  // eight chapters as eight documents: with valFraction 0.25 two of them are held out
  const d = path.join(dir, 'moby');
  fs.mkdirSync(d);
  mobyChapters(8).forEach((text, i) => fs.writeFileSync(path.join(d, `ch${i}.txt`), text));
  return d;
}

const tiny = { valFraction: 0.25, nLayer: 2, nHead: 2, nEmbd: 32, seq: 32, batch: 2, lr: 3e-3, warmup: 2, evalEvery: 0, sampleTokens: 0, quiet: true, tokenizer: byteTokenizer, threads: 2 };

test('exact resume: 12 steps straight and 6 + resume to 12 give bitwise-identical weights (with dropout)', async (t) => {
  const dir = tmp();
  const data = corpus(dir);
  const opts = { ...tiny, data, steps: 12, dropout: 0.1, gradAccum: 2, batchWarmupTokens: 400, batchWarmupStart: 1 };
  const a = await train({ ...opts, out: path.join(dir, 'straight') });
  const b1 = await train({ ...opts, out: path.join(dir, 'resumed'), stopAfter: 6 });
  t.is(b1.steps, 6);
  const b2 = await train({ resume: path.join(dir, 'resumed'), tokenizer: byteTokenizer, quiet: true });
  t.is(b2.steps, 12);
  const wa = fs.readFileSync(path.join(dir, 'straight', 'model.safetensors'));
  const wb = fs.readFileSync(path.join(dir, 'resumed', 'model.safetensors'));
  t.true(wa.equals(wb), 'model.safetensors identical byte for byte');
  const oa = fs.readFileSync(path.join(dir, 'straight', 'checkpoint', 'optimizer.safetensors'));
  const ob = fs.readFileSync(path.join(dir, 'resumed', 'checkpoint', 'optimizer.safetensors'));
  t.true(oa.equals(ob), 'optimizer moments identical');
  const lines = fs.readFileSync(path.join(dir, 'resumed', 'metrics.jsonl'), 'utf8').trim().split('\n').map(JSON.parse);
  t.deepEqual(lines.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const la = fs.readFileSync(path.join(dir, 'straight', 'metrics.jsonl'), 'utf8').trim().split('\n').map(JSON.parse);
  t.deepEqual(lines.map((r) => r.loss), la.map((r) => r.loss));
  const seqs = la.map((r) => r.batchSeqs);
  t.is(seqs[0], 1, 'the batch starts small (GPT-3 batch-size warmup)');
  t.true(seqs.includes(2) && seqs[11] === 4, `grows to the full batch: ${seqs}`);
  for (let i = 1; i < seqs.length; i++) t.true(seqs[i] >= seqs[i - 1]);
});

test('exact resume with precision bf16 (bf16 weight copy and, where the processor has it, bf16 arithmetic)', async (t) => {
  const dir = tmp();
  const data = corpus(dir);
  const opts = { ...tiny, data, steps: 8, precision: 'bf16', gradAccum: 2 };
  const a = await train({ ...opts, out: path.join(dir, 'straight') });
  await train({ ...opts, out: path.join(dir, 'resumed'), stopAfter: 4 });
  const b = await train({ resume: path.join(dir, 'resumed'), tokenizer: byteTokenizer, quiet: true });
  t.is(b.steps, 8);
  t.is(b.model.precision, 'bf16', 'the run resumes in bf16');
  const wa = fs.readFileSync(path.join(dir, 'straight', 'model.safetensors'));
  const wb = fs.readFileSync(path.join(dir, 'resumed', 'model.safetensors'));
  t.true(wa.equals(wb), 'model.safetensors identical byte for byte');
  const la = fs.readFileSync(path.join(dir, 'straight', 'metrics.jsonl'), 'utf8').trim().split('\n').map(JSON.parse);
  t.true(la[7].loss < la[0].loss, `bf16 training lowers the loss: ${la[0].loss} -> ${la[7].loss}`);
  t.is(a.model.precision, 'bf16');
});

test('training lowers the validation loss by well over a nat and the checkpoint loads', async (t) => {
  const dir = tmp();
  const data = corpus(dir);
  const r = await train({ ...tiny, data, steps: 40, evalEvery: 20, evalBatches: 4, out: path.join(dir, 'run'), sampleTokens: 8 });
  t.true(r.firstValLoss - r.valLoss > 1.5, `validation loss ${r.firstValLoss} -> ${r.valLoss}`);
  const m = await GPT.load(path.join(dir, 'run'));
  t.is(m.config.n_layer, 2);
  t.deepEqual(m.parameters().get('wte.weight').data, r.model.parameters().get('wte.weight').data);
  t.is(typeof r.sample, 'string');
  const svg = fs.readFileSync(path.join(dir, 'run', 'loss.svg'), 'utf8');
  t.regex(svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.regex(svg, /<path d="M/);
  const recs = fs.readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map(JSON.parse);
  t.true(recs.filter((x) => x.valLoss !== undefined).length >= 3);
  for (const k of ['step', 'loss', 'lr', 'tokensPerSec']) t.true(k in recs[recs.length - 1], k);
});

test('an interrupted checkpoint save loses nothing, whichever stage it stops at', async (t) => {
  const dir = tmp();
  const m = GPT.create({ variant: 'gpt2', n_layer: 1, n_head: 2, n_embd: 16, vocab_size: 50, n_positions: 8 }, { seed: 2 });
  const opt = new AdamW(m, { lr: 1e-3 });
  const st = (step) => ({ version: 1, step, tokensSeen: 0, optimizer: opt.state(), dropoutSeed: 1, dropoutStep: 0, loader: null, options: {}, dataDir: null, trainFiles: [], valFiles: [] });
  await saveCheckpoint(dir, m, opt, st(1));
  const before = m.parameters().get('wte.weight').data.slice();
  for (const stage of ['tmp-written', 'old-moved', 'swapped']) {
    m.parameters().get('wte.weight').data[0] += 1; // the weights change between saves
    const e = await t.throwsAsync(saveCheckpoint(dir, m, opt, st(2), stage));
    t.regex(e.message, /simulated failure/);
    const ck = await loadCheckpoint(dir);
    t.true(ck.state.step === 1 || ck.state.step === 2, stage);
    const w = ck.model.parameters().get('wte.weight').data;
    if (ck.state.step === 1) t.deepEqual(w, before); else t.is(w[0], m.parameters().get('wte.weight').data[0]);
    const top = await GPT.load(dir); // the run folder itself always loads
    t.is(top.config.n_layer, 1);
    await saveCheckpoint(dir, m, opt, st(1)); // a complete save repairs everything
    before.set(m.parameters().get('wte.weight').data);
  }
  t.false(fs.existsSync(path.join(dir, 'checkpoint.tmp')));
  t.false(fs.existsSync(path.join(dir, 'checkpoint.old')));
});

test('bad input: missing data path, empty corpus, corrupt shard, too little text', async (t) => {
  const dir = tmp();
  await t.throwsAsync(train({ ...tiny, steps: 1, data: path.join(dir, 'nope'), out: path.join(dir, 'o1') }), { message: /Data path .*nope does not exist/ });
  fs.mkdirSync(path.join(dir, 'empty'));
  await t.throwsAsync(train({ ...tiny, steps: 1, data: path.join(dir, 'empty'), out: path.join(dir, 'o2') }), { message: /No files under .*empty: the corpus is empty/ });
  fs.writeFileSync(path.join(dir, 'blank.txt'), '');
  await t.throwsAsync(train({ ...tiny, steps: 1, data: path.join(dir, 'blank.txt'), out: path.join(dir, 'o3') }), { message: /is empty: no text to train on/ });
  fs.mkdirSync(path.join(dir, 'shards'));
  fs.writeFileSync(path.join(dir, 'shards', 'x_train_000000.bin'), Buffer.alloc(2000, 1));
  await t.throwsAsync(train({ ...tiny, steps: 1, data: path.join(dir, 'shards'), out: path.join(dir, 'o4') }), { message: /x_train_000000\.bin has magic \d+, expected 20240520: not an llm\.c token shard/ });
  fs.writeFileSync(path.join(dir, 'short.txt'), 'hi');
  await t.throwsAsync(train({ ...tiny, steps: 1, data: path.join(dir, 'short.txt'), valFraction: 0, out: path.join(dir, 'o5') }), { message: /fewer than one sequence of 33/ });
  await t.throwsAsync(train({ ...tiny, steps: -1, out: path.join(dir, 'o6') }), { instanceOf: RangeError, message: /for steps but received -1/ });
});

test('command line: unknown and malformed options exit with status 2 and a clear message', (t) => {
  const cli = path.join(__dirname, '..', 'dist', 'train.js');
  const r1 = spawnSync(process.execPath, [cli, '--bogus', '3'], { encoding: 'utf8' });
  t.is(r1.status, 2);
  t.regex(r1.stderr, /Unknown option --bogus/);
  const r2 = spawnSync(process.execPath, [cli, '--steps', 'ten'], { encoding: 'utf8' });
  t.is(r2.status, 2);
  t.regex(r2.stderr, /Expected an integer for --steps but received "ten"/);
  const r3 = spawnSync(process.execPath, [path.join(__dirname, '..', 'dist', 'cli.js'), 'train', '--decay', 'exp'], { encoding: 'utf8' });
  t.is(r3.status, 2);
  t.regex(r3.stderr, /Expected cosine or linear for --decay/);
  const help = execFileSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  t.regex(help, /--batch-warmup-tokens/);
  t.regex(help, /--resume/);
});

test('gpt-native data prepare writes train and validation shards with GPT-2 tokens', (t) => {
  const dir = tmp();
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  mobyChapters(6).forEach((text, i) => fs.writeFileSync(path.join(src, `c${i}.txt`), text));
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', 'dist', 'cli.js'), 'data', 'prepare', '--in', src, '--out', path.join(dir, 'shards'), '--val-fraction', '0.34', '--json'], { encoding: 'utf8' });
  const r = JSON.parse(out.trim().split('\n').pop());
  t.is(r.documents, 6);
  t.is(r.trainFiles.length, 1);
  t.is(r.valFiles.length, 1);
  const toks = readShard(r.trainFiles[0]);
  t.is(toks.length, r.trainTokens);
  const { Tokenizer } = require('../dist');
  const tok = Tokenizer.gpt2();
  const first = mobyChapters(1)[0];
  t.deepEqual(Array.from(toks.subarray(0, 50)), tok.encode(first).slice(0, 50), 'GPT-2 ids of the first document');
  t.is(toks.filter((x) => x === 50256).length, 4, 'one end-of-text after each of the four training documents');
});

// `bench train` times what train() runs (the loss with its logits' gradient in one pass, the clip folded into AdamW)
test('bench train prints a step time, tokens/s and the phases, and rejects a bad device', (t) => {
  const cli = path.join(__dirname, '..', 'dist', 'cli.js');
  const out = execFileSync(process.execPath, [cli, 'bench', 'train', '--preset', 'small6', '--batch', '1', '--seq', '16',
    '--steps', '2', '--warmup', '0', '--threads', '1', '--json'], { encoding: 'utf8' });
  const r = JSON.parse(out.trim().split('\n').pop());
  t.is(r.preset, 'small6');
  t.true(r.msPerStep > 0 && Number.isFinite(r.msPerStep), `${r.msPerStep}`);
  t.true(Math.abs(r.tokensPerSec - 16 / (r.msPerStep / 1000)) < 1e-6 * r.tokensPerSec, `${r.tokensPerSec} tokens/s at ${r.msPerStep} ms`);
  for (const k of ['forward', 'backward', 'optimizer']) t.true(r.phasesMs[k] > 0, `phase ${k}: ${r.phasesMs[k]}`);
  const bad = spawnSync(process.execPath, [cli, 'bench', 'train', '--device', 'tpu'], { encoding: 'utf8' });
  t.not(bad.status, 0);
  t.regex(bad.stderr + bad.stdout, /Expected cpu or cuda for --device but received "tpu"/);
  // the benchmarks' own shapes beside the paper presets: 'tiny' (smoke runs; gpu-check's dry run) and 'small6'
  const { benchPreset } = require('../dist/bench/timing');
  t.like(benchPreset('tiny'), { variant: 'gpt2', n_layer: 2, n_head: 2, n_embd: 128, vocab_size: 1000 });
  t.like(benchPreset('small6'), { n_layer: 6, n_embd: 384, vocab_size: 50257 });
  t.is(benchPreset('gpt2-medium').n_layer, 24);
  const unknown = spawnSync(process.execPath, [cli, 'bench', 'generate', '--preset', 'gpt2-huge'], { encoding: 'utf8' });
  t.not(unknown.status, 0);
  t.regex(unknown.stderr + unknown.stdout, /received "gpt2-huge" \(or small6 or tiny\)/);
});
