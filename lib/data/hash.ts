/**
 * Hashing and word-splitting primitives shared by the quality classifier, MinHash and decontamination.
 *
 * Words are runs of letters (any script, by Unicode's `\p{L}`), lower-cased code unit by code unit; the
 * classifier splits on everything else, MinHash and n-gram matching also keep digits inside words. A word is
 * hashed while it is scanned (FNV-1a over its lower-cased UTF-16 code units, finished with murmur3's fmix32),
 * so no substring or array of words is ever built: the scanners below are the hot loops of the pipeline.
 */

/** murmur3's 32-bit finaliser: a bijection on 32-bit integers with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export const FNV_OFFSET = 0x811c9dc5 | 0;
export const FNV_PRIME = 0x01000193;

let lowerTable: Uint16Array | null = null;

/**
 * A 65536-entry table: 0 for a code unit that is not a letter, else its lower-case form (the code unit itself
 * where lower-casing would change the length). Built once per thread (a few milliseconds).
 */
export function letterTable(): Uint16Array {
  if (lowerTable) return lowerTable;
  const t = new Uint16Array(65536);
  const isLetter = /^\p{L}$/u;
  for (let c = 0; c < 65536; c++) {
    if (c < 128) {
      if (c >= 65 && c <= 90) t[c] = c + 32;
      else if (c >= 97 && c <= 122) t[c] = c;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) continue; // surrogate halves: separators
    const s = String.fromCharCode(c);
    if (!isLetter.test(s)) continue;
    const l = s.toLowerCase();
    t[c] = l.length === 1 ? l.charCodeAt(0) : c;
  }
  lowerTable = t;
  return t;
}

/**
 * Calls `onWord(hash)` for each word of `text` (letters only, lower-cased), in order; `withDigits` also
 * counts the digits 0-9 as word characters. Returns the number of words.
 * Example: `forEachWordHash('Hello, world', false, (h) => hashes.push(h))` → 2.
 */
export function forEachWordHash(text: string, withDigits: boolean, onWord: (h: number) => void): number {
  const L = letterTable();
  let h = FNV_OFFSET;
  let inWord = false;
  let n = 0;
  const len = text.length;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    let l = L[c];
    if (l === 0 && withDigits && c >= 48 && c <= 57) l = c;
    if (l !== 0) {
      h = Math.imul(h ^ l, FNV_PRIME);
      inWord = true;
    } else if (inWord) {
      onWord(fmix32(h));
      n++;
      h = FNV_OFFSET;
      inWord = false;
    }
  }
  if (inWord) {
    onWord(fmix32(h));
    n++;
  }
  return n;
}

/** The lower-cased words of `text` as strings (slow; for tests and explanations). Example: `words('A b1')` → ['a','b']. */
export function words(text: string, withDigits = false): string[] {
  const L = letterTable();
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let l = L[c];
    if (l === 0 && withDigits && c >= 48 && c <= 57) l = c;
    if (l !== 0) cur += String.fromCharCode(l);
    else if (cur) {
      out.push(cur);
      cur = '';
    }
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * A counter-based uniform draw in [0, 1) from (seed, key, index): the same three inputs always give the same
 * number, whatever the order or the machine. Example: `uniform(1, stringKey('shard-0.jsonl'), 17)`.
 */
export function uniform(seed: number, key: number, index: number): number {
  let a = fmix32((seed ^ 0x9e3779b9) >>> 0);
  a = fmix32((a ^ key) >>> 0);
  const hi = fmix32((a ^ index) >>> 0);
  const lo = fmix32((hi ^ 0x7f4a7c15 ^ Math.imul(index, 0x2545f491)) >>> 0);
  // 53 random bits
  return ((hi >>> 5) * 67108864 + (lo >>> 6)) / 9007199254740992;
}

/** A 32-bit hash of a string (FNV-1a + fmix32). Example: `stringKey('a.jsonl')`. */
export function stringKey(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return fmix32(h);
}
