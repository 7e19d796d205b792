// Causal (optionally banded) attention through cuBLAS, the path the CUDA addon takes by default (setAttention
// / GPT_NATIVE_CUDA_ATTENTION=fused selects the fused kernels of attention.cu instead). Same contract as
// native/cpu/attention.cpp. For each batch row b and chunk of heads (batched over heads, stride HS; the scores
// of a chunk fit a scratch of at most 256 MiB per matrix, or
// $GPT_NATIVE_CUDA_ATTN_SCRATCH bytes):
//   forward   S = scale·Q·Kᵀ (GEMM) → P, lse (attn_probs; with dropout A = P∘f) → out = A·V (GEMM)
//   backward  S again → P from the stored lse; dA = dout·Vᵀ (GEMM); dS = P∘(dA∘f − D), A = P∘f
//             (attn_probs_backward); dV = Aᵀ·dout, dQ = scale·dS·K, dK = scale·dSᵀ·Q (GEMMs)
// Scores, probabilities and their gradients are kept in the activation dtype (bf16 with bf16 activations, as
// llm.c does: half the traffic of the row passes), the row kernels compute in fp32. Nothing of size (Tq, Tk)
// outlives a call. Row-major matrices are handed to cuBLAS as their column-major
// transposes: Q of head h is the column-major HS×Tq matrix at q + h·HS with leading dimension q's time stride,
// and the (Tq, Tk) scratch is the column-major Tk×Tq matrix with leading dimension Tk, so
//   Sᵀ = op_T(K)·Q           gemm(T, N, m=Tk, n=Tq, k=HS)
//   outᵀ = V·Aᵀ              gemm(N, N, m=HS, n=Tq, k=Tk)
//   dAᵀ = op_T(V)·dout       gemm(T, N, m=Tk, n=Tq, k=HS)
//   dVᵀ = dout·op_T(Aᵀ)      gemm(N, T, m=HS, n=Tk, k=Tq)
//   dQᵀ = K·dSᵀ              gemm(N, N, m=HS, n=Tq, k=Tk)
//   dKᵀ = Q·op_T(dSᵀ)        gemm(N, T, m=HS, n=Tk, k=Tq)
// Deterministic as long as cuBLAS is (it is for a fixed configuration); masked entries cost full GEMM work.
#include <climits>
#include <cmath>

#include "cuda/context.h"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

struct Mat {  // a column-major operand: pointer, dtype, leading dimension, stride between heads (elements)
  const void* p;
  DType dt;
  int64_t ld, stride;
};

int cuda_type(DType dt) { return dt == kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

void bgemm(CudaAddon& a, const char* what, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, Mat A, Mat B,
           void* C, DType cdt, int64_t ldc, int64_t sc, int64_t batch) {
  GN_CHECK_RANGE(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && A.ld <= INT_MAX && B.ld <= INT_MAX && ldc <= INT_MAX,
                 what, ": dimensions beyond 2^31-1 are not supported by cuBLAS");
  const float beta = 0.0f;
  // bf16 operands run on the tensor cores with fp32 accumulation (COMPUTE_32F); fp32 ones use the math mode
  const int compute = A.dt == kBF16 ? CUBLAS_COMPUTE_32F : a.compute;
  cublasStatus_t s = a.blas.gemm_strided_batched_ex(
      a.handle, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, A.p, cuda_type(A.dt),
      static_cast<int>(A.ld), A.stride, B.p, cuda_type(B.dt), static_cast<int>(B.ld), B.stride, &beta, C,
      cuda_type(cdt), static_cast<int>(ldc), sc, static_cast<int>(batch), compute, CUBLAS_GEMM_DEFAULT);
  GN_CHECK(s == CUBLAS_STATUS_SUCCESS, "gpt-native: cuBLAS error in cublasGemmStridedBatchedEx (", what, ": m=", m,
           " n=", n, " k=", k, " lda=", A.ld, " ldb=", B.ld, " ldc=", ldc, " batch=", batch, " compute=", compute,
           ") at ", __FILE__, ":", __LINE__, ": ", cublas_status_text(a.blas, s));
  if (a.stream.sync_each) GN_CUDA(cudaStreamSynchronize(a.stream.s));
}

int64_t heads_per_chunk(const CudaAddon& a, const AttnDims& d, DType dt) {
  const int64_t per_head = d.Tq * d.Tk * dtype_bytes(dt);
  int64_t hc = a.attn_scratch / (per_head > 0 ? per_head : 1);
  if (hc < 1) hc = 1;
  return hc < d.NH ? hc : d.NH;
}

AttnRows rows(const AttnDims& d, int64_t b, int64_t h0, int64_t heads) {
  AttnRows r;
  r.b = b; r.h0 = h0; r.heads = heads; r.NH = d.NH; r.Tq = d.Tq; r.Tk = d.Tk;
  r.q_pos0 = d.q_pos0; r.window = d.window; r.dropout = d.dropout; r.seed = d.seed;
  return r;
}

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

}  // namespace

