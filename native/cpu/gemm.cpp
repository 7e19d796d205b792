// GEMM, row-major float32 (contract in gemm.h):
//   C (M,N) = (accumulate ? C : 0) + alpha · op(A) (M,K) · op(B) (K,N) + bias (N)
//
// Blocked and packed in the GotoBLAS/BLIS way. Loop nest for one rectangle of C:
//   for jc in N step NC                        B block  (KC,NC) packed once, lives in L3
//     for pc in K step KC
//       pack B[pc:pc+KC, jc:jc+NC] → Bp        as NR-wide micro-panels, layout [N/NR][KC][NR]
//       for ic in M step MC                    A block  (MC,KC) lives in L2
//         pack A[ic:ic+MC, pc:pc+KC] → Ap      as MR-tall micro-panels, layout [M/MR][KC][MR]
//         for jr in NC step NR                 B micro-panel (KC,NR) stays in L2 across the ir loop
//           for ir in MC step MR
//             micro-kernel: C[ir:+MR, jr:+NR] (+)= alpha · Ap panel · Bp panel  (+ bias on the first pc)
// The four forms (A or Aᵀ, B or Bᵀ) differ only in how the panels are packed: a transposed operand is
// packed through in-register transposes, a plain one by row copies, so one micro-kernel serves all four.
// Small shapes skip packing where it does not pay: A is read in place when N is narrow (it would be packed
// for one or two micro-panels only), and a plain fp32 B is read in place when M is small (a bf16 B is always
// packed, widened on the way); attention's serial per-block products (M=64, N≤2048, K=64 and the like) take those paths. Edge tiles are zero-padded in the
// packed panels and stored with masks, so any M, N, K ≥ 0 work. K = 0 writes (accumulate ? C : 0) + bias.
//
// Micro-kernels (chosen once at run time from what the processor reports, GPT_NATIVE_ISA=avx2|generic
// forces a lower one): AVX-512 8×48, or 6×64 where N's last tile fits it better (head size 64), in
// gemm_avx512.cpp; AVX2+FMA 6×16 in gemm_avx2.cpp; portable 4×8 below. Blocking: KC = 1024,
// MC = 144, NC = 768 (see blocking_for for why).
//
// Threads: C is cut into a gm × gn grid of rectangles on micro-tile boundaries, about two per thread,
// handed out dynamically; each task runs the serial nest above with its own packing buffers. The grid shape
// minimises the redundant packing (gn·M·K + gm·K·N moves), so M = 256 products split along N only, M = 1024
// ones 2 × 2, and the weight gradient Aᵀ·B (M = C = 768, N = OC, K = B·T) along N. Buffers are thread-local and only
// ever grow, so steady state allocates nothing (fresh pages per call would fault on every GEMM).
#include "cpu/gemm.h"

#include "cpu/simd.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/gemm_kernels.h"
#include "cpu/threading.h"

