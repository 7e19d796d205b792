/**
 * Weighted mixing of sources into token shards, as GPT-3 mixed its training set (Table 2.2: Common Crawl 60%,
 * WebText2 22%, Books1 8%, Books2 8%, Wikipedia 3%).
 *
 * 1. Each source is tokenized once (the end-of-text id before every document) into a temporary token file,
 *    with an index of document offsets: memory is O(documents), not O(text).
 * 2. A token budget is split by weight (weights are normalised; they need not sum to 1). Documents are drawn
 *    from the source furthest below its share so far, in a seeded random order without replacement within an
 *    epoch of that source; an exhausted source starts a new epoch (a new order). Each source's quota is its
 *    weight × budget, and its last document is cut at the quota, so the shares hit the weights to the token.
 * 3. The stream goes through a {@link ShardWriter}; the report gives, per source, the tokens taken, the share
 *    and the epochs consumed (tokens taken / tokens in the source): GPT-3 saw 0.44 epochs of Common Crawl and
 *    3.4 of Wikipedia.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DataInputError, DocFormat, readDocuments } from './jsonl';
import { ShardWriter } from './shards';
import { Progress } from './progress';
import { ChunkError } from './tasks';

/** One source of a mix. */
export interface MixSource {
  name: string;
  /** a file, a folder of shards, or '-' */
  path: string;
  weight: number;
  format?: DocFormat;
}

/** Options of {@link mix}. */
export interface MixOptions {
  sources: MixSource[];
  /** token budget of the mix */
  tokens: number;
  /** folder for the shards */
  out: string;
  /** text → token ids (e.g. `(t) => tok.encode(t)`); ids must fit in uint16 */
  encode: (text: string) => number[] | Uint16Array | Uint32Array;
  /** end-of-text id written before every document (50256 for GPT-2's tokenizer) */
  eot: number;
  /** tokens per shard (default 100,000,000) */
  shardTokens?: number;
  /** shard file prefix (default 'train') */
  prefix?: string;
  seed?: number;
  onError?: (e: DataInputError) => void;
  progress?: boolean;
}

/** Per-source outcome of a mix. */
export interface MixSourceReport {
  name: string;
  path: string;
  /** normalised weight */
  weight: number;
  docs: number;
  /** tokens in one epoch of the source (end-of-text ids included) */
  sourceTokens: number;
  /** tokens taken into the mix */
  tokens: number;
  /** tokens / total */
  share: number;
  /** tokens / sourceTokens */
  epochs: number;
}

export interface MixReport {
  tokens: number;
  files: string[];
  sources: MixSourceReport[];
  errors: number;
  errorSamples: ChunkError[];
  seconds: number;
}