bool attention_gemm_usable(const CudaAddon& a) { return a.blas.gemm_strided_batched_ex != nullptr; }

void attention_forward_gemm(CudaAddon& a, DType dt, void* out, float* lse, const void* q, const void* k, const void* v,
                            const AttnDims& d) {
  const int64_t hc = heads_per_chunk(a, d, dt), mat = d.Tq * d.Tk, es = dtype_bytes(dt);
  void* S = a.attn.get(a.stream, align256(static_cast<size_t>(hc * mat * es)));
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  const char *qc = static_cast<const char*>(q), *kc = static_cast<const char*>(k), *vc = static_cast<const char*>(v);
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h0 = 0; h0 < d.NH; h0 += hc) {
      const int64_t nh = d.NH - h0 < hc ? d.NH - h0 : hc;
      const Mat Q{qc + (b * d.q[0] + h0 * d.HS) * es, dt, d.q[1], d.HS};
      const Mat K{kc + (b * d.k[0] + h0 * d.HS) * es, dt, d.k[1], d.HS};
      const Mat V{vc + (b * d.v[0] + h0 * d.HS) * es, dt, d.v[1], d.HS};
      bgemm(a, "attention_forward scores", CUBLAS_OP_T, CUBLAS_OP_N, d.Tk, d.Tq, d.HS, scale, K, Q, S, dt, d.Tk, mat,
            nh);
      attn_probs(a.stream, dt, S, lse, nullptr, rows(d, b, h0, nh), /*dropped=*/true);
      bgemm(a, "attention_forward values", CUBLAS_OP_N, CUBLAS_OP_N, d.HS, d.Tq, d.Tk, 1.0f, V, {S, dt, d.Tk, mat},
            static_cast<char*>(out) + (b * d.o[0] + h0 * d.HS) * es, dt, d.o[1], d.HS, nh);
    }
}

void attention_backward_gemm(CudaAddon& a, DType dt, void* dq, void* dk, void* dv, const void* dout, const void* q,
                             const void* k, const void* v, const float* lse, const AttnDims& d) {
  const int64_t hc = heads_per_chunk(a, d, dt), mat = d.Tq * d.Tk, es = dtype_bytes(dt);
  const size_t region = align256(static_cast<size_t>(hc * mat * es));
  char* base = static_cast<char*>(a.attn.get(a.stream, 2 * region));
  void* P = base;           // S, then P, then A
  void* dA = base + region;  // dA, then dS
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  auto at = [&](const void* p, int64_t off) { return static_cast<const char*>(p) + off * es; };
  auto atw = [&](void* p, int64_t off) { return static_cast<char*>(p) + off * es; };
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h0 = 0; h0 < d.NH; h0 += hc) {
      const int64_t nh = d.NH - h0 < hc ? d.NH - h0 : hc;
      const int64_t qo = b * d.q[0] + h0 * d.HS, ko = b * d.k[0] + h0 * d.HS, vo = b * d.v[0] + h0 * d.HS,
                    oo = b * d.o[0] + h0 * d.HS;
      const Mat Q{at(q, qo), dt, d.q[1], d.HS}, K{at(k, ko), dt, d.k[1], d.HS}, V{at(v, vo), dt, d.v[1], d.HS},
          dO{at(dout, oo), dt, d.o[1], d.HS};
      bgemm(a, "attention_backward scores", CUBLAS_OP_T, CUBLAS_OP_N, d.Tk, d.Tq, d.HS, scale, K, Q, P, dt, d.Tk, mat,
            nh);
      const AttnRows r = rows(d, b, h0, nh);
      attn_probs(a.stream, dt, P, nullptr, lse, r, /*dropped=*/false);
      bgemm(a, "attention_backward dA", CUBLAS_OP_T, CUBLAS_OP_N, d.Tk, d.Tq, d.HS, 1.0f, V, dO, dA, dt, d.Tk, mat, nh);
      attn_probs_backward(a.stream, dt, P, dA, r);
      const Mat A{P, dt, d.Tk, mat}, dS{dA, dt, d.Tk, mat};
      bgemm(a, "attention_backward dv", CUBLAS_OP_N, CUBLAS_OP_T, d.HS, d.Tk, d.Tq, 1.0f, dO, A, atw(dv, vo), dt, d.v[1],
            d.HS, nh);
      bgemm(a, "attention_backward dq", CUBLAS_OP_N, CUBLAS_OP_N, d.HS, d.Tq, d.Tk, scale, K, dS, atw(dq, qo), dt,
            d.q[1], d.HS, nh);
      bgemm(a, "attention_backward dk", CUBLAS_OP_N, CUBLAS_OP_T, d.HS, d.Tk, d.Tq, scale, Q, dS, atw(dk, ko), dt,
            d.k[1], d.HS, nh);
    }
}

}  // namespace cuda
}  // namespace gn
