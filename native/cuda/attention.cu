// Fused causal (optionally banded) multi-head attention, as native/cpu/attention.cpp. Nothing of size
// (Tq, Tk) is stored; the forward keeps one logsumexp per row, the backward recomputes the weights from it.
//
//   row i (absolute position p = q_pos0 + i) sees key j when  j <= p  and, with window w > 0,  j > p - w
//   S_ij = scale·q_i·k_j (scale = 1/√HS),  P = softmax_j(S),  lse_i = log Σ_j exp(S_ij)
//   dropout: m_ij = [dropout_uniform(seed, ((b·NH+h)·Tq+i)·Tk+j) >= p_drop],  keep = 1/(1-p_drop)
//   out_i = Σ_j P_ij·m_ij·keep·v_j
// Backward:
//   D_i = dout_i·out_i,  dP_ij = dout_i·v_j,  dS_ij = P_ij·(dP_ij·m_ij·keep − D_i)
//   dq_i = scale·Σ_j dS_ij·k_j            dk_j = scale·Σ_i dS_ij·q_i            dv_j = Σ_i P_ij·m_ij·keep·dout_i
//   all three written (=); keys that no query sees get dk = dv = 0, like the CPU.
//
// Launch shapes (all kernels: one warp per row, 4 warps = 128 threads per block; lane l holds elements
// d = l, l+32, ..., of a head row, so HS <= 256 = 8 per lane):
//   attention_forward_kernel  warp per (b, h, query i): loops over its keys with an online softmax
//                             (running max m, running sum l; out = acc / l; lse = m + log l)
//   attention_dq_kernel       warp per (b, h, query i): D_i (stored for the next kernel) and dq_i
//   attention_dkv_kernel      warp per (b, h, key j): loops over the queries that see key j, writes dk_j, dv_j
// Each dot product is a warp reduction (warp_sum). Simple and deterministic (no atomics); not fast.
#include <cfloat>

#include "cuda/device.cuh"
#include "cuda/kernels.h"
#include "cuda/rng.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kPer = static_cast<int>(kMaxHeadSize / 32);  // elements per lane

struct Dims {  // kernel-side copy of AttnDims plus derived constants
  int64_t B, Tq, Tk, NH, HS, q_pos0, window;
  float dropout, keep, scale;
  uint64_t seed;
  int64_t qsb, qst, ksb, kst, vsb, vst, osb, ost;
};

template <typename T>
__device__ __forceinline__ void load_row(float (&r)[kPer], const T* p, int64_t HS, int lane) {
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int64_t d = lane + 32 * e;
    r[e] = d < HS ? to_f(p[d]) : 0.0f;
  }
}

template <typename T>
__device__ __forceinline__ float dot_row(const float (&a)[kPer], const T* p, int64_t HS, int lane) {
  float s = 0.0f;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int64_t d = lane + 32 * e;
    if (d < HS) s += a[e] * to_f(p[d]);
  }
  return warp_sum(s);
}

// keys of query row i: [lo, hi]
__device__ __forceinline__ void key_range(const Dims& s, int64_t i, int64_t* lo, int64_t* hi) {
  const int64_t p = s.q_pos0 + i;
  *hi = p < s.Tk - 1 ? p : s.Tk - 1;
  *lo = (s.window > 0 && p - s.window + 1 > 0) ? p - s.window + 1 : 0;
}

// queries that see key j: [lo, hi] (empty when lo > hi)
__device__ __forceinline__ void query_range(const Dims& s, int64_t j, int64_t* lo, int64_t* hi) {
  // p = q_pos0 + i >= j  and, with a window, p <= j + window - 1
  *lo = j - s.q_pos0 > 0 ? j - s.q_pos0 : 0;
  *hi = s.Tq - 1;
  if (s.window > 0) {
    const int64_t h = j + s.window - 1 - s.q_pos0;
    if (h < *hi) *hi = h;
  }
}

// m_ij·keep (1 without dropout)
__device__ __forceinline__ float drop_factor(const Dims& s, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (s.dropout <= 0.0f) return 1.0f;
  return dropout_uniform(s.seed, attn_drop_index(s.NH, s.Tq, s.Tk, b, h, i, j)) >= s.dropout ? s.keep : 0.0f;
}

template <typename T>
__global__ void attention_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, Dims s) {
  const int64_t w = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= s.B * s.NH * s.Tq) return;
  const int64_t i = w % s.Tq, h = (w / s.Tq) % s.NH, b = w / (s.Tq * s.NH);
  const T* kb = k + b * s.ksb + h * s.HS;
  const T* vb = v + b * s.vsb + h * s.HS;
  float qr[kPer], acc[kPer];
  load_row(qr, q + b * s.qsb + i * s.qst + h * s.HS, s.HS, lane);
