// Flash attention on the tensor cores (FlashAttention-2's loop structure, written for this package): causal,
// optionally banded, multi-head attention with bf16 q, k, v, out and fp32 softmax statistics, same contract as
// attention.cu (kernels.h): nothing of size (Tq, Tk) is stored, the forward keeps one logsumexp per row and the
// backward recomputes the weights from it. Products are mma.sync.m16n8k16 (bf16 in, fp32 sums; mma.cuh).
//
//   row i (position p = q_pos0 + i) sees key j when  j <= p  and, with window w > 0,  j > p - w
//   S = scale·Q·Kᵀ,  P = softmax(S),  lse_i = log Σ_j exp(S_ij),  out = (P∘M·keep)·V   (M: the dropout mask)
//   backward: D_i = dout_i·out_i,  dP = dout·Vᵀ,  dS = P∘(dP∘M·keep − D),  dQ = scale·dS·K,
//             dK = scale·dSᵀ·Q,  dV = (P∘M·keep)ᵀ·dout
//
// Kernels (blocks of 4 warps; each warp owns 16 rows of a 64-row block; tiles of 64 rows in shared memory):
//   flash_forward_kernel  block per (64 queries, b·NH + h): Q fragments in registers; loops over 64-key tiles of
//                         K and V with an online softmax in log2 units (exp2_ftz; running max and sum per row, kept
//                         per thread and added across the row's 4 threads at the end; a warp moves its rows' base
//                         and rescales their output accumulators only when a score passes the base by 2^8, so most
//                         tiles skip that); P goes from the score accumulators straight into the A fragments of P·V
//                         (mma.cuh)
//   flash_D_kernel        warp per query row: D_i
//   flash_dq_kernel       block per (64 queries, b·NH + h): loops over key tiles, recomputes P and dP, dQ += dS·K
//   flash_dkv_kernel      block per (64 keys, b·NH + h): loops over the query tiles that see them, recomputes Pᵀ
//                         and dPᵀ, dV += (P∘M·keep)ᵀ·dout, dK += dSᵀ·Q (its K and V stay in shared memory and
//                         are read as A operands there: the registers hold the dK and dV accumulators)
// setAttention('flash2') (an opt-in until a GPU run times it against 'flash'; built for sm_90+, elsewhere it runs as
// 'flash'): the forward kernel with 32 query rows a warp (MT = 2, blocks of 128 queries; each K and V fragment
// read from shared memory serves both 16-row m-tiles, and a key tile's scores are taken 32 keys at a time so that
// both m-tiles' fit beside the output accumulators; warps whose rows see none of a key tile skip its products);
// the dQ kernel likewise (flash_dq2_kernel: 32 rows a warp, keys 16 at a time), computing D itself (no
// flash_D_kernel launch); all three kernels with their streamed tiles double-buffered: the next K/V (forward, dQ)
// or Q/dout (dK/dV) tile streams in with cp.async (no registers) during the current one's products (next_kv;
// flash_dkv_pipe_kernel, in dynamic shared memory). The emulator lands each cp.async copy only at the wait that
// covers it (a missing wait or commit fails the tests there); gpu-check's racecheck/synccheck run on the GPU.
// By default no atomics: dQ and dK/dV come from separate kernels (P is recomputed in both), so results are
// deterministic. setFlashBackward('atomic') (an opt-in until a GPU run times it; sm_90+ and HD = 64, elsewhere it
// runs split) is FlashAttention-2's backward: flash_D_kernel zeroes an fp32 dQ accumulator, the dK/dV kernel (DQ)
// writes each query tile's dSᵀ to shared memory and adds dS·K into the accumulator with 16-byte atomics, and
// flash_dq_store_kernel scales and rounds it into dq: five products a tile instead of seven, one pass over the
// scores instead of two, and dQ's sums in no fixed order.
// Scores that no row may see are -inf before the softmax; tiles that lie wholly inside every row's range skip
// the mask. Query blocks run the longest first (causal rows near the end see the most keys).
// Operands come from shared memory through ldmatrix (mma.cuh: .x4, and .x4.trans for the B operand of P·V-like
// products, whose tile is row-major in k). Shared rows are padded by 8 bf16: 16-byte aligned rows for the tile
// loads and ldmatrix, and the 8 rows an ldmatrix phase reads fall in distinct banks.
// Head sizes: HS = 64 (every GPT-2 size, GPT-3 Small and Medium) and 32, a template each, in every form; HS = 80
// (GPT-3 2.7B), 96 (GPT-3 Large) and 128 (GPT-3 XL, 6.7B, 13B, 175B) with 16 query rows a warp in the forward and dQ
// kernels (flash2's 32 would not fit their registers; 'flash2' runs them as 'flash'), dQ's kernel taking a key tile
// 32 (80, 96) or 16 (128) keys at a time, and the pipelined dK/dV kernel (its six tiles in dynamic shared memory:
// flash_dkv_kernel's four would pass the 48 KiB of static shared memory) taking a query tile 32 or 16 queries at a
// time, so the dK and dV accumulators fit beside the scores. That dK/dV kernel is built for sm_90 and later:
// elsewhere the backward at these sizes takes the cuBLAS path with the lse the flash forward wrote. At HS = 80 the
// products' five 16-column chunks go two at a time and the last alone. The host takes the cuBLAS path for the
// other head sizes (ops.cc).
// Dropout is a template flag: without it, the kernels carry no hash code (fewer registers).
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cuda/device.cuh"
#include "cuda/kernels.h"
#include "cuda/mma.cuh"
#include "cuda/rng.h"

namespace gn {
namespace cuda {

namespace {

// flash2's kernels (the PIPE forms) are built for sm_90 and later (at sm_80 ptxas spilled some of them): compiled
// for an older architecture, their bodies are a trap, and the host runs the flash kernels there (flash2_built)
#if defined(__CUDA_ARCH__) && !defined(__CUDA_EMU__) && __CUDA_ARCH__ < 900
#define GN_FLASH2_TRAP()  \
  do {                    \
    __trap();             \
    return;               \
  } while (0)
#else
#define GN_FLASH2_TRAP() (void)0
#endif

constexpr int kRows = 64;  // rows of a block: queries (forward, dq) or keys (dkv); 16 per warp
constexpr int kTile = 64;  // rows of a streamed tile: keys (forward, dq) or queries (dkv)
constexpr int kThreads = 128;
constexpr int kPad = 8;
constexpr float kLn2 = 0.6931471805599453f;
// The forward's online softmax keeps a row's base (its running max) until a score passes it by more than this, in
// log2 units (exponentials up to 2^8 before the rescale): most tiles then skip rescaling the output accumulators
constexpr float kRescaleLog2 = 8.0f;

struct FDims {  // positions and counts in int (the host checks Tk < 2^30): fewer registers than int64
  int B, Tq, Tk, NH, q_pos0, window;
  float dropout, keep, scale, scale_log2;  // scale_log2 = scale·log2(e): scores in log2 units
  uint64_t seed;
  int64_t qsb, qst, ksb, kst, vsb, vst, osb, ost;
  bool vec;  // q, k, v, dout rows 16-byte aligned: tiles load 8 bf16 at a time
};

struct alignas(16) U4 {
  uint32_t x, y, z, w;
};
// 16 aligned bytes (plain copies on the emulator, where the host compiler's aliasing rules apply)
__device__ __forceinline__ U4 load_u4(const bf16* p) {
#ifdef __CUDA_EMU__
  emu_check_aligned(p, 16, "load_u4");
  U4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
#else
  return *reinterpret_cast<const U4*>(p);
#endif
}
__device__ __forceinline__ void store_u4(bf16* p, const U4& v) {
#ifdef __CUDA_EMU__
  emu_check_aligned(p, 16, "store_u4");
  std::memcpy(p, &v, sizeof v);
#else
  *reinterpret_cast<U4*>(p) = v;
#endif
}

template <int HD>
struct alignas(16) Tile {
  bf16 x[kTile][HD + kPad];
};

// rows r0 .. r0+63 of a (T, HD) slice, element (t, d) at base[t·st + d], into a shared tile; rows >= T are zeros
template <int HD>
__device__ __forceinline__ void load_tile(Tile<HD>& tile, const bf16* base, int64_t st, int64_t r0, int64_t T,
                                          bool vec) {
  constexpr int C8 = HD / 8;
  for (int c = threadIdx.x; c < kTile * C8; c += kThreads) {
    const int r = c / C8, d = (c % C8) * 8;
    const int64_t row = r0 + r;
    U4 val = {0u, 0u, 0u, 0u};
    if (row < T) {
      const bf16* src = base + row * st + d;
      if (vec) {
        val = load_u4(src);
      } else {
        val.x = pack_bf16(src[0], src[1]);
        val.y = pack_bf16(src[2], src[3]);
        val.z = pack_bf16(src[4], src[5]);
        val.w = pack_bf16(src[6], src[7]);
      }
    }
    store_u4(&tile.x[r][d], val);
  }
}

// A fragments of the warp's 16 rows r0 .. r0+15 of a tile, for the HD/16 column chunks
template <int HD>
__device__ __forceinline__ void load_a(uint32_t (&f)[HD / 16][4], const Tile<HD>& tile, int r0, int g, int t) {
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    f[kk][0] = load_pair(&tile.x[r0 + g][kk * 16 + 2 * t]);
    f[kk][1] = load_pair(&tile.x[r0 + g + 8][kk * 16 + 2 * t]);
    f[kk][2] = load_pair(&tile.x[r0 + g][kk * 16 + 2 * t + 8]);
    f[kk][3] = load_pair(&tile.x[r0 + g + 8][kk * 16 + 2 * t + 8]);
  }
}

// s (MT m-tiles of 16 rows × 8·NT) = A · tileᵀ rows k0 .. k0 + 8·NT-1: the warp's rows against the tile's rows.
// B[k][n] = tile[n][k]: one ldmatrix.x4 gives rows nt·8 .. +7 at columns kk·16 .. +31, the b0, b1 of two k-chunks
// (lane l: row l % 8, columns + 8·(l / 8)); each B fragment serves all MT m-tiles (flash2's forward and dQ take
// MT = 2: half the shared-memory reads per product)
template <int HD, int MT, int NT>
__device__ __forceinline__ void mul_abt_mt(float (&s)[MT][NT][4], const uint32_t (&a)[MT][HD / 16][4],
                                           const Tile<HD>& tile, int k0, int lane) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk += 2) {
      // (HD = 80: the fifth k-chunk alone; lanes 16-31 then read the addresses of lanes 0-15, and b[2], b[3] go unused)
      const bool pair = kk + 1 < HD / 16;
      uint32_t b[4];
      ldsm_x4<false>(b, &tile.x[k0 + nt * 8 + (lane & 7)][kk * 16 + 8 * (pair ? lane >> 3 : (lane >> 3) & 1)]);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_bf16(s[mt][nt], a[mt][kk], b[0], b[1]);
        if (pair) mma_bf16(s[mt][nt], a[mt][pair ? kk + 1 : kk], b[2], b[3]);
      }
    }
  }
}
// one m-tile against the whole tile (s: 16 × 64)
template <int HD>
__device__ __forceinline__ void mul_abt(float (&s)[8][4], const uint32_t (&a)[HD / 16][4], const Tile<HD>& tile,
                                        int lane) {
  mul_abt_mt<HD, 1, 8>(reinterpret_cast<float(&)[1][8][4]>(s), reinterpret_cast<const uint32_t(&)[1][HD / 16][4]>(a),
                       tile, 0, lane);
}

