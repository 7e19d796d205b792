// LayerNorm over the last dimension, as native/cpu/layernorm.cpp:
//   mean = Σx/C, var = Σ(x-mean)²/C (biased), rstd = 1/sqrt(var+eps), out = (x-mean)·rstd·w + b
// Backward, xhat = (x-mean)·rstd, g = dout·w:
//   dinp = rstd · (g - mean_c(g) - xhat · mean_c(g·xhat))   (=, may be skipped)
//   dweight += Σ_n dout·xhat, dbias += Σ_n dout            (+=)
// Launch shapes: forward and dinp use one warp per row (8 rows per 256-thread block); the parameter
// gradients use a separate column kernel (block (32, 8), one column per threadIdx.x), which sums rows in a
// fixed order: deterministic, no atomics.
#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp,
                                         const float* weight, const float* bias, int64_t N, int64_t C, float eps) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  const float* x = inp + n * C;
  float s = 0.0f;
  for (int64_t c = lane; c < C; c += 32) s += x[c];
  const float m = warp_sum(s) / static_cast<float>(C);
  float v = 0.0f;
  for (int64_t c = lane; c < C; c += 32) {
    const float d = x[c] - m;
    v += d * d;
  }
  const float r = 1.0f / sqrtf(warp_sum(v) / static_cast<float>(C) + eps);
  float* y = out + n * C;
  for (int64_t c = lane; c < C; c += 32) y[c] = (x[c] - m) * r * weight[c] + bias[c];
  if (lane == 0) {
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = r;
  }
}

// dinp only (one warp per row)
__global__ void layernorm_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* weight,
                                      const float* mean, const float* rstd, int64_t N, int64_t C) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  const float* x = inp + n * C;
  const float* dy = dout + n * C;
  const float m = mean[n], r = rstd[n];
  float sg = 0.0f, sgx = 0.0f;
  for (int64_t c = lane; c < C; c += 32) {
    const float g = dy[c] * weight[c];
    sg += g;
    sgx += g * ((x[c] - m) * r);
  }
  sg = warp_sum(sg) / static_cast<float>(C);
  sgx = warp_sum(sgx) / static_cast<float>(C);
  float* dx = dinp + n * C;
  for (int64_t c = lane; c < C; c += 32) {
    const float xh = (x[c] - m) * r;
    dx[c] = r * (dy[c] * weight[c] - sg - xh * sgx);
  }
}

// dweight[c] += Σ_n dout[n,c]·xhat[n,c], dbias[c] += Σ_n dout[n,c]. Block (32, 8): column c =
// blockIdx.x·32 + threadIdx.x, rows n ≡ threadIdx.y (mod 8); partials added in y order.
constexpr int kColX = 32, kColY = 8;
__global__ void layernorm_params_kernel(float* dweight, float* dbias, const float* dout, const float* inp,
                                        const float* mean, const float* rstd, int64_t N, int64_t C) {
  __shared__ float pw[kColY][kColX], pb[kColY][kColX];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x;
  float sw = 0.0f, sb = 0.0f;
  if (c < C)
    for (int64_t n = threadIdx.y; n < N; n += kColY) {
      const float dy = dout[n * C + c];
      sb += dy;
      sw += dy * ((inp[n * C + c] - mean[n]) * rstd[n]);
    }
  pw[threadIdx.y][threadIdx.x] = sw;
  pb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float tw = 0.0f, tb = 0.0f;
    for (int y = 0; y < kColY; ++y) {
      tw += pw[y][threadIdx.x];
      tb += pb[y][threadIdx.x];
    }
    dweight[c] += tw;
    dbias[c] += tb;
  }
}

}  // namespace

void layernorm_forward(const Stream& st, float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int64_t N, int64_t C, float eps) {
  if (N == 0) return;
  const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  layernorm_forward_kernel<<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(out, mean, rstd, inp, weight, bias, N, C, eps);
  GN_LAUNCHED(st, "layernorm_forward_kernel");
}

void layernorm_backward(const Stream& st, float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N,
                        int64_t C) {
  if (C == 0) return;
  if (dinp && N > 0) {
    const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
    layernorm_dinp_kernel<<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(dinp, dout, inp, weight, mean, rstd, N, C);
    GN_LAUNCHED(st, "layernorm_dinp_kernel");
  }
  dim3 block(kColX, kColY);
  layernorm_params_kernel<<<static_cast<unsigned>((C + kColX - 1) / kColX), block, 0, st.s>>>(
      dweight, dbias, dout, inp, mean, rstd, N, C);
  GN_LAUNCHED(st, "layernorm_params_kernel");
}

}  // namespace cuda
}  // namespace gn
