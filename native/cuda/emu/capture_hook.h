// The start of every emulated stream (runtime.cc), read by the emulated cuBLAS (cublas.cc, a library of its own
// that cannot link to the runtime): through `capture`, a cuBLAS call on a stream that is being captured is recorded
// for cudaGraphLaunch instead of run, as real cuBLAS calls are.
#pragma once
#include <cstdint>
#include <functional>

struct GnEmuStreamHead {
  static constexpr uint32_t kMagic = 0x676e7374;  // "gnst"
  uint32_t magic = kMagic;
  // 0: run op now; 1: op was recorded (the stream is being captured); 2: not allowed now (the error is recorded)
  int (*capture)(void* stream, std::function<void()>* op) = nullptr;
};