// The same with A read from shared memory too (rows r0 .. r0+15 of atile), two k-chunks at a time, against the
// tile's rows n0 .. n0 + 8·NT-1 (s: 16 × 8·NT): for the dK/dV kernel, whose registers hold two accumulators of HD
// columns already (at HD >= 96 it takes a query tile 32 rows at a time, NT = 4)
template <int HD, int NT = 8>
__device__ __forceinline__ void mul_abt_shared(float (&s)[NT][4], const Tile<HD>& atile, int r0, const Tile<HD>& tile,
                                               int lane, int n0 = 0) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; kk += 2) {
    // A (16×16) at column kk·16 with one ldmatrix.x4: lane l gives row r0 + l % 8 + 8·((l / 8) & 1), column
    // + 8·(l / 16), so the four matrices are a[0] .. a[3] (mma.cuh)
    // (HD = 80: the fifth k-chunk alone, as in mul_abt_mt)
    const bool pair = kk + 1 < HD / 16;
    uint32_t a0[4], a1[4];
    const bf16* ar = &atile.x[r0 + (lane & 7) + 8 * ((lane >> 3) & 1)][kk * 16 + 8 * (lane >> 4)];
    ldsm_x4<false>(a0, ar);
    if (pair) ldsm_x4<false>(a1, ar + 16);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      uint32_t b[4];
      ldsm_x4<false>(b, &tile.x[n0 + nt * 8 + (lane & 7)][kk * 16 + 8 * (pair ? lane >> 3 : (lane >> 3) & 1)]);
      mma_bf16(s[nt], a0, b[0], b[1]);
      if (pair) mma_bf16(s[nt], a1, b[2], b[3]);
    }
  }
}

// acc (MT m-tiles × HD) += p · tile rows k0 .. k0 + 8·NT-1, p (MT × 16 × 8·NT) in accumulator layout, rounded to
// bf16. B[k][n] = tile[k][n]: one ldmatrix.x4.trans gives rows kc·16 .. +15 at columns nt·8 .. +15, the b0, b1 of
// two n-tiles (lane l: row l % 8 + 8·((l / 8) & 1), columns + 8·(l / 16)); each serves all MT m-tiles
template <int HD, int MT, int NT>
__device__ __forceinline__ void mul_pb_mt(float (&acc)[MT][HD / 8][4], const float (&p)[MT][NT][4],
                                          const Tile<HD>& tile, int k0, int lane) {
#pragma unroll
  for (int kc = 0; kc < NT / 2; ++kc) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      a[mt][0] = pack_bf16(p[mt][2 * kc][0], p[mt][2 * kc][1]);
      a[mt][1] = pack_bf16(p[mt][2 * kc][2], p[mt][2 * kc][3]);
      a[mt][2] = pack_bf16(p[mt][2 * kc + 1][0], p[mt][2 * kc + 1][1]);
      a[mt][3] = pack_bf16(p[mt][2 * kc + 1][2], p[mt][2 * kc + 1][3]);
    }
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt += 2) {
      uint32_t b[4];
      ldsm_x4<true>(b, &tile.x[k0 + kc * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)][nt * 8 + 8 * (lane >> 4)]);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_bf16(acc[mt][nt], a[mt], b[0], b[1]);
        mma_bf16(acc[mt][nt + 1], a[mt], b[2], b[3]);
      }
    }
  }
}
// one m-tile, the whole tile (p: 16 × 64)
template <int HD>
__device__ __forceinline__ void mul_pb(float (&acc)[HD / 8][4], const float (&p)[8][4], const Tile<HD>& tile,
                                       int lane) {
  mul_pb_mt<HD, 1, 8>(reinterpret_cast<float(&)[1][HD / 8][4]>(acc), reinterpret_cast<const float(&)[1][8][4]>(p),
                      tile, 0, lane);
}

// acc (the warp's 16 query rows × NC columns c1 .. c1 + NC-1 of HD) += A · tile over the 64 keys, where at holds Aᵀ
// (keys × queries: the dSᵀ the dK/dV kernel writes) and the warp's queries are at's columns c0 .. c0+15; tile
// (keys × HD) is read as mul_pb reads it. A through ldmatrix.x4.trans: lane l gives row (key) kc·16 + l % 8 +
// 8·(l / 16) at column c0 + 8·((l / 8) & 1), so matrix i is a[i] of mma.cuh's layout (queries 0-7 / 8-15 at keys
// +0-7, then +8-15)
template <int HD, int NC>
__device__ __forceinline__ void mul_atb_shared(float (&acc)[NC / 8][4], const Tile<64>& at, int c0,
                                               const Tile<HD>& tile, int c1, int lane) {
#pragma unroll
  for (int kc = 0; kc < kTile / 16; ++kc) {
    uint32_t a[4];
    ldsm_x4<true>(a, &at.x[kc * 16 + (lane & 7) + 8 * (lane >> 4)][c0 + 8 * ((lane >> 3) & 1)]);
#pragma unroll
    for (int nt = 0; nt < NC / 8; nt += 2) {
      uint32_t b[4];
      ldsm_x4<true>(b, &tile.x[kc * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)][c1 + nt * 8 + 8 * (lane >> 4)]);
      mma_bf16(acc[nt], a, b[0], b[1]);
      mma_bf16(acc[nt + 1], a, b[2], b[3]);
    }
  }
}

// two floats rounded to bf16 into p, p + 1 (4-byte aligned)
__device__ __forceinline__ void store_pair(bf16* p, float lo, float hi) {
  const uint32_t v = pack_bf16(lo, hi);
#ifdef __CUDA_EMU__
  emu_check_aligned(p, 4, "store_pair");
  std::memcpy(p, &v, 4);
#else
  *reinterpret_cast<uint32_t*>(p) = v;
#endif
}

// a warp's 16 × 64 accumulator tile (rows r0 + g, + 8; columns nt·8 + 2t, + 1) into rows r0 .. r0+15 of a shared
// tile, rounded to bf16 (a row's 4 threads × 8 n-tiles write 32 distinct banks: the padded rows are 36 words)
__device__ __forceinline__ void store_acc_tile(Tile<64>& tile, const float (&x)[8][4], int r0, int g, int t) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    store_pair(&tile.x[r0 + g][nt * 8 + 2 * t], x[nt][0], x[nt][1]);
    store_pair(&tile.x[r0 + g + 8][nt * 8 + 2 * t], x[nt][2], x[nt][3]);
  }
}

// dst[0 .. 3] += (a, b, c, d) in fp32 (dst 16-byte aligned; other blocks add to the same rows): one 16-byte vector
// atomic at sm_90 and later, else four
__device__ __forceinline__ void red_add4(float* dst, float a, float b, float c, float d) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_EMU__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(dst), make_float4(a, b, c, d));
#else
#ifdef __CUDA_EMU__
  emu_check_aligned(dst, 16, "red_add4");  // (at sm_90 this is one 16-byte atomic)
#endif
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
  atomicAdd(dst + 2, c);
  atomicAdd(dst + 3, d);
#endif
}

// rows i .. i+15, columns c1 .. c1 + NC-1 of a (Tq, HD) fp32 accumulator += acc (the warp's 16 × NC product; rows
// >= Tq are left out): neighbouring lanes swap halves so that each holds 4 neighbouring columns of one row (lane t
// even: row g, columns 2t .. 2t+3 of each n-tile; t odd: row g + 8, columns 2t-2 .. 2t+1), one 16-byte atomic each
template <int HD, int NC>
__device__ __forceinline__ void add_rows_atomic(float* acc_rows, const float (&acc)[NC / 8][4], int i, int c1, int Tq,
                                                int g, int t) {
  const bool odd = (t & 1) != 0;
  const int row = i + g + (odd ? 8 : 0), col = 2 * (t & ~1);
  float* d = acc_rows + static_cast<int64_t>(row) * HD + c1 + col;
#pragma unroll
  for (int nt = 0; nt < NC / 8; ++nt) {
    const float r0 = __shfl_xor_sync(kFullMask, odd ? acc[nt][0] : acc[nt][2], 1);
    const float r1 = __shfl_xor_sync(kFullMask, odd ? acc[nt][1] : acc[nt][3], 1);
    if (row >= Tq) continue;
    if (odd) red_add4(d + nt * 8, r0, r1, acc[nt][2], acc[nt][3]);
    else red_add4(d + nt * 8, acc[nt][0], acc[nt][1], r0, r1);
  }
}

// The dropout mask of this thread's 32 elements of a 16×64 tile: bit nt·4 + 2·rr + c for the element of row
// row + 8·rr and column col + nt·8 + c (col = the tile's first column + 2t). Rows are queries and columns keys,
// or (ROWS_ARE_KEYS, the dK/dV kernel) the other way round. Computed before the tile's products, while few
// registers are live, and out of line, so the hash does not crowd the score accumulators.
template <bool ROWS_ARE_KEYS>
__device__ __noinline__ uint32_t keep_mask(uint64_t seed, float dropout, int NH, int Tq, int Tk, int b, int h, int row,
                                           int col) {  // (FDims's fields by value: no copy to local memory)
  uint32_t m = 0;
#pragma unroll
  for (int rr = 0; rr < 2; ++rr)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int r = row + 8 * rr, cc = col + nt * 8 + c;
        const int i = ROWS_ARE_KEYS ? cc : r, j = ROWS_ARE_KEYS ? r : cc;
        if (dropout_uniform(seed, attn_drop_index(NH, Tq, Tk, b, h, i, j)) >= dropout)
          m |= 1u << (nt * 4 + 2 * rr + c);
      }
  return m;
}
// The masks of two 16-row m-tiles (rows row and row + 16) in one call, the second in the high word (flash2's
// forward: one call per tile, whose saved registers stay within the budget)
__device__ __noinline__ uint64_t keep_mask2(uint64_t seed, float dropout, int NH, int Tq, int Tk, int b, int h, int row,
                                            int col) {
  return keep_mask<false>(seed, dropout, NH, Tq, Tk, b, h, row, col) |
         static_cast<uint64_t>(keep_mask<false>(seed, dropout, NH, Tq, Tk, b, h, row + 16, col)) << 32;
}
__device__ __forceinline__ float keep_of(const FDims& s, uint32_t mask, int nt, int e) {
  return (mask >> (nt * 4 + e)) & 1u ? s.keep : 0.0f;
}

