/**
 * `gpt-native bench train`: one training step (forward + backward + clip + AdamW) on random tokens, timed,
 * with a per-phase breakdown (each native kernel family, and what is left: JavaScript and the boundary).
 * `--preset` takes our presets plus `small6` (6 layers × 384, the PyTorch peer's second config).
 */
import { helpText, parseArgs, OptionSpecs, UsageError } from '../cli/args';
import { native, NativeAddon } from '../native';
import { GPT } from '../nn/gpt';
import { AdamW } from '../optim';
import { GPTConfig } from '../config';
import { benchPreset, instrument, machineLine } from './timing';
import { Rng } from '../random';
import { backendOf, withPrecision } from '../backend';
import type { Device, Precision } from '../backend';
import { cuda, cudaInfo, cudaSettings } from '../cuda';

const specs: OptionSpecs = {
  preset: { kind: 'string', default: 'gpt2-small', help: 'model preset (or small6 = 6 layers × 384, tiny = 2 layers × 128 for smoke runs)' },
  batch: { kind: 'int', default: 4, help: 'sequences per step' },
  seq: { kind: 'int', default: 64, help: 'sequence length' },
  steps: { kind: 'int', default: 5, help: 'timed steps (median reported)' },
  warmup: { kind: 'int', default: 1, help: 'untimed steps first' },
  threads: { kind: 'int', help: 'threads (default: GPT_NATIVE_THREADS or all cores)' },
  device: { kind: 'string', default: 'cpu', help: 'cpu | cuda' },
  precision: { kind: 'string', default: 'fp32', help: 'fp32 | bf16 (bf16 weights and bf16 arithmetic in the matrix products, fp32 sums)' },
  profile: { kind: 'boolean', default: false, help: 'cuda: time each kernel family (synchronising around every call, so the step is slower)' },
  'profile-host': { kind: 'boolean', default: false, help: 'cuda: the host time inside each family of addon calls (no synchronising: launches, argument checks, and the calls that wait for the device), the calls a step makes, and the JavaScript around them' },
  'peak-tflops': { kind: 'number', help: 'device peak for MFU (default: H100/H200 dense 989 bf16, 67 fp32)' },
  json: { kind: 'boolean', default: false, help: 'print one JSON object as the last line' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export interface TrainBenchResult {
  preset: string;
  batch: number;
  seq: number;
  msPerStep: number;
  tokensPerSec: number;
  phasesMs: Record<string, number>;
  gflopsModel: number;
  threads: number;
  isa: string;
  device: Device;
  precision: Precision;
  /** The products' arithmetic: on the CPU 'bf16' only where the processor has AVX512-BF16. */
  mathMode: string;
  gpu?: string;
  /**
   * cuda: the addon's settings (setAttention, setFlashBackward, setBiasEpilogue, setGeluEpilogue, setGemm), how many attention calls of the
   * timed steps ran the flash kernels and how many GEMMs cuBLASLt's GELU epilogues did.
   */
  settings?: {
    attention: string; flashBackward: string; flashCalls: number; attentionFallbacks: number; biasEpilogue: string; geluEpilogue: string; geluEpilogueCalls: number;
    /** setGemm; GEMMs cuBLASLt ran (plain, bias and GELU epilogues) and those that took cublasGemmEx under 'cublaslt' */
    gemm: string; ltCalls: number; gemmExCalls: number;
    /** setGemmAlgo */
    gemmAlgo: string;
  };
  /** --profile-host: addon calls a step makes (each a launch or a copy, or a wait for the device). */
  addonCallsPerStep?: number;
  /** Model FLOPs utilisation: model FLOP/s over the device's peak (cuda only). */
  mfu?: number;
  peakTflops?: number;
}

export function benchTrain(argv: string[]): void {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native bench train --preset P --batch B --seq T [--steps N] [--json]', specs));
    return;
  }
  if (a.threads !== undefined) native.setThreads(a.threads as number);
  const name = a.preset as string;
  const cfg: GPTConfig = benchPreset(name);
  const B = a.batch as number, T = a.seq as number;
  if (T > cfg.n_positions) throw new UsageError(`--seq ${T} exceeds the preset's context of ${cfg.n_positions}`);
  cfg.embd_pdrop = cfg.resid_pdrop = cfg.attn_pdrop = 0;
  const device = a.device as Device, precision = a.precision as Precision;
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`Expected cpu or cuda for --device but received ${JSON.stringify(device)}`);
  const model = GPT.create(cfg, { seed: 1, device, precision });
  const sync = () => { if (device === 'cuda') cuda().synchronize(); };
  const opt = new AdamW(model, { lr: 1e-4 });
  const rng = new Rng(2);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
  const tg = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
  const phases = { forward: 0, backward: 0, optimizer: 0 };
  const step = () => {
    const t0 = performance.now();
    model.loss(ids, tg, { shape: [B, T], gradient: true });
    const t1 = performance.now();
    model.backward();
    const t2 = performance.now();
    // clipping as train() does it: the coefficient folded into the AdamW pass (no pass that rescales the gradients)
    const norm = model.gradNorm();
    opt.step(Math.min(1, 1 / (norm + 1e-6)));
    model.zeroGrad();
    sync();
    const t3 = performance.now();
    phases.forward += t1 - t0; phases.backward += t2 - t1; phases.optimizer += t3 - t2;
    return t3 - t0;
  };
  for (let i = 0; i < (a.warmup as number); i++) step();
  phases.forward = phases.backward = phases.optimizer = 0;
  // per-kernel times: always on the CPU; on the GPU with --profile (GPU launches return before the work is done,
  // so profiling synchronises around every call)
  // --profile-host: the host's side of the GPU step (no synchronising): where its time goes between launches
  const hostProfile = device === 'cuda' && !a.profile && (a['profile-host'] as boolean);
  const { times, calls, restore } = device === 'cpu' ? instrument(native)
    : a.profile ? instrument(cuda(), () => cuda().synchronize())
    : hostProfile ? instrument(cuda(), undefined, true) : { times: new Map<string, number>(), calls: { n: 0 }, restore: () => undefined };
  const runs: number[] = [];
  const steps = a.steps as number;
  const attn0 = device === 'cuda' ? cuda().attentionStats() : null;
  const epi0 = device === 'cuda' ? cuda().biasEpilogueStats() : null;
  for (let i = 0; i < steps; i++) runs.push(step());
  restore();
  runs.sort((x, y) => x - y);
  const ms = runs[Math.floor(runs.length / 2)];
  const total = runs.reduce((x, y) => x + y, 0);
  const phasesMs: Record<string, number> = {};
  for (const [k, v] of Object.entries(phases)) phasesMs[k] = v / steps;
  let nativeSum = 0;
  for (const [k, v] of times) { phasesMs[`${hostProfile ? 'host' : 'kernel'}:${k}`] = v / steps; nativeSum += v; }
  if (device === 'cpu' || a.profile) phasesMs[device === 'cpu' ? 'js+boundary' : 'host+copies'] = (total - nativeSum) / steps;
  if (hostProfile) phasesMs['js (outside addon calls)'] = (total - nativeSum) / steps;
  const N = model.numParameters();
  const flops = 6 * N * B * T + 12 * cfg.n_layer * B * T * T * cfg.n_embd / 2; // matmuls + causal attention
  const r: TrainBenchResult = {
    preset: name, batch: B, seq: T, msPerStep: ms, tokensPerSec: (B * T) / (ms / 1000), phasesMs,
    gflopsModel: flops / (ms * 1e6), threads: native.threads(), isa: native.gemmIsa(), device, precision,
    // the arithmetic a CPU pass at this precision runs in ('fp32' where the processor has no bf16 arithmetic)
    mathMode: device === 'cpu' ? withPrecision(backendOf('cpu'), precision, () => native.mathMode()) : precision,
  };
  if (hostProfile) r.addonCallsPerStep = calls.n / steps;
  if (device === 'cuda') {
    const info = cudaInfo();
    const peak = (a['peak-tflops'] as number | undefined) ?? (precision === 'bf16' ? 989 : 67);
    r.gpu = info.name;
    r.mfu = flops / (ms / 1000) / (peak * 1e12);
    r.peakTflops = peak;
    const dev = cuda();
    const { attention, flashBackward, biasEpilogue, geluEpilogue, gemm, gemmAlgo } = cudaSettings(dev);
    const st = dev.attentionStats(), epi = dev.biasEpilogueStats();
    r.settings = { attention, flashBackward, flashCalls: st.flash - attn0!.flash, attentionFallbacks: st.fallbacks - attn0!.fallbacks,
      biasEpilogue, geluEpilogue, geluEpilogueCalls: epi.gelu - epi0!.gelu, gemm, gemmAlgo,
      ltCalls: (epi.matmul - epi0!.matmul) + (epi.cublaslt - epi0!.cublaslt) + (epi.gelu - epi0!.gelu),
      gemmExCalls: (epi.matmulFallbacks - epi0!.matmulFallbacks) };
  }
  if (a.json) {
    console.log(JSON.stringify(r));
    return;
  }
  if (device === 'cuda') {
    const st = r.settings!;
    console.log(`# ${r.gpu}, ${precision} matrix products (${st.gemm}: ${st.ltCalls} cuBLASLt calls, ${st.gemmAlgo} algorithms), ${st.attention} attention (${st.flashCalls} flash calls, ${st.flashBackward} backward), bias ${st.biasEpilogue}, GELU ${st.geluEpilogue} (${st.geluEpilogueCalls} fused); MFU against ${r.peakTflops} TFLOP/s: ${(100 * r.mfu!).toFixed(1)}%`);
  }
  else console.log(`# ${machineLine()}, ${r.threads} threads, gemm ${r.isa}`);
  console.log(`train step ${name} B=${B} T=${T}: ${ms.toFixed(1)} ms/step (median of ${steps}), ${r.tokensPerSec.toFixed(1)} tokens/s, ${r.gflopsModel.toFixed(1)} GFLOP/s`);
  if (r.addonCallsPerStep !== undefined)
    console.log(`host profile (no synchronising): ${r.addonCallsPerStep.toFixed(0)} addon calls a step; calls that wait for the device (download, synchronize, a returned loss or norm) include that wait`);
  console.log('per step (mean ms):');
  for (const [k, v] of Object.entries(phasesMs).sort((x, y) => y[1] - x[1])) console.log(`  ${k.padEnd(22)} ${v.toFixed(1).padStart(9)}  ${((100 * v) / (total / steps)).toFixed(1)}%`);
  void (native as NativeAddon);
}
