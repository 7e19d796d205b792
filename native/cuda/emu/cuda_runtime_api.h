// gpt-native's CUDA emulator: the part of the CUDA runtime and of the CUDA C++ kernel language that
// native/cuda uses, implemented on the host CPU, so the real kernel sources run in tests on a machine without
// a GPU (scripts/build-cuda-emu.js, `npm run test:cuda-emu`). Not a product backend: it is slow, and it
// exists to find wrong indexing, wrong cuBLAS operand order, missing barriers and out-of-bounds accesses
// before a GPU is available.
//
// How kernels run (native/cuda/emu/runtime.cc):
//   - scripts/build-cuda-emu.js rewrites `kernel<<<grid, block, smem, stream>>>(args)` into
//     `::gn_emu::Launch(&kernel, "kernel", grid, block, smem, stream)(args)` and compiles the .cu file as C++
//     with this folder first on the include path;
//   - every CUDA thread of a block is a fiber (its own stack); blocks run one after another, in order; the
//     warps of a block run one at a time, each until all its lanes are at __syncthreads() or done, in index order
//     in even blocks and in reverse order in odd ones, so a write to shared memory that another warp reads with no
//     __syncthreads() between shows up as stale data in one of the two orders;
//   - a fiber runs until it reaches __syncthreads() or a warp-collective (__shfl_*_sync, __syncwarp, mma,
//     ldmatrix), then the next lane of its warp runs: a barrier releases when every thread that must arrive has
//     arrived (a warp-collective as soon as its warp's lanes are there). Reaching a barrier
//     that can never release (deadlock, a lane of the mask that has exited, a partial warp with a full mask) is
//     a launch failure whose text names the kernel, block and thread;
//   - __shared__ variables are function statics (one block runs at a time), so they keep what the previous
//     block left there, like uninitialised shared memory; dynamic shared memory (GN_DYNAMIC_SHARED) is one
//     227 KiB buffer per OS thread, and a launch asking for more than 48 KiB of it needs the kernel's
//     cudaFuncAttributeMaxDynamicSharedMemorySize, as on a GPU; a cp.async copy (mma.cuh) reads its source when
//     issued and lands only at the cp.async.wait_group that covers its group, and a thread that exits with
//     copies in flight fails the launch;
//   - a vector access (device.cuh load16/store16, the flash kernels' 16- and 4-byte forms, 16-byte atomics,
//     cp.async) at an address not aligned to its width aborts the test process with a message, as a GPU would
//     fault, instead of going through the host's memcpy unseen;
//   - device memory is host memory from mmap: the end of every allocation (rounded up to 8 bytes) touches a
//     PROT_NONE page, so reading or writing past the end of a buffer crashes the test instead of passing silently; fresh allocations are
//     filled with 0xFF bytes (NaN as floats), so reading memory nobody wrote shows up as NaN; freed memory is
//     unmapped;
//   - streams are synchronous: every call completes before it returns, except while a stream is being captured
//     (cudaStreamBeginCapture): then its launches, async copies and sets, event records and the cuBLAS calls made
//     on it are recorded, not run, and cudaGraphLaunch runs the recording in order; a call that a capture forbids
//     (cudaMalloc, cudaFree, a synchronous copy or set, a synchronize, work on the legacy stream) fails with
//     cudaErrorStreamCaptureUnsupported and invalidates the capture, as on a GPU;
//   - each OS thread (Node worker) runs its own kernels; the device-memory table is shared behind a mutex.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <utility>

#define CUDART_VERSION 13000
#define __CUDA_EMU__ 1

// ---- kernel language ----------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __constant__ static

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

// ---- runtime types --------------------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorAssert = 710,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorIllegalState = 401,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureImplicit = 906,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

struct CUstream_st;
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;  // what cudaFuncSetAttribute may allow a block (227 KiB, or $GN_EMU_SMEM_OPTIN)
  int warpSize;
  int maxThreadsPerBlock;
  int major, minor;
  int multiProcessorCount;
};

struct cudaFuncAttributes {
  size_t sharedSizeBytes, constSizeBytes, localSizeBytes;
  int maxThreadsPerBlock, numRegs, ptxVersion, binaryVersion;
};

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <typename T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
// page-locked host memory (plain host memory here)
cudaError_t cudaMallocHost(void** p, size_t bytes);
template <typename T>
inline cudaError_t cudaMallocHost(T** p, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
// events: a record takes the host clock (streams are synchronous here); elapsed time in ms between two records
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
// stream capture and graphs (what they record and forbid: the notes at the top)
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};
struct CUgraph_st;
using cudaGraph_t = CUgraph_st*;
struct CUgraphExec_st;
using cudaGraphExec_t = CUgraphExec_st*;
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);

// a kernel's attributes: the emulator runs every kernel as compiled for sm_90
template <typename T>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* entry) {
  if (!attr || !entry) return cudaErrorInvalidValue;
  *attr = cudaFuncAttributes{0, 0, 0, 1024, 0, 90, 90};
  return cudaSuccess;
}

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes): a kernel may be launched with
// more than 48 KiB of dynamic shared memory only after this, up to 227 KiB (sm_90's limit), as on a GPU
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
namespace gn_emu {
cudaError_t set_func_attribute(const void* fn, cudaFuncAttribute attr, int value);
}
template <typename T>
inline cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return ::gn_emu::set_func_attribute(reinterpret_cast<const void*>(entry), attr, value);
}

