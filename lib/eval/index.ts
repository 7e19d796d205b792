/**
 * Evaluation without fine-tuning: GPT-1's zero-shot heuristics, GPT-3's zero-, one- and few-shot in-context
 * evaluation, and perplexity with a sliding window.
 *   - continuation scoring: log P(continuation | context) summed over the continuation's tokens (one forward
 *     pass; the context is cut on the left to fit);
 *   - multiple choice: the choice with the highest summed log-likelihood (`acc`), or per character
 *     (`accNorm`), after K solved examples drawn (seeded) from a training split, as many as fit;
 *   - completion: exact match of the greedy continuation;
 *   - perplexity: exp(mean NLL) over a text, windows of n_positions advancing by `stride`, each token scored
 *     once with as much left context as the window allows.
 */
import * as fs from 'fs';
import { GPT } from '../nn/gpt';
import { Rng } from '../random';
import { checkNumber, typeError } from '../errors';
import { generate } from '../generate';

export interface EvalTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  createDecoder(): { push(id: number): string; flush(): string };
  eotToken?: number;
}

async function resolve(model: GPT | string): Promise<GPT> {
  if (model instanceof GPT) return model;
  if (typeof model === 'string') return GPT.load(model);
  throw typeError('a GPT or a checkpoint folder', 'model', model);
}

function tokenizerFor(m: GPT, tok?: EvalTokenizer): EvalTokenizer {
  if (tok) return tok;
  if (m.config.vocab_size !== 50257) throw typeError(`a tokenizer (vocabulary ${m.config.vocab_size} is not GPT-2's)`, 'tokenizer', tok);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return require('../tokenizer').Tokenizer.gpt2();
}

/**
 * Summed log-likelihood of `cont` after `ctx` (token ids), in one forward pass; the context is cut on the
 * left so both fit n_positions. Example: `scoreContinuation(model, tok.encode('The sky is'), tok.encode(' blue'))`.
 */
export function scoreContinuation(model: GPT, ctx: number[], cont: number[]): number {
  const P = model.config.n_positions;
  if (cont.length === 0) return 0;
  if (cont.length >= P) throw new RangeError(`Expected a continuation shorter than n_positions (${P}) for cont but received ${cont.length} tokens`);
  const keep = Math.min(ctx.length, P - cont.length);
  const c = ctx.slice(ctx.length - keep);
  if (c.length === 0) throw new RangeError('Expected a non-empty context for ctx but received 0 tokens');
  const seq = [...c, ...cont];
  const ids = seq.slice(0, -1);
  const targets = ids.map((_, i) => (i >= c.length - 1 ? seq[i + 1] : -1));
  const was = model.training;
  model.eval();
  const mean = model.loss([ids], [targets]);
  model.train(was);
  return -mean * cont.length;
}

/** Options of zeroShotClassify. */
export interface ZeroShotOptions {
  model: GPT | string;
  text: string;
  /** Prompt template with {text}, e.g. '{text} very' (GPT-1's sentiment heuristic). Default '{text}'. */
  template?: string;
  /** Label → the word that stands for it (e.g. { positive: ' positive', negative: ' negative' }), or words. */
  labels: Record<string, string> | string[];
  tokenizer?: EvalTokenizer;
}

/**
 * GPT-1's zero-shot heuristic: compare the model's likelihood of each label word after the prompt.
 * Example: `await zeroShotClassify({ model, text: 'A great film.', template: '{text} very', labels: { pos: ' positive', neg: ' negative' } })`.
 */
