#!/usr/bin/env node
/**
 * Pre-training, the way GPT-1/2/3 were trained: packed documents with end-of-text separators, batches drawn
 * without replacement, AdamW (β1 0.9, β2 0.95, ε 1e-8) with decoupled weight decay on 2-D tensors, global
 * gradient-norm clipping, linear warmup then cosine decay to a floor, GPT-3's batch-size warmup, gradient
 * accumulation, dropout, periodic validation and checkpoints, exact resume.
 *
 * `train(options)` is the library entry; `node dist/train.js [--options]` and `gpt-native train` run it as a
 * command. With no options it trains a small GPT-2 on the built-in public-domain corpus in a few minutes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { backendOf, checkPrecision, Device, Precision } from './backend';
import { GPT } from './nn/gpt';
import { AdamW, batchSizeAt, learningRate } from './optim';
import { GPTConfig, getPreset, Variant } from './config';
import { native } from './native';
import { checkNumber, typeError } from './errors';
import { prepareData, defaultTokenizer, Encoder } from './data/prepare';
import { listFiles } from './data/corpus';
import { ShardLoader, validationBatches, LoaderState } from './data/loader';
import { saveCheckpoint, loadCheckpoint, TrainState, SaveStage } from './train/checkpoint';
import { lossSvg } from './train/plot';
import { helpText, parseArgs, OptionSpecs, UsageError } from './cli/args';
import { generate, GenerationTokenizer } from './generate';

/** Options of train(); every one has a default. */
export interface TrainOptions {
  /** Text files, folders, .jsonl, or .bin token shards; default: the built-in corpus. */
  data?: string | string[];
  /** Run folder: checkpoints, metrics.jsonl, loss.svg, prepared shards (default 'out'). */
  out?: string;
  /** Resume from a run folder (restores weights, moments, step, schedule, generators, data position). */
  resume?: string;
  preset?: string;
  variant?: Variant;
  nLayer?: number;
  nHead?: number;
  nEmbd?: number;
  /** Sequence length T. */
  seq?: number;
  /** Sequences per micro-batch. */
  batch?: number;
  /** Micro-batches per optimizer step. */
  gradAccum?: number;
  steps?: number;
  /** Stop (with a checkpoint) after this step, keeping the schedule of `steps` (for time-limited jobs). */
  stopAfter?: number;
  lr?: number;
  warmup?: number;
  /** Floor of the decay as a fraction of lr: 0.1 (GPT-3) or 0 (GPT-1). */
  minLrRatio?: number;
  decay?: 'cosine' | 'linear';
  weightDecay?: number;
  /** Global gradient-norm clip (0 = off). */
  clip?: number;
  dropout?: number;
  /** GPT-3 batch-size warmup: tokens over which the batch grows from batchWarmupStart sequences to full. */
  batchWarmupTokens?: number;
  batchWarmupStart?: number;
  seed?: number;
  /** Validation every N steps (0 = never). */
  evalEvery?: number;
  evalBatches?: number;
  /** Checkpoint every N steps (0 = only at the end). */
  saveEvery?: number;
  valFraction?: number;
  threads?: number;
  /** Where the arithmetic runs: 'cpu' (default) or 'cuda'. */
  device?: Device;
  /** 'fp32' (default) or 'bf16': products from a bf16 copy of the weights (cuda: bf16 activations and tensor cores too); fp32 weights, gradients, moments. */
  precision?: Precision;
  /** Tokens of sample text generated at the end (0 = none). */
  sampleTokens?: number;
  /** JSON lines on stdout instead of a progress bar (default when stdout is not a terminal). */
  json?: boolean;
  /** No console output at all (records still go to metrics.jsonl and onStep). */
  quiet?: boolean;
  onStep?: (record: StepRecord) => void;
  /** Tokenizer for text data (default GPT-2's). */
  tokenizer?: Encoder & { decode?(ids: number[]): string };
}

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  batchSeqs: number;
  tokensSeen: number;
  elapsedSec: number;
  valLoss?: number;
}

