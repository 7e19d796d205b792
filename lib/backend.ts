/**
 * The arithmetic backends behind the model: 'cpu' (the native addon over Float32Arrays) and 'cuda' (the CUDA
 * addon over device memory). The model graph (nn/gpt.ts, nn/decoder.ts) and AdamW call a Backend and never
 * the addons, so one graph runs on both, and the cross-backend tests compare like with like.
 * A buffer is a Float32Array on the CPU and a DeviceView on the GPU; ids and targets stay host Int32Arrays.
 */
import { native } from './native';
import { cuda, CudaGraph, DecodeSlots, DeviceView, DType, KERNELS, KernelsOver } from './cuda';
import { rangeError } from './errors';

export type Device = 'cpu' | 'cuda';
export type Precision = 'fp32' | 'bf16';
export type { DType };

/**
 * A backend's buffer: Float32Array (cpu) or DeviceView (cuda). On the CPU a bf16 buffer (alloc(n, 'bf16'):
 * a bf16 model's weight copy) is a Uint16Array of bf16 bit patterns, which only the matrix products take.
 */
export type Buf = Float32Array | Uint16Array | DeviceView;

/** The kernels, as the native addon has them, over a backend's buffers. */
export type Ops = KernelsOver<Buf>;

export interface Backend extends Ops {
  readonly device: Device;
  /** A zero-filled buffer of n elements: fp32, or bf16 (cuda: any buffer; cpu: a Uint16Array for weight copies). */
  alloc(n: number, dtype?: DType): Buf;
  /** Floats [off, off+len) of b (len: to the end), sharing its memory. */
  view(b: Buf, off: number, len?: number): Buf;
  length(b: Buf): number;
  /** dst ← src (host array of the same length). */
  upload(dst: Buf, src: Float32Array): void;
  /** A host copy of b (or b itself on the CPU when `copy` is false). */
  download(b: Buf, copy?: boolean): Float32Array;
  /** dst ← b (a host array of the same length). */
  readInto(b: Buf, dst: Float32Array): void;
  /** dst ← src, converting between fp32 and bf16 (rounded to nearest even) when their types differ. */
  copy(dst: Buf, src: Buf): void;
  fill(dst: Buf, value: number): void;
  /** rows × cols floats from src (row stride srcStride) to dst (row stride dstStride). */
  copyRows(dst: Buf, dstStride: number, src: Buf, srcStride: number, rows: number, cols: number): void;
  /** Frees b (a whole buffer from alloc) now where that means something (device memory); later use throws. */
  free(b: Buf): void;
  /** Sets the matrix-product precision for the calls that follow; returns the one it replaces. */
  setPrecision(p: Precision): Precision;
  /** The KV decoder's one-token steps as CUDA graphs (cuda, where the addon has them; see DecodeOps). */
  readonly decode?: DecodeOps;
}

/**
 * What the KV decoder needs to replay its one-token steps as CUDA graphs (lib/nn/decoder.ts, native/cuda/graph.cc):
 * decode slots (the position and token ids in device memory, so a captured step serves every position), the
 * kernels that read them (attention takes them as `shape.slots`), and the capture itself.
 */
export interface DecodeOps {
  slots(rows: number, positions: number): DecodeSlots;
  freeSlots(s: DecodeSlots): void;
  setSlots(s: DecodeSlots, pos: number, ids: Int32Array, V: number): void;
  embed(out: Buf, s: DecodeSlots, wte: Buf, wpe: Buf, B: number, C: number, V: number, P: number): void;
  append(dst: Buf, dstBatchStride: number, dstRowStride: number, src: Buf, srcBatchStride: number, s: DecodeSlots,
    B: number, width: number): void;
  /** Whether steps should be captured and replayed (setGraphs / GPT_NATIVE_CUDA_GRAPHS). */
  graphsOn(): boolean;
  begin(): void;
  end(keep: boolean): CudaGraph | undefined;
  launch(g: CudaGraph): boolean;
  free(g: CudaGraph): void;
}

/** Runs fn with the backend's matrix-product precision set to p, then puts the previous one back. */
export function withPrecision<T>(be: Backend, p: Precision, fn: () => T): T {
  const prev = be.setPrecision(p);
  try {
    return fn();
  } finally {
    be.setPrecision(prev);
  }
}

function f32(b: Buf): Float32Array {
  return b as Float32Array;
}

/** b as a Float32Array; a TypeError for a bf16 buffer (which only copy/upload/download and the products take). */
function fp32Only(b: Buf, op: string): Float32Array {
  if (b instanceof Uint16Array) throw new TypeError(`${op}: expected an fp32 buffer but received a bf16 one (Uint16Array)`);
  return b as Float32Array;
}

/** A CPU bf16 buffer widened to fp32 (exact). */
function widen(h: Uint16Array): Float32Array {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return new Float32Array(u.buffer);
}

