/** `gpt-native generate --model DIR --prompt "…"`: streams a continuation to the terminal. */
import { helpText, parseArgs, OptionSpecs, UsageError } from './args';
import { generate, GenerateOptions } from '../generate';

const specs: OptionSpecs = {
  model: { kind: 'string', help: 'checkpoint folder (config.json + model.safetensors)' },
  prompt: { kind: 'string', default: '', help: 'prompt text' },
  'max-new-tokens': { kind: 'int', default: 64, help: 'new tokens at most' },
  temperature: { kind: 'number', default: 0.8, help: '0 = greedy' },
  'top-k': { kind: 'int', default: 40, help: '0 = off' },
  'top-p': { kind: 'number', default: 1, help: 'nucleus mass (1 = off)' },
  seed: { kind: 'int', default: 0, help: 'sampler seed' },
  stop: { kind: 'string', help: 'stop string' },
  draft: { kind: 'string', help: 'draft checkpoint for speculative decoding' },
  speculate: { kind: 'int', default: 4, help: 'draft tokens per verification pass' },
  precision: { kind: 'string', default: 'fp32', help: 'fp32 | bf16 (weights read as bf16: about twice as fast on a CPU)' },
  'truncate-left': { kind: 'boolean', default: false, help: 'keep the end of a prompt longer than the context' },
  json: { kind: 'boolean', default: false, help: 'print the result as JSON instead of streaming' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export async function generateCommand(argv: string[]): Promise<void> {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native generate --model DIR --prompt "text" [options]', specs));
    return;
  }
  if (!a.model) throw new UsageError('--model DIR is required');
  const o: GenerateOptions = {
    model: a.model as string, prompt: a.prompt as string, maxNewTokens: a['max-new-tokens'] as number,
    temperature: a.temperature as number, topK: a['top-k'] as number, topP: a['top-p'] as number, seed: a.seed as number,
    stop: a.stop as string | undefined, truncate: a['truncate-left'] ? 'left' : undefined,
    draft: a.draft as string | undefined, speculate: a.draft ? (a.speculate as number) : undefined,
    precision: a.precision as GenerateOptions['precision'],
  };
  if (a.json) {
    console.log(JSON.stringify(await generate(o)));
    return;
  }
  process.stdout.write(a.prompt as string);
  for await (const piece of generate.stream(o)) process.stdout.write(piece);
  process.stdout.write('\n');
}
