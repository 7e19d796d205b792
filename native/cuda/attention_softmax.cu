// The row kernels of the cuBLAS attention path (attention_gemm.cc): the scores S = scale·Q·Kᵀ of a group of
// (batch row, head) pairs u = b·NH + h = u0 … u0+pairs-1 and a chunk of queries i0 … i0+rows-1 against keys
// k0 … k0+cols-1 (the keys those queries can see) are in a scratch of one (rows, cols) matrix a pair, rows ld
// elements apart and pairs pair_stride elements apart (both padded for 16-byte aligned GEMM operands), in the
// activation dtype (fp32, or
// bf16 as llm.c keeps them, which halves the traffic of these memory-bound passes); these kernels turn them
// into probabilities in place and back-propagate through the softmax in place, computing in fp32. Indices i
// and j below are absolute (query i of Tq, key j of Tk). The mask and the dropout decisions are the fused
// kernels' (attention.cu) and the CPU's:
//   row i (position p = q_pos0 + i) sees key j when  j <= p  and, with window w > 0,  j > p - w
//   P_ij = exp(S_ij − lse_i) inside the mask, 0 outside;   lse_i = log Σ_j exp(S_ij)
//   dropout: f_ij = keep·[dropout_uniform(seed, ((b·NH+h)·Tq+i)·Tk+j) >= p_drop] (f = 1 without dropout)
// attn_probs:    S → P (or, with `dropped`, A = P∘f, what multiplies V), in place; lse from lse_in or computed
//                (lse_out)
// attn_probs_bw: (S, dA = dout·Vᵀ, the forward's lse) → dS = P∘(dA∘f − D) over dA, with P from S and lse and
//                D_i = Σ_j P_ij·dA_ij·f_ij, and A = P∘f over S (what dV = Aᵀ·dout needs)
// acc_to_strided: dst[b, t, h, d] = acc[u - u0, t, d], converted to the activation dtype (dK, dV accumulated in
//                fp32 over the query chunks, written back into their strided tensors)
// attn_pointers: the per-pair matrix pointers of cublasGemmBatchedEx, written on the device (no host sync)
// Launch shape of the row kernels: one warp per row (u, i), 8 rows per 256-thread block; lane l takes columns
// l, l+32, …
#include <cfloat>

#include "cuda/device.cuh"
#include "cuda/kernels.h"
#include "cuda/rng.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kRows = 8;

struct RowDims {
  int64_t u0, pairs, NH, Tq, Tk, q_pos0, window;
  int64_t i0, rows, k0, cols;  // the chunk: queries i0 … i0+rows-1, scratch columns = keys k0 … k0+cols-1
  int64_t ld, pair_stride;     // elements between scratch rows, and between pairs
  float dropout, keep;
  uint64_t seed;
};

RowDims row_dims(const AttnRows& r) {
  RowDims s;
  s.u0 = r.u0; s.pairs = r.pairs; s.NH = r.NH; s.Tq = r.Tq; s.Tk = r.Tk;
  s.q_pos0 = r.q_pos0; s.window = r.window; s.dropout = r.dropout;
  s.i0 = r.i0; s.rows = r.rows; s.k0 = r.k0; s.cols = r.cols; s.ld = r.ld; s.pair_stride = r.pair_stride;
  s.keep = r.dropout > 0.0f ? 1.0f / (1.0f - r.dropout) : 1.0f;
  s.seed = r.seed;
  return s;
}

// the keys row i sees, as scratch columns [lo, hi] (within [0, cols): the chunk was cut around them)
__device__ __forceinline__ void keys_of(const RowDims& s, int64_t i, int64_t* lo, int64_t* hi) {
  const int64_t p = s.q_pos0 + i;
  *hi = (p < s.Tk - 1 ? p : s.Tk - 1) - s.k0;
  *lo = ((s.window > 0 && p - s.window + 1 > 0) ? p - s.window + 1 : 0) - s.k0;
}

