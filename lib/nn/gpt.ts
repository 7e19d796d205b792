/**
 * The GPT model: GPT-1 (post-norm), GPT-2 (pre-norm + final LayerNorm) and GPT-3 (GPT-2 with banded local
 * attention layers), over the native kernels. Reads top to bottom: parameters, activations, forward,
 * loss, backward. Shapes: B batch, T time, C = n_embd, NH heads, HS = C/NH, V vocabulary, N = B·T.
 *
 * Parameters live in one Float32Array (2-D tensors first, then 1-D), each parameter a view into it, and
 * gradients likewise: zeroing, the global norm and AdamW are one pass each. Activations are allocated once
 * per (B, T) and reused, so a training step allocates nothing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { AttentionShape } from '../native';
import { Backend, backendOf, Buf, checkPrecision, Device, DType, Precision, withPrecision } from '../backend';
import { configFrom, GPTConfig, parameterShapes, ResolvedConfig, resolveConfig } from '../config';
import { checkNumber, typeError } from '../errors';
import { Rng } from '../random';
import { readSafetensors, writeSafetensors, CheckpointError } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';
import { toBatch, TokenIds, IdsOptions, Batch } from './ids';

/** One parameter: a view into the model's storage, its gradient (null until the first backward), its shape. */
export interface Parameter {
  data: Float32Array;
  grad: Float32Array | null;
  shape: number[];
}

type F = Buf; // a backend buffer: Float32Array on the CPU, device memory on the GPU

interface LayerActs {
  qkv: F; // (N, 3C)
  atty: F; // (N, C) attention output before c_proj
  lse: F; // (B, NH, T)
  attproj: F; // (N, C) c_proj output (residual dropout applied in place)
  mid: F; // (N, C) GPT-2: x + attn; GPT-1: x + attn (input of LN1)
  ln1: F; ln1Mean: F; ln1Rstd: F; // (N, C), (N), (N)
  ln2: F; ln2Mean: F; ln2Rstd: F;
  fch: F; // (N, 4C) c_fc output
  fchGelu: F; // (N, 4C)
  fcproj: F; // (N, C) mlp c_proj output (dropout in place)
  out: F; // (N, C) GPT-2: layer output; GPT-1: n + mlp (input of LN2)
}

interface Acts {
  B: number;
  T: number;
  dtype: DType; // of the activations and their gradients (statistics are fp32)
  x0: F; // (N, C) embeddings
  layers: LayerActs[];
  lnf: F; lnfMean: F; lnfRstd: F;
  Vp: number; // row stride of logits: V, or on cuda V rounded up to 64 (aligned rows for the GEMMs)
  logits: F; // (N, V) with row stride Vp; holds dlogits after backward
  losses: F; lse: F; // (N)
  // gradient scratch, shared by all layers
  dres: F; dtmp: F; dln: F; dC: F; datty: F; // (N, C)
  dqkv: F; // (N, 3C)
  dfc: F; // (N, 4C)
}

interface PassState {
  ids: Int32Array;
  targets: Int32Array | null;
  count: number;
  seeds: number[] | null; // dropout seeds of this forward pass (null: no dropout)
  logitsValid: boolean;
  gradReady: boolean; // logits holds dlogits already (loss with `gradient: true`), scaled 1/count
}

/** Options of GPT.loss. */
export interface LossOptions extends IdsOptions {
  /**
   * Also compute the gradient of the loss with respect to the logits, in the same pass over them (a training
   * step's loss() and backward() read the B·T·V logits once instead of twice). The logits are overwritten, so
   * only backward() may follow. Default false.
   */
  gradient?: boolean;
}

/** Options of GPT.create. */
export interface CreateOptions {
  /** Seed of the weight initialisation (default 1). */
  seed?: number;
  /** Where the arithmetic runs: 'cpu' (default) or 'cuda' (needs the CUDA addon and a GPU). */
  device?: Device;
  /**
   * 'fp32' (default) or 'bf16': the matrix products read a bf16 copy of the weights (rounded to nearest even;
   * remade after optimizer steps, loads and any host access to the weights, so edit the arrays from
   * parameters()/weight() before the next forward pass, or call markUpdated() after a later edit) and sum in
   * fp32; the weights themselves, their gradients and AdamW's moments stay fp32. On cuda the activations and their gradients are bf16 too and the products run on tensor cores;
   * on the CPU, products of more than 8 rows round their activations to bf16 too where the processor has
   * AVX512-BF16 (as autocast does), and decoding streams half the bytes per token with fp32 activations.
   */
  precision?: Precision;
}

/** Options of GPT.load. */
export interface LoadOptions {
  device?: Device;
  precision?: Precision;
}

const GPT1_NAMES: Record<string, string> = { 'wte.weight': 'tokens_embed.weight', 'wpe.weight': 'positions_embed.weight' };
const IGNORED_TENSORS = /(^|\.)attn\.(bias|masked_bias)$|^lm_head\.weight$/;

function hash32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be59b, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Row stride of the logits: V, or on cuda V rounded up to 64, so the largest GEMM reads and writes aligned rows. */
export function logitsStride(device: Device, V: number): number {
  return device === 'cuda' ? Math.ceil(V / 64) * 64 : V;
}

/** A GPT-1, GPT-2 or GPT-3 model. Example: `const m = GPT.create('gpt2-small', { seed: 1 })`. */
export class GPT {
  config: ResolvedConfig;
  private paramBuf: Float32Array;
  private gradBuf: Float32Array | null = null;
  /** Floats in the weight-decay group (2-D tensors), stored first in paramBuf. */
  decayCount: number;
  private views = new Map<string, Parameter>(); // canonical (gpt2) names
  private acts: Acts | null = null;
  private pass: PassState | null = null;
  private disposed = false;
  /** Dropout is applied only in training mode (see train()/eval()); default is evaluation mode. */
  training = false;
  /** Seed and counter of the dropout masks; the counter advances on every training forward pass. */
  dropoutSeed = 1;
  dropoutStep = 0;

