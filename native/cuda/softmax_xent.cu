// Softmax + cross-entropy fused over the vocabulary, as native/cpu/softmax_xent.cpp:
//   lse[n] = log Σ_v exp(logits[n,v]),  loss[n] = lse[n] - logits[n, t_n]   (0 where t_n == ignore_index)
//   dlogits[n,v] = scale·exp(logits[n,v] - lse[n]) - (v == t_n ? scale : 0)  (0 for ignored rows)
// Rows start every ld >= V elements (a padded vocabulary). Targets are range-checked on the host before upload.
// dlogits may alias logits: each element is read and then written by the same thread. The forward can write
// dlogits too, in the same kernel (a training step's loss and gradient in one pass over the logits). Where the rows are 16-byte
// aligned, both kernels take 16 bytes at a time (8 bf16 or 4 floats), and the last V mod 8 (or 4) one by one.
// Launch shapes: forward one block of 512 threads per row; each thread keeps an online (max, Σexp) pair over
// its strided share of the row, then the pairs are merged through shared memory. Backward one thread per
// vocabulary entry of a block of rows (grid_rows: no division per element).
#include <cfloat>
#include <type_traits>

#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kFwdThreads = 512;

// Adds W entries f to a thread's online (max m, Σ exp(x - m) s) pair: their max first, then one rescale of the sum
template <int W>
__device__ __forceinline__ void online_add(float& m, float& s, const float* f) {
  float M = m;
#pragma unroll
  for (int j = 0; j < W; ++j) M = fmaxf(M, f[j]);
  float t = 0.0f;
#pragma unroll
  for (int j = 0; j < W; ++j) t += exp_ftz(f[j] - M);
  s = s * exp_ftz(m - M) + t;
  m = M;
}

// dlogits of W entries v … v + W-1 of a row with target t and logsumexp l: f holds their logits, then their gradients
template <int W>
__device__ __forceinline__ void xent_grad(float* f, int64_t v, int32_t t, int32_t ignore_index, float l, float scale) {
#pragma unroll
  for (int j = 0; j < W; ++j) {
    float g = 0.0f;
    if (t != ignore_index) {
      g = scale * exp_ftz(f[j] - l);
      if (v + j == t) g -= scale;
    }
    f[j] = g;
  }
}

// W entries per access: 1, or kVec<T> (rows 16-byte aligned): each thread takes whole vectors of W entries, then
// the last V mod W entries one at a time. GRAD: the block then writes the row's dlogits (scale as the backward),
// reading the row a second time while it is still in cache; dlogits may alias logits.
template <typename T, int W, bool GRAD>
__global__ void softmax_xent_forward_kernel(float* losses, float* lse, const T* logits, const int32_t* targets,
                                            int64_t V, int32_t ignore_index, int64_t ld, T* dlogits, float scale) {
  __shared__ float sm[kFwdThreads], ss[kFwdThreads];
  const int64_t n = blockIdx.x;
  const T* x = logits + n * ld;
  float m = -FLT_MAX, s = 0.0f;
  const int64_t nv = V / W;
  for (int64_t c = threadIdx.x; c < nv; c += kFwdThreads) {
    float f[W];
    load_w<W>(f, x + c * W);
    online_add<W>(m, s, f);
  }
  for (int64_t v = nv * W + threadIdx.x; v < V; v += kFwdThreads) {
    const float f = to_f(x[v]);
    online_add<1>(m, s, &f);
  }
  sm[threadIdx.x] = m;
  ss[threadIdx.x] = s;
  __syncthreads();
  // tree merge of (max, sum) pairs: (m1,s1)⊕(m2,s2) = (M, s1·e^(m1-M) + s2·e^(m2-M)), M = max(m1,m2)
  for (int stride = kFwdThreads / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) {
      const float m1 = sm[threadIdx.x], m2 = sm[threadIdx.x + stride];
      const float M = fmaxf(m1, m2);
      ss[threadIdx.x] = ss[threadIdx.x] * exp_ftz(m1 - M) + ss[threadIdx.x + stride] * exp_ftz(m2 - M);
      sm[threadIdx.x] = M;
    }
    __syncthreads();
  }
  const float l = sm[0] + logf(ss[0]);
  const int32_t t = targets[n];
  if (threadIdx.x == 0) {
    if (lse) lse[n] = l;
    losses[n] = t == ignore_index ? 0.0f : l - to_f(x[t]);
  }
  if (!GRAD) return;
  __syncthreads();  // x[t] is read before dlogits (perhaps the same memory) is written
  T* d = dlogits + n * ld;
  for (int64_t c = threadIdx.x; c < nv; c += kFwdThreads) {
    float f[W];
    load_w<W>(f, x + c * W);
    xent_grad<W>(f, c * W, t, ignore_index, l, scale);
    store_w<W>(d + c * W, f);
  }
  for (int64_t v = nv * W + threadIdx.x; v < V; v += kFwdThreads) {
    float f = to_f(x[v]);
    xent_grad<1>(&f, v, t, ignore_index, l, scale);
    d[v] = from_f<T>(f);
  }
}

