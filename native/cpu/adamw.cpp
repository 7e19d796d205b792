// AdamW (Loshchilov & Hutter), decoupled weight decay, bias-corrected moments:
//   g = grad · grad_scale
//   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//   m̂ = m / (1-β1^t);    v̂ = v / (1-β2^t)
//   θ = θ - lr · (m̂ / (√v̂ + ε) + λ·θ)
// param, grad, m, v (n). Which tensors decay is the caller's choice (λ = 0 for biases and LayerNorm).
// param16 (optional, n): the updated θ rounded to bf16, written per chunk while it is still in cache.
#include <cmath>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/simd.h"
#include "cpu/threading.h"

namespace gn {

GN_MULTIVERSION
static void adamw_range(float* p, const float* g, float* m, float* v, int64_t s, int64_t e, float lr,
                        float b1, float b2, float eps, float wd, float bc1, float bc2, float gs) {
  for (int64_t i = s; i < e; ++i) {
    float gi = g[i] * gs;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float mh = mi / bc1, vh = vi / bc2;
    p[i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * p[i]);
  }
}

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
                ThreadPool* pool, uint16_t* param16) {
  float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
  float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step)));
  auto body = [&](int64_t s, int64_t e, int) {
    adamw_range(param, grad, m, v, s, e, lr, beta1, beta2, eps, weight_decay, bc1, bc2, grad_scale);
    if (param16) f32_to_bf16(param16 + s, param + s, e - s, nullptr);
  };
  if (pool) pool->parallel_for(n, body, 1 << 14);
  else body(0, n, 0);
}

}  // namespace gn