namespace gn {

// float storage written through its bit pattern (bf16 widening) without breaking strict aliasing
typedef uint32_t __attribute__((may_alias)) u32_alias;

namespace gemm_detail {

// ---- portable fallback: 4×8 tile in plain loops (the compiler vectorises what the baseline ISA allows)
namespace {
constexpr int kGenMR = 4, kGenNR = 8;  // 8 accumulators in SSE registers (4×16 spilled: 4× slower)

template <bool PACKED>
void ukernel_generic(const TileArgs& t) {
  float acc[kGenMR][kGenNR] = {};
  const float* a = t.a;
  const float* b = t.b;
  const int64_t rsa = PACKED ? 1 : t.rsa, csa = PACKED ? kGenMR : t.csa;
  for (int64_t k = 0; k < t.kc; ++k) {
    for (int i = 0; i < kGenMR; ++i) {
      const float ai = a[i * rsa];
      for (int j = 0; j < kGenNR; ++j) acc[i][j] += ai * b[j];
    }
    a += csa;
    b += t.rsb;
  }
  for (int64_t i = 0; i < t.mr; ++i) {
    float* c = t.c + i * t.ldc;
    for (int64_t j = 0; j < t.nr; ++j) {
      float r = t.alpha * acc[i][j] + (t.bias ? t.bias[j] : 0.0f);
      c[j] = t.load_c ? c[j] + r : r;
    }
  }
}

const Isa& isa_generic() {
  static const Isa isa{"generic", kGenMR, kGenNR, &ukernel_generic<true>, &ukernel_generic<false>,
                       &pack_t_scalar, nullptr};
  return isa;
}

const Isa& pick_isa() {
  static const Isa* chosen = [] {
    const char* env = std::getenv("GPT_NATIVE_ISA");
    const std::string want = env ? env : "";
    if (want == "generic") return &isa_generic();
#ifdef GN_GEMM_X86
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    if (avx512 && want != "avx2") return &isa_avx512();
    if (avx2) return &isa_avx2();
#endif
    return &isa_generic();
  }();
  return *chosen;
}

// Cache blocking, measured on Zen 5 (2 cores, 48 KB L1d, 1 MB L2, 32 MB L3) with both cores busy: a deep
// KC wins (≈ +10% over KC = 256 at the GPT-2 shapes): C tiles are loaded and stored once per KC block, so
// KC ≥ 768 touches C once for K = 768, and the kernel's prologue/epilogue is amortised over more FMAs.
// The A micro-panel (MR·KC·4 = 32 KB) then stays in L1 while the B micro-panel (KC·NR·4 ≈ 200 KB) and the
// A block (MC·KC·4 ≈ 590 KB) share L2; the B block (KC·NC·4 = 3 MB per thread) stays in L3 next to the
// other thread's (NC = 3072, 12 MB each, was 5–10% slower on the 50257-wide LM-head products).
// K, M are cut into equal blocks (never a full block plus a sliver).
struct Blocking {
  int64_t mc, kc, nc;
};

Blocking blocking_for(const Isa& isa) {
  Blocking b{144, 1024, 768};
  b.mc = std::max<int64_t>(isa.mr, b.mc / isa.mr * isa.mr);
  b.nc = std::max<int64_t>(isa.nr, b.nc / isa.nr * isa.nr);
  return b;
}

// Thread-local, 64-byte aligned, grow-only scratch.
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  ~Scratch() { std::free(p); }
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      size_t bytes = ((want * sizeof(float) + 4095) / 4096) * 4096;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) { n = 0; throw std::bad_alloc(); }
      n = bytes / sizeof(float);
    }
    return p;
  }
};
struct Buffers {
  Scratch a, b, edge_a, edge_b, widen, partial;
};
thread_local Buffers tl_buf;

struct Problem {
  bool transA, transB;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float* C;
  int64_t ldc;
  bool accumulate;
  const float* bias;
  const uint16_t* B16;  // B in bf16 instead of B (gemm_bf16b): always packed, widened on the way
  bool bf16math = false;  // bf16 arithmetic (math mode bf16): both operands packed, then paired (isa.pair_panel)
};

// dst[k·W + j] = src[k·ld + j] for j < w, zero for w ≤ j < W: the non-transposing pack. Fixed widths get
// their own loop so the copy is a few vector moves per k rather than a memcpy call.
template <int W>
void copy_rows_fixed(const float* src, int64_t ld, int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k)
    for (int j = 0; j < W; ++j) dst[k * W + j] = src[k * ld + j];
}
void copy_rows(const float* src, int64_t ld, int64_t kc, int64_t w, int64_t W, float* dst) {
  if (w == W) {
    switch (W) {
      case 4: return copy_rows_fixed<4>(src, ld, kc, dst);
      case 6: return copy_rows_fixed<6>(src, ld, kc, dst);
      case 8: return copy_rows_fixed<8>(src, ld, kc, dst);
      case 16: return copy_rows_fixed<16>(src, ld, kc, dst);
      case 48: return copy_rows_fixed<48>(src, ld, kc, dst);
      case 64: return copy_rows_fixed<64>(src, ld, kc, dst);
      default: break;
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    float* d = dst + k * W;
    for (int64_t j = 0; j < w; ++j) d[j] = src[k * ld + j];
    for (int64_t j = w; j < W; ++j) d[j] = 0.0f;
  }
}

// dst[r·W + j] = bf16 src[r·ld + j] widened to float for j < w, zero for w ≤ j < W.
GN_MULTIVERSION
void widen_rows(const uint16_t* src, int64_t ld, int64_t rows, int64_t w, int64_t W, float* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* s = src + r * ld;
    u32_alias* d = reinterpret_cast<u32_alias*>(dst + r * W);
    for (int64_t j = 0; j < w; ++j) d[j] = static_cast<uint32_t>(s[j]) << 16;
    for (int64_t j = w; j < W; ++j) d[j] = 0;
  }
}

