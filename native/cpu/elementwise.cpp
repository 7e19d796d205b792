// Elementwise families: residual add, in-place add and scale, dropout, sum of squares.
//   add:     out = a + b            (the residual connection; its backward passes dout to both inputs)
//   dropout: out = inp · keep / (1 - p), keep = uniform(seed, offset + i) >= p
//            dinp = dout · keep / (1 - p)   (mask regenerated from the same counter, never stored)
//   sumsq:   Σ a² with double accumulation (global gradient norm)
// The generator is counter based (SplitMix64 finaliser of seed and index): any element's draw is
// reproducible without state, independent of thread count and chunking.
#include <algorithm>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/simd.h"
#include "cpu/threading.h"

namespace gn {

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

float dropout_uniform(uint64_t seed, uint64_t index) {
  uint64_t z = mix64(seed * 0x9e3779b97f4a7c15ULL + index + 0x632be59bd9b4e019ULL);
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // 24 bits -> [0,1)
}

GN_MULTIVERSION
static void add_range(float* out, const float* a, const float* b, int64_t s, int64_t e) {
  for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
}
GN_MULTIVERSION
static void scale_range(float* a, float k, int64_t s, int64_t e) {
  for (int64_t i = s; i < e; ++i) a[i] *= k;
}

void add_forward(float* out, const float* a, const float* b, int64_t n, ThreadPool* pool) {
  if (!pool) { add_range(out, a, b, 0, n); return; }
  pool->parallel_for(n, [&](int64_t s, int64_t e, int) { add_range(out, a, b, s, e); }, 1 << 14);
}

void add_inplace(float* a, const float* b, int64_t n, ThreadPool* pool) { add_forward(a, a, b, n, pool); }

void scale_inplace(float* a, float k, int64_t n, ThreadPool* pool) {
  if (!pool) { scale_range(a, k, 0, n); return; }
  pool->parallel_for(n, [&](int64_t s, int64_t e, int) { scale_range(a, k, s, e); }, 1 << 14);
}

static void dropout_range(float* out, const float* inp, int64_t s, int64_t e, float p, uint64_t seed,
                          uint64_t offset) {
  const float k = 1.0f / (1.0f - p);
  for (int64_t i = s; i < e; ++i)
    out[i] = dropout_uniform(seed, offset + static_cast<uint64_t>(i)) >= p ? inp[i] * k : 0.0f;
}

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset,
                     ThreadPool* pool) {
  if (p <= 0.0f) {
    if (out != inp) std::copy(inp, inp + n, out);
    return;
  }
  if (!pool) { dropout_range(out, inp, 0, n, p, seed, offset); return; }
  pool->parallel_for(n, [&](int64_t s, int64_t e, int) { dropout_range(out, inp, s, e, p, seed, offset); },
                     1 << 14);
}

void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset,
                      ThreadPool* pool) {
  // identical mask and scale: the backward of x·mask·k is dout·mask·k
  dropout_forward(dinp, dout, n, p, seed, offset, pool);
}

GN_MULTIVERSION
static double sumsq_range(const float* a, int64_t s, int64_t e) {
  // float partial sums over blocks of 256, added in double: fast and accurate to ~1e-7 relative
  double total = 0.0;
  for (int64_t i = s; i < e; i += 256) {
    int64_t end = i + 256 < e ? i + 256 : e;
    const float* p = a + i;
    total += lane_sum(end - i, [&](int64_t j) { return p[j] * p[j]; });
  }
  return total;
}

double sumsq(const float* a, int64_t n, ThreadPool* pool) {
  if (!pool) return sumsq_range(a, 0, n);
  int threads = pool->available_threads();
  std::vector<double> part(threads, 0.0);
  int64_t chunks = threads;
  run_tasks(pool, chunks, [&](int64_t c, int) {
    part[c] = sumsq_range(a, n * c / chunks, n * (c + 1) / chunks);
  });
  double t = 0.0;
  for (double v : part) t += v;
  return t;
}

}  // namespace gn
