// GEMM, row-major, float32.
//   C (M,N) = (accumulate ? C : 0) + alpha · op(A) · op(B) + (bias ? bias[n] : 0)
//   op(A) is (M,K): A stored (M,K) with row stride lda, or (K,M) when transA.
//   op(B) is (K,N): B stored (K,N) with row stride ldb, or (N,K) when transB.
// pool == nullptr runs on the calling thread (attention calls it that way from inside its own tasks).
// The forms the model uses: linear forward A·B (+bias), input gradient A·Bᵀ, weight gradient Aᵀ·B with
// accumulate, tied LM head A·Bᵀ.
#pragma once
#include <cstdint>

namespace gn {
class ThreadPool;

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate, const float* bias, ThreadPool* pool);

// Which micro-kernel the dispatcher picked on this processor: "avx512", "avx2" or "generic".
const char* gemm_isa();

}  // namespace gn
