// AdamW, as native/cpu/adamw.cpp (decoupled weight decay, bias-corrected moments):
//   g = grad·grad_scale;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//   θ = θ - lr·( (m/bc1) / (√(v/bc2) + ε) + λ·θ ),   bc1 = 1-β1^t, bc2 = 1-β2^t (host, double → float)
// param16 (optional): the new θ rounded to bf16, so a bf16 model's weight copy needs no pass of its own.
// Launch: grid-stride, 256 threads per block. Where the arrays are co-aligned (param, grad, m and v 16-byte aligned
// after the same `head` of 0-3 elements, param16 8-byte aligned there), each thread takes 4 elements a step with
// 16-byte loads and stores (an 8-byte store of the bf16 copy), and the first threads take the head and the last
// n - head mod 4 elements one by one; else one element a thread. Both forms compute each element alike.
#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

struct AdamwArgs {
  float lr, b1, b2, eps, wd, bc1, bc2, gs;
};

// one element: returns the new θ, updates m and v
__device__ __forceinline__ float adamw_one(float p, float g, float& m, float& v, const AdamwArgs& a) {
  const float gi = g * a.gs;
  m = a.b1 * m + (1.0f - a.b1) * gi;
  v = a.b2 * v + (1.0f - a.b2) * gi * gi;
  const float mh = m / a.bc1, vh = v / a.bc2;
  return p - a.lr * (mh / (sqrtf(vh) + a.eps) + a.wd * p);
}

__device__ __forceinline__ void adamw_at(float* p, const float* g, float* m, float* v, bf16* p16, int64_t i,
                                         const AdamwArgs& a) {
  float mi = m[i], vi = v[i];
  const float pi = adamw_one(p[i], g[i], mi, vi, a);
  m[i] = mi;
  v[i] = vi;
  p[i] = pi;
  if (p16) p16[i] = from_f<bf16>(pi);
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamwArgs a, bf16* p16) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    adamw_at(p, g, m, v, p16, i, a);
}

// elements head + 4k … + 3 for k < nv as vectors; the head (0-3 elements) and the tail (from head + 4·nv to n) one
// by one, by the first threads of the grid
__global__ void adamw_vec_kernel(float* p, const float* g, float* m, float* v, int64_t n, int head, int64_t nv,
                                 AdamwArgs a, bf16* p16) {
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tail0 = head + 4 * nv, extra = head + (n - tail0);
  if (id < extra) adamw_at(p, g, m, v, p16, id < head ? id : tail0 + (id - head), a);
  for (int64_t k = id; k < nv; k += stride) {
    const int64_t i = head + 4 * k;
    float pp[4], gg[4], mm[4], vv[4];
    load16(pp, p + i);
    load16(gg, g + i);
    load16(mm, m + i);
    load16(vv, v + i);
#pragma unroll
    for (int e = 0; e < 4; ++e) pp[e] = adamw_one(pp[e], gg[e], mm[e], vv[e], a);
    store16(m + i, mm);
    store16(v + i, vv);
    store16(p + i, pp);
    if (p16) store_n<4>(p16 + i, pp);  // 8 bytes
  }
}

}  // namespace

void adamw_step(const Stream& st, float* param, const float* grad, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2, float grad_scale,
                void* param16) {
  if (n == 0) return;
  const AdamwArgs a{lr, beta1, beta2, eps, weight_decay, bc1, bc2, grad_scale};
  bf16* p16 = static_cast<bf16*>(param16);
  // the elements before param's first 16-byte boundary (param is 4-byte aligned, so 0-3 of them)
  const int head = static_cast<int>(((16 - (reinterpret_cast<uintptr_t>(param) & 15u)) & 15u) / 4);
  const bool vec = n >= head + 4 && aligned16(grad + head) && aligned16(m + head) && aligned16(v + head) &&
                   (!p16 || (reinterpret_cast<uintptr_t>(p16 + head) & 7u) == 0);
  if (vec) {
    const int64_t nv = (n - head) / 4;
    adamw_vec_kernel<<<grid_for(nv, 256), 256, 0, st.s>>>(param, grad, m, v, n, head, nv, a, p16);
  } else {
    adamw_kernel<<<grid_for(n, 256), 256, 0, st.s>>>(param, grad, m, v, n, a, p16);
  }
  GN_LAUNCHED(st, "adamw_kernel");
}

}  // namespace cuda
}  // namespace gn