// query i (position p) sees key j
__device__ __forceinline__ bool sees(const FDims& s, int i, int j) {
  const int p = s.q_pos0 + i;
  return i < s.Tq && j < s.Tk && j <= p && (s.window <= 0 || j > p - s.window);
}

// the keys that queries i0 .. i0 + rows-1 see: [lo, hi]
__device__ __forceinline__ void block_keys(const FDims& s, int i0, int* lo, int* hi, int rows = kRows) {
  const int last = i0 + rows < s.Tq ? i0 + rows - 1 : s.Tq - 1;
  const int p_lo = s.q_pos0 + i0, p_hi = s.q_pos0 + last;
  *hi = p_hi < s.Tk - 1 ? p_hi : s.Tk - 1;
  *lo = (s.window > 0 && p_lo - s.window + 1 > 0) ? p_lo - s.window + 1 : 0;
}

// every query of i0 .. i0+63 sees every key of j0 .. j0+63
__device__ __forceinline__ bool tile_full(const FDims& s, int i0, int j0) {
  const int p_lo = s.q_pos0 + i0, p_hi = s.q_pos0 + i0 + kRows - 1;
  return i0 + kRows <= s.Tq && j0 + kTile <= s.Tk && j0 + kTile - 1 <= p_lo && (s.window <= 0 || j0 > p_hi - s.window);
}

// Where a thread works: batch row b and head h (blockIdx.y = b·NH + h), its lane in the mma layout (g = lane / 4,
// t = lane % 4) and the first of its warp's 16 rows in the block
struct Place {
  int b, h, lane, g, t, r0;
};
__device__ __forceinline__ Place place(const FDims& s) {
  const int bh = blockIdx.y, lane = threadIdx.x & 31;
  return {bh / s.NH, bh % s.NH, lane, lane >> 2, lane & 3, static_cast<int>(threadIdx.x >> 5) * 16};
}

// A query block (the forward and dQ kernels): its first query i0, blocks running the longest first (causal rows
// near the end see the most keys), and this (b, h)'s keys and values
struct QBlock {
  int i0;
  const bf16* kb;
  const bf16* vb;
};
template <int HD>
__device__ __forceinline__ QBlock query_block(const FDims& s, const Place& pl, const bf16* k, const bf16* v) {
  return {(static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * kRows, k + pl.b * s.ksb + pl.h * HD,
          v + pl.b * s.vsb + pl.h * HD};
}

// The key tile j0 .. j0+63 of K and V into shared memory, after every warp is done with the previous one (and
// with what passed through the tiles before the loop). Keys past hi are zeros, not loaded: a KV cache may hold
// anything there, and 0·NaN would reach P·V.
template <int HD>
__device__ __forceinline__ void load_kv(Tile<HD>& sK, Tile<HD>& sV, const bf16* kb, const bf16* vb, const FDims& s,
                                        int j0, int hi) {
  __syncthreads();
  load_tile<HD>(sK, kb, s.kst, j0, hi + 1, s.vec);
  load_tile<HD>(sV, vb, s.vst, j0, hi + 1, s.vec);
  __syncthreads();
}

// Starts rows r0 .. r0+63 of a (T, HD) slice (row stride st) into a shared tile: with cp.async where the rows are
// 16-byte aligned (it lands by the next cp_async_wait), else loaded at once; rows >= T are zeros, not read.
template <int HD>
__device__ __forceinline__ void fetch_rows(Tile<HD>& tile, const bf16* base, int64_t st, int r0, int T, bool vec) {
  if (!vec) {
    load_tile<HD>(tile, base, st, r0, T, false);
    return;
  }
  constexpr int C8 = HD / 8;
  for (int c = threadIdx.x; c < kTile * C8; c += kThreads) {
    const int r = c / C8, d = (c % C8) * 8, row = r0 + r;
    const bool ok = row < T;
    cp_async16(&tile.x[r][d], ok ? base + static_cast<int64_t>(row) * st + d : base, ok);
  }
}

// The key tile j0 .. j0+63 of K and V, started as fetch_rows does. Keys past hi are zeros, as in load_kv.
template <int HD>
__device__ __forceinline__ void fetch_kv(Tile<HD>& sK, Tile<HD>& sV, const bf16* kb, const bf16* vb, const FDims& s,
                                         int j0, int hi) {
  fetch_rows<HD>(sK, kb, s.kst, j0, hi + 1, s.vec);
  fetch_rows<HD>(sV, vb, s.vst, j0, hi + 1, s.vec);
}

template <int HD>
__device__ __forceinline__ void swap_tiles(Tile<HD>*& a, Tile<HD>*& b) {
  Tile<HD>* t = a;
  a = b;
  b = t;
}

// The top of a key loop over double-buffered tiles (PIPE): once every warp is done with the other buffer nK, nV (the
// previous tile, or what passed through it before the loop), starts the next tile into it, then waits for tile j0
// in the current buffer. The copy of tile j0 + 64 runs during tile j0's products. Before the loop, the first tile
// was started into the current buffer and committed as a group of its own, so wait<1> leaves only the next tile
// in flight.
template <int HD>
__device__ __forceinline__ void next_kv(Tile<HD>& nK, Tile<HD>& nV, const bf16* kb, const bf16* vb, const FDims& s,
                                        int j0, int hi) {
  __syncthreads();
  if (j0 + kTile <= hi) fetch_kv<HD>(nK, nV, kb, vb, s, j0 + kTile, hi);
  cp_async_commit();
  cp_async_wait<1>();  // all but the group just committed: tile j0 has landed
  __syncthreads();
}

// Whether any of the warp's query rows i .. i + n-1 sees a key of the tile j0 .. j0+63 (else the warp skips the
// tile's products: in a block of 128 queries, the last key tiles lie wholly after the first warps' rows)
__device__ __forceinline__ bool warp_sees_tile(const FDims& s, int i, int n, int j0) {
  if (i >= s.Tq || j0 >= s.Tk) return false;
  const int last = i + n - 1 < s.Tq - 1 ? i + n - 1 : s.Tq - 1;
  const int p_lo = s.q_pos0 + i, p_hi = s.q_pos0 + last;
  return j0 <= p_hi && (s.window <= 0 || j0 + kTile - 1 > p_lo - s.window);
}

// every query of i .. i + n-1 sees every key of j0 .. j0+63 (no mask needed)
__device__ __forceinline__ bool rows_see_tile(const FDims& s, int i, int n, int j0) {
  const int p_lo = s.q_pos0 + i, p_hi = s.q_pos0 + i + n - 1;
  return i + n <= s.Tq && j0 + kTile <= s.Tk && j0 + kTile - 1 <= p_lo && (s.window <= 0 || j0 > p_hi - s.window);
}

// MT: m-tiles of 16 query rows a warp (a block of 64·MT queries); PIPE: K/V tiles double-buffered through cp.async
// (next_kv). <MT = 1, PIPE = false> is setAttention('flash'), <2, true> setAttention('flash2').
template <int HD, bool DROP, int MT, bool PIPE>
__global__ void __launch_bounds__(kThreads) flash_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k,
                                                                 const bf16* v, FDims s) {
  if (PIPE) GN_FLASH2_TRAP();
  constexpr int kNB = PIPE ? 2 : 1;  // buffers a tile
  __shared__ Tile<HD> sK[kNB];
  __shared__ Tile<HD> sV[kNB];
  constexpr int kQRows = 64 * MT;
  constexpr int kNT = MT == 1 ? 8 : 4;  // n-tiles of 8 keys a part of a key tile
  const Place pl = place(s);
  const int b = pl.b, h = pl.h, lane = pl.lane, g = pl.g, t = pl.t;
  const int r0 = static_cast<int>(threadIdx.x >> 5) * 16 * MT;  // the warp's first row in the block
  const int i0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * kQRows;  // longest first
  const bf16* kb = k + pl.b * s.ksb + pl.h * HD;
  const bf16* vb = v + pl.b * s.vsb + pl.h * HD;
  int lo, hi;
  block_keys(s, i0, &lo, &hi, kQRows);
  if (PIPE) {
    fetch_kv<HD>(sK[0], sV[0], kb, vb, s, lo, hi);  // the first tile's copy runs while Q is read
    cp_async_commit();
  }

  // Q passes through the tiles the first key tile does not use: 64 rows in the K tile, the next 64 in the V tile
  uint32_t qa[MT][HD / 16][4];
  load_tile<HD>(sK[kNB - 1], q + b * s.qsb + h * HD, s.qst, i0, s.Tq, s.vec);
  if (MT > 1) load_tile<HD>(sV[kNB - 1], q + b * s.qsb + h * HD, s.qst, i0 + 64, s.Tq, s.vec);
  __syncthreads();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int row = r0 + 16 * mt;  // (a warp's rows lie in one of the two tiles)
    load_a<HD>(qa[mt], row < 64 ? sK[kNB - 1] : sV[kNB - 1], row % 64, g, t);
  }

  float o[MT][HD / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt) o[mt][nt][0] = o[mt][nt][1] = o[mt][nt][2] = o[mt][nt][3] = 0.0f;
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
  Tile<HD>*kc = &sK[0], *vc = &sV[0], *kn = &sK[kNB - 1], *vn = &sV[kNB - 1];  // this tile's buffers, the next one's
  for (int j0 = lo; j0 <= hi; j0 += kTile) {
    uint32_t keep[MT];
    if (DROP && MT == 2) {
      const uint64_t k2 = keep_mask2(s.seed, s.dropout, s.NH, s.Tq, s.Tk, b, h, i0 + r0 + g, j0 + 2 * t);
      keep[0] = static_cast<uint32_t>(k2);
      keep[MT - 1] = static_cast<uint32_t>(k2 >> 32);
    } else {
      keep[0] = DROP ? keep_mask<false>(s.seed, s.dropout, s.NH, s.Tq, s.Tk, b, h, i0 + r0 + g, j0 + 2 * t) : 0u;
    }
    if (PIPE) next_kv<HD>(*kn, *vn, kb, vb, s, j0, hi);
    else load_kv<HD>(*kc, *vc, kb, vb, s, j0, hi);
    if (warp_sees_tile(s, i0 + r0, 16 * MT, j0)) {
      const bool full = rows_see_tile(s, i0 + r0, 16 * MT, j0);
      // the tile's 64 keys in parts of 8·kNT (MT = 2: two parts of 32, so that the scores of both m-tiles fit in
      // registers beside the output accumulators), each with its own online-softmax step
#pragma unroll 1
      for (int part = 0; part < 8 / kNT; ++part) {
        const int k0 = part * 8 * kNT;  // the part's first key in the tile
        float sc[MT][kNT][4];
        mul_abt_mt<HD, MT, kNT>(sc, qa, *kc, k0, lane);
        // each row's largest score of the part (log2 units; the raw scores are masked and compared unscaled, since
        // scale_log2 > 0), and whether any of the warp's rows outgrows its running max by more than kRescaleLog2
        float mx[MT][2];
        bool grow = false;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int rr = 0; rr < 2; ++rr) {
            const int i = i0 + r0 + 16 * mt + g + 8 * rr;
            float mr = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
              for (int c = 0; c < 2; ++c) {
                float& x = sc[mt][nt][2 * rr + c];
                if (!full && !sees(s, i, j0 + k0 + nt * 8 + 2 * t + c)) x = -INFINITY;
                mr = fmaxf(mr, x);
              }
            mr = fmaxf(mr, __shfl_xor_sync(kFullMask, mr, 1));
            mr = fmaxf(mr, __shfl_xor_sync(kFullMask, mr, 2));
            mx[mt][rr] = mr * s.scale_log2;
            grow |= mx[mt][rr] > m[mt][rr] + kRescaleLog2;  // (a row's first key: m = -inf)
          }
        // Rescaling is exact at any base, as long as out and l share it: the warp moves its rows' bases (and rescales
        // their out and l) only when some row's scores would pass 2^kRescaleLog2 at the old base, which after the
        // first tiles is seldom; otherwise the exponentials are at most 2^kRescaleLog2 (far from overflow, and as
        // precise in bf16)
        if (__any_sync(kFullMask, grow)) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int rr = 0; rr < 2; ++rr) {
              const float mn = fmaxf(m[mt][rr], mx[mt][rr]);
              const float alpha = exp2_ftz(m[mt][rr] - (mn == -INFINITY ? 0.0f : mn));  // 0 for a row's first key
              m[mt][rr] = mn;
              l[mt][rr] *= alpha;
#pragma unroll
              for (int nt = 0; nt < HD / 8; ++nt) {
                o[mt][nt][2 * rr] *= alpha;
                o[mt][nt][2 * rr + 1] *= alpha;
              }
            }
        }
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int rr = 0; rr < 2; ++rr) {
            const float base = m[mt][rr] == -INFINITY ? 0.0f : m[mt][rr];  // a row that has seen no key keeps zeros
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
              for (int c = 0; c < 2; ++c) {
                float pe = exp2_ftz(fmaf(sc[mt][nt][2 * rr + c], s.scale_log2, -base));  // masked: exp2(-inf) = 0
                l[mt][rr] += pe;
                if (DROP) pe *= keep_of(s, keep[mt], part * kNT + nt, 2 * rr + c);
                sc[mt][nt][2 * rr + c] = pe;
              }
          }
        mul_pb_mt<HD, MT, kNT>(o, sc, *vc, k0, lane);
      }
    }
    if (PIPE) {
      swap_tiles(kc, kn);
      swap_tiles(vc, vn);
    }
  }
  if (PIPE) cp_async_wait<0>();  // (nothing may be in flight when the block ends)
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      l[mt][rr] += __shfl_xor_sync(kFullMask, l[mt][rr], 1);
      l[mt][rr] += __shfl_xor_sync(kFullMask, l[mt][rr], 2);
      const int i = i0 + r0 + 16 * mt + g + 8 * rr;
      if (i >= s.Tq) continue;
      // every row sees at least key p (the host checks q_pos0 + Tq <= Tk), so l >= 1
      const float inv = 1.0f / l[mt][rr];
      bf16* orow = out + b * s.osb + i * s.ost + h * HD;