#pragma unroll
  for (int e = 0; e < kPer; ++e) acc[e] = 0.0f;
  int64_t lo, hi;
  key_range(s, i, &lo, &hi);
  float m = -FLT_MAX, l = 0.0f;
  for (int64_t j = lo; j <= hi; ++j) {
    const float sij = s.scale * dot_row(qr, kb + j * s.kst, s.HS, lane);
    const float mn = fmaxf(m, sij);
    const float corr = expf(m - mn);  // rescales what was accumulated under the old max
    const float pe = expf(sij - mn);
    l = l * corr + pe;
    const float wgt = pe * drop_factor(s, b, h, i, j);
    const T* vj = vb + j * s.vst;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const int64_t d = lane + 32 * e;
      acc[e] = acc[e] * corr + (d < s.HS ? wgt * to_f(vj[d]) : 0.0f);
    }
    m = mn;
  }
  // every row sees at least key p (checked on the host: q_pos0 + Tq <= Tk), so l >= 1
  const float inv = 1.0f / l;
  T* o = out + b * s.osb + i * s.ost + h * s.HS;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int64_t d = lane + 32 * e;
    if (d < s.HS) o[d] = from_f<T>(acc[e] * inv);
  }
  if (lse && lane == 0) lse[(b * s.NH + h) * s.Tq + i] = m + logf(l);
}

// dq (strides of q) and D_i = dout_i·out_i into Dbuf (B, NH, Tq)
template <typename T>
__global__ void attention_dq_kernel(T* dq, float* Dbuf, const T* dout, const T* q, const T* k, const T* v,
                                    const T* out, const float* lse, Dims s) {
  const int64_t w = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= s.B * s.NH * s.Tq) return;
  const int64_t i = w % s.Tq, h = (w / s.Tq) % s.NH, b = w / (s.Tq * s.NH);
  const int64_t row = (b * s.NH + h) * s.Tq + i;
  float qr[kPer], dor[kPer], acc[kPer];
  load_row(qr, q + b * s.qsb + i * s.qst + h * s.HS, s.HS, lane);
  load_row(dor, dout + b * s.osb + i * s.ost + h * s.HS, s.HS, lane);
  const float D = dot_row(dor, out + b * s.osb + i * s.ost + h * s.HS, s.HS, lane);
  if (lane == 0) Dbuf[row] = D;
  const float L = lse[row];
#pragma unroll
  for (int e = 0; e < kPer; ++e) acc[e] = 0.0f;
  const T* kb = k + b * s.ksb + h * s.HS;
  const T* vb = v + b * s.vsb + h * s.HS;
  int64_t lo, hi;
  key_range(s, i, &lo, &hi);
  for (int64_t j = lo; j <= hi; ++j) {
    const T* kj = kb + j * s.kst;
    const float P = expf(s.scale * dot_row(qr, kj, s.HS, lane) - L);
    const float dP = dot_row(dor, vb + j * s.vst, s.HS, lane);
    const float dS = P * (dP * drop_factor(s, b, h, i, j) - D);
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < s.HS) acc[e] += dS * to_f(kj[d]);
    }
  }
  T* dqr = dq + b * s.qsb + i * s.qst + h * s.HS;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int64_t d = lane + 32 * e;
    if (d < s.HS) dqr[d] = from_f<T>(s.scale * acc[e]);
  }
}

// dk (strides of k), dv (strides of v); needs Dbuf from attention_dq_kernel
template <typename T>
__global__ void attention_dkv_kernel(T* dk, T* dv, const float* Dbuf, const T* dout, const T* q, const T* k,
                                     const T* v, const float* lse, Dims s) {
  const int64_t w = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= s.B * s.NH * s.Tk) return;
  const int64_t j = w % s.Tk, h = (w / s.Tk) % s.NH, b = w / (s.Tk * s.NH);
  float kr[kPer], vr[kPer], dka[kPer], dva[kPer];
  load_row(kr, k + b * s.ksb + j * s.kst + h * s.HS, s.HS, lane);
  load_row(vr, v + b * s.vsb + j * s.vst + h * s.HS, s.HS, lane);
