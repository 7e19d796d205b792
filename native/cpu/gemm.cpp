// GEMM: see gemm.h for the contract.
//
// Blocked and packed, in the GotoBLAS/BLIS arrangement:
//   for jc over N in blocks of NC              (B block: KC × NC, shared by all row blocks, in L3)
//     for pc over K in blocks of KC            (pack B[pc.., jc..] into NR-wide panels, k-major)
//       for ic over M in blocks of MC          (pack A[ic.., pc..] into MR-tall panels, k-major, in L2)
//         for jr, ir: micro-kernel MR × NR     (C tile in registers; one A panel and one B panel in L1)
// Packing reads op(A) and op(B) in whichever layout they are stored, so the four transpose forms share one
// micro-kernel, and pads edges with zeros so the kernel always runs full tiles; partial tiles are stored
// with masks. The first KC block applies `accumulate` and the bias; later ones add.
// Micro-kernels: AVX-512 (MR=14, NR=32: 28 zmm accumulators), AVX2+FMA (MR=6, NR=16: 12 ymm), and a
// portable one (MR=4, NR=16), chosen once at run time from what the processor reports (GPT_NATIVE_ISA=avx2
// or generic forces a lower one, for tests). Threads split the columns of C into NR-aligned ranges; each
// thread packs into its own reusable buffers.
#include "cpu/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "cpu/simd.h"
#include "cpu/threading.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define GN_X86 1
#endif

namespace gn {

namespace {

// Blocking measured on an AMD EPYC (Zen 5, 48 KB L1d, 1 MB L2): KC 384 and MC 168 were best or within noise
// of the best at the GPT-2 shapes (KC 128-512 × MC 84-672 swept).
constexpr int64_t KC = 384;
constexpr int64_t MC_ROWS = 168;  // a multiple of every MR (14, 6, 4)
constexpr int64_t NC = 3072;

struct Kernel;
using UkrFn = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr,
                       float alpha, bool add, const float* bias);
struct Kernel {
  int MR, NR;
  UkrFn ukr;
  const char* name;
};

// ------------------------------------------------------------------------------------------ generic
void ukr_generic(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr, float alpha,
                 bool add, const float* bias) {
  constexpr int MR = 4, NR = 16;
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* a = Ap + k * MR;
    const float* b = Bp + k * NR;
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) acc[r][c] += a[r] * b[c];
  }
  for (int r = 0; r < mr; ++r) {
    float* cr = C + r * ldc;
    for (int c = 0; c < nr; ++c) {
      float v = alpha * acc[r][c];
      if (add) v += cr[c];
      if (bias) v += bias[c];
      cr[c] = v;
    }
  }
}

#ifdef GN_X86
// ------------------------------------------------------------------------------------------ AVX2
__attribute__((target("avx2,fma"))) void ukr_avx2(int64_t kc, const float* Ap, const float* Bp, float* C,
                                                    int64_t ldc, int mr, int nr, float alpha, bool add,
                                                    const float* bias) {
  constexpr int MR = 6;
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* a = Ap + k * MR;
    __m256 b0 = _mm256_loadu_ps(Bp + k * 16), b1 = _mm256_loadu_ps(Bp + k * 16 + 8);
    __m256 x;
    x = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  alignas(32) float tile[MR][16];
  _mm256_store_ps(tile[0], c00); _mm256_store_ps(tile[0] + 8, c01);
  _mm256_store_ps(tile[1], c10); _mm256_store_ps(tile[1] + 8, c11);
  _mm256_store_ps(tile[2], c20); _mm256_store_ps(tile[2] + 8, c21);
  _mm256_store_ps(tile[3], c30); _mm256_store_ps(tile[3] + 8, c31);
  _mm256_store_ps(tile[4], c40); _mm256_store_ps(tile[4] + 8, c41);
  _mm256_store_ps(tile[5], c50); _mm256_store_ps(tile[5] + 8, c51);
  for (int r = 0; r < mr; ++r) {
    float* cr = C + r * ldc;
    for (int c = 0; c < nr; ++c) {
      float v = alpha * tile[r][c];
      if (add) v += cr[c];
      if (bias) v += bias[c];
      cr[c] = v;
    }
  }
}

