// Elementwise families, as native/cpu/elementwise.cpp:
//   add:     out = a + b               (out may alias a or b)
//   scale:   a = a · s
//   fill:    a = value
//   convert: dst = src in another dtype (fp32 ↔ bf16)
//   dropout: out = inp · keep / (1 - p), keep = dropout_uniform(seed, offset + i) >= p   (out may alias inp)
//   sumsq:   Σ a², per-block partials in double (the host adds them in block order: deterministic)
// Activations are float or bf16 (T); arithmetic is in float.
// Launch: one thread per element, grid-stride, 256 threads per block; sumsq a fixed grid of
// sumsq_blocks(n) blocks of 256 threads, each reducing its grid-stride share. add and sumsq take 16 bytes at a
// time where their pointers are 16-byte aligned (a thread then has 8 bf16 or 4 floats in flight, not one).
#include "cuda/device.cuh"
#include "cuda/kernels.h"
#include "cuda/rng.h"

namespace gn {
namespace cuda {

namespace {

#define GN_GRID_STRIDE(i, n)                                                                       \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n);          \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// W elements per access: 1, or kVec<T> (out, a and b 16-byte aligned); vector i covers elements i·W … i·W + W-1,
// then the last n mod W one at a time
template <typename T, int W>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t n) {
  const int64_t nv = n / W;
  GN_GRID_STRIDE(i, nv) {
    float x[W], y[W];
    load_w<W>(x, a + i * W);
    load_w<W>(y, b + i * W);
#pragma unroll
    for (int j = 0; j < W; ++j) x[j] += y[j];
    store_w<W>(out + i * W, x);
  }
  GN_GRID_STRIDE(i, n - nv * W) out[nv * W + i] = from_f<T>(to_f(a[nv * W + i]) + to_f(b[nv * W + i]));
}

template <typename T>
__global__ void scale_kernel(T* a, float s, int64_t n) {
  GN_GRID_STRIDE(i, n) a[i] = from_f<T>(to_f(a[i]) * s);
}

template <typename T>
__global__ void fill_kernel(T* a, float value, int64_t n) {
  const T v = from_f<T>(value);
  GN_GRID_STRIDE(i, n) a[i] = v;
}

template <typename D, typename S>
__global__ void convert_kernel(D* dst, const S* src, int64_t n) {
  GN_GRID_STRIDE(i, n) dst[i] = from_f<D>(to_f(src[i]));
}

template <typename T>
__global__ void dropout_kernel(T* out, const T* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  const float k = 1.0f / (1.0f - p);
  GN_GRID_STRIDE(i, n) {
    out[i] = from_f<T>(dropout_uniform(seed, offset + static_cast<uint64_t>(i)) >= p ? to_f(inp[i]) * k : 0.0f);
  }
}

constexpr int kSumsqThreads = 256;
// W as add_kernel's; each thread sums its vectors' squares in order, then its share of the tail
template <typename T, int W>
__global__ void sumsq_kernel(double* partials, const T* a, int64_t n) {
  __shared__ double shared[32];
  const int64_t nv = n / W;
  double s = 0.0;
  GN_GRID_STRIDE(i, nv) {
    float x[W];
    load_w<W>(x, a + i * W);
#pragma unroll
    for (int j = 0; j < W; ++j) s += static_cast<double>(x[j]) * x[j];
  }
  GN_GRID_STRIDE(i, n - nv * W) {
    const double x = to_f(a[nv * W + i]);
    s += x * x;
  }
  s = block_sum(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

#undef GN_GRID_STRIDE

// T = float or bf16: fn<T>()
template <typename F>
void by_dtype(DType dt, F&& fn) {
  if (dt == kBF16) fn(bf16{});
  else fn(float{});
}

}  // namespace

void add(const Stream& st, DType dt, void* out, const void* a, const void* b, int64_t n) {
  if (n == 0) return;
  by_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kW = kVec<T>;
    T* o = static_cast<T*>(out);
    const T *x = static_cast<const T*>(a), *y = static_cast<const T*>(b);
    if (aligned16(out) && aligned16(a) && aligned16(b))
      add_kernel<T, kW><<<grid_for(n / kW + 1, 256), 256, 0, st.s>>>(o, x, y, n);
    else
      add_kernel<T, 1><<<grid_for(n, 256), 256, 0, st.s>>>(o, x, y, n);
  });
  GN_LAUNCHED(st, "add_kernel");
}

void scale(const Stream& st, DType dt, void* a, float s, int64_t n) {
  if (n == 0) return;
  by_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    scale_kernel<T><<<grid_for(n, 256), 256, 0, st.s>>>(static_cast<T*>(a), s, n);
  });
  GN_LAUNCHED(st, "scale_kernel");
}

void fill(const Stream& st, DType dt, void* a, float value, int64_t n) {
  if (n == 0) return;
  by_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<grid_for(n, 256), 256, 0, st.s>>>(static_cast<T*>(a), value, n);
  });
  GN_LAUNCHED(st, "fill_kernel");
}

void convert(const Stream& st, DType dst_dt, void* dst, DType src_dt, const void* src, int64_t n) {
  if (n == 0) return;
  by_dtype(dst_dt, [&](auto dtag) {
    using D = decltype(dtag);
    by_dtype(src_dt, [&](auto stag) {
      using S = decltype(stag);
      convert_kernel<D, S><<<grid_for(n, 256), 256, 0, st.s>>>(static_cast<D*>(dst), static_cast<const S*>(src), n);
    });
  });
  GN_LAUNCHED(st, "convert_kernel");
}

void dropout(const Stream& st, DType dt, void* out, const void* inp, int64_t n, float p, uint64_t seed,
             uint64_t offset) {
  if (n == 0) return;
  if (p <= 0.0f) {  // identity, as on the CPU
    if (out != inp) GN_CUDA(cudaMemcpyAsync(out, inp, n * dtype_bytes(dt), cudaMemcpyDeviceToDevice, st.s));
    return;
  }
  by_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<T><<<grid_for(n, 256), 256, 0, st.s>>>(static_cast<T*>(out), static_cast<const T*>(inp), n, p,
                                                          seed, offset);
  });
  GN_LAUNCHED(st, "dropout_kernel");
}

int64_t sumsq_blocks(int64_t n) {
  int64_t b = (n + kSumsqThreads - 1) / kSumsqThreads;
  return b < 1 ? 1 : (b > 1024 ? 1024 : b);
}

void sumsq_partials(const Stream& st, DType dt, double* partials, const void* a, int64_t n) {
  by_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kW = kVec<T>;
    const unsigned blocks = static_cast<unsigned>(sumsq_blocks(n));
    const T* x = static_cast<const T*>(a);
    if (aligned16(a))
      sumsq_kernel<T, kW><<<blocks, kSumsqThreads, 0, st.s>>>(partials, x, n);
    else
      sumsq_kernel<T, 1><<<blocks, kSumsqThreads, 0, st.s>>>(partials, x, n);
  });
  GN_LAUNCHED(st, "sumsq_kernel");
}

}  // namespace cuda
}  // namespace gn
