// Elementwise families, as native/cpu/elementwise.cpp:
//   add:     out = a + b               (out may alias a or b)
//   scale:   a = a · s
//   fill:    a = value
//   dropout: out = inp · keep / (1 - p), keep = dropout_uniform(seed, offset + i) >= p   (out may alias inp)
//   sumsq:   Σ a², per-block partials in double (the host adds them in block order: deterministic)
// Launch: one thread per element, grid-stride, 256 threads per block; sumsq a fixed grid of
// sumsq_blocks(n) blocks of 256 threads, each reducing its grid-stride share.
#include "cuda/device.cuh"
#include "cuda/kernels.h"
#include "cuda/rng.h"

namespace gn {
namespace cuda {

namespace {

#define GN_GRID_STRIDE(i, n)                                                                       \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n);          \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void add_kernel(float* out, const float* a, const float* b, int64_t n) {
  GN_GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float* a, float s, int64_t n) {
  GN_GRID_STRIDE(i, n) a[i] *= s;
}

__global__ void fill_kernel(float* a, float value, int64_t n) {
  GN_GRID_STRIDE(i, n) a[i] = value;
}

__global__ void dropout_kernel(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  const float k = 1.0f / (1.0f - p);
  GN_GRID_STRIDE(i, n) {
    out[i] = dropout_uniform(seed, offset + static_cast<uint64_t>(i)) >= p ? inp[i] * k : 0.0f;
  }
}

constexpr int kSumsqThreads = 256;
__global__ void sumsq_kernel(double* partials, const float* a, int64_t n) {
  __shared__ double shared[32];
  double s = 0.0;
  GN_GRID_STRIDE(i, n) {
    const double x = a[i];
    s += x * x;
  }
  s = block_sum(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

#undef GN_GRID_STRIDE

}  // namespace

void add(const Stream& st, float* out, const float* a, const float* b, int64_t n) {
  if (n == 0) return;
  add_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(out, a, b, n);
  GN_LAUNCHED(st, "add_kernel");
}

void scale(const Stream& st, float* a, float s, int64_t n) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(a, s, n);
  GN_LAUNCHED(st, "scale_kernel");
}

void fill(const Stream& st, float* a, float value, int64_t n) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(a, value, n);
  GN_LAUNCHED(st, "fill_kernel");
}

void dropout(const Stream& st, float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  if (n == 0) return;
  if (p <= 0.0f) {  // identity, as on the CPU
    if (out != inp) GN_CUDA(cudaMemcpyAsync(out, inp, n * sizeof(float), cudaMemcpyDeviceToDevice, st.s));
    return;
  }
  dropout_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(out, inp, n, p, seed, offset);
  GN_LAUNCHED(st, "dropout_kernel");
}

int64_t sumsq_blocks(int64_t n) {
  int64_t b = (n + kSumsqThreads - 1) / kSumsqThreads;
  return b < 1 ? 1 : (b > 1024 ? 1024 : b);
}

void sumsq_partials(const Stream& st, double* partials, const float* a, int64_t n) {
  sumsq_kernel<<<static_cast<unsigned>(sumsq_blocks(n)), kSumsqThreads, 0, st.s>>>(partials, a, n);
  GN_LAUNCHED(st, "sumsq_kernel");
}

}  // namespace cuda
}  // namespace gn