// grid_rows grid: thread x of block (bx, by) takes item u = bx·256 + x of rows by, by + gridDim.y, … Items below
// nv = V / W are the vectors of entries u·W … u·W + W-1 (W = 1, or kVec<T> where the rows are 16-byte aligned), and
// the V mod W items after them single entries. Entries from V to ld are never written (the model's padding
// columns keep their zeros).
template <typename T, int W>
__global__ void softmax_xent_backward_kernel(T* dlogits, const T* logits, const float* lse,
                                             const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index,
                                             float scale, int64_t ld) {
  const int64_t nv = V / W;
  const int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (u >= nv + (V - nv * W)) return;
  const bool vec = u < nv;
  const int64_t v = vec ? u * W : nv * W + (u - nv);
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    const int64_t at = n * ld + v;
    if (vec) {
      float f[W];
      load_w<W>(f, logits + at);
      xent_grad<W>(f, v, targets[n], ignore_index, lse[n], scale);
      store_w<W>(dlogits + at, f);
    } else {
      float f = to_f(logits[at]);
      xent_grad<1>(&f, v, targets[n], ignore_index, lse[n], scale);
      dlogits[at] = from_f<T>(f);
    }
  }
}


}  // namespace

void softmax_xent_forward(const Stream& st, DType dt, float* losses, float* lse, const void* logits,
                          const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index, int64_t ld,
                          void* dlogits, float scale) {
  if (N == 0) return;
  const unsigned blocks = static_cast<unsigned>(N);
  auto run = [&](auto tag, auto grad) {
    using T = decltype(tag);
    constexpr int kW = kVec<T>;
    constexpr bool kGrad = decltype(grad)::value;
    const T* x = static_cast<const T*>(logits);
    T* d = static_cast<T*>(dlogits);
    if (rows_aligned16<T>(ld, {logits, dlogits}))
      softmax_xent_forward_kernel<T, kW, kGrad><<<blocks, kFwdThreads, 0, st.s>>>(losses, lse, x, targets, V,
                                                                                  ignore_index, ld, d, scale);
    else
      softmax_xent_forward_kernel<T, 1, kGrad><<<blocks, kFwdThreads, 0, st.s>>>(losses, lse, x, targets, V,
                                                                                 ignore_index, ld, d, scale);
  };
  if (dt == kBF16) dlogits ? run(bf16{}, std::true_type{}) : run(bf16{}, std::false_type{});
  else dlogits ? run(float{}, std::true_type{}) : run(float{}, std::false_type{});
  GN_LAUNCHED(st, "softmax_xent_forward_kernel");
}

void softmax_xent_backward(const Stream& st, DType dt, void* dlogits, const void* logits, const float* lse,
                           const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index, float scale,
                           int64_t ld) {
  if (N * V == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    constexpr int kW = kVec<T>;
    T* d = static_cast<T*>(dlogits);
    const T* x = static_cast<const T*>(logits);
    if (rows_aligned16<T>(ld, {logits, dlogits}))
      softmax_xent_backward_kernel<T, kW><<<grid_rows(N, V / kW + V % kW, 256), 256, 0, st.s>>>(
          d, x, lse, targets, N, V, ignore_index, scale, ld);
    else
      softmax_xent_backward_kernel<T, 1><<<grid_rows(N, V, 256), 256, 0, st.s>>>(d, x, lse, targets, N, V,
                                                                                 ignore_index, scale, ld);
  };
  if (dt == kBF16) run(bf16{});
  else run(float{});
  GN_LAUNCHED(st, "softmax_xent_backward_kernel");
}

}  // namespace cuda
}  // namespace gn
