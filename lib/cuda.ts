/**
 * Loads the optional CUDA addon (`build/cuda/gpt_native_cuda.node`, built by `npm run build:cuda` where a CUDA
 * toolkit is installed) and declares its types. Loaded only when a model asks for `device: 'cuda'`, so a
 * CPU-only install never tries. `GPT_NATIVE_CUDA_ADDON` names another file (or a JS module with the same
 * exports, which the tests use to exercise the device plumbing without a GPU).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { NativeAddon } from './native';

/** A float32 range of device memory: a buffer handle, an offset and a length, in floats. */
export interface DeviceView {
  readonly buf: DeviceBuffer;
  readonly off: number;
  readonly len: number;
}

/** Opaque handle owning a device allocation (freed by `free` or, as a fallback, by the garbage collector). */
export type DeviceBuffer = { readonly __deviceBuffer: unique symbol };

/** NativeAddon's kernel names (the functions both addons have). */
export const KERNELS = ['gemm', 'linearForward', 'linearBackward', 'layernormForward', 'layernormBackward', 'geluForward',
  'geluBackward', 'add', 'scale', 'dropout', 'sumsq', 'embeddingForward', 'embeddingBackward',
  'softmaxXentForward', 'softmaxXentBackward', 'attentionForward', 'attentionBackward', 'adamwStep'] as const;
export type KernelName = (typeof KERNELS)[number];

/** Float32Array (or a CPU bf16 Uint16Array) → B in an argument type; distributes over unions, so `Float32Array | null` → `B | null`. */
type Swap<A, B> = A extends Float32Array | Uint16Array ? B : A;
/** A kernel's signature with its Float32Array arguments replaced by `B`. */
type WithBuffers<F, B> = F extends (...a: infer P) => infer R ? (...a: { [I in keyof P]: Swap<P[I], B> }) => R : never;
/** The kernels of NativeAddon over another buffer type (device views for the CUDA addon). */
export type KernelsOver<B> = { [K in KernelName]: WithBuffers<NativeAddon[K], B> };

/** The CUDA addon: the CPU addon's kernels (same names, arguments, semantics) over device views, plus memory. */
/** Element type of a device buffer: activations may be bf16; parameters, gradients and statistics are fp32. */
export type DType = 'fp32' | 'bf16';

