/**
 * Long word n-grams for decontamination (GPT-3 used 13-grams): each n-gram of lower-cased words (letters and
 * digits) is reduced to a 53-bit key from two independent 32-bit hashes, so a false match between two
 * different n-grams has probability ~2^-53 per pair.
 */
import { fmix32, FNV_OFFSET, FNV_PRIME, letterTable } from './hash';

/**
 * Calls `onKey(key)` for every word n-gram of `text`; a text with fewer than n words yields nothing.
 * Returns the number of n-grams. Example: `forEachNgramKey(text, 13, (k) => set.add(k))`.
 */
export function forEachNgramKey(text: string, n: number, onKey: (key: number) => boolean | void): number {
  const L = letterTable();
  const ring = new Int32Array(n);
  let pos = 0;
  let count = 0;
  let grams = 0;
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
        let a = 0x243f6a88;
        let b = 0x85a308d3;
        let p = pos;
        for (let j = 0; j < n; j++) {
          const w = ring[p];
          a = Math.imul(a ^ w, 0x9e3779b1);
          a ^= a >>> 15;
          b = Math.imul(b ^ w, 0xcc9e2d51);
          b ^= b >>> 13;
          p = p + 1 === n ? 0 : p + 1;
        }
        grams++;
        if (onKey(fmix32(a) * 2097152 + (fmix32(b) >>> 11)) === true) return grams;
      }
    }
  }
  return grams;
}

/** The set of n-gram keys of some texts. Example: `ngramSet(evalTexts, 13)`. */
export function ngramSet(texts: Iterable<string>, n = 13): Set<number> {
  const s = new Set<number>();
  for (const t of texts) forEachNgramKey(t, n, (k) => void s.add(k));
  return s;
}

/** How many of `text`'s n-grams are in `set` (stops counting at `stopAt`). */
export function countNgramHits(text: string, set: Set<number>, n = 13, stopAt = Infinity): number {
  let hits = 0;
  forEachNgramKey(text, n, (k) => {
    if (set.has(k)) hits++;
    return hits >= stopAt;
  });
  return hits;
}

/**
 * A text's shingle set as sorted 53-bit keys: its word n-grams, or for a text of fewer than n words (but some)
 * one shingle of all its words, as MinHash signs it. Example: `shingleKeys('a b c d e f', 5)` → 2 keys.
 */
export function shingleKeys(text: string, n: number): Float64Array {
  const keys: number[] = [];
  const grams = forEachNgramKey(text, n, (k) => void keys.push(k));
  if (grams === 0) {
    let words = 0;
    forEachNgramKey(text, 1, () => void words++);
    if (words > 0) forEachNgramKey(text, words, (k) => void keys.push(k));
  }
  const a = Float64Array.from(keys).sort();
  let m = 0;
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[i - 1]) a[m++] = a[i];
  return a.slice(0, m);
}

/** Exact Jaccard similarity of two sorted key sets. */
export function jaccardOfSorted(a: Float64Array, b: Float64Array): number {
  let i = 0;
  let j = 0;
  let inter = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      inter++;
      i++;
      j++;
    } else if (a[i] < b[j]) i++;
    else j++;
  }
  const uni = a.length + b.length - inter;
  return uni === 0 ? 0 : inter / uni;
}
