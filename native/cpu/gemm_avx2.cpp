// GEMM micro-kernel and transposing pack for AVX2 + FMA (see gemm.cpp for the blocking scheme,
// gemm_kernels.h for the tile contract).
//
// Micro-kernel MR×NR = 6×16: 12 ymm accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers.
// Each k step: load b(k, 0..15) as two vectors, broadcast a(i,k) for the 6 rows, 12 FMAs.
// Partial tiles use vmaskmov loads/stores along N and skip rows i ≥ mr.
#include "cpu/gemm_kernels.h"

#ifdef GN_GEMM_X86
#include <immintrin.h>

#define GN_AVX2 __attribute__((target("avx2,fma")))

namespace gn {
namespace gemm_detail {
namespace {

constexpr int kMR = 6;
constexpr int kNV = 2;

template <bool PACKED>
GN_AVX2 void ukernel(const TileArgs& t) {
  constexpr int MR = kMR, NV = kNV, NR = 8 * NV;
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();

  const float* a = t.a;
  const float* b = t.b;
  const int64_t rsb = t.rsb;
  const int64_t rsa = PACKED ? 1 : t.rsa;
  const int64_t csa = PACKED ? MR : t.csa;
  for (int64_t k = 0; k < t.kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m256 av = _mm256_broadcast_ss(a + i * rsa);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
    }
    a += csa;
    b += rsb;
  }

  const __m256 alpha = _mm256_set1_ps(t.alpha);
  float* c = t.c;
  const int64_t ldc = t.ldc;
  if (t.mr == MR && t.nr == NR) {
    __m256 bias[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bias[v] = t.bias ? _mm256_loadu_ps(t.bias + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* p = c + i * ldc + 8 * v;
        __m256 r = _mm256_fmadd_ps(acc[i][v], alpha, bias[v]);
        if (t.load_c) r = _mm256_add_ps(r, _mm256_loadu_ps(p));
        _mm256_storeu_ps(p, r);
      }
    return;
  }
  __m256i mask[NV];
  __m256 bias[NV];
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    mask[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(t.nr - 8 * v)), lane);
    bias[v] = t.bias ? _mm256_maskload_ps(t.bias + 8 * v, mask[v]) : _mm256_setzero_ps();
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= t.mr) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = c + i * ldc + 8 * v;
      __m256 r = _mm256_fmadd_ps(acc[i][v], alpha, bias[v]);
      if (t.load_c) r = _mm256_add_ps(r, _mm256_maskload_ps(p, mask[v]));
      _mm256_maskstore_ps(p, mask[v], r);
    }
  }
}

// In-register transpose of an 8×8 block: on return r[c] holds column c of the input rows.
GN_AVX2 inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int e = 0; e < 4; ++e) {
    r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
    r[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
  }
}

// dst[k·NR + j] = src[j·ld + k]: full 8×8 blocks through registers, the rest scalar.
GN_AVX2 void pack_t(const float* src, int64_t ld, int64_t kc, int64_t nr, int64_t NR, float* dst) {
  const int64_t nr8 = NR % 8 == 0 ? (nr / 8) * 8 : 0;
  const int64_t kc8 = (kc / 8) * 8;
  for (int64_t j0 = 0; j0 < nr8; j0 += 8) {
    for (int64_t k0 = 0; k0 < kc8; k0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (j0 + i) * ld + k0);
      transpose8(r);
      for (int c = 0; c < 8; ++c) _mm256_storeu_ps(dst + (k0 + c) * NR + j0, r[c]);
    }
    for (int64_t k = kc8; k < kc; ++k)
      for (int i = 0; i < 8; ++i) dst[k * NR + j0 + i] = src[(j0 + i) * ld + k];
  }
  for (int64_t k = 0; k < kc; ++k) {
    float* d = dst + k * NR;
    for (int64_t j = nr8; j < nr; ++j) d[j] = src[j * ld + k];
    for (int64_t j = nr; j < NR; ++j) d[j] = 0.0f;
  }
}

}  // namespace

const Isa& isa_avx2() {
  static const Isa isa{"avx2", kMR, 8 * kNV, &ukernel<true>, &ukernel<false>, &pack_t, nullptr};
  return isa;
}

}  // namespace gemm_detail
}  // namespace gn

#endif  // GN_GEMM_X86
