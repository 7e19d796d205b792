// Small kernels around the cuBLAS GEMM (the cuBLAS call itself is made in ops.cc):
//   bias_rows:  C[i, j] += bias[j]                 (gemm's bias, added after alpha·op(A)·op(B))
//   zero_rows:  C[i, j] = 0                        (gemm with K = 0 and accumulate = false)
//   colsum_acc: dbias[o] += Σ_n dout[n, o]         (linear backward's bias gradient)
#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

// One thread per element of the (M, N) matrix with row stride ldc, grid-stride over M·N.
__global__ void bias_rows_kernel(float* C, const float* bias, int64_t M, int64_t N, int64_t ldc) {
  const int64_t total = M * N;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / N, j = idx % N;
    C[i * ldc + j] += bias[j];
  }
}

__global__ void zero_rows_kernel(float* C, int64_t M, int64_t N, int64_t ldc) {
  const int64_t total = M * N;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / N, j = idx % N;
    C[i * ldc + j] = 0.0f;
  }
}

// Column sums, deterministic. Block (32, 8): threadIdx.x picks the column o = blockIdx.x·32 + x,
// threadIdx.y the rows n ≡ y (mod 8); the 8 partial sums of a column are then added in y order.
constexpr int kColX = 32, kColY = 8;
__global__ void colsum_acc_kernel(float* dbias, const float* dout, int64_t N, int64_t OC) {
  __shared__ float part[kColY][kColX];
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x;
  float s = 0.0f;
  if (o < OC)
    for (int64_t n = threadIdx.y; n < N; n += kColY) s += dout[n * OC + o];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && o < OC) {
    float t = 0.0f;
    for (int y = 0; y < kColY; ++y) t += part[y][threadIdx.x];
    dbias[o] += t;
  }
}

}  // namespace

void bias_rows(const Stream& st, float* C, const float* bias, int64_t M, int64_t N, int64_t ldc) {
  if (M == 0 || N == 0) return;
  bias_rows_kernel<<<grid_for(M * N, 256), 256, 0, st.s>>>(C, bias, M, N, ldc);
  GN_LAUNCHED(st, "bias_rows_kernel");
}

void zero_rows(const Stream& st, float* C, int64_t M, int64_t N, int64_t ldc) {
  if (M == 0 || N == 0) return;
  zero_rows_kernel<<<grid_for(M * N, 256), 256, 0, st.s>>>(C, M, N, ldc);
  GN_LAUNCHED(st, "zero_rows_kernel");
}

void colsum_acc(const Stream& st, float* dbias, const float* dout, int64_t N, int64_t OC) {
  if (OC == 0) return;
  dim3 block(kColX, kColY);
  colsum_acc_kernel<<<static_cast<unsigned>((OC + kColX - 1) / kColX), block, 0, st.s>>>(dbias, dout, N, OC);
  GN_LAUNCHED(st, "colsum_acc_kernel");
}

}  // namespace cuda
}  // namespace gn
