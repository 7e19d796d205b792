#!/usr/bin/env node
/**
 * The `gpt-native` command. Each subcommand lives in its own module and is loaded on demand:
 *   gpt-native bench <gemm|kernels|...> [options]
 * Usage errors exit with status 2, other failures with 1.
 */
import { UsageError } from './cli/args';

type Command = (argv: string[]) => Promise<void> | void;

const commands: Record<string, { help: string; load: () => Command }> = {
  bench: { help: 'microbenchmarks: gemm, kernels, train, generate, tokenizer, data', load: () => require('./bench/index').benchCommand },
  train: { help: 'pre-train a GPT (see --help)', load: () => require('./train').trainCommand },
  finetune: { help: 'GPT-1 fine-tuning: --task T --train F --model DIR --out DIR', load: () => require('./cli/finetune').finetuneCommand },
  eval: { help: 'few-shot evaluation or perplexity: --model DIR --data F [--shots K]', load: () => require('./cli/finetune').evalCommand },
  generate: { help: 'stream a continuation: --model DIR --prompt "…"', load: () => require('./cli/generate').generateCommand },
  data: { help: 'data pipeline: quality, filter, dedup, decontaminate, mix', load: () => require('./data/cli').dataCommand },
};

function usage(): string {
  const lines = ['Usage: gpt-native <command> [options]', '', 'Commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(12)}${c.help}`);
  lines.push('', 'Run `gpt-native <command> --help` for the options of a command.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd ? 0 : 2;
  }
  const c = commands[cmd];
  if (!c) {
    console.error(`gpt-native: unknown command ${JSON.stringify(cmd)}\n\n${usage()}`);
    return 2;
  }
  try {
    await c.load()(rest);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`gpt-native ${cmd}: ${err.message}`);
      return 2;
    }
    console.error(`gpt-native ${cmd}: ${(err as Error).message}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