export async function zeroShotClassify(o: ZeroShotOptions): Promise<{ label: string; probs: Record<string, number>; logprobs: Record<string, number> }> {
  const m = await resolve(o.model);
  const tok = tokenizerFor(m, o.tokenizer);
  if (typeof o.text !== 'string') throw typeError('a string', 'text', o.text);
  const entries: Array<[string, string]> = Array.isArray(o.labels) ? o.labels.map((w) => [w, w]) : Object.entries(o.labels ?? {});
  if (entries.length < 2) throw typeError('at least two labels', 'labels', o.labels);
  const prompt = tok.encode((o.template ?? '{text}').replace('{text}', o.text));
  const logprobs: Record<string, number> = {};
  for (const [label, word] of entries) logprobs[label] = scoreContinuation(m, prompt, tok.encode(word));
  const mx = Math.max(...Object.values(logprobs));
  const z = Object.values(logprobs).reduce((a, l) => a + Math.exp(l - mx), 0);
  const probs = Object.fromEntries(Object.entries(logprobs).map(([k, l]) => [k, Math.exp(l - mx) / z]));
  const label = Object.entries(probs).sort((a, b) => b[1] - a[1])[0][0];
  return { label, probs, logprobs };
}

/** A multiple-choice item ({context, choices, label}) or a completion item ({context, answer}). */
export interface EvalItem {
  context: string;
  choices?: string[];
  label?: number;
  answer?: string;
}

export interface EvaluateOptions {
  model: GPT | string;
  /** Items, or a JSONL file of them. */
  data: EvalItem[] | string;
  /** Solved examples for the prompt come from here (default: the other items of `data`). */
  train?: EvalItem[] | string;
  /** Number of solved examples in the prompt (0 = zero-shot); fewer when they do not fit. */
  shots?: number;
  /** How an item is written: '{context}' and '{answer}' placeholders; default '{context}{answer}'. */
  template?: string;
  /** Between examples (default '\n\n'). */
  separator?: string;
  seed?: number;
  tokenizer?: EvalTokenizer;
}

export interface EvaluateResult {
  n: number;
  acc: number;
  accNorm?: number;
  exactMatch?: number;
  meanShots: number;
}

function loadItems(d: EvalItem[] | string, name: string): EvalItem[] {
  if (Array.isArray(d)) return d;
  if (typeof d !== 'string') throw typeError('an array of items or a JSONL file', name, d);
  const items: EvalItem[] = [];
  fs.readFileSync(d, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let o: EvalItem;
    try { o = JSON.parse(line); } catch (e) { throw new Error(`${d}:${i + 1}: invalid JSON (${(e as Error).message})`); }
    if (typeof o.context !== 'string') throw new Error(`${d}:${i + 1}: missing string field "context"`);
    if (o.choices === undefined && typeof o.answer !== 'string') throw new Error(`${d}:${i + 1}: expected "choices" + "label" or "answer"`);
    if (o.choices !== undefined && (!Array.isArray(o.choices) || !Number.isInteger(o.label) || o.label! < 0 || o.label! >= o.choices.length))
      throw new Error(`${d}:${i + 1}: "label" must index "choices"`);
    items.push(o);
  });
  if (items.length === 0) throw new Error(`${d}: no items (the file is empty)`);
  return items;
}

const solved = (it: EvalItem) => (it.choices ? it.choices[it.label!] : it.answer!);

/**
 * In-context evaluation (GPT-3): K solved examples then the item; multiple choice by summed log-likelihood
 * (`acc`) and per character (`accNorm`), completions by exact match of the greedy continuation.
 * Example: `await evaluate({ model, data: 'mc.jsonl', shots: 3, seed: 1 })`.
 */
