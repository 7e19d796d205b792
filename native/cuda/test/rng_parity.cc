// Host test (no GPU): the CUDA addon's dropout generator (native/cuda/rng.h, compiled here for the host)
// must equal the CPU kernels' dropout_uniform (native/cpu/elementwise.cpp) bit for bit, and the attention
// counter must equal native/cpu/attention.cpp's drop_index formula. Built and run by scripts/check-cuda.sh.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "cuda/rng.h"

namespace gn {
float dropout_uniform(uint64_t seed, uint64_t index);  // native/cpu/elementwise.cpp
}

int main() {
  const uint64_t seeds[] = {0ULL, 1ULL, 42ULL, 123456789ULL, 9007199254740991ULL /* 2^53 - 1 */,
                            4503599627370496ULL};
  const uint64_t bases[] = {0ULL, 1ULL << 32, (1ULL << 53) - 1000ULL};
  int64_t checked = 0;
  for (uint64_t seed : seeds)
    for (uint64_t base : bases)
      for (uint64_t i = 0; i < 200000; ++i) {
        float a = gn::dropout_uniform(seed, base + i);
        float b = gn::cuda::dropout_uniform(seed, base + i);
        if (std::memcmp(&a, &b, sizeof a) != 0 || !(b >= 0.0f && b < 1.0f)) {
          std::printf("rng_parity: MISMATCH seed=%llu index=%llu cpu=%.9g cuda=%.9g\n",
                      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(base + i), a, b);
          return 1;
        }
        ++checked;
      }
  // attention counter: ((b·NH + h)·Tq + i)·Tk + j, in uint64
  const int64_t NH = 12, Tq = 7, Tk = 19;
  uint64_t expect = 0;
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t i = 0; i < Tq; ++i)
        for (int64_t j = 0; j < Tk; ++j, ++expect)
          if (gn::cuda::attn_drop_index(NH, Tq, Tk, b, h, i, j) != expect) {
            std::printf("rng_parity: attention counter mismatch at b=%lld h=%lld i=%lld j=%lld\n",
                        static_cast<long long>(b), static_cast<long long>(h), static_cast<long long>(i),
                        static_cast<long long>(j));
            return 1;
          }
  std::printf("rng_parity: %lld draws identical to the CPU generator; attention counter ok\n",
              static_cast<long long>(checked));
  return 0;
}
