/**
 * The pipeline's stages over files: score, filter, dedup, decontaminate, and training the classifier.
 * Each reads `in` (file, folder of shards, or '-'), writes `out` (a file, '-', or a folder: one output per
 * input shard), runs its per-document work on worker threads, reports bad lines with file and line and goes
 * on, and returns a {@link StageSummary}.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ChunkPool, runChunks } from './pool';
import { ByteSink, ChunkError, ChunkResult, HIST_BINS, TaskSpec } from './tasks';
import {
  chunkBuffer,
  DataInputError,
  decodeRange,
  DocFormat,
  forEachLine,
  InputFile,
  LineWriter,
  listInputs,
  outputPlan,
  parseLine,
  readChunks,
  readDocuments,
} from './jsonl';
import { Progress } from './progress';
import { QualityClassifier, QualityEval, QualityTrainOptions, Featurizer, SparseFeatures } from './quality';
import { LshIndex, MinHasher } from './minhash';
import { jaccardOfSorted, ngramSet, shingleKeys } from './ngrams';
import { checkAlpha } from './pareto';

/** Options every stage takes. */
export interface StageOptions {
  /** input: a file, a folder of shards, or '-' for stdin */
  in: string;
  /** output: a file, '-' for stdout, or a folder (one output per input shard when the input is a folder) */
  out: string;
  /** worker threads (default: one per core; 0 = the calling thread) */
  workers?: number;
  /** read every input as this format instead of by file extension */
  format?: DocFormat;
  /** draw a progress bar on stderr (default: when stderr is a TTY) */
  progress?: boolean;
  /** called for each bad line (default: collected in the summary only) */
  onError?: (e: DataInputError) => void;
  /** bytes of input per chunk of work (default 1 MiB) */
  chunkBytes?: number;
}

/** What a stage did. */
export interface StageSummary {
  stage: string;
  files: number;
  bytes: number;
  seconds: number;
  /** documents read (valid lines) */
  docs: number;
  kept: number;
  dropped: number;
  /** dedup: documents dropped as near-duplicates (also counted in dropped) */
  duplicates?: number;
  /** dedup: candidate pairs whose estimate was too close to the threshold to trust, checked on exact shingle sets */
  checked?: number;
  /** decontaminate: documents dropped by each test */
  contaminated?: { ngram: number; minhash: number };
  /** bad input lines, and the first few of them */
  errors: number;
  errorSamples: ChunkError[];
  /** score histograms (10 bins over [0, 1]) of all and of kept documents */
  hist?: number[];
  keptHist?: number[];
  outputs: string[];
}

const MAX_SAMPLES = 20;

function newSummary(stage: string, files: InputFile[]): StageSummary {
  return { stage, files: files.length, bytes: 0, seconds: 0, docs: 0, kept: 0, dropped: 0, errors: 0, errorSamples: [], outputs: [] };
}

function noteErrors(s: StageSummary, errs: ChunkError[], onError?: (e: DataInputError) => void): void {
  for (const e of errs) {
    s.errors++;
    if (s.errorSamples.length < MAX_SAMPLES) s.errorSamples.push(e);
    if (onError) onError(new DataInputError(e.file, e.line, e.reason));
  }
}

function addHist(into: number[] | undefined, h: number[] | undefined): number[] | undefined {
  if (!h) return into;
  const a = into ?? new Array(HIST_BINS).fill(0);
  for (let i = 0; i < h.length; i++) a[i] += h[i];
  return a;
}

