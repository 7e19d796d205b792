/** Timing helpers for benchmarks: warm-up, then the median of N runs. */
import * as os from 'os';
import { GPTConfig, getPreset } from '../config';
import { UsageError } from '../cli/args';

export interface Timing {
  medianMs: number;
  minMs: number;
  runs: number;
}

/** Runs fn `warmup` times, then `runs` times, and returns the median and minimum in milliseconds. */
export function timeIt(fn: () => void, opts: { warmup?: number; runs?: number; minTimeMs?: number } = {}): Timing {
  const warmup = opts.warmup ?? 2;
  const minRuns = opts.runs ?? 7;
  const minTime = opts.minTimeMs ?? 0;
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minRuns || performance.now() - start < minTime) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
    if (times.length >= 1000) break;
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)], minMs: times[0], runs: times.length };
}

/** One line that names the machine, for benchmark output. */
/** The median of xs (the upper one for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown cpu'} × ${cpus.length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`;
}

/** Fills an array with uniform values in [-scale, scale) from a seeded generator. */
export function randomFill(a: Float32Array, seed = 1, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

/**
 * The model a benchmark builds for --preset: a paper preset (config.ts), or one of two shapes of its own:
 * 'small6' (GPT-2, 6 layers × 384) and 'tiny' (GPT-2, 2 layers × 128, 2 heads of 64, 1000 tokens, context 128: a
 * smoke run, as gpu-check's dry run on the CUDA emulator takes it). An unknown name is a usage error.
 */
export function benchPreset(name: string): GPTConfig {
  if (name === 'small6') return { variant: 'gpt2', n_layer: 6, n_head: 6, n_embd: 384, vocab_size: 50257, n_positions: 1024 };
  if (name === 'tiny') return { variant: 'gpt2', n_layer: 2, n_head: 2, n_embd: 128, vocab_size: 1000, n_positions: 128 };
  try {
    return getPreset(name);
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (or small6 or tiny)`);
  }
}

const FAMILY: Record<string, string> = {
  gemm: 'gemm', linearForward: 'gemm', linearBackward: 'gemm', attentionForward: 'attention', attentionBackward: 'attention',
  layernormForward: 'layernorm', layernormBackward: 'layernorm', geluForward: 'gelu', geluBackward: 'gelu',
  softmaxXentForward: 'softmax_xent', softmaxXentBackward: 'softmax_xent', embeddingForward: 'embedding',
  embeddingBackward: 'embedding', adamwStep: 'adamw', add: 'elementwise', scale: 'elementwise', dropout: 'elementwise', sumsq: 'elementwise',
};

/**
 * Wraps an addon's kernels with timers; returns the accumulator and a function that restores them. For the
 * CUDA addon (`sync`), each call waits for the queued work first and for its own work after, so the time is
 * the kernels' device time plus a launch (the step then runs without overlap between host and device).
 */
export function instrument(addon: object, sync?: () => void, every = false): { times: Map<string, number>; calls: { n: number }; restore: () => void } {
  const times = new Map<string, number>();
  const calls = { n: 0 };
  const saved: Array<[string, unknown]> = [];
  const n = addon as unknown as Record<string, unknown>;
  // every (--profile-host): each function of the addon, families as FAMILY says or by their own name
  const names = every ? Object.keys(n).filter((k) => typeof n[k] === 'function') : Object.keys(FAMILY);
  for (const name of names) {
    const fam = FAMILY[name] ?? name;
    const f = n[name] as (...a: unknown[]) => unknown;
    if (typeof f !== 'function') continue;
    saved.push([name, f]);
    n[name] = (...args: unknown[]) => {
      if (sync) sync();
      const t0 = performance.now();
      const r = f.apply(addon, args);
      if (sync) sync();
      times.set(fam, (times.get(fam) ?? 0) + performance.now() - t0);
      calls.n++;
      return r;
    };
  }
  return { times, calls, restore: () => { for (const [k, f] of saved) n[k] = f; } };
}
