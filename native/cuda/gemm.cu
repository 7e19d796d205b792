// Small kernels around the cuBLAS GEMM (the cuBLAS call itself is made in ops.cc):
//   bias_rows:  C[i, j] += bias[j]                 (gemm's bias, added after alpha·op(A)·op(B))
//   zero_rows:  C[i, j] = 0                        (gemm with K = 0 and accumulate = false)
//   colsum_acc: dbias[o] += Σ_n dout[n, o]         (linear backward's bias gradient; two passes, see below)
#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

// The (M, N) matrix with row stride ldc on a grid_rows grid: thread x of block (bx, by) takes column
// j = bx·256 + x of rows by, by + gridDim.y, … (no division per element; bias[j] is read once).
template <typename T>
__global__ void bias_rows_kernel(T* C, const float* bias, int64_t M, int64_t N, int64_t ldc) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= N) return;
  const float b = bias[j];
  for (int64_t i = blockIdx.y; i < M; i += gridDim.y) C[i * ldc + j] = from_f<T>(to_f(C[i * ldc + j]) + b);
}

template <typename T>
__global__ void zero_rows_kernel(T* C, int64_t M, int64_t N, int64_t ldc) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= N) return;
  for (int64_t i = blockIdx.y; i < M; i += gridDim.y) C[i * ldc + j] = from_f<T>(0.0f);
}

// Column sums, deterministic, in two passes so that tall matrices use the whole GPU:
//   colsum_partial_kernel  grid (⌈OC/32⌉, R), block (32, 8): block (x, r) sums rows [r·rows, (r+1)·rows) of
//                          columns x·32 … x·32+31 (thread y takes rows ≡ y mod 8; the 8 partials are added in y
//                          order) into part[r, o]
//   colsum_finish_kernel   one thread per column: dbias[o] += Σ_r part[r, o], r increasing
// R = col_chunks(N, OC) depends only on the shape, so the result is the same on every run.
constexpr int kColX = 32, kColY = 8;
template <typename T>
__global__ void colsum_partial_kernel(float* part, const T* dout, int64_t N, int64_t OC, int64_t rows) {
  __shared__ float sh[kColY][kColX];
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows;
  const int64_t r1 = r0 + rows < N ? r0 + rows : N;
  float s = 0.0f;
  if (o < OC)
    for (int64_t n = r0 + threadIdx.y; n < r1; n += kColY) s += to_f(dout[n * OC + o]);
  sh[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && o < OC) {
    float t = 0.0f;
    for (int y = 0; y < kColY; ++y) t += sh[y][threadIdx.x];
    part[static_cast<int64_t>(blockIdx.y) * OC + o] = t;
  }
}

// The same, W columns a thread where the rows are 16-byte aligned (W = kVec<T>: 8 bf16 or 4 floats, OC a multiple
// of W): grid (⌈OC/(32·W)⌉, R) with R = col_chunks(N, ⌈OC/W⌉), block (32, 8); a warp reads 32·W consecutive
// columns of a row at once (512 bytes in bf16, not 64). Each column's sum runs in the order of the scalar kernel.
template <typename T, int W>
__global__ void colsum_partial_vec_kernel(float* part, const T* dout, int64_t N, int64_t OC, int64_t rows) {
  __shared__ float sh[kColY][kColX * W];
  const int64_t o = (static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x) * W;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows;
  const int64_t r1 = r0 + rows < N ? r0 + rows : N;
  float s[W];
#pragma unroll
  for (int j = 0; j < W; ++j) s[j] = 0.0f;
  if (o < OC) {
#pragma unroll 4
    for (int64_t n = r0 + threadIdx.y; n < r1; n += kColY) {
      float f[W];
      load_w<W>(f, dout + n * OC + o);
#pragma unroll
      for (int j = 0; j < W; ++j) s[j] += f[j];
    }
  }
#pragma unroll
  for (int j = 0; j < W; ++j) sh[threadIdx.y][threadIdx.x * W + j] = s[j];
  __syncthreads();
  const int tid = threadIdx.y * kColX + threadIdx.x;
  for (int c = tid; c < kColX * W; c += kColX * kColY) {
    const int64_t col = static_cast<int64_t>(blockIdx.x) * kColX * W + c;
    if (col >= OC) continue;
    float t = 0.0f;
    for (int y = 0; y < kColY; ++y) t += sh[y][c];
    part[static_cast<int64_t>(blockIdx.y) * OC + col] = t;
  }
}

__global__ void colsum_finish_kernel(float* dst, const float* part, int64_t R, int64_t OC) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < OC;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float t = 0.0f;
    for (int64_t r = 0; r < R; ++r) t += part[r * OC + o];
    dst[o] += t;
  }
}

}  // namespace

void bias_rows(const Stream& st, DType dt, void* C, const float* bias, int64_t M, int64_t N, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (dt == kBF16)
    bias_rows_kernel<bf16><<<grid_rows(M, N, 256), 256, 0, st.s>>>(static_cast<bf16*>(C), bias, M, N, ldc);
  else
    bias_rows_kernel<float><<<grid_rows(M, N, 256), 256, 0, st.s>>>(static_cast<float*>(C), bias, M, N, ldc);
  GN_LAUNCHED(st, "bias_rows_kernel");
}

void zero_rows(const Stream& st, DType dt, void* C, int64_t M, int64_t N, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (dt == kBF16)
    zero_rows_kernel<bf16><<<grid_rows(M, N, 256), 256, 0, st.s>>>(static_cast<bf16*>(C), M, N, ldc);
  else
    zero_rows_kernel<float><<<grid_rows(M, N, 256), 256, 0, st.s>>>(static_cast<float*>(C), M, N, ldc);
  GN_LAUNCHED(st, "zero_rows_kernel");
}

void colsum_acc(const Stream& st, DType dt, float* dbias, const void* dout, int64_t N, int64_t OC, float* scratch) {
  if (OC == 0) return;
  int64_t R = 0;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    constexpr int kW = kVec<T>;
    const T* d = static_cast<const T*>(dout);
    if (rows_aligned16<T>(OC, {dout})) {
      R = col_chunks(N, (OC + kW - 1) / kW);
      const int64_t rows = N > 0 ? (N + R - 1) / R : 0;
      const dim3 grid(static_cast<unsigned>((OC + kColX * kW - 1) / (kColX * kW)), static_cast<unsigned>(R));
      colsum_partial_vec_kernel<T, kW><<<grid, dim3(kColX, kColY), 0, st.s>>>(scratch, d, N, OC, rows);
    } else {
      R = col_chunks(N, OC);
      const int64_t rows = N > 0 ? (N + R - 1) / R : 0;
      const dim3 grid(static_cast<unsigned>((OC + kColX - 1) / kColX), static_cast<unsigned>(R));
      colsum_partial_kernel<T><<<grid, dim3(kColX, kColY), 0, st.s>>>(scratch, d, N, OC, rows);
    }
  };
  if (dt == kBF16) run(bf16{});
  else run(float{});
  GN_LAUNCHED(st, "colsum_partial_kernel");
  colsum_finish_kernel<<<grid_for(OC, 256), 256, 0, st.s>>>(dbias, scratch, R, OC);
  GN_LAUNCHED(st, "colsum_finish_kernel");
}

void colsum_finish(const Stream& st, float* dst, const float* part, int64_t R, int64_t cols) {
  if (cols == 0) return;
  colsum_finish_kernel<<<grid_for(cols, 256), 256, 0, st.s>>>(dst, part, R, cols);
  GN_LAUNCHED(st, "colsum_finish_kernel");
}

}  // namespace cuda
}  // namespace gn
