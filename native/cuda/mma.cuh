// Warp-level tensor-core products for the flash attention kernels (attention_flash.cu): one
// mma.sync.m16n8k16 with bf16 operands and fp32 accumulators (sm_80 and later), and the bf16 packing the
// fragments use. On the CUDA emulator the same call runs ::gn_emu::mma_bf16_m16n8k16, which gathers the 32
// lanes' fragments and computes the product with the layout below, so a kernel that puts an element in the
// wrong register gives wrong numbers there as it would on a GPU.
//
// Fragment layout (PTX ISA, "Matrix Fragments for mma.m16n8k16", .bf16 A/B, .f32 C/D), lane = 4·g + t
// (g = lane >> 2, t = lane & 3); a register holds two bf16, the lower column (A) or row (B) in its low half:
//   A (16×16, row-major):  a[0] = A[g][2t..2t+1]    a[1] = A[g+8][2t..2t+1]
//                          a[2] = A[g][2t+8..2t+9]  a[3] = A[g+8][2t+8..2t+9]
//   B (16×8, k × n):       b0 = B[2t..2t+1][g]      b1 = B[2t+8..2t+9][g]
//   C, D (16×8):           d[0], d[1] = D[g][2t], D[g][2t+1]      d[2], d[3] = D[g+8][2t], D[g+8][2t+1]
// So the accumulators of two neighbouring 8-column tiles n0 = 16c, 16c + 8 are, packed to bf16, the A fragment
// of columns 16c .. 16c+15 (what flash attention does with P before P·V).
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda/device.cuh"

namespace gn {
namespace cuda {

// d += A·B over one 16×8×16 tile (all 32 lanes of the warp must call it together)
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_EMU__)
  ::gn_emu::mma_bf16_m16n8k16(d, a, b0, b1);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // built for an architecture without bf16 mma: the host never launches these kernels there
#endif
}

__device__ __forceinline__ uint32_t bf16_bits(bf16 x) {
#ifdef __CUDA_EMU__
  return x.__x;
#else
  return __bfloat16_as_ushort(x);
#endif
}

// two floats rounded to bf16 (nearest even), lo in the low half: one cvt.rn.bf16x2.f32 on a GPU (sm_80 and later;
// two conversions and a byte permute otherwise)
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
#if !defined(__CUDA_EMU__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));  // the first source goes to the upper half
  return r;
#else
  return bf16_bits(from_f<bf16>(lo)) | (bf16_bits(from_f<bf16>(hi)) << 16);
#endif
}

// two bf16 from anywhere, lo in the low half
__device__ __forceinline__ uint32_t pack_bf16(bf16 lo, bf16 hi) { return bf16_bits(lo) | (bf16_bits(hi) << 16); }

// Four 8×8 bf16 matrices from shared memory with one ldmatrix.sync.aligned.m8n8.x4 (sm_75 and later): lane l gives
// the address of row l % 8 of matrix l / 8 (8 bf16, 16-byte aligned); r[i] receives matrix i's elements
// (l / 4, 2·(l % 4) .. +1), the layout of an mma operand register. With .trans (ldsm_x4<true>) it receives
// (2·(l % 4) .. +1, l / 4) instead: a B operand read from a row-major (k, n) tile.
template <bool TRANS>
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* row) {
#if defined(__CUDA_EMU__)
  ::gn_emu::ldmatrix_x4(r, row, TRANS);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#else
  (void)row;
  r[0] = r[1] = r[2] = r[3] = 0u;
  __trap();
#endif
}

// 16 bytes from global to shared memory without passing through registers (cp.async, sm_80 and later), or 16 zero
// bytes where !valid (src-size 0: nothing is read). The copy lands by the cp_async_wait that follows its
// cp_async_commit; each thread waits for its own copies, so a __syncthreads after the wait makes them everyone's.
// On the emulator the copy lands only at the cp_async_wait that covers it, as the hardware allows (a read of the
// tile before that wait sees its old contents), and a thread that exits with copies in flight fails the launch.
__device__ __forceinline__ void cp_async16(bf16* dst, const bf16* src, bool valid) {
#if defined(__CUDA_EMU__)
  ::gn_emu::cp_async16(dst, src, valid);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
#else
  (void)dst;
  (void)src;
  (void)valid;
  __trap();  // the host never launches the flash kernels below sm_80
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_EMU__)
  ::gn_emu::cp_async_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// waits until at most N of this thread's committed groups are still in flight
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_EMU__)
  ::gn_emu::cp_async_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// two neighbouring bf16 (p 4-byte aligned) as one register
__device__ __forceinline__ uint32_t load_pair(const bf16* p) {
#ifdef __CUDA_EMU__
  emu_check_aligned(p, 4, "load_pair");
  uint32_t v;
  std::memcpy(&v, p, 4);  // the host compiler's aliasing rules
  return v;
#else
  return *reinterpret_cast<const uint32_t*>(p);
#endif
}

}  // namespace cuda
}  // namespace gn
