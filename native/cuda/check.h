// Error handling for the CUDA addon. Every CUDA runtime call goes through GN_CUDA(call); every kernel launch
// is followed by GN_LAUNCHED(stream, "kernel"). A failure throws gn::KernelError (-> JS Error at the N-API
// boundary, see native/napi/guard.h) whose message names the call, file:line and CUDA's error name and text.
// Nothing here exits or aborts.
//
// Kernel errors are asynchronous: an illegal address inside a kernel is reported by whatever CUDA call comes
// next. Set GPT_NATIVE_CUDA_SYNC=1 (read by init()) to synchronise after every launch so the message names
// the kernel that failed.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "common.h"

namespace gn {
namespace cuda {

// The stream every op runs on, plus the debug flag above. Passed by value to every launcher.
struct Stream {
  cudaStream_t s = nullptr;
  bool sync_each = false;
  // a CUDA graph is being captured on s (graph.cc): nothing may synchronise, allocate or free until it ends
  bool capturing = false;
  uint64_t* reallocs = nullptr;  // counts the scratch reallocations (a captured graph holds the old pointers)
};

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  (void)cudaGetLastError();  // clear a non-sticky error so the next launch check does not report it again
  std::string msg = str_cat("gpt-native: CUDA error in ", what, " at ", file, ":", line, ": ", cudaGetErrorName(e),
                            " (", cudaGetErrorString(e), ")");
  if (e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure || e == cudaErrorAssert ||
      e == cudaErrorIllegalInstruction || e == cudaErrorMisalignedAddress)
    msg += "; this error is sticky: the CUDA context is unusable until the process restarts "
           "(run with GPT_NATIVE_CUDA_SYNC=1 to find the kernel that caused it)";
  throw KernelError(KernelError::Kind::Generic, msg);
}

inline void check_launch(const Stream& st, const char* kernel, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_cuda(e, kernel, file, line);
  if (st.sync_each && !st.capturing) {
    e = cudaStreamSynchronize(st.s);
    if (e != cudaSuccess) throw_cuda(e, kernel, file, line);
  }
}

}  // namespace cuda
}  // namespace gn

#define GN_CUDA(call)                                                                          \
  do {                                                                                         \
    cudaError_t gn_err_ = (call);                                                              \
    if (gn_err_ != cudaSuccess) ::gn::cuda::throw_cuda(gn_err_, #call, __FILE__, __LINE__);    \
  } while (0)

#define GN_LAUNCHED(stream, kernel) ::gn::cuda::check_launch((stream), "launch of " kernel, __FILE__, __LINE__)
