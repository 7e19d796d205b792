// GEMM micro-kernel and transposing pack for AVX-512 (see gemm.cpp for the blocking scheme, gemm_kernels.h
// for the tile contract).
//
// Micro-kernel MR×NR = MR × (16·NV): MR·NV zmm accumulators hold the C tile for the whole kc loop. Each k
// step loads NV vectors of the packed B row b(k, 0..NR) and, for each of the MR rows, broadcasts a(i,k) and
// issues NV FMAs:   acc[i][v] += a(i,k) · b(k, 16v..16v+15).
// 8×48 (and 6×64) = 24 accumulators + 3 B vectors + 1 broadcast fits the 32 zmm registers; the 24 independent FMA
// chains cover the 4-cycle latency of the two FMA pipes. The epilogue scales by alpha, adds C and bias, and
// uses masked loads/stores for partial tiles (mr < MR rows are simply skipped).
//
// Compiled with a target attribute, never with global -m flags: the dispatcher in gemm.cpp only calls this
// code after __builtin_cpu_supports("avx512f") etc. said yes.
#include "cpu/gemm_kernels.h"

#include <cstdint>

#ifdef GN_GEMM_X86
#include <immintrin.h>


// GCC 12 reports _mm512_undefined_ps inside its own intrinsics headers as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define GN_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

namespace gn {
namespace gemm_detail {
namespace {

// The prologue of a tile: zero accumulators, and the C tile, needed only after the k loop, fetched now (it
// is often in L3, not L2).
template <int MR, int NV>
GN_AVX512 inline void begin_tile(const TileArgs& t, __m512 (&acc)[MR][NV]) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = _mm512_setzero_ps();
      _mm_prefetch(reinterpret_cast<const char*>(t.c + i * t.ldc + 16 * v), _MM_HINT_T1);
    }
}

// The epilogue of a tile: C = alpha·acc + bias (+ C), masked for partial tiles (rows ≥ mr are skipped).
template <int MR, int NV>
GN_AVX512 inline void store_tile(const TileArgs& t, __m512 (&acc)[MR][NV]) {
  constexpr int NR = 16 * NV;
  const __m512 alpha = _mm512_set1_ps(t.alpha);
  float* c = t.c;
  const int64_t ldc = t.ldc;
  if (t.mr == MR && t.nr == NR) {
    __m512 bias[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bias[v] = t.bias ? _mm512_loadu_ps(t.bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* p = c + i * ldc + 16 * v;
        __m512 r = _mm512_fmadd_ps(acc[i][v], alpha, bias[v]);
        if (t.load_c) r = _mm512_add_ps(r, _mm512_loadu_ps(p));
        _mm512_storeu_ps(p, r);
      }
    return;
  }
  __mmask16 mask[NV];
  __m512 bias[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    int64_t left = t.nr - 16 * v;
    mask[v] = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
    bias[v] = t.bias ? _mm512_maskz_loadu_ps(mask[v], t.bias + 16 * v) : _mm512_setzero_ps();
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= t.mr) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = c + i * ldc + 16 * v;
      __m512 r = _mm512_fmadd_ps(acc[i][v], alpha, bias[v]);
      if (t.load_c) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask[v], p));
      _mm512_mask_storeu_ps(p, mask[v], r);
    }
  }
}

template <int MR, int NV, bool PACKED>
GN_AVX512 void ukernel(const TileArgs& t) {
  __m512 acc[MR][NV];
  begin_tile<MR, NV>(t, acc);

  const float* a = t.a;
  const float* b = t.b;
  const int64_t rsb = t.rsb;
  const int64_t rsa = PACKED ? 1 : t.rsa;
  const int64_t csa = PACKED ? MR : t.csa;
  for (int64_t k = 0; k < t.kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      __m512 av = _mm512_set1_ps(a[i * rsa]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
    a += csa;
    b += rsb;
  }

  store_tile<MR, NV>(t, acc);
}

// In-register transpose of a 16×16 block: on return r[c] holds column c of the input rows.
GN_AVX512 inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // within 128-bit lanes: pairs of rows interleaved
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // u[4g+e], lane l: element 4l+e of rows 4g..4g+3
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int e = 0; e < 4; ++e) {  // gather lane l of the four row groups
    __m512 w0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88);
    __m512 w1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xDD);
    __m512 w2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
    __m512 w3 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xDD);
    r[e] = _mm512_shuffle_f32x4(w0, w2, 0x88);
    r[8 + e] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
    r[4 + e] = _mm512_shuffle_f32x4(w1, w3, 0x88);
    r[12 + e] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
  }
}

