/**
 * Next-token selection from logits: greedy (temperature 0), or sampling at a temperature from the top-k
 * and/or nucleus (top-p) set, renormalised. `distribution` returns the filtered probabilities, which
 * speculative decoding needs for its accept/reject rule.
 */
import { Rng } from './random';

export interface SamplingOptions {
  /** 0 = greedy; default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = all). */
  topP?: number;
}

/** Index of the largest logit (ties: the lowest index). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bv = logits[0];
  for (let i = 1; i < logits.length; i++) if (logits[i] > bv) { bv = logits[i]; best = i; }
  return best;
}

/** Sparse distribution after temperature, top-k and top-p: token ids and their probabilities (sum 1). */
export function distribution(logits: Float32Array, o: SamplingOptions): { ids: Int32Array; probs: Float64Array } {
  const temperature = o.temperature ?? 1;
  if (temperature === 0) {
    return { ids: Int32Array.of(argmax(logits)), probs: Float64Array.of(1) };
  }
  const V = logits.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  // candidates: anything within 40 nats (after temperature) of the best; the rest is below 4e-18 each
  const cut = max - 40 * temperature;
  const cand: number[] = [];
  for (let i = 0; i < V; i++) if (logits[i] >= cut) cand.push(i);
  cand.sort((a, b) => logits[b] - logits[a] || a - b);
  const topK = o.topK && o.topK > 0 ? Math.min(o.topK, cand.length) : cand.length;
  const kept = cand.slice(0, topK);
  const w = kept.map((i) => Math.exp((logits[i] - max) / temperature));
  let sum = w.reduce((a, b) => a + b, 0);
  let n = kept.length;
  const topP = o.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    for (let j = 0; j < kept.length; j++) {
      acc += w[j] / sum;
      if (acc >= topP) { n = j + 1; break; }
    }
    sum = w.slice(0, n).reduce((a, b) => a + b, 0);
  }
  const ids = new Int32Array(n), probs = new Float64Array(n);
  for (let j = 0; j < n; j++) { ids[j] = kept[j]; probs[j] = w[j] / sum; }
  return { ids, probs };
}

/** Draws one token from a sparse distribution. */
export function drawFrom(d: { ids: Int32Array; probs: Float64Array }, rng: Rng): number {
  let u = rng.uniform();
  for (let j = 0; j < d.ids.length; j++) {
    u -= d.probs[j];
    if (u < 0) return d.ids[j];
  }
  return d.ids[d.ids.length - 1];
}

/** The next token: argmax at temperature 0, else a draw from the filtered distribution. */
export function sampleToken(logits: Float32Array, o: SamplingOptions, rng: Rng): number {
  if ((o.temperature ?? 1) === 0) return argmax(logits);
  return drawFrom(distribution(logits, o), rng);
}
