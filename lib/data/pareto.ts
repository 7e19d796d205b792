/**
 * GPT-3's Pareto resampling (Brown et al. 2020, appendix A): a document with quality score s is kept when
 * `np.random.pareto(α) > 1 − s`, α = 9. NumPy's `pareto` draws the Lomax (Pareto II) distribution:
 *   X = (1 − u)^(−1/α) − 1,   u ~ U[0, 1),   P(X > x) = (1 + x)^(−α).
 * So P(keep | s) = P(X > 1 − s) = (2 − s)^(−α): 0.20% at s = 0, 2.7% at 0.5, 42% at 0.9, 100% at 1.
 *
 * The uniform draw is counter-based (see `uniform` in hash.ts): a document's fate depends only on the seed,
 * the name of its shard and its line, so a shard filtered on any machine, alone or with others, gives the
 * same result.
 */
import { uniform } from './hash';

/** NumPy's `pareto(α)` from a uniform u ∈ [0, 1). Example: `lomax(0.5, 9)` → 0.0801. */
export function lomax(u: number, alpha: number): number {
  return Math.pow(1 - u, -1 / alpha) - 1;
}

/** P(keep | score) = (2 − score)^(−α). Example: `keepProbability(0.9, 9)` → 0.4241. */
export function keepProbability(score: number, alpha = 9): number {
  return Math.pow(2 - score, -alpha);
}

/** The keep decision for one draw. Example: `paretoKeep(0.9, uniform(1, key, line), 9)`. */
export function paretoKeep(score: number, u: number, alpha = 9): boolean {
  return lomax(u, alpha) > 1 - score;
}

/** The seeded decision for a document identified by (shard key, line). */
export function paretoKeepDoc(score: number, seed: number, shardKey: number, line: number, alpha = 9): boolean {
  return paretoKeep(score, uniform(seed, shardKey, line), alpha);
}

/** Checks α. */
export function checkAlpha(alpha: number): void {
  if (!(Number.isFinite(alpha) && alpha > 0)) throw new RangeError(`Expected a positive number for alpha but received ${alpha}`);
}