// In-register transpose of an 8×8 block of ymm rows: on return r[c] holds column c of the input rows.
GN_AVX512 inline void transpose8(__m256 r[8]) {
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

// dst[k·NR + j] = src[j·ld + k] (see gemm_kernels.h). Blocks of 16 (or, for panels at most 8 wide such as
// the A panels, 8) rows are transposed in registers; masked loads cover the k remainder, zero rows the
// j ≥ nr padding, masked stores an NR that is not a multiple of the block.
GN_AVX512 void pack_t(const float* src, int64_t ld, int64_t kc, int64_t nr, int64_t NR, float* dst) {
  if (NR <= 8) {
    const __mmask8 smask = __mmask8((1u << NR) - 1);
    for (int64_t k0 = 0; k0 < kc; k0 += 8) {
      const int64_t kn = kc - k0 >= 8 ? 8 : kc - k0;
      const __mmask8 lmask = __mmask8((1u << kn) - 1);
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = i < nr ? _mm256_maskz_loadu_ps(lmask, src + i * ld + k0) : _mm256_setzero_ps();
      transpose8(r);
      float* d = dst + k0 * NR;
      for (int c = 0; c < kn; ++c) _mm256_mask_storeu_ps(d + c * NR, smask, r[c]);
    }
    return;
  }
  for (int64_t j0 = 0; j0 < NR; j0 += 16) {
    const int64_t rows = nr - j0 >= 16 ? 16 : (nr - j0 > 0 ? nr - j0 : 0);
    const int64_t width = NR - j0 >= 16 ? 16 : NR - j0;
    const __mmask16 smask = width >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << width) - 1);
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      const int64_t kn = kc - k0 >= 16 ? 16 : kc - k0;
      const __mmask16 lmask = kn >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << kn) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(lmask, src + (j0 + i) * ld + k0) : _mm512_setzero_ps();
      transpose16(r);
      float* d = dst + k0 * NR + j0;
      for (int c = 0; c < kn; ++c) _mm512_mask_storeu_ps(d + c * NR, smask, r[c]);
    }
  }
}

// ---- bf16 arithmetic (math mode bf16 on a processor with AVX512-BF16): both operands rounded to bf16, products
// summed in fp32 by VDPBF16PS, which multiplies pairs of bf16 (exactly) and adds both to an fp32 lane. Panels
// are packed as usual in fp32, then turned in place into pairs of k: element (p, j) of a pair panel holds
// (bf16 of k = 2p in the low half, k = 2p + 1 in the high half) for column j, so one 32-bit broadcast of an A pair
// against 16 B pairs is 32 multiply-adds.
#define GN_AVX512BF16 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,avx512bf16")))

// panel (kc, W) fp32 → (ceil(kc/2), W) pairs, in place; a missing k = kc row (odd kc) is zero
GN_AVX512BF16 void pair_panel(float* panel, int64_t kc, int64_t W) {
  uint32_t* out = reinterpret_cast<uint32_t*>(panel);
  for (int64_t p = 0; 2 * p < kc; ++p) {
    const float* lo = panel + 2 * p * W;
    const float* hi = 2 * p + 1 < kc ? lo + W : nullptr;
    for (int64_t j = 0; j < W; j += 16) {
      const __mmask16 m = W - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (W - j)) - 1);
      const __m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, lo + j)));
      const __m512i h = hi ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, hi + j)))
                           : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(out + p * W + j, m, _mm512_or_si512(l, _mm512_slli_epi32(h, 16)));
    }
  }
}

// The micro-kernel over pair panels: t.a, t.b point at pair panels (uint32), t.kc counts pairs, t.rsb = NR.
template <int MR, int NV>
GN_AVX512BF16 void ukernel_bf16(const TileArgs& t) {
  __m512 acc[MR][NV];
  begin_tile<MR, NV>(t, acc);
  const uint32_t* a = reinterpret_cast<const uint32_t*>(t.a);
  const uint32_t* b = reinterpret_cast<const uint32_t*>(t.b);
  for (int64_t p = 0; p < t.kc; ++p) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
    }
    a += MR;
    b += t.rsb;
  }
  store_tile<MR, NV>(t, acc);
}

}  // namespace