// One MR-tall micro-panel of op(A): rows [i0, i0+mr) and columns [p0, p0+kc), layout [kc][MR], zero padded.
void pack_a_panel(const Isa& isa, const Problem& x, int64_t i0, int64_t mr, int64_t p0, int64_t kc, float* dst) {
  const int64_t MR = isa.mr;
  if (x.transA) {  // A stored (K,M): each k is a contiguous run of mr floats
    const float* src = x.A + p0 * x.lda + i0;
    copy_rows(src, x.lda, kc, mr, MR, dst);
  } else {  // A stored (M,K): a transpose of mr rows
    isa.pack_t(x.A + i0 * x.lda + p0, x.lda, kc, mr, MR, dst);
  }
}

// One NR-wide micro-panel of op(B): rows [p0, p0+kc) and columns [j0, j0+nr), layout [kc][NR], zero padded.
void pack_b_panel(const Isa& isa, const Problem& x, int64_t p0, int64_t kc, int64_t j0, int64_t nr, float* dst) {
  const int64_t NR = isa.nr;
  if (x.B16) {
    if (x.transB) {  // widen the nr rows (N,K) into scratch, then the ISA's transposing pack
      float* w = tl_buf.widen.get(nr * kc);
      widen_rows(x.B16 + j0 * x.ldb + p0, x.ldb, nr, kc, kc, w);
      isa.pack_t(w, kc, kc, nr, NR, dst);
    } else {
      widen_rows(x.B16 + p0 * x.ldb + j0, x.ldb, kc, nr, NR, dst);
    }
    return;
  }
  if (x.transB) {  // B stored (N,K): a transpose of nr rows
    isa.pack_t(x.B + j0 * x.ldb + p0, x.ldb, kc, nr, NR, dst);
  } else {
    copy_rows(x.B + p0 * x.ldb + j0, x.ldb, kc, nr, NR, dst);
  }
}

// The serial blocked nest over the rectangle C[m0:m1, n0:n1].
void gemm_rect(const Isa& isa, const Problem& x, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t MR = isa.mr, NR = isa.nr;
  const Blocking bl = blocking_for(isa);
  const int64_t M = m1 - m0, N = n1 - n0;
  // Packing A costs M·K moves per NC block and pays back over N/NR micro-kernel calls; packing a plain B
  // costs K·N moves and pays back over M/MR calls. Transposed B is always packed (the kernel needs rows).
  const bool bf = x.bf16math;
  const bool packA = bf || N > 2 * NR;
  const bool packB = bf || x.B16 || x.transB || M > 128;
  Buffers& buf = tl_buf;
  const int64_t ncap = std::min(bl.nc, (N + NR - 1) / NR * NR);
  // Equal A blocks rather than full ones plus a sliver: a 32-row last block would load each B micro-panel
  // into L1 for only 4 tiles.
  const int64_t mblocks = (M + bl.mc - 1) / bl.mc;
  const int64_t mstep = ((M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
  const int64_t mcap = std::min(mstep, (M + MR - 1) / MR * MR);
  const int64_t kblocks = (x.K + bl.kc - 1) / bl.kc;
  const int64_t kstep = (x.K + kblocks - 1) / kblocks;
  const int64_t kcap = kstep;
  float* Bp = packB ? buf.b.get(kcap * ncap) : nullptr;
  float* Ap = packA ? buf.a.get(kcap * mcap) : nullptr;
  float* edgeA = packA ? nullptr : buf.edge_a.get(kcap * MR);
  float* edgeB = packB ? nullptr : buf.edge_b.get(kcap * NR);

  TileArgs t{};
  t.ldc = x.ldc;
  t.alpha = x.alpha;
  for (int64_t jc = n0; jc < n1; jc += bl.nc) {
    const int64_t nc = std::min(bl.nc, n1 - jc);
    for (int64_t pc = 0; pc < x.K; pc += kstep) {
      const int64_t kc = std::min(kstep, x.K - pc);
      const bool first = pc == 0;
      t.kc = bf ? (kc + 1) / 2 : kc;  // bf16 arithmetic: pairs of k
      t.load_c = !first || x.accumulate;
      if (packB)
        for (int64_t jr = 0; jr < nc; jr += NR) {
          pack_b_panel(isa, x, pc, kc, jc + jr, std::min(NR, nc - jr), Bp + jr * kc);
          if (bf) isa.pair_panel(Bp + jr * kc, kc, NR);
        }
      for (int64_t ic = m0; ic < m1; ic += mstep) {
        const int64_t mc = std::min(mstep, m1 - ic);
        if (packA)
          for (int64_t ir = 0; ir < mc; ir += MR) {
            pack_a_panel(isa, x, ic + ir, std::min(MR, mc - ir), pc, kc, Ap + ir * kc);
            if (bf) isa.pair_panel(Ap + ir * kc, kc, MR);
          }
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min(NR, nc - jr);
          if (packB) {
            t.b = Bp + jr * kc;
            t.rsb = NR;
          } else if (nr == NR) {
            t.b = x.B + pc * x.ldb + jc + jr;
            t.rsb = x.ldb;
          } else {
            pack_b_panel(isa, x, pc, kc, jc + jr, nr, edgeB);
            t.b = edgeB;
            t.rsb = NR;
          }
          t.nr = nr;
          t.bias = first && x.bias ? x.bias + jc + jr : nullptr;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min(MR, mc - ir);
            t.mr = mr;
            t.c = x.C + (ic + ir) * x.ldc + jc + jr;
            if (bf) {
              t.a = Ap + ir * kc;
              isa.packed_bf16(t);
            } else if (packA) {
              t.a = Ap + ir * kc;
              isa.packed(t);
            } else if (mr == MR) {
              if (x.transA) {
                t.a = x.A + pc * x.lda + ic + ir;
                t.rsa = 1;
                t.csa = x.lda;
              } else {
                t.a = x.A + (ic + ir) * x.lda + pc;
                t.rsa = x.lda;
                t.csa = 1;
              }
              isa.strided(t);
            } else {
              pack_a_panel(isa, x, ic + ir, mr, pc, kc, edgeA);
              t.a = edgeA;
              isa.packed(t);
            }
          }
        }
      }
    }
  }
}

