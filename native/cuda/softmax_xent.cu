// Softmax + cross-entropy fused over the vocabulary, as native/cpu/softmax_xent.cpp:
//   lse[n] = log Σ_v exp(logits[n,v]),  loss[n] = lse[n] - logits[n, t_n]   (0 where t_n == ignore_index)
//   dlogits[n,v] = scale·exp(logits[n,v] - lse[n]) - (v == t_n ? scale : 0)  (0 for ignored rows)
// Rows start every ld >= V elements (a padded vocabulary). Targets are range-checked on the host before upload. dlogits may alias logits: each element is read and
// then written by the same thread.
// Launch shapes: forward one block of 512 threads per row; each thread keeps an online (max, Σexp) pair over
// its strided share of the row, then the pairs are merged through shared memory. Backward one thread per
// vocabulary entry of a block of rows (grid_rows: no division per element).
#include <cfloat>

#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kFwdThreads = 512;

template <typename T>
__global__ void softmax_xent_forward_kernel(float* losses, float* lse, const T* logits, const int32_t* targets,
                                            int64_t V, int32_t ignore_index, int64_t ld) {
  __shared__ float sm[kFwdThreads], ss[kFwdThreads];
  const int64_t n = blockIdx.x;
  const T* x = logits + n * ld;
  float m = -FLT_MAX, s = 0.0f;
  for (int64_t v = threadIdx.x; v < V; v += kFwdThreads) {
    const float xv = to_f(x[v]);
    if (xv > m) {
      s = s * expf(m - xv) + 1.0f;
      m = xv;
    } else {
      s += expf(xv - m);
    }
  }
  sm[threadIdx.x] = m;
  ss[threadIdx.x] = s;
  __syncthreads();
  // tree merge of (max, sum) pairs: (m1,s1)⊕(m2,s2) = (M, s1·e^(m1-M) + s2·e^(m2-M)), M = max(m1,m2)
  for (int stride = kFwdThreads / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) {
      const float m1 = sm[threadIdx.x], m2 = sm[threadIdx.x + stride];
      const float M = fmaxf(m1, m2);
      ss[threadIdx.x] = ss[threadIdx.x] * expf(m1 - M) + ss[threadIdx.x + stride] * expf(m2 - M);
      sm[threadIdx.x] = M;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const float l = sm[0] + logf(ss[0]);
    if (lse) lse[n] = l;
    const int32_t t = targets[n];
    losses[n] = t == ignore_index ? 0.0f : l - to_f(x[t]);
  }
}

// grid_rows grid: thread x of block (bx, by) takes vocabulary entry v = bx·256 + x of rows by, by + gridDim.y, …
template <typename T>
__global__ void softmax_xent_backward_kernel(T* dlogits, const T* logits, const float* lse,
                                             const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index,
                                             float scale, int64_t ld) {
  const int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v >= V) return;
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    const int64_t at = n * ld + v;
    const int32_t t = targets[n];
    float g = 0.0f;
    if (t != ignore_index) {
      g = scale * expf(to_f(logits[at]) - lse[n]);
      if (v == t) g -= scale;
    }
    dlogits[at] = from_f<T>(g);
  }
}

}  // namespace

void softmax_xent_forward(const Stream& st, DType dt, float* losses, float* lse, const void* logits,
                          const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index, int64_t ld) {
  if (N == 0) return;
  const unsigned blocks = static_cast<unsigned>(N);
  if (dt == kBF16)
    softmax_xent_forward_kernel<bf16><<<blocks, kFwdThreads, 0, st.s>>>(
        losses, lse, static_cast<const bf16*>(logits), targets, V, ignore_index, ld);
  else
    softmax_xent_forward_kernel<float><<<blocks, kFwdThreads, 0, st.s>>>(
        losses, lse, static_cast<const float*>(logits), targets, V, ignore_index, ld);
  GN_LAUNCHED(st, "softmax_xent_forward_kernel");
}

void softmax_xent_backward(const Stream& st, DType dt, void* dlogits, const void* logits, const float* lse,
                           const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index, float scale,
                           int64_t ld) {
  if (N * V == 0) return;
  if (dt == kBF16)
    softmax_xent_backward_kernel<bf16><<<grid_rows(N, V, 256), 256, 0, st.s>>>(
        static_cast<bf16*>(dlogits), static_cast<const bf16*>(logits), lse, targets, N, V, ignore_index, scale, ld);
  else
    softmax_xent_backward_kernel<float><<<grid_rows(N, V, 256), 256, 0, st.s>>>(
        static_cast<float*>(dlogits), static_cast<const float*>(logits), lse, targets, N, V, ignore_index, scale,
        ld);
  GN_LAUNCHED(st, "softmax_xent_backward_kernel");
}

}  // namespace cuda
}  // namespace gn