export async function evaluate(o: EvaluateOptions): Promise<EvaluateResult> {
  const m = await resolve(o.model);
  const tok = tokenizerFor(m, o.tokenizer);
  const items = loadItems(o.data, 'data');
  const pool = o.train !== undefined ? loadItems(o.train, 'train') : items;
  const shots = checkNumber(o.shots ?? 0, 'shots', 0, 1000, true);
  const rng = new Rng(checkNumber(o.seed ?? 0, 'seed', 0, Number.MAX_SAFE_INTEGER, true));
  const template = o.template ?? '{context}{answer}';
  const sep = o.separator ?? '\n\n';
  const fmt = (it: EvalItem, withAnswer: boolean) => {
    const s = template.replace('{context}', it.context);
    return withAnswer ? s.replace('{answer}', solved(it)) : s.slice(0, s.indexOf('{answer}') >= 0 ? s.indexOf('{answer}') : s.length);
  };
  const P = m.config.n_positions;
  let right = 0, rightNorm = 0, exact = 0, shotSum = 0, mc = 0, comp = 0;
  for (const it of items) {
    const candidates = pool.filter((x) => x !== it);
    const picks: EvalItem[] = [];
    for (let k = 0; k < shots && candidates.length > 0; k++) picks.push(candidates.splice(rng.int(candidates.length), 1)[0]);
    const conts = it.choices ? it.choices.map((c) => tok.encode(c)) : [tok.encode(it.answer!)];
    const longest = Math.max(...conts.map((c) => c.length));
    // as many shots as fit: drop from the end until prompt + the longest continuation fits
    let prompt: number[];
    for (;;) {
      prompt = tok.encode(picks.map((p) => fmt(p, true) + sep).join('') + fmt(it, false));
      if (prompt.length + longest <= P || picks.length === 0) break;
      picks.pop();
    }
    shotSum += picks.length;
    if (it.choices) {
      mc++;
      const scores = conts.map((c) => scoreContinuation(m, prompt, c));
      const norm = scores.map((s, i) => s / Math.max(1, it.choices![i].length));
      if (scores.indexOf(Math.max(...scores)) === it.label) right++;
      if (norm.indexOf(Math.max(...norm)) === it.label) rightNorm++;
    } else {
      comp++;
      const r = await generate({ model: m, prompt: prompt.slice(-(P - 1)), maxNewTokens: conts[0].length, temperature: 0, tokenizer: tok, stopAtEos: false });
      if ((r.text ?? '').trim() === it.answer!.trim()) exact++;
    }
  }
  const out: EvaluateResult = { n: items.length, acc: mc ? right / mc : 0, meanShots: shotSum / items.length };
  if (mc) out.accNorm = rightNorm / mc;
  if (comp) out.exactMatch = exact / comp;
  return out;
}

/**
 * Perplexity of a text with a sliding window: windows of n_positions tokens advancing by `stride`; each token
 * is scored once, with the left context its window gives. Example: `await perplexity({ model, file: 'test.txt', stride: 512 })`.
 */
export async function perplexity(o: { model: GPT | string; text?: string; file?: string; stride?: number; tokenizer?: EvalTokenizer }): Promise<{ perplexity: number; nll: number; tokens: number }> {
  const m = await resolve(o.model);
  const tok = tokenizerFor(m, o.tokenizer);
  const text = o.text ?? (o.file ? fs.readFileSync(o.file, 'utf8') : undefined);
  if (typeof text !== 'string') throw typeError('text or file', 'text', text);
  const ids = tok.encode(text);
  if (ids.length < 2) throw new RangeError(`Expected a text of at least 2 tokens for text but received ${ids.length}`);
  const P = m.config.n_positions;
  const stride = checkNumber(o.stride ?? P, 'stride', 1, P, true);
  let nll = 0, count = 0;
  const was = m.training;
  m.eval();
  // tokens [pos, end) are scored in a window that starts up to n_positions before `end`
  for (let pos = 1; pos < ids.length;) {
    const end = Math.min(ids.length, pos + Math.min(stride, P - 1)); // token pos needs one token of context
    const begin = Math.max(0, end - P);
    const inp = ids.slice(begin, end - 1);
    const targets = inp.map((_, i) => (begin + i + 1 >= pos ? ids[begin + i + 1] : -1));
    const n = end - pos;
    nll += m.loss([inp], [targets]) * n;
    count += n;
    pos = end;
  }
  m.train(was);
  return { perplexity: Math.exp(nll / count), nll: nll / count, tokens: count };
}
