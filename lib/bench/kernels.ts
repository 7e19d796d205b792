/**
 * `gpt-native bench kernels`: every CPU kernel at GPT-2 small shapes (B=4; T=64 and 256; C=768; NH=12;
 * V=50257): warm-up, median of several runs, ms and GFLOP/s (compute-bound kernels) or GB/s (memory-bound).
 */
import { helpText, parseArgs, OptionSpecs, UsageError } from '../cli/args';
import { backendOf, Backend, Buf, checkPrecision, DType } from '../backend';
import { AttentionKind, AttentionTuning, cuda, cudaInfo, cudaSettings, FlashBackward } from '../cuda';
import { native } from '../native';
import { machineLine, randomFill, timeIt } from './timing';
import { logitsStride } from '../nn/gpt';

const specs: OptionSpecs = {
  b: { kind: 'int', default: 4, help: 'batch size' },
  t: { kind: 'string', default: '64,256', help: 'sequence lengths, comma separated' },
  c: { kind: 'int', default: 768, help: 'channels' },
  nh: { kind: 'int', default: 12, help: 'heads' },
  v: { kind: 'int', default: 50257, help: 'vocabulary' },
  runs: { kind: 'int', default: 7, help: 'timed runs per kernel (median reported)' },
  filter: { kind: 'string', help: 'only kernels whose name contains this' },
  exclude: { kind: 'string', help: "skip kernels whose name contains this, or any of several separated by '|' (after --filter)" },
  threads: { kind: 'int', help: 'threads (default: GPT_NATIVE_THREADS or all cores)' },
  device: { kind: 'string', default: 'cpu', help: 'cpu | cuda' },
  precision: { kind: 'string', default: 'fp32', help: 'fp32 | bf16 (cuda: activations and matrix operands in bf16)' },
  json: { kind: 'boolean', default: false, help: 'JSON lines, one per kernel, and a summary object last' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export interface KernelResult {
  kernel: string;
  B: number;
  T: number;
  ms: number;
  gflops?: number;
  gbps?: number;
}

type Case = { name: string; run: () => void; flops?: number; bytes?: number };

function cases(be: Backend, B: number, T: number, C: number, NH: number, V: number, act: DType): Case[] {
  const N = B * T;
  const HS = C / NH;
  const eb = act === 'bf16' ? 2 : 4; // bytes per activation element
  // fp32 parameters, gradients and statistics (f, z); activations and matrix operands in `act` (fa, za)
  const f = (n: number, seed: number, scale = 1, dtype: DType = 'fp32') => {
    const b = be.alloc(n, dtype);
    be.upload(b, randomFill(new Float32Array(n), seed, scale));
    return b;
  };
  const z = (n: number) => be.alloc(n);
  const fa = (n: number, seed: number, scale = 1) => f(n, seed, scale, act);
  const za = (n: number) => be.alloc(n, act);
  const x = fa(N * C, 1), w = f(C, 2), bias = f(C, 3), dy = fa(N * C, 4);
  const y = za(N * C), mean = z(N), rstd = z(N);
  const dx = za(N * C), dw = z(C), db = z(C);
  const h4 = fa(N * 4 * C, 5, 3), g4 = fa(N * 4 * C, 6), o4 = za(N * 4 * C);
  const qkv = fa(N * 3 * C, 7), atty = za(N * C), lse = z(B * NH * T), dqkv = za(N * 3 * C);
  const shape = { B, Tq: T, Tk: T, NH, HS, qPos0: 0, window: 0, dropout: 0, seed: 0,
    q: [T * 3 * C, 3 * C] as [number, number], k: [T * 3 * C, 3 * C] as [number, number], v: [T * 3 * C, 3 * C] as [number, number], o: [T * C, C] as [number, number] };
  const Vp = logitsStride(be.device, V); // the model's row stride for the logits (aligned rows on cuda)
  const logits = fa(N * Vp, 8, 4), dlogits = za(N * Vp), losses = z(N), lseV = z(N);
  const targets = new Int32Array(N).map((_, i) => (i * 7919) % V);
  const ids = new Int32Array(N).map((_, i) => (i * 104729) % V);
  const wte = f(V * C, 9), wpe = f(1024 * C, 10), dwte = z(V * C), dwpe = z(1024 * C);
  const wteM = act === 'fp32' ? wte : fa(V * C, 9); // the lm head's operand (the bf16 copy of a bf16 model)
  const nAdam = 1 << 22;
  const p = f(nAdam, 11), g = f(nAdam, 12), m = z(nAdam), v = z(nAdam);
  const wqkv = fa(C * 3 * C, 13), bqkv = f(3 * C, 14), dwqkv = z(C * 3 * C), dbqkv = z(3 * C);
  // the MLP: fc (C → 4C) with its GELU, proj (4C → C) whose input gradient goes back through the GELU
  const wfc = fa(C * 4 * C, 15, 0.1), bfc = f(4 * C, 16), wpr = fa(4 * C * C, 17, 0.1), dwpr = z(4 * C * C), dbpr = z(C);
  const attnFlops = 4 * B * NH * T * T * HS / 2; // causal half of QKᵀ and PV
  be.attentionForward(atty, lse, qkv, be.view(qkv, C), be.view(qkv, 2 * C), shape);
  be.softmaxXentForward(losses, lseV, logits, targets, N, V, -1, Vp);
  be.layernormForward(y, mean, rstd, x, w, bias, N, C, 1e-5);
  const cu = be.device === 'cuda';
  // the cuBLAS attention rows: the addon's attention setting, except that flash (the bf16 default) has rows of its own
  const attnF = () => be.attentionForward(atty, lse, qkv, be.view(qkv, C), be.view(qkv, 2 * C), shape);
  const attnB = () => be.attentionBackward(dqkv, be.view(dqkv, C), be.view(dqkv, 2 * C), dy, qkv, be.view(qkv, C), be.view(qkv, 2 * C), atty, lse, shape);
  const base = cu ? withBaseAttention : (run: () => void) => run;
  // the lm head as the model runs it: for bf16 on cuda over wte padded with zero rows to Vp (N = Vp forward, K = Vp
  // for dh), else over its V rows
  const pad = cu && act === 'bf16' && Vp !== V;
  const wteP = pad ? za(Vp * C) : wteM;
  if (pad) be.copy(be.view(wteP, 0, V * C), wteM);
  const lmF = (rows: number, w: Buf) => () => be.gemm(false, true, N, rows, C, 1, x, C, w, C, logits, Vp, false, null);
  const lmB = (rows: number, w: Buf) => () => { // dh (N,C) = dlogits·wte, dwte += dlogitsᵀ·h
    be.gemm(false, false, N, C, rows, 1, dlogits, Vp, w, C, dx, C, false, null);
    be.gemm(true, false, V, C, N, 1, dlogits, Vp, x, C, dwte, C, true, null);
  };
  const lmRows = pad ? Vp : V;
  // each row with the addon's defaults, and on cuda the same call again as it ran before cuBLASLt took the GEMMs
  // (cublasGemmEx, bias and GELU in passes after it), side by side
  const twin = (c: Case, label: string): Case[] => [c, ...(cu ? [{ ...c, name: `${c.name.replace(/ \(.*$/, '')} [${label}]`, run: withGemmEx(c.run) }] : [])];
  return [
    ...twin({ name: 'linear_forward qkv (N,768)·(768,2304)', run: () => be.linearForward(qkv, x, wqkv, bqkv, N, C, 3 * C), flops: 2 * N * C * 3 * C }, 'cublasGemmEx, bias pass'),
    ...twin({ name: 'linear_backward qkv', run: () => be.linearBackward(dx, dwqkv, dbqkv, dqkv, x, wqkv, N, C, 3 * C), flops: 4 * N * C * 3 * C }, 'cublasGemmEx'),
    ...twin({ name: 'mlp fc+gelu forward (N,768)·(768,3072)', run: () => be.linearForward(h4, x, wfc, bfc, N, C, 4 * C, o4), flops: 2 * N * C * 4 * C }, 'cublasGemmEx, GELU pass'),
    ...twin({ name: 'mlp proj backward + dgelu', run: () => be.linearBackward(g4, dwpr, dbpr, dy, o4, wpr, N, 4 * C, C, h4), flops: 4 * N * C * 4 * C }, 'cublasGemmEx, dGELU pass'),
    { name: 'lm_head forward (N,768)·(50257,768)ᵀ', run: lmF(lmRows, wteP), flops: 2 * N * C * V },
    ...(pad ? [{ name: 'lm_head forward [unpadded]', run: lmF(V, wteM), flops: 2 * N * C * V }] : []),
    ...(cu ? [{ name: 'lm_head forward [cublasGemmEx]', run: withGemmEx(lmF(V, wteM)), flops: 2 * N * C * V }] : []),
    { name: 'lm_head backward (dh and dwte)', run: lmB(lmRows, wteP), flops: 4 * N * C * V },
    ...(pad ? [{ name: 'lm_head backward [unpadded]', run: lmB(V, wteM), flops: 4 * N * C * V }] : []),
    ...(cu ? [{ name: 'lm_head backward [cublasGemmEx]', run: withGemmEx(lmB(V, wteM)), flops: 4 * N * C * V }] : []),
    { name: 'attention_forward', run: base(attnF), flops: attnFlops },
    { name: 'attention_backward', run: base(attnB), flops: 2.5 * attnFlops },
    // head sizes 80, 96 and 128: flash's kernels with 16 query rows a warp (flash2 has no other forms there); the
    // backward where this device runs it (sm_90+ with the shared memory its dK/dV kernel takes; else the row is
    // left out, as the call takes the cuBLAS path)
    ...(flashWide(be, act, HS) ? [
      { name: 'attention_forward [flash]', run: withFlash(attnF), flops: attnFlops },
      ...(flashRuns(attnB) ? [{ name: 'attention_backward [flash]', run: withFlash(attnB), flops: 2.5 * attnFlops }] : []),
    ] : []),
    ...(flashApplies(be, act, HS) ? [
      { name: 'attention_forward [flash]', run: withFlash(attnF), flops: attnFlops },
      { name: 'attention_backward [flash]', run: withFlash(attnB), flops: 2.5 * attnFlops },
      { name: 'attention_forward [flash2]', run: withFlash(attnF, 'flash2'), flops: attnFlops },
      { name: 'attention_backward [flash2]', run: withFlash(attnB, 'flash2'), flops: 2.5 * attnFlops },
      // dQ from the dK/dV kernel through atomics (setFlashBackward('atomic')); the FLOPs counted as for the others
      { name: 'attention_backward [flash, atomic dQ]', run: withAtomicDq(withFlash(attnB)), flops: 2.5 * attnFlops },
      { name: 'attention_backward [flash2, atomic dQ]', run: withAtomicDq(withFlash(attnB, 'flash2')), flops: 2.5 * attnFlops },
    ] : []),
    ...attentionTunings(be, T).flatMap(([label, tuning]) => [
      { name: `attention_forward [${label}]`, run: base(tuned(tuning, attnF)), flops: attnFlops },
      { name: `attention_backward [${label}]`, run: base(tuned(tuning, attnB)), flops: 2.5 * attnFlops },
    ]),
    { name: 'layernorm_forward', run: () => be.layernormForward(y, mean, rstd, x, w, bias, N, C, 1e-5), bytes: 2 * eb * N * C },
    // as GPT-2's forward calls it: the residual add (the sum written to dx) and the LayerNorm of the sum in one pass
    { name: 'residual add + layernorm_forward', run: () => be.layernormForward(y, mean, rstd, dx, w, bias, N, C, 1e-5, x, dy), bytes: 4 * eb * N * C },
    { name: 'layernorm_backward', run: () => be.layernormBackward(dx, dw, db, dy, x, w, mean, rstd, N, C), bytes: 3 * eb * N * C },
    // as GPT-2's backward calls it: LN's input gradient added into the residual stream's
    { name: 'layernorm_backward (dinp +=)', run: () => be.layernormBackward(dx, dw, db, dy, x, w, mean, rstd, N, C, true), bytes: 4 * eb * N * C },
    { name: 'gelu_forward (N,3072)', run: () => be.geluForward(o4, h4), bytes: 2 * eb * N * 4 * C },
    { name: 'gelu_backward (N,3072)', run: () => be.geluBackward(o4, h4, g4), bytes: 3 * eb * N * 4 * C },
    { name: 'residual add', run: () => be.add(y, x, dy), bytes: 3 * eb * N * C },
    { name: 'embedding_forward', run: () => be.embeddingForward(y, ids, wte, wpe, B, T, C, V, 1024, 0), bytes: (8 + eb) * N * C },
    { name: 'embedding_backward', run: () => be.embeddingBackward(dwte, dwpe, dy, ids, B, T, C, V, 1024, 0), bytes: (12 + eb) * N * C },
    { name: 'softmax_xent_forward (N,50257)', run: () => be.softmaxXentForward(losses, lseV, logits, targets, N, V, -1, Vp), bytes: eb * N * V },
    { name: 'softmax_xent_backward (N,50257)', run: () => be.softmaxXentBackward(dlogits, logits, lseV, targets, N, V, -1, 1 / N, Vp), bytes: 2 * eb * N * V },
    // as a training step calls it (loss(…, { gradient: true })): the loss and dlogits in one pass
    { name: 'softmax_xent loss+grad (N,50257)', run: () => be.softmaxXentForward(losses, lseV, logits, targets, N, V, -1, Vp, dlogits, 1 / N), bytes: 2 * eb * N * V },
    { name: `adamw_step (${nAdam} params)`, run: () => be.adamwStep(p, g, m, v, 1e-4, 0.9, 0.95, 1e-8, 0.1, 1, 1), bytes: 28 * nAdam },
    { name: `sumsq (${nAdam})`, run: () => be.sumsq(g), bytes: 4 * nAdam },
  ];
}

/**
 * On cuda, the cuBLAS attention path is also timed with other settings than its defaults, side by side:
 * one query chunk (the whole causal square), chunks of 64 and 256 queries, and a 32 MiB score scratch (fewer
 * (batch row, head) pairs per GEMM, scores that stay in L2).
 */
function attentionTunings(be: Backend, T: number): [string, AttentionTuning][] {
  if (be.device !== 'cuda') return [];
  if (cudaSettings().attention === 'fused') return [];
  return [
    ['one query chunk', { queryChunk: T }],
    ['64-query chunks', { queryChunk: 64 }],
    ['256-query chunks', { queryChunk: 256 }],
    ['32 MiB scratch', { scratchBytes: 32 * 2 ** 20 }],
  ];
}

/** On cuda with bf16 activations and a head size of 32 or 64, the flash kernels apply (setAttention('flash')). */
function flashApplies(be: Backend, act: DType, HS: number): boolean {
  return be.device === 'cuda' && act === 'bf16' && (HS === 64 || HS === 32);
}
/** Whether run(), called once under setAttention(kind), ran the flash kernels (attentionStats: no fallback). */
function flashRuns(run: () => void, kind: 'flash' | 'flash2' = 'flash'): boolean {
  const dev = cuda();
  const before = dev.attentionStats().fallbacks;
  withSetting<AttentionKind>((k) => dev.setAttention(k), kind, run)();
  return dev.attentionStats().fallbacks === before;
}
/** Head sizes 80, 96 and 128 on cuda in bf16: flash's forward applies, and its backward on sm_90+. */
function flashWide(be: Backend, act: DType, HS: number): boolean {
  return be.device === 'cuda' && act === 'bf16' && (HS === 80 || HS === 96 || HS === 128);
}

/**
 * run() with one addon setting changed for the call: `set(value)` returns the old value, which is put back after.
 * The wrappers below are its uses: flash attention, the cuBLAS attention and its tuning, the cublasGemmEx path.
 */
function withSetting<T>(set: (v: T) => T, value: T, run: () => void): () => void {
  return () => {
    const prev = set(value);
    try {
      run();
    } finally {
      set(prev);
    }
  };
}

/** setAttention('flash') (or 'flash2'), and says so when a call took another path instead. */
function withFlash(run: () => void, kind: 'flash' | 'flash2' = 'flash'): () => void {
  return () => {
    if (!flashRuns(run, kind)) throw new Error('bench kernels: the flash attention kernels did not run (compute capability below 8?)');
  };
}

/** setFlashBackward('atomic') for the call. */
const withAtomicDq = (run: () => void) => withSetting<FlashBackward>((k) => cuda().setFlashBackward(k), 'atomic', run);
const tuned = (tuning: AttentionTuning, run: () => void) => withSetting((t: AttentionTuning) => cuda().setAttentionTuning(t), tuning, run);
/** The addon's attention setting, but the cuBLAS path where that is 'flash' or 'flash2' (whose rows are named so). */
function withBaseAttention(run: () => void): () => void {
  return () => {
    const kind = cudaSettings().attention;
    withSetting<AttentionKind>((k) => cuda().setAttention(k), kind === 'flash' || kind === 'flash2' ? 'gemm' : kind, run)();
  };
}
/** The call as before cuBLASLt ran the GEMMs: cublasGemmEx, with the bias and the GELU in passes after it. */
function withGemmEx(run: () => void): () => void {
  return () => {
    const dev = cuda();
    withSetting((k: 'cublaslt' | 'cublas') => dev.setGemm(k), 'cublas',
      withSetting((k: 'cublaslt' | 'kernel') => dev.setBiasEpilogue(k), 'kernel',
        withSetting((k: 'cublaslt' | 'kernel') => dev.setGeluEpilogue(k), 'kernel', run)))();
  };
}

export function benchKernels(argv: string[]): void {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native bench kernels [--json]', specs));
    return;
  }
  if (a.threads !== undefined) native.setThreads(a.threads as number);
  const Ts = String(a.t).split(',').map((s) => Number(s.trim()));
  const B = a.b as number, C = a.c as number, NH = a.nh as number, V = a.v as number;
  const results: KernelResult[] = [];
  const device = a.device as string;
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`Expected cpu or cuda for --device but received ${JSON.stringify(device)}`);
  const be = backendOf(device);
  const precision = checkPrecision(a.precision);
  if (precision === 'bf16' && be.device === 'cpu')
    throw new UsageError("--precision bf16 times the cuda kernels (bf16 activations); on the CPU time bf16 with 'bench train --precision bf16' or 'bench generate --precision bf16'");
  const act: DType = precision === 'bf16' ? 'bf16' : 'fp32';
  be.setPrecision(precision);
  const machine = device === 'cuda' ? `${cudaInfo().name}, ${precision}` : `${machineLine()}, ${native.threads()} threads, gemm ${native.gemmIsa()}`;
  if (!a.json) console.log(`# ${machine}`);
  for (const T of Ts) {
    if (!a.json) console.log(`\n## B=${B} T=${T} C=${C} NH=${NH} V=${V}\n| kernel | ms | GFLOP/s | GB/s |\n|---|---:|---:|---:|`);
    for (const c of cases(be, B, T, C, NH, V, act)) {
      if (a.filter && !c.name.includes(String(a.filter))) continue;
      if (a.exclude && String(a.exclude).split('|').some((x) => x !== '' && c.name.includes(x))) continue;
      // on the GPU each timed call waits for the device, so the time is the kernel's (plus one launch)
      const run = device === 'cuda' ? () => { c.run(); cuda().synchronize(); } : c.run;
      const t = timeIt(run, { warmup: 2, runs: a.runs as number, minTimeMs: 100 });
      const r: KernelResult = { kernel: c.name, B, T, ms: t.medianMs };
      if (c.flops) r.gflops = c.flops / (t.medianMs * 1e6);
      if (c.bytes) r.gbps = c.bytes / (t.medianMs * 1e6);
      results.push(r);
      if (a.json) console.log(JSON.stringify(r));
      else console.log(`| ${c.name} | ${r.ms.toFixed(3)} | ${r.gflops ? r.gflops.toFixed(1) : ''} | ${r.gbps ? r.gbps.toFixed(1) : ''} |`);
    }
  }
  if (a.json) console.log(JSON.stringify({ machine, device, precision, threads: native.threads(), isa: native.gemmIsa(), results }));
}