#pragma unroll
      for (int nt = 0; nt < HD / 8; ++nt) {
        orow[nt * 8 + 2 * t] = from_f<bf16>(o[mt][nt][2 * rr] * inv);
        orow[nt * 8 + 2 * t + 1] = from_f<bf16>(o[mt][nt][2 * rr + 1] * inv);
      }
      if (lse && t == 0) lse[(static_cast<int64_t>(b) * s.NH + h) * s.Tq + i] = (m[mt][rr] + log2f(l[mt][rr])) * kLn2;
    }
}

// D_i = dout_i·out_i into Dbuf (B, NH, Tq): warp per row; with dqacc (the atomic backward), the row's fp32 dQ
// accumulator (B, NH, Tq, HS) is zeroed too
__global__ void __launch_bounds__(kThreads) flash_D_kernel(float* Dbuf, float* dqacc, const bf16* dout,
                                                           const bf16* out, FDims s, int HS) {
  const int64_t w = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= static_cast<int64_t>(s.B) * s.NH * s.Tq) return;
  if (dqacc)
    for (int e = lane; e < HS; e += 32) dqacc[w * HS + e] = 0.0f;
  const int64_t i = w % s.Tq, h = (w / s.Tq) % s.NH, b = w / (static_cast<int64_t>(s.Tq) * s.NH);
  const bf16* d = dout + b * s.osb + i * s.ost + h * HS;
  const bf16* o = out + b * s.osb + i * s.ost + h * HS;
  float acc = 0.0f;
  for (int e = lane; e < HS; e += 32) acc += to_f(d[e]) * to_f(o[e]);
  acc = warp_sum(acc);
  if (lane == 0) Dbuf[w] = acc;  // w = (b·NH + h)·Tq + i
}

template <int HD, bool DROP>
__global__ void __launch_bounds__(kThreads) flash_dq_kernel(bf16* dq, const float* Dbuf, const bf16* dout,
                                                            const bf16* q, const bf16* k, const bf16* v,
                                                            const float* lse, FDims s) {
  __shared__ Tile<HD> sK;
  __shared__ Tile<HD> sV;
  const Place pl = place(s);
  const int b = pl.b, h = pl.h, lane = pl.lane, g = pl.g, t = pl.t, r0 = pl.r0;
  const QBlock qb = query_block<HD>(s, pl, k, v);
  const int i0 = qb.i0;
  const bf16 *kb = qb.kb, *vb = qb.vb;

  uint32_t qa[HD / 16][4], da[HD / 16][4];
  load_tile<HD>(sK, q + b * s.qsb + h * HD, s.qst, i0, s.Tq, s.vec);  // Q and dout pass through sK and sV
  load_tile<HD>(sV, dout + b * s.osb + h * HD, s.ost, i0, s.Tq, s.vec);
  __syncthreads();
  load_a<HD>(qa, sK, r0, g, t);
  load_a<HD>(da, sV, r0, g, t);
  float L[2], Dv[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int i = i0 + r0 + g + 8 * rr;
    L[rr] = i < s.Tq ? lse[(static_cast<int64_t>(b) * s.NH + h) * s.Tq + i] * kLog2e : 0.0f;
    Dv[rr] = i < s.Tq ? Dbuf[(static_cast<int64_t>(b) * s.NH + h) * s.Tq + i] : 0.0f;
  }

  float acc[HD / 8][4];
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
  int lo, hi;
  block_keys(s, i0, &lo, &hi);
  // a key tile's keys 8·kNT at a time: all 64 up to HD = 64; 32 at HD = 96 and 16 at 128, where Q, dout and dQ take
  // 1.5 and 2 times the registers
  constexpr int kNT = HD <= 64 ? 8 : HD <= 96 ? 4 : 2;
  using Frag = const uint32_t(&)[1][HD / 16][4];
  for (int j0 = lo; j0 <= hi; j0 += kTile) {
    const uint32_t keep = DROP ? keep_mask<false>(s.seed, s.dropout, s.NH, s.Tq, s.Tk, b, h, i0 + r0 + g, j0 + 2 * t) : 0u;
    load_kv<HD>(sK, sV, kb, vb, s, j0, hi);
    const bool full = tile_full(s, i0, j0);
#pragma unroll 1
    for (int k0 = 0; k0 < kTile; k0 += 8 * kNT) {
      float sc[1][kNT][4], dp[1][kNT][4];
      mul_abt_mt<HD, 1, kNT>(sc, reinterpret_cast<Frag>(qa), sK, k0, lane);
      mul_abt_mt<HD, 1, kNT>(dp, reinterpret_cast<Frag>(da), sV, k0, lane);
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const int i = i0 + r0 + g + 8 * rr;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const int j = j0 + k0 + nt * 8 + 2 * t + c;
            const int e = 2 * rr + c;
            float dS = 0.0f;
            if (full || sees(s, i, j)) {
              const float P = exp2_ftz(sc[0][nt][e] * s.scale_log2 - L[rr]);
              const float f = DROP ? keep_of(s, keep, k0 / 8 + nt, e) : 1.0f;
              dS = P * (dp[0][nt][e] * f - Dv[rr]);
            }
            sc[0][nt][e] = dS;
          }
      }
      mul_pb_mt<HD, 1, kNT>(reinterpret_cast<float(&)[1][HD / 8][4]>(acc), sc, sK, k0, lane);
    }
  }
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int i = i0 + r0 + g + 8 * rr;
    if (i >= s.Tq) continue;
    bf16* row = dq + b * s.qsb + i * s.qst + h * HD;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt) {
      row[nt * 8 + 2 * t] = from_f<bf16>(s.scale * acc[nt][2 * rr]);
      row[nt * 8 + 2 * t + 1] = from_f<bf16>(s.scale * acc[nt][2 * rr + 1]);
    }
  }
}

