/**
 * `gpt-native bench generate`: batch-1 greedy decoding with the KV cache on random weights: prefill time,
 * per-token time, tokens/s, and the fraction of the memory-bandwidth limit (every weight read once a token).
 */
import { helpText, parseArgs, OptionSpecs, UsageError } from '../cli/args';
import { native } from '../native';
import { cudaInfo } from '../cuda';
import { GPT } from '../nn/gpt';
import { generate } from '../generate';
import { GPTConfig, getPreset } from '../config';
import { machineLine } from './timing';
import { Rng } from '../random';

const specs: OptionSpecs = {
  preset: { kind: 'string', default: 'gpt2-small', help: 'model preset' },
  'prompt-tokens': { kind: 'int', default: 16, help: 'prompt length' },
  'new-tokens': { kind: 'int', default: 128, help: 'tokens to generate' },
  runs: { kind: 'int', default: 3, help: 'runs (median reported)' },
  'bandwidth-gbps': { kind: 'number', default: 31, help: 'memory read bandwidth for the limit (GB/s)' },
  threads: { kind: 'int', help: 'threads' },
  device: { kind: 'string', default: 'cpu', help: 'cpu | cuda (on cuda give --bandwidth-gbps of the GPU, e.g. 4800 for an H200)' },
  precision: { kind: 'string', default: 'fp32', help: 'fp32 | bf16: the weights the matrix products stream' },
  json: { kind: 'boolean', default: false, help: 'one JSON object as the last line' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export async function benchGenerate(argv: string[]): Promise<void> {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native bench generate --preset P --prompt-tokens N --new-tokens M [--json]', specs));
    return;
  }
  if (a.threads !== undefined) native.setThreads(a.threads as number);
  let cfg: GPTConfig;
  try { cfg = getPreset(a.preset as string); } catch (e) { throw new UsageError((e as Error).message); }
  const device = a.device as string;
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`Expected cpu or cuda for --device but received ${JSON.stringify(device)}`);
  const precision = a.precision as string;
  if (precision !== 'fp32' && precision !== 'bf16') throw new UsageError(`Expected fp32 or bf16 for --precision but received ${JSON.stringify(precision)}`);
  const model = GPT.create(cfg, { seed: 1, device, precision });
  const rng = new Rng(3);
  const prompt = Array.from({ length: a['prompt-tokens'] as number }, () => rng.int(cfg.vocab_size));
  const runs: Array<{ prefillMs: number; msPerToken: number; tokensPerSec: number }> = [];
  await generate({ model, prompt, maxNewTokens: 4, temperature: 0, stopAtEos: false }); // warm-up
  for (let i = 0; i < (a.runs as number); i++) {
    const r = await generate({ model, prompt, maxNewTokens: a['new-tokens'] as number, temperature: 0, stopAtEos: false });
    runs.push({ prefillMs: r.prefillMs, msPerToken: r.msPerToken, tokensPerSec: r.tokensPerSec });
  }
  runs.sort((x, y) => x.msPerToken - y.msPerToken);
  const med = runs[Math.floor(runs.length / 2)];
  const bytes = model.numParameters() * (precision === 'bf16' ? 2 : 4); // every weight once a token
  const limit = ((a['bandwidth-gbps'] as number) * 1e9) / bytes;
  const out = { preset: a.preset, promptTokens: prompt.length, newTokens: a['new-tokens'], ...med, bandwidthLimitTokensPerSec: limit,
    fractionOfLimit: med.tokensPerSec / limit, threads: native.threads(), isa: native.gemmIsa(), device, precision };
  if (a.json) { console.log(JSON.stringify(out)); return; }
  console.log(device === 'cuda' ? `# ${cudaInfo().name}` : `# ${machineLine()}, ${out.threads} threads, gemm ${out.isa}`);
  console.log(`generate ${a.preset}: prefill ${prompt.length} tokens ${med.prefillMs.toFixed(1)} ms; ${med.msPerToken.toFixed(2)} ms/token, ` +
    `${med.tokensPerSec.toFixed(1)} tokens/s = ${(100 * out.fractionOfLimit).toFixed(0)}% of the ${limit.toFixed(0)} tokens/s bandwidth limit (${precision} weights, ${a['bandwidth-gbps']} GB/s)`);
}
