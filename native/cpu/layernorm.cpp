// LayerNorm over the last dimension.
//   inp (N,C), weight (C), bias (C) -> out (N,C); mean (N), rstd (N) kept for backward.
//   mean = Σx/C, var = Σ(x-mean)²/C (biased), rstd = 1/sqrt(var+eps), out = (x-mean)·rstd·w + b
// Backward, with xhat = (x-mean)·rstd and g = dout·w:
//   dbias += Σ_n dout, dweight += Σ_n dout·xhat            (parameter gradients: +=)
//   dinp = rstd · (g - mean_c(g) - xhat · mean_c(g·xhat))   (activation gradient: =, or += with accumulate:
//                                                             a residual stream's gradient, no separate add)
// Statistics use double accumulators per row; the per-row loops vectorise.
#include <cmath>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/simd.h"
#include "cpu/threading.h"

namespace gn {

// sum (when add_a is given): sum = add_a + add_b is written first, and normalised (the residual stream's add)
GN_MULTIVERSION
static void layernorm_rows(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                           const float* bias, int64_t n0, int64_t n1, int64_t C, float eps, float* sum,
                           const float* add_a, const float* add_b) {
  for (int64_t n = n0; n < n1; ++n) {
    if (add_a) {
      float* s = sum + n * C;
      const float *a = add_a + n * C, *b = add_b + n * C;
      for (int64_t c = 0; c < C; ++c) s[c] = a[c] + b[c];
    }
    const float* x = inp + n * C;
    float* y = out + n * C;
    const float m = lane_sum(C, [&](int64_t c) { return x[c]; }) / static_cast<float>(C);
    const float v = lane_sum(C, [&](int64_t c) { float d = x[c] - m; return d * d; });
    float r = 1.0f / std::sqrt(v / static_cast<float>(C) + eps);
    for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = r;
  }
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps, ThreadPool* pool) {
  if (!pool) { layernorm_rows(out, mean, rstd, inp, weight, bias, 0, N, C, eps, nullptr, nullptr, nullptr); return; }
  pool->parallel_for(N, [&](int64_t b, int64_t e, int) {
    layernorm_rows(out, mean, rstd, inp, weight, bias, b, e, C, eps, nullptr, nullptr, nullptr);
  }, 8);
}

void add_layernorm_forward(float* out, float* mean, float* rstd, float* sum, const float* a, const float* b,
                           const float* weight, const float* bias, int64_t N, int64_t C, float eps, ThreadPool* pool) {
  if (!pool) { layernorm_rows(out, mean, rstd, sum, weight, bias, 0, N, C, eps, sum, a, b); return; }
  pool->parallel_for(N, [&](int64_t s, int64_t e, int) {
    layernorm_rows(out, mean, rstd, sum, weight, bias, s, e, C, eps, sum, a, b);
  }, 8);
}

GN_MULTIVERSION
static void layernorm_backward_rows(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                                    const float* weight, const float* mean, const float* rstd, int64_t n0,
                                    int64_t n1, int64_t C, bool accumulate) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = inp + n * C;
    const float* dy = dout + n * C;
    const float m = mean[n], r = rstd[n];
    float sg = lane_sum(C, [&](int64_t c) { return dy[c] * weight[c]; });
    float sgx = lane_sum(C, [&](int64_t c) { return dy[c] * weight[c] * ((x[c] - m) * r); });
    for (int64_t c = 0; c < C; ++c) {
      db[c] += dy[c];
      dw[c] += dy[c] * ((x[c] - m) * r);
    }
    sg /= static_cast<float>(C);
    sgx /= static_cast<float>(C);
    if (dinp) {
      float* dx = dinp + n * C;
      for (int64_t c = 0; c < C; ++c) {
        float xh = (x[c] - m) * r;
        const float g = r * (dy[c] * weight[c] - sg - xh * sgx);
        dx[c] = accumulate ? dx[c] + g : g;
      }
    }
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        ThreadPool* pool, bool accumulate) {
  // Each thread sums its rows' parameter gradients privately, then they are added in thread order
  // (deterministic for a given thread count).
  int threads = pool ? pool->available_threads() : 1;
  int64_t chunks = threads;
  if (chunks > N) chunks = N > 0 ? N : 1;
  std::vector<float> partial(static_cast<size_t>(chunks) * 2 * C, 0.0f);
  auto body = [&](int64_t c, int) {
    int64_t b = N * c / chunks, e = N * (c + 1) / chunks;
    float* pw = partial.data() + c * 2 * C;
    layernorm_backward_rows(dinp, pw, pw + C, dout, inp, weight, mean, rstd, b, e, C, accumulate);
  };
  run_tasks(pool, chunks, body);
  for (int64_t c = 0; c < chunks; ++c) {
    const float* pw = partial.data() + c * 2 * C;
    for (int64_t i = 0; i < C; ++i) {
      dweight[i] += pw[i];
      dbias[i] += pw[C + i];
    }
  }
}

}  // namespace gn
