/**
 * Incremental decoding with a KV cache over a GPT's weights (no gradients, no dropout). The prompt is run in
 * one pass (prefill); each later call runs only the new tokens at their positions, attending to the cached
 * keys and values of everything before (banded for GPT-3's local layers). The same arithmetic as
 * GPT.forward, so greedy decoding matches full recomputation.
 * Shapes: B rows decoded together, Tmax cached positions, C = n_embd; a cache (B, Tmax, 2C) per layer, each row a
 * position's key then its value (a step appends both with one copy from the qkv rows).
 *
 * On cuda, a step of one token per row (the steady state of generation) reads its position and ids from decode
 * slots in device memory (backend.decode), so its launches are the same at every position: the first such step
 * runs them one by one, the second captures them as a CUDA graph, and every later one replays that graph with a
 * single launch (about 8·n_layer + 4 launches from JavaScript fewer a token). The results are the same bit for bit
 * with or without the graph (GPT_NATIVE_CUDA_GRAPHS=0 or the addon's setGraphs(false) turns graphs off).
 */
import { AttentionShape } from '../native';
import { withPrecision } from '../backend';
import type { Backend, Buf, DecodeOps, DType } from '../backend';
import type { CudaGraph, DecodeSlots, DeviceView } from '../cuda';
import type { GPT } from './gpt';

let captureWarned = false; // the warning when a capture fails, once a process

interface Scratch {
  Tq: number;
  x: Buf; ln: Buf; qkv: Buf; att: Buf; proj: Buf; mid: Buf; ln2: Buf; fc: Buf; fcg: Buf; out: Buf;
}

export class KVDecoder {
  /** Tokens whose keys and values are in the cache (the next token goes at this position). */
  length = 0;
  private readonly kv: Buf[] = [];
  private scratch: Scratch | null = null;
  private logitsHost = new Float32Array(0);
  private logitsBuf: Buf | null = null;
  private readonly be: Backend;
  /** Element type of the cache and scratch: the model's activation dtype when the decoder was made. */
  private readonly dtype: DType;
  // the one-token steps on cuda: decode slots, the captured graph and what it holds (graphKey), steps run so far
  private slots: DecodeSlots | null = null;
  private graph: CudaGraph | null = null;
  private graphKey: unknown[] = [];
  private slotSteps = 0;
  private graphsFailed = false;

  constructor(readonly model: GPT, readonly B: number, readonly Tmax: number) {
    const { n_embd: C, n_layer: L, n_positions: P } = model.config;
    if (Tmax > P) throw new RangeError(`Expected at most n_positions = ${P} cached positions for Tmax but received ${Tmax}`);
    this.be = model.backend;
    this.dtype = model.activationDtype; // the cache and the scratch hold activations
    for (let l = 0; l < L; l++) this.kv.push(this.be.alloc(B * Tmax * 2 * C, this.dtype));
  }

  private ensure(Tq: number): Scratch {
    if (this.scratch && this.scratch.Tq >= Tq) return this.scratch;
    this.freeScratch();
    const n = this.B * Tq * this.model.config.n_embd;
    const f = (k: number) => this.be.alloc(n * k, this.dtype);
    this.scratch = { Tq, x: f(1), ln: f(1), qkv: f(3), att: f(1), proj: f(1), mid: f(1), ln2: f(1), fc: f(4), fcg: f(4), out: f(1) };
    return this.scratch;
  }

  private dropGraph(): void {
    if (this.graph && this.be.decode) this.be.decode.free(this.graph);
    this.graph = null;
    this.graphKey = [];
  }

  private freeScratch(): void {
    if (this.scratch && this.be.device !== 'cpu') for (const [k, b] of Object.entries(this.scratch)) if (k !== 'Tq') this.be.free(b as Buf);
    this.scratch = null;
  }

  /** Frees the cache (device memory at once on cuda); the decoder cannot be used afterwards. */
  dispose(): void {
    this.dropGraph();
    if (this.slots && this.be.decode) this.be.decode.freeSlots(this.slots);
    this.slots = null;
    this.freeScratch();
    if (this.be.device !== 'cpu') for (const b of this.kv) this.be.free(b);
    if (this.logitsBuf) this.be.free(this.logitsBuf);
    this.logitsBuf = null;
    this.kv.length = 0;
  }