/** Checks sources and weights; returns the normalised weights. */
export function normaliseWeights(sources: MixSource[]): number[] {
  if (!Array.isArray(sources) || sources.length === 0) throw new RangeError('Expected at least one source for the mix but received none');
  const names = new Set<string>();
  for (const s of sources) {
    if (!s || typeof s.name !== 'string' || !s.name) throw new TypeError(`Expected a name for every source but received ${JSON.stringify(s)}`);
    if (names.has(s.name)) throw new RangeError(`Expected distinct source names but received ${JSON.stringify(s.name)} twice`);
    names.add(s.name);
    if (typeof s.weight !== 'number' || !Number.isFinite(s.weight) || s.weight < 0)
      throw new RangeError(`Expected a finite weight ≥ 0 for source ${JSON.stringify(s.name)} but received ${s.weight}`);
  }
  const sum = sources.reduce((a, s) => a + s.weight, 0);
  if (!(sum > 0))
    throw new RangeError(`Expected weights that sum to a positive number but received ${sources.map((s) => `${s.name}=${s.weight}`).join(', ')} (sum ${sum})`);
  return sources.map((s) => s.weight / sum);
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

interface Tokenized {
  file: string;
  fd: number;
  /** docs + 1 offsets, in tokens */
  offsets: Float64Array;
  docs: number;
  tokens: number;
}

/**
 * Mixes sources by weight into token shards and reports the epochs each source contributed.
 * Example: `await mix({ sources: [{ name: 'cc', path: 'cc/', weight: 0.6 }, …], tokens: 1e9, out: 'shards/', encode, eot: 50256 })`.
 */
export async function mix(opts: MixOptions): Promise<MixReport> {
  const t0 = performance.now();
  const weights = normaliseWeights(opts.sources);
  if (!(Number.isInteger(opts.tokens) && opts.tokens > 0))
    throw new RangeError(`Expected a positive integer for tokens but received ${opts.tokens}`);
  if (!Number.isInteger(opts.eot) || opts.eot < 0 || opts.eot > 65535)
    throw new RangeError(`Expected an end-of-text id in [0, 65535] for eot but received ${opts.eot}`);
  if (typeof opts.encode !== 'function') throw new TypeError('Expected an encode(text) function for encode');
  const errors: ChunkError[] = [];
  let errorCount = 0;
  const onError = (e: DataInputError): void => {
    errorCount++;
    if (errors.length < 20) errors.push({ file: e.file, line: e.line, reason: e.reason });
    opts.onError?.(e);
  };
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt-native-mix-'));
  const toks: Tokenized[] = [];
  try {
    // 1. tokenize each source once
    for (const src of opts.sources) {
      const file = path.join(tmpDir, `${toks.length}.u16`);
      const fd = fs.openSync(file, 'w+');
      const t: Tokenized = { file, fd, offsets: new Float64Array(1024), docs: 0, tokens: 0 };
      toks.push(t);
      const progress = new Progress(`mix: tokenize ${src.name}`, 0, opts.progress);
      let pending: Uint16Array[] = [];
      let pendingLen = 0;
      const flush = (): void => {
        if (pendingLen === 0) return;
        const all = new Uint16Array(pendingLen);
        let o = 0;
        for (const p of pending) {
          all.set(p, o);
          o += p.length;
        }
        fs.writeSync(fd, Buffer.from(all.buffer));
        pending = [];
        pendingLen = 0;
      };
      for await (const d of readDocuments(src.path, { onError, format: src.format })) {
        const ids = opts.encode(d.text);
        const u = new Uint16Array(ids.length + 1);
        u[0] = opts.eot;
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i];
          if (!Number.isInteger(id) || id < 0 || id > 65535) {
            onError(new DataInputError(d.file, d.line, `Expected token ids in [0, 65535] from encode but received ${id}`));
            break;
          }
          u[i + 1] = id;
        }
        if (t.docs + 2 > t.offsets.length) {
          const o2 = new Float64Array(t.offsets.length * 2);
          o2.set(t.offsets);
          t.offsets = o2;
        }
        t.offsets[t.docs] = t.tokens;
        t.docs++;
        t.tokens += u.length;
        t.offsets[t.docs] = t.tokens;
        pending.push(u);
        pendingLen += u.length;
        if (pendingLen >= 1 << 20) flush();
        progress.tick(d.text.length, 1);
      }
      flush();
      progress.done();
      if (t.docs === 0) throw new Error(`Expected documents in source ${JSON.stringify(src.name)} (${src.path}) but it has none`);
    }
    // 2. draw documents by weight
    const rand = rng(opts.seed ?? 1);
    const n = opts.sources.length;
    const taken = new Float64Array(n);
    const order: Uint32Array[] = toks.map((t) => new Uint32Array(t.docs));
    const cursor = new Int32Array(n).fill(-1);
    const shuffle = (i: number): void => {
      const o = order[i];
      for (let j = 0; j < o.length; j++) o[j] = j;
      for (let j = o.length - 1; j > 0; j--) {
        const r = Math.floor(rand() * (j + 1));
        const x = o[j];
        o[j] = o[r];
        o[r] = x;
      }
      cursor[i] = 0;
    };
    const writer = new ShardWriter(opts.out, { shardTokens: opts.shardTokens, prefix: opts.prefix });
    const progress = new Progress('mix: write', opts.tokens * 2, opts.progress);
    // each source's quota: weight × budget, rounded so that the quotas add up to the budget exactly
    const quota = weights.map((w) => Math.floor(w * opts.tokens));
    const rem = weights.map((w, i) => ({ i, r: w * opts.tokens - quota[i] })).sort((a, b) => b.r - a.r);
    for (let j = 0, left = opts.tokens - quota.reduce((a, b) => a + b, 0); left > 0; j++, left--) quota[rem[j % n].i]++;
    let total = 0;
    while (total < opts.tokens) {
      // the source furthest below its share so far; its last document is cut at its quota
      let best = -1;
      let bestRatio = Infinity;
      for (let i = 0; i < n; i++) {
        if (taken[i] >= quota[i]) continue;
        const r = taken[i] / quota[i];
        if (r < bestRatio) {
          bestRatio = r;
          best = i;
        }
      }
      const t = toks[best];
      if (cursor[best] < 0 || cursor[best] >= t.docs) shuffle(best);
      const doc = order[best][cursor[best]++];
      const start = t.offsets[doc];
      const len = Math.min(t.offsets[doc + 1] - start, quota[best] - taken[best]);
      const u = new Uint16Array(len);
      fs.readSync(t.fd, new Uint8Array(u.buffer), 0, 2 * len, 2 * start);
      writer.append(u);
      taken[best] += len;
      total += len;
      progress.tick(2 * len, 1);
    }
    progress.done();
    const files = writer.close();
    return {
      tokens: total,
      files,
      sources: opts.sources.map((s, i) => ({
        name: s.name,
        path: s.path,
        weight: weights[i],
        docs: toks[i].docs,
        sourceTokens: toks[i].tokens,
        tokens: taken[i],
        share: taken[i] / total,
        epochs: taken[i] / toks[i].tokens,
      })),
      errors: errorCount,
      errorSamples: errors,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const t of toks) fs.closeSync(t.fd);
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}

/** The report as a table. */
export function formatMixReport(r: MixReport): string {
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  const lines = [
    `mix: ${n(r.tokens)} tokens in ${r.files.length} shard${r.files.length === 1 ? '' : 's'} (${r.seconds.toFixed(2)} s), bad lines ${n(r.errors)}`,
    `  ${'source'.padEnd(14)} ${'weight'.padStart(7)} ${'share'.padStart(7)} ${'docs'.padStart(10)} ${'source tokens'.padStart(14)} ${'taken'.padStart(12)} ${'epochs'.padStart(7)}`,
  ];
  for (const s of r.sources)
    lines.push(
      `  ${s.name.padEnd(14)} ${(100 * s.weight).toFixed(1).padStart(6)}% ${(100 * s.share).toFixed(1).padStart(6)}% ${n(s.docs).padStart(10)} ${n(s.sourceTokens).padStart(14)} ${n(s.tokens).padStart(12)} ${s.epochs.toFixed(2).padStart(7)}`,
    );
  if (r.files.length) lines.push(`  wrote ${r.files.length === 1 ? r.files[0] : `${r.files[0]} … ${r.files[r.files.length - 1]}`}`);
  return lines.join('\n');
}
