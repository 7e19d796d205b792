/**
 * The per-chunk work of each stage, as pure functions of (task, chunk): the same code runs inline or in a
 * worker thread (pool.ts). A chunk is a run of whole lines of one shard; its result carries the output
 * lines, the documents' signatures or decisions, the bad lines (file, line, reason), and counts.
 */
import { Featurizer } from './quality';
import { MinHasher } from './minhash';
import { forEachNgramKey } from './ngrams';
import { checkAlpha, paretoKeepDoc } from './pareto';
import { stringKey } from './hash';
import { ChunkDoc, DataInputError, docBytes, forEachDoc, RawChunk } from './jsonl';
import * as path from 'path';

export const HIST_BINS = 10;

export type TaskSpec =
  | { kind: 'parse' }
  | { kind: 'score'; weights: Float32Array; bias: number; field: string }
  | { kind: 'filter'; alpha: number; seed: number; field: string }
  | { kind: 'sign'; hashes: number; shingle: number; seed: number }
  | {
      kind: 'decontaminate';
      ngram: number;
      /** the protected set's n-gram keys, or null to skip the n-gram test */
      ngramKeys: Float64Array | null;
      /** signing parameters, or null to skip the MinHash test */
      minhash: { hashes: number; shingle: number; seed: number } | null;
    };

export interface ChunkError {
  file: string;
  line: number;
  reason: string;
}

export interface ChunkResult {
  docs: number;
  bytes: number;
  errors: ChunkError[];
  /** output JSONL lines (score, filter), each ending in '\n', as UTF-8 */
  out: Uint8Array;
  kept: number;
  /** score histogram of all documents (score, filter) and of the kept ones (filter) */
  hist?: number[];
  keptHist?: number[];
  /** per document: its line (sign, decontaminate) */
  lines?: Int32Array;
  /** per document: hashes values, or all 0xffffffff for a document without words (sign, decontaminate) */
  sigs?: Uint32Array;
  /** per document: protected n-grams found (decontaminate) */
  hits?: Int32Array;
  /** decontaminate: every document's line is in `out`; document i spans bytes [offsets[i], offsets[i+1]) */
  offsets?: Int32Array;
  /** per document: its text (parse) */
  texts?: string[];
}

function bin(s: number): number {
  return Math.min(HIST_BINS - 1, Math.max(0, Math.floor(s * HIST_BINS)));
}

/** Collects output bytes and joins them into one transferable buffer. */
export class ByteSink {
  private parts: Uint8Array[] = [];
  private n = 0;
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.n += b.length;
  }
  pushString(s: string): void {
    this.push(Buffer.from(s, 'utf8'));
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    this.parts = [];
    this.n = 0;
    return out;
  }
}

const NL = new Uint8Array([10]);

/**
 * Writes a document's line with `"field":value` added: the original bytes with the field spliced in before the
 * closing brace, or (when the field is already there) the object re-serialised.
 */
export function pushWithField(sink: ByteSink, c: RawChunk, d: ChunkDoc, field: string, value: number): void {
  const buf = c.buf;
  let last = d.end - 1;
  while (last > d.start && (buf[last] === 32 || buf[last] === 9)) last--;
  if (c.format === 'jsonl' && buf[last] === 125 /* } */ && !Object.prototype.hasOwnProperty.call(d.doc, field)) {
    sink.push(buf.subarray(d.start, last));
    sink.pushString(`,${JSON.stringify(field)}:${value}}\n`);
    return;
  }
  d.doc[field] = value;
  sink.pushString(JSON.stringify(d.doc) + '\n');
}