// ------------------------------------------------------------------------------------------ AVX-512
#define GN_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

GN_AVX512 inline void store_row512(float* cr, __m512 v0, __m512 v1, int nr, float alpha, bool add,
                                   const float* bias) {
  __m512 va = _mm512_set1_ps(alpha);
  v0 = _mm512_mul_ps(v0, va);
  v1 = _mm512_mul_ps(v1, va);
  if (nr >= 32) {
    if (add) { v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cr)); v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cr + 16)); }
    if (bias) { v0 = _mm512_add_ps(v0, _mm512_loadu_ps(bias)); v1 = _mm512_add_ps(v1, _mm512_loadu_ps(bias + 16)); }
    _mm512_storeu_ps(cr, v0);
    _mm512_storeu_ps(cr + 16, v1);
    return;
  }
  __mmask16 m0 = nr >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << nr) - 1);
  __mmask16 m1 = nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1) : static_cast<__mmask16>(0);
  if (add) { v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr)); v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16)); }
  if (bias) { v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, bias)); v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, bias + 16)); }
  _mm512_mask_storeu_ps(cr, m0, v0);
  _mm512_mask_storeu_ps(cr + 16, m1, v1);
}

GN_AVX512 void ukr_avx512(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr,
                          float alpha, bool add, const float* bias) {
  constexpr int MR = 14;
  // the C tile is needed only at the end: start fetching it now so the stores do not wait on memory
  for (int r = 0; r < mr; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + 16), _MM_HINT_T0);
  }
  __m512 c[MR][2];
  for (int r = 0; r < MR; ++r) c[r][0] = c[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* a = Ap + k * MR;
    const __m512 b0 = _mm512_loadu_ps(Bp + k * 32), b1 = _mm512_loadu_ps(Bp + k * 32 + 16);
#pragma GCC unroll 14
    for (int r = 0; r < MR; ++r) {
      const __m512 x = _mm512_set1_ps(a[r]);
      c[r][0] = _mm512_fmadd_ps(x, b0, c[r][0]);
      c[r][1] = _mm512_fmadd_ps(x, b1, c[r][1]);
    }
  }
#pragma GCC unroll 14
  for (int r = 0; r < MR; ++r)
    if (r < mr) store_row512(C + r * ldc, c[r][0], c[r][1], nr, alpha, add, bias);
}
#endif

const Kernel kGeneric{4, 16, ukr_generic, "generic"};
#ifdef GN_X86
const Kernel kAvx2{6, 16, ukr_avx2, "avx2"};
const Kernel kAvx512{14, 32, ukr_avx512, "avx512"};
#endif

const Kernel& pick_kernel() {
  const char* force = std::getenv("GPT_NATIVE_ISA");
  std::string f = force ? force : "";
#ifdef GN_X86
  __builtin_cpu_init();
  bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (f == "generic") return kGeneric;
  if (f == "avx2") return has2 ? kAvx2 : kGeneric;
  if (has512) return kAvx512;
  if (has2) return kAvx2;
#endif
  return kGeneric;
}

const Kernel& kernel() {
  static const Kernel& k = pick_kernel();  // a property of the processor: computed once, never mutated
  return k;
}

struct AlignedBuf {
  float* p = nullptr;
  size_t n = 0;
  ~AlignedBuf() { std::free(p); }
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      n = want + want / 4;
      p = static_cast<float*>(std::aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64));
    }
    return p;
  }
};
thread_local AlignedBuf tl_apack, tl_bpack;

// op(A) block rows [i0, i0+mc), k [p0, p0+kc) → MR-tall panels, each k-major (panel[k*MR + r])
void pack_a(float* dst, const float* A, int64_t lda, bool transA, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
            int MR) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int rows = static_cast<int>(std::min<int64_t>(MR, mc - ir));
    float* d = dst + ir * kc;
    if (transA) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (p0 + k) * lda + i0 + ir;
        float* dk = d + k * MR;
        int r = 0;
        for (; r < rows; ++r) dk[r] = src[r];
        for (; r < MR; ++r) dk[r] = 0.0f;
      }
    } else {
      for (int r = 0; r < rows; ++r) {
        const float* src = A + (i0 + ir + r) * lda + p0;
        for (int64_t k = 0; k < kc; ++k) d[k * MR + r] = src[k];
      }
      for (int r = rows; r < MR; ++r)
        for (int64_t k = 0; k < kc; ++k) d[k * MR + r] = 0.0f;
    }
  }
}