// K = 0: C = (accumulate ? C : 0) + bias.
void gemm_k0(const Problem& x) {
  for (int64_t m = 0; m < x.M; ++m) {
    float* c = x.C + m * x.ldc;
    for (int64_t n = 0; n < x.N; ++n) {
      const float b = x.bias ? x.bias[n] : 0.0f;
      c[n] = x.accumulate ? c[n] + b : b;
    }
  }
}

}  // namespace

void pack_t_scalar(const float* src, int64_t ld, int64_t kc, int64_t nr, int64_t NR, float* dst) {
  for (int64_t j = 0; j < nr; ++j) {
    const float* s = src + j * ld;
    for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = s[k];
  }
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t j = nr; j < NR; ++j) dst[k * NR + j] = 0.0f;
}

}  // namespace gemm_detail


// ---------------------------------------------------------------------------------- small M (decoding)
// With M <= 8 (batch-1 decoding, speculative verification, attention over a KV cache one query at a time) a
// micro-tile would compute mostly padding: instead stream B once. A·B: K is cut into a fixed number of row ranges (chunks_for(K));
// each sums whole contiguous rows of B into its own (M,N) partial, vectorised over n, and one pass adds the
// partials in range order, so the result does not depend on the thread count or on M. A·Bᵀ: each C element
// is a dot product of two contiguous rows.
namespace small_m {
constexpr int64_t kMaxM = 8;

// K row ranges of A·B: up to 8, at least 96 rows each (K < 192: one range, then N is cut among the threads)
inline int64_t chunks_for(int64_t K) { return std::max<int64_t>(1, std::min<int64_t>(8, K / 96)); }

static inline float ld(const float* p) { return *p; }
static inline float ld(const uint16_t* p) { return bf16_to_f32(*p); }

// widens (or copies) w elements of a B row into float scratch, so the accumulation loop is the same for both
static inline const float* row(const float* b, int64_t, float*) { return b; }
static inline const float* row(const uint16_t* b, int64_t w, float* tmp) {
  gemm_detail::widen_rows(b, w, 1, w, w, tmp);
  return tmp;
}

// A·B over the k rows [k0, k1) of B, all N columns: P (M,N) = Σ_k a(m,k) · B[k, :]. Whole rows of B are read
// front to back (one contiguous stream per task: the hardware prefetchers keep DRAM busy), four rows per pass
// over P so P is loaded and stored once per four FMAs. P has M rows of N floats and stays in L1/L2.
template <typename TB>
static inline __attribute__((always_inline)) void nn_rows_body(int64_t M, int64_t k0, int64_t k1, int64_t N,
    const float* A, int64_t lda, bool transA, const TB* B, int64_t ldb, float* P, int64_t ldp) {
  auto a_at = [&](int64_t m, int64_t k) { return transA ? A[k * lda + m] : A[m * lda + k]; };
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < N; ++j) P[m * ldp + j] = 0.0f;
  int64_t k = k0;
  for (; k + 4 <= k1; k += 4) {
    const TB *b0 = B + k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
    for (int64_t m = 0; m < M; ++m) {
      const float a0 = a_at(m, k), a1 = a_at(m, k + 1), a2 = a_at(m, k + 2), a3 = a_at(m, k + 3);
      float* p = P + m * ldp;
      for (int64_t j = 0; j < N; ++j) p[j] += a0 * ld(b0 + j) + a1 * ld(b1 + j) + a2 * ld(b2 + j) + a3 * ld(b3 + j);
    }
  }
  for (; k < k1; ++k) {
    const TB* b0 = B + k * ldb;
    for (int64_t m = 0; m < M; ++m) {
      const float a0 = a_at(m, k);
      float* p = P + m * ldp;
      for (int64_t j = 0; j < N; ++j) p[j] += a0 * ld(b0 + j);
    }
  }
}