export interface CudaAddon extends KernelsOver<DeviceView> {
  abiVersion: number;
  /** Number of visible GPUs; 0 without a driver or GPU (never throws). */
  deviceCount(): number;
  /** Selects a GPU and loads cuBLAS; throws an Error that says what is missing. Idempotent. */
  init(device?: number): { name: string; totalMemory: number; computeCapability: [number, number]; cublas: string; cublasLt?: boolean };
  /** n zero elements of fp32 (default) or bf16 (activations of a bf16 model). */
  alloc(n: number, dtype?: DType): DeviceBuffer;
  bufferDtype(buf: DeviceBuffer): DType;
  free(buf: DeviceBuffer): void;
  bufferLength(buf: DeviceBuffer): number;
  upload(dst: DeviceView, src: Float32Array): void;
  download(src: DeviceView, dst: Float32Array): void;
  copy(dst: DeviceView, src: DeviceView): void;
  /** rows × cols floats from src (row stride srcStride) to dst (row stride dstStride), one 2-D copy. */
  copyRows(dst: DeviceView, dstStride: number, src: DeviceView, srcStride: number, rows: number, cols: number): void;
  fill(dst: DeviceView, value: number): void;
  synchronize(): void;
  /** Returns the mode it replaces. */
  setMathMode(mode: 'fp32' | 'bf16'): 'fp32' | 'bf16';
  /**
   * How attention runs: cuBLAS GEMMs with row kernels ('gemm'), the simple fused kernels ('fused'), or
   * tensor-core flash kernels ('flash', the default: bf16 activations, head size 32, 64, 80, 96 or 128, compute
   * capability 8+, and sm_90+ for the backward at 80, 96 and 128; other calls run as 'gemm'; GPT_NATIVE_CUDA_ATTENTION
   * sets it at load). 'flash2': the flash kernels with 32
   * query rows a warp in the forward and dQ, and cp.async double-buffered tiles (built for sm_90+; elsewhere it
   * runs as 'flash'), an opt-in until a GPU run times it against 'flash'. Returns the old setting.
   */
  setAttention(kind: AttentionKind): AttentionKind;
  /**
   * How the flash backward gets dQ: from a kernel of its own that recomputes the scores ('split', the default;
   * deterministic), or from the dK/dV kernel, which adds dS·K into fp32 sums with atomics ('atomic':
   * FlashAttention-2's one pass over the scores; dQ's sums then run in no fixed order; built for sm_90+ and head
   * size 64, elsewhere it runs as 'split'). An opt-in until a GPU run times it; GPT_NATIVE_CUDA_FLASH_BWD sets it at
   * load. Returns the old setting.
   */
  setFlashBackward(kind: FlashBackward): FlashBackward;
  /** Attention calls (forward and backward one each) that ran the flash kernels, and those that could not. */
  attentionStats(): { flash: number; fallbacks: number };
  /**
   * Tuning of the cuBLAS attention path (benchmarks): query rows per chunk (0: chosen by shape) and the score
   * scratch budget in bytes; returns the previous values.
   */
  setAttentionTuning(t: AttentionTuning): Required<AttentionTuning>;
  /**
   * How linear layers add their bias: in cuBLASLt's GEMM epilogue ('cublaslt', where cuBLASLt has an algorithm
   * for the shape; the default) or in a pass after the GEMM ('kernel'; GPT_NATIVE_CUDA_LT=0 at load). Returns the
   * old setting.
   */
  setBiasEpilogue(kind: 'cublaslt' | 'kernel'): 'cublaslt' | 'kernel';
  /**
   * How an MLP's GELU runs (linearForward with geluOut, linearBackward with geluPre): in cuBLASLt's GELU epilogues
   * ('cublaslt', where cuBLASLt has an algorithm for the shape; the default) or as a pass after the GEMM ('kernel';
   * GPT_NATIVE_CUDA_LT_GELU=0 at load). Returns the old setting.
   */
  setGeluEpilogue(kind: 'cublaslt' | 'kernel'): 'cublaslt' | 'kernel';
  /**
   * GEMMs whose bias cuBLASLt added, and those that fell back to the bias pass (no algorithm for the shape); the
   * same for the GELU epilogues; GEMMs without an epilogue that cublasLtMatmul ran, and those that took
   * cublasGemmEx under setGemm('cublaslt').
   */
  biasEpilogueStats(): {
    cublaslt: number; fallbacks: number; gelu: number; geluFallbacks: number; matmul: number; matmulFallbacks: number;
    /** setGemmAlgo('timed'): plans whose algorithms were timed, and how many algorithms that was */
    timedPlans: number; timedAlgos: number;
  };
  /**
   * Which cuBLAS entry point runs the GEMMs without an epilogue: cublasLtMatmul with its heuristic's algorithm
   * ('cublaslt', the default; cublasGemmEx where it has none) or cublasGemmEx ('cublas'; GPT_NATIVE_CUDA_GEMM=cublas
   * at load). Returns the old setting.
   */
  setGemm(kind: 'cublaslt' | 'cublas'): 'cublaslt' | 'cublas';
  /**
   * Which algorithm cuBLASLt runs for a shape: its heuristic's first choice ('heuristic', the default) or the
   * fastest of its first 8, each timed on the shape's first call that overwrites its output ('timed'; an opt-in
   * until a GPU run times it; GPT_NATIVE_CUDA_GEMM_ALGO=timed at load). Returns the old setting.
   */
  setGemmAlgo(kind: 'heuristic' | 'timed'): 'heuristic' | 'timed';
  memoryInfo(): { free: number; total: number };
  /**
   * Diagnostic (tests, gpu-check): the flash kernels' tensor-core products one at a time on 64×64 bf16 tiles x, y,
   * p, v (row-major). out (fp32, 6·64·64) receives x·yᵀ by the mma instruction alone, x·yᵀ with B through
   * ldmatrix, x·yᵀ with A and B through ldmatrix, p·v through ldmatrix.trans, xᵀ·v with A through ldmatrix.trans
   * (the atomic backward's dS·K), and x·yᵀ rounded to bf16 through a shared tile (how that kernel writes dSᵀ).
   * Each must equal the plain product (the last rounded to bf16); the first that does not names the building block
   * at fault. Throws where the flash kernels have no sm_80 or later image for the device.
   */
  flashProbe(out: DeviceView, x: DeviceView, y: DeviceView, p: DeviceView, v: DeviceView): void;

  // ---- the KV decoder's steady state (native/cuda/graph.cc, decode.cu) ----
  /** Device int32 [pos, id_0, …, id_{rows-1}] (zeros) for positions 0 .. positions-1. */
  decodeSlots(rows: number, positions: number): DecodeSlots;
  freeDecodeSlots(slots: DecodeSlots): void;
  /** Checks pos < positions, ids.length <= rows and every id < V, then writes them to the device in stream order. */
  setDecodeSlots(slots: DecodeSlots, pos: number, ids: Int32Array, V: number): void;
  /** out (B, C) = wte[id_b] + wpe[pos] (embeddingForward for one token per row, from the slots). */
  decodeEmbed(out: DeviceView, slots: DecodeSlots, wte: DeviceView, wpe: DeviceView, B: number, C: number, V: number, P: number): void;
  /** dst[b·dstBatchStride + pos·dstRowStride + c] = src[b·srcBatchStride + c], c < width (a row into each KV cache). */
  decodeAppend(dst: DeviceView, dstBatchStride: number, dstRowStride: number, src: DeviceView, srcBatchStride: number,
    slots: DecodeSlots, B: number, width: number): void;
  /** Starts capturing the calls that follow as a CUDA graph (nothing runs until graphLaunch). */
  graphBegin(): void;
  /** Ends the capture: the graph when keep, else (after an error) discards it and returns undefined. */
  graphEnd(keep: boolean): CudaGraph | undefined;
  /** Runs the graph; false (nothing run) when a scratch buffer it uses was reallocated since: capture it again. */
  graphLaunch(graph: CudaGraph): boolean;
  graphFree(graph: CudaGraph): void;
  /**
   * Whether the KV decoder replays its one-token steps as CUDA graphs (true, the default; GPT_NATIVE_CUDA_GRAPHS=0
   * at load turns it off) or launches every kernel from JavaScript. Returns the old setting.
   */
  setGraphs(on: boolean): boolean;
  /** Graphs captured and launched, launches refused as stale, and the scratch reallocations that make graphs stale. */
  graphStats(): { enabled: boolean; captured: number; launched: number; stale: number; scratchReallocs: number };
}

