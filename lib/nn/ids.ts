/** Turns the accepted forms of token-id input into one Int32Array with its (B, T) shape, validated. */
import { describe, typeError, rangeError } from '../errors';

export type TokenIds = number[][] | number[] | Int32Array | Uint16Array | Uint32Array;
export interface IdsOptions {
  /** [B, T] for flat typed arrays or flat number arrays; default [1, length]. */
  shape?: [number, number];
}

export interface Batch {
  data: Int32Array;
  B: number;
  T: number;
}

/**
 * Normalises ids to an Int32Array (B·T). `vocab` and `context` bound the values and T.
 * `name` appears in error messages (e.g. 'ids' or 'targets'); `allowIgnore` accepts -1 (padding).
 */
export function toBatch(ids: unknown, name: string, vocab: number, context: number, opts: IdsOptions = {},
  allowIgnore = false): Batch {
  let data: Int32Array;
  let B: number, T: number;
  if (Array.isArray(ids) && ids.length > 0 && Array.isArray(ids[0])) {
    const rows = ids as unknown[];
    B = rows.length;
    T = (rows[0] as unknown[]).length;
    data = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const row = rows[b];
      if (!Array.isArray(row) || row.length !== T)
        throw rangeError(`rows of equal length ${T}`, `${name}[${b}]`, row, 'pad shorter sequences or pass them separately');
      for (let t = 0; t < T; t++) data[b * T + t] = checkId(row[t], `${name}[${b}][${t}]`, vocab, allowIgnore);
    }
  } else if (Array.isArray(ids) || ids instanceof Int32Array || ids instanceof Uint16Array || ids instanceof Uint32Array) {
    const flat = ids as ArrayLike<number>;
    const shape = opts.shape ?? [1, flat.length];
    if (!Array.isArray(shape) || shape.length !== 2 || shape[0] * shape[1] !== flat.length)
      throw rangeError(`a shape [B, T] with B·T = ${flat.length}`, 'shape', shape);
    [B, T] = shape;
    if (ids instanceof Int32Array) {
      data = ids;
      for (let i = 0; i < data.length; i++) checkId(data[i], `${name}[${i}]`, vocab, allowIgnore);
    } else {
      data = new Int32Array(flat.length);
      for (let i = 0; i < flat.length; i++) data[i] = checkId(flat[i], `${name}[${i}]`, vocab, allowIgnore);
    }
  } else {
    throw typeError('number[][] or a typed array of token ids', name, ids);
  }
  if (B < 1 || T < 1) throw rangeError('at least one token', name, ids);
  if (T > context)
    throw rangeError(`at most n_positions = ${context} tokens per sequence`, `${name} length`, T,
      'shorten the input or use a model with a longer context');
  return { data, B, T };
}

function checkId(v: unknown, name: string, vocab: number, allowIgnore: boolean): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw typeError('an integer token id', name, v);
  if (allowIgnore && v === -1) return v;
  if (v < 0 || v >= vocab)
    throw rangeError(`a token id in [0, ${vocab})`, name, v, 'check that the tokenizer matches the model');
  return v;
}

export { describe };