template <typename TB>
static inline __attribute__((always_inline)) void nt_body(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha,
    const float* A, int64_t lda, bool transA, const TB* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
    const float* bias) {
  float arow[kMaxM][1024];
  const bool staged = K <= 1024;
  if (staged)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) arow[m][k] = transA ? A[k * lda + m] : A[m * lda + k];
  float tmp[1024];
  for (int64_t n = n0; n < n1; ++n) {
    const TB* b = B + n * ldb;
    const float* bw = staged ? row(b, K, tmp) : nullptr;  // a bf16 row widened once for the M dot products
    for (int64_t m = 0; m < M; ++m) {
      float d;
      if (staged) {
        const float* a = arow[m];
        d = lane_sum(K, [&](int64_t k) { return a[k] * bw[k]; });
      } else {
        d = lane_sum(K, [&](int64_t k) { return (transA ? A[k * lda + m] : A[m * lda + k]) * ld(b + k); });
      }
      float v = alpha * d;
      if (accumulate) v += C[m * ldc + n];
      if (bias) v += bias[n];
      C[m * ldc + n] = v;
    }
  }
}

#define GN_SMALL_M_NT(TB)                                                                                       \
  GN_MULTIVERSION void nt(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A,           \
                          int64_t lda, bool transA, const TB* B, int64_t ldb, float* C, int64_t ldc,           \
                          bool accumulate, const float* bias) {                                                \
    nt_body<TB>(M, n0, n1, K, alpha, A, lda, transA, B, ldb, C, ldc, accumulate, bias);                        \
  }
#define GN_SMALL_M_NN(TB)                                                                                       \
  GN_MULTIVERSION void nn_rows(int64_t M, int64_t k0, int64_t k1, int64_t N, const float* A, int64_t lda,      \
                               bool transA, const TB* B, int64_t ldb, float* P, int64_t ldp) {                 \
    nn_rows_body<TB>(M, k0, k1, N, A, lda, transA, B, ldb, P, ldp);                                            \
  }
GN_SMALL_M_NT(float)
GN_SMALL_M_NT(uint16_t)
GN_SMALL_M_NN(float)
GN_SMALL_M_NN(uint16_t)
#undef GN_SMALL_M_NT
#undef GN_SMALL_M_NN

// C (M,N) = alpha · Σ_t P_t + (accumulate ? C : 0) + bias: the partial sums of the K ranges, in task order.
GN_MULTIVERSION
void combine(int64_t M, int64_t n0, int64_t n1, int64_t N, int64_t tasks, const float* P, float alpha, float* C,
             int64_t ldc, bool accumulate, const float* bias) {
  for (int64_t m = 0; m < M; ++m) {
    float* c = C + m * ldc;
    for (int64_t j = n0; j < n1; ++j) {
      float s = P[m * N + j];
      for (int64_t t = 1; t < tasks; ++t) s += P[(t * M + m) * N + j];
      float v = alpha * s;
      if (accumulate) v += c[j];
      if (bias) v += bias[j];
      c[j] = v;
    }
  }
}
}  // namespace small_m

