// GELU, tanh form:  y = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
// dy/dx = 0.5·(1 + tanh(u)) + 0.5·x·(1 - tanh²(u))·√(2/π)·(1 + 3·0.044715·x²)
// inp/out/dinp/dout (n); dinp written (=).
// Computed as y = x·σ(2u) (σ the logistic function; 0.5·(1+tanh(u)) = σ(2u)), which keeps full relative
// precision in the negative tail where 1 + tanh(u) would cancel; then 1 - tanh² = 4σ(1-σ).
#include "cpu/kernels.h"
#include "cpu/simd.h"
#include "cpu/threading.h"

namespace gn {

static constexpr float kS2Pi = 0.7978845608028654f;  // √(2/π)
static constexpr float kA = 0.044715f;

GN_MULTIVERSION
static void gelu_fwd_range(float* out, const float* inp, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    float x = inp[i];
    float u = kS2Pi * (x + kA * x * x * x);
    out[i] = x / (1.0f + fast_expf(-2.0f * u));
  }
}

GN_MULTIVERSION
static void gelu_bwd_range(float* dinp, const float* inp, const float* dout, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    float x = inp[i];
    float u = kS2Pi * (x + kA * x * x * x);
    float sg = 1.0f / (1.0f + fast_expf(-2.0f * u));
    float d = sg + 2.0f * x * sg * (1.0f - sg) * kS2Pi * (1.0f + 3.0f * kA * x * x);
    dinp[i] = d * dout[i];
  }
}

void gelu_forward(float* out, const float* inp, int64_t n, ThreadPool* pool) {
  if (!pool) { gelu_fwd_range(out, inp, 0, n); return; }
  pool->parallel_for(n, [&](int64_t b, int64_t e, int) { gelu_fwd_range(out, inp, b, e); }, 4096);
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, ThreadPool* pool) {
  if (!pool) { gelu_bwd_range(dinp, inp, dout, 0, n); return; }
  pool->parallel_for(n, [&](int64_t b, int64_t e, int) { gelu_bwd_range(dinp, inp, dout, b, e); }, 4096);
}

}  // namespace gn
