/**
 * Loads the native addon (node-gyp-build: a prebuild when present, else build/Release) and declares its
 * types. The only file that touches the addon; everything else imports `native` from here.
 */
import * as path from 'path';

/** Batch and time strides, in floats, of one tensor seen by the attention kernel. */
export type Strides = [batchStride: number, timeStride: number];

/** Shape and strides for the fused attention kernel. */
export interface AttentionShape {
  B: number;
  Tq: number;
  Tk: number;
  NH: number;
  HS: number;
  qPos0: number;
  window: number;
  dropout: number;
  seed: number;
  q: Strides;
  k: Strides;
  v: Strides;
  o: Strides;
  /**
   * cuda only (the KV decoder's steady state): decode slots from the backend's `decode.slots`. The one new query
   * per row (Tq = 1) is at the position they hold on the device; Tk is their number of positions (the cache's
   * capacity), qPos0 is not used; no lse, no dropout.
   */
  slots?: unknown;
}

type F32 = Float32Array;
type F64 = Float64Array;
type I32 = Int32Array;
/** bf16 values as their upper 16 bits (a bf16 model's weight copy on the CPU). */
type U16 = Uint16Array;

/** Double-precision reference kernels (the oracle for tests). */
export interface RefAddon {
  gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: F64, lda: number,
    B: F64, ldb: number, C: F64, ldc: number, accumulate: boolean, bias: F64 | null): void;
  layernormForward(out: F64, inp: F64, w: F64, b: F64, N: number, C: number, eps: number): void;
  layernormBackward(dinp: F64, dw: F64, db: F64, dout: F64, inp: F64, w: F64, N: number, C: number, eps: number): void;
  geluForward(out: F64, inp: F64): void;
  geluBackward(dinp: F64, inp: F64, dout: F64): void;
  embeddingForward(out: F64, ids: I32, wte: F64, wpe: F64, B: number, T: number, C: number, pos0: number): void;
  embeddingBackward(dwte: F64, dwpe: F64, dout: F64, ids: I32, B: number, T: number, C: number, pos0: number): void;
  softmaxXentForward(losses: F64, logits: F64, targets: I32, N: number, V: number, ignoreIndex: number): number;
  softmaxXentBackward(dlogits: F64, logits: F64, targets: I32, N: number, V: number, ignoreIndex: number,
    scale: number): void;
  attentionForward(out: F64, q: F64, k: F64, v: F64, B: number, Tq: number, Tk: number, NH: number, HS: number,
    qPos0: number, window: number, dropout: number, seed: number): void;
  attentionBackward(dq: F64, dk: F64, dv: F64, dout: F64, q: F64, k: F64, v: F64, B: number, Tq: number,
    Tk: number, NH: number, HS: number, qPos0: number, window: number, dropout: number, seed: number): void;
  adamwStep(p: F64, g: F64, m: F64, v: F64, lr: number, b1: number, b2: number, eps: number, wd: number,
    step: number, gradScale: number): void;
  dropoutUniform(seed: number, index: number): number;
}