  /** The backend the arithmetic runs on ('cpu' or 'cuda'). */
  private be: Backend;
  /** Matrix-product precision: 'fp32', or 'bf16' (a bf16 copy of the weights feeds the products). */
  precision: Precision = 'fp32';
  /** Offset and length of each parameter in the flat storage (canonical names). */
  private offsets = new Map<string, [number, number]>();
  // Device copies (on the CPU these are the host arrays themselves) and which side holds the newer values.
  private dParams: Buf;
  private dGrads: Buf | null = null;
  // bf16 copy of the parameters for the matrix products of a bf16 model (refreshed after every change)
  private dParams16: Buf | null = null;
  private params16Stale = true;
  private params16Version = 0; // counts the writes of the bf16 copy
  // bf16 on cuda: wte's bf16 copy with its rows padded to the logits stride Vp (zeros after row V), so the lm head's
  // products run at aligned, 64-divisible widths; remade from the bf16 copy when that has changed (lmHead)
  private dWtePad: Buf | null = null;
  private wtePadVersion = -1;
  private hostParamsStale = false; // the device has newer parameters than paramBuf
  private devParamsStale = false; // paramBuf has newer parameters than the device
  private hostGradsStale = false;
  private devGradsStale = false;

  private constructor(config: ResolvedConfig, device: Device = 'cpu', precision: Precision = 'fp32') {
    this.config = config;
    this.decayCount = 0;
    this.be = backendOf(device);
    this.precision = checkPrecision(precision);
    this.paramBuf = this.layout(config);
    this.dParams = this.paramBuf;
    this.allocDevice();
  }

  /** Where the model's arithmetic runs. */
  get device(): Device {
    return this.be.device;
  }

  /** The model's backend (for code that runs the graph itself: the KV decoder, AdamW). */
  get backend(): Backend {
    return this.be;
  }

  /** Element type of the activations: bf16 for a bf16 model on cuda, else fp32. */
  get activationDtype(): DType {
    return this.be.device === 'cuda' && this.precision === 'bf16' ? 'bf16' : 'fp32';
  }

  /** Frees the bf16 weight copy (it is made again when needed). */
  private freeParams16(): void {
    if (this.dParams16) this.be.free(this.dParams16);
    if (this.dWtePad) this.be.free(this.dWtePad);
    this.dParams16 = this.dWtePad = null;
    this.params16Stale = true;
  }

  /** (Re)creates the device storage for the current layout; the host values are uploaded before the next use. */
  private allocDevice(): void {
    this.freeParams16();
    if (this.be.device === 'cpu') {
      this.dParams = this.paramBuf;
      this.dGrads = this.gradBuf;
      return;
    }
    if (this.dParams !== this.paramBuf) this.be.free(this.dParams);
    if (this.dGrads) this.be.free(this.dGrads);
    this.dParams = this.be.alloc(this.paramBuf.length);
    this.dGrads = null;
    this.devParamsStale = true;
    this.hostParamsStale = this.hostGradsStale = this.devGradsStale = false;
  }

  /** Makes the device hold the newest parameters and gradients (after host-side edits). */
  private syncDevice(): void {
    if (this.be.device === 'cpu') return;
    if (this.devParamsStale) {
      this.be.upload(this.dParams, this.paramBuf);
      this.params16Stale = true;
    }
    if (this.devGradsStale && this.dGrads && this.gradBuf) this.be.upload(this.dGrads, this.gradBuf);
    this.devParamsStale = this.devGradsStale = false;
  }

  /**
   * Makes the host arrays hold the newest values. The caller may then edit them, so the device copy is
   * refreshed before the next device use.
   */
  private syncHost(paramsMayChange = true): void {
    if (this.be.device === 'cpu') {
      if (paramsMayChange) this.params16Stale = true; // the caller may edit the weights the bf16 copy was made from
      return;
    }
    if (this.hostParamsStale) this.be.readInto(this.dParams, this.paramBuf);
    if (this.hostGradsStale && this.dGrads) {
      this.be.readInto(this.dGrads, this.hostGrads());
    }
    this.hostParamsStale = this.hostGradsStale = false;
    this.devParamsStale = true;
    if (this.dGrads) this.devGradsStale = true;
  }

  /** Host gradient storage and the per-parameter grad views (allocated on first use). */
  private hostGrads(): Float32Array {
    if (!this.gradBuf) {
      this.gradBuf = new Float32Array(this.paramBuf.length);
      let off = 0;
      // views were laid out in storage order
      for (const p of this.views.values()) {
        p.grad = this.gradBuf.subarray(off, off + p.data.length);
        off += p.data.length;
      }
      if (this.be.device === 'cpu') this.dGrads = this.gradBuf;
    }
    return this.gradBuf;
  }

  /** Device gradient storage (zero-filled on first use). */
  private deviceGrads(): Buf {
    if (this.be.device === 'cpu') {
      this.hostGrads();
      return this.dGrads!;
    }
    if (!this.dGrads) {
      this.dGrads = this.be.alloc(this.paramBuf.length);
      if (this.gradBuf) this.devGradsStale = true;
    }
    return this.dGrads;
  }

  /**
   * For AdamW and other code that updates the weights on the model's backend: the flat parameter and gradient
   * buffers (device memory on cuda), current on the device, and a bf16 model's bf16 weight copy where one
   * exists (else null). Call `markUpdated()` after writing them.
   */
  deviceBuffers(): { params: Buf; grads: Buf; params16: Buf | null } {
    this.checkAlive();
    this.syncDevice();
    return { params: this.dParams, grads: this.deviceGrads(), params16: this.precision === 'bf16' ? this.dParams16 : null };
  }

  /**
   * Records that the device parameters (and gradients) were written by a backend call. `params16: true`: the
   * bf16 weight copy was rewritten from the new parameters too (AdamW does both in one pass), so it is current.
   */
  markUpdated(what: { params?: boolean; grads?: boolean; params16?: boolean } = { params: true }): void {
    if (what.params) this.params16Stale = !what.params16;
    if (what.params && what.params16) this.params16Version++;
    if (this.be.device === 'cpu') return;
    if (what.params) this.hostParamsStale = true;
    if (what.grads) this.hostGradsStale = true;
  }

