// Linear layer in Hugging Face's Conv1D layout (the layout of GPT-1/GPT-2 checkpoints):
//   inp (N,C), weight (C,OC), bias (OC) -> out (N,OC) = inp · weight + bias
// Backward:
//   dinp (N,C)     = dout · weightᵀ      (=)
//   dweight (C,OC) += inpᵀ · dout        (+=)
//   dbias (OC)     += Σ_n dout[n,:]      (+=)
#include <vector>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/simd.h"
#include "cpu/threading.h"

namespace gn {

namespace {
void gemm_w(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
            int64_t ldb, float* C, int64_t ldc, bool acc, const float* bias, ThreadPool* pool) {
  gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, C, ldc, acc, bias, pool);
}
void gemm_w(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint16_t* B,
            int64_t ldb, float* C, int64_t ldc, bool acc, const float* bias, ThreadPool* pool) {
  gemm_bf16b(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, C, ldc, acc, bias, pool);
}
}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC, ThreadPool* pool) {
  gemm_w(false, false, N, OC, C, inp, C, weight, OC, out, OC, false, bias, pool);
}
void linear_forward(float* out, const float* inp, const uint16_t* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC, ThreadPool* pool) {
  gemm_w(false, false, N, OC, C, inp, C, weight, OC, out, OC, false, bias, pool);
}

GN_MULTIVERSION
static void colsum_range(float* dbias, const float* dout, int64_t N, int64_t OC, int64_t o0, int64_t o1) {
  for (int64_t n = 0; n < N; ++n) {
    const float* row = dout + n * OC;
    for (int64_t o = o0; o < o1; ++o) dbias[o] += row[o];
  }
}

template <typename TW>
static void linear_backward_any(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                const TW* weight, int64_t N, int64_t C, int64_t OC, ThreadPool* pool) {
  if (dinp) gemm_w(false, true, N, C, OC, dout, OC, weight, OC, dinp, C, false, nullptr, pool);
  if (dweight) gemm(true, false, C, OC, N, 1.0f, inp, C, dout, OC, dweight, OC, true, nullptr, pool);
  if (dbias) {
    auto body = [&](int64_t o0, int64_t o1, int) { colsum_range(dbias, dout, N, OC, o0, o1); };
    if (pool) pool->parallel_for(OC, body, 256);
    else body(0, OC, 0);
  }
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, ThreadPool* pool) {
  linear_backward_any(dinp, dweight, dbias, dout, inp, weight, N, C, OC, pool);
}
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const uint16_t* weight, int64_t N, int64_t C, int64_t OC, ThreadPool* pool) {
  linear_backward_any(dinp, dweight, dbias, dout, inp, weight, N, C, OC, pool);
}

}  // namespace gn
