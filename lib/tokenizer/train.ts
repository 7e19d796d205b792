/**
 * Byte-level BPE training (as GPT-2's vocabulary was made; GPT-1 used 40,000 merges).
 *
 * 1. Count: the corpus is pre-tokenised natively with GPT-2's pattern; each distinct piece becomes a "word"
 *    of byte symbols with its count. Files are read in 8 MB chunks cut where the pattern always breaks.
 * 2. Merge: repeatedly the most frequent adjacent pair (ties: smaller ids first) becomes a new symbol, until
 *    the vocabulary is full or no pair occurs `minFrequency` times. Pair counts are kept incrementally: a merge
 *    only revisits the words that hold its pair (an index pair → words), and a lazy max-heap gives the next
 *    pair, so the cost follows the number of changes, not vocabulary × corpus.
 * Ids: 0–255 the bytes in GPT-2's order, then one per merge, then the special tokens.
 */
import * as fs from 'fs';
import { StringDecoder } from 'string_decoder';
import { gpt2ByteOrder, Vocab } from './vocab';

/** A corpus: texts, or files (UTF-8). A string or an array of strings is taken as texts. */
export type TrainInput = string | readonly string[] | { texts?: readonly string[]; files?: readonly string[] };

/** Progress of {@link Tokenizer.train}: counting (bytes read of all), then merging (merges made of all). */
export interface TrainProgress {
  phase: 'count' | 'merge' | 'done';
  done: number;
  total: number;
  /** distinct pre-tokenised pieces seen so far */
  words: number;
  elapsedMs: number;
}

/** Options of {@link Tokenizer.train}. */
export interface TrainOptions {
  /** total ids: 256 bytes + merges + special tokens (GPT-2: 50257; GPT-1-like: 40,000 merges + 256 + specials) */
  vocabSize: number;
  /** special tokens, given ids after the merges (e.g. ['<|endoftext|>']) */
  specialTokens?: readonly string[];
  /** a pair must occur at least this often to be merged (default 2) */
  minFrequency?: number;
  /** called now and then with progress; training yields to the event loop at the same moments */
  onProgress?: (p: TrainProgress) => void;
}

type Counter = (text: string) => { bytes: Uint8Array; offsets: Int32Array; counts: Int32Array };

const KEY = 2 ** 21; // pair key = left * KEY + right (ids < 2^21)
const CHUNK = 8 << 20;
const WS = /\p{White_Space}/u;
const tick = () => new Promise<void>((r) => setImmediate(r));

function fail(what: string, name: string, value: unknown): never {
  throw new RangeError(`Expected ${what} for ${name} but received ${typeof value === 'string' ? JSON.stringify(value) : value}`);
}

/**
 * Where a chunk can end so that no piece straddles it (the last such place, or -1): after a "\n", or before a
 * " ", that stands between two non-spaces. The pattern always ends a piece there.
 */
function safeCut(text: string): number {
  const ns = (k: number) => k >= 0 && k < text.length && !WS.test(text[k]);
  for (let p = text.length - 2; p > 0; p--) {
    const c = text.charCodeAt(p);
    if (c === 10 && ns(p - 1) && ns(p + 1)) return p + 1;
    if (c === 32 && ns(p - 1) && ns(p + 1)) return p;
  }
  return -1;
}

