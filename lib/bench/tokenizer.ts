/** `gpt-native bench tokenizer --file F`: GPT-2 tokenizer encode and decode throughput on a text file. */
import * as fs from 'fs';
import { helpText, parseArgs, OptionSpecs, UsageError } from '../cli/args';
import { Tokenizer } from '../tokenizer';
import { machineLine, timeIt } from './timing';

const specs: OptionSpecs = {
  file: { kind: 'string', help: 'UTF-8 text file to encode (required)' },
  runs: { kind: 'int', default: 5, help: 'timed runs (median reported)' },
  json: { kind: 'boolean', default: false, help: 'print one JSON object as the last line' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export interface TokenizerBenchResult {
  file: string;
  bytes: number;
  tokens: number;
  encodeMs: number;
  decodeMs: number;
  encodeMBps: number;
  decodeMBps: number;
  roundtrip: boolean;
}

/** Times Tokenizer.gpt2() encode (to a Uint32Array) and decode of one text; MB = 10^6 UTF-8 bytes. */
export function timeTokenizer(file: string, text: string, runs = 5): TokenizerBenchResult {
  const tok = Tokenizer.gpt2();
  const bytes = Buffer.byteLength(text, 'utf8');
  let ids: Uint32Array = new Uint32Array(0);
  const enc = timeIt(() => { ids = tok.encodeToUint32(text); }, { warmup: 1, runs });
  let out = '';
  const dec = timeIt(() => { out = tok.decode(ids); }, { warmup: 1, runs });
  return {
    file, bytes, tokens: ids.length,
    encodeMs: enc.medianMs, decodeMs: dec.medianMs,
    encodeMBps: bytes / 1e3 / enc.medianMs, decodeMBps: bytes / 1e3 / dec.medianMs,
    roundtrip: out === Buffer.from(text, 'utf8').toString('utf8'),
  };
}

export function benchTokenizer(argv: string[]): void {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native bench tokenizer --file F [--runs N] [--json]', specs));
    return;
  }
  const file = a.file as string | undefined;
  if (!file) throw new UsageError('Expected a text file for --file but received nothing');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`Expected a readable text file for --file but received ${JSON.stringify(file)} (${(e as Error).message})`);
  }
  const r = timeTokenizer(file, text, a.runs as number);
  if (a.json) {
    console.log(JSON.stringify(r));
    return;
  }
  console.log(`# ${machineLine()}, GPT-2 tokenizer, median of ${a.runs} runs`);
  console.log(`${file}: ${r.bytes} bytes, ${r.tokens} tokens`);
  console.log(`encode ${r.encodeMBps.toFixed(1)} MB/s (${r.encodeMs.toFixed(1)} ms), decode ${r.decodeMBps.toFixed(1)} MB/s (${r.decodeMs.toFixed(1)} ms), round trip ${r.roundtrip ? 'exact' : 'DIFFERS'}`);
}
