/**
 * `gpt-native data <stage>`: the data pipeline's commands.
 *   data quality train --positive P --negative N --out model.json
 *   data quality score --model model.json --in IN --out OUT
 *   data filter        --in IN --out OUT [--alpha 9] [--seed S]
 *   data dedup         --in IN --out OUT [--threshold 0.8]
 *   data decontaminate --in IN --out OUT --protected EVAL
 *   data mix           --source NAME=PATH:WEIGHT … | --in mix.json   --tokens N --out DIR
 * Bad input lines are reported (file:line: reason) on stderr and skipped; `--strict` makes them fail the
 * command (status 1) once the stream is done. The summary goes to stdout (stderr when --out is '-').
 */
import { helpText, OptionSpecs, parseArgs, Parsed, UsageError } from '../cli/args';
import { DataInputError, DocFormat } from './jsonl';
import { decontaminateFiles, dedupFiles, filterFiles, formatSummary, scoreFiles, StageSummary, trainQualityFiles } from './stages';
import { formatMixReport, mix, MixSource } from './mix';
import * as fs from 'fs';

const common: OptionSpecs = {
  in: { kind: 'string', help: 'input: a file, a folder of shards, or - for stdin' },
  out: { kind: 'string', help: 'output: a file, - for stdout, or a folder (one file per input shard)' },
  workers: { kind: 'int', help: 'worker threads (default: one per core; 0 = main thread)' },
  format: { kind: 'string', help: 'read inputs as jsonl or text (default: by file extension)' },
  strict: { kind: 'boolean', default: false, help: 'exit 1 if any input line was bad (after finishing)' },
  quiet: { kind: 'boolean', default: false, help: 'no progress bar, no summary' },
  json: { kind: 'boolean', default: false, help: 'print the summary as one JSON object' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

const fuzzy: OptionSpecs = {
  threshold: { kind: 'number', default: 0.8, help: 'Jaccard threshold (estimated from the signatures)' },
  hashes: { kind: 'int', default: 128, help: 'MinHash signature length' },
  shingle: { kind: 'int', default: 5, help: 'words per shingle' },
  bands: { kind: 'int', default: 10, help: 'LSH hash tables' },
  rows: { kind: 'int', default: 5, help: 'signature values per table' },
  seed: { kind: 'int', default: 1, help: 'seed of the hash family' },
};

const specs: Record<string, { usage: string; opts: OptionSpecs; help: string }> = {
  'quality train': {
    usage: 'gpt-native data quality train --positive CURATED --negative RAW --out model.json',
    help: 'train the quality classifier (prints held-out accuracy and AUC)',
    opts: {
      positive: { kind: 'string', help: 'curated documents (file, folder or -)' },
      negative: { kind: 'string', help: 'raw documents (file, folder or -)' },
      out: { kind: 'string', help: 'where to write model.json' },
      buckets: { kind: 'int', default: 1 << 18, help: 'hashed feature buckets (a power of two)' },
      epochs: { kind: 'int', default: 8, help: 'passes over the training set' },
      lr: { kind: 'number', default: 0.5, help: 'Adagrad learning rate' },
      l2: { kind: 'number', default: 1e-6, help: 'L2 penalty' },
      holdout: { kind: 'number', default: 0.1, help: 'fraction held out for evaluation' },
      seed: { kind: 'int', default: 1, help: 'seed for the split and shuffles' },
      format: common.format,
      strict: common.strict,
      json: common.json,
      quiet: common.quiet,
      help: common.help,
    },
  },
  'quality score': {
    usage: 'gpt-native data quality score --model model.json --in IN --out OUT',
    help: 'write score = P(curated) into every document',
    opts: { model: { kind: 'string', help: 'model.json from `data quality train`' }, field: { kind: 'string', default: 'score', help: 'field to write' }, ...common },
  },
  filter: {
    usage: 'gpt-native data filter --in SCORED --out KEPT [--alpha 9] [--seed S]',
    help: "GPT-3's Pareto resampling: keep when pareto(alpha) > 1 - score",
    opts: {
      alpha: { kind: 'number', default: 9, help: 'Pareto shape α' },
      seed: { kind: 'int', default: 1, help: 'seed of the draws' },
      field: { kind: 'string', default: 'score', help: 'field holding the score' },
      ...common,
    },
  },
  dedup: {
    usage: 'gpt-native data dedup --in IN --out OUT [--threshold 0.8]',
    help: 'MinHash-LSH fuzzy deduplication (first of each cluster kept)',
    opts: { ...fuzzy, duplicates: { kind: 'string', help: 'also write the dropped documents here, with duplicate_of' }, ...common },
  },
  decontaminate: {
    usage: 'gpt-native data decontaminate --in IN --out OUT --protected EVAL',
    help: 'drop documents overlapping a protected set (13-grams and/or MinHash)',
    opts: {
      protected: { kind: 'string', help: 'the protected documents (evaluation data)' },
      method: { kind: 'string', default: 'both', help: 'ngram, minhash or both' },
      ngram: { kind: 'int', default: 13, help: 'n-gram length in words' },
      'min-hits': { kind: 'int', default: 1, help: 'protected n-grams needed to drop a document' },
      ...fuzzy,
      ...common,
    },
  },
  mix: {
    usage: 'gpt-native data mix --source NAME=PATH:WEIGHT [--source …] --tokens N --out DIR',
    help: 'weighted mix of sources into llm.c token shards, with epochs per source',
    opts: {
      source: { kind: 'string', help: 'NAME=PATH:WEIGHT (repeat for each source)' },
      in: { kind: 'string', help: 'instead of --source: a JSON file {"sources":[{"name","path","weight"}]}' },
      tokens: { kind: 'int', help: 'token budget' },
      out: { kind: 'string', help: 'folder for the shards' },
      'shard-tokens': { kind: 'int', default: 100_000_000, help: 'tokens per shard' },
      prefix: { kind: 'string', default: 'train', help: 'shard file prefix' },
      seed: { kind: 'int', default: 1, help: 'seed of the document order' },
      tokenizer: { kind: 'string', default: 'gpt2', help: 'gpt2 (BPE, eot 50256) or bytes (UTF-8 bytes, eot 256)' },
      format: common.format,
      strict: common.strict,
      quiet: common.quiet,
      json: common.json,
      help: common.help,
    },
  },
};

function usage(): string {
  const lines = ['Usage: gpt-native data <stage> [options]', '', 'Stages:'];
  for (const [k, s] of Object.entries(specs)) lines.push(`  ${k.padEnd(16)}${s.help}`);
  lines.push('', 'Run `gpt-native data <stage> --help` for its options.');
  return lines.join('\n');
}

function need(a: Parsed, name: string): string {
  const v = a[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`Expected --${name}`);
  return v;
}

function format(a: Parsed): DocFormat | undefined {
  const f = a.format;
  if (f === undefined) return undefined;
  if (f !== 'jsonl' && f !== 'text') throw new UsageError(`Expected jsonl or text for --format but received ${JSON.stringify(f)}`);
  return f;
}

/** Prints bad lines to stderr as they come (the first 20, then a count in the summary). */
function errorPrinter(): { onError: (e: DataInputError) => void; count: () => number } {
  let n = 0;
  return {
    onError: (e) => {
      n++;
      if (n <= 20) process.stderr.write(`warning: ${e.message}\n`);
      else if (n === 21) process.stderr.write('warning: more bad lines follow; counting only\n');
    },
    count: () => n,
  };
}

function report(a: Parsed, text: string, obj: unknown): void {
  if (a.quiet) return;
  const s = a.json ? JSON.stringify(obj) : text;
  if (a.out === '-') process.stderr.write(s + '\n');
  else console.log(s);
}

function finish(a: Parsed, s: StageSummary): void {
  report(a, formatSummary(s), s);
  if (a.strict && s.errors > 0) throw new Error(`${s.errors} bad input line${s.errors === 1 ? '' : 's'} (--strict)`);
}

/** Resolves the GPT-2 tokenizer lazily (it lives in lib/tokenizer). */
export function gpt2Encoder(): { encode: (t: string) => number[] | Uint32Array; eot: number } {
  type Tok = { encode(t: string): number[]; encodeToUint32?(t: string): Uint32Array; eotToken?: number };
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const tok: Tok = require('../tokenizer').Tokenizer.gpt2();
    const eot = typeof tok.eotToken === 'number' ? tok.eotToken : 50256;
    if (typeof tok.encodeToUint32 === 'function') return { encode: (t) => tok.encodeToUint32!(t), eot };
    return { encode: (t) => tok.encode(t), eot };
  } catch (e) {
    throw new Error(
      `data mix needs the GPT-2 tokenizer (lib/tokenizer), which could not be loaded: ${String((e as Error).message).split('\n')[0]}. ` +
        'Use --tokenizer bytes for byte-level tokens.',
    );
  }
}

/** UTF-8 bytes as tokens (ids 0-255), end-of-text 256. */
export function byteEncoder(): { encode: (t: string) => number[]; eot: number } {
  return { encode: (t) => Array.from(Buffer.from(t, 'utf8')), eot: 256 };
}

/** Parses `NAME=PATH:WEIGHT`. */
export function parseSourceSpec(s: string): MixSource {
  const eq = s.indexOf('=');
  const colon = s.lastIndexOf(':');
  if (eq <= 0 || colon < eq + 2) throw new UsageError(`Expected NAME=PATH:WEIGHT for --source but received ${JSON.stringify(s)}`);
  const w = Number(s.slice(colon + 1));
  if (s.slice(colon + 1).trim() === '' || !Number.isFinite(w))
    throw new UsageError(`Expected a number after the last ':' in --source ${JSON.stringify(s)}`);
  return { name: s.slice(0, eq), path: s.slice(eq + 1, colon), weight: w };
}

export async function dataCommand(argv: string[]): Promise<void> {
  let [stage, ...rest] = argv;
  if (stage === 'quality') {
    const sub = rest[0];
    if (sub === 'train' || sub === 'score') {
      stage = `quality ${sub}`;
      rest = rest.slice(1);
    } else if (sub === undefined || sub === '--help' || sub === '-h') {
      console.log(`Usage: gpt-native data quality <train|score> [options]`);
      if (sub === undefined) throw new UsageError('missing quality subcommand (train or score)');
      return;
    } else throw new UsageError(`unknown quality subcommand ${JSON.stringify(sub)}; one of: train, score`);
  }
  if (stage === 'prepare') {
    // text → GPT-2 token shards for training (lib/cli/prepare.ts)
    await require('../cli/prepare').prepareCommand(rest);
    return;
  }
  if (!stage || stage === '--help' || stage === '-h' || stage === 'help') {
    console.log(usage());
    console.log('  prepare         text files/folders → GPT-2 token shards for training (see data prepare --help)');
    if (!stage) throw new UsageError('missing data stage');
    return;
  }
  const spec = specs[stage];
  if (!spec) throw new UsageError(`unknown data stage ${JSON.stringify(stage)}; one of: ${Object.keys(specs).join(', ')}`);
  // --source may repeat: take every occurrence out before the parser (which keeps the last)
  const sources: string[] = [];
  if (stage === 'mix') {
    const kept: string[] = [];
    for (let i = 0; i < rest.length; i++) {
      if (rest[i] === '--source') {
        if (i + 1 >= rest.length) throw new UsageError('Expected a value after --source');
        sources.push(rest[++i]);
      } else if (rest[i].startsWith('--source=')) sources.push(rest[i].slice('--source='.length));
      else kept.push(rest[i]);
    }
    rest = kept;
  }
  const a = parseArgs(rest, spec.opts);
  if (a.help) {
    console.log(helpText(spec.usage, spec.opts));
    return;
  }
  if (a._.length) throw new UsageError(`unexpected argument ${JSON.stringify(a._[0])}`);
  const errs = errorPrinter();
  const progress = a.quiet ? false : undefined;
  const base = () => ({
    in: need(a, 'in'),
    out: need(a, 'out'),
    workers: a.workers as number | undefined,
    format: format(a),
    progress,
    onError: errs.onError,
  });
  switch (stage) {
    case 'quality train': {
      const { heldOut, summary } = await trainQualityFiles({
        positive: need(a, 'positive'),
        negative: need(a, 'negative'),
        out: need(a, 'out'),
        buckets: a.buckets as number,
        epochs: a.epochs as number,
        lr: a.lr as number,
        l2: a.l2 as number,
        holdout: a.holdout as number,
        seed: a.seed as number,
        format: format(a),
        onError: errs.onError,
      });
      const ev = heldOut
        ? `held-out: ${heldOut.n} documents (${heldOut.positives} curated, ${heldOut.negatives} raw): accuracy ${(100 * heldOut.accuracy).toFixed(2)}%, AUC ${heldOut.auc.toFixed(4)}`
        : 'held-out: none (--holdout 0)';
      report(a, `${formatSummary(summary)}\n${ev}`, { ...summary, heldOut });
      if (a.strict && summary.errors > 0) throw new Error(`${summary.errors} bad input lines (--strict)`);
      return;
    }
    case 'quality score':
      return finish(a, await scoreFiles({ ...base(), model: need(a, 'model'), field: a.field as string }));
    case 'filter':
      return finish(a, await filterFiles({ ...base(), alpha: a.alpha as number, seed: a.seed as number, field: a.field as string }));
    case 'dedup':
      return finish(
        a,
        await dedupFiles({
          ...base(),
          threshold: a.threshold as number,
          hashes: a.hashes as number,
          shingle: a.shingle as number,
          bands: a.bands as number,
          rows: a.rows as number,
          seed: a.seed as number,
          duplicates: a.duplicates as string | undefined,
        }),
      );
    case 'decontaminate': {
      const method = a.method as string;
      if (!['ngram', 'minhash', 'both'].includes(method))
        throw new UsageError(`Expected ngram, minhash or both for --method but received ${JSON.stringify(method)}`);
      return finish(
        a,
        await decontaminateFiles({
          ...base(),
          protected: need(a, 'protected'),
          method: method as 'ngram' | 'minhash' | 'both',
          ngram: a.ngram as number,
          minHits: a['min-hits'] as number,
          threshold: a.threshold as number,
          hashes: a.hashes as number,
          shingle: a.shingle as number,
          bands: a.bands as number,
          rows: a.rows as number,
          seed: a.seed as number,
        }),
      );
    }
    case 'mix': {
      let srcs: MixSource[] = sources.map(parseSourceSpec);
      if (a.in !== undefined) {
        if (srcs.length) throw new UsageError('Expected either --source or --in, not both');
        let j: { sources?: MixSource[] };
        try {
          j = JSON.parse(fs.readFileSync(a.in as string, 'utf8'));
        } catch (e) {
          throw new UsageError(`Cannot read the mix spec ${a.in}: ${(e as Error).message}`);
        }
        if (!j || !Array.isArray(j.sources)) throw new UsageError(`Expected {"sources": [...]} in ${a.in}`);
        srcs = j.sources;
      }
      if (!srcs.length) throw new UsageError('Expected at least one --source NAME=PATH:WEIGHT (or --in mix.json)');
      if (a.tokens === undefined) throw new UsageError('Expected --tokens');
      const tk = a.tokenizer as string;
      if (tk !== 'gpt2' && tk !== 'bytes') throw new UsageError(`Expected gpt2 or bytes for --tokenizer but received ${JSON.stringify(tk)}`);
      const enc = tk === 'bytes' ? byteEncoder() : gpt2Encoder();
      const fmt = format(a);
      const r = await mix({
        sources: fmt ? srcs.map((s) => ({ ...s, format: fmt })) : srcs,
        tokens: a.tokens as number,
        out: need(a, 'out'),
        encode: enc.encode,
        eot: enc.eot,
        shardTokens: a['shard-tokens'] as number,
        prefix: a.prefix as string,
        seed: a.seed as number,
        onError: errs.onError,
        progress,
      });
      report(a, formatMixReport(r), r);
      if (a.strict && r.errors > 0) throw new Error(`${r.errors} bad input lines (--strict)`);
      return;
    }
  }
}