#pragma unroll
  for (int e = 0; e < kPer; ++e) dka[e] = dva[e] = 0.0f;
  int64_t lo, hi;
  query_range(s, j, &lo, &hi);
  for (int64_t i = lo; i <= hi; ++i) {
    const int64_t row = (b * s.NH + h) * s.Tq + i;
    const T* qi = q + b * s.qsb + i * s.qst + h * s.HS;
    const T* doi = dout + b * s.osb + i * s.ost + h * s.HS;
    const float P = expf(s.scale * dot_row(kr, qi, s.HS, lane) - lse[row]);
    const float dP = dot_row(vr, doi, s.HS, lane);
    const float f = drop_factor(s, b, h, i, j);
    const float dS = P * (dP * f - Dbuf[row]);
    const float Pd = P * f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < s.HS) {
        dka[e] += dS * to_f(qi[d]);
        dva[e] += Pd * to_f(doi[d]);
      }
    }
  }
  T* dkr = dk + b * s.ksb + j * s.kst + h * s.HS;
  T* dvr = dv + b * s.vsb + j * s.vst + h * s.HS;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int64_t d = lane + 32 * e;
    if (d < s.HS) {
      dkr[d] = from_f<T>(s.scale * dka[e]);
      dvr[d] = from_f<T>(dva[e]);
    }
  }
}

Dims make_dims(const AttnDims& d) {
  Dims s;
  s.B = d.B; s.Tq = d.Tq; s.Tk = d.Tk; s.NH = d.NH; s.HS = d.HS; s.q_pos0 = d.q_pos0; s.window = d.window;
  s.dropout = d.dropout;
  s.keep = d.dropout > 0.0f ? 1.0f / (1.0f - d.dropout) : 1.0f;
  s.scale = 1.0f / sqrtf(static_cast<float>(d.HS));
  s.seed = d.seed;
  s.qsb = d.q[0]; s.qst = d.q[1]; s.ksb = d.k[0]; s.kst = d.k[1];
  s.vsb = d.v[0]; s.vst = d.v[1]; s.osb = d.o[0]; s.ost = d.o[1];
  return s;
}

unsigned warp_blocks(int64_t warps) { return static_cast<unsigned>((warps + kWarps - 1) / kWarps); }

}  // namespace

namespace {

template <typename T>
void attn_fwd(const Stream& st, void* out, float* lse, const void* q, const void* k, const void* v, const Dims& s) {
  attention_forward_kernel<T><<<warp_blocks(s.B * s.NH * s.Tq), 32 * kWarps, 0, st.s>>>(
      static_cast<T*>(out), lse, static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), s);
  GN_LAUNCHED(st, "attention_forward_kernel");
}

template <typename T>
void attn_bwd(const Stream& st, void* dq, void* dk, void* dv, const void* dout, const void* q, const void* k,
              const void* v, const void* out, const float* lse, float* Dscratch, const Dims& s) {
  attention_dq_kernel<T><<<warp_blocks(s.B * s.NH * s.Tq), 32 * kWarps, 0, st.s>>>(
      static_cast<T*>(dq), Dscratch, static_cast<const T*>(dout), static_cast<const T*>(q), static_cast<const T*>(k),
      static_cast<const T*>(v), static_cast<const T*>(out), lse, s);
  GN_LAUNCHED(st, "attention_dq_kernel");
  attention_dkv_kernel<T><<<warp_blocks(s.B * s.NH * s.Tk), 32 * kWarps, 0, st.s>>>(
      static_cast<T*>(dk), static_cast<T*>(dv), Dscratch, static_cast<const T*>(dout), static_cast<const T*>(q),
      static_cast<const T*>(k), static_cast<const T*>(v), lse, s);
  GN_LAUNCHED(st, "attention_dkv_kernel");
}

}  // namespace

void attention_forward(const Stream& st, DType dt, void* out, float* lse, const void* q, const void* k,
                       const void* v, const AttnDims& d) {
  const Dims s = make_dims(d);
  if (dt == kBF16) attn_fwd<bf16>(st, out, lse, q, k, v, s);
  else attn_fwd<float>(st, out, lse, q, k, v, s);
}

void attention_backward(const Stream& st, DType dt, void* dq, void* dk, void* dv, const void* dout, const void* q,
                        const void* k, const void* v, const void* out, const float* lse, float* Dscratch,
                        const AttnDims& d) {
  const Dims s = make_dims(d);
  if (dt == kBF16) attn_bwd<bf16>(st, dq, dk, dv, dout, q, k, v, out, lse, Dscratch, s);
  else attn_bwd<float>(st, dq, dk, dv, dout, q, k, v, out, lse, Dscratch, s);
}

}  // namespace cuda
}  // namespace gn
