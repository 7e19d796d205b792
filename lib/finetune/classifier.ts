/**
 * GPT-1 fine-tuning: a pre-trained GPT plus a linear head W_y on the final hidden state at the extract token,
 * trained with L3 = L2 + λ·L1 (task cross-entropy plus the auxiliary language-model loss on the same
 * sequences, λ = 0.5 by default). Similarity adds the two orders' hidden states before the head; multiple
 * choice scores every choice with a one-output head and takes a softmax over the choices.
 * `finetune(options)` trains and saves; `Classifier.load(dir).predict(inputs)` gives labels and probabilities.
 */
import * as fs from 'fs';
import * as path from 'path';
import { GPT } from '../nn/gpt';
import { AdamW, learningRate } from '../optim';
import { Rng } from '../random';
import { checkNumber, typeError } from '../errors';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';
import { checkTask, collectLabels, encodeExample, Example, parseExample, readTaskFile, SpecialIds, TaskKind, TaskDataError } from './tasks';

export interface TextEncoder_ {
  encode(text: string): number[];
}

export const SPECIAL_NAMES = ['<|start|>', '<|delim|>', '<|extract|>'];

interface Batch {
  ids: Int32Array;
  targets: Int32Array;
  B: number;
  T: number;
  /** per example: the rows (sequences) that belong to it */
  rows: number[][];
  /** per sequence: index of its extract token (flat position in the B·T grid) */
  extract: number[];
  labels: number[];
  truncated: number;
}

/** A fine-tuned model: GPT + head + label names. */
export class Classifier {
  /** Classifier dropout on the extract hidden state (training only). */
  clfDropout = 0.1;
  training = false;

  constructor(
    readonly model: GPT,
    readonly task: TaskKind,
    readonly labels: string[],
    readonly special: SpecialIds,
    readonly tokenizer: TextEncoder_,
    readonly W: Float32Array, // (C, K) K = labels (multiple choice: 1)
    readonly b: Float32Array, // (K)
  ) {}

  get K(): number {
    return this.b.length;
  }

  /** Creates a head over `model` (which gets three new embedding rows for ⟨s⟩ $ ⟨e⟩). */
  static create(model: GPT, task: TaskKind, labels: string[], tokenizer: TextEncoder_, seed = 1): Classifier {
    checkTask(task);
    if (task !== 'multiple-choice' && labels.length < 2)
      throw new TaskDataError(`Expected at least two labels for a ${task} task but received [${labels.join(', ')}]`);
    const first = model.extendVocab(3, { seed });
    const K = task === 'multiple-choice' ? 1 : labels.length;
    const C = model.config.n_embd;
    const W = new Float32Array(C * K);
    new Rng(seed + 1).fillNormal(W, 0.02);
    return new Classifier(model, task, labels, { start: first, delim: first + 1, extract: first + 2 }, tokenizer, W, new Float32Array(K));
  }

  /** Encodes examples into one padded batch (all their sequences), with LM targets (-1 past each end). */
  batch(examples: Example[]): Batch {
    const maxLen = this.model.config.n_positions;
    const seqs: number[][] = [];
    const rows: number[][] = [];
    let truncated = 0;
    for (const ex of examples) {
      const enc = encodeExample(ex, this.task, (s) => this.tokenizer.encode(s), this.special, maxLen);
      if (enc.truncated) truncated++;
      rows.push(enc.seqs.map((s) => seqs.push(s) - 1));
    }
    const B = seqs.length, T = Math.max(...seqs.map((s) => s.length));
    const ids = new Int32Array(B * T), targets = new Int32Array(B * T).fill(-1);
    const extract: number[] = [];
    seqs.forEach((s, r) => {
      ids.set(s, r * T);
      for (let t = 0; t + 1 < s.length; t++) targets[r * T + t] = s[t + 1];
      extract.push(r * T + s.length - 1);
    });
    return { ids, targets, B, T, rows, extract, labels: examples.map((e) => e.label), truncated };
  }

