/**
 * Text → GPT-2 tokens → train/validation shards (llm.c format). Documents are separated by the
 * end-of-text token (GPT-3's packing: sequences later cut from this stream cross document boundaries).
 * Every k-th fragment (k = round(1/valFraction)) goes to the validation split.
 * `gpt-native data prepare --in PATH --out DIR` runs it with a progress bar.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ShardWriter } from './shards';
import { Fragment, defaultCorpus, fileCorpus, listFiles } from './corpus';
import { checkNumber } from '../errors';

/** The part of a tokenizer that data preparation needs. */
export interface Encoder {
  encode(text: string): number[];
  eotToken: number;
}

export interface PrepareOptions {
  /** Files or folders of text/.jsonl; omitted or 'default' for the built-in corpus. */
  input?: string | string[];
  /** Output folder for train_*.bin and val_*.bin. */
  out: string;
  /** Fraction of fragments held out for validation (default 0.05; 0 for none). */
  valFraction?: number;
  /** Tokens per shard file (default 100M). */
  shardTokens?: number;
  /** Tokenizer (default GPT-2's). */
  tokenizer?: Encoder;
  /** Called after each fragment with bytes read so far. */
  onProgress?: (p: { bytes: number; tokens: number; documents: number }) => void;
}

export interface PreparedData {
  trainFiles: string[];
  valFiles: string[];
  trainTokens: number;
  valTokens: number;
  documents: number;
  bytes: number;
}

/** Loads GPT-2's tokenizer lazily (the tokenizer module is optional at build time). */
export function defaultTokenizer(): Encoder {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const mod = require('../tokenizer');
  return mod.Tokenizer.gpt2();
}

/** Tokenizes a corpus into shards. Example: `await prepareData({ out: 'data/' })`. */
export async function prepareData(opts: PrepareOptions): Promise<PreparedData> {
  const valFraction = checkNumber(opts.valFraction ?? 0.05, 'valFraction', 0, 0.5);
  const tok = opts.tokenizer ?? defaultTokenizer();
  const every = valFraction > 0 ? Math.max(2, Math.round(1 / valFraction)) : 0;
  fs.mkdirSync(opts.out, { recursive: true });
  for (const f of fs.readdirSync(opts.out)) if (/^(train|val)_\d{6}\.bin$/.test(f)) fs.rmSync(path.join(opts.out, f));
  const train = new ShardWriter(opts.out, { shardTokens: opts.shardTokens ?? 100_000_000, prefix: 'train' });
  const val = new ShardWriter(opts.out, { shardTokens: opts.shardTokens ?? 100_000_000, prefix: 'val' });
  const inputs = opts.input === undefined || opts.input === 'default' ? null : Array.isArray(opts.input) ? opts.input : [opts.input];
  const source: AsyncIterable<Fragment> | Iterable<Fragment> = inputs ? fileCorpus(listFiles(inputs)) : defaultCorpus();
  let index = 0, documents = 0, bytes = 0;
  for await (const frag of source) {
    const toks = tok.encode(frag.text);
    if (frag.last) {
      toks.push(tok.eotToken);
      documents++;
    }
    (every && index % every === every - 1 ? val : train).append(toks);
    index++;
    bytes += Buffer.byteLength(frag.text);
    opts.onProgress?.({ bytes, tokens: train.tokens + val.tokens, documents });
  }
  const trainFiles = train.close();
  const valFiles = val.close();
  if (every && index > 0 && val.tokens === 0)
    process.emitWarning(`gpt-native: the corpus gave ${index} text fragments, too few to hold out every ${every}th for validation; training runs without a validation loss (add text or raise valFraction)`);
  if (train.tokens === 0) throw new Error(`The corpus ${inputs ? inputs.join(', ') : '(built-in)'} is empty: no text to train on`);
  return { trainFiles, valFiles, trainTokens: train.tokens, valTokens: val.tokens, documents, bytes };
}
