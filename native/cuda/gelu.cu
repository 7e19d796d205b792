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

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = to_f(inp[i]);
    const float u = kS2Pi * (x + kA * x * x * x);
    out[i] = from_f<T>(x / (1.0f + expf(-2.0f * u)));
  }
}

template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = to_f(inp[i]);
    const float u = kS2Pi * (x + kA * x * x * x);
    const float sg = 1.0f / (1.0f + expf(-2.0f * u));
    const float d = sg + 2.0f * x * sg * (1.0f - sg) * kS2Pi * (1.0f + 3.0f * kA * x * x);
    dinp[i] = from_f<T>(d * to_f(dout[i]));
  }
}

template <typename T>
void gelu_fwd(const Stream& st, void* out, const void* inp, int64_t n) {
  gelu_forward_kernel<T><<<grid_for(n, 256), 256, 0, st.s>>>(static_cast<T*>(out), static_cast<const T*>(inp), n);
  GN_LAUNCHED(st, "gelu_forward_kernel");
}

template <typename T>
void gelu_bwd(const Stream& st, void* dinp, const void* inp, const void* dout, int64_t n) {
  gelu_backward_kernel<T><<<grid_for(n, 256), 256, 0, st.s>>>(static_cast<T*>(dinp), static_cast<const T*>(inp),
                                                              static_cast<const T*>(dout), n);
  GN_LAUNCHED(st, "gelu_backward_kernel");
}

}  // namespace

void gelu_forward(const Stream& st, DType dt, void* out, const void* inp, int64_t n) {
  if (n == 0) return;
  if (dt == kBF16) gelu_fwd<bf16>(st, out, inp, n);
  else gelu_fwd<float>(st, out, inp, n);
}

void gelu_backward(const Stream& st, DType dt, void* dinp, const void* inp, const void* dout, int64_t n) {
  if (n == 0) return;
  if (dt == kBF16) gelu_bwd<bf16>(st, dinp, inp, dout, n);
  else gelu_bwd<float>(st, dinp, inp, dout, n);
}

}  // namespace cuda
}  // namespace gn