  /**
   * Forward (and, with `grad`, backward) of L3 = L2 + λ·L1 on a batch. Returns the losses and the class
   * probabilities per example (multiple choice: over its choices).
   */
  step(bt: Batch, lambda: number, grad: { dW: Float32Array; db: Float32Array } | null, rng: Rng | null): { loss: number; taskLoss: number; lmLoss: number; probs: number[][] } {
    const m = this.model;
    const C = m.config.n_embd, K = this.K;
    const lmLoss = m.loss(bt.ids, bt.targets, { shape: [bt.B, bt.T], gradient: grad !== null });
    const H = m.lastHidden();
    const n = bt.rows.length;
    const keep = this.training && this.clfDropout > 0 && rng ? 1 - this.clfDropout : 1;
    const hiddenGrad = grad ? new Float32Array(bt.B * bt.T * C) : null;
    let taskLoss = 0;
    const probs: number[][] = [];
    for (let e = 0; e < n; e++) {
      const rows = bt.rows[e];
      // readouts: one vector per class head input (similarity: the sum of both orders; MC: one per choice)
      const inputs: Float64Array[] = [];
      const masks: Float64Array[] = [];
      const groups = this.task === 'multiple-choice' ? rows.map((r) => [r]) : [rows];
      for (const g of groups) {
        const h = new Float64Array(C);
        for (const r of g) for (let c = 0; c < C; c++) h[c] += H[bt.extract[r] * C + c];
        const mask = new Float64Array(C).fill(1);
        if (keep < 1) for (let c = 0; c < C; c++) { mask[c] = rng!.uniform() < keep ? 1 / keep : 0; h[c] *= mask[c]; }
        inputs.push(h);
        masks.push(mask);
      }
      // scores: classes (K outputs of one input) or choices (1 output of each input)
      const scores: number[] = [];
      if (this.task === 'multiple-choice') {
        for (const h of inputs) { let s = this.b[0]; for (let c = 0; c < C; c++) s += h[c] * this.W[c]; scores.push(s); }
      } else {
        for (let k = 0; k < K; k++) { let s = this.b[k]; for (let c = 0; c < C; c++) s += inputs[0][c] * this.W[c * K + k]; scores.push(s); }
      }
      const mx = Math.max(...scores);
      const ex = scores.map((s) => Math.exp(s - mx));
      const z = ex.reduce((a, b) => a + b, 0);
      const p = ex.map((v) => v / z);
      probs.push(p);
      const y = bt.labels[e];
      if (y < 0) continue;
      taskLoss += -Math.log(Math.max(p[y], 1e-300)) / n;
      if (!grad) continue;
      const ds = p.map((v, i) => (v - (i === y ? 1 : 0)) / n);
      if (this.task === 'multiple-choice') {
        ds.forEach((d, i) => {
          grad.db[0] += d;
          const h = inputs[i], mask = masks[i];
          for (let c = 0; c < C; c++) {
            grad.dW[c] += d * h[c];
            hiddenGrad![bt.extract[groups[i][0]] * C + c] += d * this.W[c] * mask[c];
          }
        });
      } else {
        const h = inputs[0], mask = masks[0];
        for (let k = 0; k < K; k++) grad.db[k] += ds[k];
        for (let c = 0; c < C; c++) {
          let dh = 0;
          for (let k = 0; k < K; k++) { grad.dW[c * K + k] += h[c] * ds[k]; dh += ds[k] * this.W[c * K + k]; }
          for (const r of rows) hiddenGrad![bt.extract[r] * C + c] += dh * mask[c];
        }
      }
    }
    if (grad) m.backward(lambda, { hiddenGrad: hiddenGrad! });
    return { loss: taskLoss + lambda * lmLoss, taskLoss, lmLoss, probs };
  }

  /**
   * Labels and probabilities for inputs (objects in the task's format, labels optional).
   * Example: `clf.predict([{ text: 'free money!!!' }])` → `[{ label: 'spam', probs: { spam: 0.97, ham: 0.03 } }]`.
   */
  predict(inputs: Array<Record<string, unknown>> | Record<string, unknown>, batchSize = 16): Array<{ label: string | number; probs: Record<string, number> | number[] }> {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const lab = this.task === 'multiple-choice' ? null : new Map(this.labels.map((l, i) => [l, i]));
    const examples = list.map((o, i) => parseExample(o, this.task, lab, `inputs[${i}]`, false));
    const was = this.model.training;
    this.model.eval();
    this.training = false;
    const out: Array<{ label: string | number; probs: Record<string, number> | number[] }> = [];
    for (let i = 0; i < examples.length; i += batchSize) {
      const bt = this.batch(examples.slice(i, i + batchSize));
      const { probs } = this.step(bt, 0, null, null);
      for (const p of probs) {
        const best = p.indexOf(Math.max(...p));
        if (this.task === 'multiple-choice') out.push({ label: best, probs: p });
        else out.push({ label: this.labels[best], probs: Object.fromEntries(this.labels.map((l, k) => [l, p[k]])) });
      }
    }
    this.model.train(was);
    return out;
  }