// (b, h): the row's pair; j: scratch column (key k0 + j)
__device__ __forceinline__ float drop_f(const RowDims& s, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (s.dropout <= 0.0f) return 1.0f;
  return dropout_uniform(s.seed, attn_drop_index(s.NH, s.Tq, s.Tk, b, h, i, s.k0 + j)) >= s.dropout ? s.keep : 0.0f;
}

// P (or A) of row r over its scores, in place: each element is read, then written by the same lane, after the
// warp reductions that end the reading passes
template <typename T>
__global__ void attn_probs_kernel(T* S, float* lse_out, const float* lse_in, RowDims s, bool dropped) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRows + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= s.pairs * s.rows) return;  // whole warps leave together
  const int64_t g = r / s.rows, i = s.i0 + r % s.rows, u = s.u0 + g, b = u / s.NH, h = u % s.NH;
  T* x = S + g * s.pair_stride + (i - s.i0) * s.ld;
  int64_t lo, hi;
  keys_of(s, i, &lo, &hi);
  const int64_t lrow = u * s.Tq + i;
  float L;
  if (lse_in) {
    L = lse_in[lrow];
  } else {
    float m = -FLT_MAX;
    for (int64_t j = lo + lane; j <= hi; j += 32) m = fmaxf(m, to_f(x[j]));
    m = warp_max(m);
    float sum = 0.0f;
    for (int64_t j = lo + lane; j <= hi; j += 32) sum += exp_ftz(to_f(x[j]) - m);
    L = m + logf(warp_sum(sum));
    if (lse_out && lane == 0) lse_out[lrow] = L;
  }
  for (int64_t j = lane; j < s.cols; j += 32) {
    float p = 0.0f;
    if (j >= lo && j <= hi) {
      p = exp_ftz(to_f(x[j]) - L);
      if (dropped) p *= drop_f(s, b, h, i, j);
    }
    x[j] = from_f<T>(p);
  }
}

// dS over dA and A over S, row r, in place as above: P is recomputed from S and the stored lse twice (for D, then
// for the writes) rather than stored, which saves a pass over the scores
template <typename T>
__global__ void attn_probs_bw_kernel(T* S, T* dA, const float* lse, RowDims s) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRows + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= s.pairs * s.rows) return;
  const int64_t gi = r / s.rows, i = s.i0 + r % s.rows, u = s.u0 + gi, b = u / s.NH, h = u % s.NH;
  const int64_t at = gi * s.pair_stride + (i - s.i0) * s.ld;
  T* x = S + at;
  T* g = dA + at;
  int64_t lo, hi;
  keys_of(s, i, &lo, &hi);
  const float L = lse[u * s.Tq + i];
  float D = 0.0f;
  for (int64_t j = lo + lane; j <= hi; j += 32) D += exp_ftz(to_f(x[j]) - L) * to_f(g[j]) * drop_f(s, b, h, i, j);
  D = warp_sum(D);
  for (int64_t j = lane; j < s.cols; j += 32) {
    if (j >= lo && j <= hi) {
      const float f = drop_f(s, b, h, i, j), pj = exp_ftz(to_f(x[j]) - L);
      g[j] = from_f<T>(pj * (to_f(g[j]) * f - D));
      x[j] = from_f<T>(pj * f);
    } else {
      g[j] = from_f<T>(0.0f);
      x[j] = from_f<T>(0.0f);
    }
  }
}

unsigned row_blocks(const RowDims& s) { return static_cast<unsigned>((s.pairs * s.rows + kRows - 1) / kRows); }

// block (32, 8), grid (pairs, ⌈Tn/8⌉ capped): thread (x, y) of block (g, by) takes times t = by·8 + y, then
// t + 8·gridDim.y, …, of pair u0 + g, and elements d = x, x + 32, … of each (one division per row, not per
// element)
template <typename T>
__global__ void acc_to_strided_kernel(T* dst, int64_t bstride, int64_t tstride, const float* acc, int64_t ldacc,
                                      int64_t u0, int64_t NH, int64_t Tn, int64_t HS) {
  const int64_t g = blockIdx.x, u = u0 + g;
  T* base = dst + (u / NH) * bstride + (u % NH) * HS;
  for (int64_t t = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; t < Tn;
       t += static_cast<int64_t>(gridDim.y) * blockDim.y) {
    const float* src = acc + (g * Tn + t) * ldacc;
    T* out = base + t * tstride;
    for (int64_t d = threadIdx.x; d < HS; d += 32) out[d] = from_f<T>(src[d]);
  }
}