  /**
   * Moves the model to another device ('cpu' or 'cuda'): the weights go along; gradients and activations are
   * dropped, so create the optimizer after moving. Returns this. Example: `model.to('cuda')`.
   */
  to(device: Device, opts: { precision?: Precision } = {}): this {
    this.checkAlive();
    const be = backendOf(device);
    const precision = checkPrecision(opts.precision ?? (device === this.be.device ? this.precision : 'fp32'));
    if (be === this.be) {
      if (precision !== this.precision) {
        this.freeActs(); // their dtype follows the precision
        this.freeParams16();
        this.pass = null;
      }
      this.precision = precision;
      return this;
    }
    this.syncHost();
    this.freeActs();
    this.freeParams16();
    if (this.be.device !== 'cpu') {
      this.be.free(this.dParams);
      if (this.dGrads) this.be.free(this.dGrads);
    }
    this.be = be;
    this.precision = precision;
    this.gradBuf = null;
    for (const p of this.views.values()) p.grad = null;
    this.dGrads = null;
    this.dParams = this.paramBuf;
    this.allocDevice();
    this.pass = null;
    return this;
  }

  /** Allocates storage for `config` and lays the parameter views over it (2-D tensors first). */
  private layout(config: ResolvedConfig): Float32Array {
    const shapes = parameterShapes(config);
    const ordered = [...shapes.filter(([, s]) => s.length === 2), ...shapes.filter(([, s]) => s.length !== 2)];
    let total = 0;
    this.decayCount = 0;
    for (const [, s] of ordered) {
      const n = s.reduce((a, b) => a * b, 1);
      if (s.length === 2) this.decayCount += n;
      total += n;
    }
    const buf = new Float32Array(total);
    this.views = new Map();
    this.offsets = new Map();
    let off = 0;
    for (const [name, s] of ordered) {
      const n = s.reduce((a, b) => a * b, 1);
      this.views.set(name, { data: buf.subarray(off, off + n), grad: null, shape: s });
      this.offsets.set(name, [off, n]);
      off += n;
    }
    return buf;
  }

  /**
   * Adds `extra` rows to the token embedding (new token ids V..V+extra-1, e.g. GPT-1's start, delimiter and
   * extract tokens), initialised N(0, 0.02) like the others; every other weight is kept. Gradients and
   * activations are dropped: create the optimizer after this. Returns the first new id.
   * Example: `const start = model.extendVocab(3, { seed: 1 })`.
   */
  extendVocab(extra: number, opts: { seed?: number } = {}): number {
    this.checkAlive();
    checkNumber(extra, 'extra', 1, 1 << 20, true);
    this.syncHost();
    const old = this.views;
    const V = this.config.vocab_size;
    const config = { ...this.config, vocab_size: V + extra };
    this.paramBuf = this.layout(config);
    for (const [name, p] of old) {
      const q = this.views.get(name)!;
      q.data.set(p.data);
    }
    new Rng(opts.seed ?? 1).fillNormal(this.views.get('wte.weight')!.data.subarray(V * config.n_embd), 0.02);
    this.config = config;
    this.gradBuf = null;
    this.freeActs();
    this.allocDevice();
    this.pass = null;
    return V;
  }

  /**
   * The final hidden states (B·T, C) of the last forward pass (after ln_f for GPT-2/3; the last block's
   * output for GPT-1): what a task head reads. A view valid until the next forward (a copy on cuda).
   */
  lastHidden(): Float32Array {
    this.checkAlive();
    if (!this.acts || !this.pass) throw new Error('lastHidden() needs a forward() or loss() first');
    const a = this.acts;
    const h = this.config.variant === 'gpt1' ? this.layerOut(a, this.config.n_layer - 1) : a.lnf;
    return this.be.download(this.be.view(h, 0, a.B * a.T * this.config.n_embd), false);
  }

  /**
   * A new model with freshly initialised weights: N(0, 0.02), zero biases, unit LayerNorm gains; GPT-2/3
   * scale the residual output projections by 1/√(2·n_layer).
   * Example: `GPT.create('gpt2-small', { seed: 1 })` or `GPT.create({ variant: 'gpt2', n_layer: 2, ... })`.
   */
  static create(presetOrConfig: string | GPTConfig, opts: CreateOptions = {}): GPT {
    const config = configFrom(presetOrConfig);
    const seed = opts.seed ?? 1;
    checkNumber(seed, 'seed', 0, Number.MAX_SAFE_INTEGER, true);
    const m = new GPT(config, opts.device ?? 'cpu', opts.precision);
    const rng = new Rng(seed);
    const projStd = config.variant === 'gpt1' ? 0.02 : 0.02 / Math.sqrt(2 * config.n_layer);
    for (const [name, p] of m.views) {
      if (name.endsWith('ln_1.weight') || name.endsWith('ln_2.weight') || name === 'ln_f.weight') p.data.fill(1);
      else if (p.shape.length === 1) p.data.fill(0);
      else rng.fillNormal(p.data, /c_proj\.weight$/.test(name) ? projStd : 0.02);
    }
    m.dropoutSeed = seed;
    return m;
  }

