/**
 * MinHash signatures over word shingles, and the LSH index that finds candidate near-duplicates.
 *
 * Shingles: the lower-cased words (letters and digits) of a document, taken `shingle` at a time (5 by
 * default); a document with fewer words has one shingle made of all of them, an empty one has none.
 *
 * Signature: one-permutation hashing with optimal densification (Li, Owen & Zhang 2012; Shrivastava 2017).
 * Each shingle is hashed once to 32 bits h; its bin is ⌊h·k / 2³²⌋ and the bin keeps the least h it sees.
 * A bin no shingle fell into borrows the value of the first non-empty bin on a fixed pseudo-random probe
 * sequence (the same for every document). For two documents, P(sig_a[i] = sig_b[i]) = Jaccard(a, b), as with
 * k independent permutations, at the cost of one hash per shingle instead of k: this is what makes signing run
 * at hundreds of MB/s. The estimate Ĵ = (1/k)·#{i : sig_a[i] = sig_b[i]}.
 *
 * LSH: the first bands × rows values of a signature are cut into `bands` bands (hash tables) of `rows`
 * values; two documents are candidates when any band agrees, with probability 1 − (1 − J^rows)^bands.
 * With the defaults (10 tables × 5 rows, 128 values) that is 98% at J = 0.8, 84% at 0.7 and 2.4% at 0.3;
 * candidates are then confirmed with Ĵ ≥ threshold on the whole signature.
 */
import { fmix32, FNV_OFFSET, FNV_PRIME, letterTable } from './hash';

export interface MinHashOptions {
  /** Signature length k (default 128). */
  hashes?: number;
  /** Words per shingle (default 5). */
  shingle?: number;
  /** Seed of the hash family (default 1); documents compared must share it. */
  seed?: number;
}

const EMPTY = 0xffffffff;

/** Signs documents; keep one per thread (it owns scratch space). */
export class MinHasher {
  readonly hashes: number;
  readonly shingle: number;
  readonly seed: number;
  private readonly ring: Int32Array;
  private readonly probe: Uint16Array; // for each bin, a probe order of candidate donors (first 8)

  constructor(opts: MinHashOptions = {}) {
    const k = opts.hashes ?? 128;
    const n = opts.shingle ?? 5;
    if (!Number.isInteger(k) || k < 1 || k > 4096) throw new RangeError(`Expected an integer in [1, 4096] for hashes but received ${k}`);
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError(`Expected an integer in [1, 64] for shingle but received ${n}`);
    this.hashes = k;
    this.shingle = n;
    this.seed = (opts.seed ?? 1) >>> 0;
    this.ring = new Int32Array(n);
    this.probe = new Uint16Array(k * 8);
    for (let i = 0; i < k; i++) for (let a = 0; a < 8; a++) this.probe[i * 8 + a] = this.donor(i, a + 1);
  }

  private donor(bin: number, attempt: number): number {
    const h = fmix32((Math.imul(bin + 1, 0x9e3779b1) ^ Math.imul(attempt, 0x85ebca77) ^ this.seed) >>> 0);
    return Math.floor((h * this.hashes) / 4294967296);
  }

  /**
   * The signature of one text (k uint32 values), written into `out` when given. Returns null for a text
   * without words. Example: `new MinHasher().sign('the quick brown fox jumps over the lazy dog')`.
   */
  sign(text: string, out?: Uint32Array): Uint32Array | null {
    const k = this.hashes;
    const n = this.shingle;
    const sig = out ?? new Uint32Array(k);
    sig.fill(EMPTY);
    const L = letterTable();
    const ring = this.ring;
    const seedMix = Math.imul(this.seed, 0x27d4eb2f) | 0;
    let pos = 0; // ring write position
    let count = 0; // words seen
    let h = FNV_OFFSET;
    let inWord = false;
    const len = text.length;
    for (let i = 0; i <= len; i++) {
      let l = 0;
      if (i < len) {
        const c = text.charCodeAt(i);
        l = L[c];
        if (l === 0 && c >= 48 && c <= 57) l = c;
      }
      if (l !== 0) {
        h = Math.imul(h ^ l, FNV_PRIME);
        inWord = true;
      } else if (inWord) {
        ring[pos] = fmix32(h);
        pos = pos + 1 === n ? 0 : pos + 1;
        count++;
        h = FNV_OFFSET;
        inWord = false;
        if (count >= n) {
          // shingle = the last n words, oldest first (the oldest sits at pos)
          let s = seedMix;
          let p = pos;
          for (let j = 0; j < n; j++) {
            s = Math.imul(s ^ ring[p], 0x9e3779b1);
            s ^= s >>> 15;
            p = p + 1 === n ? 0 : p + 1;
          }
          const v = fmix32(s);
          const bin = Math.floor((v * k) / 4294967296);
          if (v < sig[bin]) sig[bin] = v;
        }
      }
    }
    if (count === 0) return null;
    if (count < n) {
      let s = seedMix;
      for (let j = 0; j < count; j++) {
        s = Math.imul(s ^ ring[j], 0x9e3779b1);
        s ^= s >>> 15;
      }
      const v = fmix32(s);
      sig[Math.floor((v * k) / 4294967296)] = v;
    }
    this.densify(sig);
    return sig;
  }

  /** Fills empty bins from the first non-empty bin on each bin's probe sequence (values from before filling). */
  private densify(sig: Uint32Array): void {
    const k = this.hashes;
    let empty = 0;
    for (let i = 0; i < k; i++) if (sig[i] === EMPTY) empty++;
    if (empty === 0) return;
    const orig = sig.slice();
    for (let i = 0; i < k; i++) {
      if (orig[i] !== EMPTY) continue;
      let v = EMPTY;
      for (let a = 0; a < 8 && v === EMPTY; a++) v = orig[this.probe[i * 8 + a]];
      for (let a = 9; v === EMPTY; a++) v = orig[this.donor(i, a)];
      sig[i] = v;
    }
  }
}

