// Token + position embedding, as native/cpu/embedding.cpp:
//   out[b,t,:] = wte[ids[b,t],:] + wpe[pos0+t,:]
//   dwte[ids[b,t],:] += dout[b,t,:],  dwpe[pos0+t,:] += dout[b,t,:]     (parameter gradients: +=)
// Ids are checked on the host (they arrive as a host Int32Array) before anything is uploaded or written.
// The backward has no atomics: the host groups the rows of each distinct id (counting sort, rows kept in
// increasing order) and one thread per (id, channel) adds its rows in that order, starting from the old
// gradient value. That is exactly the CPU's summation order, so dwte/dwpe match the CPU bit for bit.
// Launch shapes: forward grid (B·T, ceil(C/256)) × 256 threads, one thread per output element;
// wte backward grid (U, ceil(C/256)), U distinct ids; wpe backward grid (T, ceil(C/256)).
#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kThreads = 256;

template <typename E>
__global__ void embedding_forward_kernel(E* out, const int32_t* ids, const float* wte, const float* wpe,
                                         int64_t T, int64_t C, int64_t pos0) {
  const int64_t row = blockIdx.x;  // b·T + t
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= C) return;
  const int64_t t = row % T;
  out[row * C + c] = from_f<E>(wte[static_cast<int64_t>(ids[row]) * C + c] + wpe[(pos0 + t) * C + c]);
}

template <typename T>
__global__ void embedding_backward_wte_kernel(float* dwte, const T* dout, const int32_t* uniq,
                                              const int32_t* offs, const int32_t* rows, int64_t C) {
  const int64_t u = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= C) return;
  float* dst = dwte + static_cast<int64_t>(uniq[u]) * C + c;
  float acc = *dst;
  for (int32_t r = offs[u]; r < offs[u + 1]; ++r) acc += to_f(dout[static_cast<int64_t>(rows[r]) * C + c]);
  *dst = acc;
}

template <typename E>
__global__ void embedding_backward_wpe_kernel(float* dwpe, const E* dout, int64_t B, int64_t T, int64_t C,
                                              int64_t pos0) {
  const int64_t t = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= C) return;
  float* dst = dwpe + (pos0 + t) * C + c;
  float acc = *dst;
  for (int64_t b = 0; b < B; ++b) acc += to_f(dout[(b * T + t) * C + c]);
  *dst = acc;
}

dim3 grid2(int64_t rows, int64_t C) {
  return dim3(static_cast<unsigned>(rows), static_cast<unsigned>((C + kThreads - 1) / kThreads));
}

}  // namespace

void embedding_forward(const Stream& st, DType dt, void* out, const int32_t* ids, const float* wte, const float* wpe,
                       int64_t B, int64_t T, int64_t C, int64_t pos0) {
  if (B * T == 0 || C == 0) return;
  if (dt == kBF16)
    embedding_forward_kernel<bf16><<<grid2(B * T, C), kThreads, 0, st.s>>>(static_cast<bf16*>(out), ids, wte, wpe, T,
                                                                           C, pos0);
  else
    embedding_forward_kernel<float><<<grid2(B * T, C), kThreads, 0, st.s>>>(static_cast<float*>(out), ids, wte, wpe,
                                                                            T, C, pos0);
  GN_LAUNCHED(st, "embedding_forward_kernel");
}

void embedding_backward_wte(const Stream& st, DType dt, float* dwte, const void* dout, const int32_t* uniq,
                            const int32_t* offs, const int32_t* rows, int64_t U, int64_t C) {
  if (U == 0 || C == 0) return;
  if (dt == kBF16)
    embedding_backward_wte_kernel<bf16><<<grid2(U, C), kThreads, 0, st.s>>>(dwte, static_cast<const bf16*>(dout),
                                                                            uniq, offs, rows, C);
  else
    embedding_backward_wte_kernel<float><<<grid2(U, C), kThreads, 0, st.s>>>(dwte, static_cast<const float*>(dout),
                                                                             uniq, offs, rows, C);
  GN_LAUNCHED(st, "embedding_backward_wte_kernel");
}

void embedding_backward_wpe(const Stream& st, DType dt, float* dwpe, const void* dout, int64_t B, int64_t T,
                            int64_t C, int64_t pos0) {
  if (T == 0 || C == 0) return;
  if (dt == kBF16)
    embedding_backward_wpe_kernel<bf16><<<grid2(T, C), kThreads, 0, st.s>>>(dwpe, static_cast<const bf16*>(dout), B,
                                                                            T, C, pos0);
  else
    embedding_backward_wpe_kernel<float><<<grid2(T, C), kThreads, 0, st.s>>>(dwpe, static_cast<const float*>(dout), B,
                                                                             T, C, pos0);
  GN_LAUNCHED(st, "embedding_backward_wpe_kernel");
}

}  // namespace cuda
}  // namespace gn