/** Opaque handles of the decoding helpers (graph.cc). */
export type DecodeSlots = { readonly __decodeSlots: unique symbol };
export type CudaGraph = { readonly __cudaGraph: unique symbol };

export type AttentionKind = 'gemm' | 'fused' | 'flash' | 'flash2';
export type FlashBackward = 'split' | 'atomic';

export interface AttentionTuning {
  queryChunk?: number;
  scratchBytes?: number;
}

let loaded: { addon: CudaAddon; info: ReturnType<CudaAddon['init']> } | null = null;

/** Where the CUDA addon is looked for. */
export function cudaAddonPath(): string {
  return process.env.GPT_NATIVE_CUDA_ADDON || path.join(__dirname, '..', 'build', 'cuda', 'gpt_native_cuda.node');
}

/**
 * The CUDA addon, loaded and initialised on first use. Throws an Error that says what to do when the addon
 * was not built (no CUDA toolkit at install time) or no GPU is visible.
 */
export function cuda(): CudaAddon {
  if (loaded) return loaded.addon;
  const file = cudaAddonPath();
  if (!fs.existsSync(file))
    throw new Error(`gpt-native: device 'cuda' needs the CUDA addon, but ${file} does not exist. Build it with ` +
      '`npm run build:cuda` on a machine with the CUDA toolkit (nvcc, cmake) and an NVIDIA driver, or use device \'cpu\'.');
  let addon: CudaAddon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    addon = require(file) as CudaAddon;
  } catch (err) {
    const e = new Error(`gpt-native: the CUDA addon ${file} could not be loaded (${(err as Error).message}). ` +
      'Rebuild it with `npm run build:cuda`; the CUDA runtime library (libcudart) must be on the library path.');
    (e as Error & { cause?: unknown }).cause = err;
    throw e;
  }
  if (addon.deviceCount() === 0)
    throw new Error('gpt-native: device \'cuda\' was asked for, but no CUDA GPU is visible (no driver, no device, or ' +
      'CUDA_VISIBLE_DEVICES hides them). Use device \'cpu\', or run on a machine with an NVIDIA GPU.');
  const info = addon.init(0);
  loaded = { addon, info };
  return addon;
}

/** The addon's settings (setAttention, setFlashBackward, setBiasEpilogue, setGeluEpilogue, setGemm, setGemmAlgo) as they are now. */
export interface CudaSettings {
  attention: AttentionKind;
  flashBackward: FlashBackward;
  biasEpilogue: 'cublaslt' | 'kernel';
  geluEpilogue: 'cublaslt' | 'kernel';
  gemm: 'cublaslt' | 'cublas';
  gemmAlgo: 'heuristic' | 'timed';
}
/** Reads the addon's settings (each setter returns the old value, which is put straight back). */
export function cudaSettings(dev: CudaAddon = cuda()): CudaSettings {
  const peek = <T>(set: (v: T) => T, any: T): T => {
    const v = set(any);
    set(v);
    return v;
  };
  return {
    attention: peek<AttentionKind>((k) => dev.setAttention(k), 'gemm'),
    flashBackward: peek<FlashBackward>((k) => dev.setFlashBackward(k), 'split'),
    biasEpilogue: peek<'cublaslt' | 'kernel'>((k) => dev.setBiasEpilogue(k), 'kernel'),
    geluEpilogue: peek<'cublaslt' | 'kernel'>((k) => dev.setGeluEpilogue(k), 'kernel'),
    gemm: peek<'cublaslt' | 'cublas'>((k) => dev.setGemm(k), 'cublas'),
    gemmAlgo: peek<'heuristic' | 'timed'>((k) => dev.setGemmAlgo(k), 'heuristic'),
  };
}

/** The GPU's name, memory and compute capability, and the cuBLAS library in use (loads the addon). */
export function cudaInfo(): ReturnType<CudaAddon['init']> {
  cuda();
  return loaded!.info;
}

/** True when `device: 'cuda'` would work: the addon is built and a GPU is visible. Never throws. */
export function cudaAvailable(): boolean {
  try {
    cuda();
    return true;
  } catch {
    return false;
  }
}