function makeCpu(): Backend {
  const ops = {} as Record<string, unknown>;
  // looked up at call time, so a benchmark can wrap the addon's functions with timers
  const n = native as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const k of KERNELS) ops[k] = (...a: unknown[]) => n[k].apply(native, a);
  return {
    ...(ops as unknown as Ops),
    device: 'cpu',
    alloc: (n, dtype = 'fp32') => (dtype === 'bf16' ? new Uint16Array(n) : new Float32Array(n)),
    view: (b, off, len) => (b as Float32Array | Uint16Array).subarray(off, len === undefined ? undefined : off + len),
    length: (b) => f32(b).length,
    upload: (dst, src) => {
      if (dst instanceof Uint16Array) native.toBf16(dst, src);
      else f32(dst).set(src);
    },
    download: (b, copy = true) => {
      if (b instanceof Uint16Array) {
        if (!copy) throw new TypeError('download(b, false) shares memory, which a bf16 buffer cannot: pass copy = true');
        return widen(b);
      }
      return copy ? f32(b).slice() : f32(b);
    },
    readInto: (b, dst) => dst.set(b instanceof Uint16Array ? widen(b) : f32(b)),
    copy: (dst, src) => {
      if (dst instanceof Uint16Array) {
        if (src instanceof Uint16Array) dst.set(src);
        else native.toBf16(dst, f32(src));
      } else {
        f32(dst).set(src instanceof Uint16Array ? widen(src) : f32(src));
      }
    },
    fill: (dst, v) => void fp32Only(dst, 'fill').fill(v),
    copyRows: (dst, ds, src, ss, rows, cols) => {
      const d = fp32Only(dst, 'copyRows'), s = fp32Only(src, 'copyRows');
      for (let r = 0; r < rows; r++) d.set(s.subarray(r * ss, r * ss + cols), r * ds);
    },
    free: () => undefined,
    // bf16: products of more than 8 rows in bf16 arithmetic where the processor has it (native.setMathMode);
    // the weight operand's type (a Uint16Array is bf16) does the rest
    setPrecision: (p) => {
      const prev = native.mathMode();
      native.setMathMode(checkPrecision(p));
      return prev;
    },
  };
}

function makeCuda(): Backend {
  const a = cuda();
  const ops = {} as Record<string, unknown>;
  // looked up at call time, so a benchmark can wrap the addon's functions with timers
  const fa = a as unknown as Record<string, (...x: unknown[]) => unknown>;
  for (const k of KERNELS) ops[k] = (...x: unknown[]) => fa[k].apply(a, x);
  const dv = (b: Buf) => b as DeviceView;
  return {
    ...(ops as unknown as Ops),
    device: 'cuda',
    alloc: (n, dtype = 'fp32') => ({ buf: a.alloc(n, dtype), off: 0, len: n }),
    view: (b, off, len) => {
      const v = dv(b);
      const n = len === undefined ? v.len - off : len;
      if (off < 0 || n < 0 || off + n > v.len) throw new RangeError(`view [${off}, ${off + n}) is outside a buffer of ${v.len} floats`);
      return { buf: v.buf, off: v.off + off, len: n };
    },
    length: (b) => dv(b).len,
    upload: (dst, src) => a.upload(dv(dst), src),
    download: (b) => {
      const out = new Float32Array(dv(b).len);
      a.download(dv(b), out);
      return out;
    },
    readInto: (b, dst) => a.download(dv(b), dst),
    copy: (dst, src) => a.copy(dv(dst), dv(src)),
    fill: (dst, v) => a.fill(dv(dst), v),
    copyRows: (dst, ds, src, ss, rows, cols) => a.copyRows(dv(dst), ds, dv(src), ss, rows, cols),
    free: (b) => {
      const v = dv(b);
      if (v.off !== 0 || v.len !== a.bufferLength(v.buf)) throw new Error('free() takes a whole buffer from alloc(), not a view into one');
      a.free(v.buf);
    },
    setPrecision: (p) => a.setMathMode(p),
    decode: typeof a.graphBegin !== 'function' ? undefined : {
      slots: (rows, positions) => a.decodeSlots(rows, positions),
      freeSlots: (s) => a.freeDecodeSlots(s),
      setSlots: (s, pos, ids, V) => a.setDecodeSlots(s, pos, ids, V),
      embed: (out, s, wte, wpe, B, C, V, P) => a.decodeEmbed(dv(out), s, dv(wte), dv(wpe), B, C, V, P),
      append: (dst, dsb, dsr, src, ssb, s, B, width) => a.decodeAppend(dv(dst), dsb, dsr, dv(src), ssb, s, B, width),
      graphsOn: () => a.graphStats().enabled,
      begin: () => a.graphBegin(),
      end: (keep) => a.graphEnd(keep),
      launch: (g) => a.graphLaunch(g),
      free: (g) => a.graphFree(g),
    },
  };
}

let cpuBackend: Backend | null = null;
let cudaBackend: Backend | null = null;

/** The backend of a device ('cpu' or 'cuda'); 'cuda' throws a clear Error where it is not available. */
export function backendOf(device: unknown = 'cpu'): Backend {
  if (device === 'cpu') return (cpuBackend ??= makeCpu());
  if (device === 'cuda') return (cudaBackend ??= makeCuda());
  throw rangeError("'cpu' or 'cuda'", 'device', device);
}

/**
 * Checks a precision option ('fp32' default, or 'bf16'). On cuda 'bf16' means bf16 activations and tensor-core
 * products; on the CPU the matrix products read a bf16 copy of the weights (half the bytes a decoded token
 * streams) and, where the processor has AVX512-BF16, products of more than 8 rows run in bf16 arithmetic;
 * sums, weights and gradients stay fp32.
 */
export function checkPrecision(p: unknown): Precision {
  if (p === undefined || p === 'fp32') return 'fp32';
  if (p === 'bf16') return 'bf16';
  throw rangeError("'fp32' or 'bf16'", 'precision', p);
}
