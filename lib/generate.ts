/**
 * Autoregressive generation: `generate(options)` → `{ text, tokens, finishReason, ... }`, and
 * `generate.stream(options)` → an async iterator of text pieces, always whole UTF-8 characters, that
 * concatenate to exactly the `text` the same call returns. A KV cache runs the prompt in one pass and then
 * one token at a time; `draft` + `speculate: k` adds speculative decoding (a small model proposes k tokens,
 * the large one verifies them in one pass with the standard accept/reject rule, so the output distribution
 * is the large model's). Between tokens the loop yields to the event loop, so timers and I/O keep running
 * while a long generation goes on (each token's arithmetic itself runs on the native thread pool).
 */
import { GPT } from './nn/gpt';
import { backendOf, checkPrecision, Device, Precision } from './backend';
import { KVDecoder } from './nn/decoder';
import { Rng } from './random';
import { argmax, distribution, drawFrom, SamplingOptions } from './sampling';
import { checkNumber, describe, rangeError, typeError } from './errors';

/** The tokenizer interface generation needs (Tokenizer implements it). */
export interface GenerationTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  createDecoder(): { push(id: number): string; flush(): string };
  eotToken?: number;
}

export type Prompt = string | number[];

export interface GenerateOptions extends SamplingOptions {
  /** A GPT, or a checkpoint folder (loaded once and cached). */
  model: GPT | string;
  /** Text or token ids; an array of them generates for each, batched by prompt length. */
  prompt: Prompt | Prompt[];
  /** New tokens at most (default 64). */
  maxNewTokens?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** Stop strings and/or token ids; the stop itself is not part of the result. */
  stop?: string | number | Array<string | number>;
  /** Default: GPT-2's for a 50257-token vocabulary. */
  tokenizer?: GenerationTokenizer;
  /** 'left' keeps the end of a prompt longer than the context; by default such a prompt is an error. */
  truncate?: 'left';
  /** Stop at the end-of-text token (default true when the tokenizer has one). */
  stopAtEos?: boolean;
  /** Speculative decoding: the draft model (same vocabulary) and how many tokens it proposes per pass. */
  draft?: GPT | string;
  /**
   * Where to run: 'cpu' or 'cuda'. A folder is loaded there; a GPT on another device is moved there
   * (model.to). Default: where the model is (a folder: 'cpu').
   */
  device?: Device;
  /**
   * 'fp32' or 'bf16': the weights the matrix products read (model.precision). bf16 halves the bytes a
   * decoded token streams (on the CPU, about twice the tokens/s) at bf16 rounding of the weights. A folder is
   * loaded with it; a GPT is switched to it (model.to). Default: the model's own (a folder: 'fp32').
   */
  precision?: Precision;
  speculate?: number;
}

export type FinishReason = 'length' | 'stop' | 'eos' | 'context';

export interface GenerateResult {
  /** Decoded new text (absent when ids were given and no tokenizer is available). */
  text?: string;
  /** The new tokens only. */
  tokens: number[];
  finishReason: FinishReason;
  promptTokens: number;
  prefillMs: number;
  msPerToken: number;
  tokensPerSec: number;
  /** Speculative decoding: proposed and accepted draft tokens, and their ratio. */
  speculative?: { proposed: number; accepted: number; acceptanceRate: number; passes: number };
}

const modelCache = new Map<string, Promise<GPT>>();

async function resolveModel(m: GPT | string, name: string, device: Device | undefined, precision: Precision | undefined): Promise<GPT> {
  if (device !== undefined) backendOf(device); // a clear error for an unknown or unavailable device
  if (precision !== undefined) checkPrecision(precision);
  if (m instanceof GPT) {
    const dev = device ?? m.device;
    if (dev !== m.device || (precision !== undefined && precision !== m.precision)) m.to(dev, { precision });
    return m;
  }
  if (typeof m !== 'string') throw typeError('a GPT or a checkpoint folder path', name, m);
  const key = `${device ?? 'cpu'}:${precision ?? 'fp32'}:${m}`;
  let p = modelCache.get(key);
  if (!p) {
    p = GPT.load(m, { device: device ?? 'cpu', precision });
    modelCache.set(key, p);
    p.catch(() => modelCache.delete(key));
  }
  return p;
}