// 8×48 for most shapes; 6×64 (same speed on full tiles) where N is a multiple of 64 but not of 48, such as
// attention's head size 64, so that no 16-wide edge tiles run at a third of the kernel's width.
const Isa& isa_avx512() {
  static const Isa narrow{"avx512", 6, 64, &ukernel<6, 4, true>, &ukernel<6, 4, false>, &pack_t, nullptr,
                          &ukernel_bf16<6, 4>, &pair_panel};
  static const Isa isa{"avx512", 8, 48, &ukernel<8, 3, true>, &ukernel<8, 3, false>, &pack_t, &narrow,
                       &ukernel_bf16<8, 3>, &pair_panel};
  return isa;
}

// ---- bf16 weights, M ≤ 4 rows (decoding with a bf16 model): stream B once, widening 16 elements per load
// (zero-extend to 32 bits, shift left 16: exact). fp32 products and sums, as in the plain small-M path.
namespace {

GN_AVX512 inline __m512 widen16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
GN_AVX512 inline __m512 widen16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
GN_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
GN_AVX512 inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
GN_AVX512 inline __m512 load16(const uint16_t* p) { return widen16(p); }
GN_AVX512 inline __m512 load16(const uint16_t* p, __mmask16 m) { return widen16(p, m); }
inline __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n > 0 ? n : 0)) - 1); }

// A·Bᵀ: C[m, n] = alpha · dot(a[m], B row n) for n in [n0, n1); a[m] are contiguous rows of K floats; B fp32
// or bf16. Two accumulators per row of A over 32-element steps; each B row is loaded once for all M rows, and
// every row's sum runs in the same order whatever M is.
template <int M, typename TB>
GN_AVX512 void nt_rows(int64_t n0, int64_t n1, int64_t K, float alpha, const float* const* a, const TB* B,
                       int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias) {
  const int64_t K32 = K / 32 * 32, K16 = K / 16 * 16;
  const __mmask16 tail = lanes(K - K16);
  for (int64_t n = n0; n < n1; ++n) {
    const TB* b = B + n * ldb;
    __m512 acc0[M], acc1[M];
    for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k < K32; k += 32) {
      const __m512 b0 = load16(b + k), b1 = load16(b + k + 16);
      for (int m = 0; m < M; ++m) {
        acc0[m] = _mm512_fmadd_ps(_mm512_loadu_ps(a[m] + k), b0, acc0[m]);
        acc1[m] = _mm512_fmadd_ps(_mm512_loadu_ps(a[m] + k + 16), b1, acc1[m]);
      }
    }
    for (; k < K16; k += 16) {
      const __m512 b0 = load16(b + k);
      for (int m = 0; m < M; ++m) acc0[m] = _mm512_fmadd_ps(_mm512_loadu_ps(a[m] + k), b0, acc0[m]);
    }
    if (k < K) {
      const __m512 b0 = load16(b + k, tail);
      for (int m = 0; m < M; ++m) acc1[m] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a[m] + k), b0, acc1[m]);
    }
    for (int m = 0; m < M; ++m) {
      float v = alpha * _mm512_reduce_add_ps(_mm512_add_ps(acc0[m], acc1[m]));
      float* c = C + m * ldc + n;
      if (accumulate) v += *c;
      if (bias) v += bias[n];
      *c = v;
    }
  }
}