// op(B) k [p0, p0+kc), columns [j0, j0+nc) → NR-wide panels, each k-major (panel[k*NR + c])
void pack_b(float* dst, const float* B, int64_t ldb, bool transB, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
            int NR) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int cols = static_cast<int>(std::min<int64_t>(NR, nc - jr));
    float* d = dst + jr * kc;
    if (!transB) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + (p0 + k) * ldb + j0 + jr;
        float* dk = d + k * NR;
        int c = 0;
        for (; c < cols; ++c) dk[c] = src[c];
        for (; c < NR; ++c) dk[c] = 0.0f;
      }
    } else {
      for (int c = 0; c < cols; ++c) {
        const float* src = B + (j0 + jr + c) * ldb + p0;
        for (int64_t k = 0; k < kc; ++k) d[k * NR + c] = src[k];
      }
      for (int c = cols; c < NR; ++c)
        for (int64_t k = 0; k < kc; ++k) d[k * NR + c] = 0.0f;
    }
  }
}

// C[m0:m1, n0:n1) over the whole K, on the calling thread
void gemm_block(const Kernel& kr, bool transA, bool transB, int64_t m0, int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
               const float* bias) {
  const int MR = kr.MR, NR = kr.NR;
  if (K == 0) {
    for (int64_t m = m0; m < M; ++m)
      for (int64_t n = n0; n < n1; ++n) {
        float v = accumulate ? C[m * ldc + n] : 0.0f;
        C[m * ldc + n] = v + (bias ? bias[n] : 0.0f);
      }
    return;
  }
  const int64_t mcMax = std::min<int64_t>(MC_ROWS / MR * MR, (M - m0 + MR - 1) / MR * MR);
  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = std::min<int64_t>(NC, n1 - jc);
    const int64_t ncPad = (nc + NR - 1) / NR * NR;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min<int64_t>(KC, K - pc);
      float* Bp = tl_bpack.get(static_cast<size_t>(ncPad * kc));
      pack_b(Bp, B, ldb, transB, pc, kc, jc, nc, NR);
      const bool add = pc > 0 || accumulate;
      const float* bia = (pc == 0 && bias) ? bias + jc : nullptr;
      for (int64_t ic = m0; ic < M; ic += mcMax) {
        const int64_t mc = std::min<int64_t>(mcMax, M - ic);
        const int64_t mcPad = (mc + MR - 1) / MR * MR;
        float* Ap = tl_apack.get(static_cast<size_t>(mcPad * kc));
        pack_a(Ap, A, lda, transA, ic, mc, pc, kc, MR);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            kr.ukr(kc, Ap + ir * kc, Bp + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc, mr, nr, alpha, add,
                   bia ? bia + jr : nullptr);
          }
        }
      }
    }
  }
}


// ---------------------------------------------------------------------------------- small M (decoding)
// With M <= 4 (batch-1 decoding, attention over a KV cache) packing would copy all of B for a handful of
// rows: instead stream B once. A·B: C rows accumulate alpha·A[m,k]·B[k, n-chunk] over k (vectorised over
// n); A·Bᵀ: each C element is a dot product of two contiguous rows.
constexpr int64_t kSmallM = 4;
constexpr int64_t kChunkN = 512;

GN_MULTIVERSION
void small_m_nn(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda, bool transA,
                const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias) {
  float acc[kSmallM][kChunkN];
  for (int64_t c0 = n0; c0 < n1; c0 += kChunkN) {
    const int64_t w = std::min<int64_t>(kChunkN, n1 - c0);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < w; ++j) acc[m][j] = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float* b = B + k * ldb + c0;
      for (int64_t m = 0; m < M; ++m) {
        const float a = transA ? A[k * lda + m] : A[m * lda + k];
        float* am = acc[m];
        for (int64_t j = 0; j < w; ++j) am[j] += a * b[j];
      }
    }
    for (int64_t m = 0; m < M; ++m) {
      float* c = C + m * ldc + c0;
      for (int64_t j = 0; j < w; ++j) {
        float v = alpha * acc[m][j];
        if (accumulate) v += c[j];
        if (bias) v += bias[c0 + j];
        c[j] = v;
      }
    }
  }
}