const char* gemm_isa() { return gemm_detail::pick_isa().name; }

// ---------------------------------------------------------------------------------- math mode
namespace {
std::atomic<bool> g_math_bf16{false};
bool bf16_arithmetic_available() {
  static const bool ok = [] {
#ifdef GN_GEMM_X86
    __builtin_cpu_init();
    return gemm_detail::pick_isa().packed_bf16 != nullptr && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
  }();
  return ok;
}
}  // namespace

bool set_gemm_math_bf16(bool on) {
  const bool now = on && bf16_arithmetic_available();
  g_math_bf16.store(now);
  return now;
}
bool gemm_math_bf16() { return g_math_bf16.load(std::memory_order_relaxed); }

namespace {
template <typename TB>
void gemm_any(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const TB* B, int64_t ldb,
              float* C, int64_t ldc, bool accumulate, const float* bias, ThreadPool* pool) {
  using namespace gemm_detail;
  if (M <= 0 || N <= 0) return;
  if (M <= small_m::kMaxM && K > 0) {
    const bool par = pool && 2 * M * N * K >= (int64_t)1 << 18;
#ifdef GN_GEMM_X86
    const bool avx512 = &pick_isa() == &isa_avx512();
#else
    const bool avx512 = false;
#endif
    const bool bf16_avx512 = avx512 && std::is_same_v<TB, uint16_t>;
    if (!transB) {
      // A·B by fixed K ranges, whatever the threads (see the namespace comment): the ranges run as tasks, or,
      // with a single range, its columns are cut among the threads.
      const int64_t chunks = small_m::chunks_for(K);
      float* P = tl_buf.partial.get(chunks * M * N);
      auto rows = [&](int64_t c, int64_t n0, int64_t n1) {
        const int64_t k0 = K * c / chunks, k1 = K * (c + 1) / chunks;
        float* Pc = P + c * M * N + n0;
#ifdef GN_GEMM_X86
        if constexpr (std::is_same_v<TB, uint16_t>)
          if (bf16_avx512) return small_nn_rows_bf16_avx512(M, k0, k1, n1 - n0, A, lda, transA, B + n0, ldb, Pc, N);
#endif
        small_m::nn_rows(M, k0, k1, n1 - n0, A, lda, transA, B + n0, ldb, Pc, N);
      };
      if (par && chunks > 1) pool->run_tasks(chunks, [&](int64_t c, int) { rows(c, 0, N); });
      else if (par) pool->parallel_for(N, [&](int64_t b, int64_t e, int) { rows(0, b, e); }, 256);
      else for (int64_t c = 0; c < chunks; ++c) rows(c, 0, N);
      auto sum = [&](int64_t n0, int64_t n1, int) { small_m::combine(M, n0, n1, N, chunks, P, alpha, C, ldc, accumulate, bias); };
      if (par && M * N >= 8192) pool->parallel_for(N, sum, 1024);
      else sum(0, N, 0);
      return;
    }
    // A·Bᵀ: each C element is a dot product of two contiguous rows; N is cut among the tasks.
    const float* arows[small_m::kMaxM];
    std::vector<float> staged;  // Aᵀ rows made contiguous for the AVX-512 A·Bᵀ kernel
    if (avx512) {
      if (transA) {
        staged.resize(M * K);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t k = 0; k < K; ++k) staged[m * K + k] = A[k * lda + m];
      }
      for (int64_t m = 0; m < M; ++m) arows[m] = transA ? staged.data() + m * K : A + m * lda;
    }
    auto run = [&](int64_t n0, int64_t n1, int) {
#ifdef GN_GEMM_X86
      if (avx512) return small_nt_avx512(M, n0, n1, K, alpha, arows, B, ldb, C, ldc, accumulate, bias);
#endif
      small_m::nt(M, n0, n1, K, alpha, A, lda, transA, B, ldb, C, ldc, accumulate, bias);
    };
    if (par) pool->parallel_for(N, run, 64);
    else run(0, N, 0);
    return;
  }
  Problem x{transA, transB, M, N, K, alpha, A, lda, nullptr, ldb, C, ldc, accumulate, bias, nullptr, false};
  if constexpr (std::is_same_v<TB, uint16_t>) x.B16 = B;
  else x.B = B;
  if (K <= 0) { gemm_k0(x); return; }
  const Isa* pick = &pick_isa();
  auto waste = [N](int64_t nr) { return (N + nr - 1) / nr * nr - N; };
  if (pick->alt && waste(pick->alt->nr) < waste(pick->nr)) pick = pick->alt;
  const Isa& isa = *pick;
  x.bf16math = gemm_math_bf16() && isa.packed_bf16 != nullptr;

