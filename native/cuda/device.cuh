// Device helpers shared by the kernels: warp and block reductions, grid sizing for grid-stride loops.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "cuda/dtype.h"

// A kernel's dynamic shared memory (the launch's third argument; above 48 KiB only after cudaFuncSetAttribute with
// cudaFuncAttributeMaxDynamicSharedMemorySize): `GN_DYNAMIC_SHARED(name);` declares `name`, 16-byte aligned bytes
#ifdef __CUDA_EMU__
#define GN_DYNAMIC_SHARED(name) unsigned char* name = ::gn_emu::dynamic_shared()
#else
#define GN_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace gn {
namespace cuda {

constexpr unsigned kFullMask = 0xffffffffu;

using bf16 = __nv_bfloat16;

constexpr float kLog2e = 1.4426950408889634f;

// 2^x with subnormal results flushed to zero (and subnormal x taken as 0): one ex2.approx.ftz on a GPU (relative
// error about 2^-22), where exp2f (ex2.approx without .ftz) adds a compare and two multiplies per call to reach
// the subnormal range, and expf about eight instructions. Softmax weights never need the subnormals: a weight
// below 2^-126 is zero either way beside the row's largest, which is 1 or more. The emulator computes the same
// with the host's exp2f.
__device__ __forceinline__ float exp2_ftz(float x) {
#if !defined(__CUDA_EMU__) && defined(__CUDA_ARCH__)
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
  return r;
#else
  if (x > -FLT_MIN && x < FLT_MIN) x = 0.0f;
  const float r = exp2f(x);
  return r < FLT_MIN ? 0.0f : r;
#endif
}

// e^x as exp2_ftz(x·log2 e): for softmax weights e^(x - max), where the multiply's rounding (relative 2^-24 of
// |x|·log2 e) is far below what the weights need
__device__ __forceinline__ float exp_ftz(float x) { return exp2_ftz(x * kLog2e); }

// activations are float or bf16; kernels compute in float: to_f on load, from_f<T> on store
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16(x); }

// The emulator faults a vector access whose address a GPU would fault (misaligned for its width), instead of letting
// the host's memcpy pass it: the host code that decides a 16-byte form applies (aligned16) is then checked too.
#ifdef __CUDA_EMU__
__device__ __forceinline__ void emu_check_aligned(const void* p, unsigned bytes, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0) {
    std::fprintf(stderr, "gn_emu: %s at %p is not %u-byte aligned (a misaligned address fault on a GPU)\n", what, p, bytes);
    std::abort();
  }
}
#endif

// 16-byte vectors of activations: kVec<T> elements (8 bf16 or 4 float) loaded or stored in one access, where the
// pointer is 16-byte aligned (aligned16 on the host decides). Arithmetic stays in float. The bytes go through
// memcpy (register moves on a GPU; on the emulator it keeps the host compiler's aliasing rules).
template <typename T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));
// BYTES of anything, moved in one access (aligned to BYTES)
template <int BYTES>
struct alignas(BYTES) VecBytes {
  uint32_t w[BYTES / 4];
};
using Bytes16 = VecBytes<16>;
template <typename T>
__device__ __forceinline__ void load16(float* f, const T* p) {
  Bytes16 b;
#ifdef __CUDA_EMU__
  emu_check_aligned(p, 16, "load16");
  std::memcpy(&b, p, sizeof b);
#else
  b = *reinterpret_cast<const Bytes16*>(p);
#endif
  T e[kVec<T>];
  memcpy(e, &b, sizeof b);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) f[i] = to_f(e[i]);
}
// N elements of T (N·sizeof(T) bytes: 8 or 16, aligned to that) stored in one access, rounded from floats
template <int N, typename T>
__device__ __forceinline__ void store_n(T* p, const float* f) {
  static_assert(N * sizeof(T) == 8 || N * sizeof(T) == 16, "an 8- or 16-byte store");
  using Bytes = VecBytes<N * sizeof(T)>;
  T e[N];
#pragma unroll
  for (int i = 0; i < N; ++i) e[i] = from_f<T>(f[i]);
  Bytes b;
  memcpy(&b, e, sizeof b);
#ifdef __CUDA_EMU__
  emu_check_aligned(p, sizeof b, "store_n");
  std::memcpy(p, &b, sizeof b);
#else
  *reinterpret_cast<Bytes*>(p) = b;
#endif
}
template <typename T>
__device__ __forceinline__ void store16(T* p, const float* f) {
  store_n<kVec<T>>(p, f);
}
// W consecutive elements as floats: W = 1 (any alignment) or W = kVec<T> (16-byte aligned), so that one loop body
// serves both the vector and the element-at-a-time form of a kernel
template <int W, typename T>
__device__ __forceinline__ void load_w(float* f, const T* p) {
  if constexpr (W == 1) f[0] = to_f(*p);
  else load16(f, p);
}
template <int W, typename T>
__device__ __forceinline__ void store_w(T* p, const float* f) {
  if constexpr (W == 1) *p = from_f<T>(f[0]);
  else store16(p, f);
}
// host: p is 16-byte aligned (cudaMalloc gives 256; views into a buffer may not be)
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
// host: every row (stride elements of T) of the matrices at ps starts 16-byte aligned, so a kernel may take
// kVec<T> elements at a time
template <typename T>
bool rows_aligned16(int64_t stride, std::initializer_list<const void*> ps) {
  if (stride % kVec<T> != 0) return false;
  for (const void* p : ps)
    if (!aligned16(p)) return false;
  return true;
}

// Sum over the 32 lanes of a warp; every lane receives the total (butterfly).
__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}
__device__ __forceinline__ double warp_sum(double x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
  return x;
}

// Sum over a block whose size is a multiple of 32 (at most 1024); every thread receives the total.
// shared must hold 32 elements; the function synchronises, so all threads of the block must call it.
template <typename T>
__device__ T block_sum(T x, T* shared) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  x = warp_sum(x);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[wid] = x;
  __syncthreads();
  T t = lane < nw ? shared[lane] : T(0);
  return warp_sum(t);
}

// Blocks for a grid-stride loop over n items with `threads` per block (capped; the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65536LL * 8) b = 65536LL * 8;
  return static_cast<unsigned>(b);
}

// Blocks for a kernel over the rows × cols of a matrix without a division per element: blockIdx.x covers
// the columns in blocks of `threads`, blockIdx.y the rows (a block loops over rows y, y + gridDim.y, …). Rows
// are capped so that a grid has at most about 2^17 blocks (and gridDim.y <= 65535).
inline dim3 grid_rows(int64_t rows, int64_t cols, int threads) {
  int64_t x = (cols + threads - 1) / threads;
  if (x < 1) x = 1;
  int64_t y = rows < 1 ? 1 : rows;
  const int64_t cap = (int64_t(1) << 17) / x;
  if (y > cap) y = cap;
  if (y > 65535) y = 65535;
  if (y < 1) y = 1;
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(y));
}

}  // namespace cuda
}  // namespace gn
