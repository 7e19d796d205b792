// Helpers for auto-vectorised elementwise kernels.
// GN_MULTIVERSION compiles a function for AVX-512, AVX2 and baseline x86-64; the loader picks one at run
// time from what the processor reports (GCC/Clang target_clones + ifunc), never -march=native.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define GN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GN_MULTIVERSION
#endif

namespace gn {

// exp(x) for float, branch-free so loops vectorise: range reduction x = k·ln2 + r, degree-6 polynomial on
// r in [-ln2/2, ln2/2], result scaled by 2^k through the exponent bits. Relative error < 2e-7 over the
// range used by softmax (x <= 0) and GELU; inputs below -87 flush to 0, above 88 clamp.
static inline float fast_expf(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // k = round(x / ln2) by the 1.5·2^23 trick (vectorises without SSE4.1's round)
  float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - kf * 0.693359375f;  // Cody-Waite: ln2 = 0.693359375 - 2.12194440e-4
  r = r + kf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;        // Cephes expf minimax polynomial
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(kf) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// tanh through exp: tanh(y) = 1 - 2/(exp(2y)+1), accurate to a few ulp for |y| < 9; saturates beyond.
static inline float fast_tanhf(float y) {
  float e = fast_expf(2.0f * y);
  return 1.0f - 2.0f / (e + 1.0f);
}

}  // namespace gn

namespace gn {

// Reductions written with 16 independent lanes so they vectorise without -ffast-math (a plain `s += x[i]`
// loop is a serial dependency the compiler may not reorder). Inlined into GN_MULTIVERSION callers, they
// take the caller's vector width. The summation order is fixed, so results do not depend on threads.
template <typename F>
static inline float lane_sum(int64_t n, F f) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += f(i + j);
  float tail = 0.0f;
  for (; i < n; ++i) tail += f(i);
  for (int w = 8; w > 0; w >>= 1)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0] + tail;
}

static inline float lane_max(const float* x, int64_t n) {
  float acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = -INFINITY;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  float m = -INFINITY;
  for (int j = 0; j < 16; ++j) m = acc[j] > m ? acc[j] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

}  // namespace gn