/** The CPU addon's functions. Shapes are checked again natively; a mismatch throws RangeError. */
export interface NativeAddon {
  abiVersion: number;
  /** B may be bf16 (a Uint16Array from toBf16): widened exactly as it is read, products and sums in fp32. */
  gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: F32, lda: number,
    B: F32 | U16, ldb: number, C: F32, ldc: number, accumulate: boolean, bias: F32 | null): void;
  /** out = inp·weight + bias; with geluOut, also geluOut = GELU(out) (an MLP's first layer and its activation). */
  linearForward(out: F32, inp: F32, weight: F32 | U16, bias: F32 | null, N: number, C: number, OC: number,
    geluOut?: F32 | null): void;
  /**
   * dinp = dout·weightᵀ, dweight += inpᵀ·dout, dbias += Σ dout. With geluPre (the GELU input that produced `inp`),
   * dinp is the gradient at geluPre instead: dout·weightᵀ ∘ GELU'(geluPre).
   */
  linearBackward(dinp: F32 | null, dweight: F32 | null, dbias: F32 | null, dout: F32, inp: F32, weight: F32 | U16,
    N: number, C: number, OC: number, geluPre?: F32 | null): void;
  /** With addA and addB, inp = addA + addB is written first and then normalised (the residual stream's add, in the same pass). */
  layernormForward(out: F32, mean: F32 | null, rstd: F32 | null, inp: F32, weight: F32, bias: F32, N: number,
    C: number, eps: number, addA?: F32 | null, addB?: F32 | null): void;
  /** dinp = the input gradient (or, with accumulate, dinp += it: a residual stream's gradient); dweight, dbias += theirs. */
  layernormBackward(dinp: F32 | null, dweight: F32, dbias: F32, dout: F32, inp: F32, weight: F32, mean: F32,
    rstd: F32, N: number, C: number, accumulate?: boolean): void;
  geluForward(out: F32, inp: F32): void;
  geluBackward(dinp: F32, inp: F32, dout: F32): void;
  add(out: F32, a: F32, b: F32): void;
  scale(a: F32, s: number): void;
  dropout(out: F32, inp: F32, p: number, seed: number, offset: number): void;
  sumsq(a: F32): number;
  embeddingForward(out: F32, ids: I32, wte: F32, wpe: F32, B: number, T: number, C: number, V: number, P: number,
    pos0: number): void;
  embeddingBackward(dwte: F32 | null, dwpe: F32 | null, dout: F32, ids: I32, B: number, T: number, C: number,
    V: number, P: number, pos0: number): void;
  /**
   * ld: row stride of logits (default V; larger for a padded vocabulary). With dlogits (which may be logits
   * itself), the same pass also writes softmaxXentBackward's dlogits with `scale` (a training step's loss and
   * gradient in one pass over the logits).
   */
  softmaxXentForward(losses: F32, lse: F32 | null, logits: F32, targets: I32, N: number, V: number,
    ignoreIndex: number, ld?: number, dlogits?: F32 | null, scale?: number): number;
  softmaxXentBackward(dlogits: F32, logits: F32, lse: F32, targets: I32, N: number, V: number, ignoreIndex: number,
    scale: number, ld?: number): void;
  attentionForward(out: F32, lse: F32 | null, q: F32, k: F32, v: F32, shape: AttentionShape): void;
  attentionBackward(dq: F32, dk: F32, dv: F32, dout: F32, q: F32, k: F32, v: F32, out: F32, lse: F32,
    shape: AttentionShape): void;
  /** param16 (optional): also receives the new weights rounded to bf16 (a bf16 model's weight copy). */
  adamwStep(param: F32, grad: F32, m: F32, v: F32, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, step: number, gradScale: number, param16?: U16 | null): void;
  threads(): number;
  setThreads(n: number): void;
  gemmIsa(): string;
  /** dst ← src rounded to bf16 (to nearest, ties to even), as Uint16 bit patterns; same lengths. */
  toBf16(dst: U16, src: F32): void;
  /**
   * 'bf16': products of more than 8 rows round both operands to bf16 and sum in fp32 (AVX512-BF16 dot
   * products), where the processor has them; few-row products are unaffected. Returns the mode in effect
   * ('fp32' where the processor lacks bf16 arithmetic). Process-wide (all threads and worker threads share
   * it): a bf16 model sets it for each of its passes and puts the previous mode back after, so direct calls
   * of gemm, linearForward/Backward and attention run in fp32 unless set here.
   */
  setMathMode(mode: 'fp32' | 'bf16'): 'fp32' | 'bf16';
  mathMode(): 'fp32' | 'bf16';
  ref: RefAddon;
  // ---- byte-level BPE tokenizer (native/tokenizer); the handle owns the tables and the piece memo ----
  /** classRuns: [first, last, class] code-point runs; merges: [left, right, merged] in rank order. */
  tokenizerCreate(classRuns: I32, byteToId: I32, merges: I32, tokenBytes: Uint8Array, tokenOffsets: I32): TokenizerHandle;
  tokenizerSetTokens(handle: TokenizerHandle, tokenBytes: Uint8Array, tokenOffsets: I32): void;
  /** Ordinary text (no special tokens) → ids. */
  tokenizerEncode(handle: TokenizerHandle, text: string): Uint32Array;
  /** Ids → bytes; an id out of range throws RangeError. */
  tokenizerDecode(handle: TokenizerHandle, ids: Uint32Array | I32): Uint8Array;
  /** Distinct pre-tokenised pieces of text with their counts (BPE training). */
  tokenizerCountPieces(handle: TokenizerHandle, text: string): { bytes: Uint8Array; offsets: I32; counts: I32 };
}

/** Opaque native tokenizer state (a JS External owning a C++ BpeTokenizer). */
export type TokenizerHandle = { readonly __tokenizerHandle: unique symbol };

function load(): NativeAddon {
  const root = path.join(__dirname, '..');
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require('node-gyp-build')(root) as NativeAddon;
  } catch (err) {
    const e = new Error(
      `gpt-native: the native addon could not be loaded from ${root} (${(err as Error).message}). ` +
        'Run `npm install` (or `npm run build:native`) in the package folder to build it; a C++17 compiler ' +
        'and Python 3 are needed for node-gyp.',
    );
    (e as Error & { cause?: unknown }).cause = err;
    throw e;
  }
}

/** The loaded addon. */
export const native: NativeAddon = load();
