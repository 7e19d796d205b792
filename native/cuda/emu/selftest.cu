// Self-test of gpt-native's CUDA emulator (built and run by scripts/build-cuda-emu.js / test-cuda-emu.js before
// the CUDA tests): the warp collectives and barriers compute what CUDA defines, and the mistakes the emulator
// is there to catch are reported (exited lanes in a shuffle, deadlocks, a missing __syncthreads, launch shapes
// over the limits, copies outside an allocation, memory nobody wrote). Written as CUDA, so nvcc compiles it too.
#include <cuda_runtime.h>

#include "cuda/device.cuh"  // GN_DYNAMIC_SHARED
#include "cuda/mma.cuh"     // cp_async16, cp_async_commit, cp_async_wait

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

int g_checks = 0, g_failed = 0;

void check(bool ok, const char* what) {
  ++g_checks;
  if (!ok) {
    ++g_failed;
    std::printf("emu selftest: FAILED: %s\n", what);
  }
}

__global__ void shuffles(int* out) {
  const int lane = threadIdx.x & 31;
  int s = lane;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const int down = __shfl_down_sync(0xffffffffu, lane * 10, 3);
  const int up = __shfl_up_sync(0xffffffffu, lane * 10, 2);
  const int bcast = __shfl_sync(0xffffffffu, lane * 10, 7);
  const int sub = __shfl_xor_sync(0xffffffffu, lane, 1, 8);  // width 8: partner within the segment
  const unsigned even = __ballot_sync(0xffffffffu, (lane & 1) == 0);
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  out[t * 6 + 0] = s;
  out[t * 6 + 1] = down;
  out[t * 6 + 2] = up;
  out[t * 6 + 3] = bcast;
  out[t * 6 + 4] = sub;
  out[t * 6 + 5] = static_cast<int>(even);
}

// n ints through dynamic shared memory (GN_DYNAMIC_SHARED): written by every thread, summed by thread 0
__global__ void dynamic_shared_sum(long long* out, int n) {
  GN_DYNAMIC_SHARED(smem);
  int* v = reinterpret_cast<int*>(smem);
  for (int i = threadIdx.x; i < n; i += blockDim.x) v[i] = i % 1000 + static_cast<int>(blockIdx.x);
  __syncthreads();
  if (threadIdx.x == 0) {
    long long s = 0;
    for (int i = 0; i < n; ++i) s += v[i];
    out[blockIdx.x] = s;
  }
}

// cp.async: a copy lands at the wait that covers its group, not before (what the emulator lets a test see: on a
// GPU the read before the wait is a race). out[0..1]: a shared value before and after the wait; with `leave`, the
// thread exits with the copy in flight (a launch failure on the emulator)
__global__ void cp_async_order(float* out, const __nv_bfloat16* src, bool leave) {
  alignas(16) __shared__ __nv_bfloat16 sh[8];
  for (int i = 0; i < 8; ++i) sh[i] = __float2bfloat16(-1.0f);
  gn::cuda::cp_async16(sh, src, true);
  gn::cuda::cp_async_commit();
  gn::cuda::cp_async16(sh, src, false);  // a second group (zeros), committed below and never waited for with `leave`
  gn::cuda::cp_async_commit();
  out[0] = __bfloat162float(sh[3]);
  gn::cuda::cp_async_wait<1>();  // the first group has landed, the second may not have
  out[1] = __bfloat162float(sh[3]);
  if (!leave) gn::cuda::cp_async_wait<0>();
}

