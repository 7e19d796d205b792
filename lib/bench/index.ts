/** `gpt-native bench <what>`: dispatches to one benchmark module per subject. */
import { UsageError } from '../cli/args';

type Bench = (argv: string[]) => Promise<void> | void;

const benches: Record<string, { help: string; load: () => Bench }> = {
  gemm: { help: 'one GEMM shape: --m --n --k [--trans-a] [--trans-b] [--json]', load: () => require('./gemm').benchGemm },
  kernels: { help: 'every kernel at GPT-2 small shapes [--json]', load: () => require('./kernels').benchKernels },
  generate: { help: 'batch-1 decoding: --preset P --prompt-tokens N --new-tokens M [--json]', load: () => require('./generate').benchGenerate },
  train: { help: 'one training step: --preset P --batch B --seq T [--steps N] [--json]', load: () => require('./train').benchTrain },
  tokenizer: { help: 'GPT-2 tokenizer encode/decode MB/s: --file F [--json]', load: () => require('./tokenizer').benchTokenizer },
  data: { help: 'data pipeline MB/s: scoring, MinHash signing, dedup [--mb] [--json]', load: () => require('./data').benchData },
};

export async function benchCommand(argv: string[]): Promise<void> {
  const [what, ...rest] = argv;
  if (!what || what === '--help' || what === '-h') {
    const lines = ['Usage: gpt-native bench <subject> [options]', '', 'Subjects:'];
    for (const [k, b] of Object.entries(benches)) lines.push(`  ${k.padEnd(12)}${b.help}`);
    console.log(lines.join('\n'));
    if (!what) throw new UsageError('missing benchmark subject');
    return;
  }
  const b = benches[what];
  if (!b) throw new UsageError(`unknown benchmark ${JSON.stringify(what)}; one of: ${Object.keys(benches).join(', ')}`);
  await b.load()(rest);
}