  /** Drops cached positions at and after `length` (speculative decoding rolls back rejected tokens). */
  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`Expected a length in [0, ${this.length}] for truncate but received ${length}`);
    this.length = length;
  }

  /**
   * Runs `Tq` new tokens per row (ids: B·Tq, row-major) at positions length..length+Tq-1 and returns logits:
   * for every new position (B, Tq, V) when `all`, else only the last (B, V). The returned array is reused.
   */
  forward(ids: Int32Array, Tq: number, all = false): Float32Array {
    // On the CPU the decoder keeps fp32 arithmetic (a bf16 model's weights still come from its bf16 copy), so a
    // pass gives the same logits whatever its row count: prefill, speculative verification, batches.
    return withPrecision(this.be, this.be.device === 'cpu' ? 'fp32' : this.model.precision, () => this.step(ids, Tq, all));
  }

  private step(ids: Int32Array, Tq: number, all: boolean): Float32Array {
    const m = this.model;
    const { vocab_size: V } = m.config;
    const B = this.B;
    if (ids.length !== B * Tq) throw new RangeError(`Expected ${B}·${Tq} token ids for ids but received ${ids.length}`);
    const pos0 = this.length;
    if (pos0 + Tq > this.Tmax) throw new RangeError(`Expected at most ${this.Tmax - pos0} new tokens for the cache but received ${Tq}`);
    if (m.backend !== this.be || m.activationDtype !== this.dtype)
      throw new Error(`This KVDecoder was made for the model on ${this.be.device} with ${this.dtype} activations; the model moved ` +
        `or changed precision since (now ${m.device}, ${m.activationDtype}): make a new KVDecoder`);
    const s = this.ensure(Tq);
    const be = this.be;
    const rows = all ? B * Tq : B;
    if (!this.logitsBuf || be.length(this.logitsBuf) < rows * V) {
      if (this.logitsBuf) be.free(this.logitsBuf);
      this.logitsBuf = be.alloc(rows * V); // fp32 even for a bf16 model (the products accumulate in fp32)
    }
    const logits = be.view(this.logitsBuf, 0, rows * V);
    const dec = be.decode;
    if (dec && Tq === 1) this.slotStep(dec, ids, pos0, all, s, logits);
    else this.run(ids, Tq, all, pos0, s, logits, null);
    this.length = pos0 + Tq;
    if (be.device === 'cpu') return logits as Float32Array;
    if (this.logitsHost.length < rows * V) this.logitsHost = new Float32Array(rows * V);
    const host = this.logitsHost.subarray(0, rows * V);
    be.readInto(logits, host);
    return host;
  }

  /**
   * One token per row on cuda, position and ids from the decode slots: replays the captured graph when it holds
   * the buffers in use now, else captures one (from the second such step on) or runs the kernels one by one.
   */
  private slotStep(dec: DecodeOps, ids: Int32Array, pos0: number, all: boolean, s: Scratch, logits: Buf): void {
    const m = this.model;
    if (!this.slots) this.slots = dec.slots(this.B, this.Tmax);
    const slots = this.slots;
    dec.setSlots(slots, pos0, ids, m.config.vocab_size);
    // makes the weights (and a bf16 model's bf16 copy) current on the device now, outside any capture, and names
    // the allocations a graph would hold: a graph captured over others is dropped
    const key: unknown[] = [(m.buffer('wte.weight') as DeviceView).buf, (m.matrixBuffer('wte.weight') as DeviceView).buf,
      s, this.logitsBuf, all, m.precision];
    const run = () => this.run(ids, 1, all, pos0, s, logits, slots);
    if (!dec.graphsOn() || this.graphsFailed) {
      this.dropGraph();
      run();
      return;
    }
    const same = this.graph !== null && key.length === this.graphKey.length && key.every((k, i) => k === this.graphKey[i]);
    if (same && dec.launch(this.graph!)) return;
    this.dropGraph();
    // the first step runs outside a graph: it makes the GEMM plans and scratch that a capture may not allocate
    if (this.slotSteps++ === 0) {
      run();
      return;
    }
    dec.begin();
    let failure: unknown = null;
    let graph: CudaGraph | undefined;
    try {
      run();
    } catch (err) {
      failure = err;
    }
    try {
      graph = dec.end(failure === null); // (also where the driver reports a capture it invalidated)
    } catch (err) {
      failure ??= err;
    }
    if (failure !== null || !graph) {
      // a step that cannot be captured runs without graphs from now on (said once a process, with the reason); a
      // step that is wrong fails again here, outside the capture, with its own error
      this.graphsFailed = true;
      run();
      if (!captureWarned) {
        captureWarned = true;
        process.emitWarning(`gpt-native: the KV decoder could not capture its step as a CUDA graph (${(failure as Error)?.message}); ` +
          'it decodes without graphs, launching each kernel (slower at batch 1)');
      }
      return;
    }
    this.graph = graph;
    this.graphKey = key;
    if (!dec.launch(graph)) {
      this.dropGraph();
      run();
    }
  }

  /** The pass itself: embeddings, the layers, the final LayerNorm and the logits (from slots when given). */
  private run(ids: Int32Array, Tq: number, all: boolean, pos0: number, s: Scratch, logits: Buf, slots: DecodeSlots | null): void {
    const m = this.model;
    const cfg = m.config;
    const { n_embd: C, vocab_size: V, n_positions: P, n_head: NH } = cfg;
    const B = this.B;
    const N = B * Tq;
    const be = this.be;
    const dec = be.decode;
    const sub = (a: Buf, k = 1) => be.view(a, 0, N * C * k);
    const x0 = sub(s.x);
    const eps = cfg.layer_norm_epsilon;
    const w = (name: string) => m.buffer(name);
    const mw = (name: string) => m.matrixBuffer(name); // matrix-product operands (the bf16 copy of a bf16 model)
    if (slots) dec!.embed(x0, slots, w('wte.weight'), w('wpe.weight'), B, C, V, P);
    else be.embeddingForward(x0, ids, w('wte.weight'), w('wpe.weight'), B, Tq, C, V, P, pos0);
    let x = x0;
    // a residual add (sum x) that the next LayerNorm writes and normalises in the same pass (layernormForward's
    // addA, addB), as in GPT.forward: fewer launches a token
    let pending: [Buf, Buf] | null = null;
    const lnOf = (out: Buf, inp: Buf, wName: string, bName: string, add: [Buf, Buf] | null = pending) => {
      if (add) be.layernormForward(out, null, null, inp, w(wName), w(bName), N, C, eps, add[0], add[1]);
      else be.layernormForward(out, null, null, inp, w(wName), w(bName), N, C, eps);
      pending = null;
    };
    for (let l = 0; l < cfg.n_layer; l++) {
      const h = `h.${l}.`;
      const qkv = sub(s.qkv, 3), att = sub(s.att), proj = sub(s.proj), mid = sub(s.mid), fc = sub(s.fc, 4), fcg = sub(s.fcg, 4);
      const attend = (inp: Buf) => {
        be.linearForward(qkv, inp, mw(h + 'attn.c_attn.weight'), w(h + 'attn.c_attn.bias'), N, C, 3 * C);
        // append this step's keys and values to the cache: a qkv row's last 2C entries are a cache row
        const kv = this.kv[l];
        if (slots) dec!.append(kv, this.Tmax * 2 * C, 2 * C, be.view(qkv, C), 3 * C, slots, B, 2 * C);
        else
          for (let b = 0; b < B; b++)
            be.copyRows(be.view(kv, (b * this.Tmax + pos0) * 2 * C), 2 * C, be.view(qkv, b * Tq * 3 * C + C), 3 * C, Tq, 2 * C);
        // with slots: the query's position is on the device, and the keys are the cache's Tmax rows at most
        const shape: AttentionShape = {
          B, Tq, Tk: slots ? this.Tmax : pos0 + Tq, NH, HS: C / NH, qPos0: slots ? 0 : pos0,
          window: cfg.attention_layers[l] === 'local' ? cfg.window_size : 0,
          dropout: 0, seed: 0, q: [Tq * 3 * C, 3 * C], k: [this.Tmax * 2 * C, 2 * C], v: [this.Tmax * 2 * C, 2 * C], o: [Tq * C, C],
        };
        if (slots) shape.slots = slots;
        be.attentionForward(att, null, qkv, kv, be.view(kv, C), shape);
        be.linearForward(proj, att, mw(h + 'attn.c_proj.weight'), w(h + 'attn.c_proj.bias'), N, C, C);
      };
      const mlp = (inp: Buf, out: Buf) => {
        be.linearForward(fc, inp, mw(h + 'mlp.c_fc.weight'), w(h + 'mlp.c_fc.bias'), N, C, 4 * C, fcg);
        be.linearForward(out, fcg, mw(h + 'mlp.c_proj.weight'), w(h + 'mlp.c_proj.bias'), N, 4 * C, C);
      };
      const ln = sub(s.ln), ln2 = sub(s.ln2), out = l % 2 === 0 ? sub(s.out) : x0;
      if (cfg.variant === 'gpt1') {
        attend(x);
        lnOf(ln, mid, h + 'ln_1.weight', h + 'ln_1.bias', [x, proj]); // mid = x + proj
        mlp(ln, proj);
        lnOf(out, mid, h + 'ln_2.weight', h + 'ln_2.bias', [ln, proj]); // mid = ln + proj
      } else {
        lnOf(ln, x, h + 'ln_1.weight', h + 'ln_1.bias'); // (x = the last layer's out, written here)
        attend(ln);
        lnOf(ln2, mid, h + 'ln_2.weight', h + 'ln_2.bias', [x, proj]); // mid = x + proj
        mlp(ln2, proj);
        pending = [mid, proj]; // out = mid + proj, written by the next LayerNorm (ln_1 or ln_f)
      }
      x = out;
    }
    let hf = x;
    if (cfg.variant !== 'gpt1') {
      hf = sub(s.ln);
      lnOf(hf, x, 'ln_f.weight', 'ln_f.bias');
    }
    // the last position of each row: rows (Tq-1), (2Tq-1), … of hf, i.e. stride Tq·C
    if (all) be.gemm(false, true, N, V, C, 1, hf, C, mw('wte.weight'), C, logits, V, false, null);
    else be.gemm(false, true, B, V, C, 1, be.view(hf, (Tq - 1) * C), Tq * C, mw('wte.weight'), C, logits, V, false, null);
  }
}
