/**
 * `gpt-native data prepare --in PATH --out DIR`: text files, folders or .jsonl → GPT-2 token shards
 * (llm.c format, train_*.bin and val_*.bin), with a progress bar on a terminal and a summary.
 */
import { helpText, parseArgs, OptionSpecs } from './args';
import { prepareData } from '../data/prepare';

const specs: OptionSpecs = {
  in: { kind: 'string', default: 'default', help: "text file, folder or .jsonl; 'default' = the built-in corpus" },
  out: { kind: 'string', help: 'output folder for the shards (required)' },
  'val-fraction': { kind: 'number', default: 0.05, help: 'held-out fraction for validation' },
  'shard-tokens': { kind: 'int', default: 100_000_000, help: 'tokens per shard file' },
  json: { kind: 'boolean', default: false, help: 'print the summary as one JSON object' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export async function prepareCommand(argv: string[]): Promise<void> {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native data prepare --in PATH --out DIR', specs));
    return;
  }
  if (!a.out) throw new (require('./args').UsageError)('--out DIR is required');
  const tty = process.stderr.isTTY && !a.json;
  const t0 = Date.now();
  const r = await prepareData({
    input: a.in as string, out: a.out as string, valFraction: a['val-fraction'] as number, shardTokens: a['shard-tokens'] as number,
    onProgress: tty ? (p) => {
      const s = (Date.now() - t0) / 1000;
      process.stderr.write(`\rtokenizing: ${(p.bytes / 1e6).toFixed(1)} MB, ${p.tokens} tokens, ${p.documents} documents, ${(p.bytes / 1e6 / Math.max(s, 1e-3)).toFixed(1)} MB/s `);
    } : undefined,
  });
  if (tty) process.stderr.write('\n');
  const summary = { ...r, seconds: (Date.now() - t0) / 1000 };
  if (a.json) console.log(JSON.stringify(summary));
  else console.log(`${r.documents} documents, ${(r.bytes / 1e6).toFixed(1)} MB → ${r.trainTokens} train tokens in ${r.trainFiles.length} shard(s), ${r.valTokens} validation tokens in ${r.valFiles.length} shard(s) (${summary.seconds.toFixed(1)} s)`);
}