// out[a·pairs + g] = base[a] + b·bstride[a] + h·hstride[a] + g·gstride[a] (bytes), u = u0 + g = b·NH + h
__global__ void attn_pointers_kernel(void** out, AttnPtrSpecs p, int64_t u0, int64_t pairs, int64_t NH) {
  const int64_t total = p.n * pairs;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int a = static_cast<int>(idx / pairs);
    const int64_t g = idx % pairs, u = u0 + g;
    out[idx] = const_cast<char*>(p.base[a]) + (u / NH) * p.bstride[a] + (u % NH) * p.hstride[a] + g * p.gstride[a];
  }
}

}  // namespace

void attn_probs(const Stream& st, DType dt, void* S, float* lse_out, const float* lse_in, const AttnRows& r,
                bool dropped) {
  const RowDims s = row_dims(r);
  if (s.pairs * s.rows == 0) return;
  if (dt == kBF16)
    attn_probs_kernel<bf16><<<row_blocks(s), 32 * kRows, 0, st.s>>>(static_cast<bf16*>(S), lse_out, lse_in, s, dropped);
  else
    attn_probs_kernel<float><<<row_blocks(s), 32 * kRows, 0, st.s>>>(static_cast<float*>(S), lse_out, lse_in, s,
                                                                     dropped);
  GN_LAUNCHED(st, "attn_probs_kernel");
}

void attn_probs_backward(const Stream& st, DType dt, void* S, void* dA, const float* lse, const AttnRows& r) {
  const RowDims s = row_dims(r);
  if (s.pairs * s.rows == 0) return;
  if (dt == kBF16)
    attn_probs_bw_kernel<bf16><<<row_blocks(s), 32 * kRows, 0, st.s>>>(static_cast<bf16*>(S), static_cast<bf16*>(dA),
                                                                       lse, s);
  else
    attn_probs_bw_kernel<float><<<row_blocks(s), 32 * kRows, 0, st.s>>>(static_cast<float*>(S),
                                                                        static_cast<float*>(dA), lse, s);
  GN_LAUNCHED(st, "attn_probs_bw_kernel");
}

void acc_to_strided(const Stream& st, DType dt, void* dst, int64_t bstride, int64_t tstride, const float* acc,
                    int64_t ldacc, int64_t u0, int64_t pairs, int64_t NH, int64_t Tn, int64_t HS) {
  if (pairs * Tn * HS == 0) return;
  const int64_t ty = (Tn + 7) / 8;
  const dim3 grid(static_cast<unsigned>(pairs), static_cast<unsigned>(ty < 65535 ? ty : 65535));
  if (dt == kBF16)
    acc_to_strided_kernel<bf16><<<grid, dim3(32, 8), 0, st.s>>>(static_cast<bf16*>(dst), bstride, tstride, acc,
                                                                 ldacc, u0, NH, Tn, HS);
  else
    acc_to_strided_kernel<float><<<grid, dim3(32, 8), 0, st.s>>>(static_cast<float*>(dst), bstride, tstride, acc,
                                                                  ldacc, u0, NH, Tn, HS);
  GN_LAUNCHED(st, "acc_to_strided_kernel");
}

void attn_pointers(const Stream& st, void** out, const AttnPtrSpecs& p, int64_t u0, int64_t pairs, int64_t NH) {
  const int64_t n = p.n * pairs;
  if (n == 0) return;
  attn_pointers_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(out, p, u0, pairs, NH);
  GN_LAUNCHED(st, "attn_pointers_kernel");
}

}  // namespace cuda
}  // namespace gn