  const int threads = pool ? pool->available_threads() : 1;
  const double flops = 2.0 * static_cast<double>(M) * N * K;
  if (threads <= 1 || flops < 4e6) {
    gemm_rect(isa, x, 0, M, 0, N);
    return;
  }
  // Cut C into a gm × gn grid of rectangles on micro-tile boundaries, handed out dynamically. Every rectangle
  // packs its own rows of A and columns of B, so a grid costs gn·M·K + gm·K·N packing moves; for a given
  // number of rectangles take the cheapest grid. Two rectangles per thread keep both cores busy to the end
  // when one is slowed by another process, but only where the extra packing is cheap (at most 16 MB more,
  // i.e. mostly from L3): the LM head's dinp A·Bᵀ (K = 50257) would re-read a 50 MB A from DRAM.
  const int64_t unitsM = (M + isa.mr - 1) / isa.mr, unitsN = (N + isa.nr - 1) / isa.nr;
  struct Grid { int64_t gm, gn; double cost; };
  auto grid_for = [&](int64_t want) {
    Grid g{1, 1, -1};
    const int64_t target = std::min(want, unitsM * unitsN);
    for (int64_t tm = 1; tm <= std::min(target, unitsM); ++tm) {
      const int64_t tn = std::min(unitsN, (target + tm - 1) / tm);
      if (tm * tn < target) continue;
      const double cost = static_cast<double>(tn) * M * K + static_cast<double>(tm) * K * N;
      if (g.cost < 0 || cost < g.cost) g = Grid{tm, tn, cost};
    }
    return g;
  };
  Grid g = grid_for(threads);
  if (flops >= 1e8) {
    const Grid finer = grid_for(2 * threads);
    if ((finer.cost - g.cost) * sizeof(float) <= 16e6) g = finer;
  }
  const int64_t gm = g.gm, gn = g.gn;
  pool->run_tasks(gm * gn, [&](int64_t task, int) {
    const int64_t i = task / gn, j = task % gn;
    const int64_t mb = std::min(M, unitsM * i / gm * isa.mr), me = std::min(M, unitsM * (i + 1) / gm * isa.mr);
    const int64_t nb = std::min(N, unitsN * j / gn * isa.nr), ne = std::min(N, unitsN * (j + 1) / gn * isa.nr);
    if (mb < me && nb < ne) gemm_rect(isa, x, mb, me, nb, ne);
  });
}
}  // namespace

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate, const float* bias, ThreadPool* pool) {
  gemm_any(transA, transB, M, N, K, alpha, A, lda, B, ldb, C, ldc, accumulate, bias, pool);
}

void gemm_bf16b(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const uint16_t* B, int64_t ldb,
                float* C, int64_t ldc, bool accumulate, const float* bias, ThreadPool* pool) {
  gemm_any(transA, transB, M, N, K, alpha, A, lda, B, ldb, C, ldc, accumulate, bias, pool);
}

namespace {
GN_MULTIVERSION
void round_bf16(uint16_t* dst, const float* src, int64_t n) {
  const u32_alias* s = reinterpret_cast<const u32_alias*>(src);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = s[i];
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // to nearest, ties to even; overflow → inf
    dst[i] = static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : r);
  }
}
}  // namespace

void f32_to_bf16(uint16_t* dst, const float* src, int64_t n, ThreadPool* pool) {
  if (pool && n >= (int64_t)1 << 16)
    pool->parallel_for(n, [&](int64_t b, int64_t e, int) { round_bf16(dst + b, src + b, e - b); }, (int64_t)1 << 14);
  else
    round_bf16(dst, src, n);
}

}  // namespace gn
