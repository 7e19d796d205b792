// GELU, tanh form, as native/cpu/gelu.cpp:
//   y = 0.5·x·(1 + tanh(u)) = x·σ(2u),  u = √(2/π)·(x + 0.044715·x³)
//   dy/dx = σ(2u) + 2·x·σ(2u)·(1 - σ(2u))·√(2/π)·(1 + 3·0.044715·x²)
// Launch: one thread per element, grid-stride, 256 threads per block.
#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

constexpr float kS2Pi = 0.7978845608028654f;  // √(2/π)
constexpr float kA = 0.044715f;

__global__ void gelu_forward_kernel(float* out, const float* inp, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = inp[i];
    const float u = kS2Pi * (x + kA * x * x * x);
    out[i] = x / (1.0f + expf(-2.0f * u));
  }
}

__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = inp[i];
    const float u = kS2Pi * (x + kA * x * x * x);
    const float sg = 1.0f / (1.0f + expf(-2.0f * u));
    const float d = sg + 2.0f * x * sg * (1.0f - sg) * kS2Pi * (1.0f + 3.0f * kA * x * x);
    dinp[i] = d * dout[i];
  }
}

}  // namespace

void gelu_forward(const Stream& st, float* out, const float* inp, int64_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(out, inp, n);
  GN_LAUNCHED(st, "gelu_forward_kernel");
}

void gelu_backward(const Stream& st, float* dinp, const float* inp, const float* dout, int64_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(dinp, inp, dout, n);
  GN_LAUNCHED(st, "gelu_backward_kernel");
}

}  // namespace cuda
}  // namespace gn