let gpt2Tokenizer: GenerationTokenizer | null = null;
function defaultTokenizer(vocab: number): GenerationTokenizer | null {
  if (vocab !== 50257) return null;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  gpt2Tokenizer ??= require('./tokenizer').Tokenizer.gpt2() as GenerationTokenizer;
  return gpt2Tokenizer;
}

interface Plan {
  model: GPT;
  draft: GPT | null;
  tok: GenerationTokenizer | null;
  prompts: number[][];
  maxNew: number;
  sampling: SamplingOptions;
  seed: number;
  stopIds: Set<number>;
  stopStrings: string[];
  eos: number | null;
  speculate: number;
}

async function plan(o: GenerateOptions): Promise<Plan> {
  if (!o || typeof o !== 'object') throw typeError('an options object', 'options', o);
  const model = await resolveModel(o.model, 'model', o.device, o.precision);
  const V = model.config.vocab_size, P = model.config.n_positions;
  const maxNew = checkNumber(o.maxNewTokens ?? 64, 'maxNewTokens', 0, 1e9, true);
  const temperature = checkNumber(o.temperature ?? 1, 'temperature', 0, 1e6);
  const topK = checkNumber(o.topK ?? 0, 'topK', 0, V, true);
  const topP = o.topP ?? 1;
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw rangeError('a number in (0, 1]', 'topP', topP);
  const seed = checkNumber(o.seed ?? 0, 'seed', 0, Number.MAX_SAFE_INTEGER, true);
  const tok = o.tokenizer ?? defaultTokenizer(V);
  const list = Array.isArray(o.prompt) && (o.prompt.length === 0 || typeof o.prompt[0] !== 'number') ? (o.prompt as Prompt[]) : [o.prompt as Prompt];
  if (list.length === 0) throw rangeError('at least one prompt', 'prompt', o.prompt);
  const prompts = list.map((p, i) => {
    const name = list.length > 1 ? `prompt[${i}]` : 'prompt';
    let ids: number[];
    if (typeof p === 'string') {
      if (!tok) throw typeError(`token ids (this model's vocabulary of ${V} has no default tokenizer; pass tokenizer)`, name, p);
      ids = tok.encode(p);
    } else if (Array.isArray(p)) {
      ids = p;
      ids.forEach((t, j) => {
        if (!Number.isInteger(t) || t < 0 || t >= V) throw rangeError(`a token id in [0, ${V})`, `${name}[${j}]`, t, 'check that the tokenizer matches the model');
      });
    } else throw typeError('a string or an array of token ids', name, p);
    if (ids.length === 0) ids = tok?.eotToken !== undefined ? [tok.eotToken] : [];
    if (ids.length === 0) throw rangeError('a non-empty prompt', name, p);
    if (ids.length >= P) {
      if (o.truncate !== 'left')
        throw rangeError(`a prompt of fewer than n_positions = ${P} tokens`, name, `${ids.length} tokens`,
          "shorten it, or pass truncate: 'left' to keep its end");
      ids = ids.slice(ids.length - Math.max(1, P - Math.max(1, maxNew)));
    }
    return ids;
  });
  const stops = o.stop === undefined ? [] : Array.isArray(o.stop) ? o.stop : [o.stop];
  const stopIds = new Set<number>(), stopStrings: string[] = [];
  for (const s of stops) {
    if (typeof s === 'number' && Number.isInteger(s) && s >= 0 && s < V) stopIds.add(s);
    else if (typeof s === 'string' && s.length > 0) {
      if (!tok) throw typeError('token ids (stop strings need a tokenizer)', 'stop', s);
      stopStrings.push(s);
    } else throw typeError(`a non-empty string or a token id in [0, ${V})`, 'stop', s);
  }
  const eos = (o.stopAtEos ?? true) && tok?.eotToken !== undefined ? tok.eotToken : null;
  let draft: GPT | null = null;
  let speculate = 0;
  if (o.draft !== undefined) {
    draft = await resolveModel(o.draft, 'draft', o.device ?? model.device, o.precision);
    if (draft.config.vocab_size !== V) throw rangeError(`a draft model with the same vocabulary (${V})`, 'draft', `vocab_size ${draft.config.vocab_size}`);
    speculate = checkNumber(o.speculate ?? 4, 'speculate', 1, 64, true);
    if (prompts.length > 1) throw rangeError('a single prompt with speculative decoding', 'prompt', `${prompts.length} prompts`);
  }
  return { model, draft, tok, prompts, maxNew, sampling: { temperature, topK, topP }, seed, stopIds, stopStrings, eos, speculate };
}