  /** Saves the model (with its extended vocabulary), the head and the task description, atomically. */
  async save(dir: string): Promise<void> {
    await this.model.save(dir);
    const C = this.model.config.n_embd;
    await writeSafetensors(path.join(dir, 'head.safetensors'), [
      ['W_y.weight', { data: this.W, shape: [C, this.K] }],
      ['W_y.bias', { data: this.b, shape: [this.K] }],
    ]);
    await writeFileAtomic(path.join(dir, 'finetune.json'), [JSON.stringify({ task: this.task, labels: this.labels, special: this.special, specialNames: SPECIAL_NAMES }, null, 2) + '\n']);
  }

  /** Loads a fine-tuned folder. The tokenizer defaults to GPT-2's when the base vocabulary is 50257. */
  static async load(dir: string, opts: { tokenizer?: TextEncoder_ } = {}): Promise<Classifier> {
    const meta = JSON.parse(await fs.promises.readFile(path.join(dir, 'finetune.json'), 'utf8').catch(() => {
      throw new Error(`${path.join(dir, 'finetune.json')}: not found; is ${dir} a fine-tuned model folder?`);
    }));
    const model = await GPT.load(dir);
    const { tensors } = await readSafetensors(path.join(dir, 'head.safetensors'));
    const W = tensors.get('W_y.weight'), b = tensors.get('W_y.bias');
    if (!W || !b) throw new Error(`${path.join(dir, 'head.safetensors')}: W_y.weight or W_y.bias is missing`);
    const tok = opts.tokenizer ?? defaultTokenizer(model.config.vocab_size - 3);
    return new Classifier(model, checkTask(meta.task), meta.labels, meta.special, tok, W.data, b.data);
  }
}

function defaultTokenizer(baseVocab: number): TextEncoder_ {
  if (baseVocab !== 50257) throw typeError(`a tokenizer (the base vocabulary of ${baseVocab} is not GPT-2's)`, 'tokenizer', undefined);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return require('../tokenizer').Tokenizer.gpt2();
}

/** Options of finetune(); GPT-1's defaults. */
export interface FinetuneOptions {
  task: TaskKind;
  /** JSONL training file. */
  train: string;
  /** JSONL validation file (accuracy reported each epoch). */
  valid?: string;
  /** Pre-trained model: a GPT or a checkpoint folder. */
  model: GPT | string;
  /** Where to save the fine-tuned model (optional). */
  out?: string;
  tokenizer?: TextEncoder_;
  /** Label names (default: the sorted labels of the training file). */
  labels?: string[];
  /** Weight of the auxiliary LM loss (default 0.5; 0 turns it off). */
  lambda?: number;
  lr?: number;
  batch?: number;
  epochs?: number;
  /** Warmup as a fraction of all steps (default 0.002), then linear decay to 0. */
  warmupFraction?: number;
  dropout?: number;
  clfDropout?: number;
  weightDecay?: number;
  seed?: number;
  quiet?: boolean;
  json?: boolean;
  onStep?: (r: { step: number; epoch: number; loss: number; taskLoss: number; lmLoss: number; lr: number }) => void;
}

export interface FinetuneResult {
  classifier: Classifier;
  steps: number;
  truncated: number;
  trainAccuracy: number;
  validAccuracy: number | null;
}

/** Fraction of examples whose predicted label is right. */
export function accuracy(clf: Classifier, examples: Example[], batchSize = 16): number {
  let right = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const chunk = examples.slice(i, i + batchSize);
    const preds = clf.predict(chunk.map((e) => e.fields), batchSize);
    preds.forEach((p, j) => {
      const y = chunk[j].label;
      const k = clf.task === 'multiple-choice' ? (p.label as number) : clf.labels.indexOf(p.label as string);
      if (k === y) right++;
    });
  }
  return right / examples.length;
}

/**
 * Fine-tunes a pre-trained GPT on a task. Example:
 * `await finetune({ task: 'classification', train: 'train.jsonl', valid: 'test.jsonl', model: 'runs/pre', out: 'runs/clf' })`.
 */
