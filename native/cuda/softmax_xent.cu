// Softmax + cross-entropy fused over the vocabulary, as native/cpu/softmax_xent.cpp:
//   lse[n] = log Σ_v exp(logits[n,v]),  loss[n] = lse[n] - logits[n, t_n]   (0 where t_n == ignore_index)
//   dlogits[n,v] = scale·exp(logits[n,v] - lse[n]) - (v == t_n ? scale : 0)  (0 for ignored rows)
// Rows start every ld >= V elements (a padded vocabulary). Targets are range-checked on the host before upload.
// dlogits may alias logits: each element is read and then written by the same thread. Where the rows are 16-byte
// aligned, both kernels take 16 bytes at a time (8 bf16 or 4 floats), and the last V mod 8 (or 4) one by one.
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

// Vec: the rows are 16-byte aligned; each thread first takes whole vectors of kVec<T> entries (their max, then
// one rescale of its sum), then the last V mod kVec entries one at a time
template <typename T, bool Vec>
__global__ void softmax_xent_forward_kernel(float* losses, float* lse, const T* logits, const int32_t* targets,
                                            int64_t V, int32_t ignore_index, int64_t ld) {
  __shared__ float sm[kFwdThreads], ss[kFwdThreads];
  const int64_t n = blockIdx.x;
  const T* x = logits + n * ld;
  float m = -FLT_MAX, s = 0.0f;
  int64_t v0 = 0;
  if constexpr (Vec) {
    constexpr int k = kVec<T>;
    const int64_t nv = V / k;
    for (int64_t c = threadIdx.x; c < nv; c += kFwdThreads) {
      float f[k];
      load16(f, x + c * k);
      float M = m;
#pragma unroll
      for (int j = 0; j < k; ++j) M = fmaxf(M, f[j]);
      float t = 0.0f;
#pragma unroll
      for (int j = 0; j < k; ++j) t += expf(f[j] - M);
      s = s * expf(m - M) + t;
      m = M;
    }
    v0 = nv * k;
  }
  for (int64_t v = v0 + threadIdx.x; v < V; v += kFwdThreads) {
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

// grid_rows grid: thread x of block (bx, by) takes item u = bx·256 + x of rows by, by + gridDim.y, … An item is
// vocabulary entry u; with Vec (rows 16-byte aligned), items below nv = V / kVec are the vectors of entries
// u·kVec … u·kVec + kVec-1, and the nv + (V mod kVec) items after them single entries. Entries from V to ld are
// never written (the model's padding columns keep their zeros).
template <typename T, bool Vec>
__global__ void softmax_xent_backward_kernel(T* dlogits, const T* logits, const float* lse,
                                             const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index,
                                             float scale, int64_t ld) {
  constexpr int k = Vec ? kVec<T> : 1;
  const int64_t nv = Vec ? V / k : 0;
  const int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (u >= nv + (V - nv * k)) return;
  const bool vec = u < nv;
  const int64_t v = vec ? u * k : nv * k + (u - nv);
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    const int64_t at = n * ld + v;
    const int32_t t = targets[n];
    if constexpr (Vec) {
      if (vec) {
        float f[k];
        load16(f, logits + at);
        const float l = lse[n];
#pragma unroll
        for (int j = 0; j < k; ++j) {
          float g = 0.0f;
          if (t != ignore_index) {
            g = scale * expf(f[j] - l);
            if (v + j == t) g -= scale;
          }
          f[j] = g;
        }
        store16(dlogits + at, f);
        continue;
      }
    }
    float g = 0.0f;
    if (t != ignore_index) {
      g = scale * expf(to_f(logits[at]) - lse[n]);
      if (v == t) g -= scale;
    }
    dlogits[at] = from_f<T>(g);
  }
}

// rows of ld entries starting at p are 16-byte aligned
template <typename T>
bool rows_aligned(const void* p, int64_t ld) {
  return aligned16(p) && (ld * static_cast<int64_t>(sizeof(T))) % 16 == 0;
}

}  // namespace

void softmax_xent_forward(const Stream& st, DType dt, float* losses, float* lse, const void* logits,
                          const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index, int64_t ld) {
  if (N == 0) return;
  const unsigned blocks = static_cast<unsigned>(N);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(logits);
    if (rows_aligned<T>(logits, ld))
      softmax_xent_forward_kernel<T, true><<<blocks, kFwdThreads, 0, st.s>>>(losses, lse, x, targets, V,
                                                                             ignore_index, ld);
    else
      softmax_xent_forward_kernel<T, false><<<blocks, kFwdThreads, 0, st.s>>>(losses, lse, x, targets, V,
                                                                              ignore_index, ld);
  };
  if (dt == kBF16) run(bf16{});
  else run(float{});
  GN_LAUNCHED(st, "softmax_xent_forward_kernel");
}

void softmax_xent_backward(const Stream& st, DType dt, void* dlogits, const void* logits, const float* lse,
                           const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index, float scale,
                           int64_t ld) {
  if (N * V == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* d = static_cast<T*>(dlogits);
    const T* x = static_cast<const T*>(logits);
    if (rows_aligned<T>(logits, ld) && rows_aligned<T>(dlogits, ld)) {
      const int64_t items = V / kVec<T> + V % kVec<T>;
      softmax_xent_backward_kernel<T, true><<<grid_rows(N, items, 256), 256, 0, st.s>>>(d, x, lse, targets, N, V,
                                                                                         ignore_index, scale, ld);
    } else {
      softmax_xent_backward_kernel<T, false><<<grid_rows(N, V, 256), 256, 0, st.s>>>(d, x, lse, targets, N, V,
                                                                                      ignore_index, scale, ld);
    }
  };
  if (dt == kBF16) run(bf16{});
  else run(float{});
  GN_LAUNCHED(st, "softmax_xent_backward_kernel");
}

}  // namespace cuda
}  // namespace gn
