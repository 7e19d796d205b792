// The row kernels of the cuBLAS attention path (attention_gemm.cc): the scores S = scale·Q·Kᵀ of one batch
// row b and a chunk of heads are in a scratch matrix (heads, Tq, Tk), row-major; these kernels turn them into
// probabilities in place and back-propagate through the softmax. The mask and the dropout decisions are the
// fused kernels' (attention.cu) and the CPU's:
//   row i (position p = q_pos0 + i) sees key j when  j <= p  and, with window w > 0,  j > p - w
//   P_ij = exp(S_ij − lse_i) inside the mask, 0 outside;   lse_i = log Σ_j exp(S_ij)
//   dropout: f_ij = keep·[dropout_uniform(seed, ((b·NH+h)·Tq+i)·Tk+j) >= p_drop] (f = 1 without dropout)
// attn_probs:    S → P (or, with `dropped`, A = P∘f, what multiplies V), written in the activation dtype;
//                lse from lse_in or computed (lse_out)
// attn_probs_bw: (P, dA = dout·Vᵀ) → dS = P∘(dA∘f − D) with D_i = Σ_j P_ij·dA_ij·f_ij, and A = P∘f (what
//                dV = Aᵀ·dout needs), both in the activation dtype
// Launch shape: one warp per row (h, i), 8 rows per 256-thread block; lane l takes j = l, l+32, …
#include <cfloat>

#include "cuda/device.cuh"
#include "cuda/kernels.h"
#include "cuda/rng.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kRows = 8;

struct RowDims {
  int64_t b, h0, heads, NH, Tq, Tk, q_pos0, window;
  float dropout, keep;
  uint64_t seed;
};

RowDims row_dims(const AttnRows& r) {
  RowDims s;
  s.b = r.b; s.h0 = r.h0; s.heads = r.heads; s.NH = r.NH; s.Tq = r.Tq; s.Tk = r.Tk;
  s.q_pos0 = r.q_pos0; s.window = r.window; s.dropout = r.dropout;
  s.keep = r.dropout > 0.0f ? 1.0f / (1.0f - r.dropout) : 1.0f;
  s.seed = r.seed;
  return s;
}

__device__ __forceinline__ void keys_of(const RowDims& s, int64_t i, int64_t* lo, int64_t* hi) {
  const int64_t p = s.q_pos0 + i;
  *hi = p < s.Tk - 1 ? p : s.Tk - 1;
  *lo = (s.window > 0 && p - s.window + 1 > 0) ? p - s.window + 1 : 0;
}

__device__ __forceinline__ float drop_f(const RowDims& s, int64_t h, int64_t i, int64_t j) {
  if (s.dropout <= 0.0f) return 1.0f;
  return dropout_uniform(s.seed, attn_drop_index(s.NH, s.Tq, s.Tk, s.b, h, i, j)) >= s.dropout ? s.keep : 0.0f;
}

// P (or A) of row r in dtype T into out (may be S itself when T is float: each element is read, then written by
// the same lane, after the warp reductions that end the reading passes)
template <typename T>
__global__ void attn_probs_kernel(const float* S, T* out, float* lse_out, const float* lse_in, RowDims s,
                                  bool dropped) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRows + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= s.heads * s.Tq) return;  // whole warps leave together
  const int64_t i = r % s.Tq, h = s.h0 + r / s.Tq;
  const float* x = S + r * s.Tk;
  T* y = out + r * s.Tk;
  int64_t lo, hi;
  keys_of(s, i, &lo, &hi);
  const int64_t lrow = (s.b * s.NH + h) * s.Tq + i;
  float L;
  if (lse_in) {
    L = lse_in[lrow];
  } else {
    float m = -FLT_MAX;
    for (int64_t j = lo + lane; j <= hi; j += 32) m = fmaxf(m, x[j]);
    m = warp_max(m);
    float sum = 0.0f;
    for (int64_t j = lo + lane; j <= hi; j += 32) sum += expf(x[j] - m);
    L = m + logf(warp_sum(sum));
    if (lse_out && lane == 0) lse_out[lrow] = L;
  }
  for (int64_t j = lane; j < s.Tk; j += 32) {
    float p = 0.0f;
    if (j >= lo && j <= hi) {
      p = expf(x[j] - L);
      if (dropped) p *= drop_f(s, h, i, j);
    }
    y[j] = from_f<T>(p);
  }
}

// dS and A of row r in dtype T (A_out/dS_out may be P/dA themselves when T is float, as above)
template <typename T>
__global__ void attn_probs_bw_kernel(const float* P, const float* dA, T* A_out, T* dS_out, RowDims s) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRows + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= s.heads * s.Tq) return;
  const int64_t i = r % s.Tq, h = s.h0 + r / s.Tq;
  const float* p = P + r * s.Tk;
  const float* g = dA + r * s.Tk;
  T* a = A_out + r * s.Tk;
  T* ds = dS_out + r * s.Tk;
  int64_t lo, hi;
  keys_of(s, i, &lo, &hi);
  float D = 0.0f;
  for (int64_t j = lo + lane; j <= hi; j += 32) D += p[j] * g[j] * drop_f(s, h, i, j);
  D = warp_sum(D);
  for (int64_t j = lane; j < s.Tk; j += 32) {
    if (j >= lo && j <= hi) {
      const float f = drop_f(s, h, i, j), pj = p[j];
      ds[j] = from_f<T>(pj * (g[j] * f - D));
      a[j] = from_f<T>(pj * f);
    } else {
      ds[j] = from_f<T>(0.0f);
      a[j] = from_f<T>(0.0f);
    }
  }
}

unsigned row_blocks(const RowDims& s) { return static_cast<unsigned>((s.heads * s.Tq + kRows - 1) / kRows); }

}  // namespace

void attn_probs(const Stream& st, float* S, float* lse_out, const float* lse_in, const AttnRows& r, bool dropped,
                DType dt, void* out) {
  const RowDims s = row_dims(r);
  if (s.heads * s.Tq == 0) return;
  if (dt == kBF16)
    attn_probs_kernel<bf16><<<row_blocks(s), 32 * kRows, 0, st.s>>>(S, static_cast<bf16*>(out), lse_out, lse_in, s,
                                                                    dropped);
  else
    attn_probs_kernel<float><<<row_blocks(s), 32 * kRows, 0, st.s>>>(S, static_cast<float*>(out), lse_out, lse_in, s,
                                                                     dropped);
  GN_LAUNCHED(st, "attn_probs_kernel");
}

void attn_probs_backward(const Stream& st, const float* P, const float* dA, const AttnRows& r, DType dt,
                         void* A_out, void* dS_out) {
  const RowDims s = row_dims(r);
  if (s.heads * s.Tq == 0) return;
  if (dt == kBF16)
    attn_probs_bw_kernel<bf16><<<row_blocks(s), 32 * kRows, 0, st.s>>>(P, dA, static_cast<bf16*>(A_out),
                                                                       static_cast<bf16*>(dS_out), s);
  else
    attn_probs_bw_kernel<float><<<row_blocks(s), 32 * kRows, 0, st.s>>>(P, dA, static_cast<float*>(A_out),
                                                                        static_cast<float*>(dS_out), s);
  GN_LAUNCHED(st, "attn_probs_bw_kernel");
}

}  // namespace cuda
}  // namespace gn