// block sum of 1..n over a 2-D block, through shared memory
__global__ void block_sum(float* out) {
  __shared__ float sh[256];
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  sh[t] = static_cast<float>(t + 1 + blockIdx.x);
  __syncthreads();
  for (int stride = 128; stride > 0; stride >>= 1) {
    if (t < stride) sh[t] += sh[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = sh[0];
}

// reads a neighbour's shared value (the next thread's, or with `down` the previous one's) with or without the
// barrier between the write and the read
__global__ void neighbour(int* out, bool barrier, bool down) {
  __shared__ int sh[64];
  const int t = threadIdx.x;
  sh[t] = t + 1000 * (blockIdx.x + 1);
  if (barrier) __syncthreads();
  out[blockIdx.x * 64 + t] = sh[down ? (t + 63) % 64 : (t + 1) % 64];
}

// reads the other warp's shared value after a warp-collective but with no __syncthreads: each warp may run ahead to
// its next block barrier (as on a GPU), so the read is stale in one of the two orders
__global__ void other_warp_after_shuffle(int* out) {
  __shared__ int sh[64];
  const int t = threadIdx.x;
  sh[t] = t + 1000 * (blockIdx.x + 1);
  const int x = __shfl_xor_sync(0xffffffffu, t, 1);
  out[blockIdx.x * 64 + t] = sh[(t + 32) % 64] + 0 * x;
}

__global__ void shuffle_after_exit(float* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void deadlock(float* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  }
}

__global__ void copy_kernel(float* out, const float* in, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = in[i];
}

bool last_error_is(cudaError_t want, const char* text) {
  const cudaError_t e = cudaGetLastError();
  if (e != want) return false;
  return text == nullptr || std::strstr(cudaGetErrorString(e), text) != nullptr;
}

}  // namespace

int main() {
  // warp collectives: 2 blocks of 64 threads
  int* d_shfl;
  cudaMalloc(&d_shfl, 128 * 6 * sizeof(int));
  shuffles<<<2, 64>>>(d_shfl);
  check(cudaGetLastError() == cudaSuccess, "shuffles launch");
  std::vector<int> h(128 * 6);
  cudaMemcpy(h.data(), d_shfl, h.size() * sizeof(int), cudaMemcpyDeviceToHost);
  bool sum_ok = true, down_ok = true, up_ok = true, bcast_ok = true, sub_ok = true, ballot_ok = true;
  for (int t = 0; t < 128; ++t) {
    const int lane = t & 31;
    sum_ok &= h[t * 6] == 496;
    down_ok &= h[t * 6 + 1] == (lane + 3 < 32 ? (lane + 3) * 10 : lane * 10);
    up_ok &= h[t * 6 + 2] == (lane >= 2 ? (lane - 2) * 10 : lane * 10);
    bcast_ok &= h[t * 6 + 3] == 70;
    sub_ok &= h[t * 6 + 4] == (lane ^ 1);
    ballot_ok &= static_cast<unsigned>(h[t * 6 + 5]) == 0x55555555u;
  }
  check(sum_ok, "__shfl_xor_sync butterfly sum is 496 on every lane");
  check(down_ok, "__shfl_down_sync: lane + delta, own value past the end");
  check(up_ok, "__shfl_up_sync: lane - delta, own value before the start");
  check(bcast_ok, "__shfl_sync broadcasts lane 7");
  check(sub_ok, "__shfl_xor_sync with width 8");
  check(ballot_ok, "__ballot_sync of the even lanes");

  // shared memory and __syncthreads over a 2-D block, 3 blocks
  float* d_sum;
  cudaMalloc(&d_sum, 3 * sizeof(float));
  block_sum<<<3, dim3(32, 8)>>>(d_sum);
  float hs[3];
  cudaMemcpy(hs, d_sum, sizeof hs, cudaMemcpyDeviceToHost);
  check(cudaGetLastError() == cudaSuccess, "block_sum launch");
  bool bs = true;
  for (int b = 0; b < 3; ++b) bs &= hs[b] == 256.0f * 257.0f / 2.0f + 256.0f * b;
  check(bs, "__syncthreads tree reduction in shared memory");

  // a missing barrier shows: with it every thread reads its neighbour's value, without it some do not, whichever
  // neighbour it reads (blocks 0 and 1 run their threads in opposite orders)
  int* d_nb;
  cudaMalloc(&d_nb, 2 * 64 * sizeof(int));
  std::vector<int> nb(128);
  for (int down = 0; down < 2; ++down) {
    const int off = down ? 63 : 1;
    neighbour<<<2, 64>>>(d_nb, true, down != 0);
    cudaMemcpy(nb.data(), d_nb, nb.size() * sizeof(int), cudaMemcpyDeviceToHost);
    bool with = true;
    for (int b = 0; b < 2; ++b)
      for (int t = 0; t < 64; ++t) with &= nb[b * 64 + t] == (t + off) % 64 + 1000 * (b + 1);
    check(with, down ? "reading the previous thread after __syncthreads" : "reading the next thread after __syncthreads");
    neighbour<<<2, 64>>>(d_nb, false, down != 0);
    cudaMemcpy(nb.data(), d_nb, nb.size() * sizeof(int), cudaMemcpyDeviceToHost);
    int wrong_any = 0;
    for (int b = 0; b < 2; ++b)
      for (int t = 0; t < 64; ++t) wrong_any += nb[b * 64 + t] != (t + off) % 64 + 1000 * (b + 1);
    check(wrong_any > 0, down ? "a missing __syncthreads shows when reading the previous thread"
                              : "a missing __syncthreads shows when reading the next thread");
  }

  other_warp_after_shuffle<<<2, 64>>>(d_nb);
  cudaMemcpy(nb.data(), d_nb, nb.size() * sizeof(int), cudaMemcpyDeviceToHost);
  int stale = 0;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 64; ++t) stale += nb[b * 64 + t] != (t + 32) % 64 + 1000 * (b + 1);
  check(stale > 0, "a missing __syncthreads shows when another warp's write precedes a warp-collective");

  // mistakes become launch errors that name the kernel
  float* d_f;
  cudaMalloc(&d_f, 64 * sizeof(float));
  shuffle_after_exit<<<1, 32>>>(d_f);
  check(last_error_is(cudaErrorLaunchFailure, "lane 5, which has exited"), "shuffle with an exited lane");
  deadlock<<<1, 32>>>(d_f);
  check(last_error_is(cudaErrorLaunchFailure, "deadlock"), "warp collective against __syncthreads is a deadlock");
  shuffles<<<1, 48>>>(d_shfl);
  check(last_error_is(cudaErrorLaunchFailure, "does not exist"), "full-mask shuffle in a partial warp");
  copy_kernel<<<1, 2048>>>(d_f, d_f, 1);
  check(last_error_is(cudaErrorInvalidConfiguration, "copy_kernel"), "2048 threads per block");
  check(cudaGetLastError() == cudaSuccess, "errors are cleared once read");

  // dynamic shared memory: above 48 KiB only after cudaFuncSetAttribute, as on a GPU, and up to 227 KiB
  {
    const int n = 20000;  // 80,000 bytes
    const size_t bytes = n * sizeof(int);
    long long* d_s;
    cudaMalloc(&d_s, 2 * sizeof(long long));
    dynamic_shared_sum<<<2, 128, bytes>>>(d_s, n);
    check(last_error_is(cudaErrorInvalidValue, "dynamic shared memory"), "80,000 bytes of dynamic shared memory need the attribute");
    check(cudaFuncSetAttribute(dynamic_shared_sum, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
              cudaErrorInvalidValue, "a limit over 227 KiB is refused");
    (void)cudaGetLastError();
    check(cudaFuncSetAttribute(dynamic_shared_sum, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(bytes)) == cudaSuccess, "cudaFuncSetAttribute");
    dynamic_shared_sum<<<2, 128, bytes>>>(d_s, n);
    check(cudaGetLastError() == cudaSuccess, "launch with 80,000 bytes of dynamic shared memory");
    long long got[2] = {0, 0}, want[2] = {0, 0};
    cudaMemcpy(got, d_s, sizeof got, cudaMemcpyDeviceToHost);
    for (int b = 0; b < 2; ++b)
      for (int i = 0; i < n; ++i) want[b] += i % 1000 + b;
    check(got[0] == want[0] && got[1] == want[1], "sums through dynamic shared memory");
    cudaFree(d_s);
  }

  // cp.async lands at its wait; exiting with copies in flight is a launch failure
  {
    std::vector<__nv_bfloat16> h(8);
    for (int i = 0; i < 8; ++i) h[i] = __float2bfloat16(static_cast<float>(i + 1));
    __nv_bfloat16* d_src;
    float* d_out;
    cudaMalloc(&d_src, 8 * sizeof(__nv_bfloat16));
    cudaMalloc(&d_out, 2 * sizeof(float));
    cudaMemcpy(d_src, h.data(), 8 * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice);
    cp_async_order<<<1, 1>>>(d_out, d_src, false);
    float o[2] = {0.0f, 0.0f};
    cudaMemcpy(o, d_out, sizeof o, cudaMemcpyDeviceToHost);
    check(cudaGetLastError() == cudaSuccess && o[0] == -1.0f && o[1] == 4.0f,
          "cp.async: the old value before the wait, the copied one after");
    cp_async_order<<<1, 1>>>(d_out, d_src, true);
    check(last_error_is(cudaErrorLaunchFailure, "cp.async copies in flight"), "exiting with a cp.async in flight");
    cudaFree(d_src);
    cudaFree(d_out);
  }

  // device memory
  std::vector<float> host(65, 1.0f);
  check(cudaMemcpy(d_f, host.data(), 65 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
        "a copy past the end of an allocation");
  (void)cudaGetLastError();
  float fresh[4];
  float* d_new;
  cudaMalloc(&d_new, 4 * sizeof(float));
  cudaMemcpy(fresh, d_new, sizeof fresh, cudaMemcpyDeviceToHost);
  check(std::isnan(fresh[0]) && std::isnan(fresh[3]), "fresh device memory reads as NaN");
  check(cudaFree(d_new) == cudaSuccess && cudaFree(d_new) == cudaErrorInvalidValue, "double free is an error");
  (void)cudaGetLastError();

  // grid-stride loop over more items than threads
  const int n = 100003;
  float *d_a, *d_b;
  cudaMalloc(&d_a, n * sizeof(float));
  cudaMalloc(&d_b, n * sizeof(float));
  std::vector<float> a(n), b(n);
  for (int i = 0; i < n; ++i) a[i] = static_cast<float>(i) * 0.5f;
  cudaMemcpy(d_a, a.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  copy_kernel<<<7, 96>>>(d_b, d_a, n);
  cudaMemcpy(b.data(), d_b, n * sizeof(float), cudaMemcpyDeviceToHost);
  check(a == b, "grid-stride copy of 100,003 floats");

  // stream capture: the work is recorded, not run, until the graph is launched; each launch runs it again in order
  // (a kernel, then a device-to-device copy of its output); a synchronisation during a capture is refused and
  // invalidates it
  {
    cudaStream_t st;
    cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    const int m = 1000;
    std::vector<float> x(m), y(m, 0.0f);
    for (int i = 0; i < m; ++i) x[i] = static_cast<float>(i) + 0.25f;
    cudaMemcpy(d_a, x.data(), m * sizeof(float), cudaMemcpyHostToDevice);
    cudaMemset(d_b, 0, m * sizeof(float));
    cudaMemset(d_f, 0, 64 * sizeof(float));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    bool ok = cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
    copy_kernel<<<3, 64, 0, st>>>(d_b, d_a, m);
    ok = ok && cudaMemcpyAsync(d_f, d_b + 100, 64 * sizeof(float), cudaMemcpyDeviceToDevice, st) == cudaSuccess;
    cudaStreamCaptureStatus status;
    ok = ok && cudaStreamIsCapturing(st, &status) == cudaSuccess && status == cudaStreamCaptureStatusActive;
    ok = ok && cudaStreamEndCapture(st, &graph) == cudaSuccess && graph;
    cudaMemcpy(y.data(), d_b, m * sizeof(float), cudaMemcpyDeviceToHost);
    check(ok && y[5] == 0.0f, "a captured launch does not run at capture");
    ok = cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess && cudaGraphLaunch(exec, st) == cudaSuccess;
    float f[64];
    cudaMemcpy(y.data(), d_b, m * sizeof(float), cudaMemcpyDeviceToHost);
    cudaMemcpy(f, d_f, sizeof f, cudaMemcpyDeviceToHost);
    check(ok && x == y && f[0] == x[100] && f[63] == x[163], "the graph's launch runs the kernel, then the copy");
    for (int i = 0; i < m; ++i) x[i] = -x[i];
    cudaMemcpy(d_a, x.data(), m * sizeof(float), cudaMemcpyHostToDevice);
    ok = cudaGraphLaunch(exec, st) == cudaSuccess;
    cudaMemcpy(f, d_f, sizeof f, cudaMemcpyDeviceToHost);
    check(ok && f[0] == x[100], "a second launch reads the inputs as they are then");
    cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal);
    check(cudaStreamSynchronize(st) == cudaErrorStreamCaptureUnsupported, "a synchronisation during a capture is refused");
    cudaGraph_t bad = nullptr;
    check(cudaStreamEndCapture(st, &bad) == cudaErrorStreamCaptureInvalidated && !bad, "and invalidates the capture");
    (void)cudaGetLastError();
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(st);
  }

  cudaFree(d_shfl);
  cudaFree(d_sum);
  cudaFree(d_nb);
  cudaFree(d_f);
  cudaFree(d_a);
  cudaFree(d_b);
  std::printf("emu selftest: %d of %d checks passed\n", g_checks - g_failed, g_checks);
  return g_failed ? 1 : 0;
}
