// GEMM internals shared by the blocked driver (gemm.cpp) and the per-ISA micro-kernels
// (gemm_avx512.cpp, gemm_avx2.cpp). Not part of the kernel interface: include gemm.h for that.
//
// A micro-kernel computes one MR×NR tile of C from kc steps of the inner dimension:
//   acc(MR,NR) = Σ_k a(i,k) · b(k,j)
//   C[i][j]    = alpha·acc[i][j] + (load_c ? C[i][j] : 0) + (bias ? bias[j] : 0)     for i < mr, j < nr
// a(i,k) is read at a[i·rsa + k·csa]: packed panels use rsa = 1, csa = MR (the "packed" entry point has
// those strides built in); the "strided" entry point reads A in place (rsa = lda, csa = 1 for A, or
// rsa = 1, csa = lda for Aᵀ), which is how small shapes skip packing.
// b(k,j) is read at b[k·rsb + j] and must have NR readable columns: a packed panel (rsb = NR, zero padded)
// or, for a full-width tile, B itself (rsb = ldb).
// a must have MR readable rows for every k: a full tile or a zero-padded packed panel.
#pragma once
#include <cstdint>

namespace gn {
namespace gemm_detail {

struct TileArgs {
  int64_t kc;
  const float* a;
  int64_t rsa, csa;   // used by the strided entry point only
  const float* b;
  int64_t rsb;
  float* c;
  int64_t ldc;
  int64_t mr, nr;     // valid rows and columns of this tile (≤ MR, ≤ NR)
  float alpha;
  bool load_c;
  const float* bias;  // already offset to the tile's first column, or nullptr
};

using ukernel_fn = void (*)(const TileArgs&);

// dst[k·NR + j] = B[j·ldb + k] for j < nr, k < kc; zero for nr ≤ j < NR.
// Packs one NR-wide micro-panel of a transposed operand (Bᵀ stored (N,K), or A stored (M,K) for MR rows).
using pack_t_fn = void (*)(const float* src, int64_t ld, int64_t kc, int64_t nr, int64_t NR, float* dst);

struct Isa {
  const char* name;
  int mr, nr;
  ukernel_fn packed;    // a from a packed panel
  ukernel_fn strided;   // a read in place with (rsa, csa)
  pack_t_fn pack_t;     // transposing pack (vectorised where the ISA allows)
  const Isa* alt;       // another tile shape of the same ISA, used when it wastes less of N's edge tile
  // bf16 arithmetic (math mode bf16; nullptr where the ISA has none): the micro-kernel over pair panels
  // (t.kc counts pairs of k) and the in-place conversion of an fp32 panel (kc, W) into ceil(kc/2) rows of pairs
  ukernel_fn packed_bf16 = nullptr;
  void (*pair_panel)(float* panel, int64_t kc, int64_t W) = nullptr;
};

void pack_t_scalar(const float* src, int64_t ld, int64_t kc, int64_t nr, int64_t NR, float* dst);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GN_GEMM_X86 1
const Isa& isa_avx512();
const Isa& isa_avx2();
// Few rows (gemm.cpp's small-M path, M ≤ 8) on AVX-512: A·Bᵀ over M contiguous A rows, B fp32 or bf16, and
// bf16 A·B by K ranges.
void small_nt_avx512(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* const* a,
                     const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias);
void small_nt_avx512(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* const* a,
                     const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, const float* bias);
// P (M,N), row stride ldp, = Σ_{k0 ≤ k < k1} a(m,k) · B[k, :] (gemm.cpp's small-M A·B by K ranges)
void small_nn_rows_bf16_avx512(int64_t M, int64_t k0, int64_t k1, int64_t N, const float* A, int64_t lda,
                               bool transA, const uint16_t* B, int64_t ldb, float* P, int64_t ldp);
#endif

}  // namespace gemm_detail
}  // namespace gn
