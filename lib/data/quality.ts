/**
 * The GPT-3 quality classifier (Brown et al. 2020, appendix A): a standard tokenizer (lower-case, split on
 * non-letters), hashed term-frequency features, and logistic regression trained to tell curated text
 * (positives) from raw crawl (negatives). A document's score is P(curated | text).
 *
 * Features: each word is hashed (FNV-1a + fmix32) into one of `buckets` (a power of two, 2^18 by default);
 * the feature vector is the bucket counts divided by their Euclidean norm, so long and short documents are
 * on one scale. score(x) = σ(b + w·x).
 *
 * Training: Adagrad on the logistic loss with L2 regularisation, class-balanced (each class carries half the
 * weight whatever the counts), a seeded held-out split on which accuracy and ROC AUC are reported.
 */
import * as fs from 'fs';
import { fmix32, FNV_OFFSET, FNV_PRIME, letterTable } from './hash';

export const QUALITY_FORMAT = 'gpt-native-quality';

/** A document's hashed, L2-normalised term-frequency vector (sparse). */
export interface SparseFeatures {
  indices: Uint32Array;
  values: Float32Array;
}

/** Hashed-TF scanner with reusable scratch space (one per thread). */
export class Featurizer {
  readonly buckets: number;
  private readonly mask: number;
  private readonly counts: Uint32Array;

  constructor(buckets = 1 << 18) {
    if (!Number.isInteger(buckets) || buckets < 2 || (buckets & (buckets - 1)) !== 0 || buckets > 1 << 26)
      throw new RangeError(`Expected a power of two between 2 and 2^26 for buckets but received ${buckets}`);
    this.buckets = buckets;
    this.mask = buckets - 1;
    this.counts = new Uint32Array(buckets);
  }

  // per-document bucket counts in a small open-addressing table (key = bucket + 1), so that the hot loop
  // touches only cache-resident memory and each distinct bucket's weight is read once
  private tKeys = new Int32Array(4096);
  private tCounts = new Uint32Array(4096);
  private tUsed = new Int32Array(2048);

  private grow(): void {
    const oldKeys = this.tKeys;
    const oldCounts = this.tCounts;
    const cap = oldKeys.length * 2;
    this.tKeys = new Int32Array(cap);
    this.tCounts = new Uint32Array(cap);
    const used = new Int32Array(cap / 2);
    let nu = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i];
      if (k === 0) continue;
      let slot = (k - 1) & (cap - 1);
      while (this.tKeys[slot] !== 0) slot = (slot + 1) & (cap - 1);
      this.tKeys[slot] = k;
      this.tCounts[slot] = oldCounts[i];
      used[nu++] = slot;
    }
    this.tUsed = used;
  }

  /**
   * Scores one text against weights without building the sparse vector: σ(bias + Σ_b w_b c_b / ‖c‖).
   * Example: `new Featurizer(1 << 18).score(text, model.weights, model.bias)`.
   */
  score(text: string, weights: Float32Array, bias: number): number {
    const L = letterTable();
    const mask = this.mask;
    let keys = this.tKeys;
    let counts = this.tCounts;
    let cap1 = keys.length - 1;
    let nu = 0;
    let h = FNV_OFFSET;
    let inWord = false;
    const len = text.length;
    for (let i = 0; i <= len; i++) {
      const l = i < len ? L[text.charCodeAt(i)] : 0;
      if (l !== 0) {
        h = Math.imul(h ^ l, FNV_PRIME);
        inWord = true;
      } else if (inWord) {
        const key = (fmix32(h) & mask) + 1;
        let slot = key & cap1;
        for (;;) {
          const k = keys[slot];
          if (k === key) {
            counts[slot]++;
            break;
          }
          if (k === 0) {
            keys[slot] = key;
            counts[slot] = 1;
            this.tUsed[nu++] = slot;
            if (2 * nu > cap1) {
              this.grow();
              keys = this.tKeys;
              counts = this.tCounts;
              cap1 = keys.length - 1;
            }
            break;
          }
          slot = (slot + 1) & cap1;
        }
        h = FNV_OFFSET;
        inWord = false;
      }
    }
    let sumsq = 0;
    let dot = 0;
    const used = this.tUsed;
    for (let j = 0; j < nu; j++) {
      const slot = used[j];
      const c = counts[slot];
      sumsq += c * c;
      dot += c * weights[keys[slot] - 1];
      keys[slot] = 0;
    }
    const z = bias + (sumsq > 0 ? dot / Math.sqrt(sumsq) : 0);
    return 1 / (1 + Math.exp(-z));
  }

  /** The sparse feature vector of a text. Example: `featurizer.features('Call me Ishmael.')`. */
  features(text: string): SparseFeatures {
    const L = letterTable();
    const counts = this.counts;
    const mask = this.mask;
    const idx: number[] = [];
    let h = FNV_OFFSET;
    let inWord = false;
    const len = text.length;
    for (let i = 0; i <= len; i++) {
      const l = i < len ? L[text.charCodeAt(i)] : 0;
      if (l !== 0) {
        h = Math.imul(h ^ l, FNV_PRIME);
        inWord = true;
      } else if (inWord) {
        const b = fmix32(h) & mask;
        if (counts[b]++ === 0) idx.push(b);
        h = FNV_OFFSET;
        inWord = false;
      }
    }
    idx.sort((a, b) => a - b);
    let sumsq = 0;
    for (const b of idx) sumsq += counts[b] * counts[b];
    const norm = sumsq > 0 ? 1 / Math.sqrt(sumsq) : 0;
    const indices = new Uint32Array(idx);
    const values = new Float32Array(idx.length);
    for (let j = 0; j < idx.length; j++) {
      values[j] = counts[idx[j]] * norm;
      counts[idx[j]] = 0;
    }
    return { indices, values };
  }
}