// flash2's dQ kernel: 32 query rows a warp (MT = 2, blocks of 128 queries) as its forward, so each K and V
// fragment read from shared memory serves both m-tiles; a key tile in four parts of 16 keys (with 32, ptxas
// spilled: S, dP and dQ of both m-tiles share the registers); K/V tiles
// double-buffered through cp.async; D_i computed here and written for the dK/dV kernel. Q and dout (128 rows each)
// pass through all four tiles before the first key tile is started.
template <int HD, bool DROP>
__global__ void __launch_bounds__(kThreads) flash_dq2_kernel(bf16* dq, float* Dbuf, const bf16* dout, const bf16* q,
                                                             const bf16* k, const bf16* v, const float* lse,
                                                             const bf16* out, FDims s) {
  GN_FLASH2_TRAP();
  constexpr int MT = 2, kNT = 2, kQRows = 64 * MT;
  __shared__ Tile<HD> sK[2];
  __shared__ Tile<HD> sV[2];
  const Place pl = place(s);
  const int b = pl.b, h = pl.h, lane = pl.lane, g = pl.g, t = pl.t;
  const int r0 = static_cast<int>(threadIdx.x >> 5) * 16 * MT;  // the warp's first row in the block
  const int i0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * kQRows;  // longest first
  const bf16* kb = k + b * s.ksb + h * HD;
  const bf16* vb = v + b * s.vsb + h * HD;
  int lo, hi;
  block_keys(s, i0, &lo, &hi, kQRows);
  // Q rows 0-63 / 64-127 through sK[0] / sK[1], dout's through sV[0] / sV[1]; a warp's 32 rows lie in one tile
  const int half = r0 / 64, hr = r0 % 64;
  load_tile<HD>(sK[0], q + b * s.qsb + h * HD, s.qst, i0, s.Tq, s.vec);
  load_tile<HD>(sK[1], q + b * s.qsb + h * HD, s.qst, i0 + 64, s.Tq, s.vec);
  load_tile<HD>(sV[0], dout + b * s.osb + h * HD, s.ost, i0, s.Tq, s.vec);
  load_tile<HD>(sV[1], dout + b * s.osb + h * HD, s.ost, i0 + 64, s.Tq, s.vec);
  __syncthreads();
  uint32_t qa[MT][HD / 16][4], da[MT][HD / 16][4];
  float L[MT][2], Dv[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    load_a<HD>(qa[mt], sK[half], hr + 16 * mt, g, t);
    load_a<HD>(da[mt], sV[half], hr + 16 * mt, g, t);
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int i = i0 + r0 + 16 * mt + g + 8 * rr;
      const int64_t at = (static_cast<int64_t>(b) * s.NH + h) * s.Tq + i;
      L[mt][rr] = i < s.Tq ? lse[at] * kLog2e : 0.0f;
      // D_i = dout_i·out_i: the row's 4 threads take columns 8m + 2t, +1 (dout from its shared tile), then add up
      float d = 0.0f;
      if (i < s.Tq) {
        const bf16* orow = out + b * s.osb + static_cast<int64_t>(i) * s.ost + h * HD;
        const bf16* drow = sV[half].x[hr + 16 * mt + g + 8 * rr];
#pragma unroll
        for (int m = 0; m < HD / 8; ++m) {
          const int c = 8 * m + 2 * t;
          d += to_f(drow[c]) * to_f(orow[c]) + to_f(drow[c + 1]) * to_f(orow[c + 1]);
        }
      }
      d += __shfl_xor_sync(kFullMask, d, 1);
      d += __shfl_xor_sync(kFullMask, d, 2);
      if (t == 0 && i < s.Tq) Dbuf[at] = d;  // for the dK/dV kernel, which runs after this one
      Dv[mt][rr] = d;
    }
  }
  __syncthreads();  // every warp has its Q and dout before the first key tile replaces them
  fetch_kv<HD>(sK[0], sV[0], kb, vb, s, lo, hi);
  cp_async_commit();

  float acc[MT][HD / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;
  for (int j0 = lo, cur = 0; j0 <= hi; j0 += kTile, cur ^= 1) {
    uint32_t keep[MT] = {0u, 0u};
    if (DROP) {
      const uint64_t k2 = keep_mask2(s.seed, s.dropout, s.NH, s.Tq, s.Tk, b, h, i0 + r0 + g, j0 + 2 * t);
      keep[0] = static_cast<uint32_t>(k2);
      keep[1] = static_cast<uint32_t>(k2 >> 32);
    }
    next_kv<HD>(sK[cur ^ 1], sV[cur ^ 1], kb, vb, s, j0, hi);
    if (!warp_sees_tile(s, i0 + r0, 16 * MT, j0)) continue;
    const Tile<HD>& kt = sK[cur];
    const Tile<HD>& vt = sV[cur];
    const bool full = rows_see_tile(s, i0 + r0, 16 * MT, j0);
#pragma unroll 1
    for (int part = 0; part < 8 / kNT; ++part) {
      const int k0 = part * 8 * kNT;
      float sc[MT][kNT][4], dp[MT][kNT][4];
      mul_abt_mt<HD, MT, kNT>(sc, qa, kt, k0, lane);
      mul_abt_mt<HD, MT, kNT>(dp, da, vt, k0, lane);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          const int i = i0 + r0 + 16 * mt + g + 8 * rr;
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const int e = 2 * rr + c;
              float dS = 0.0f;
              if (full || sees(s, i, j0 + k0 + nt * 8 + 2 * t + c)) {
                const float P = exp2_ftz(sc[mt][nt][e] * s.scale_log2 - L[mt][rr]);
                const float f = DROP ? keep_of(s, keep[mt], part * kNT + nt, e) : 1.0f;
                dS = P * (dp[mt][nt][e] * f - Dv[mt][rr]);
              }
              sc[mt][nt][e] = dS;
            }
        }
      mul_pb_mt<HD, MT, kNT>(acc, sc, kt, k0, lane);
    }
  }
  cp_async_wait<0>();  // (nothing may be in flight when the block ends)
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int i = i0 + r0 + 16 * mt + g + 8 * rr;
      if (i >= s.Tq) continue;
      bf16* row = dq + b * s.qsb + static_cast<int64_t>(i) * s.qst + h * HD;
#pragma unroll
      for (int nt = 0; nt < HD / 8; ++nt) {
        row[nt * 8 + 2 * t] = from_f<bf16>(s.scale * acc[mt][nt][2 * rr]);
        row[nt * 8 + 2 * t + 1] = from_f<bf16>(s.scale * acc[mt][nt][2 * rr + 1]);
      }
    }
}

// flash_dkv_pipe_kernel's work on queries q0 .. q0 + 8·NT-1 of the query tile i0 .. i0+63 once sc holds their Sᵀ
// (keys × queries) and dp their dPᵀ: sc becomes (P∘M·keep)ᵀ and dp becomes dSᵀ; L and D are the tile's rows'
// logsumexp (log2 units) and D_i, keep the whole tile's dropout mask. flash_dkv_kernel keeps the same loop inline
// over its static sL and sD arrays: through this function ptxas spilled it at sm_80. FTZ: the weights through
// exp2_ftz, else exp2f (the pipelined kernel at HD = 32, which ptxas spilled with exp2_ftz)
template <bool DROP, int NT = 8, bool FTZ = true>
__device__ __forceinline__ void dkv_tile_grads(float (&sc)[NT][4], float (&dp)[NT][4], const FDims& s, const float* L,
                                               const float* D, uint32_t keep, int i0, int j0, int r0, int g, int t,
                                               int q0 = 0) {
  // every query of i0 .. i0+63 sees every key of j0 .. j0+63
  const bool full = i0 + kTile <= s.Tq && j0 + kRows <= s.Tk && s.q_pos0 + i0 >= j0 + kRows - 1 &&
                    (s.window <= 0 || s.q_pos0 + i0 + kTile - 1 < j0 + s.window);
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int j = j0 + r0 + g + 8 * rr;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = q0 + nt * 8 + 2 * t + c;
        const int i = i0 + col;
        const int e = 2 * rr + c;
        // exact zeros outside the mask: a key row that no query sees may hold anything (a KV cache's tail)
        float dS = 0.0f, Pf = 0.0f;
        if (full || sees(s, i, j)) {
          const float x = sc[nt][e] * s.scale_log2 - L[col];
          const float P = FTZ ? exp2_ftz(x) : exp2f(x);
          const float f = DROP ? keep_of(s, keep, q0 / 8 + nt, e) : 1.0f;
          dS = P * (dp[nt][e] * f - D[col]);
          Pf = P * f;
        }
        dp[nt][e] = dS;  // dSᵀ
        sc[nt][e] = Pf;  // (P∘M·keep)ᵀ
      }
  }
}

// the queries that see keys j0 .. j0+63: p >= j0 and, with a window, p <= j_last + window - 1
__device__ __forceinline__ void key_block_queries(const FDims& s, int j0, int* lo, int* hi) {
  const int j_last = j0 + kRows < s.Tk ? j0 + kRows - 1 : s.Tk - 1;
  *lo = j0 - s.q_pos0 > 0 ? j0 - s.q_pos0 : 0;
  *hi = s.Tq - 1;
  if (s.window > 0 && j_last + s.window - 1 - s.q_pos0 < *hi) *hi = j_last + s.window - 1 - s.q_pos0;
}

// dK and dV rows j0 + r0 + g (+8) from the accumulators
template <int HD>
__device__ __forceinline__ void store_dkv(bf16* dk, bf16* dv, const float (&dka)[HD / 8][4], const float (&dva)[HD / 8][4],
                                          const FDims& s, int b, int h, int j0, int r0, int g, int t) {
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int j = j0 + r0 + g + 8 * rr;
    if (j >= s.Tk) continue;
    bf16* krow = dk + b * s.ksb + j * s.kst + h * HD;
    bf16* vrow = dv + b * s.vsb + j * s.vst + h * HD;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        krow[nt * 8 + 2 * t + c] = from_f<bf16>(s.scale * dka[nt][2 * rr + c]);
        vrow[nt * 8 + 2 * t + c] = from_f<bf16>(dva[nt][2 * rr + c]);
      }
  }
}

