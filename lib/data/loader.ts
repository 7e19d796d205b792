/**
 * Batches for training from token shards. The token stream of a shard is cut into non-overlapping windows
 * of T+1 tokens (inputs = the first T, targets = the last T); within an epoch every window is drawn once
 * (sampling without replacement): shards in a shuffled order, windows of a shard in a shuffled order. Only
 * one shard is in memory at a time, so corpora larger than memory work. The position (epoch, shard, window,
 * generator state) is saved in checkpoints, so a resumed run sees exactly the batches it would have seen.
 */
import { Rng } from '../random';
import { readShard, readShardHeader } from './shards';

export interface LoaderState {
  epoch: number;
  order: number[];
  shardCursor: number;
  windowCursor: number;
  rngAtShard: number[];
}

export interface TokenBatch {
  x: Int32Array;
  y: Int32Array;
  B: number;
  T: number;
}

export class ShardLoader {
  private readonly counts: number[];
  private readonly rng: Rng;
  private epoch = 0;
  private order: number[] = [];
  private shardCursor = 0;
  private windowCursor = 0;
  private rngAtShard: number[] = [];
  private tokens: Uint16Array | null = null;
  private perm: Uint32Array | null = null;
  /** Windows in the whole dataset. */
  readonly windows: number;

  constructor(private readonly files: string[], private readonly T: number, seed: number) {
    if (files.length === 0) throw new Error('No token shards to read');
    this.counts = files.map((f) => readShardHeader(f).tokens);
    this.windows = this.counts.reduce((a, n) => a + this.windowsIn(n), 0);
    if (this.windows === 0) {
      const total = this.counts.reduce((a, b) => a + b, 0);
      throw new Error(`The corpus has ${total} tokens, fewer than one sequence of ${T + 1}; use more text or a shorter --seq`);
    }
    this.rng = new Rng(seed);
    this.startEpoch();
  }

  private windowsIn(n: number): number {
    return n > this.T ? Math.floor((n - 1) / this.T) : 0;
  }

  private startEpoch(): void {
    this.order = this.rng.shuffle(this.files.map((_, i) => i));
    this.shardCursor = 0;
    this.loadShard();
  }

  private loadShard(): void {
    this.rngAtShard = this.rng.getState();
    const idx = this.order[this.shardCursor];
    this.tokens = readShard(this.files[idx]);
    const w = this.windowsIn(this.tokens.length);
    this.perm = this.rng.shuffle(Uint32Array.from({ length: w }, (_, i) => i));
    this.windowCursor = 0;
  }

  private nextWindow(x: Int32Array, y: Int32Array, row: number): void {
    while (this.windowCursor >= this.perm!.length) {
      this.shardCursor++;
      if (this.shardCursor >= this.order.length) {
        this.epoch++;
        this.startEpoch();
      } else this.loadShard();
    }
    const start = this.perm![this.windowCursor++] * this.T;
    const t = this.tokens!;
    for (let i = 0; i < this.T; i++) {
      x[row * this.T + i] = t[start + i];
      y[row * this.T + i] = t[start + i + 1];
    }
  }

  /** The next B sequences. */
  next(B: number): TokenBatch {
    const x = new Int32Array(B * this.T), y = new Int32Array(B * this.T);
    for (let b = 0; b < B; b++) this.nextWindow(x, y, b);
    return { x, y, B, T: this.T };
  }

  /** Epochs completed so far plus the fraction of the current one. */
  get epochs(): number {
    return this.epoch;
  }

  state(): LoaderState {
    return { epoch: this.epoch, order: this.order.slice(), shardCursor: this.shardCursor, windowCursor: this.windowCursor, rngAtShard: this.rngAtShard.slice() };
  }

  restore(s: LoaderState): void {
    this.epoch = s.epoch;
    this.order = s.order.slice();
    this.shardCursor = s.shardCursor;
    this.rng.setState(s.rngAtShard);
    this.loadShard(); // regenerates the same permutation and advances the generator as before
    this.windowCursor = s.windowCursor;
  }
}

/** Fixed validation batches: the first `maxBatches` × B windows of the validation shards, in order. */
export function* validationBatches(files: string[], T: number, B: number, maxBatches: number): Generator<TokenBatch> {
  let made = 0;
  let x = new Int32Array(B * T), y = new Int32Array(B * T), row = 0;
  for (const f of files) {
    const t = readShard(f);
    for (let start = 0; start + T < t.length; start += T) {
      for (let i = 0; i < T; i++) {
        x[row * T + i] = t[start + i];
        y[row * T + i] = t[start + i + 1];
      }
      if (++row === B) {
        yield { x, y, B, T };
        if (++made >= maxBatches) return;
        x = new Int32Array(B * T);
        y = new Int32Array(B * T);
        row = 0;
      }
    }
  }
  // a partial last batch only when there is no full one (keeps one activation shape)
  if (row > 0 && made === 0) yield { x: x.subarray(0, row * T), y: y.subarray(0, row * T), B: row, T };
}
