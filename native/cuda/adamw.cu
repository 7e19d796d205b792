// AdamW, as native/cpu/adamw.cpp (decoupled weight decay, bias-corrected moments):
//   g = grad·grad_scale;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//   θ = θ - lr·( (m/bc1) / (√(v/bc2) + ε) + λ·θ ),   bc1 = 1-β1^t, bc2 = 1-β2^t (host, double → float)
// param16 (optional): the new θ rounded to bf16, so a bf16 model's weight copy needs no pass of its own.
// Launch: one thread per element, grid-stride, 256 threads per block.
#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                             float eps, float wd, float bc1, float bc2, float gs, bf16* p16) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float gi = g[i] * gs;
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float mh = mi / bc1, vh = vi / bc2;
    const float pi = p[i] - lr * (mh / (sqrtf(vh) + eps) + wd * p[i]);
    p[i] = pi;
    if (p16) p16[i] = from_f<bf16>(pi);
  }
}

}  // namespace

void adamw_step(const Stream& st, float* param, const float* grad, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2, float grad_scale,
                void* param16) {
  if (n == 0) return;
  adamw_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1,
                                                   bc2, grad_scale, static_cast<bf16*>(param16));
  GN_LAUNCHED(st, "adamw_kernel");
}

}  // namespace cuda
}  // namespace gn
