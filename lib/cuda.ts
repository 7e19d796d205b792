/**
 * Loads the optional CUDA addon (`build/cuda/gpt_native_cuda.node`, built by `npm run build:cuda` where a CUDA
 * toolkit is installed) and declares its types. Loaded only when a model asks for `device: 'cuda'`, so a
 * CPU-only install never tries. `GPT_NATIVE_CUDA_ADDON` names another file (or a JS module with the same
 * exports, which the tests use to exercise the device plumbing without a GPU).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { AttentionShape } from './native';

/** A float32 range of device memory: a buffer handle, an offset and a length, in floats. */
export interface DeviceView {
  readonly buf: DeviceBuffer;
  readonly off: number;
  readonly len: number;
}

/** Opaque handle owning a device allocation (freed by `free` or, as a fallback, by the garbage collector). */
export type DeviceBuffer = { readonly __deviceBuffer: unique symbol };

type V = DeviceView;
type I32 = Int32Array;

/** The CUDA addon: the CPU addon's kernels with device views in place of Float32Arrays. */
export interface CudaAddon {
  abiVersion: number;
  /** Number of visible GPUs; 0 without a driver or GPU (never throws). */
  deviceCount(): number;
  /** Selects a GPU and loads cuBLAS; throws an Error that says what is missing. Idempotent. */
  init(device?: number): { name: string; totalMemory: number; computeCapability: [number, number]; cublas: string };
  alloc(n: number): DeviceBuffer;
  free(buf: DeviceBuffer): void;
  bufferLength(buf: DeviceBuffer): number;
  upload(dst: V, src: Float32Array): void;
  download(src: V, dst: Float32Array): void;
  copy(dst: V, src: V): void;
  fill(dst: V, value: number): void;
  synchronize(): void;
  setMathMode(mode: 'fp32' | 'bf16'): void;
  memoryInfo(): { free: number; total: number };
  gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: V, lda: number,
    B: V, ldb: number, C: V, ldc: number, accumulate: boolean, bias: V | null): void;
  linearForward(out: V, inp: V, weight: V, bias: V | null, N: number, C: number, OC: number): void;
  linearBackward(dinp: V | null, dweight: V | null, dbias: V | null, dout: V, inp: V, weight: V,
    N: number, C: number, OC: number): void;
  layernormForward(out: V, mean: V | null, rstd: V | null, inp: V, weight: V, bias: V, N: number,
    C: number, eps: number): void;
  layernormBackward(dinp: V | null, dweight: V, dbias: V, dout: V, inp: V, weight: V, mean: V,
    rstd: V, N: number, C: number): void;
  geluForward(out: V, inp: V): void;
  geluBackward(dinp: V, inp: V, dout: V): void;
  add(out: V, a: V, b: V): void;
  scale(a: V, s: number): void;
  dropout(out: V, inp: V, p: number, seed: number, offset: number): void;
  sumsq(a: V): number;
  embeddingForward(out: V, ids: I32, wte: V, wpe: V, B: number, T: number, C: number, V: number, P: number,
    pos0: number): void;
  embeddingBackward(dwte: V | null, dwpe: V | null, dout: V, ids: I32, B: number, T: number, C: number,
    V: number, P: number, pos0: number): void;
  softmaxXentForward(losses: V, lse: V | null, logits: V, targets: I32, N: number, V: number,
    ignoreIndex: number): number;
  softmaxXentBackward(dlogits: V, logits: V, lse: V, targets: I32, N: number, V: number, ignoreIndex: number,
    scale: number): void;
  attentionForward(out: V, lse: V | null, q: V, k: V, v: V, shape: AttentionShape): void;
  attentionBackward(dq: V, dk: V, dv: V, dout: V, q: V, k: V, v: V, out: V, lse: V, shape: AttentionShape): void;
  adamwStep(param: V, grad: V, m: V, v: V, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, step: number, gradScale: number): void;
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