  /**
   * Loads `config.json` + `model.safetensors` from a folder: our own checkpoints and Hugging Face `gpt2` /
   * `openai-gpt` ones (with or without a `transformer.` prefix; attention mask buffers are ignored).
   * Example: `const m = await GPT.load('./checkpoints/run1')`.
   */
  static async load(dir: string, opts: LoadOptions = {}): Promise<GPT> {
    const be = backendOf(opts.device ?? 'cpu'); // a clear error before any reading
    checkPrecision(opts.precision);
    if (typeof dir !== 'string') throw typeError('a checkpoint folder path', 'dir', dir);
    const cfgFile = path.join(dir, 'config.json');
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(await fs.promises.readFile(cfgFile, 'utf8'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new CheckpointError(e.code === 'ENOENT' ? `${cfgFile}: not found; a checkpoint folder holds config.json and model.safetensors`
        : `${cfgFile}: ${e.code ?? 'invalid JSON'} (${e.message})`);
    }
    let config: ResolvedConfig;
    try {
      config = resolveConfig(raw);
    } catch (err) {
      throw new CheckpointError(`${cfgFile}: ${(err as Error).message}`);
    }
    const file = path.join(dir, 'model.safetensors');
    const { tensors } = await readSafetensors(file);
    const m = new GPT(config, be.device, opts.precision);
    m.loadTensors(tensors, file);
    return m;
  }

  /** Copies named tensors (any accepted naming) into the model; errors name `source` and the tensor. */
  loadTensors(tensors: Map<string, { data: Float32Array; shape: number[] }>, source = 'tensors'): void {
    this.checkAlive();
    this.syncHost();
    const normalized = new Map<string, { data: Float32Array; shape: number[] }>();
    const reverse: Record<string, string> = { 'tokens_embed.weight': 'wte.weight', 'positions_embed.weight': 'wpe.weight' };
    for (const [k, v] of tensors) {
      let name = k.startsWith('transformer.') ? k.slice('transformer.'.length) : k;
      if (IGNORED_TENSORS.test(name)) continue;
      name = reverse[name] ?? name;
      normalized.set(name, v);
    }
    for (const [name, p] of this.views) {
      const t = normalized.get(name);
      const shown = this.publicName(name);
      if (!t) throw new CheckpointError(`${source}: tensor ${shown} is missing (the checkpoint does not match config.json?)`);
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
        throw new CheckpointError(`${source}: tensor ${shown} has shape [${t.shape}] but the config needs [${p.shape}]`);
      p.data.set(t.data);
    }
    if (this.be.device !== 'cpu') this.devParamsStale = true;
  }

  /** Saves config.json and model.safetensors (Hugging Face names), each written atomically. */
  async save(dir: string): Promise<void> {
    this.checkAlive();
    if (typeof dir !== 'string') throw typeError('a folder path', 'dir', dir);
    await fs.promises.mkdir(dir, { recursive: true });
    const entries: Array<[string, { data: Float32Array; shape: number[] }]> = [];
    for (const [name, p] of this.parameters()) entries.push([name, { data: p.data, shape: p.shape }]);
    await writeSafetensors(path.join(dir, 'model.safetensors'), entries, { format: 'pt', producer: 'gpt-native' });
    const cfg = { ...this.config, model_type: this.config.variant === 'gpt1' ? 'openai-gpt' : 'gpt2', n_ctx: this.config.n_positions };
    await writeFileAtomic(path.join(dir, 'config.json'), [JSON.stringify(cfg, null, 2) + '\n']);
  }

  private publicName(name: string): string {
    return this.config.variant === 'gpt1' ? GPT1_NAMES[name] ?? name : name;
  }

  /** Parameters with Hugging Face names (openai-gpt names for GPT-1). */
  parameters(): Map<string, Parameter> {
    this.checkAlive();
    this.syncHost();
    const out = new Map<string, Parameter>();
    for (const [name, p] of this.views) out.set(this.publicName(name), p);
    return out;
  }

  /** Total number of parameters (the tied output embedding counted once). */
  numParameters(): number {
    return this.paramBuf.length;
  }

  /** All parameters as one array (2-D tensors first: the first `decayCount` floats). */
  get flatParameters(): Float32Array {
    this.syncHost();
    return this.paramBuf;
  }

  /** All gradients as one array, same layout as flatParameters (allocated on first use). */
  get flatGradients(): Float32Array {
    this.syncHost(false);
    return this.hostGrads();
  }

  /** A parameter's values by canonical (gpt2) name, for inference code that reads the weights. */
  weight(name: string): Float32Array {
    this.checkAlive();
    const p = this.views.get(name);
    if (!p) throw new RangeError(`Expected a parameter name of this model for name but received ${JSON.stringify(name)}`);
    this.syncHost();
    return p.data;
  }

  /** A parameter's backend buffer by canonical name (device memory on cuda), current on the device. */
  buffer(name: string): Buf {
    this.checkAlive();
    if (!this.offsets.has(name)) throw new RangeError(`Expected a parameter name of this model for name but received ${JSON.stringify(name)}`);
    this.syncDevice();
    return this.p(name);
  }

  /**
   * A weight as the matrix products take it: buffer(name), or its bf16 copy for a bf16 model (same values
   * rounded to bf16, refreshed whenever the weights change).
   */
  matrixBuffer(name: string): Buf {
    this.checkAlive();
    if (!this.offsets.has(name)) throw new RangeError(`Expected a parameter name of this model for name but received ${JSON.stringify(name)}`);
    this.syncDevice();
    return this.w(name);
  }

  /** Turns dropout on (training) or off. Returns this. */
  train(mode = true): this {
    this.training = mode;
    return this;
  }

  /** Dropout off. Returns this. */
  eval(): this {
    return this.train(false);
  }

  private p(name: string): Buf {
    if (this.be.device === 'cpu') return this.views.get(name)!.data;
    const [off, n] = this.offsets.get(name)!;
    return this.be.view(this.dParams, off, n);
  }
  /** The operand of a matrix product: p(name), or its view in the bf16 copy (made fresh here if stale). */
  private w(name: string): Buf {
    if (this.precision === 'fp32') return this.p(name);
    if (!this.dParams16) {
      this.dParams16 = this.be.alloc(this.paramBuf.length, 'bf16');
      this.params16Stale = true;
    }
    if (this.params16Stale) {
      this.be.copy(this.dParams16, this.dParams); // fp32 -> bf16 on the device
      this.params16Stale = false;
      this.params16Version++;
    }
    const [off, n] = this.offsets.get(name)!;
    return this.be.view(this.dParams16, off, n);
  }
  /**
   * The lm head's weight and its rows: for a bf16 model on cuda, wte's bf16 copy padded with zero rows to the
   * logits stride Vp (the products then run at N = Vp forward and K = Vp for dh, aligned widths that cuBLAS
   * runs much faster than V = 50257; the extra logits are exact zeros, and the extra terms of dh are 0·0);
   * else wte itself. GPT_NATIVE_CUDA_PAD_VOCAB=0 turns the padding off (benchmarks time both).
   */
  private lmHead(Vp: number): { w: Buf; rows: number } {
    const { vocab_size: V, n_embd: C } = this.config;
    const w = this.w('wte.weight');
    if (this.be.device !== 'cuda' || this.precision !== 'bf16' || Vp === V || process.env.GPT_NATIVE_CUDA_PAD_VOCAB === '0')
      return { w, rows: V };
    if (!this.dWtePad) {
      this.dWtePad = this.be.alloc(Vp * C, 'bf16'); // zero-filled: the padding rows stay zero
      this.wtePadVersion = -1;
    }
    if (this.wtePadVersion !== this.params16Version) {
      this.be.copy(this.be.view(this.dWtePad, 0, V * C), w);
      this.wtePadVersion = this.params16Version;
    }
    return { w: this.dWtePad, rows: Vp };
  }
  private g(name: string): Buf {
    if (this.be.device === 'cpu') return this.views.get(name)!.grad!;
    const [off, n] = this.offsets.get(name)!;
    return this.be.view(this.dGrads!, off, n);
  }

  /** Frees the activations (device memory at once on cuda). */
  private freeActs(): void {
    const a = this.acts;
    this.acts = null;
    if (!a || this.be.device === 'cpu') return;
    const all: Buf[] = [a.x0, a.lnf, a.lnfMean, a.lnfRstd, a.logits, a.losses, a.lse, a.dres, a.dtmp, a.dln, a.dC, a.datty, a.dqkv, a.dfc];
    for (const L of a.layers) all.push(...Object.values(L));
    for (const b of all) this.be.free(b);
  }

  private ensureActs(B: number, T: number): Acts {
    const dtype = this.activationDtype;
    if (this.acts && this.acts.B === B && this.acts.T === T && this.acts.dtype === dtype) return this.acts;
    this.freeActs(); // let the old set go before allocating the new one
    const { n_embd: C, n_head: NH, vocab_size: V } = this.config;
    const N = B * T;
    const f = (n: number) => this.be.alloc(n, dtype); // activations (and their gradients)
    const s = (n: number) => this.be.alloc(n); // fp32 statistics
    // on the GPU the logits rows are padded to a multiple of 64 so every row of the largest GEMM is aligned
    const Vp = logitsStride(this.be.device, V);
    const layers: LayerActs[] = [];
    for (let l = 0; l < this.config.n_layer; l++) {
      layers.push({
        qkv: f(N * 3 * C), atty: f(N * C), lse: s(B * NH * T), attproj: f(N * C), mid: f(N * C),
        ln1: f(N * C), ln1Mean: s(N), ln1Rstd: s(N), ln2: f(N * C), ln2Mean: s(N), ln2Rstd: s(N),
        fch: f(N * 4 * C), fchGelu: f(N * 4 * C), fcproj: f(N * C), out: f(N * C),
      });
    }
    this.acts = {
      B, T, dtype, Vp, x0: f(N * C), layers, lnf: f(N * C), lnfMean: s(N), lnfRstd: s(N), logits: f(N * Vp), losses: s(N), lse: s(N),
      dres: f(N * C), dtmp: f(N * C), dln: f(N * C), dC: f(N * C), datty: f(N * C), dqkv: f(N * 3 * C), dfc: f(N * 4 * C),
    };
    return this.acts;
  }

  private attnShape(B: number, T: number, layer: number, seed: number, dropout: number): AttentionShape {
    const { n_embd: C, n_head: NH } = this.config;
    const window = this.config.attention_layers[layer] === 'local' ? this.config.window_size : 0;
    return {
      B, Tq: T, Tk: T, NH, HS: C / NH, qPos0: 0, window, dropout, seed,
      q: [T * 3 * C, 3 * C], k: [T * 3 * C, 3 * C], v: [T * 3 * C, 3 * C], o: [T * C, C],
    };
  }

  /** Output of layer l (GPT-1: LN2's output; GPT-2/3: the residual stream). */
  private layerOut(a: Acts, l: number): Buf {
    return this.config.variant === 'gpt1' ? a.layers[l].ln2 : a.layers[l].out;
  }

  /** Runs the network on a batch, leaving logits in the activations (in the model's precision, then restored). */
  private run(batch: Batch): Acts {
    this.checkAlive();
    return withPrecision(this.be, this.precision, () => this.runPass(batch));
  }

  private runPass(batch: Batch): Acts {
    this.syncDevice();
    const be = this.be;
    const { B, T, data: ids } = batch;
    const cfg = this.config;
    const { n_embd: C, vocab_size: V, n_positions: P } = cfg;
    const N = B * T;
    const a = this.ensureActs(B, T);
    const eps = cfg.layer_norm_epsilon;
    const drop = this.training;
    let seeds: number[] | null = null;
    if (drop && (cfg.embd_pdrop > 0 || cfg.resid_pdrop > 0 || cfg.attn_pdrop > 0)) {
      const step = this.dropoutStep++;
      seeds = [];
      for (let s = 0; s < 1 + 3 * cfg.n_layer; s++) seeds.push((hash32(this.dropoutSeed, step * 4096 + s) & 0xfffff) * 4294967296 + hash32(step, s ^ 0x5bd1e995));
    }
    const dropout = (x: Buf, p: number, site: number) => {
      if (seeds && p > 0) be.dropout(x, x, p, seeds[site], 0);
    };

    be.embeddingForward(a.x0, ids, this.p('wte.weight'), this.p('wpe.weight'), B, T, C, V, P, 0);
    dropout(a.x0, cfg.embd_pdrop, 0);
    let x = a.x0;
    // a residual add whose sum is written by the LayerNorm that reads it next (layernormForward's addA, addB: one
    // pass over the rows instead of an add and a LayerNorm)
    let pending: [Buf, Buf] | null = null;
    const lnOf = (out: Buf, mean: Buf, rstd: Buf, inp: Buf, w: Buf, b: Buf) => {
      if (pending) be.layernormForward(out, mean, rstd, inp, w, b, N, C, eps, pending[0], pending[1]);
      else be.layernormForward(out, mean, rstd, inp, w, b, N, C, eps);
      pending = null;
    };
    for (let l = 0; l < cfg.n_layer; l++) {
      const L = a.layers[l];
      const h = `h.${l}.`;
      const attnP = seeds ? cfg.attn_pdrop : 0;
      const shape = this.attnShape(B, T, l, seeds ? seeds[1 + 3 * l] : 0, attnP);
      if (cfg.variant === 'gpt1') {
        // a = x + drop(attn(x)); n = LN1(a); m = n + drop(mlp(n)); out = LN2(m)
        be.linearForward(L.qkv, x, this.w(h + 'attn.c_attn.weight'), this.p(h + 'attn.c_attn.bias'), N, C, 3 * C);
        be.attentionForward(L.atty, L.lse, L.qkv, be.view(L.qkv, C), be.view(L.qkv, 2 * C), shape);
        be.linearForward(L.attproj, L.atty, this.w(h + 'attn.c_proj.weight'), this.p(h + 'attn.c_proj.bias'), N, C, C);
        dropout(L.attproj, cfg.resid_pdrop, 2 + 3 * l);
        pending = [x, L.attproj];
        lnOf(L.ln1, L.ln1Mean, L.ln1Rstd, L.mid, this.p(h + 'ln_1.weight'), this.p(h + 'ln_1.bias')); // mid = x + attproj
        be.linearForward(L.fch, L.ln1, this.w(h + 'mlp.c_fc.weight'), this.p(h + 'mlp.c_fc.bias'), N, C, 4 * C, L.fchGelu);
        be.linearForward(L.fcproj, L.fchGelu, this.w(h + 'mlp.c_proj.weight'), this.p(h + 'mlp.c_proj.bias'), N, 4 * C, C);
        dropout(L.fcproj, cfg.resid_pdrop, 3 + 3 * l);
        pending = [L.ln1, L.fcproj];
        lnOf(L.ln2, L.ln2Mean, L.ln2Rstd, L.out, this.p(h + 'ln_2.weight'), this.p(h + 'ln_2.bias')); // out = ln1 + fcproj
        x = L.ln2;
      } else {
        // r = x + drop(attn(LN1(x))); out = r + drop(mlp(LN2(r)))
        lnOf(L.ln1, L.ln1Mean, L.ln1Rstd, x, this.p(h + 'ln_1.weight'), this.p(h + 'ln_1.bias')); // (x = the last layer's out)
        be.linearForward(L.qkv, L.ln1, this.w(h + 'attn.c_attn.weight'), this.p(h + 'attn.c_attn.bias'), N, C, 3 * C);
        be.attentionForward(L.atty, L.lse, L.qkv, be.view(L.qkv, C), be.view(L.qkv, 2 * C), shape);
        be.linearForward(L.attproj, L.atty, this.w(h + 'attn.c_proj.weight'), this.p(h + 'attn.c_proj.bias'), N, C, C);
        dropout(L.attproj, cfg.resid_pdrop, 2 + 3 * l);
        pending = [x, L.attproj];
        lnOf(L.ln2, L.ln2Mean, L.ln2Rstd, L.mid, this.p(h + 'ln_2.weight'), this.p(h + 'ln_2.bias')); // mid = x + attproj
        be.linearForward(L.fch, L.ln2, this.w(h + 'mlp.c_fc.weight'), this.p(h + 'mlp.c_fc.bias'), N, C, 4 * C, L.fchGelu);
        be.linearForward(L.fcproj, L.fchGelu, this.w(h + 'mlp.c_proj.weight'), this.p(h + 'mlp.c_proj.bias'), N, 4 * C, C);
        dropout(L.fcproj, cfg.resid_pdrop, 3 + 3 * l);
        pending = [L.mid, L.fcproj]; // out = mid + fcproj, written by the next LayerNorm (ln_1 or ln_f)
        x = L.out;
      }
    }
    let hfinal = x;
    if (cfg.variant !== 'gpt1') {
      lnOf(a.lnf, a.lnfMean, a.lnfRstd, x, this.p('ln_f.weight'), this.p('ln_f.bias'));
      hfinal = a.lnf;
    }
    // logits (N, V) = h (N, C) · wteᵀ (tied output embedding; with the padding, Vp columns, the last Vp - V zeros)
    const head = this.lmHead(a.Vp);
    be.gemm(false, true, N, head.rows, C, 1, hfinal, C, head.w, C, a.logits, a.Vp, false, null);
    this.pass = { ids, targets: null, count: 0, seeds, logitsValid: true, gradReady: false };
    return a;
  }

  /**
   * Logits for a batch of token ids: a Float32Array of shape [B, T, V] (a copy).
   * Example: `model.forward([[464, 3290]])`.
   */
  forward(ids: TokenIds, opts: IdsOptions = {}): Float32Array {
    const V = this.config.vocab_size;
    const batch = toBatch(ids, 'ids', V, this.config.n_positions, opts);
    const a = this.run(batch);
    const N = batch.B * batch.T;
    const raw = this.be.download(this.be.view(a.logits, 0, N * a.Vp));
    if (a.Vp === V) return raw;
    const out = new Float32Array(N * V); // drop the padding columns
    for (let n = 0; n < N; n++) out.set(raw.subarray(n * a.Vp, n * a.Vp + V), n * V);
    return out;
  }

  /**
   * Mean cross-entropy of `targets` given `ids` (same shape; -1 marks positions to ignore). Keeps what
   * backward() needs. Example: `const loss = model.loss(ids, targets); model.backward()`.
   */
  loss(ids: TokenIds, targets: TokenIds, opts: LossOptions = {}): number {
    const { vocab_size: V, n_positions: P } = this.config;
    const batch = toBatch(ids, 'ids', V, P, opts);
    const tb = toBatch(targets, 'targets', V, P, opts, true);
    if (tb.B !== batch.B || tb.T !== batch.T)
      throw new RangeError(`Expected targets of shape [${batch.B}, ${batch.T}] (like ids) for targets but received [${tb.B}, ${tb.T}]`);
    const gradient = opts.gradient ?? false;
    if (typeof gradient !== 'boolean') throw new TypeError(`Expected true or false for gradient but received ${String(gradient)}`);
    const a = this.run(batch);
    const N = batch.B * batch.T;
    let count: number;
    if (gradient) {
      let rows = 0; // the scale 1/count is needed before the pass that counts
      for (let i = 0; i < N; i++) rows += tb.data[i] !== -1 ? 1 : 0;
      // dlogits (in place) = (softmax - onehot) / count; backward() applies its scale in the lm-head GEMMs
      count = this.be.softmaxXentForward(a.losses, a.lse, a.logits, tb.data, N, V, -1, a.Vp, a.logits, rows > 0 ? 1 / rows : 0);
      this.pass!.logitsValid = false;
      this.pass!.gradReady = true;
    } else {
      count = this.be.softmaxXentForward(a.losses, a.lse, a.logits, tb.data, N, V, -1, a.Vp);
    }
    const losses = this.be.download(this.be.view(a.losses, 0, N), false);
    let sum = 0;
    for (let i = 0; i < N; i++) sum += losses[i];
    this.pass!.targets = tb.data;
    this.pass!.count = count;
    return count > 0 ? sum / count : 0;
  }

  /**
   * Gradients of the last loss() (times `scale`, e.g. 1/accumulationSteps), added into every parameter's
   * grad (+=): call zeroGrad() between steps. `hiddenGrad` (B·T, C), if given, is added to the gradient of
   * the final hidden states (a task head's gradient, for fine-tuning).
   */
  backward(scale = 1, opts: { hiddenGrad?: Float32Array } = {}): void {
    this.checkAlive();
    withPrecision(this.be, this.precision, () => this.backwardPass(scale, opts));
  }

  private backwardPass(scale: number, opts: { hiddenGrad?: Float32Array }): void {
    const pass = this.pass;
    if (!pass || !pass.targets || !(pass.logitsValid || pass.gradReady) || !this.acts)
      throw new Error('backward() needs a loss() first: call model.loss(ids, targets) before model.backward()');
    checkNumber(scale, 'scale');
    this.syncDevice();
    this.deviceGrads(); // allocate on first use
    const be = this.be;
    const a = this.acts;
    const cfg = this.config;
    const { B, T } = a;
    const N = B * T;
    const { n_embd: C, vocab_size: V, n_positions: P } = cfg;
    const seeds = pass.seeds;
    // the gradient through a dropout site: into `out` where the site dropped anything, else x itself (no copy)
    const undrop = (x: Buf, out: Buf, p: number, site: number): Buf => {
      if (!seeds || p <= 0) return x;
      be.dropout(out, x, p, seeds[site], 0);
      return out;
    };
    const head = this.lmHead(a.Vp); // (the padded rows: dlogits keeps the forward's zeros in its padding columns)
    // dlogits (in place) = (softmax - onehot) · scale / count; after loss(…, { gradient: true }) logits holds
    // (softmax - onehot) / count already, and the GEMMs below apply the scale
    let alpha = 1;
    if (pass.gradReady) alpha = scale;
    else be.softmaxXentBackward(a.logits, a.logits, a.lse, pass.targets, N, V, -1, pass.count > 0 ? scale / pass.count : 0, a.Vp);
    pass.logitsValid = pass.gradReady = false;
    const hfinal = cfg.variant === 'gpt1' ? this.layerOut(a, cfg.n_layer - 1) : a.lnf;
    const dh = cfg.variant === 'gpt1' ? a.dres : a.dln;
    be.gemm(false, false, N, C, head.rows, alpha, a.logits, a.Vp, head.w, C, dh, C, false, null); // dh (N,C) = dlogits · wte
    be.gemm(true, false, V, C, N, alpha, a.logits, a.Vp, hfinal, C, this.g('wte.weight'), C, true, null); // dwte += dlogitsᵀ · h
    if (opts.hiddenGrad) {
      if (!(opts.hiddenGrad instanceof Float32Array) || opts.hiddenGrad.length !== N * C)
        throw new RangeError(`Expected a Float32Array of ${N}·${C} values for hiddenGrad but received ${opts.hiddenGrad?.length}`);
      const dhv = be.view(dh, 0, N * C);
      let hg: Buf = opts.hiddenGrad;
      if (be.device !== 'cpu') {
        hg = be.view(a.dtmp, 0, N * C); // free until the layer loop
        be.upload(hg, opts.hiddenGrad);
      }
      be.add(dhv, dhv, hg);
    }
    if (cfg.variant !== 'gpt1') {
      const xl = this.layerOut(a, cfg.n_layer - 1);
      be.layernormBackward(a.dres, this.g('ln_f.weight'), this.g('ln_f.bias'), a.dln, xl, this.p('ln_f.weight'), a.lnfMean, a.lnfRstd, N, C);
    }
    // a.dres now holds d(loss)/d(output of the last layer)
    for (let l = cfg.n_layer - 1; l >= 0; l--) {
      const L = a.layers[l];
      const h = `h.${l}.`;
      const x = l === 0 ? a.x0 : this.layerOut(a, l - 1);
      const shape = this.attnShape(B, T, l, seeds ? seeds[1 + 3 * l] : 0, seeds ? cfg.attn_pdrop : 0);
      if (cfg.variant === 'gpt1') {
        // out = LN2(m): dm
        be.layernormBackward(a.dtmp, this.g(h + 'ln_2.weight'), this.g(h + 'ln_2.bias'), a.dres, L.out, this.p(h + 'ln_2.weight'), L.ln2Mean, L.ln2Rstd, N, C);
        // m = n + drop(mlp(n)): dn = dm + mlp'(drop'(dm))
        const dm = undrop(a.dtmp, a.dC, cfg.resid_pdrop, 3 + 3 * l);
        be.linearBackward(a.dfc, this.g(h + 'mlp.c_proj.weight'), this.g(h + 'mlp.c_proj.bias'), dm, L.fchGelu, this.w(h + 'mlp.c_proj.weight'), N, 4 * C, C, L.fch);
        be.linearBackward(a.dln, this.g(h + 'mlp.c_fc.weight'), this.g(h + 'mlp.c_fc.bias'), a.dfc, L.ln1, this.w(h + 'mlp.c_fc.weight'), N, C, 4 * C);
        be.add(a.dtmp, a.dtmp, a.dln); // dn
        // n = LN1(a): da
        be.layernormBackward(a.dres, this.g(h + 'ln_1.weight'), this.g(h + 'ln_1.bias'), a.dtmp, L.mid, this.p(h + 'ln_1.weight'), L.ln1Mean, L.ln1Rstd, N, C);
        // a = x + drop(attn(x)): dx = da + attn'(drop'(da))
        const da = undrop(a.dres, a.dC, cfg.resid_pdrop, 2 + 3 * l);
        be.linearBackward(a.datty, this.g(h + 'attn.c_proj.weight'), this.g(h + 'attn.c_proj.bias'), da, L.atty, this.w(h + 'attn.c_proj.weight'), N, C, C);
        be.attentionBackward(a.dqkv, be.view(a.dqkv, C), be.view(a.dqkv, 2 * C), a.datty, L.qkv, be.view(L.qkv, C), be.view(L.qkv, 2 * C), L.atty, L.lse, shape);
        be.linearBackward(a.dln, this.g(h + 'attn.c_attn.weight'), this.g(h + 'attn.c_attn.bias'), a.dqkv, x, this.w(h + 'attn.c_attn.weight'), N, C, 3 * C);
        be.add(a.dres, a.dres, a.dln);
      } else {
        // out = r + drop(mlp(LN2(r))): dr = dout + LN2'(mlp'(drop'(dout)))
        const dm = undrop(a.dres, a.dC, cfg.resid_pdrop, 3 + 3 * l);
        be.linearBackward(a.dfc, this.g(h + 'mlp.c_proj.weight'), this.g(h + 'mlp.c_proj.bias'), dm, L.fchGelu, this.w(h + 'mlp.c_proj.weight'), N, 4 * C, C, L.fch);
        be.linearBackward(a.dln, this.g(h + 'mlp.c_fc.weight'), this.g(h + 'mlp.c_fc.bias'), a.dfc, L.ln2, this.w(h + 'mlp.c_fc.weight'), N, C, 4 * C);
        be.layernormBackward(a.dres, this.g(h + 'ln_2.weight'), this.g(h + 'ln_2.bias'), a.dln, L.mid, this.p(h + 'ln_2.weight'), L.ln2Mean, L.ln2Rstd, N, C, true); // dres +=
        // r = x + drop(attn(LN1(x))): dx = dr + LN1'(attn'(drop'(dr)))
        const da = undrop(a.dres, a.dC, cfg.resid_pdrop, 2 + 3 * l);
        be.linearBackward(a.datty, this.g(h + 'attn.c_proj.weight'), this.g(h + 'attn.c_proj.bias'), da, L.atty, this.w(h + 'attn.c_proj.weight'), N, C, C);
        be.attentionBackward(a.dqkv, be.view(a.dqkv, C), be.view(a.dqkv, 2 * C), a.datty, L.qkv, be.view(L.qkv, C), be.view(L.qkv, 2 * C), L.atty, L.lse, shape);
        be.linearBackward(a.dln, this.g(h + 'attn.c_attn.weight'), this.g(h + 'attn.c_attn.bias'), a.dqkv, L.ln1, this.w(h + 'attn.c_attn.weight'), N, C, 3 * C);
        be.layernormBackward(a.dres, this.g(h + 'ln_1.weight'), this.g(h + 'ln_1.bias'), a.dln, x, this.p(h + 'ln_1.weight'), L.ln1Mean, L.ln1Rstd, N, C, true); // dres +=
      }
    }
    const dx0 = undrop(a.dres, a.dres, cfg.embd_pdrop, 0);
    be.embeddingBackward(this.g('wte.weight'), this.g('wpe.weight'), dx0, pass.ids, B, T, C, V, P, 0);
    this.markUpdated({ grads: true });
  }

  /** Sets every gradient to zero. */
  zeroGrad(): void {
    this.checkAlive();
    if (this.be.device === 'cpu') {
      if (this.gradBuf) this.gradBuf.fill(0);
      return;
    }
    if (this.gradBuf) this.gradBuf.fill(0);
    if (this.dGrads) this.be.fill(this.dGrads, 0);
    this.hostGradsStale = this.devGradsStale = false;
  }

  /** Global L2 norm of all gradients. */
  gradNorm(): number {
    this.checkAlive();
    this.syncDevice();
    const g = this.be.device === 'cpu' ? this.gradBuf : this.dGrads;
    return g ? Math.sqrt(this.be.sumsq(g)) : 0;
  }

  /**
   * Scales gradients so their global L2 norm is at most `max` (as torch.nn.utils.clip_grad_norm_) and
   * returns the norm before clipping. Example: `const norm = model.clipGradNorm(1.0)`.
   */
  clipGradNorm(max: number): number {
    checkNumber(max, 'max', 0);
    const norm = this.gradNorm();
    const coef = max / (norm + 1e-6);
    if (coef < 1) {
      const g = this.be.device === 'cpu' ? this.gradBuf : this.dGrads;
      if (g) this.be.scale(g, coef);
      this.markUpdated({ grads: true });
    }
    return norm;
  }

  /** Releases the model's memory; any later call throws. */
  dispose(): void {
    if (this.disposed) return;
    this.freeActs();
    this.freeParams16();
    if (this.be.device !== 'cpu') {
      this.be.free(this.dParams);
      if (this.dGrads) this.be.free(this.dGrads);
    }
    this.dGrads = null;
    this.pass = null;
    this.gradBuf = null;
    this.views.clear();
    this.disposed = true;
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('This GPT was disposed; create or load a new one');
  }
}