/** Ĵ: the fraction of equal positions. Example: `estimateJaccard(sigA, sigB)` → 0.86. */
export function estimateJaccard(a: Uint32Array, b: Uint32Array, aOff = 0, bOff = 0, k = a.length - aOff): number {
  let eq = 0;
  for (let i = 0; i < k; i++) if (a[aOff + i] === b[bOff + i]) eq++;
  return eq / k;
}

/** The exact Jaccard similarity of two texts' shingle sets (slow; for tests). */
export function exactJaccard(a: string, b: string, shingle = 5): number {
  const sh = (t: string): Set<string> => {
    const w: string[] = [];
    const L = letterTable();
    let cur = '';
    for (let i = 0; i <= t.length; i++) {
      const c = i < t.length ? t.charCodeAt(i) : 32;
      let l = L[c];
      if (l === 0 && c >= 48 && c <= 57) l = c;
      if (l) cur += String.fromCharCode(l);
      else if (cur) {
        w.push(cur);
        cur = '';
      }
    }
    const s = new Set<string>();
    if (w.length > 0 && w.length < shingle) s.add(w.join(' '));
    for (let i = 0; i + shingle <= w.length; i++) s.add(w.slice(i, i + shingle).join(' '));
    return s;
  };
  const A = sh(a);
  const B = sh(b);
  let inter = 0;
  for (const x of A) if (B.has(x)) inter++;
  const uni = A.size + B.size - inter;
  return uni === 0 ? 0 : inter / uni;
}

export interface LshOptions {
  /** Hash tables (default 10, as in GPT-3's Spark MinHashLSH). */
  bands?: number;
  /** Signature values per band (default 5). */
  rows?: number;
}

/**
 * A growable store of signatures plus `bands` hash tables from band key to document ids.
 * Example: `const idx = new LshIndex(128, { bands: 10, rows: 5 }); idx.add(sig)` → id 0.
 */
export class LshIndex {
  readonly k: number;
  readonly bands: number;
  readonly rows: number;
  private sigs: Uint32Array;
  private n = 0;
  private readonly tables: Map<number, number | number[]>[];

  constructor(k: number, opts: LshOptions = {}) {
    this.k = k;
    this.bands = opts.bands ?? 10;
    this.rows = opts.rows ?? 5;
    if (!Number.isInteger(this.bands) || this.bands < 1)
      throw new RangeError(`Expected a positive integer for bands but received ${this.bands}`);
    if (!Number.isInteger(this.rows) || this.rows < 1)
      throw new RangeError(`Expected a positive integer for rows but received ${this.rows}`);
    if (this.bands * this.rows > k)
      throw new RangeError(`Expected bands × rows ≤ hashes (${k}) but received ${this.bands} × ${this.rows} = ${this.bands * this.rows}`);
    this.sigs = new Uint32Array(k * 1024);
    this.tables = Array.from({ length: this.bands }, () => new Map());
  }

  get size(): number {
    return this.n;
  }

  /** The stored signature of document `id` (a view). */
  signature(id: number): Uint32Array {
    return this.sigs.subarray(id * this.k, (id + 1) * this.k);
  }

  private key(sig: Uint32Array, off: number, band: number): number {
    let h1 = 0x12345678 ^ band;
    let h2 = 0x9abcdef1 ^ Math.imul(band, 0x85ebca77);
    const base = off + band * this.rows;
    for (let r = 0; r < this.rows; r++) {
      const v = sig[base + r];
      h1 = Math.imul(h1 ^ v, 0x9e3779b1);
      h1 ^= h1 >>> 16;
      h2 = Math.imul(h2 ^ v, 0xc2b2ae35);
      h2 ^= h2 >>> 13;
    }
    // 53-bit key: collisions between different bands' contents are ~2^-53
    return (fmix32(h1) >>> 0) * 2097152 + (fmix32(h2) >>> 11);
  }

  /** Ids of stored documents sharing a band with `sig` (each once), without adding it. */
  candidates(sig: Uint32Array, off = 0): number[] {
    const out = new Set<number>();
    for (let b = 0; b < this.bands; b++) {
      const e = this.tables[b].get(this.key(sig, off, b));
      if (e === undefined) continue;
      if (typeof e === 'number') out.add(e);
      else for (const id of e) out.add(id);
    }
    return [...out];
  }

  /** Stores `sig` and indexes its bands; returns its id (0, 1, 2, …). */
  add(sig: Uint32Array, off = 0): number {
    const id = this.n++;
    if (this.n * this.k > this.sigs.length) {
      const s2 = new Uint32Array(this.sigs.length * 2);
      s2.set(this.sigs);
      this.sigs = s2;
    }
    this.sigs.set(sig.subarray(off, off + this.k), id * this.k);
    for (let b = 0; b < this.bands; b++) {
      const t = this.tables[b];
      const key = this.key(sig, off, b);
      const e = t.get(key);
      if (e === undefined) t.set(key, id);
      else if (typeof e === 'number') t.set(key, [e, id]);
      else if (e.length < 256) e.push(id); // a huge bucket is one big cluster: its first members suffice
    }
    return id;
  }

  /** Ĵ between stored document `id` and `sig`. */
  similarity(id: number, sig: Uint32Array, off = 0): number {
    return estimateJaccard(this.sigs, sig, id * this.k, off, this.k);
  }
}