GN_MULTIVERSION
void small_m_nt(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda, bool transA,
                const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias) {
  float arow[kSmallM][1024];
  const bool staged = K <= 1024;
  if (staged)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) arow[m][k] = transA ? A[k * lda + m] : A[m * lda + k];
  for (int64_t n = n0; n < n1; ++n) {
    const float* b = B + n * ldb;
    for (int64_t m = 0; m < M; ++m) {
      float d;
      if (staged) {
        const float* a = arow[m];
        d = lane_sum(K, [&](int64_t k) { return a[k] * b[k]; });
      } else {
        d = lane_sum(K, [&](int64_t k) { return (transA ? A[k * lda + m] : A[m * lda + k]) * b[k]; });
      }
      float v = alpha * d;
      if (accumulate) v += C[m * ldc + n];
      if (bias) v += bias[n];
      C[m * ldc + n] = v;
    }
  }
}
}  // namespace

const char* gemm_isa() { return kernel().name; }

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  if (M <= kSmallM && K > 0) {
    auto run = [&](int64_t n0, int64_t n1) {
      if (transB) small_m_nt(M, n0, n1, K, alpha, A, lda, transA, B, ldb, C, ldc, accumulate, bias);
      else small_m_nn(M, n0, n1, K, alpha, A, lda, transA, B, ldb, C, ldc, accumulate, bias);
    };
    if (pool && 2 * M * N * K >= (int64_t)1 << 18) pool->parallel_for(N, [&](int64_t b, int64_t e, int) { run(b, e); }, 64);
    else run(0, N);
    return;
  }
  const Kernel& kr = kernel();
  const int threads = pool ? pool->available_threads() : 1;
  // enough work per thread to pay for the hand-off, and NR-aligned column ranges
  const int64_t flops = 2 * M * N * std::max<int64_t>(K, 1);
  int64_t parts = std::min<int64_t>(threads, (N + kr.NR - 1) / kr.NR);
  if (flops < (int64_t)1 << 21) parts = 1;
  if (parts <= 1 && !(N < M && threads > 1 && flops >= (int64_t)1 << 21)) {
    gemm_block(kr, transA, transB, 0, M, 0, N, K, alpha, A, lda, B, ldb, C, ldc, accumulate, bias);
    return;
  }
  // Split the dimension whose operand is cheaper to pack twice: splitting N makes every thread pack all
  // of op(A) (M·K), splitting M makes every thread pack all of op(B) (K·N).
  if (N >= M) {
    const int64_t panels = (N + kr.NR - 1) / kr.NR;
    pool->run_tasks(parts, [&](int64_t t, int) {
      const int64_t p0 = panels * t / parts, p1 = panels * (t + 1) / parts;
      const int64_t n0 = p0 * kr.NR, n1 = std::min<int64_t>(N, p1 * kr.NR);
      if (n0 < n1) gemm_block(kr, transA, transB, 0, M, n0, n1, K, alpha, A, lda, B, ldb, C, ldc, accumulate, bias);
    });
  } else {
    const int64_t mparts = std::min<int64_t>(threads, (M + kr.MR - 1) / kr.MR);
    const int64_t panels = (M + kr.MR - 1) / kr.MR;
    pool->run_tasks(mparts, [&](int64_t t, int) {
      const int64_t p0 = panels * t / mparts, p1 = panels * (t + 1) / mparts;
      const int64_t m0 = p0 * kr.MR, m1 = std::min<int64_t>(M, p1 * kr.MR);
      if (m0 < m1) gemm_block(kr, transA, transB, m0, m1, 0, N, K, alpha, A, lda, B, ldb, C, ldc, accumulate, bias);
    });
  }
}

}  // namespace gn