export async function trainVocab(input: TrainInput, options: TrainOptions, makeCounter: () => Counter): Promise<Vocab> {
  const t0 = Date.now();
  if (typeof options !== 'object' || options === null) fail('an options object', 'options', options);
  const specials = [...(options.specialTokens ?? [])];
  for (const s of specials) if (typeof s !== 'string' || s === '') fail('non-empty strings', 'specialTokens', s);
  if (new Set(specials).size !== specials.length) fail('distinct strings', 'specialTokens', specials.join(', '));
  const vocabSize = options.vocabSize;
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specials.length || vocabSize >= KEY)
    fail(`an integer in [${256 + specials.length}, ${KEY}) (256 bytes + special tokens at least)`, 'vocabSize', vocabSize);
  const minFrequency = options.minFrequency ?? 2;
  if (!Number.isInteger(minFrequency) || minFrequency < 1) fail('a positive integer', 'minFrequency', minFrequency);
  let texts: readonly string[] = [];
  let files: readonly string[] = [];
  if (typeof input === 'string') texts = [input];
  else if (Array.isArray(input)) texts = input;
  else if (input && typeof input === 'object') {
    texts = (input as { texts?: string[] }).texts ?? [];
    files = (input as { files?: string[] }).files ?? [];
  } else fail('texts, { texts } or { files }', 'input', input);
  for (const t of texts) if (typeof t !== 'string') fail('strings', 'texts', t);
  for (const f of files) if (typeof f !== 'string' || !fs.existsSync(f)) fail('existing files', 'files', f);
  const progress = options.onProgress;

  // ---- 1. count pieces ----
  const count = makeCounter();
  const pieceCounts = new Map<string, number>(); // piece bytes as a latin1 string -> count
  const add = (text: string) => {
    const r = count(text);
    const buf = Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.length);
    for (let i = 0; i < r.counts.length; i++) {
      const k = buf.toString('latin1', r.offsets[i], r.offsets[i + 1]);
      pieceCounts.set(k, (pieceCounts.get(k) ?? 0) + r.counts[i]);
    }
  };
  let totalBytes = 0;
  for (const t of texts) totalBytes += t.length;
  for (const f of files) totalBytes += fs.statSync(f).size;
  let doneBytes = 0;
  const report = (phase: TrainProgress['phase'], done: number, total: number) =>
    progress?.({ phase, done, total, words: pieceCounts.size, elapsedMs: Date.now() - t0 });
  for (const t of texts) {
    for (let at = 0; at < t.length; ) {
      let end = Math.min(t.length, at + CHUNK);
      if (end < t.length) {
        const cut = safeCut(t.slice(at, end));
        end = cut > 0 ? at + cut : t.length;
      }
      add(at === 0 && end === t.length ? t : t.slice(at, end));
      doneBytes += end - at;
      at = end;
      report('count', doneBytes, totalBytes);
      await tick();
    }
  }
  for (const f of files) {
    const fd = fs.openSync(f, 'r');
    const dec = new StringDecoder('utf8');
    const buf = Buffer.allocUnsafe(CHUNK);
    let carry = '';
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, 0, CHUNK, null);
        if (n === 0) break;
        doneBytes += n;
        const text = carry + dec.write(buf.subarray(0, n));
        const cut = safeCut(text);
        if (cut > 0) {
          add(text.slice(0, cut));
          carry = text.slice(cut);
        } else carry = text;
        report('count', doneBytes, totalBytes);
        await tick();
      }
      carry += dec.end();
      if (carry) add(carry);
    } finally {
      fs.closeSync(fd);
    }
  }

  // ---- 2. words ----
  const order = gpt2ByteOrder();
  const byteId = new Int32Array(256);
  order.forEach((b, id) => (byteId[b] = id));
  const tokens: Uint8Array[] = order.map((b) => Uint8Array.of(b));
  const tokenIds = new Map<string, number>(); // token bytes (latin1) -> id
  tokens.forEach((t, id) => tokenIds.set(String.fromCharCode(t[0]), id));
  const words: Int32Array[] = [];
  const freq: number[] = [];
  for (const [k, c] of pieceCounts) {
    if (k.length < 2) continue; // a single byte never merges
    const w = new Int32Array(k.length);
    for (let i = 0; i < k.length; i++) w[i] = byteId[k.charCodeAt(i)];
    words.push(w);
    freq.push(c);
  }
  const nWords = pieceCounts.size;
  pieceCounts.clear();

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>(); // may hold a word twice, or one that lost the pair
  for (let w = 0; w < words.length; w++) {
    const s = words[w], f = freq[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * KEY + s[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      const l = pairWords.get(key);
      if (l) l.push(w);
      else pairWords.set(key, [w]);
    }
  }

  // lazy max-heap of (count, key): larger count first, then smaller key
  const hc: number[] = [], hk: number[] = [];
  const better = (i: number, j: number) => hc[i] > hc[j] || (hc[i] === hc[j] && hk[i] < hk[j]);
  const swap = (i: number, j: number) => {
    const c = hc[i]; hc[i] = hc[j]; hc[j] = c;
    const k = hk[i]; hk[i] = hk[j]; hk[j] = k;
  };
  const push = (c: number, k: number) => {
    hc.push(c); hk.push(k);
    for (let i = hc.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!better(i, p)) break;
      swap(i, p);
      i = p;
    }
  };
  const pop = () => {
    const last = hc.length - 1;
    swap(0, last);
    hc.pop(); hk.pop();
    for (let i = 0; ; ) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < hc.length && better(l, m)) m = l;
      if (r < hc.length && better(r, m)) m = r;
      if (m === i) break;
      swap(i, m);
      i = m;
    }
  };
  for (const [k, c] of pairCount) push(c, k);

  const wantMerges = vocabSize - 256 - specials.length;
  const merges: number[] = [];
  const seen = new Int32Array(words.length);
  let stamp = 0;
  let lastYield = Date.now();
  const changed = new Set<number>();
  const bump = (key: number, d: number) => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + d);
    changed.add(key);
  };
  while (tokens.length < 256 + wantMerges && hc.length > 0) {
    const c = hc[0], key = hk[0];
    pop();
    if (pairCount.get(key) !== c) continue; // stale
    if (c < minFrequency) break;
    const a = Math.floor(key / KEY), b = key - a * KEY;
    const bytes = new Uint8Array(tokens[a].length + tokens[b].length);
    bytes.set(tokens[a]);
    bytes.set(tokens[b], tokens[a].length);
    const name = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
    let t = tokenIds.get(name);
    if (t === undefined) {
      t = tokens.length;
      tokens.push(bytes);
      tokenIds.set(name, t);
    }
    merges.push(a, b, t);
    stamp++;
    changed.clear();
    for (const w of pairWords.get(key) ?? []) {
      if (seen[w] === stamp) continue;
      seen[w] = stamp;
      const s = words[w], f = freq[w];
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) { has = true; break; }
      if (!has) continue;
      for (let i = 0; i + 1 < s.length; i++) bump(s[i] * KEY + s[i + 1], -f);
      const ns: number[] = [];
      for (let i = 0; i < s.length; ) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { ns.push(t); i += 2; }
        else ns.push(s[i++]);
      }
      const n2 = Int32Array.from(ns);
      words[w] = n2;
      for (let i = 0; i + 1 < n2.length; i++) {
        const k2 = n2[i] * KEY + n2[i + 1];
        bump(k2, f);
        if (n2[i] === t || n2[i + 1] === t) {
          const l = pairWords.get(k2);
          if (l) l.push(w);
          else pairWords.set(k2, [w]);
        }
      }
    }
    pairWords.delete(key);
    pairCount.delete(key);
    for (const k of changed) {
      const v = pairCount.get(k);
      if (v === undefined) continue;
      if (v <= 0) {
        pairCount.delete(k);
        pairWords.delete(k);
      } else push(v, k);
    }
    if (Date.now() - lastYield > 200) {
      progress?.({ phase: 'merge', done: merges.length / 3, total: wantMerges, words: nWords, elapsedMs: Date.now() - t0 });
      await tick();
      lastYield = Date.now();
    }
  }
  const specialTokens = specials.map((text, i) => ({ text, id: tokens.length + i }));
  for (const s of specials) tokens.push(Buffer.from(s, 'utf8'));
  progress?.({ phase: 'done', done: merges.length / 3, total: wantMerges, words: nWords, elapsedMs: Date.now() - t0 });
  return { tokens, byteToId: byteId, merges: Int32Array.from(merges), specials: specialTokens };
}