/** Copies stdin to a temporary file so that a two-pass stage can read it twice. */
async function spoolStdin(): Promise<{ files: InputFile[]; cleanup: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt-native-stdin-'));
  const p = path.join(dir, 'stdin.jsonl');
  const w = fs.createWriteStream(p);
  for await (const b of process.stdin as AsyncIterable<Buffer>) if (!w.write(b)) await new Promise<void>((r) => w.once('drain', () => r()));
  await new Promise<void>((r) => w.end(() => r()));
  const size = fs.statSync(p).size;
  return { files: [{ path: p, name: '-', format: 'jsonl', gzip: false, size }], cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Opens writers by shard (or one for all) and routes output to the right one. */
class Outputs {
  private readonly plan: ReturnType<typeof outputPlan>;
  private current: LineWriter | null = null;
  private readonly all: LineWriter[] = [];
  readonly paths: string[] = [];

  constructor(input: string, files: InputFile[], out: string) {
    this.plan = outputPlan(input, files, out);
  }

  async start(f: InputFile): Promise<void> {
    if (this.current && !this.plan.perShard) return;
    this.current = new LineWriter(this.plan.pathFor(f));
    this.all.push(this.current);
    this.paths.push(this.current.path);
  }

  async write(s: string | Uint8Array): Promise<void> {
    await this.current!.write(s);
  }

  async end(): Promise<void> {
    if (this.plan.perShard && this.current) {
      await this.current.close();
      this.current = null;
    }
  }

  async finish(files: InputFile[]): Promise<void> {
    // no input shard at all: still leave an (empty) output file
    if (files.length === 0 && !this.current && !this.plan.perShard) await this.start({ path: '-', format: 'jsonl', gzip: false, size: 0 });
    if (!this.plan.perShard && this.current) await this.current.close();
    this.current = null;
  }

  abort(): void {
    for (const w of this.all) w.abort();
  }
}

/** Runs a one-pass stage whose workers produce the output lines. */
async function lineStage(
  stage: string,
  spec: TaskSpec,
  opts: StageOptions,
  onResult?: (r: ChunkResult, s: StageSummary) => void,
): Promise<StageSummary> {
  const t0 = performance.now();
  const files = listInputs(opts.in, { format: opts.format });
  const s = newSummary(stage, files);
  const outs = new Outputs(opts.in, files, opts.out);
  const progress = new Progress(stage, files.reduce((a, f) => a + f.size, 0), opts.progress);
  const pool = new ChunkPool(spec, opts.workers);
  try {
    await runChunks(
      files,
      pool,
      async (r) => {
        noteErrors(s, r.errors, opts.onError);
        s.docs += r.docs;
        s.kept += r.kept;
        s.bytes += r.bytes;
        s.hist = addHist(s.hist, r.hist);
        s.keptHist = addHist(s.keptHist, r.keptHist);
        if (onResult) onResult(r, s);
        progress.tick(r.bytes, r.docs);
        await outs.write(r.out);
      },
      { chunkBytes: opts.chunkBytes, onFile: (f, at) => (at === 'start' ? outs.start(f) : outs.end()) },
    );
    await outs.finish(files);
  } catch (e) {
    outs.abort();
    throw e;
  } finally {
    progress.done();
    await pool.close();
  }
  s.dropped = s.docs - s.kept;
  s.outputs = outs.paths;
  s.seconds = (performance.now() - t0) / 1000;
  return s;
}

/**
 * Writes `score` = P(curated) into every document. Example:
 * `await scoreFiles({ in: 'crawl/', out: 'scored/', model: 'quality.json' })`.
 */
export async function scoreFiles(opts: StageOptions & { model: QualityClassifier | string; field?: string }): Promise<StageSummary> {
  const m = typeof opts.model === 'string' ? QualityClassifier.load(opts.model) : opts.model;
  return lineStage('score', { kind: 'score', weights: m.weights, bias: m.bias, field: opts.field ?? 'score' }, opts);
}

/**
 * Keeps each document when pareto(α) > 1 − score (GPT-3's resampling). Example:
 * `await filterFiles({ in: 'scored/', out: 'kept/', alpha: 9, seed: 1 })`.
 */
export async function filterFiles(opts: StageOptions & { alpha?: number; seed?: number; field?: string }): Promise<StageSummary> {
  const alpha = opts.alpha ?? 9;
  checkAlpha(alpha);
  return lineStage('filter', { kind: 'filter', alpha, seed: (opts.seed ?? 1) >>> 0, field: opts.field ?? 'score' }, opts);
}

/** MinHash-LSH options of dedup and decontaminate. */
export interface FuzzyOptions {
  /** Jaccard threshold on the estimate (default 0.8) */
  threshold?: number;
  /** signature length (default 128) */
  hashes?: number;
  /** words per shingle (default 5) */
  shingle?: number;
  /** LSH tables (default 10) and values per table (default 5) */
  bands?: number;
  rows?: number;
  /** seed of the hash family (default 1) */
  seed?: number;
}

function checkThreshold(t: number): void {
  if (!(t > 0 && t <= 1)) throw new RangeError(`Expected a number in (0, 1] for threshold but received ${t}`);
}

/**
 * Removes near-duplicates: documents whose Jaccard similarity (word shingles) is ≥ threshold are joined into
 * clusters (connected components) and only the first document of each cluster is written.
 * Pass 1 signs everything (workers) and clusters LSH candidates by their estimated Jaccard Ĵ; a candidate
 * pair whose Ĵ lies within 3σ of the threshold (σ = √(t(1−t)/k)) is not left to chance: pass 1b reads just
 * those documents again and compares their exact shingle sets (at most `maxChecks` pairs, 2 million by
 * default; beyond that Ĵ ≥ threshold decides). Pass 2 copies the kept lines. `duplicates`, when given,
 * receives each dropped document with `duplicate_of: {file, line}` (the first of its cluster).
 * Example: `await dedupFiles({ in: 'kept/', out: 'dedup.jsonl', threshold: 0.8 })`.
 */
export async function dedupFiles(
  opts: StageOptions & FuzzyOptions & { duplicates?: string; maxChecks?: number },
): Promise<StageSummary> {
  const t0 = performance.now();
  const threshold = opts.threshold ?? 0.8;
  checkThreshold(threshold);
  const mh = new MinHasher({ hashes: opts.hashes, shingle: opts.shingle, seed: opts.seed });
  const k = mh.hashes;
  const index = new LshIndex(k, { bands: opts.bands, rows: opts.rows });
  let files = listInputs(opts.in, { format: opts.format });
  let cleanup = (): void => undefined;
  if (opts.in === '-') ({ files, cleanup } = await spoolStdin());
  const s = newSummary('dedup', files);
  // per document: shard index, line, union-find parent
  let docFile = new Int32Array(1024);
  let docLine = new Int32Array(1024);
  let parent = new Int32Array(1024);
  const lshToDoc: number[] = [];
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  };
  const union = (a: number, b: number): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra < rb) parent[rb] = ra;
    else if (rb < ra) parent[ra] = rb;
  };
  const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
    const b = new Int32Array(a.length * 2);
    b.set(a);
    return b;
  };
  const fileIdx = new Map<string, number>(files.map((f, i) => [f.name ?? f.path, i]));
  // Ĵ has standard deviation ≤ √(J(1−J)/k): a pair whose estimate lies within 3σ of the threshold is
  // checked on its exact shingle sets (pass 1b) instead of being decided by the estimate's noise
  const sigma = Math.sqrt((threshold * (1 - threshold)) / k);
  const lo = threshold - 3 * sigma;
  const hi = Math.min(1, threshold + 3 * sigma);
  const uncertain: number[] = [];
  const maxUncertain = opts.maxChecks ?? 2_000_000;
  const progress = new Progress('dedup: sign', files.reduce((a, f) => a + f.size, 0) * 2, opts.progress);
  const pool = new ChunkPool({ kind: 'sign', hashes: k, shingle: mh.shingle, seed: mh.seed }, opts.workers);
  try {
    await runChunks(
      files,
      pool,
      (r, c) => {
        noteErrors(s, r.errors, opts.onError);
        s.bytes += r.bytes;
        progress.tick(r.bytes, r.docs);
        const fi = fileIdx.get(c.file)!;
        for (let i = 0; i < r.docs; i++) {
          const g = s.docs++;
          if (g >= parent.length) {
            docFile = grow(docFile);
            docLine = grow(docLine);
            parent = grow(parent);
          }
          docFile[g] = fi;
          docLine[g] = r.lines![i];
          parent[g] = g;
          const off = i * k;
          if (r.sigs![off] === 0xffffffff && r.sigs![off + 1] === 0xffffffff) continue; // no words
          for (const cand of index.candidates(r.sigs!, off)) {
            const other = lshToDoc[cand];
            if (find(other) === find(g)) continue;
            const sim = index.similarity(cand, r.sigs!, off);
            if (sim >= hi) union(g, other);
            else if (sim >= lo) {
              if (uncertain.length < 2 * maxUncertain) uncertain.push(other, g);
              else if (sim >= threshold) union(g, other);
            }
          }
          lshToDoc.push(g);
          index.add(r.sigs!, off);
        }
      },
      { chunkBytes: opts.chunkBytes },
    );
  } catch (e) {
    progress.done();
    await pool.close();
    cleanup();
    throw e;
  }
  await pool.close();
  // pass 1b: exact Jaccard for the uncertain pairs (reads only their documents)
  if (uncertain.length) {
    const want = new Map<number, number>(); // (file << 32 | line) → doc, as a number key
    const keyOf = (fi: number, line: number): number => fi * 4294967296 + line;
    for (const d of uncertain) want.set(keyOf(docFile[d], docLine[d]), d);
    const sets = new Map<number, Float64Array>();
    const n = mh.shingle;
    try {
      for (let fi = 0; fi < files.length; fi++) {
        for await (const c of readChunks(files[fi], opts.chunkBytes)) {
          const buf = chunkBuffer(c);
          if (c.format === 'text') {
            const d = want.get(keyOf(fi, 1));
            if (d !== undefined) sets.set(d, shingleKeys(buf.toString('utf8'), n));
            continue;
          }
          forEachLine(c, (line, start, end) => {
            const d = want.get(keyOf(fi, line));
            if (d === undefined) return;
            const p = parseLine(decodeRange(buf, start, end), c.file, line);
            if (p) sets.set(d, shingleKeys(p.text, n));
          });
        }
      }
    } catch (e) {
      cleanup();
      throw e;
    }
    for (let i = 0; i < uncertain.length; i += 2) {
      const a = sets.get(uncertain[i]);
      const b = sets.get(uncertain[i + 1]);
      if (a && b && jaccardOfSorted(a, b) >= threshold) union(uncertain[i], uncertain[i + 1]);
    }
    s.checked = uncertain.length / 2;
  }
  // pass 2: copy the first document of each cluster
  const outs = new Outputs(opts.in, files, opts.out);
  const dupes = opts.duplicates ? new LineWriter(opts.duplicates) : null;
  let g = 0;
  try {
    for (let fi = 0; fi < files.length; fi++) {
      const f = files[fi];
      await outs.start(f);
      for await (const c of readChunks(f, opts.chunkBytes)) {
        const buf = chunkBuffer(c);
        const kept = new ByteSink();
        const dropped: string[] = [];
        const take = (line: number, start: number, end: number): void => {
          if (g >= s.docs || docFile[g] !== fi || docLine[g] !== line) return; // a bad or blank line
          const root = find(g);
          const text = c.format === 'text';
          if (root === g) {
            if (text) kept.pushString(JSON.stringify({ text: buf.toString('utf8'), source: c.file }) + '\n');
            else {
              kept.push(buf.subarray(start, end));
              kept.pushString('\n');
            }
          } else if (dupes) {
            const doc = text
              ? { text: buf.toString('utf8'), source: c.file }
              : (JSON.parse(decodeRange(buf, start, end)) as Record<string, unknown>);
            const r = files[docFile[root]];
            (doc as Record<string, unknown>).duplicate_of = { file: r.name ?? r.path, line: docLine[root] };
            dropped.push(JSON.stringify(doc));
          }
          g++;
        };
        if (c.format === 'text') take(1, 0, buf.length);
        else forEachLine(c, take);
        const out = kept.finish();
        progress.tick(c.bytes, 0);
        if (out.length) await outs.write(out);
        if (dupes && dropped.length) await dupes.write(dropped.join('\n') + '\n');
      }
      await outs.end();
    }
    await outs.finish(files);
    if (dupes) await dupes.close();
  } catch (e) {
    outs.abort();
    dupes?.abort();
    throw e;
  } finally {
    progress.done();
    cleanup();
  }
  for (let i = 0; i < s.docs; i++) if (find(i) === i) s.kept++;
  s.dropped = s.docs - s.kept;
  s.duplicates = s.dropped;
  s.outputs = outs.paths;
  s.seconds = (performance.now() - t0) / 1000;
  return s;
}