/** Per-sequence bookkeeping: tokens, decoded text, stop handling and what has been streamed. */
class Row {
  tokens: number[] = [];
  text = '';
  emitted = 0;
  done = false;
  finish: FinishReason = 'length';
  private dec: { push(id: number): string; flush(): string } | null;

  constructor(private readonly p: Plan) {
    this.dec = p.tok ? p.tok.createDecoder() : null;
  }

  /** Adds one generated token; returns false once the row is finished. */
  add(t: number): boolean {
    if (this.done) return false;
    if (this.p.stopIds.has(t)) return this.end('stop');
    if (this.p.eos !== null && t === this.p.eos) return this.end('eos');
    this.tokens.push(t);
    if (this.dec) {
      this.text += this.dec.push(t);
      const from = Math.max(0, this.emitted - 1);
      let cut = -1;
      for (const s of this.p.stopStrings) {
        const i = this.text.indexOf(s, Math.max(0, from - s.length));
        if (i >= 0 && (cut < 0 || i < cut)) cut = i;
      }
      if (cut >= 0) {
        this.text = this.text.slice(0, cut);
        this.done = true;
        this.finish = 'stop';
        return false;
      }
    }
    if (this.tokens.length >= this.p.maxNew) return this.end('length');
    return true;
  }

  end(reason: FinishReason): boolean {
    if (!this.done) {
      this.done = true;
      this.finish = reason;
      if (this.dec) this.text += this.dec.flush();
    }
    return false;
  }

