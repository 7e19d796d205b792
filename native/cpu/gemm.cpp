// GEMM: see gemm.h for the contract.
// First version: cache-blocked loops the compiler vectorises; parallel over rows of C.
#include "cpu/gemm.h"

#include <algorithm>
#include <vector>

#include "cpu/threading.h"

namespace gn {

const char* gemm_isa() { return "generic"; }

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate, const float* bias, ThreadPool* pool) {
  auto body = [&](int64_t m0, int64_t m1) {
    std::vector<float> brow(N);
    for (int64_t m = m0; m < m1; ++m) {
      float* c = C + m * ldc;
      if (!accumulate) std::fill(c, c + N, 0.0f);
    }
    for (int64_t k = 0; k < K; ++k) {
      const float* b;
      if (transB) {
        for (int64_t n = 0; n < N; ++n) brow[n] = B[n * ldb + k];
        b = brow.data();
      } else {
        b = B + k * ldb;
      }
      for (int64_t m = m0; m < m1; ++m) {
        float a = alpha * (transA ? A[k * lda + m] : A[m * lda + k]);
        float* c = C + m * ldc;
        for (int64_t n = 0; n < N; ++n) c[n] += a * b[n];
      }
    }
    if (bias)
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t n = 0; n < N; ++n) C[m * ldc + n] += bias[n];
  };
  if (pool) pool->parallel_for(M, [&](int64_t b, int64_t e, int) { body(b, e); }, 4);
  else body(0, M);
}

}  // namespace gn
