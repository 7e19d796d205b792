// Token + position embedding.
//   ids (B,T) int32, wte (V,C), wpe (P,C) -> out (B,T,C): out[b,t] = wte[ids[b,t]] + wpe[pos0+t]
// Backward scatters into the tables (parameter gradients, +=): dwte[ids[b,t]] += dout[b,t],
// dwpe[pos0+t] += dout[b,t]. Ids and positions are checked before anything is written.
#include "common.h"
#include "cpu/kernels.h"
#include "cpu/simd.h"
#include "cpu/threading.h"

namespace gn {

static void check_ids(const int32_t* ids, int64_t n, int64_t V, int64_t T, int64_t P, int64_t pos0,
                      const char* op) {
  GN_CHECK_RANGE(pos0 >= 0 && pos0 + T <= P, op, ": positions ", pos0, "..", pos0 + T - 1,
                 " exceed the context of ", P, " positions (n_positions); shorten the input");
  for (int64_t i = 0; i < n; ++i)
    GN_CHECK_RANGE(ids[i] >= 0 && ids[i] < V, op, ": token id ", ids[i], " at index ", i,
                   " is outside the vocabulary [0, ", V, "); check the tokenizer matches the model");
}

GN_MULTIVERSION
static void add_rows(float* out, const float* a, const float* b, int64_t C) {
  for (int64_t c = 0; c < C; ++c) out[c] = a[c] + b[c];
}
GN_MULTIVERSION
static void acc_row(float* dst, const float* src, int64_t C) {
  for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
}

void embedding_forward(float* out, const int32_t* ids, const float* wte, const float* wpe, int64_t B,
                       int64_t T, int64_t C, int64_t V, int64_t P, int64_t pos0, ThreadPool* pool) {
  check_ids(ids, B * T, V, T, P, pos0, "embedding_forward");
  auto body = [&](int64_t s, int64_t e, int) {
    for (int64_t i = s; i < e; ++i) {
      int64_t t = i % T;
      add_rows(out + i * C, wte + static_cast<int64_t>(ids[i]) * C, wpe + (pos0 + t) * C, C);
    }
  };
  if (pool) pool->parallel_for(B * T, body, 16);
  else body(0, B * T, 0);
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* ids, int64_t B,
                        int64_t T, int64_t C, int64_t V, int64_t P, int64_t pos0, ThreadPool* pool) {
  check_ids(ids, B * T, V, T, P, pos0, "embedding_backward");
  // Split the channel dimension across threads: every thread visits all rows, so repeated ids never race
  // and the summation order is the same for any thread count.
  auto body = [&](int64_t c0, int64_t c1, int) {
    int64_t w = c1 - c0;
    for (int64_t i = 0; i < B * T; ++i) {
      int64_t t = i % T;
      const float* g = dout + i * C + c0;
      if (dwte) acc_row(dwte + static_cast<int64_t>(ids[i]) * C + c0, g, w);
      if (dwpe) acc_row(dwpe + (pos0 + t) * C + c0, g, w);
    }
  };
  if (pool) pool->parallel_for(C, body, 64);
  else body(0, C, 0);
}

}  // namespace gn
