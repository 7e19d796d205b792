/**
 * `gpt-native bench generate`: batch-1 greedy decoding with the KV cache: prefill time, per-token time,
 * tokens/s, and the fraction of the memory-bandwidth limit (every weight read once a token). Random weights of
 * a preset by default; `--model DIR` times a trained checkpoint, and `--draft DIR` adds speculative decoding
 * side by side with plain decoding of the same prompt (speed-up and acceptance rate).
 */
import { helpText, parseArgs, OptionSpecs, UsageError } from '../cli/args';
import { native } from '../native';
import { cuda, cudaInfo } from '../cuda';
import { GPT } from '../nn/gpt';
import { generate, GenerateOptions } from '../generate';
import { benchPreset, instrument, machineLine, median } from './timing';
import { Rng } from '../random';

const specs: OptionSpecs = {
  preset: { kind: 'string', default: 'gpt2-small', help: 'model preset (random weights; ignored with --model; also small6 and tiny)' },
  model: { kind: 'string', help: 'a checkpoint folder to time instead of random weights' },
  draft: { kind: 'string', help: 'draft checkpoint: also time speculative decoding against plain decoding' },
  speculate: { kind: 'int', default: 4, help: 'draft tokens per verification pass (with --draft)' },
  prompt: { kind: 'string', help: 'prompt text (default: --prompt-tokens random ids)' },
  'prompt-tokens': { kind: 'int', default: 16, help: 'prompt length' },
  'new-tokens': { kind: 'int', default: 128, help: 'tokens to generate' },
  runs: { kind: 'int', default: 3, help: 'runs (median reported)' },
  'bandwidth-gbps': { kind: 'number', default: 31, help: 'memory read bandwidth for the limit (GB/s)' },
  threads: { kind: 'int', help: 'threads' },
  device: { kind: 'string', default: 'cpu', help: 'cpu | cuda (on cuda give --bandwidth-gbps of the GPU, e.g. 4800 for an H200)' },
  precision: { kind: 'string', default: 'fp32', help: 'fp32 | bf16: the weights the matrix products stream' },
  'compare-graphs': { kind: 'boolean', default: false, help: 'cuda: also time plain decoding with every kernel launched from JavaScript (no CUDA graphs), alternating with the default' },
  'profile-host': { kind: 'boolean', default: false, help: 'cuda: one more plain run with the host time inside each family of addon calls (no synchronising) and the calls a generated token makes' },
  json: { kind: 'boolean', default: false, help: 'one JSON object as the last line' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

interface Run { prefillMs: number; msPerToken: number; tokensPerSec: number; acceptanceRate?: number; newTokens: number }

const medianOf = (runs: Run[], key: keyof Run) => median(runs.map((r) => r[key] as number));

export async function benchGenerate(argv: string[]): Promise<void> {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native bench generate [--preset P | --model DIR [--draft DIR]] --prompt-tokens N --new-tokens M [--json]', specs));
    return;
  }
  if (a.threads !== undefined) native.setThreads(a.threads as number);
  const device = a.device as string;
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`Expected cpu or cuda for --device but received ${JSON.stringify(device)}`);
  const precision = a.precision as string;
  if (precision !== 'fp32' && precision !== 'bf16') throw new UsageError(`Expected fp32 or bf16 for --precision but received ${JSON.stringify(precision)}`);
  if (a.draft !== undefined && a.model === undefined) throw new UsageError('--draft needs --model (a trained pair: random weights never agree)');
  let model: GPT;
  let name: string;
  if (a.model !== undefined) {
    model = await GPT.load(a.model as string, { device, precision });
    name = a.model as string;
  } else {
    model = GPT.create(benchPreset(a.preset as string), { seed: 1, device, precision });
    name = a.preset as string;
  }
  const draft = a.draft !== undefined ? await GPT.load(a.draft as string, { device, precision }) : null;
  const rng = new Rng(3);
  const prompt: string | number[] = a.prompt !== undefined ? (a.prompt as string)
    : Array.from({ length: a['prompt-tokens'] as number }, () => rng.int(model.config.vocab_size));
  const base: GenerateOptions = { model, prompt, maxNewTokens: a['new-tokens'] as number, temperature: 0, stopAtEos: false };
  // [name, options, CUDA graphs for the one-token steps (cuda)]
  const variants: Array<[string, GenerateOptions, boolean]> = [['plain', base, true]];
  if (draft) variants.push([`speculative k=${a.speculate}`, { ...base, draft, speculate: a.speculate as number }, true]);
  // (an addon without graphs: the tests' stand-in)
  const hasGraphs = device === 'cuda' && typeof cuda().graphStats === 'function';
  const compareGraphs = hasGraphs && (a['compare-graphs'] as boolean);
  if (compareGraphs) variants.push(['plain, no graphs', base, false]);
  const graphsWere = hasGraphs ? cuda().setGraphs(true) : false;
  const gen = async (v: number, o: GenerateOptions) => {
    if (hasGraphs) cuda().setGraphs(variants[v][2] && graphsWere);
    return generate(o);
  };
  const runs = variants.map(() => [] as Run[]);
  let promptTokens = 0;
  const graphs0 = hasGraphs ? cuda().graphStats() : null;
  try {
    for (let v = 0; v < variants.length; v++) await gen(v, { ...variants[v][1], maxNewTokens: 4 }); // warm-up
    for (let i = 0; i < (a.runs as number); i++) {
      for (let v = 0; v < variants.length; v++) { // alternating, so both see the same machine
        const r = await gen(v, variants[v][1]);
        promptTokens = r.promptTokens;
        runs[v].push({ prefillMs: r.prefillMs, msPerToken: r.msPerToken, tokensPerSec: r.tokensPerSec, acceptanceRate: r.speculative?.acceptanceRate, newTokens: r.tokens.length });
      }
    }
  } finally {
    if (hasGraphs) cuda().setGraphs(graphsWere);
  }
  const med = (v: number): Run => ({ prefillMs: medianOf(runs[v], 'prefillMs'), msPerToken: medianOf(runs[v], 'msPerToken'),
    tokensPerSec: medianOf(runs[v], 'tokensPerSec'), newTokens: medianOf(runs[v], 'newTokens'),
    ...(runs[v][0].acceptanceRate !== undefined ? { acceptanceRate: medianOf(runs[v], 'acceptanceRate') } : {}) });
  const plain = med(0);
  const bytes = model.numParameters() * (precision === 'bf16' ? 2 : 4); // every weight once a token
  const limit = ((a['bandwidth-gbps'] as number) * 1e9) / bytes;
  const out: Record<string, unknown> = { preset: a.model === undefined ? a.preset : undefined, model: a.model, promptTokens, ...plain,
    bandwidthLimitTokensPerSec: limit, fractionOfLimit: plain.tokensPerSec / limit, threads: native.threads(), isa: native.gemmIsa(), device, precision };
  if (draft) {
    const s = med(1);
    out.speculative = { draft: a.draft, k: a.speculate, ...s, speedup: s.tokensPerSec / plain.tokensPerSec };
  }
  if (graphs0) {
    // whether the timed runs replayed graphs (GPT_NATIVE_CUDA_GRAPHS=0 turns them off), and the runs without
    const g = cuda().graphStats();
    out.graphs = { enabled: graphsWere, captured: g.captured - graphs0.captured, launched: g.launched - graphs0.launched };
    if (compareGraphs) {
      const n = med(variants.length - 1);
      out.noGraphs = { ...n, graphsSpeedup: plain.tokensPerSec / n.tokensPerSec };
    }
  }
  // --profile-host (cuda): one more plain run with every addon call timed on the host, not synchronised. Calls and
  // times are a generated token's (the prefill's share included, spread over the new tokens).
  let host: { callsPerToken: number; msPerToken: number; perTokenMs: Record<string, number> } | undefined;
  if (device === 'cuda' && a['profile-host']) {
    const { times, calls, restore } = instrument(cuda(), undefined, true);
    const t0 = performance.now();
    let r;
    try { r = await generate(base); } finally { restore(); }
    const total = performance.now() - t0, n = Math.max(1, r.tokens.length);
    const perTokenMs: Record<string, number> = {};
    let inCalls = 0;
    for (const [k, v] of [...times].sort((x, y) => y[1] - x[1])) { perTokenMs[`host:${k}`] = v / n; inCalls += v; }
    perTokenMs['js (outside addon calls)'] = (total - inCalls) / n;
    host = { callsPerToken: calls.n / n, msPerToken: total / n, perTokenMs };
    out.hostProfile = host;
  }
  if (a.json) { console.log(JSON.stringify(out)); return; }
  console.log(device === 'cuda' ? `# ${cudaInfo().name}` : `# ${machineLine()}, ${out.threads} threads, gemm ${out.isa}`);
  console.log(`generate ${name}: prefill ${promptTokens} tokens ${plain.prefillMs.toFixed(1)} ms; ${plain.msPerToken.toFixed(2)} ms/token, ` +
    `${plain.tokensPerSec.toFixed(1)} tokens/s = ${(100 * plain.tokensPerSec / limit).toFixed(0)}% of the ${limit.toFixed(0)} tokens/s bandwidth limit (${precision} weights, ${a['bandwidth-gbps']} GB/s)`);
  if (out.graphs) {
    const g = out.graphs as { enabled: boolean; captured: number; launched: number };
    console.log(g.enabled ? `CUDA graphs: ${g.captured} captured, ${g.launched} launched (one a token after the first two of a run)`
      : 'CUDA graphs: off (GPT_NATIVE_CUDA_GRAPHS=0): every kernel launched from JavaScript');
  }
  if (out.noGraphs) {
    const n = out.noGraphs as Run & { graphsSpeedup: number };
    console.log(`without CUDA graphs: ${n.msPerToken.toFixed(2)} ms/token, ${n.tokensPerSec.toFixed(1)} tokens/s; graphs are ${n.graphsSpeedup.toFixed(2)}× that`);
  }
  if (host) {
    console.log(`host profile (no synchronising): ${host.callsPerToken.toFixed(1)} addon calls a token, ${host.msPerToken.toFixed(3)} ms a token; per token (ms):`);
    for (const [k, v] of Object.entries(host.perTokenMs)) console.log(`  ${k.padEnd(26)} ${v.toFixed(4).padStart(9)}`);
  }
  if (draft) {
    const s = out.speculative as Run & { speedup: number };
    console.log(`speculative (draft ${a.draft}, k=${a.speculate}): ${s.msPerToken.toFixed(2)} ms/token, ${s.tokensPerSec.toFixed(1)} tokens/s = ` +
      `${s.speedup.toFixed(2)}× plain; acceptance rate ${(100 * s.acceptanceRate!).toFixed(1)}%`);
  }
}