/** Builds the chunk processor for a task (allocating its scratch space once). */
export function makeProcessor(spec: TaskSpec): (c: RawChunk) => ChunkResult {
  const base = (c: RawChunk): ChunkResult => ({ docs: 0, bytes: c.bytes, errors: [], out: new Uint8Array(0), kept: 0 });
  const errorsTo = (r: ChunkResult) => (e: DataInputError) => r.errors.push({ file: e.file, line: e.line, reason: e.reason });
  switch (spec.kind) {
    case 'parse':
      return (c) => {
        const r = base(c);
        const texts: string[] = [];
        const lines: number[] = [];
        forEachDoc(c, (d) => {
          texts.push(d.text);
          lines.push(d.line);
        }, errorsTo(r));
        r.docs = texts.length;
        r.texts = texts;
        r.lines = Int32Array.from(lines);
        return r;
      };
    case 'score': {
      const f = new Featurizer(spec.weights.length);
      return (c) => {
        const r = base(c);
        const hist = new Array(HIST_BINS).fill(0);
        const sink = new ByteSink();
        forEachDoc(c, (d) => {
          const s = f.score(d.text, spec.weights, spec.bias);
          hist[bin(s)]++;
          pushWithField(sink, c, d, spec.field, s);
          r.docs++;
        }, errorsTo(r));
        r.kept = r.docs;
        r.out = sink.finish();
        r.hist = hist;
        return r;
      };
    }
    case 'filter': {
      checkAlpha(spec.alpha);
      return (c) => {
        const r = base(c);
        const hist = new Array(HIST_BINS).fill(0);
        const keptHist = new Array(HIST_BINS).fill(0);
        const key = stringKey(c.file === '-' ? '-' : path.basename(c.file));
        const sink = new ByteSink();
        forEachDoc(c, (d) => {
          const s = d.doc[spec.field];
          if (typeof s !== 'number' || !(s >= 0 && s <= 1)) {
            r.errors.push({
              file: c.file,
              line: d.line,
              reason: `Expected a number in [0, 1] for "${spec.field}" but received ${s === undefined ? 'nothing (run \`data quality score\` first)' : JSON.stringify(s)}`,
            });
            return;
          }
          r.docs++;
          hist[bin(s)]++;
          if (paretoKeepDoc(s, spec.seed, key, d.line, spec.alpha)) {
            keptHist[bin(s)]++;
            r.kept++;
            sink.push(docBytes(c, d));
            sink.push(NL);
          }
        }, errorsTo(r));
        r.out = sink.finish();
        r.hist = hist;
        r.keptHist = keptHist;
        return r;
      };
    }
    case 'sign': {
      const mh = new MinHasher(spec);
      const k = mh.hashes;
      return (c) => {
        const r = base(c);
        let sigs = new Uint32Array(k * 64);
        const lines: number[] = [];
        forEachDoc(c, (d) => {
          if ((r.docs + 1) * k > sigs.length) {
            const s2 = new Uint32Array(sigs.length * 2);
            s2.set(sigs);
            sigs = s2;
          }
          const view = sigs.subarray(r.docs * k, (r.docs + 1) * k);
          if (!mh.sign(d.text, view)) view.fill(0xffffffff);
          lines.push(d.line);
          r.docs++;
        }, errorsTo(r));
        r.sigs = sigs.slice(0, r.docs * k);
        r.lines = Int32Array.from(lines);
        return r;
      };
    }
    case 'decontaminate': {
      const mh = spec.minhash ? new MinHasher(spec.minhash) : null;
      const k = mh ? mh.hashes : 0;
      const set = spec.ngramKeys ? new Set<number>(spec.ngramKeys) : null;
      return (c) => {
        const r = base(c);
        let sigs = new Uint32Array(Math.max(1, k * 64));
        const lines: number[] = [];
        const hits: number[] = [];
        const sink = new ByteSink();
        const offsets: number[] = [0];
        let at = 0;
        forEachDoc(c, (d) => {
          if (mh) {
            if ((r.docs + 1) * k > sigs.length) {
              const s2 = new Uint32Array(sigs.length * 2);
              s2.set(sigs);
              sigs = s2;
            }
            const view = sigs.subarray(r.docs * k, (r.docs + 1) * k);
            if (!mh.sign(d.text, view)) view.fill(0xffffffff);
          }
          let h = 0;
          if (set && set.size > 0)
            forEachNgramKey(d.text, spec.ngram, (key) => {
              if (set.has(key)) h++;
            });
          hits.push(h);
          lines.push(d.line);
          const b = docBytes(c, d);
          sink.push(b);
          sink.push(NL);
          at += b.length + 1;
          offsets.push(at);
          r.docs++;
        }, errorsTo(r));
        r.sigs = sigs.slice(0, r.docs * k);
        r.lines = Int32Array.from(lines);
        r.hits = Int32Array.from(hits);
        r.out = sink.finish();
        r.offsets = Int32Array.from(offsets);
        return r;
      };
    }
  }
}