  /** Text that can be streamed now: never a possible beginning of a stop string. */
  takePiece(): string {
    let hold = 0;
    if (!this.done)
      for (const s of this.p.stopStrings)
        for (let k = Math.min(s.length - 1, this.text.length); k > hold; k--)
          if (this.text.endsWith(s.slice(0, k))) { hold = k; break; }
    const end = this.text.length - hold;
    if (end <= this.emitted) return '';
    const piece = this.text.slice(this.emitted, end);
    this.emitted = end;
    return piece;
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

interface RunState {
  rows: Row[];
  promptTokens: number;
  prefillMs: number;
  decodeMs: number;
  spec?: { proposed: number; accepted: number; passes: number };
}

/** Plain decoding of prompts of one length, batched; calls onStep after every token. */
async function* decodeBatch(p: Plan, prompts: number[][], rows: Row[], st: RunState): AsyncGenerator<void> {
  const B = prompts.length, T0 = prompts[0].length;
  const P = p.model.config.n_positions, V = p.model.config.vocab_size;
  const Tmax = Math.min(P, T0 + p.maxNew);
  const dec = new KVDecoder(p.model, B, Tmax);
  try {
    const rng = new Rng(p.seed);
    const t0 = performance.now();
    let logits = dec.forward(Int32Array.from(prompts.flat()), T0);
    st.prefillMs += performance.now() - t0;
    const t1 = performance.now();
    const next = new Int32Array(B);
    for (;;) {
      let alive = false;
      for (let b = 0; b < B; b++) {
        const t = drawOrArgmax(logits.subarray(b * V, (b + 1) * V), p.sampling, rng);
        next[b] = t;
        if (rows[b].add(t)) alive = true;
      }
      yield;
      if (!alive) break;
      if (dec.length >= Tmax) {
        for (const r of rows) r.end(dec.length >= P ? 'context' : 'length');
        break;
      }
      logits = dec.forward(next, 1);
      await tick();
    }
    st.decodeMs += performance.now() - t1;
  } finally {
    dec.dispose();
  }
}

function drawOrArgmax(logits: Float32Array, s: SamplingOptions, rng: Rng): number {
  return s.temperature === 0 ? argmax(logits) : drawFrom(distribution(logits, s), rng);
}

/** Speculative decoding for one prompt (see the file header). */
async function* decodeSpeculative(p: Plan, prompt: number[], row: Row, st: RunState): AsyncGenerator<void> {
  const P = p.model.config.n_positions, V = p.model.config.vocab_size;
  const Tmax = Math.min(P, prompt.length + p.maxNew + p.speculate + 1);
  const target = new KVDecoder(p.model, 1, Tmax);
  const draft = new KVDecoder(p.draft!, 1, Tmax);
  try {
    const rng = new Rng(p.seed);
    const greedy = p.sampling.temperature === 0;
    const seq = prompt.slice();
    st.spec = { proposed: 0, accepted: 0, passes: 0 };
    const t0 = performance.now();
    let pLast = target.forward(Int32Array.from(seq), seq.length).slice();
    if (seq.length > 1) draft.forward(Int32Array.from(seq.slice(0, -1)), seq.length - 1);
    st.prefillMs += performance.now() - t0;
    const t1 = performance.now();
    // the first token comes from the target alone
    let last = drawOrArgmax(pLast, p.sampling, rng);
    seq.push(last);
    let alive = row.add(last);
    yield;
    while (alive) {
      const room = Tmax - target.length - 1;
      if (room < 1 || target.length + 1 >= P) { row.end('context'); break; }
      const k = Math.min(p.speculate, room, p.maxNew - row.tokens.length);
      // the draft catches up on accepted tokens it has not seen, then proposes k
      const pending = seq.slice(draft.length);
      let q = draft.forward(Int32Array.from(pending), pending.length);
      const proposals: number[] = [];
      const qd: Array<{ ids: Int32Array; probs: Float64Array }> = [];
      for (let i = 0; i < k; i++) {
        const d = greedy ? null : distribution(q, p.sampling);
        const x = greedy ? argmax(q) : drawFrom(d!, rng);
        proposals.push(x);
        if (d) qd.push(d);
        if (i < k - 1) q = draft.forward(Int32Array.of(x), 1);
      }
      // the target scores last + proposals in one pass: row i predicts the token after proposals[i-1]
      const base = target.length;
      const rowsLogits = target.forward(Int32Array.from([last, ...proposals]), k + 1, true);
      st.spec.passes++;
      st.spec.proposed += k;
      let acc = 0;
      let next = -1;
      for (let i = 0; i < k; i++) {
        const pl = rowsLogits.subarray(i * V, (i + 1) * V);
        const x = proposals[i];
        if (greedy) {
          const best = argmax(pl);
          if (best === x) { acc++; continue; }
          next = best;
          break;
        }
        const pd = distribution(pl, p.sampling);
        const px = probOf(pd, x), qx = probOf(qd[i], x);
        if (rng.uniform() < Math.min(1, px / qx)) { acc++; continue; }
        next = drawFrom(residual(pd, qd[i]), rng);
        break;
      }
      if (next < 0) next = drawOrArgmax(rowsLogits.subarray(k * V, (k + 1) * V), p.sampling, rng); // all accepted: a bonus token
      st.spec.accepted += acc;
      target.truncate(base + 1 + acc);
      draft.truncate(Math.min(draft.length, base + 1 + acc));
      for (const t of [...proposals.slice(0, acc), next]) {
        seq.push(t);
        alive = row.add(t);
        if (!alive) break;
      }
      last = seq[seq.length - 1];
      yield;
      await tick();
    }
    st.decodeMs += performance.now() - t1;
  } finally {
    target.dispose();
    draft.dispose();
  }
}

function probOf(d: { ids: Int32Array; probs: Float64Array }, x: number): number {
  for (let j = 0; j < d.ids.length; j++) if (d.ids[j] === x) return d.probs[j];
  return 0;
}

/** normalise(max(0, p − q)) over the union of both supports */
function residual(pd: { ids: Int32Array; probs: Float64Array }, qd: { ids: Int32Array; probs: Float64Array }) {
  const ids: number[] = [], w: number[] = [];
  for (let j = 0; j < pd.ids.length; j++) {
    const r = pd.probs[j] - probOf(qd, pd.ids[j]);
    if (r > 0) { ids.push(pd.ids[j]); w.push(r); }
  }
  if (ids.length === 0) return pd;
  const s = w.reduce((a, b) => a + b, 0);
  return { ids: Int32Array.from(ids), probs: Float64Array.from(w.map((x) => x / s)) };
}

async function* core(o: GenerateOptions, st: { value?: RunState; plan?: Plan }): AsyncGenerator<string> {
  const p = await plan(o);
  const rows = p.prompts.map(() => new Row(p));
  const state: RunState = { rows, promptTokens: p.prompts.reduce((a, b) => a + b.length, 0), prefillMs: 0, decodeMs: 0 };
  st.value = state;
  st.plan = p;
  if (p.maxNew === 0) {
    for (const r of rows) r.end('length');
    return;
  }
  const streaming = rows.length === 1;
  if (p.draft) {
    for await (const _ of decodeSpeculative(p, p.prompts[0], rows[0], state)) {
      const piece = rows[0].takePiece();
      if (piece) yield piece;
    }
  } else {
    // prompts of equal length decode together in one batched pass
    const groups = new Map<number, number[]>();
    p.prompts.forEach((ids, i) => groups.set(ids.length, [...(groups.get(ids.length) ?? []), i]));
    for (const idx of groups.values()) {
      for await (const _ of decodeBatch(p, idx.map((i) => p.prompts[i]), idx.map((i) => rows[i]), state)) {
        if (streaming) {
          const piece = rows[0].takePiece();
          if (piece) yield piece;
        }
      }
    }
  }
  for (const r of rows) r.end(r.finish);
  if (streaming) {
    const piece = rows[0].takePiece();
    if (piece) yield piece;
  }
}

function result(st: RunState, r: Row, p: Plan, totalNew: number): GenerateResult {
  const out: GenerateResult = {
    tokens: r.tokens, finishReason: r.finish, promptTokens: st.promptTokens, prefillMs: st.prefillMs,
    msPerToken: totalNew > 0 ? st.decodeMs / totalNew : 0, tokensPerSec: st.decodeMs > 0 ? (totalNew * 1000) / st.decodeMs : 0,
  };
  if (p.tok) out.text = r.text;
  if (st.spec) out.speculative = { ...st.spec, acceptanceRate: st.spec.proposed ? st.spec.accepted / st.spec.proposed : 0 };
  return out;
}

/**
 * Generates a continuation. Example:
 * `const { text } = await generate({ model: 'runs/demo', prompt: 'The whale', maxNewTokens: 40, temperature: 0.8, topK: 40, seed: 1 })`.
 * With an array of prompts it resolves to an array of results.
 */
export async function generate(o: GenerateOptions): Promise<GenerateResult>;
export async function generate(o: GenerateOptions & { prompt: Prompt[] }): Promise<GenerateResult[]>;
export async function generate(o: GenerateOptions): Promise<GenerateResult | GenerateResult[]> {
  const st: { value?: RunState; plan?: Plan } = {};
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  for await (const _ of core(o, st)) { /* consume */ }
  const state = st.value!, p = st.plan!;
  const totalNew = state.rows.reduce((a, r) => a + r.tokens.length, 0);
  const results = state.rows.map((r) => result(state, r, p, totalNew));
  const many = Array.isArray(o.prompt) && (o.prompt.length === 0 || typeof o.prompt[0] !== 'number');
  return many ? results : results[0];
}

/**
 * Streams the generated text in pieces of whole characters. Example:
 * `for await (const piece of generate.stream({ model, prompt: 'Call me', maxNewTokens: 20 })) process.stdout.write(piece)`.
 */
generate.stream = function stream(o: GenerateOptions): AsyncGenerator<string> {
  if (Array.isArray(o?.prompt) && o.prompt.length > 0 && typeof o.prompt[0] !== 'number')
    throw typeError('a single prompt for streaming', 'prompt', describe(o.prompt));
  return core(o, {});
};