export interface TrainResult {
  out: string;
  steps: number;
  finalLoss: number;
  valLoss: number | null;
  firstValLoss: number | null;
  sample: string | null;
  model: GPT;
}

const DEFAULTS = {
  out: 'out', variant: 'gpt2' as Variant, nLayer: 4, nHead: 4, nEmbd: 256, seq: 256, batch: 8, gradAccum: 1, steps: 200,
  lr: 1e-3, warmup: 20, minLrRatio: 0.1, decay: 'cosine' as const, weightDecay: 0.1, clip: 1.0, dropout: 0,
  batchWarmupTokens: 0, batchWarmupStart: 1, seed: 1, evalEvery: 20, evalBatches: 8, saveEvery: 0, valFraction: 0.05,
  sampleTokens: 64,
};

type Resolved = typeof DEFAULTS & TrainOptions;

function validate(o: Resolved): void {
  const int = (k: keyof Resolved, min: number) => checkNumber(o[k], k as string, min, Number.MAX_SAFE_INTEGER, true);
  int('seq', 1); int('batch', 1); int('gradAccum', 1); int('steps', 1); int('warmup', 0); int('seed', 0);
  int('evalEvery', 0); int('evalBatches', 1); int('saveEvery', 0); int('batchWarmupTokens', 0); int('batchWarmupStart', 1);
  int('sampleTokens', 0);
  if (o.stopAfter !== undefined) int('stopAfter', 1);
  checkNumber(o.lr, 'lr', 0, 10);
  checkNumber(o.minLrRatio, 'minLrRatio', 0, 1);
  checkNumber(o.weightDecay, 'weightDecay', 0);
  checkNumber(o.clip, 'clip', 0);
  checkNumber(o.dropout, 'dropout', 0, 0.99);
  if (o.decay !== 'cosine' && o.decay !== 'linear') throw typeError("'cosine' or 'linear'", 'decay', o.decay);
  if (o.threads !== undefined) int('threads', 1);
  checkPrecision(o.precision);
  backendOf(o.device ?? 'cpu'); // a clear error for an unknown or unavailable device
}

function modelConfig(o: Resolved): GPTConfig {
  const base: GPTConfig = o.preset ? getPreset(o.preset) : {
    variant: o.variant, n_layer: o.nLayer, n_head: o.nHead, n_embd: o.nEmbd, vocab_size: 50257, n_positions: o.seq,
  };
  if (o.preset) {
    if (o.nLayer !== DEFAULTS.nLayer) base.n_layer = o.nLayer;
    if (o.nHead !== DEFAULTS.nHead) base.n_head = o.nHead;
    if (o.nEmbd !== DEFAULTS.nEmbd) base.n_embd = o.nEmbd;
  }
  if (o.seq > base.n_positions) throw new RangeError(`Expected seq <= n_positions (${base.n_positions}) for seq but received ${o.seq}`);
  base.embd_pdrop = base.resid_pdrop = base.attn_pdrop = o.dropout;
  return base;
}

