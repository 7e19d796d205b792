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

// The same with B in bf16 (the upper 16 bits of a float32, as Uint16Array holds them): weights stored in bf16
// for inference. Products and sums stay float32; each B element is widened exactly when it is read (small M)
// or packed (larger M), so the result equals gemm() over the widened B up to summation order.
void gemm_bf16b(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const uint16_t* B, int64_t ldb,
                float* C, int64_t ldc, bool accumulate, const float* bias, ThreadPool* pool);

// dst[i] = src[i] rounded to bf16 (to nearest, ties to even; NaN stays NaN, ±inf and ±0 keep their sign).
void f32_to_bf16(uint16_t* dst, const float* src, int64_t n, ThreadPool* pool);

static inline float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
}

// Math mode: with bf16 on, products of more than 8 rows round both operands to bf16 and sum in fp32
// (AVX512-BF16 dot products) where the processor has them; few-row products (decoding) are unaffected. That
// includes attention's products of more than 8 query rows (as PyTorch's autocast does). The hardware treats
// denormal inputs and results as zero (toBf16 keeps bf16 denormals). Returns whether bf16 arithmetic is now
// on (false where the processor lacks it). Process-wide: a model sets it before each pass.
bool set_gemm_math_bf16(bool on);
bool gemm_math_bf16();

// Which micro-kernel the dispatcher picked on this processor: "avx512", "avx2" or "generic".
const char* gemm_isa();

}  // namespace gn