export async function finetune(o: FinetuneOptions): Promise<FinetuneResult> {
  const task = checkTask(o.task);
  const lambda = checkNumber(o.lambda ?? 0.5, 'lambda', 0);
  const lr = checkNumber(o.lr ?? 6.25e-5, 'lr', 0);
  const B = checkNumber(o.batch ?? 32, 'batch', 1, 1e6, true);
  const epochs = checkNumber(o.epochs ?? 3, 'epochs', 1, 1e6, true);
  const seed = checkNumber(o.seed ?? 1, 'seed', 0, Number.MAX_SAFE_INTEGER, true);
  const model = o.model instanceof GPT ? o.model : await GPT.load(o.model);
  const tok = o.tokenizer ?? defaultTokenizer(model.config.vocab_size);
  const labels = task === 'multiple-choice' ? [] : o.labels ?? collectLabels(o.train);
  const labelMap = task === 'multiple-choice' ? null : new Map(labels.map((l, i) => [l, i]));
  const trainEx = readTaskFile(o.train, task, labelMap);
  const validEx = o.valid ? readTaskFile(o.valid, task, labelMap) : null;
  const p = o.dropout ?? 0.1;
  model.config.embd_pdrop = model.config.resid_pdrop = model.config.attn_pdrop = p;
  const clf = Classifier.create(model, task, labels, tok, seed);
  clf.clfDropout = o.clfDropout ?? 0.1;
  const opt = new AdamW(model, { lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: o.weightDecay ?? 0.01 });
  const head = { m: new Float64Array(clf.W.length + clf.K), v: new Float64Array(clf.W.length + clf.K), t: 0 };
  const rng = new Rng(seed);
  const stepsPerEpoch = Math.ceil(trainEx.length / B);
  const total = stepsPerEpoch * epochs;
  const warmup = Math.max(0, Math.round(total * (o.warmupFraction ?? 0.002)));
  let step = 0, truncated = 0;
  const log = (s: string) => { if (!o.quiet) (o.json ? process.stderr : process.stdout).write(s + '\n'); };
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = rng.shuffle(trainEx.map((_, i) => i));
    for (let s = 0; s < stepsPerEpoch; s++) {
      const ex = order.slice(s * B, (s + 1) * B).map((i) => trainEx[i]);
      const bt = clf.batch(ex);
      if (epoch === 0) truncated += bt.truncated;
      model.train();
      clf.training = true;
      const grad = { dW: new Float32Array(clf.W.length), db: new Float32Array(clf.K) };
      const r = clf.step(bt, lambda, grad, rng);
      const cur = learningRate(step, { lr, warmup, totalSteps: total, minLrRatio: 0, decay: 'linear' });
      opt.lr = cur;
      const norm = model.gradNorm();
      opt.step(Math.min(1, 1 / (norm + 1e-6)));
      model.zeroGrad();
      // Adam for the head (no weight decay on it)
      head.t++;
      const all = [...grad.dW, ...grad.db];
      const bc1 = 1 - 0.9 ** head.t, bc2 = 1 - 0.999 ** head.t;
      all.forEach((g, i) => {
        head.m[i] = 0.9 * head.m[i] + 0.1 * g;
        head.v[i] = 0.999 * head.v[i] + 0.001 * g * g;
        const u = cur * (head.m[i] / bc1) / (Math.sqrt(head.v[i] / bc2) + 1e-8);
        if (i < clf.W.length) clf.W[i] -= u; else clf.b[i - clf.W.length] -= u;
      });
      step++;
      const rec = { step, epoch: epoch + 1, loss: r.loss, taskLoss: r.taskLoss, lmLoss: r.lmLoss, lr: cur };
      o.onStep?.(rec);
      if (o.json && !o.quiet) process.stdout.write(JSON.stringify(rec) + '\n');
    }
    clf.training = false;
    model.eval();
    if (validEx) log(`epoch ${epoch + 1}/${epochs}: validation accuracy ${(100 * accuracy(clf, validEx)).toFixed(2)}%`);
  }
  if (truncated > 0) process.emitWarning(`gpt-native finetune: ${truncated} training examples were longer than the context and were cut on the context side`);
  clf.training = false;
  model.eval();
  const result: FinetuneResult = { classifier: clf, steps: step, truncated, trainAccuracy: accuracy(clf, trainEx), validAccuracy: validEx ? accuracy(clf, validEx) : null };
  if (o.out) await clf.save(o.out);
  return result;
}
