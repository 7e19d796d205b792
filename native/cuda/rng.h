// The dropout generator of native/cpu/elementwise.cpp and the attention-dropout counter of
// native/cpu/attention.cpp, usable on host and device. Must stay bit-identical to the CPU versions so a
// (seed, index) pair gives the same keep/drop decision on both backends; scripts/check-cuda.sh compares
// this host copy against the CPU addon's dropout_uniform on a few million indices.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define GN_HD __host__ __device__ __forceinline__
#else
#define GN_HD inline
#endif

namespace gn {
namespace cuda {

// SplitMix64 finaliser (same constants and shifts as the CPU's mix64)
GN_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// uniform [0,1) with 24 bits: z >> 40 < 2^24 converts exactly, the scale is a power of two: no rounding.
GN_HD float dropout_uniform(uint64_t seed, uint64_t index) {
  uint64_t z = mix64(seed * 0x9e3779b97f4a7c15ULL + index + 0x632be59bd9b4e019ULL);
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

// counter of attention weight (b, h, i, j): ((b·NH + h)·Tq + i)·Tk + j, in uint64 like the CPU
GN_HD uint64_t attn_drop_index(int64_t NH, int64_t Tq, int64_t Tk, int64_t b, int64_t h, int64_t i, int64_t j) {
  return ((static_cast<uint64_t>(b) * static_cast<uint64_t>(NH) + static_cast<uint64_t>(h)) *
              static_cast<uint64_t>(Tq) + static_cast<uint64_t>(i)) * static_cast<uint64_t>(Tk) +
         static_cast<uint64_t>(j);
}

}  // namespace cuda
}  // namespace gn
