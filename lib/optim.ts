/**
 * Optimisation: AdamW (decoupled weight decay on 2-D tensors only) and the learning-rate schedules of the
 * papers (linear warmup then cosine decay to a floor: GPT-3 to 10%, GPT-1 to 0).
 */
import type { Backend, Buf } from './backend';
import { checkNumber, typeError } from './errors';
import type { GPT } from './nn/gpt';

/** AdamW options; defaults are GPT-3's (β1 0.9, β2 0.95, ε 1e-8, weight decay 0.1). */
export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Serialisable optimizer state (moments are saved separately as tensors). */
export interface AdamWState {
  step: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/**
 * AdamW over a model's parameters: weight decay applies to 2-D tensors (embeddings and matmul weights),
 * never to biases or LayerNorm parameters. Example:
 * `const opt = new AdamW(model, { lr: 6e-4 }); model.loss(x, y); model.backward(); opt.step(); opt.zeroGrad()`.
 */
export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken so far (bias correction uses step + 1 on the next step). */
  stepCount = 0;
  /** First and second moments, on the model's backend (device memory on cuda). */
  private readonly mBuf: Buf;
  private readonly vBuf: Buf;
  private readonly model: GPT;
  private readonly be: Backend;

  constructor(model: GPT, opts: AdamWOptions = {}) {
    if (!model || typeof (model as GPT).numParameters !== 'function' || !(model as GPT).backend) throw typeError('a GPT model', 'model', model);
    this.model = model;
    this.lr = checkNumber(opts.lr ?? 6e-4, 'lr', 0);
    const betas = opts.betas ?? [0.9, 0.95];
    if (!Array.isArray(betas) || betas.length !== 2) throw typeError('[beta1, beta2]', 'betas', betas);
    checkNumber(betas[0], 'betas[0]', 0, 0.999999999);
    checkNumber(betas[1], 'betas[1]', 0, 0.999999999);
    this.betas = [betas[0], betas[1]];
    this.eps = checkNumber(opts.eps ?? 1e-8, 'eps', 0);
    this.weightDecay = checkNumber(opts.weightDecay ?? 0.1, 'weightDecay', 0);
    const n = model.numParameters();
    this.be = model.backend;
    this.mBuf = this.be.alloc(n);
    this.vBuf = this.be.alloc(n);
  }

  /** The first moments as a host array (a copy when the model is on a GPU). */
  get m(): Float32Array {
    return this.be.download(this.mBuf, false);
  }

  /** The second moments as a host array (a copy when the model is on a GPU). */
  get v(): Float32Array {
    return this.be.download(this.vBuf, false);
  }

  /**
   * One update with the current gradients (clip them first with model.clipGradNorm if wanted).
   * `gradScale` multiplies the gradients inside the update (a fused clip: saves a pass over them).
   */
  step(gradScale = 1): void {
    checkNumber(gradScale, 'gradScale', 0);
    if (this.model.backend !== this.be)
      throw new Error(`AdamW: the model moved to device '${this.model.device}' after the optimizer was made; create the optimizer after model.to()`);
    const { params: p, grads: g, params16: p16 } = this.model.deviceBuffers();
    const d = this.model.decayCount;
    const be = this.be;
    this.stepCount++;
    const [b1, b2] = this.betas;
    // a bf16 model's weight copy is rewritten in the same pass (all of it: the two calls cover every parameter)
    be.adamwStep(be.view(p, 0, d), be.view(g, 0, d), be.view(this.mBuf, 0, d), be.view(this.vBuf, 0, d),
      this.lr, b1, b2, this.eps, this.weightDecay, this.stepCount, gradScale, p16 && be.view(p16, 0, d));
    be.adamwStep(be.view(p, d), be.view(g, d), be.view(this.mBuf, d), be.view(this.vBuf, d),
      this.lr, b1, b2, this.eps, 0, this.stepCount, gradScale, p16 && be.view(p16, d));
    this.model.markUpdated({ params: true, params16: p16 !== null });
  }

  /** Zeroes the model's gradients. */
  zeroGrad(): void {
    this.model.zeroGrad();
  }

  /** Scalar state for checkpoints. */
  state(): AdamWState {
    return { step: this.stepCount, lr: this.lr, betas: [...this.betas] as [number, number], eps: this.eps, weightDecay: this.weightDecay };
  }

  /** Restores scalar state and moments (from a checkpoint). */
  restore(state: AdamWState, m: Float32Array, v: Float32Array): void {
    const n = this.be.length(this.mBuf);
    if (m.length !== n || v.length !== n)
      throw new RangeError(`Expected optimizer moments of ${n} values for the model but received ${m.length} and ${v.length}`);
    this.stepCount = state.step;
    this.lr = state.lr;
    this.be.upload(this.mBuf, m);
    this.be.upload(this.vBuf, v);
  }
}

/** Learning-rate schedule options. */
export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Linear warmup steps (from lr/warmup to lr). */
  warmup: number;
  /** Total steps; decay ends there. */
  totalSteps: number;
  /** Floor as a fraction of the peak: 0.1 for GPT-3, 0 for GPT-1. */
  minLrRatio?: number;
  /** 'cosine' (default) or 'linear' decay after warmup. */
  decay?: 'cosine' | 'linear' | 'constant';
}

/**
 * Learning rate at `step` (0-based): linear warmup, then cosine (or linear) decay to minLrRatio·lr at
 * totalSteps, constant after. Example: `learningRate(10, { lr: 6e-4, warmup: 100, totalSteps: 1000 })`.
 */
export function learningRate(step: number, o: ScheduleOptions): number {
  const minLr = o.lr * (o.minLrRatio ?? 0.1);
  if (o.warmup > 0 && step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  if (o.decay === 'constant') return o.lr;
  if (step >= o.totalSteps) return minLr;
  const span = Math.max(1, o.totalSteps - o.warmup);
  const progress = Math.min(1, Math.max(0, (step - o.warmup) / span));
  const coef = o.decay === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return minLr + coef * (o.lr - minLr);
}

/**
 * GPT-3's batch-size warmup: the batch (in tokens) grows linearly from `start` to `full` over the first
 * `rampTokens` tokens seen, rounded down to a whole number of sequences (at least one).
 * Example: `batchSizeAt(0, { start: 32768, full: 524288, rampTokens: 4e9, seq: 1024 })`.
 */
export function batchSizeAt(tokensSeen: number, o: { start: number; full: number; rampTokens: number; seq: number }): number {
  let tokens = o.full;
  if (o.rampTokens > 0 && tokensSeen < o.rampTokens) tokens = o.start + (o.full - o.start) * (tokensSeen / o.rampTokens);
  return Math.max(1, Math.min(Math.floor(o.full / o.seq), Math.floor(tokens / o.seq)));
}