template <int HD, bool DROP>
__global__ void __launch_bounds__(kThreads) flash_dkv_kernel(bf16* dk, bf16* dv, const float* Dbuf, const bf16* dout,
                                                             const bf16* q, const bf16* k, const bf16* v,
                                                             const float* lse, FDims s) {
  __shared__ Tile<HD> sK;  // the block's keys and values, read as A operands from shared memory (registers are full)
  __shared__ Tile<HD> sV;
  __shared__ Tile<HD> sQ;
  __shared__ Tile<HD> sO;
  __shared__ float sL[kTile], sD[kTile];
  const Place pl = place(s);
  const int b = pl.b, h = pl.h, lane = pl.lane, g = pl.g, t = pl.t, r0 = pl.r0;
  const int j0 = static_cast<int>(blockIdx.x) * kRows;
  const bf16* qb = q + b * s.qsb + h * HD;
  const bf16* ob = dout + b * s.osb + h * HD;
  const float* lrow = lse + (static_cast<int64_t>(b) * s.NH + h) * s.Tq;
  const float* drow = Dbuf + (static_cast<int64_t>(b) * s.NH + h) * s.Tq;

  load_tile<HD>(sK, k + b * s.ksb + h * HD, s.kst, j0, s.Tk, s.vec);
  load_tile<HD>(sV, v + b * s.vsb + h * HD, s.vst, j0, s.Tk, s.vec);

  float dka[HD / 8][4], dva[HD / 8][4];
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dka[nt][e] = dva[nt][e] = 0.0f;
  int lo, hi;
  key_block_queries(s, j0, &lo, &hi);
  for (int i0 = lo; i0 <= hi; i0 += kTile) {
    const uint32_t keep = DROP ? keep_mask<true>(s.seed, s.dropout, s.NH, s.Tq, s.Tk, b, h, j0 + r0 + g, i0 + 2 * t) : 0u;
    __syncthreads();
    load_tile<HD>(sQ, qb, s.qst, i0, s.Tq, s.vec);
    load_tile<HD>(sO, ob, s.ost, i0, s.Tq, s.vec);
    for (int c = threadIdx.x; c < kTile; c += kThreads) {
      const int i = i0 + c;
      sL[c] = i < s.Tq ? lrow[i] * kLog2e : 0.0f;
      sD[c] = i < s.Tq ? drow[i] : 0.0f;
    }
    __syncthreads();
    float sc[8][4], dp[8][4];
    mul_abt_shared<HD>(sc, sK, r0, sQ, lane);  // Sᵀ: keys × queries
    mul_abt_shared<HD>(dp, sV, r0, sO, lane);  // dPᵀ
    // every query of i0 .. i0+63 sees every key of j0 .. j0+63
    const bool full = i0 + kTile <= s.Tq && j0 + kRows <= s.Tk && s.q_pos0 + i0 >= j0 + kRows - 1 &&
                      (s.window <= 0 || s.q_pos0 + i0 + kTile - 1 < j0 + s.window);
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int j = j0 + r0 + g + 8 * rr;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int col = nt * 8 + 2 * t + c;
          const int i = i0 + col;
          const int e = 2 * rr + c;
          // exact zeros outside the mask: a key row that no query sees may hold anything (a KV cache's tail)
          float dS = 0.0f, Pf = 0.0f;
          if (full || sees(s, i, j)) {
            const float P = exp2_ftz(sc[nt][e] * s.scale_log2 - sL[col]);
            const float f = DROP ? keep_of(s, keep, nt, e) : 1.0f;
            dS = P * (dp[nt][e] * f - sD[col]);
            Pf = P * f;
          }
          dp[nt][e] = dS;  // dSᵀ
          sc[nt][e] = Pf;  // (P∘M·keep)ᵀ
        }
    }
    mul_pb<HD>(dva, sc, sO, lane);
    mul_pb<HD>(dka, dp, sQ, lane);
  }
  store_dkv<HD>(dk, dv, dka, dva, s, b, h, j0, r0, g, t);
}

// One query tile of flash_dkv_pipe_kernel (below): its Q, dout, L and D in (qc, oc, lc, dc); the next tile started
// into (qn, on, ln, dn). DQ (the atomic backward): the tile's dSᵀ also goes through sS, and each warp adds dS·K for
// 16 of the tile's queries into their fp32 dQ rows dqb (unscaled: flash_dq_store_kernel applies the scale)
template <int HD, bool DROP, bool DQ>
__device__ __forceinline__ void dkv_pipe_tile(float (&dka)[HD / 8][4], float (&dva)[HD / 8][4], const Tile<HD>& sK,
                                              const Tile<HD>& sV, Tile<HD>& qc, Tile<HD>& oc, float* lc, float* dc,
                                              Tile<HD>& qn, Tile<HD>& on, float* ln, float* dn, Tile<64>* sS,
                                              float* dqb, const bf16* qb, const bf16* ob, const float* lrow,
                                              const float* drow, const FDims& s, int i0, int hi, int j0, int b, int h,
                                              int r0, int lane, int c, bool readsL) {
  const int g = lane >> 2, t = lane & 3;
  const uint32_t keep = DROP ? keep_mask<true>(s.seed, s.dropout, s.NH, s.Tq, s.Tk, b, h, j0 + r0 + g, i0 + 2 * t) : 0u;
  __syncthreads();  // every warp is done with the next tile's buffers (the previous tile's) and with sS
  const bool more = i0 + kTile <= hi;
  if (more) {
    fetch_rows<HD>(qn, qb, s.qst, i0 + kTile, s.Tq, s.vec);
    fetch_rows<HD>(on, ob, s.ost, i0 + kTile, s.Tq, s.vec);
    const int i = i0 + kTile + c;
    (readsL ? ln : dn)[c] = i < s.Tq ? (readsL ? lrow[i] * kLog2e : drow[i]) : 0.0f;
  }
  cp_async_commit();
  cp_async_wait<1>();  // all but the group just committed: tile i0 has landed
  __syncthreads();
  // the tile's queries NQ at a time: all 64 up to HD = 64; 32 at HD = 96 and 16 at 128, where the dK and dV
  // accumulators take 1.5 and 2 times the registers (the K and V fragments are read from shared memory again for
  // each part)
  constexpr int NQ = HD <= 64 ? kTile : HD <= 96 ? kTile / 2 : kTile / 4, NT = NQ / 8;
  static_assert(!DQ || NQ == kTile, "the atomic backward's dS tile is the whole query tile");
#pragma unroll 1
  for (int q0 = 0; q0 < kTile; q0 += NQ) {
    float sc[NT][4], dp[NT][4];
    mul_abt_shared<HD, NT>(sc, sK, r0, qc, lane, q0);  // Sᵀ: keys × queries
    mul_abt_shared<HD, NT>(dp, sV, r0, oc, lane, q0);  // dPᵀ
    dkv_tile_grads<DROP, NT, (HD > 32)>(sc, dp, s, lc, dc, keep, i0, j0, r0, g, t, q0);
    if constexpr (DQ) store_acc_tile(*sS, dp, r0, g, t);  // the warp's 16 keys' rows of dSᵀ
    mul_pb_mt<HD, 1, NT>(reinterpret_cast<float(&)[1][HD / 8][4]>(dva), reinterpret_cast<const float(&)[1][NT][4]>(sc),
                         oc, q0, lane);
    mul_pb_mt<HD, 1, NT>(reinterpret_cast<float(&)[1][HD / 8][4]>(dka), reinterpret_cast<const float(&)[1][NT][4]>(dp),
                         qc, q0, lane);
  }
  if (DQ) {
    __syncthreads();  // sS holds all 64 keys' rows
    // in two halves of HD columns, and for every warp (a warp whose queries see none of the block's keys adds zeros):
    // the whole of HD at once, or skipping such warps, made ptxas spill (255 registers, against 183 this way)
    constexpr int NC = HD / 2;
#pragma unroll 1
    for (int c1 = 0; c1 < HD; c1 += NC) {
      float acc[NC / 8][4];
#pragma unroll
      for (int nt = 0; nt < NC / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
      mul_atb_shared<HD, NC>(acc, *sS, r0, sK, c1, lane);
      add_rows_atomic<HD, NC>(dqb, acc, i0 + r0, c1, s.Tq, g, t);
    }
  }
}

// The dK/dV kernel with its Q and dout tiles double-buffered (setAttention('flash2')): tile i0 + 64 streams in with
// cp.async during tile i0's products (its logsumexp and D rows are plain loads then). K and V stay in shared memory
// as in flash_dkv_kernel; with two Q and two dout tiles that is six tiles (about 55 KiB at HD = 64), so the kernel
// takes dynamic shared memory (dkv_pipe_shared_bytes; dkv_pipe_launch raises the limit). The buffers alternate by
// a parity index (pointers swapped instead, or the loop unrolled by two, made ptxas spill).
// DQ (setFlashBackward('atomic'), FlashAttention-2's backward in one kernel): dQ too, with no second pass over the
// scores: each query tile's dSᵀ goes through a seventh (64 × 64) tile, and dS·K is added into dqacc (fp32,
// (B, NH, Tq, HD), zeroed by flash_D_kernel) with atomics, so dQ's sums run in no fixed order.
template <int HD, bool DQ>
constexpr size_t dkv_pipe_shared_bytes() {
  return 6 * sizeof(Tile<HD>) + (DQ ? sizeof(Tile<64>) : 0) + 4 * kTile * sizeof(float);
}
template <int HD, bool DROP, bool DQ>
__global__ void __launch_bounds__(kThreads) flash_dkv_pipe_kernel(bf16* dk, bf16* dv, float* dqacc, const float* Dbuf,
                                                                  const bf16* dout, const bf16* q, const bf16* k,
                                                                  const bf16* v, const float* lse, FDims s) {
  GN_FLASH2_TRAP();
  GN_DYNAMIC_SHARED(smem);
  Tile<HD>* tiles = reinterpret_cast<Tile<HD>*>(smem);  // K, V, Q[2], dout[2]
  Tile<HD>& sK = tiles[0];
  Tile<HD>& sV = tiles[1];
  Tile<64>* sS = DQ ? reinterpret_cast<Tile<64>*>(tiles + 6) : nullptr;  // dSᵀ (DQ)
  float* sLD = reinterpret_cast<float*>(smem + 6 * sizeof(Tile<HD>) + (DQ ? sizeof(Tile<64>) : 0));  // L[2][64], D[2][64]
  const Place pl = place(s);
  const int b = pl.b, h = pl.h, lane = pl.lane, g = pl.g, t = pl.t, r0 = pl.r0;
  const int j0 = static_cast<int>(blockIdx.x) * kRows;
  const bf16* qb = q + b * s.qsb + h * HD;
  const bf16* ob = dout + b * s.osb + h * HD;
  const float* lrow = lse + (static_cast<int64_t>(b) * s.NH + h) * s.Tq;
  const float* drow = Dbuf + (static_cast<int64_t>(b) * s.NH + h) * s.Tq;
  float* dqb = DQ ? dqacc + (static_cast<int64_t>(b) * s.NH + h) * s.Tq * HD : nullptr;
  int lo, hi;
  key_block_queries(s, j0, &lo, &hi);
  fetch_rows<HD>(tiles[2], qb, s.qst, lo, s.Tq, s.vec);  // the first query tile's copy runs while K and V are read
  fetch_rows<HD>(tiles[4], ob, s.ost, lo, s.Tq, s.vec);
  cp_async_commit();
  // keys past the last query's position are zeros, not loaded: no query sees them, and a KV cache may hold anything
  // there (DQ multiplies the zeros of dS by every row of K, and 0·NaN would reach dQ)
  const int k_end = s.q_pos0 + s.Tq < s.Tk ? s.q_pos0 + s.Tq : s.Tk;
  load_tile<HD>(sK, k + b * s.ksb + h * HD, s.kst, j0, k_end, s.vec);
  load_tile<HD>(sV, v + b * s.vsb + h * HD, s.vst, j0, k_end, s.vec);
  const int c = threadIdx.x & (kTile - 1);  // the row whose L (threads 0..63) or D (64..127) this thread reads
  const bool readsL = threadIdx.x < kTile;
  (readsL ? sLD : sLD + 2 * kTile)[c] = lo + c < s.Tq ? (readsL ? lrow[lo + c] * kLog2e : drow[lo + c]) : 0.0f;

  float dka[HD / 8][4], dva[HD / 8][4];
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dka[nt][e] = dva[nt][e] = 0.0f;
  for (int i0 = lo, cur = 0; i0 <= hi; i0 += kTile, cur ^= 1)
    dkv_pipe_tile<HD, DROP, DQ>(dka, dva, sK, sV, tiles[2 + cur], tiles[4 + cur], sLD + cur * kTile,
                                sLD + (2 + cur) * kTile, tiles[3 - cur], tiles[5 - cur], sLD + (1 - cur) * kTile,
                                sLD + (3 - cur) * kTile, sS, dqb, qb, ob, lrow, drow, s, i0, hi, j0, b, h, r0, lane, c,
                                readsL);
  cp_async_wait<0>();  // (nothing may be in flight when the block ends)
  store_dkv<HD>(dk, dv, dka, dva, s, b, h, j0, r0, g, t);
}

// launches flash_dkv_pipe_kernel, raising its dynamic shared memory limit on first use
template <int HD, bool DROP, bool DQ>
void dkv_pipe_launch(const Stream& st, dim3 grid, bf16* dk, bf16* dv, float* dqacc, const float* D, const bf16* dout,
                     const bf16* q, const bf16* k, const bf16* v, const float* lse, const FDims& s) {
  constexpr size_t kBytes = dkv_pipe_shared_bytes<HD, DQ>();
  static const cudaError_t set = cudaFuncSetAttribute(flash_dkv_pipe_kernel<HD, DROP, DQ>,
                                                      cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kBytes));
  if (set != cudaSuccess)
    throw_cuda(set, "cudaFuncSetAttribute(flash_dkv_pipe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize)",
               __FILE__, __LINE__);
  flash_dkv_pipe_kernel<HD, DROP, DQ><<<grid, kThreads, kBytes, st.s>>>(dk, dv, dqacc, D, dout, q, k, v, lse, s);
}