/**
 * Removes documents that overlap a protected set (evaluation data): by long n-grams (a document sharing at
 * least `minHits` word n-grams of length `ngram`, 13 by default as in GPT-3, with any protected document) and/or by
 * MinHash (estimated Jaccard ≥ threshold with a protected document).
 * Example: `await decontaminateFiles({ in: 'dedup.jsonl', out: 'clean.jsonl', protected: 'evals/' })`.
 */
export async function decontaminateFiles(
  opts: StageOptions &
    FuzzyOptions & { protected: string; method?: 'ngram' | 'minhash' | 'both'; ngram?: number; minHits?: number },
): Promise<StageSummary> {
  const method = opts.method ?? 'both';
  if (!['ngram', 'minhash', 'both'].includes(method))
    throw new RangeError(`Expected ngram, minhash or both for method but received ${JSON.stringify(method)}`);
  const n = opts.ngram ?? 13;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Expected a positive integer for ngram but received ${n}`);
  const minHits = opts.minHits ?? 1;
  const threshold = opts.threshold ?? 0.8;
  checkThreshold(threshold);
  const useNgram = method !== 'minhash';
  const useMinhash = method !== 'ngram';
  const mh = new MinHasher({ hashes: opts.hashes, shingle: opts.shingle, seed: opts.seed });
  const index = new LshIndex(mh.hashes, { bands: opts.bands, rows: opts.rows });
  const protectedTexts: string[] = [];
  const pErrors: ChunkError[] = [];
  for await (const d of readDocuments(opts.protected, {
    format: opts.format,
    onError: (e) => pErrors.push({ file: e.file, line: e.line, reason: e.reason }),
  })) {
    protectedTexts.push(d.text);
    if (useMinhash) {
      const sig = mh.sign(d.text);
      if (sig) index.add(sig);
    }
  }
  if (protectedTexts.length === 0)
    throw new Error(`Expected documents in the protected set ${opts.protected} but it has none`);
  const keys = useNgram ? Float64Array.from(ngramSet(protectedTexts, n)) : null;
  let ngramDrops = 0;
  let minhashDrops = 0;
  const spec: TaskSpec = {
    kind: 'decontaminate',
    ngram: n,
    ngramKeys: keys,
    minhash: useMinhash ? { hashes: mh.hashes, shingle: mh.shingle, seed: mh.seed } : null,
  };
  const s = await lineStage('decontaminate', spec, opts, (r) => {
    const kept = new ByteSink();
    let nKept = 0;
    for (let i = 0; i < r.docs; i++) {
      if (useNgram && r.hits![i] >= minHits) {
        ngramDrops++;
        continue;
      }
      if (useMinhash) {
        const off = i * mh.hashes;
        let hit = false;
        if (!(r.sigs![off] === 0xffffffff && r.sigs![off + 1] === 0xffffffff))
          for (const c of index.candidates(r.sigs!, off))
            if (index.similarity(c, r.sigs!, off) >= threshold) {
              hit = true;
              break;
            }
        if (hit) {
          minhashDrops++;
          continue;
        }
      }
      kept.push(r.out.subarray(r.offsets![i], r.offsets![i + 1]));
      nKept++;
    }
    r.kept = nKept;
    r.out = kept.finish();
  });
  // lineStage counted kept before our callback changed it: recount
  s.kept = s.docs - ngramDrops - minhashDrops;
  s.dropped = ngramDrops + minhashDrops;
  s.contaminated = { ngram: ngramDrops, minhash: minhashDrops };
  noteErrors(s, pErrors, opts.onError);
  return s;
}

/** Options of {@link trainQualityFiles}. */
export interface QualityTrainFilesOptions extends QualityTrainOptions {
  positive: string;
  negative: string;
  /** where to write model.json (optional) */
  out?: string;
  format?: DocFormat;
  onError?: (e: DataInputError) => void;
}

/**
 * Trains the quality classifier on curated (positive) and raw (negative) inputs, and saves model.json.
 * Example: `await trainQualityFiles({ positive: 'books/', negative: 'crawl.jsonl', out: 'quality.json' })`.
 */
export async function trainQualityFiles(
  opts: QualityTrainFilesOptions,
): Promise<{ model: QualityClassifier; heldOut: QualityEval | null; summary: StageSummary }> {
  const t0 = performance.now();
  const f = new Featurizer(opts.buckets ?? 1 << 18);
  const s = newSummary('quality train', []);
  const load = async (input: string, what: string): Promise<SparseFeatures[]> => {
    const xs: SparseFeatures[] = [];
    const files = listInputs(input, { format: opts.format });
    s.files += files.length;
    for await (const d of readDocuments(files, {
      onError: (e) => noteErrors(s, [{ file: e.file, line: e.line, reason: e.reason }], opts.onError),
    })) {
      xs.push(f.features(d.text));
      s.bytes += d.text.length;
    }
    if (xs.length === 0) throw new Error(`Expected ${what} documents in ${input} but it has none`);
    return xs;
  };
  const pos = await load(opts.positive, 'positive (curated)');
  const neg = await load(opts.negative, 'negative (raw)');
  const { model, heldOut } = QualityClassifier.trainFeatures(pos, neg, opts);
  if (opts.out) {
    model.save(opts.out);
    s.outputs.push(opts.out);
  }
  s.docs = pos.length + neg.length;
  s.kept = s.docs;
  s.seconds = (performance.now() - t0) / 1000;
  return { model, heldOut, summary: s };
}

/** A human-readable summary, with the score histogram when there is one. */
export function formatSummary(s: StageSummary): string {
  const n = (x: number): string => x.toLocaleString('en-US');
  const mb = s.bytes / 1e6;
  const lines = [
    `${s.stage}: ${n(s.docs)} documents from ${n(s.files)} file${s.files === 1 ? '' : 's'} (${mb.toFixed(1)} MB in ${s.seconds.toFixed(2)} s, ${(mb / Math.max(s.seconds, 1e-9)).toFixed(1)} MB/s)`,
    `  kept ${n(s.kept)}, dropped ${n(s.dropped)}` +
      (s.duplicates !== undefined ? `, duplicates ${n(s.duplicates)}` : '') +
      (s.checked ? ` (${n(s.checked)} borderline pairs checked exactly)` : '') +
      (s.contaminated ? ` (n-gram overlap ${n(s.contaminated.ngram)}, MinHash ${n(s.contaminated.minhash)})` : '') +
      `, bad lines ${n(s.errors)}`,
  ];
  if (s.hist) {
    const max = Math.max(1, ...s.hist);
    lines.push(s.keptHist ? '  score      all        kept   keep-rate' : '  score      documents');
    for (let i = 0; i < s.hist.length; i++) {
      const lo = (i / s.hist.length).toFixed(1);
      const hi = ((i + 1) / s.hist.length).toFixed(1);
      const bar = '#'.repeat(Math.round((30 * s.hist[i]) / max));
      if (s.keptHist) {
        const rate = s.hist[i] ? ((100 * s.keptHist[i]) / s.hist[i]).toFixed(1) + '%' : '-';
        lines.push(`  ${lo}-${hi}  ${n(s.hist[i]).padStart(9)}  ${n(s.keptHist[i]).padStart(9)}  ${rate.padStart(8)}`);
      } else lines.push(`  ${lo}-${hi}  ${n(s.hist[i]).padStart(9)}  ${bar}`);
    }
  }
  if (s.outputs.length) lines.push(`  wrote ${s.outputs.length === 1 ? s.outputs[0] : `${s.outputs.length} files`}`);
  return lines.join('\n');
}