/** Options of {@link QualityClassifier.train}. */
export interface QualityTrainOptions {
  /** Hash buckets, a power of two (default 2^18, as in the paper's HashingTF). */
  buckets?: number;
  /** Passes over the training set (default 8). */
  epochs?: number;
  /** Adagrad learning rate (default 0.5). */
  lr?: number;
  /** L2 penalty per example (default 1e-6). */
  l2?: number;
  /** Fraction of each class held out for evaluation (default 0.1; 0 for none). */
  holdout?: number;
  /** Seed for the split and the shuffles (default 1). */
  seed?: number;
}

/** Held-out evaluation of a trained classifier. */
export interface QualityEval {
  n: number;
  positives: number;
  negatives: number;
  accuracy: number;
  auc: number;
}

/** The serialised model (model.json). */
export interface QualityModelJSON {
  format: typeof QUALITY_FORMAT;
  version: 1;
  tokenizer: 'lowercase-letters';
  features: 'hashed-tf-l2';
  hash: 'fnv1a32-fmix32';
  buckets: number;
  bias: number;
  /** base64 of the little-endian float32 weights, `buckets` of them */
  weights: string;
  trained?: { positives: number; negatives: number; heldOut?: QualityEval; options: QualityTrainOptions };
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * ROC AUC by the Mann-Whitney statistic (ties count one half). Example: `auc([0.9, 0.2], [1, 0])` → 1.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (labels[order[k]] === 1) {
      pos++;
      rankSum += rank;
    }
    i = j + 1;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** A trained quality classifier: `score(text)` = P(curated). */
export class QualityClassifier {
  readonly buckets: number;
  readonly weights: Float32Array;
  bias: number;
  trained?: QualityModelJSON['trained'];
  private featurizer: Featurizer | null = null;

  constructor(weights: Float32Array, bias: number) {
    this.buckets = weights.length;
    this.weights = weights;
    this.bias = bias;
  }

  /** P(curated) for one text. Example: `clf.score('It was the best of times')` → 0.93. */
  score(text: string): number {
    if (!this.featurizer) this.featurizer = new Featurizer(this.buckets);
    return this.featurizer.score(text, this.weights, this.bias);
  }

  /**
   * Trains on curated (positive) and raw (negative) texts. Returns the model and its held-out evaluation.
   * Example: `const { model, heldOut } = QualityClassifier.train(curated, crawl, { seed: 1 })`.
   */
  static train(
    positives: Iterable<string>,
    negatives: Iterable<string>,
    opts: QualityTrainOptions = {},
  ): { model: QualityClassifier; heldOut: QualityEval | null } {
    const f = new Featurizer(opts.buckets ?? 1 << 18);
    const pos: SparseFeatures[] = [];
    const neg: SparseFeatures[] = [];
    for (const t of positives) pos.push(f.features(t));
    for (const t of negatives) neg.push(f.features(t));
    return QualityClassifier.trainFeatures(pos, neg, opts);
  }