// A·B over the k rows [k0, k1) of B (see small_m::nn_rows_body in gemm.cpp): P (M,N) = Σ_k a(m,k) · B[k, :],
// four whole rows of B per pass, each 16-column step widened once and used for all M rows of P. A software
// prefetch of the next four rows' same columns lifted these products from ~30 to ~40-47 GB/s on the 2-core
// Zen 5 (a fixed 1 KB distance within the row gave ~37; the hardware prefetchers alone ~31).
template <int M>
GN_AVX512 void nn_rows_bf16(int64_t k0, int64_t k1, int64_t N, const float* A, int64_t lda, bool transA,
                            const uint16_t* B, int64_t ldb, float* P, int64_t ldp) {
  auto a_at = [&](int64_t m, int64_t k) { return transA ? A[k * lda + m] : A[m * lda + k]; };
  const int64_t N16 = N / 16 * 16;
  const __mmask16 tail = lanes(N - N16);
  for (int m = 0; m < M; ++m)
    for (int64_t j = 0; j < N; ++j) P[m * ldp + j] = 0.0f;
  int64_t k = k0;
  for (; k + 4 <= k1; k += 4) {
    const uint16_t *b0 = B + k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
    __m512 a[M][4];
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < 4; ++r) a[m][r] = _mm512_set1_ps(a_at(m, k + r));
    // the same columns of the next four rows (while rows remain); those are read next
    const int64_t ahead = k + 8 <= k1 ? 4 * ldb : 0;
    for (int64_t j = 0; j < N16; j += 16) {
      if (ahead && (j & 31) == 0) {  // one 64-byte line of each row per 32 columns
        _mm_prefetch(reinterpret_cast<const char*>(b0 + ahead + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b1 + ahead + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b2 + ahead + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b3 + ahead + j), _MM_HINT_T0);
      }
      const __m512 w0 = widen16(b0 + j), w1 = widen16(b1 + j), w2 = widen16(b2 + j), w3 = widen16(b3 + j);
      for (int m = 0; m < M; ++m) {
        float* p = P + m * ldp + j;
        __m512 acc = _mm512_loadu_ps(p);
        acc = _mm512_fmadd_ps(a[m][0], w0, acc);
        acc = _mm512_fmadd_ps(a[m][1], w1, acc);
        acc = _mm512_fmadd_ps(a[m][2], w2, acc);
        acc = _mm512_fmadd_ps(a[m][3], w3, acc);
        _mm512_storeu_ps(p, acc);
      }
    }
    if (N16 < N) {
      const __m512 w0 = widen16(b0 + N16, tail), w1 = widen16(b1 + N16, tail), w2 = widen16(b2 + N16, tail),
                   w3 = widen16(b3 + N16, tail);
      for (int m = 0; m < M; ++m) {
        float* p = P + m * ldp + N16;
        __m512 acc = _mm512_maskz_loadu_ps(tail, p);
        acc = _mm512_fmadd_ps(a[m][0], w0, acc);
        acc = _mm512_fmadd_ps(a[m][1], w1, acc);
        acc = _mm512_fmadd_ps(a[m][2], w2, acc);
        acc = _mm512_fmadd_ps(a[m][3], w3, acc);
        _mm512_mask_storeu_ps(p, tail, acc);
      }
    }
  }
  for (; k < k1; ++k) {
    const uint16_t* b0 = B + k * ldb;
    for (int m = 0; m < M; ++m) {
      const __m512 am = _mm512_set1_ps(a_at(m, k));
      float* p = P + m * ldp;
      for (int64_t j = 0; j < N; j += 16) {
        const __mmask16 mk = lanes(N - j);
        _mm512_mask_storeu_ps(p + j, mk, _mm512_fmadd_ps(am, widen16(b0 + j, mk), _mm512_maskz_loadu_ps(mk, p + j)));
      }
    }
  }
}

}  // namespace

template <typename TB>
static void nt_dispatch(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* const* a, const TB* B,
                        int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias) {
  switch (M) {
    case 1: return nt_rows<1>(n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
    case 2: return nt_rows<2>(n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
    case 3: return nt_rows<3>(n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
    case 4: return nt_rows<4>(n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
    case 5: return nt_rows<5>(n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
    case 6: return nt_rows<6>(n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
    case 7: return nt_rows<7>(n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
    default: return nt_rows<8>(n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
  }
}
void small_nt_avx512(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* const* a,
                     const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias) {
  nt_dispatch(M, n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
}
void small_nt_avx512(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* const* a,
                     const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias) {
  nt_dispatch(M, n0, n1, K, alpha, a, B, ldb, C, ldc, accumulate, bias);
}

void small_nn_rows_bf16_avx512(int64_t M, int64_t k0, int64_t k1, int64_t N, const float* A, int64_t lda,
                               bool transA, const uint16_t* B, int64_t ldb, float* P, int64_t ldp) {
  switch (M) {
    case 1: return nn_rows_bf16<1>(k0, k1, N, A, lda, transA, B, ldb, P, ldp);
    case 2: return nn_rows_bf16<2>(k0, k1, N, A, lda, transA, B, ldb, P, ldp);
    case 3: return nn_rows_bf16<3>(k0, k1, N, A, lda, transA, B, ldb, P, ldp);
    case 4: return nn_rows_bf16<4>(k0, k1, N, A, lda, transA, B, ldb, P, ldp);
    case 5: return nn_rows_bf16<5>(k0, k1, N, A, lda, transA, B, ldb, P, ldp);
    case 6: return nn_rows_bf16<6>(k0, k1, N, A, lda, transA, B, ldb, P, ldp);
    case 7: return nn_rows_bf16<7>(k0, k1, N, A, lda, transA, B, ldb, P, ldp);
    default: return nn_rows_bf16<8>(k0, k1, N, A, lda, transA, B, ldb, P, ldp);
  }
}

}  // namespace gemm_detail
}  // namespace gn

#endif  // GN_GEMM_X86