// ---- the emulator ---------------------------------------------------------------------------------------
namespace gn_emu {

// A block's dynamic shared memory (extern __shared__ on a GPU; GN_DYNAMIC_SHARED in device.cuh): one buffer per OS
// thread, like the __shared__ statics, holding what the previous block left
constexpr size_t kMaxDynamicShared = 227 * 1024;
unsigned char* dynamic_shared();

// The CUDA thread a fiber is running (what threadIdx & co. read).
struct ThreadState {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
  int lane, warp;
};
extern thread_local ThreadState* g_self;  // the running fiber's state (one fiber runs at a time per OS thread)

void syncthreads();
// cp.async.cg.shared.global (16 bytes, zeros where !valid), commit_group and wait_group n (mma.cuh): a copy lands
// only at the wait that covers its group, and a thread that exits with copies in flight fails the launch
void cp_async16(void* dst, const void* src, bool valid);
void cp_async_commit();
void cp_async_wait(int n);
// warp-collective exchange: every lane of mask puts `bits` in, receives the value lane src(lane) put in
// (src < 0: keep its own). Waits for all lanes of mask.
uint64_t exchange(unsigned mask, uint64_t bits, int src);
void syncwarp(unsigned mask);
unsigned ballot(unsigned mask, bool pred);
// warp-collective: every lane of mask puts `bits` in; all[l] receives lane l's value for each l of the mask
void gather(unsigned mask, uint64_t bits, uint64_t (&all)[32]);
// one bf16 tensor-core product of the warp, and ldmatrix.m8n8.x4 (.trans) (for kernels in native/cuda/mma.cuh)
void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans);

// Work issued on stream s: 0 when it is to run now, 1 when s is being captured and `op` was recorded instead, 2 when
// the call is not allowed during this thread's capture (the error is recorded and the capture invalidated)
int capture(cudaStream_t s, std::function<void()>& op);

using Thunk = void (*)(void*);
// Runs a whole grid: thunk(closure) once per CUDA thread. Records a launch error for cudaGetLastError.
void run_grid(const void* fn, const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t s, Thunk thunk,
              void* closure);

template <typename... P>
struct Launch {
  void (*fn)(P...);
  const char* name;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  Launch(void (*f)(P...), const char* n, dim3 g, dim3 b, size_t sm = 0, cudaStream_t s = nullptr)
      : fn(f), name(n), grid(g), block(b), smem(sm), stream(s) {}
  template <typename... A>
  void operator()(A&&... a) const {
    struct Closure {
      void (*fn)(P...);
      std::tuple<std::decay_t<P>...> args;
    };
    auto c = std::make_shared<Closure>(Closure{fn, std::tuple<std::decay_t<P>...>(static_cast<P>(std::forward<A>(a))...)});
    const Thunk thunk = [](void* p) {
      auto* cl = static_cast<Closure*>(p);
      std::apply(cl->fn, cl->args);  // each thread gets its own copies of the parameters
    };
    const void* f = reinterpret_cast<const void*>(fn);
    const char* n = name;
    const dim3 g = grid, b = block;
    const size_t sm = smem;
    const cudaStream_t st = stream;
    // while st is captured, the launch (its arguments as given now) is recorded for cudaGraphLaunch
    std::function<void()> op = [=] { run_grid(f, n, g, b, sm, st, thunk, c.get()); };
    if (capture(st, op) == 0) op();
  }
};

template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace gn_emu

#define threadIdx (::gn_emu::g_self->thread_idx)
#define blockIdx (::gn_emu::g_self->block_idx)
#define blockDim (::gn_emu::g_self->block_dim)
#define gridDim (::gn_emu::g_self->grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { ::gn_emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::gn_emu::syncwarp(mask); }
inline unsigned __ballot_sync(unsigned mask, int pred) { return ::gn_emu::ballot(mask, pred != 0); }
inline int __any_sync(unsigned mask, int pred) { return ::gn_emu::ballot(mask, pred != 0) != 0; }
inline int __all_sync(unsigned mask, int pred) { return ::gn_emu::ballot(mask, pred != 0) == mask; }

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int lane = ::gn_emu::g_self->lane;
  const int base = lane & ~(width - 1);
  return ::gn_emu::from_bits<T>(::gn_emu::exchange(mask, ::gn_emu::to_bits(v), base + (src & (width - 1))));
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = ::gn_emu::g_self->lane;
  const int src = lane ^ lane_mask;
  const bool inside = (src & ~(width - 1)) == (lane & ~(width - 1));
  return ::gn_emu::from_bits<T>(::gn_emu::exchange(mask, ::gn_emu::to_bits(v), inside ? src : -1));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = ::gn_emu::g_self->lane;
  const int src = lane + static_cast<int>(delta);
  const bool inside = (src & ~(width - 1)) == (lane & ~(width - 1));
  return ::gn_emu::from_bits<T>(::gn_emu::exchange(mask, ::gn_emu::to_bits(v), inside ? src : -1));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = ::gn_emu::g_self->lane;
  const int src = lane - static_cast<int>(delta);
  const bool inside = src >= (lane & ~(width - 1));
  return ::gn_emu::from_bits<T>(::gn_emu::exchange(mask, ::gn_emu::to_bits(v), inside ? src : -1));
}

// Atomics: fibers never run at the same time, so a plain read-modify-write is atomic here.
template <typename T>
inline T atomicAdd(T* p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
inline T atomicMax(T* p, T v) {
  T old = *p;
  if (v > old) *p = v;
  return old;
}

// Device math intrinsics (the fast-math variants compute the exact function here).
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