  /** Like {@link train}, on feature vectors already computed with a `Featurizer` of the same bucket count. */
  static trainFeatures(
    pos: SparseFeatures[],
    neg: SparseFeatures[],
    opts: QualityTrainOptions = {},
  ): { model: QualityClassifier; heldOut: QualityEval | null } {
    const buckets = opts.buckets ?? 1 << 18;
    const epochs = opts.epochs ?? 8;
    const lr = opts.lr ?? 0.5;
    const l2 = opts.l2 ?? 1e-6;
    const holdout = opts.holdout ?? 0.1;
    const seed = opts.seed ?? 1;
    if (pos.length === 0) throw new RangeError('Expected at least one positive (curated) document but received none');
    if (neg.length === 0) throw new RangeError('Expected at least one negative (raw) document but received none');
    if (!(holdout >= 0 && holdout < 1)) throw new RangeError(`Expected a fraction in [0, 1) for holdout but received ${holdout}`);
    const rand = rng(seed);
    const shuffle = <T>(a: T[]): T[] => {
      for (let i = a.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [a[i], a[j]] = [a[j], a[i]];
      }
      return a;
    };
    // stratified split
    type Ex = { x: SparseFeatures; y: number };
    const split = (xs: SparseFeatures[], y: number): [Ex[], Ex[]] => {
      const ex = shuffle(xs.map((x) => ({ x, y })));
      const nTest = holdout > 0 && ex.length > 1 ? Math.max(1, Math.round(ex.length * holdout)) : 0;
      return [ex.slice(nTest), ex.slice(0, nTest)];
    };
    const [pTrain, pTest] = split(pos, 1);
    const [nTrain, nTest] = split(neg, 0);
    const train = pTrain.concat(nTrain);
    const test = pTest.concat(nTest);
    // class-balanced example weights: each class sums to half the set
    const wPos = train.length / (2 * Math.max(1, pTrain.length));
    const wNeg = train.length / (2 * Math.max(1, nTrain.length));

    const w = new Float32Array(buckets);
    const g2 = new Float32Array(buckets).fill(1e-8);
    let bias = 0;
    let gb2 = 1e-8;
    for (let e = 0; e < epochs; e++) {
      shuffle(train);
      for (const { x, y } of train) {
        let z = bias;
        for (let j = 0; j < x.indices.length; j++) z += w[x.indices[j]] * x.values[j];
        const p = 1 / (1 + Math.exp(-z));
        const g = (p - y) * (y === 1 ? wPos : wNeg);
        for (let j = 0; j < x.indices.length; j++) {
          const b = x.indices[j];
          const gj = g * x.values[j] + l2 * w[b];
          g2[b] += gj * gj;
          w[b] -= (lr * gj) / Math.sqrt(g2[b]);
        }
        gb2 += g * g;
        bias -= (lr * g) / Math.sqrt(gb2);
      }
    }
    const model = new QualityClassifier(w, bias);
    let heldOut: QualityEval | null = null;
    if (test.length > 0) {
      const scores = test.map(({ x }) => {
        let z = bias;
        for (let j = 0; j < x.indices.length; j++) z += w[x.indices[j]] * x.values[j];
        return 1 / (1 + Math.exp(-z));
      });
      const labels = test.map((t) => t.y);
      let correct = 0;
      for (let i = 0; i < test.length; i++) if ((scores[i] >= 0.5 ? 1 : 0) === labels[i]) correct++;
      heldOut = {
        n: test.length,
        positives: pTest.length,
        negatives: nTest.length,
        accuracy: correct / test.length,
        auc: rocAuc(scores, labels),
      };
    }
    model.trained = {
      positives: pos.length,
      negatives: neg.length,
      ...(heldOut ? { heldOut } : {}),
      options: { buckets, epochs, lr, l2, holdout, seed },
    };
    return { model, heldOut };
  }

  /** The model.json object. */
  toJSON(): QualityModelJSON {
    const bytes = Buffer.from(this.weights.buffer, this.weights.byteOffset, this.weights.byteLength);
    return {
      format: QUALITY_FORMAT,
      version: 1,
      tokenizer: 'lowercase-letters',
      features: 'hashed-tf-l2',
      hash: 'fnv1a32-fmix32',
      buckets: this.buckets,
      bias: this.bias,
      weights: bytes.toString('base64'),
      ...(this.trained ? { trained: this.trained } : {}),
    };
  }

  /** Rebuilds a classifier from its JSON (validated). Example: `QualityClassifier.fromJSON(JSON.parse(s))`. */
  static fromJSON(j: unknown, name = 'model'): QualityClassifier {
    const o = j as Partial<QualityModelJSON> | null;
    if (!o || typeof o !== 'object' || o.format !== QUALITY_FORMAT)
      throw new TypeError(`Expected a ${QUALITY_FORMAT} model for ${name} but received ${JSON.stringify(o?.format ?? typeof o)}`);
    if (o.version !== 1) throw new TypeError(`Expected version 1 for ${name} but received ${o.version}`);
    const buckets = o.buckets;
    if (typeof buckets !== 'number' || buckets < 2 || (buckets & (buckets - 1)) !== 0)
      throw new TypeError(`Expected a power-of-two bucket count in ${name} but received ${buckets}`);
    if (typeof o.bias !== 'number' || typeof o.weights !== 'string')
      throw new TypeError(`Expected numeric bias and base64 weights in ${name}`);
    const buf = Buffer.from(o.weights, 'base64');
    if (buf.length !== buckets * 4)
      throw new TypeError(`Expected ${buckets * 4} bytes of weights in ${name} but received ${buf.length}`);
    const w = new Float32Array(buckets);
    Buffer.from(w.buffer).set(buf);
    const m = new QualityClassifier(w, o.bias);
    if (o.trained) m.trained = o.trained;
    return m;
  }

  /** Writes model.json atomically. Example: `model.save('quality.json')`. */
  save(path: string): void {
    const tmp = `${path}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(this.toJSON()) + '\n');
    fs.renameSync(tmp, path);
  }

  /** Reads model.json. Example: `QualityClassifier.load('quality.json')`. */
  static load(path: string): QualityClassifier {
    let j: unknown;
    try {
      j = JSON.parse(fs.readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`Cannot read quality model ${path}: ${(e as Error).message}`);
    }
    return QualityClassifier.fromJSON(j, path);
  }
}
