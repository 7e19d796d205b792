// Softmax + cross-entropy fused over the vocabulary.
//   logits (N,V) with row stride ld >= V, targets (N) int32 -> losses (N), lse (N)
//   loss[n] = lse[n] - logits[n, t_n],  lse[n] = log Σ_v exp(logits[n,v])
//   dlogits[n,v] = scale · (exp(logits[n,v] - lse[n]) - [v == t_n])   (scale = dloss/dloss_n, e.g. 1/count)
// Rows whose target equals ignore_index contribute loss 0 and gradient 0 (padding). The forward can write
// dlogits too (a training step's loss and its gradient in one pass over the logits).
#include <cmath>

#include "common.h"
#include "cpu/kernels.h"
#include "cpu/simd.h"
#include "cpu/threading.h"

namespace gn {

GN_MULTIVERSION
static float row_lse(const float* x, int64_t V) {
  const float mx = lane_max(x, V);
  const float s = lane_sum(V, [&](int64_t v) { return fast_expf(x[v] - mx); });
  return mx + std::log(s);
}

GN_MULTIVERSION
static void row_grad(float* d, const float* x, float lse, float scale, int64_t V) {
  for (int64_t v = 0; v < V; ++v) d[v] = scale * fast_expf(x[v] - lse);
}

// dlogits of one row (d may alias x): zeros for an ignored row
static void row_dlogits(float* d, const float* x, float lse, int32_t t, int32_t ignore, float scale, int64_t V) {
  if (t == ignore) {
    for (int64_t v = 0; v < V; ++v) d[v] = 0.0f;
    return;
  }
  row_grad(d, x, lse, scale, V);
  d[t] -= scale;
}

static void check_targets(const int32_t* targets, int64_t N, int64_t V, int32_t ignore, const char* op) {
  for (int64_t n = 0; n < N; ++n)
    GN_CHECK_RANGE(targets[n] == ignore || (targets[n] >= 0 && targets[n] < V), op, ": target ", targets[n],
                   " at row ", n, " is outside the vocabulary [0, ", V, ") and is not the ignore index ",
                   ignore);
}

int64_t softmax_xent_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                             int64_t N, int64_t V, int32_t ignore_index, ThreadPool* pool, int64_t ld,
                             float* dlogits, float scale) {
  check_targets(targets, N, V, ignore_index, "softmax_xent_forward");
  auto body = [&](int64_t s, int64_t e, int) {
    for (int64_t n = s; n < e; ++n) {
      const float* x = logits + n * ld;
      float l = row_lse(x, V);
      if (lse) lse[n] = l;
      losses[n] = targets[n] == ignore_index ? 0.0f : l - x[targets[n]];  // (read before dlogits may replace it)
      if (dlogits) row_dlogits(dlogits + n * ld, x, l, targets[n], ignore_index, scale, V);
    }
  };
  if (pool) pool->parallel_for(N, body, 1);
  else body(0, N, 0);
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += targets[n] != ignore_index;
  return count;
}

void softmax_xent_backward(float* dlogits, const float* logits, const float* lse, const int32_t* targets,
                           int64_t N, int64_t V, int32_t ignore_index, float scale, ThreadPool* pool, int64_t ld) {
  check_targets(targets, N, V, ignore_index, "softmax_xent_backward");
  auto body = [&](int64_t s, int64_t e, int) {
    for (int64_t n = s; n < e; ++n) {
      row_dlogits(dlogits + n * ld, logits + n * ld, lse[n], targets[n], ignore_index, scale, V);
    }
  };
  if (pool) pool->parallel_for(N, body, 1);
  else body(0, N, 0);
}

}  // namespace gn
