/**
 * GPT-1's task formats (Radford et al. 2018, §3.3): each example becomes one or more token sequences framed
 * by three special tokens — start ⟨s⟩, delimiter $, extract ⟨e⟩ — whose final hidden state at ⟨e⟩ feeds a
 * linear head:
 *   classification  {text, label}                          → ⟨s⟩ text ⟨e⟩
 *   entailment      {premise, hypothesis, label}           → ⟨s⟩ premise $ hypothesis ⟨e⟩
 *   similarity      {a, b, label}                          → ⟨s⟩ a $ b ⟨e⟩ and ⟨s⟩ b $ a ⟨e⟩ (hidden states added)
 *   multiple-choice {context, question?, choices[], label} → ⟨s⟩ context question $ choice ⟨e⟩ per choice
 * Inputs longer than the context are cut on the context side (text, premise, context; the longer of a/b),
 * and counted, never silently wrong.
 */
import * as fs from 'fs';

export type TaskKind = 'classification' | 'entailment' | 'similarity' | 'multiple-choice';
export const TASKS: TaskKind[] = ['classification', 'entailment', 'similarity', 'multiple-choice'];

export interface SpecialIds {
  start: number;
  delim: number;
  extract: number;
}

export interface Example {
  /** The raw object (for error messages and predictions). */
  fields: Record<string, unknown>;
  /** Index into the label set (multiple choice: the correct choice), or -1 when unlabelled. */
  label: number;
}

export interface Encoded {
  /** One sequence per ⟨e⟩ readout: 1 (classification, entailment), 2 (similarity), n (multiple choice). */
  seqs: number[][];
  truncated: boolean;
}

export class TaskDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TaskDataError';
  }
}

/** Checks a task name. */
export function checkTask(task: unknown): TaskKind {
  if (!TASKS.includes(task as TaskKind))
    throw new TaskDataError(`Expected one of ${TASKS.join(', ')} for task but received ${JSON.stringify(task)}`);
  return task as TaskKind;
}

const REQUIRED: Record<TaskKind, string[]> = {
  classification: ['text'],
  entailment: ['premise', 'hypothesis'],
  similarity: ['a', 'b'],
  'multiple-choice': ['context', 'choices'],
};

/**
 * Validates one object for a task; `labels` maps label values to indices (null: unlabelled data is fine).
 * `where` names the file and line in errors.
 */
export function parseExample(obj: unknown, task: TaskKind, labels: Map<string, number> | null, where: string, needLabel: boolean): Example {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new TaskDataError(`${where}: expected a JSON object`);
  const o = obj as Record<string, unknown>;
  for (const f of REQUIRED[task]) if (o[f] === undefined) throw new TaskDataError(`${where}: missing field "${f}" for a ${task} example`);
  if (task === 'multiple-choice') {
    const ch = o.choices;
    if (!Array.isArray(ch) || ch.length < 2 || !ch.every((c) => typeof c === 'string'))
      throw new TaskDataError(`${where}: "choices" must be an array of at least two strings`);
    if (typeof o.context !== 'string' || (o.question !== undefined && typeof o.question !== 'string'))
      throw new TaskDataError(`${where}: "context" (and "question") must be strings`);
  } else {
    for (const f of REQUIRED[task]) if (typeof o[f] !== 'string') throw new TaskDataError(`${where}: field "${f}" must be a string`);
  }
  let label = -1;
  if (o.label !== undefined) {
    if (task === 'multiple-choice') {
      const n = (o.choices as string[]).length;
      if (!Number.isInteger(o.label) || (o.label as number) < 0 || (o.label as number) >= n)
        throw new TaskDataError(`${where}: label ${JSON.stringify(o.label)} is not a choice index in [0, ${n})`);
      label = o.label as number;
    } else if (labels) {
      const k = labels.get(String(o.label));
      if (k === undefined) throw new TaskDataError(`${where}: label ${JSON.stringify(o.label)} is not in the label set [${[...labels.keys()].join(', ')}]`);
      label = k;
    }
  } else if (needLabel) throw new TaskDataError(`${where}: missing field "label"`);
  return { fields: o, label };
}

/** Reads a JSONL task file; errors name the file and line. */
export function readTaskFile(file: string, task: TaskKind, labels: Map<string, number> | null, needLabel = true): Example[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TaskDataError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const out: Example[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw new TaskDataError(`${file}:${i + 1}: invalid JSON (${(err as Error).message})`);
    }
    out.push(parseExample(obj, task, labels, `${file}:${i + 1}`, needLabel));
  });
  if (out.length === 0) throw new TaskDataError(`${file}: no examples (the file is empty)`);
  return out;
}

/** The label set of a file (sorted, as strings) for classification, entailment and similarity. */
export function collectLabels(file: string): string[] {
  const set = new Set<string>();
  fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      const o = JSON.parse(line);
      if (o && o.label !== undefined) set.add(String(o.label));
    } catch (err) {
      throw new TaskDataError(`${file}:${i + 1}: invalid JSON (${(err as Error).message})`);
    }
  });
  return [...set].sort();
}

/** Cuts `ctx` from its end (keeping its beginning) so that the whole fits in `budget` tokens. */
function fit(ctx: number[], fixed: number, budget: number): { ids: number[]; cut: boolean } {
  const room = budget - fixed;
  if (room < 0) return { ids: [], cut: true };
  return ctx.length > room ? { ids: ctx.slice(0, room), cut: true } : { ids: ctx, cut: false };
}

/** Turns an example into its sequences (see the file header). */
export function encodeExample(ex: Example, task: TaskKind, encode: (s: string) => number[], sp: SpecialIds, maxLen: number): Encoded {
  const f = ex.fields;
  const S = sp.start, D = sp.delim, E = sp.extract;
  let truncated = false;
  const seqs: number[][] = [];
  if (task === 'classification') {
    const r = fit(encode(f.text as string), 2, maxLen);
    truncated = r.cut;
    seqs.push([S, ...r.ids, E]);
  } else if (task === 'entailment') {
    const h = encode(f.hypothesis as string);
    const r = fit(encode(f.premise as string), 3 + h.length, maxLen);
    if (3 + h.length > maxLen) throw new TaskDataError(`hypothesis of ${h.length} tokens does not fit the context of ${maxLen}`);
    truncated = r.cut;
    seqs.push([S, ...r.ids, D, ...h, E]);
  } else if (task === 'similarity') {
    let a = encode(f.a as string), b = encode(f.b as string);
    while (3 + a.length + b.length > maxLen) {
      truncated = true;
      if (a.length >= b.length) a = a.slice(0, a.length - 1);
      else b = b.slice(0, b.length - 1);
    }
    seqs.push([S, ...a, D, ...b, E], [S, ...b, D, ...a, E]);
  } else {
    const ctx = encode(f.context as string);
    const q = f.question ? encode(' ' + (f.question as string)) : [];
    for (const choice of f.choices as string[]) {
      const c = encode(' ' + choice);
      const fixed = 3 + q.length + c.length;
      if (fixed > maxLen) throw new TaskDataError(`question and choice of ${fixed - 3} tokens do not fit the context of ${maxLen}`);
      const r = fit(ctx, fixed, maxLen);
      truncated ||= r.cut;
      seqs.push([S, ...r.ids, ...q, D, ...c, E]);
    }
  }
  return { seqs, truncated };
}