/** Text data is tokenized into shards under `out/data`; .bin shards are used as they are. */
async function resolveData(o: Resolved, log: (s: string) => void): Promise<{ dataDir: string | null; trainFiles: string[]; valFiles: string[] }> {
  const inputs = o.data === undefined ? null : Array.isArray(o.data) ? o.data : [o.data];
  if (inputs && inputs.length === 0) throw new Error('No data given: pass --data PATH (text files, folders, or .bin shards)');
  if (inputs) {
    const files = listFiles(inputs);
    if (files.length === 0) throw new Error(`No files under ${inputs.join(', ')}: the corpus is empty`);
    if (files.every((f) => f.endsWith('.bin'))) {
      const val = files.filter((f) => /(^|[_/\\-])val[_.-]/.test(path.basename(f)) || /_val_/.test(f));
      const train = files.filter((f) => !val.includes(f));
      if (train.length === 0) throw new Error(`Only validation shards under ${inputs.join(', ')}; training needs *_train_*.bin shards`);
      return { dataDir: null, trainFiles: train, valFiles: val };
    }
  }
  const dataDir = path.join(o.out, 'data');
  const t0 = Date.now();
  const tty = !o.quiet && !o.json && process.stderr.isTTY;
  const prepared = await prepareData({
    input: inputs ?? undefined, out: dataDir, valFraction: o.valFraction, tokenizer: o.tokenizer,
    onProgress: tty ? (p) => process.stderr.write(`\rtokenizing: ${(p.bytes / 1e6).toFixed(1)} MB, ${p.tokens} tokens, ${p.documents} documents`) : undefined,
  });
  if (tty) process.stderr.write('\n');
  log(`data: ${prepared.documents} documents, ${prepared.trainTokens} train + ${prepared.valTokens} validation tokens (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return { dataDir, trainFiles: prepared.trainFiles, valFiles: prepared.valFiles };
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60), sec = Math.round(s % 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/** Mean validation loss over the fixed validation batches. */
function validationLoss(model: GPT, valFiles: string[], T: number, B: number, maxBatches: number): number | null {
  if (valFiles.length === 0) return null;
  const was = model.training;
  model.eval();
  let sum = 0, n = 0;
  for (const b of validationBatches(valFiles, T, B, maxBatches)) {
    sum += model.loss(b.x, b.y, { shape: [b.B, b.T] }) * b.B;
    n += b.B;
  }
  model.train(was);
  return n > 0 ? sum / n : null;
}

/**
 * Trains a GPT. Example: `await train({ steps: 100, out: 'runs/demo' })`, or
 * `await train({ data: 'my-texts/', preset: 'gpt2-small', seq: 512, batch: 4, gradAccum: 8 })`.
 */
export async function train(options: TrainOptions = {}): Promise<TrainResult> {
  if (!options || typeof options !== 'object') throw typeError('an options object', 'options', options);
  let o: Resolved = { ...DEFAULTS, ...stripUndefined(options) } as Resolved;
  const out = (msg: string) => { if (!o.quiet) (o.json ? process.stderr : process.stdout).write(msg + '\n'); };
  let model: GPT;
  let opt: AdamW;
  let state: TrainState | null = null;
  let m: Float32Array | null = null, v: Float32Array | null = null;
  if (o.resume) {
    const ck = await loadCheckpoint(o.resume);
    state = ck.state;
    // the run's own options, with what this call sets explicitly on top (e.g. more steps)
    o = { ...DEFAULTS, ...(state.options as TrainOptions), ...stripUndefined(options), resume: o.resume } as Resolved;
    if (options.out === undefined) o.out = o.resume!;
    model = ck.model;
    m = ck.m; v = ck.v;
    out(`resuming from ${ck.path} at step ${state.step}`);
  }
  validate(o);
  if (o.threads !== undefined) native.setThreads(o.threads);
  fs.mkdirSync(o.out, { recursive: true });
  const data = state ? { dataDir: state.dataDir, trainFiles: state.trainFiles, valFiles: state.valFiles } : await resolveData(o, out);
  if (!state) model = GPT.create(modelConfig(o), { seed: o.seed, device: o.device, precision: o.precision });
  else model!.to(o.device ?? 'cpu', { precision: o.precision });
  model = model!;
  model.train();
  opt = new AdamW(model, { lr: o.lr, betas: [0.9, 0.95], eps: 1e-8, weightDecay: o.weightDecay });
  const T = o.seq, B = o.batch;
  const loader = new ShardLoader(data.trainFiles, T, o.seed);
  let step = 0, tokensSeen = 0;
  if (state) {
    opt.restore(state.optimizer, m!, v!);
    loader.restore(state.loader as LoaderState);
    model.dropoutSeed = state.dropoutSeed;
    model.dropoutStep = state.dropoutStep;
    step = state.step;
    tokensSeen = state.tokensSeen;
  } else {
    model.dropoutSeed = o.seed;
  }
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  const history: StepRecord[] = [];
  if (state && fs.existsSync(metricsFile)) {
    for (const line of fs.readFileSync(metricsFile, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try { const r = JSON.parse(line) as StepRecord; if (r.step <= step) history.push(r); } catch { /* skip a torn line */ }
    }
  }
  fs.writeFileSync(metricsFile, history.map((r) => JSON.stringify(r) + '\n').join(''));
  const jsonOut = o.json ?? !process.stdout.isTTY;
  const bar = !o.quiet && !jsonOut && process.stderr.isTTY;
  if (!state) {
    out(`model: ${model.config.variant} ${model.config.n_layer} layers × ${model.config.n_embd} (${(model.numParameters() / 1e6).toFixed(2)}M parameters), ` +
      `T=${T}, batch ${B}×${o.gradAccum}, ${o.steps} steps, lr ${o.lr}, ${model.device === 'cuda' ? `cuda (${model.precision})` : `${native.threads()} threads`}`);
  }
  const fullSeqs = B * o.gradAccum;
  const stopAt = Math.min(o.steps, o.stopAfter ?? o.steps);
  const trainStart = Date.now();
  let lastLoss = NaN, lastVal: number | null = null, firstVal: number | null = null;
  for (const r of history) if (r.valLoss !== undefined) { firstVal ??= r.valLoss; lastVal = r.valLoss; }
  if (firstVal === null && o.evalEvery > 0 && step === 0) {
    firstVal = validationLoss(model, data.valFiles, T, B, o.evalBatches);
    lastVal = firstVal;
    if (firstVal !== null) {
      const r0 = { step: 0, loss: NaN, lr: 0, gradNorm: 0, tokensPerSec: 0, batchSeqs: 0, tokensSeen: 0, elapsedSec: 0, valLoss: firstVal };
      history.push(r0);
      fs.appendFileSync(metricsFile, JSON.stringify(r0) + '\n');
      if (jsonOut && !o.quiet) process.stdout.write(JSON.stringify(r0) + '\n');
    }
  }
  const buildState = (): TrainState => ({
    version: 1, step, tokensSeen, optimizer: opt.state(), dropoutSeed: model.dropoutSeed, dropoutStep: model.dropoutStep,
    loader: loader.state(), options: serializable(o), dataDir: data.dataDir, trainFiles: data.trainFiles, valFiles: data.valFiles,
  });
  const writePlot = () => fs.writeFileSync(path.join(o.out, 'loss.svg'), lossSvg(
    history.filter((r) => Number.isFinite(r.loss)).map((r) => [r.step, r.loss]),
    history.filter((r) => r.valLoss !== undefined).map((r) => [r.step, r.valLoss!])));
  while (step < stopAt) {
    const t0 = performance.now();
    opt.lr = learningRate(step, { lr: o.lr, warmup: o.warmup, totalSteps: o.steps, minLrRatio: o.minLrRatio, decay: o.decay });
    let seqs = fullSeqs;
    if (o.batchWarmupTokens > 0) {
      seqs = batchSizeAt(tokensSeen, { start: o.batchWarmupStart * T, full: fullSeqs * T, rampTokens: o.batchWarmupTokens, seq: T });
      if (seqs >= B) seqs -= seqs % B; // whole micro-batches once the batch reaches B: one activation shape
    }
    let loss = 0;
    for (let done = 0; done < seqs;) {
      const b = Math.min(B, seqs - done);
      const batch = loader.next(b);
      loss += model.loss(batch.x, batch.y, { shape: [b, T], gradient: true }) * (b / seqs);
      model.backward(b / seqs);
      done += b;
    }
    // clipping fused into the AdamW pass: the same coefficient as model.clipGradNorm, without rewriting grads
    const gradNorm = model.gradNorm();
    opt.step(o.clip > 0 ? Math.min(1, o.clip / (gradNorm + 1e-6)) : 1);
    model.zeroGrad();
    step++;
    tokensSeen += seqs * T;
    const dt = (performance.now() - t0) / 1000;
    lastLoss = loss;
    const rec: StepRecord = { step, loss, lr: opt.lr, gradNorm, tokensPerSec: (seqs * T) / dt, batchSeqs: seqs, tokensSeen, elapsedSec: (Date.now() - trainStart) / 1000 };
    if (o.evalEvery > 0 && (step % o.evalEvery === 0 || step === o.steps)) {
      const vl = validationLoss(model, data.valFiles, T, B, o.evalBatches);
      if (vl !== null) { rec.valLoss = vl; lastVal = vl; firstVal ??= vl; }
    }
    history.push(rec);
    fs.appendFileSync(metricsFile, JSON.stringify(rec) + '\n');
    o.onStep?.(rec);
    if (jsonOut && !o.quiet) process.stdout.write(JSON.stringify(rec) + '\n');
    else if (bar) {
      const frac = step / o.steps, width = 24;
      const filled = Math.round(frac * width);
      const eta = ((Date.now() - trainStart) / 1000 / Math.max(1, step - (history[0]?.step ?? 0))) * (stopAt - step);
      process.stderr.write(`\rstep ${String(step).padStart(String(o.steps).length)}/${o.steps} [${'█'.repeat(filled)}${' '.repeat(width - filled)}] ` +
        `loss ${loss.toFixed(4)}${lastVal !== null ? ` val ${lastVal.toFixed(4)}` : ''} lr ${opt.lr.toExponential(2)} ${Math.round(rec.tokensPerSec)} tok/s ETA ${fmtTime(eta)}   `);
    } else if (!o.quiet && (step % 10 === 0 || rec.valLoss !== undefined || step === stopAt)) {
      out(`step ${step}/${o.steps} loss ${loss.toFixed(4)}${rec.valLoss !== undefined ? ` val ${rec.valLoss.toFixed(4)}` : ''} lr ${opt.lr.toExponential(2)} ${Math.round(rec.tokensPerSec)} tok/s`);
    }
    if (rec.valLoss !== undefined) writePlot();
    if (o.saveEvery > 0 && step % o.saveEvery === 0 && step < stopAt) await saveCheckpoint(o.out, model, opt, buildState());
  }
  if (bar) process.stderr.write('\n');
  await saveCheckpoint(o.out, model, opt, buildState());
  writePlot();
  let sample: string | null = null;
  if (o.sampleTokens > 0 && step >= o.steps) {
    let tok = o.tokenizer as (Encoder & { decode?(ids: number[]): string; createDecoder?(): { push(id: number): string; flush(): string } }) | undefined;
    try { tok ??= defaultTokenizer(); } catch { /* no tokenizer: token ids only */ }
    const eot = tok?.eotToken ?? 50256;
    const prompt = tok ? [eot, ...tok.encode('The')] : [eot];
    const r = await generate({ model, prompt, maxNewTokens: o.sampleTokens, temperature: 0.8, topK: 40, seed: o.seed, stopAtEos: false,
      tokenizer: tok?.decode && tok.createDecoder ? (tok as unknown as GenerationTokenizer) : undefined });
    sample = r.text !== undefined ? 'The' + r.text : r.tokens.join(' ');
    out(`\nsample:\n${sample}\n`);
  }
  out(`checkpoint: ${o.out} (load with GPT.load(${JSON.stringify(o.out)}))`);
  return { out: o.out, steps: step, finalLoss: lastLoss, valLoss: lastVal, firstValLoss: firstVal, sample, model };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function serializable(o: Resolved): Record<string, unknown> {
  const { onStep, tokenizer, resume, stopAfter, ...rest } = o;
  void onStep; void tokenizer; void resume; void stopAfter;
  return rest as Record<string, unknown>;
}

// ------------------------------------------------------------------------------------------------ CLI
const specs: OptionSpecs = {
  data: { kind: 'string', help: 'text file, folder, .jsonl or .bin shards (default: built-in corpus)' },
  preset: { kind: 'string', help: 'model preset, e.g. gpt2-small (default: a small GPT-2)' },
  variant: { kind: 'string', help: 'gpt1 | gpt2 | gpt3 (without --preset)' },
  'n-layer': { kind: 'int', help: `layers (default ${DEFAULTS.nLayer})` },
  'n-head': { kind: 'int', help: `heads (default ${DEFAULTS.nHead})` },
  'n-embd': { kind: 'int', help: `width (default ${DEFAULTS.nEmbd})` },
  seq: { kind: 'int', help: `sequence length (default ${DEFAULTS.seq})` },
  batch: { kind: 'int', help: `sequences per micro-batch (default ${DEFAULTS.batch})` },
  'grad-accum': { kind: 'int', help: 'micro-batches per step (default 1)' },
  steps: { kind: 'int', help: `optimizer steps (default ${DEFAULTS.steps})` },
  'stop-after': { kind: 'int', help: 'stop with a checkpoint after this step, keeping the schedule of --steps' },
  lr: { kind: 'number', help: `peak learning rate (default ${DEFAULTS.lr})` },
  warmup: { kind: 'int', help: `warmup steps (default ${DEFAULTS.warmup})` },
  'min-lr-ratio': { kind: 'number', help: 'decay floor as a fraction of lr: 0.1 GPT-3, 0 GPT-1 (default 0.1)' },
  decay: { kind: 'string', help: 'cosine | linear (default cosine)' },
  'weight-decay': { kind: 'number', help: 'decoupled weight decay on 2-D tensors (default 0.1)' },
  clip: { kind: 'number', help: 'global gradient-norm clip, 0 = off (default 1.0)' },
  dropout: { kind: 'number', help: 'dropout on embeddings, residuals and attention (default 0)' },
  'batch-warmup-tokens': { kind: 'int', help: 'GPT-3 batch-size warmup over this many tokens (default 0 = off)' },
  'batch-warmup-start': { kind: 'int', help: 'sequences per step at the start of the batch warmup (default 1)' },
  seed: { kind: 'int', help: 'seed of initialisation, data order and dropout (default 1)' },
  'eval-every': { kind: 'int', help: 'validation every N steps, 0 = never (default 20)' },
  'eval-batches': { kind: 'int', help: 'validation batches (default 8)' },
  'save-every': { kind: 'int', help: 'checkpoint every N steps, 0 = only at the end (default 0)' },
  'val-fraction': { kind: 'number', help: 'held-out fraction of text for validation (default 0.05)' },
  'sample-tokens': { kind: 'int', help: 'tokens of sample text at the end (default 64)' },
  out: { kind: 'string', help: 'run folder (default out)' },
  resume: { kind: 'string', help: 'resume from a run folder' },
  threads: { kind: 'int', help: 'CPU threads (default GPT_NATIVE_THREADS or all cores)' },
  device: { kind: 'string', help: 'cpu | cuda (default cpu)' },
  precision: { kind: 'string', help: 'fp32 | bf16 (matrix products in bf16 from a bf16 copy of the fp32 weights, fp32 sums; default fp32)' },
  json: { kind: 'boolean', help: 'one JSON object per step on stdout' },
  quiet: { kind: 'boolean', help: 'no console output' },
  help: { kind: 'boolean', help: 'show this help' },
};

/** Parses command-line options into TrainOptions (throws UsageError on bad input). */
export function parseTrainArgs(argv: string[]): TrainOptions | null {
  const a = parseArgs(argv, specs);
  if (a.help) return null;
  if (a._.length) throw new UsageError(`Unexpected argument ${JSON.stringify(a._[0])}; options start with --`);
  const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a)) if (k !== '_' && k !== 'help' && v !== undefined) o[camel(k)] = v;
  if (o.decay !== undefined && o.decay !== 'cosine' && o.decay !== 'linear') throw new UsageError(`Expected cosine or linear for --decay but received ${JSON.stringify(o.decay)}`);
  if (o.variant !== undefined && !['gpt1', 'gpt2', 'gpt3'].includes(o.variant as string)) throw new UsageError(`Expected gpt1, gpt2 or gpt3 for --variant but received ${JSON.stringify(o.variant)}`);
  return o as TrainOptions;
}

/** The command: `node dist/train.js [options]` / `gpt-native train [options]`. */
export async function trainCommand(argv: string[]): Promise<void> {
  const o = parseTrainArgs(argv);
  if (!o) {
    console.log(helpText('node dist/train.js [options]   (or: gpt-native train [options])', specs));
    return;
  }
  await train(o);
}

if (require.main === module) {
  trainCommand(process.argv.slice(2)).catch((err) => {
    console.error(`train: ${(err as Error).message}`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  });
}