// dq = scale·dqacc (the atomic backward's fp32 sums, (B, NH, Tq, HD), 16-byte aligned) in bf16 at dq's strides:
// block row blockIdx.y = b·NH + h; a thread takes 4 neighbouring sums (one 16-byte load; HD a power of two, so the
// row and column come from shifts)
template <int HD>
__global__ void __launch_bounds__(256) flash_dq_store_kernel(bf16* dq, const float* dqacc, FDims s) {
  const int bh = static_cast<int>(blockIdx.y), b = bh / s.NH, h = bh % s.NH;
  const float* src = dqacc + static_cast<int64_t>(bh) * s.Tq * HD;
  bf16* dst = dq + b * s.qsb + h * HD;
  const int64_t n4 = static_cast<int64_t>(s.Tq) * (HD / 4);
  for (int64_t e4 = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e4 < n4;
       e4 += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e4 / (HD / 4);
    const int d = static_cast<int>(e4 - i * (HD / 4)) * 4;
#ifdef __CUDA_EMU__
    float v[4];
    std::memcpy(v, src + 4 * e4, sizeof v);
#else
    const float4 f = reinterpret_cast<const float4*>(src)[e4];
    const float v[4] = {f.x, f.y, f.z, f.w};
#endif
    bf16* row = dst + i * s.qst + d;
#pragma unroll
    for (int c = 0; c < 4; ++c) row[c] = from_f<bf16>(s.scale * v[c]);
  }
}

// ---- flash_probe: the products above, one at a time, on given 64×64 bf16 tiles (a diagnostic) ----------------
// One block of 4 warps, tiles x, y, p, v row-major and contiguous; each result (64×64, fp32) is written from the
// accumulator layout of mma.cuh, row r0 + g + 8·rr, column nt·8 + 2t + c:
//   out[0]: x·yᵀ by mma_bf16 alone, both operands loaded element-wise as mma.cuh's layout says (no ldmatrix)
//   out[1]: x·yᵀ by mul_abt (A element-wise, as the forward's Q; B by ldmatrix.x4)
//   out[2]: x·yᵀ by mul_abt_shared (A and B by ldmatrix.x4, as the dK/dV kernel)
//   out[3]: p·v by mul_pb (A from accumulator registers packed to bf16, B by ldmatrix.x4.trans)
//   out[4]: xᵀ·v by mul_atb_shared (the atomic backward's dS·K: A by ldmatrix.x4.trans of a tile that holds Aᵀ),
//           in two halves of the columns as that kernel takes them
//   out[5]: x·yᵀ (out[2]) rounded to bf16 through store_acc_tile into a shared tile (how that kernel writes dSᵀ)
// So a disagreement with the plain products names the building block: the mma layout, ldmatrix, its .trans form,
// the accumulator-to-A packing that P·V relies on, or (out[4], out[5]) the atomic backward's two new blocks.
// where accumulator element acc[nt][e] of the warp with rows r0 .. r0+15 sits in a row-major 64×64 matrix
__device__ __forceinline__ int acc_at(int r0, int g, int t, int nt, int e) {
  return (r0 + g + 8 * (e >> 1)) * 64 + nt * 8 + 2 * t + (e & 1);
}
__device__ __forceinline__ void store_acc(float* o, const float (&acc)[8][4], int r0, int g, int t) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[acc_at(r0, g, t, nt, e)] = acc[nt][e];
}

__global__ void __launch_bounds__(kThreads) flash_probe_kernel(float* out, const bf16* x, const bf16* y, const bf16* p,
                                                               const bf16* v) {
  __shared__ Tile<64> sX;
  __shared__ Tile<64> sY;
  __shared__ Tile<64> sS;
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, r0 = static_cast<int>(threadIdx.x >> 5) * 16;
  load_tile<64>(sX, x, 64, 0, 64, false);
  load_tile<64>(sY, y, 64, 0, 64, false);
  __syncthreads();
  uint32_t xa[4][4];
  load_a<64>(xa, sX, r0, g, t);
  float s[8][4];
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {  // B[k][n] = y[n][k]: b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
    s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      mma_bf16(s[nt], xa[kk], load_pair(&sY.x[nt * 8 + g][kk * 16 + 2 * t]),
               load_pair(&sY.x[nt * 8 + g][kk * 16 + 2 * t + 8]));
  }
  store_acc(out, s, r0, g, t);
  mul_abt<64>(s, xa, sY, lane);
  store_acc(out + 4096, s, r0, g, t);
  mul_abt_shared<64>(s, sX, r0, sY, lane);
  store_acc(out + 2 * 4096, s, r0, g, t);
  store_acc_tile(sS, s, r0, g, t);
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[nt][e] = to_f(p[acc_at(r0, g, t, nt, e)]);
  __syncthreads();  // every warp is done with sY before v replaces it
  load_tile<64>(sY, v, 64, 0, 64, false);
  __syncthreads();
  float acc[8][4];
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
  mul_pb<64>(acc, s, sY, lane);
  store_acc(out + 3 * 4096, acc, r0, g, t);
#pragma unroll 1
  for (int c1 = 0; c1 < 64; c1 += 32) {  // xᵀ·v: the warp's 16 rows are x's columns r0 .. r0+15
    float h[4][4];
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) h[nt][0] = h[nt][1] = h[nt][2] = h[nt][3] = 0.0f;
    mul_atb_shared<64, 32>(h, sX, r0, sY, c1, lane);
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) out[4 * 4096 + acc_at(r0, g, t, nt, e) + c1] = h[nt][e];
  }
  for (int i = threadIdx.x; i < 4096; i += kThreads) out[5 * 4096 + i] = to_f(sS.x[i / 64][i % 64]);
}

bool aligned16(const void* p, int64_t a, int64_t b) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && a % 8 == 0 && b % 8 == 0;
}

FDims make_fdims(const AttnDims& d, bool vec) {
  FDims s;
  s.B = static_cast<int>(d.B); s.Tq = static_cast<int>(d.Tq); s.Tk = static_cast<int>(d.Tk);
  s.NH = static_cast<int>(d.NH); s.q_pos0 = static_cast<int>(d.q_pos0);
  s.window = static_cast<int>(d.window < d.Tk ? d.window : d.Tk);  // a window past every key is dense
  s.dropout = d.dropout;
  s.keep = d.dropout > 0.0f ? 1.0f / (1.0f - d.dropout) : 1.0f;
  s.scale = 1.0f / sqrtf(static_cast<float>(d.HS));
  s.scale_log2 = s.scale * kLog2e;
  s.seed = d.seed;
  s.qsb = d.q[0]; s.qst = d.q[1]; s.ksb = d.k[0]; s.kst = d.k[1];
  s.vsb = d.v[0]; s.vst = d.v[1]; s.osb = d.o[0]; s.ost = d.o[1];
  s.vec = vec;
  return s;
}

// V2: setAttention('flash2'): the forward with 32 query rows a warp (MT = 2), forward and dQ with cp.async
// double-buffered K/V tiles (PIPE)
template <int HD, bool DROP, bool V2>
void fwd(const Stream& st, void* out, float* lse, const void* q, const void* k, const void* v, const FDims& s) {
  constexpr int kMT = V2 ? 2 : 1;
  const dim3 grid(static_cast<unsigned>((s.Tq + 64 * kMT - 1) / (64 * kMT)), static_cast<unsigned>(s.B * s.NH));
  flash_forward_kernel<HD, DROP, kMT, V2><<<grid, kThreads, 0, st.s>>>(static_cast<bf16*>(out), lse, static_cast<const bf16*>(q),
                                                        static_cast<const bf16*>(k), static_cast<const bf16*>(v), s);
  GN_LAUNCHED(st, "flash_forward_kernel");
}

