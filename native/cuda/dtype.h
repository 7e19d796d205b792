// Element types of device buffers. Parameters, gradients, AdamW moments and per-row statistics (LayerNorm
// mean/rstd, logsumexp, losses) are always fp32; activations and their gradients are fp32 or bf16 (a model with
// precision 'bf16' on cuda). A kernel's activation arguments share one dtype (checked in ops.cc); its launcher
// takes that dtype and void pointers, and instantiates the kernel for float or __nv_bfloat16.
// bf16 here is bfloat16: the top 16 bits of an fp32, rounded to nearest even (NaN stays NaN).
#pragma once
#include <cstdint>
#include <cstring>

namespace gn {
namespace cuda {

enum DType : int { kF32 = 0, kBF16 = 1 };

inline int64_t dtype_bytes(DType dt) { return dt == kBF16 ? 2 : 4; }
inline const char* dtype_name(DType dt) { return dt == kBF16 ? "bf16" : "fp32"; }

// host conversions (the device uses cuda_bf16.h's, which round the same way)
inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_bits_to_f32(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace cuda
}  // namespace gn
