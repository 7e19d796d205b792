/**
 * `gpt-native finetune --task T --train F [--valid F] --model DIR --out DIR` (GPT-1 fine-tuning) and
 * `gpt-native eval --model DIR --data F [--shots K] | --perplexity F [--stride N]`.
 */
import { helpText, parseArgs, OptionSpecs, UsageError } from './args';
import { finetune } from '../finetune/classifier';
import { evaluate, perplexity } from '../eval';
import { TaskKind, TASKS } from '../finetune/tasks';

const ftSpecs: OptionSpecs = {
  task: { kind: 'string', help: TASKS.join(' | ') },
  train: { kind: 'string', help: 'JSONL training file' },
  valid: { kind: 'string', help: 'JSONL validation file' },
  model: { kind: 'string', help: 'pre-trained checkpoint folder' },
  out: { kind: 'string', help: 'where to save the fine-tuned model' },
  lambda: { kind: 'number', default: 0.5, help: 'weight of the auxiliary LM loss (0 = off)' },
  lr: { kind: 'number', default: 6.25e-5, help: 'peak learning rate' },
  batch: { kind: 'int', default: 32, help: 'examples per step' },
  epochs: { kind: 'int', default: 3, help: 'passes over the training file' },
  dropout: { kind: 'number', default: 0.1, help: 'model dropout' },
  'clf-dropout': { kind: 'number', default: 0.1, help: 'classifier dropout' },
  seed: { kind: 'int', default: 1, help: 'seed' },
  json: { kind: 'boolean', default: false, help: 'JSON lines per step' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export async function finetuneCommand(argv: string[]): Promise<void> {
  const a = parseArgs(argv, ftSpecs);
  if (a.help) { console.log(helpText('gpt-native finetune --task T --train F --model DIR --out DIR', ftSpecs)); return; }
  for (const k of ['task', 'train', 'model', 'out']) if (!a[k]) throw new UsageError(`--${k} is required`);
  if (!TASKS.includes(a.task as TaskKind)) throw new UsageError(`Expected one of ${TASKS.join(', ')} for --task but received ${JSON.stringify(a.task)}`);
  const r = await finetune({
    task: a.task as TaskKind, train: a.train as string, valid: a.valid as string | undefined, model: a.model as string, out: a.out as string,
    lambda: a.lambda as number, lr: a.lr as number, batch: a.batch as number, epochs: a.epochs as number, dropout: a.dropout as number,
    clfDropout: a['clf-dropout'] as number, seed: a.seed as number, json: a.json as boolean,
  });
  console.log(JSON.stringify({ steps: r.steps, trainAccuracy: r.trainAccuracy, validAccuracy: r.validAccuracy, truncated: r.truncated, out: a.out }));
}

const evSpecs: OptionSpecs = {
  model: { kind: 'string', help: 'checkpoint folder' },
  data: { kind: 'string', help: 'JSONL items: {context, choices, label} or {context, answer}' },
  train: { kind: 'string', help: 'JSONL items to draw the solved examples from (default: the other items)' },
  shots: { kind: 'int', default: 0, help: 'solved examples in the prompt' },
  template: { kind: 'string', help: "item template with {context} and {answer} (default '{context}{answer}')" },
  seed: { kind: 'int', default: 0, help: 'seed of the shot draw' },
  perplexity: { kind: 'string', help: 'text file: report its perplexity instead' },
  stride: { kind: 'int', help: 'perplexity window stride (default n_positions - 1)' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export async function evalCommand(argv: string[]): Promise<void> {
  const a = parseArgs(argv, evSpecs);
  if (a.help) { console.log(helpText('gpt-native eval --model DIR (--data F [--shots K] | --perplexity F)', evSpecs)); return; }
  if (!a.model) throw new UsageError('--model is required');
  if (a.perplexity) {
    console.log(JSON.stringify(await perplexity({ model: a.model as string, file: a.perplexity as string, stride: a.stride as number | undefined })));
    return;
  }
  if (!a.data) throw new UsageError('--data or --perplexity is required');
  console.log(JSON.stringify(await evaluate({ model: a.model as string, data: a.data as string, train: a.train as string | undefined, shots: a.shots as number, template: a.template as string | undefined, seed: a.seed as number })));
}