// dqacc (setFlashBackward('atomic'), where flash2's kernels are built, HD = 64): dQ comes from the dK/dV kernel through
// atomics into dqacc, then flash_dq_store_kernel; else from its own kernel (flash_dq_kernel, or flash_dq2_kernel
// for V2). HD = 96 and 128 (where flash2's kernels are built: the host checks) take flash_dq_kernel and the
// pipelined dK/dV kernel, whose six tiles need dynamic shared memory at these sizes.
template <int HD, bool DROP, bool V2>
void bwd(const Stream& st, void* dq, void* dk, void* dv, const void* dout, const void* q, const void* k, const void* v,
         const void* out, const float* lse, float* D, float* dqacc, const FDims& s) {
  // (at HD = 32, the atomic form's dK/dV kernel spilled: that head size runs split)
  constexpr bool kAtomicBuilt = HD == 64;
  constexpr bool kWide = HD > 64;
  static_assert(!(kWide && V2), "HD > 64 has no flash2 forms");
  if (!kAtomicBuilt) dqacc = nullptr;
  const int64_t rows = static_cast<int64_t>(s.B) * s.NH * s.Tq;
  if (!V2 || dqacc) {  // (flash2's dQ kernel computes D itself)
    flash_D_kernel<<<static_cast<unsigned>((rows + kThreads / 32 - 1) / (kThreads / 32)), kThreads, 0, st.s>>>(
        D, dqacc, static_cast<const bf16*>(dout), static_cast<const bf16*>(out), s, HD);
    GN_LAUNCHED(st, "flash_D_kernel");
  }
  const dim3 gk(static_cast<unsigned>((s.Tk + kRows - 1) / kRows), static_cast<unsigned>(s.B * s.NH));
  if constexpr (kAtomicBuilt) if (dqacc) {
    dkv_pipe_launch<HD, DROP, kAtomicBuilt>(st, gk, static_cast<bf16*>(dk), static_cast<bf16*>(dv), dqacc, D,
                                    static_cast<const bf16*>(dout), static_cast<const bf16*>(q),
                                    static_cast<const bf16*>(k), static_cast<const bf16*>(v), lse, s);
    GN_LAUNCHED(st, "flash_dkv_pipe_kernel (with dQ)");
    const int64_t per_bh = (static_cast<int64_t>(s.Tq) * (HD / 4) + 255) / 256;
    const dim3 gs(static_cast<unsigned>(per_bh < 4096 ? per_bh : 4096), static_cast<unsigned>(s.B * s.NH));
    flash_dq_store_kernel<HD><<<gs, 256, 0, st.s>>>(static_cast<bf16*>(dq), dqacc, s);
    GN_LAUNCHED(st, "flash_dq_store_kernel");
    return;
  }
  if constexpr (V2) {
    const dim3 gq(static_cast<unsigned>((s.Tq + 2 * kRows - 1) / (2 * kRows)), static_cast<unsigned>(s.B * s.NH));
    flash_dq2_kernel<HD, DROP><<<gq, kThreads, 0, st.s>>>(static_cast<bf16*>(dq), D, static_cast<const bf16*>(dout),
                                                    static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                                                    static_cast<const bf16*>(v), lse, static_cast<const bf16*>(out), s);
  } else {
    const dim3 gq(static_cast<unsigned>((s.Tq + kRows - 1) / kRows), static_cast<unsigned>(s.B * s.NH));
    flash_dq_kernel<HD, DROP><<<gq, kThreads, 0, st.s>>>(static_cast<bf16*>(dq), D, static_cast<const bf16*>(dout),
                                                   static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                                                   static_cast<const bf16*>(v), lse, s);
  }
  GN_LAUNCHED(st, "flash_dq_kernel");
  if constexpr (V2 || kWide)
    dkv_pipe_launch<HD, DROP, false>(st, gk, static_cast<bf16*>(dk), static_cast<bf16*>(dv), nullptr, D,
                                     static_cast<const bf16*>(dout), static_cast<const bf16*>(q),
                                     static_cast<const bf16*>(k), static_cast<const bf16*>(v), lse, s);
  else
    flash_dkv_kernel<HD, DROP><<<gk, kThreads, 0, st.s>>>(static_cast<bf16*>(dk), static_cast<bf16*>(dv), D,
                                                    static_cast<const bf16*>(dout), static_cast<const bf16*>(q),
                                                    static_cast<const bf16*>(k), static_cast<const bf16*>(v), lse, s);
  GN_LAUNCHED(st, "flash_dkv_kernel");
}

using FwdFn = void (*)(const Stream&, void*, float*, const void*, const void*, const void*, const FDims&);
using BwdFn = void (*)(const Stream&, void*, void*, void*, const void*, const void*, const void*, const void*,
                      const void*, const float*, float*, float*, const FDims&);
// (head sizes 96 and 128: 16 query rows a warp, also under 'flash2')
template <bool DROP, bool V2>
FwdFn fwd_of(int64_t HS) {
  return HS == 32 ? fwd<32, DROP, V2> : HS == 64 ? fwd<64, DROP, V2> : HS == 80 ? fwd<80, DROP, false>
       : HS == 96 ? fwd<96, DROP, false> : fwd<128, DROP, false>;
}
template <bool DROP, bool V2>
BwdFn bwd_of(int64_t HS) {
  return HS == 32 ? bwd<32, DROP, V2> : HS == 64 ? bwd<64, DROP, V2> : HS == 80 ? bwd<80, DROP, false>
       : HS == 96 ? bwd<96, DROP, false> : bwd<128, DROP, false>;
}

}  // namespace

namespace {
// The kernels this device runs were compiled for sm_80 or later: a build whose only code for the device is the
// PTX of an older architecture (CUDA_ARCHS) would JIT the tensor-core product to a trap (mma.cuh), and a device
// older than every architecture built has no image of the kernel at all (the call fails)
bool flash_built() {
  static int built = -1;
  if (built < 0) {
    cudaFuncAttributes at;
    built = cudaFuncGetAttributes(&at, flash_forward_kernel<64, false, 1, false>) == cudaSuccess && at.ptxVersion >= 80;
    (void)cudaGetLastError();
  }
  return built == 1;
}
}  // namespace

namespace {
// flash2's kernels run their real bodies on this device (an sm_90+ image; GN_FLASH2_TRAP), else 'flash2' runs as
// 'flash'
bool flash2_built() {
  static int built = -1;
  if (built < 0) {
    cudaFuncAttributes at;
    built = flash_built() && cudaFuncGetAttributes(&at, flash_forward_kernel<64, false, 2, true>) == cudaSuccess &&
            at.binaryVersion >= 90;
    (void)cudaGetLastError();
  }
  return built == 1;
}
}  // namespace

bool flash_probe(const Stream& st, float* out, const void* x, const void* y, const void* p, const void* v) {
  if (!flash_built()) return false;
  flash_probe_kernel<<<1, kThreads, 0, st.s>>>(out, static_cast<const bf16*>(x), static_cast<const bf16*>(y),
                                               static_cast<const bf16*>(p), static_cast<const bf16*>(v));
  GN_LAUNCHED(st, "flash_probe_kernel");
  return true;
}

namespace {
// The flash backward runs at head size 80, 96 or 128 on this device: its dK/dV kernel (flash_dkv_pipe_kernel) is
// built for it (sm_90+) and its dynamic shared memory (68, 81 and 103 KiB) fits a block (227 KiB on sm_90, but
// 99 KiB on sm_120)
bool wide_backward(int64_t HS) {
  static int optin = -1;
  if (optin < 0) {
    int dev = 0;
    cudaDeviceProp prop;
    optin = cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess
                ? static_cast<int>(prop.sharedMemPerBlockOptin)
                : 0;
    (void)cudaGetLastError();
  }
  const size_t need = HS == 80   ? dkv_pipe_shared_bytes<80, false>()
                      : HS == 96 ? dkv_pipe_shared_bytes<96, false>()
                                 : dkv_pipe_shared_bytes<128, false>();
  return (HS == 80 || HS == 96 || HS == 128) && flash2_built() && static_cast<size_t>(optin) >= need;
}
}  // namespace

bool attention_flash_supported(DType dt, const AttnDims& d, bool backward) {
  const bool wide = d.HS == 80 || d.HS == 96 || d.HS == 128;
  return dt == kBF16 && (d.HS == 32 || d.HS == 64 || (wide && (!backward || wide_backward(d.HS)))) && flash_built() &&
         d.B * d.NH <= 65535 && d.Tk < (int64_t(1) << 30);
}

void attention_forward_flash(const Stream& st, void* out, float* lse, const void* q, const void* k, const void* v,
                             const AttnDims& d, bool v2) {
  const FDims s = make_fdims(d, aligned16(q, d.q[0], d.q[1]) && aligned16(k, d.k[0], d.k[1]) &&
                                    aligned16(v, d.v[0], d.v[1]));
  const bool drop = s.dropout > 0.0f;
  // flash2's forward takes blocks of 128 queries: for 64 or fewer (decoding steps), the 64-query blocks of flash
  v2 = v2 && flash2_built() && d.Tq > kRows;
  const auto run = v2 ? (drop ? fwd_of<true, true> : fwd_of<false, true>)
                      : (drop ? fwd_of<true, false> : fwd_of<false, false>);
  run(d.HS)(st, out, lse, q, k, v, s);
}

void attention_backward_flash(const Stream& st, void* dq, void* dk, void* dv, const void* dout, const void* q,
                              const void* k, const void* v, const void* out, const float* lse, float* Dscratch,
                              const AttnDims& d, bool v2, float* dq_scratch) {
  const FDims s = make_fdims(d, aligned16(q, d.q[0], d.q[1]) && aligned16(k, d.k[0], d.k[1]) &&
                                    aligned16(v, d.v[0], d.v[1]) && aligned16(dout, d.o[0], d.o[1]));
  const bool drop = s.dropout > 0.0f;
  v2 = v2 && flash2_built();
  if (!flash2_built()) dq_scratch = nullptr;  // (the atomic backward is flash2's dK/dV kernel)
  if (dq_scratch && reinterpret_cast<uintptr_t>(dq_scratch) % 16 != 0)  // (its atomics add 16 bytes at a time)
    throw_cuda(cudaErrorMisalignedAddress, "attention_backward_flash: dq_scratch is not 16-byte aligned", __FILE__,
               __LINE__);
  if (d.HS != 32 && d.HS != 64 && !wide_backward(d.HS))
    throw KernelError(KernelError::Kind::Range,
                      str_cat("attention_backward_flash: head size ", d.HS,
                              " has no flash backward here (32 or 64; 80, 96 or 128 on sm_90+ with the shared memory)"));
  const auto run = v2 ? (drop ? bwd_of<true, true> : bwd_of<false, true>)
                      : (drop ? bwd_of<true, false> : bwd_of<false, false>);
  run(d.HS)(st, dq, dk, dv, dout, q, k, v, out, lse, Dscratch, dq_scratch, s);
}

}  // namespace cuda
}  // namespace gn
