// gpt-native CUDA addon (gpt_native_cuda.node): module registration, device and cuBLAS set-up, device
// memory (alloc/free/upload/download/copy/fill) and the argument helpers of context.h. The kernels' N-API
// wrappers are in ops.cc. The CPU addon (binding.gyp, native/napi, native/cpu) does not depend on this.
#include <napi.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/context.h"
#include "cuda/kernels.h"
#include "napi/guard.h"

namespace gn {
namespace cuda {

constexpr size_t kBlasWorkspace = size_t(32) << 20;

// ---- instance data, scratch ---------------------------------------------------------------------

void* Scratch::get(const Stream& st, size_t need) {
  if (need == 0) need = 1;
  if (bytes < need) {
    GN_CHECK(!st.capturing, "gpt-native: device scratch of ", need, " bytes is needed while a CUDA graph is being "
             "captured (only ", bytes, " are allocated); run the step once without a graph first, or set "
             "GPT_NATIVE_CUDA_GRAPHS=0");
    if (st.reallocs) ++*st.reallocs;
    const size_t old = bytes;
    if (p) {
      GN_CUDA(cudaStreamSynchronize(st.s));
      GN_CUDA(cudaFree(p));
      p = nullptr;
      bytes = 0;
    }
    size_t want = need < 2 * old ? 2 * old : need;  // at least double, so growth reallocates rarely
    if (want < (1u << 16)) want = 1u << 16;
    GN_CUDA(cudaMalloc(&p, want));
    bytes = want;
  }
  return p;
}

void Scratch::release() {
  if (p) cudaFree(p);  // errors ignored: called from destructors, possibly during process teardown
  p = nullptr;
  bytes = 0;
}

CudaAddon::~CudaAddon() {
  if (!ready) return;
  lt_release(*this);
  if (handle && blas.destroy) blas.destroy(handle);
  if (blas_workspace) cudaFree(blas_workspace);  // errors ignored (teardown)
  ints.release();
  floats.release();
  doubles.release();
  attn.release();
  stage.release();
  if (stream.s) cudaStreamDestroy(stream.s);
  // blas.lib stays loaded: other instances (worker threads) may use it, and unloading buys nothing
}

CudaAddon& addon(const Napi::CallbackInfo& info) { return *info.Env().GetInstanceData<CudaAddon>(); }

CudaAddon& ready(const Napi::CallbackInfo& info, const char* op) {
  CudaAddon& a = addon(info);
  GN_CHECK(a.ready, op, ": the CUDA backend is not initialised; call init() first");
  GN_CUDA(cudaSetDevice(a.device));  // cheap; keeps the device right if another library switched it
  return a;
}

void no_capture(const CudaAddon& a, const char* what) {
  GN_CHECK(!a.stream.capturing, "gpt-native: ", what, " is not allowed while a CUDA graph is being captured (it "
           "waits for the device); only kernels and device-to-device work may be captured");
}

void HostStage::release() {  // (errors ignored: teardown)
  if (done) cudaEventSynchronize(done);
  if (p) cudaFreeHost(p);
  if (done) cudaEventDestroy(done);
  p = nullptr;
  bytes = used = 0;
  done = nullptr;
}

namespace {
// A region of a.stage for a copy of `bytes` (nullptr past HostStage::kMax, or where page-locked memory cannot be
// had: the copy then goes from or to the caller's memory). Where the free part is too small, waits until the device
// has read every earlier upload's region, then starts again at the beginning (growing the buffer if need be).
char* stage_region(CudaAddon& a, size_t bytes) {
  HostStage& s = a.stage;
  if (bytes > HostStage::kMax) return nullptr;
  const size_t need = (bytes + 255) & ~size_t(255);
  if (s.used + need > s.bytes) {
    if (s.used > 0) GN_CUDA(cudaEventSynchronize(s.done));
    s.used = 0;
    if (s.bytes < need) {
      if (s.p) GN_CUDA(cudaFreeHost(s.p));
      s.p = nullptr;
      s.bytes = 0;
      size_t want = size_t(1) << 20;
      while (want < need) want *= 2;
      if (cudaMallocHost(reinterpret_cast<void**>(&s.p), want) != cudaSuccess) {
        (void)cudaGetLastError();
        s.p = nullptr;
        return nullptr;
      }
      s.bytes = want;
    }
  }
  if (!s.done) GN_CUDA(cudaEventCreate(&s.done));
  char* r = s.p + s.used;
  s.used += need;
  return r;
}
}  // namespace

void to_device(CudaAddon& a, void* dst, const void* src, size_t bytes) {
  no_capture(a, "a copy from host memory");
  if (bytes == 0) return;
  if (char* h = stage_region(a, bytes)) {  // no wait: src is copied now, and the device reads h in stream order
    std::memcpy(h, src, bytes);
    GN_CUDA(cudaMemcpyAsync(dst, h, bytes, cudaMemcpyHostToDevice, a.stream.s));
    GN_CUDA(cudaEventRecord(a.stage.done, a.stream.s));
    return;
  }
  GN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, a.stream.s));
  GN_CUDA(cudaStreamSynchronize(a.stream.s));
}

void to_host(CudaAddon& a, void* dst, const void* src, size_t bytes) {
  no_capture(a, "a copy to host memory");
  if (bytes == 0) return;
  if (char* h = stage_region(a, bytes)) {
    GN_CUDA(cudaMemcpyAsync(h, src, bytes, cudaMemcpyDeviceToHost, a.stream.s));
    GN_CUDA(cudaStreamSynchronize(a.stream.s));
    a.stage.used = 0;  // the stream is idle: every region has been read
    std::memcpy(dst, h, bytes);
    return;
  }
  GN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, a.stream.s));
  GN_CUDA(cudaStreamSynchronize(a.stream.s));
}

// ---- argument helpers ---------------------------------------------------------------------------

double num(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber())
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a number for ", name, " (argument ", i, ")"));
  return v.As<Napi::Number>().DoubleValue();
}

static int64_t nonneg_int(double d, const char* op, const char* name) {
  if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d)) || d > 9.0e15)
    throw KernelError(KernelError::Kind::Range,
                      str_cat(op, ": expected a non-negative integer for ", name, " but received ", d));
  return static_cast<int64_t>(d);
}

int64_t dim(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  return nonneg_int(num(info, i, op, name), op, name);
}

DevBuf* buffer_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  DevBuf* b = v.IsExternal() ? v.As<Napi::External<DevBuf>>().Data() : nullptr;
  if (!b || b->magic != kBufMagic)
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": expected a device buffer (from alloc) for ", name, " (argument ", i, ")"));
  if (b->freed) throw KernelError(KernelError::Kind::Generic, str_cat(op, ": ", name, ": buffer was freed"));
  return b;
}

DView view(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, bool nullable) {
  Napi::Value v = info[i];
  if (nullable && (v.IsNull() || v.IsUndefined())) return {};
  if (!v.IsObject() || v.IsExternal() || v.IsTypedArray())
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": expected a device view {buf, off, len} for ", name, " (argument ", i, ")"));
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value bv = o.Get("buf"), ov = o.Get("off"), lv = o.Get("len");
  DevBuf* b = bv.IsExternal() ? bv.As<Napi::External<DevBuf>>().Data() : nullptr;
  if (!b || b->magic != kBufMagic || !ov.IsNumber() || !lv.IsNumber())
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": expected a device view {buf, off, len} for ", name, " (argument ", i,
                              "): buf must come from alloc, off and len must be numbers"));
  if (b->freed) throw KernelError(KernelError::Kind::Generic, str_cat(op, ": ", name, ": buffer was freed"));
  int64_t off = nonneg_int(ov.As<Napi::Number>().DoubleValue(), op, "view offset");
  int64_t len = nonneg_int(lv.As<Napi::Number>().DoubleValue(), op, "view length");
  if (off + len > b->n)
    throw KernelError(KernelError::Kind::Range, str_cat(op, ": ", name, " view [", off, ", ", off + len,
                                                        ") is outside its buffer of ", b->n, " elements"));
  DView r;
  r.p = static_cast<char*>(b->p) + off * dtype_bytes(b->dt);
  r.n = len;
  r.present = true;
  r.buf = b;
  r.off = off;
  r.dt = b->dt;
  return r;
}

float* f32v(const DView& v, const char* op, const char* name) {
  if (!v.present) return nullptr;
  if (v.dt != kF32)
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": ", name, " must be an fp32 buffer but holds ", dtype_name(v.dt),
                              " (parameters, gradients and statistics are fp32; only activations may be bf16)"));
  return static_cast<float*>(v.p);
}

DType act_dtype(const char* op, std::initializer_list<std::pair<const DView*, const char*>> views) {
  const std::pair<const DView*, const char*>* first = nullptr;
  for (const auto& v : views) {
    if (!v.first->present) continue;
    if (!first) {
      first = &v;
      continue;
    }
    if (v.first->dt != first->first->dt)
      throw KernelError(KernelError::Kind::Type,
                        str_cat(op, ": ", first->second, " is ", dtype_name(first->first->dt), " but ", v.second,
                                " is ", dtype_name(v.first->dt), "; the activation arguments of one call share a dtype"));
  }
  return first ? first->first->dt : kF32;
}

HostI32 i32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": expected an Int32Array for ", name, " (argument ", i, ")"));
  auto ta = v.As<Napi::TypedArray>();
  HostI32 r;
  r.p = reinterpret_cast<const int32_t*>(static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  r.n = static_cast<int64_t>(ta.ElementLength());
  return r;
}

Napi::Float32Array f32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": expected a Float32Array for ", name, " (argument ", i, ")"));
  return v.As<Napi::Float32Array>();
}

void need(const DView& v, int64_t required, const char* op, const char* name, const std::string& shape) {
  if (!v.present) return;
  if (v.n < required)
    throw KernelError(KernelError::Kind::Range,
                      str_cat(op, ": ", name, " has ", v.n, " elements but shape ", shape, " needs ", required));
}

void need_exact(const DView& v, int64_t required, const char* op, const char* name, const std::string& shape) {
  if (!v.present) return;
  if (v.n != required)
    throw KernelError(KernelError::Kind::Range,
                      str_cat(op, ": ", name, " has ", v.n, " elements but shape ", shape, " has ", required));
}

void need(const HostI32& v, int64_t required, const char* op, const char* name, const std::string& shape) {
  if (v.n < required)
    throw KernelError(KernelError::Kind::Range,
                      str_cat(op, ": ", name, " has ", v.n, " elements but shape ", shape, " needs ", required));
}

namespace {

// ---- device and cuBLAS --------------------------------------------------------------------------

Napi::Value DeviceCount(const Napi::CallbackInfo& info) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    n = 0;
  }
  return Napi::Number::New(info.Env(), n);
}

Napi::Value describe(Napi::Env env, CudaAddon& a) {
  cudaDeviceProp prop;
  GN_CUDA(cudaGetDeviceProperties(&prop, a.device));
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Napi::String::New(env, prop.name));
  o.Set("totalMemory", Napi::Number::New(env, static_cast<double>(prop.totalGlobalMem)));
  Napi::Array cc = Napi::Array::New(env, 2);
  cc.Set(0u, Napi::Number::New(env, prop.major));
  cc.Set(1u, Napi::Number::New(env, prop.minor));
  o.Set("computeCapability", cc);
  std::string blas = a.blas.path;
  int ver = 0;
  if (a.blas.get_version && a.blas.get_version(a.handle, &ver) == CUBLAS_STATUS_SUCCESS)
    blas += str_cat(" (version ", ver, ")");
  o.Set("cublas", Napi::String::New(env, blas));
  o.Set("cublasLt", Napi::Boolean::New(env, a.blas.lt_usable()));
  return o;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  const char* op = "init";
  CudaAddon& a = addon(info);
  int64_t dev = 0;
  if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) dev = dim(info, 0, op, "device");
  if (a.ready) {
    GN_CHECK(dev == a.device, op, ": already initialised on device ", a.device, "; one device per process (",
             "asked for device ", dev, ")");
    GN_CUDA(cudaSetDevice(a.device));
    return describe(info.Env(), a);
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    throw KernelError(
        KernelError::Kind::Generic,
        str_cat("gpt-native: no CUDA GPU is visible (cudaGetDeviceCount: ",
                e != cudaSuccess ? str_cat(cudaGetErrorName(e), ": ", cudaGetErrorString(e)) : std::string("0 devices"),
                "). Check that an NVIDIA GPU and driver are present (nvidia-smi lists the GPU), that "
                "CUDA_VISIBLE_DEVICES does not hide it, and that the driver is new enough for the CUDA ",
                CUDART_VERSION / 1000, ".", (CUDART_VERSION % 1000) / 10,
                " runtime this addon was built with (or rebuild it with `npm run build:cuda` against the local "
                "toolkit); otherwise use the CPU backend."));
  }
  GN_CHECK_RANGE(dev < count, op, ": device ", dev, " does not exist; ", count, " CUDA device(s) are visible");
  GN_CUDA(cudaSetDevice(static_cast<int>(dev)));
  CudaAddon fresh;  // filled, then moved into place only when everything succeeded
  fresh.device = static_cast<int>(dev);
  fresh.compute = a.compute;
  const char* sync = std::getenv("GPT_NATIVE_CUDA_SYNC");
  fresh.stream.sync_each = sync && *sync && std::string(sync) != "0";
  try {
    GN_CUDA(cudaStreamCreateWithFlags(&fresh.stream.s, cudaStreamNonBlocking));
    std::vector<std::string> tried;
    if (!load_cublas(&fresh.blas, &tried)) {
      std::string list;
      for (const auto& t : tried) list += "\n  " + t;
      throw KernelError(KernelError::Kind::Generic,
                        str_cat("gpt-native: cuBLAS could not be loaded; tried:", list,
                                "\nSet GPT_NATIVE_CUBLAS to the path of libcublas.so (or the folder holding it), "
                                "e.g. from the CUDA toolkit (…/lib64) or `pip install nvidia-cublas-cu12` "
                                "(…/site-packages/nvidia/cublas/lib), or add that folder to LD_LIBRARY_PATH."));
    }
    cublasStatus_t s = fresh.blas.create(&fresh.handle);
    GN_CHECK(s == CUBLAS_STATUS_SUCCESS, "gpt-native: cublasCreate_v2 failed (", fresh.blas.path, "): ",
             cublas_status_text(fresh.blas, s));
    s = fresh.blas.set_stream(fresh.handle, fresh.stream.s);
    GN_CHECK(s == CUBLAS_STATUS_SUCCESS, "gpt-native: cublasSetStream_v2 failed: ", cublas_status_text(fresh.blas, s));
    // default math: no TF32 for CUBLAS_COMPUTE_32F; bf16 tensor cores only via the compute type (setMathMode)
    s = fresh.blas.set_math_mode(fresh.handle, CUBLAS_DEFAULT_MATH);
    GN_CHECK(s == CUBLAS_STATUS_SUCCESS, "gpt-native: cublasSetMathMode failed: ", cublas_status_text(fresh.blas, s));
    // a 32 MiB workspace (what NVIDIA suggests for Hopper; the default may be smaller), so cuBLAS can choose
    // split-K and stream-K kernels; without the entry point or the memory, cuBLAS keeps its own
    if (fresh.blas.set_workspace && cudaMalloc(&fresh.blas_workspace, kBlasWorkspace) == cudaSuccess) {
      s = fresh.blas.set_workspace(fresh.handle, fresh.blas_workspace, kBlasWorkspace);
      GN_CHECK(s == CUBLAS_STATUS_SUCCESS, "gpt-native: cublasSetWorkspace_v2 failed: ",
               cublas_status_text(fresh.blas, s));
    } else {
      (void)cudaGetLastError();
      fresh.blas_workspace = nullptr;
    }
  } catch (...) {
    if (fresh.handle) fresh.blas.destroy(fresh.handle);
    if (fresh.blas_workspace) cudaFree(fresh.blas_workspace);
    if (fresh.stream.s) cudaStreamDestroy(fresh.stream.s);
    throw;
  }
  a.device = fresh.device;
  a.stream = fresh.stream;
  a.stream.reallocs = &a.scratch_reallocs;
  a.blas = fresh.blas;
  a.handle = fresh.handle;
  a.blas_workspace = fresh.blas_workspace;
  a.ready = true;
  return describe(info.Env(), a);
}

// setMathMode('fp32' | 'bf16') → the mode it replaces
Napi::Value SetMathMode(const Napi::CallbackInfo& info) {
  CudaAddon& a = addon(info);
  const char* prev = a.compute == CUBLAS_COMPUTE_32F_FAST_16BF ? "bf16" : "fp32";
  std::string m = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : std::string();
  if (m == "fp32") a.compute = CUBLAS_COMPUTE_32F;
  else if (m == "bf16") a.compute = CUBLAS_COMPUTE_32F_FAST_16BF;
  else
    throw KernelError(KernelError::Kind::Type, "setMathMode: expected 'fp32' or 'bf16'");
  return Napi::String::New(info.Env(), prev);
}

// A two-way setting: `flag` becomes true for info[0] == on and false for off (else a TypeError naming fn);
// returns the name of the old value.
Napi::Value switch_setting(const Napi::CallbackInfo& info, const char* fn, bool& flag, const char* on,
                           const char* off) {
  const std::string prev = flag ? on : off;
  const std::string m = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : std::string();
  if (m == on) flag = true;
  else if (m == off) flag = false;
  else
    throw KernelError(KernelError::Kind::Type, str_cat(fn, ": expected '", on, "' or '", off, "'"));
  return Napi::String::New(info.Env(), prev);
}

const char* attn_name(CudaAddon::Attn k) {
  switch (k) {
    case CudaAddon::Attn::kFused: return "fused";
    case CudaAddon::Attn::kFlash: return "flash";
    case CudaAddon::Attn::kFlash2: return "flash2";
    default: return "gemm";
  }
}
bool parse_attn(const std::string& m, CudaAddon::Attn* k) {
  for (auto c : {CudaAddon::Attn::kGemm, CudaAddon::Attn::kFused, CudaAddon::Attn::kFlash, CudaAddon::Attn::kFlash2})
    if (m == attn_name(c)) {
      *k = c;
      return true;
    }
  return false;
}

// setAttention('gemm' | 'fused' | 'flash' | 'flash2'): how attentionForward/attentionBackward run (cuBLAS GEMMs
// with row kernels; the fused kernels of attention.cu; the tensor-core kernels of attention_flash.cu where they
// apply: bf16, head size 32, 64, 80, 96 or 128 (the backward at 80-128 on sm_90+), compute capability 8+, else as
// 'gemm'; 'flash2': variants of them with 32 query rows a warp in the forward and dQ and cp.async double-buffered
// tiles in all three, built for sm_90+ (else run as 'flash'), not yet timed on a GPU);
// returns what it was. The default is 'flash' (the fastest on the H200, BENCHMARKS.md; fp32 and other head sizes
// run as 'gemm'), or $GPT_NATIVE_CUDA_ATTENTION.
Napi::Value SetAttention(const Napi::CallbackInfo& info) {
  CudaAddon& a = addon(info);
  const char* prev = attn_name(a.attn_kind);
  const std::string m = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : std::string();
  if (!parse_attn(m, &a.attn_kind))
    throw KernelError(KernelError::Kind::Type, "setAttention: expected 'gemm', 'fused', 'flash' or 'flash2'");
  return Napi::String::New(info.Env(), prev);
}

// setFlashBackward('split' | 'atomic'): how the flash backward gets dQ: from a kernel of its own, which recomputes
// the scores and dS ('split', the default: deterministic), or from the dK/dV kernel, which adds dS·K into fp32 sums
// with atomics (FlashAttention-2's way: one pass over the scores; the order of dQ's sums varies from run to run;
// built for sm_90+, elsewhere it runs as 'split'). Returns what it was; $GPT_NATIVE_CUDA_FLASH_BWD sets it at load.
Napi::Value SetFlashBackward(const Napi::CallbackInfo& info) {
  return switch_setting(info, "setFlashBackward", addon(info).flash_atomic_dq, "atomic", "split");
}

// attentionStats(): { flash, fallbacks }: attention calls (forward and backward count one each) that ran the
// flash kernels, and those that asked for them (setAttention('flash')) but took the cuBLAS or fused path
Napi::Value AttentionStats(const Napi::CallbackInfo& info) {
  CudaAddon& a = addon(info);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("flash", Napi::Number::New(info.Env(), static_cast<double>(a.flash_calls)));
  o.Set("fallbacks", Napi::Number::New(info.Env(), static_cast<double>(a.flash_fallbacks)));
  return o;
}

// setBiasEpilogue('cublaslt' | 'kernel'): how a linear layer adds its bias (cuBLASLt's GEMM epilogue, when cuBLASLt
// has an algorithm for the shape, or a pass after the GEMM); returns what it was. The default is 'cublaslt', or
// 'kernel' with GPT_NATIVE_CUDA_LT=0.
Napi::Value SetBiasEpilogue(const Napi::CallbackInfo& info) {
  return switch_setting(info, "setBiasEpilogue", addon(info).lt_bias, "cublaslt", "kernel");
}

// setGeluEpilogue('cublaslt' | 'kernel'): how the MLP's GELU runs (linearForward with geluOut, linearBackward with
// geluPre): in cuBLASLt's GELU_AUX_BIAS / DGELU epilogues, where cuBLASLt has an algorithm for the shape, or as
// a pass after the GEMM; returns what it was. The default is 'cublaslt', or 'kernel' with GPT_NATIVE_CUDA_LT_GELU=0.
Napi::Value SetGeluEpilogue(const Napi::CallbackInfo& info) {
  return switch_setting(info, "setGeluEpilogue", addon(info).lt_gelu, "cublaslt", "kernel");
}

// setGemm('cublaslt' | 'cublas'): which cuBLAS entry point runs the GEMMs that have no epilogue (cublasLtMatmul with
// its heuristic's algorithm, where it has one, else cublasGemmEx; or cublasGemmEx always); returns what it was. The
// default is 'cublaslt', or $GPT_NATIVE_CUDA_GEMM.
Napi::Value SetGemm(const Napi::CallbackInfo& info) {
  return switch_setting(info, "setGemm", addon(info).lt_matmul, "cublaslt", "cublas");
}

// setGemmAlgo('heuristic' | 'timed'): the algorithm cuBLASLt runs for a shape: its heuristic's first choice (the
// default), or the fastest of its first 8, each timed at the shape's first call that overwrites its output (an
// opt-in until a GPU run times it; gemm_lt.cc). Returns what it was; $GPT_NATIVE_CUDA_GEMM_ALGO sets it at load.
Napi::Value SetGemmAlgo(const Napi::CallbackInfo& info) {
  return switch_setting(info, "setGemmAlgo", addon(info).lt_timed, "timed", "heuristic");
}

// biasEpilogueStats(): { cublaslt, fallbacks, gelu, geluFallbacks }: GEMMs whose bias cuBLASLt's epilogue added,
// and GEMMs that asked for it but took the bias pass because cuBLASLt had no algorithm for the shape; the same
// for the GELU epilogues; matmul/matmulFallbacks: GEMMs without an epilogue that cuBLASLt ran / that took
// cublasGemmEx under setGemm('cublaslt'); timedPlans/timedAlgos: plans setGemmAlgo('timed') timed, and the
// algorithms it timed for them (counts since the addon loaded)
Napi::Value BiasEpilogueStats(const Napi::CallbackInfo& info) {
  CudaAddon& a = addon(info);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("cublaslt", Napi::Number::New(info.Env(), static_cast<double>(a.lt_calls)));
  o.Set("fallbacks", Napi::Number::New(info.Env(), static_cast<double>(a.lt_fallbacks)));
  o.Set("gelu", Napi::Number::New(info.Env(), static_cast<double>(a.lt_gelu_calls)));
  o.Set("geluFallbacks", Napi::Number::New(info.Env(), static_cast<double>(a.lt_gelu_fallbacks)));
  o.Set("matmul", Napi::Number::New(info.Env(), static_cast<double>(a.lt_plain_calls)));
  o.Set("matmulFallbacks", Napi::Number::New(info.Env(), static_cast<double>(a.lt_plain_fallbacks)));
  o.Set("timedPlans", Napi::Number::New(info.Env(), static_cast<double>(a.lt_timed_plans)));
  o.Set("timedAlgos", Napi::Number::New(info.Env(), static_cast<double>(a.lt_timed_algos)));
  return o;
}

// setAttentionTuning({ queryChunk?, scratchBytes? }): the cuBLAS attention path's query rows per chunk (0: chosen
// by shape, see attention_gemm.cc) and score scratch budget in bytes; returns the previous values. For
// benchmarks (`bench kernels --device cuda` times a few settings side by side); the defaults come from
// $GPT_NATIVE_CUDA_ATTN_QCHUNK and $GPT_NATIVE_CUDA_ATTN_SCRATCH.
Napi::Value SetAttentionTuning(const Napi::CallbackInfo& info) {
  CudaAddon& a = addon(info);
  Napi::Env env = info.Env();
  Napi::Object prev = Napi::Object::New(env);
  prev.Set("queryChunk", Napi::Number::New(env, static_cast<double>(a.attn_qchunk)));
  prev.Set("scratchBytes", Napi::Number::New(env, static_cast<double>(a.attn_scratch)));
  if (!info[0].IsObject())
    throw KernelError(KernelError::Kind::Type, "setAttentionTuning: expected an object { queryChunk?, scratchBytes? }");
  Napi::Object o = info[0].As<Napi::Object>();
  auto field = [&](const char* name, double lo) -> double {
    Napi::Value v = o.Get(name);
    if (v.IsUndefined()) return -1;
    const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= lo) || x != std::floor(x) || x > 9007199254740991.0)
      throw KernelError(KernelError::Kind::Type, str_cat("setAttentionTuning: ", name, " must be an integer >= ", lo));
    return x;
  };
  const double q = field("queryChunk", 0), sb = field("scratchBytes", 1);
  if (q >= 0) a.attn_qchunk = static_cast<int64_t>(q);
  if (sb >= 0) a.attn_scratch = static_cast<int64_t>(sb);
  return prev;
}

Napi::Value MemoryInfo(const Napi::CallbackInfo& info) {
  ready(info, "memoryInfo");
  size_t fr = 0, total = 0;
  GN_CUDA(cudaMemGetInfo(&fr, &total));
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("free", Napi::Number::New(info.Env(), static_cast<double>(fr)));
  o.Set("total", Napi::Number::New(info.Env(), static_cast<double>(total)));
  return o;
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  CudaAddon& a = ready(info, "synchronize");
  no_capture(a, "synchronize()");
  GN_CUDA(cudaStreamSynchronize(a.stream.s));
  return info.Env().Undefined();
}

// ---- memory -------------------------------------------------------------------------------------

// alloc(n, dtype = 'fp32'): n zero elements of fp32 or bf16
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  const char* op = "alloc";
  CudaAddon& a = ready(info, op);
  no_capture(a, "alloc()");
  int64_t n = dim(info, 0, op, "n");
  DType dt = kF32;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    const std::string d = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : std::string("?");
    if (d == "bf16") dt = kBF16;
    else if (d != "fp32")
      throw KernelError(KernelError::Kind::Type, "alloc: dtype must be 'fp32' or 'bf16' (argument 1)");
  }
  const int64_t bytes = n * dtype_bytes(dt);
  auto* b = new DevBuf();
  b->n = n;
  b->dt = dt;
  if (n > 0) {
    cudaError_t e = cudaMalloc(&b->p, static_cast<size_t>(bytes));
    if (e != cudaSuccess) {
      delete b;
      (void)cudaGetLastError();
      size_t fr = 0, total = 0;
      cudaMemGetInfo(&fr, &total);
      throw KernelError(KernelError::Kind::Range,
                        str_cat("gpt-native: cudaMalloc of ", bytes, " bytes failed (", cudaGetErrorString(e),
                                "; ", fr, " of ", total, " bytes free); use a smaller batch or model"));
    }
    cudaError_t z = cudaMemsetAsync(b->p, 0, static_cast<size_t>(bytes), a.stream.s);
    if (z != cudaSuccess) {
      cudaFree(b->p);
      delete b;
      GN_CUDA(z);
    }
  }
  Napi::Env env = info.Env();
  auto ext = Napi::External<DevBuf>::New(env, b, [bytes](Napi::Env env, DevBuf* d) {
    if (!d->freed && d->p) {
      cudaFree(d->p);  // errors ignored (may run at process teardown)
      Napi::MemoryManagement::AdjustExternalMemory(env, -bytes);
    }
    delete d;
  });
  if (bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return ext;
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  CudaAddon& a = ready(info, "free");
  no_capture(a, "free()");
  DevBuf* b = buffer_arg(info, 0, "free", "buf");
  if (b->p) {
    GN_CUDA(cudaStreamSynchronize(a.stream.s));  // queued work may still use it
    GN_CUDA(cudaFree(b->p));
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -b->n * dtype_bytes(b->dt));
  }
  b->p = nullptr;
  b->freed = true;
  return info.Env().Undefined();
}

Napi::Value BufferLength(const Napi::CallbackInfo& info) {
  DevBuf* b = buffer_arg(info, 0, "bufferLength", "buf");
  return Napi::Number::New(info.Env(), static_cast<double>(b->n));
}

Napi::Value BufferDtype(const Napi::CallbackInfo& info) {
  DevBuf* b = buffer_arg(info, 0, "bufferDtype", "buf");
  return Napi::String::New(info.Env(), dtype_name(b->dt));
}

// upload/download convert between the host's fp32 and a bf16 buffer (round to nearest even going down)
Napi::Value Upload(const Napi::CallbackInfo& info) {
  const char* op = "upload";
  CudaAddon& a = ready(info, op);
  DView dst = view(info, 0, op, "dst");
  Napi::Float32Array src = f32(info, 1, op, "src");
  GN_CHECK_RANGE(static_cast<int64_t>(src.ElementLength()) == dst.n, op, ": src has ", src.ElementLength(),
                 " elements but dst has ", dst.n);
  if (dst.dt == kBF16) {
    std::vector<uint16_t> h(static_cast<size_t>(dst.n));
    const float* s = src.Data();
    for (int64_t i = 0; i < dst.n; ++i) h[i] = f32_to_bf16_bits(s[i]);
    to_device(a, dst.p, h.data(), dst.n * 2);
  } else {
    to_device(a, dst.p, src.Data(), dst.n * sizeof(float));
  }
  return info.Env().Undefined();
}

Napi::Value Download(const Napi::CallbackInfo& info) {
  const char* op = "download";
  CudaAddon& a = ready(info, op);
  DView src = view(info, 0, op, "src");
  Napi::Float32Array dst = f32(info, 1, op, "dst");
  GN_CHECK_RANGE(static_cast<int64_t>(dst.ElementLength()) == src.n, op, ": dst has ", dst.ElementLength(),
                 " elements but src has ", src.n);
  if (src.dt == kBF16) {
    std::vector<uint16_t> h(static_cast<size_t>(src.n));
    to_host(a, h.data(), src.p, src.n * 2);
    float* d = dst.Data();
    for (int64_t i = 0; i < src.n; ++i) d[i] = bf16_bits_to_f32(h[i]);
  } else {
    to_host(a, dst.Data(), src.p, src.n * sizeof(float));
  }
  return info.Env().Undefined();
}

// copy(dst, src): same length; between dtypes it converts (the bf16 copy of the weights)
Napi::Value Copy(const Napi::CallbackInfo& info) {
  const char* op = "copy";
  CudaAddon& a = ready(info, op);
  DView dst = view(info, 0, op, "dst");
  DView src = view(info, 1, op, "src");
  GN_CHECK_RANGE(dst.n == src.n, op, ": dst has ", dst.n, " elements but src has ", src.n);
  if (dst.n == 0 || (dst.p == src.p && dst.dt == src.dt)) return info.Env().Undefined();
  GN_CHECK_RANGE(dst.buf != src.buf || dst.off + dst.n <= src.off || src.off + src.n <= dst.off, op,
                 ": dst [", dst.off, ", ", dst.off + dst.n, ") and src [", src.off, ", ", src.off + src.n,
                 ") overlap in the same buffer");
  if (dst.dt == src.dt)
    GN_CUDA(cudaMemcpyAsync(dst.p, src.p, dst.n * dtype_bytes(dst.dt), cudaMemcpyDeviceToDevice, a.stream.s));
  else
    convert(a.stream, dst.dt, dst.p, src.dt, src.p, dst.n);
  return info.Env().Undefined();
}

// copyRows(dst, dstStride, src, srcStride, rows, cols): rows × cols floats, one cudaMemcpy2DAsync
// (the KV cache append: rows of the (N, 3C) qkv into the (Tmax, C) cache).
Napi::Value CopyRows(const Napi::CallbackInfo& info) {
  const char* op = "copyRows";
  CudaAddon& a = ready(info, op);
  DView dst = view(info, 0, op, "dst");
  int64_t ds = dim(info, 1, op, "dstStride");
  DView src = view(info, 2, op, "src");
  int64_t ss = dim(info, 3, op, "srcStride");
  int64_t rows = dim(info, 4, op, "rows");
  int64_t cols = dim(info, 5, op, "cols");
  if (rows == 0 || cols == 0) return info.Env().Undefined();
  GN_CHECK_RANGE(cols <= ds && cols <= ss, op, ": cols ", cols, " exceeds a row stride (dst ", ds, ", src ", ss, ")");
  const int64_t need_d = (rows - 1) * ds + cols, need_s = (rows - 1) * ss + cols;
  GN_CHECK_RANGE(dst.n >= need_d && src.n >= need_s, op, ": ", rows, " rows of ", cols, " need ", need_d,
                 " elements of dst and ", need_s, " of src but the views hold ", dst.n, " and ", src.n);
  GN_CHECK(dst.dt == src.dt, op, ": dst is ", dtype_name(dst.dt), " but src is ", dtype_name(src.dt));
  const int64_t es = dtype_bytes(dst.dt);
  GN_CUDA(cudaMemcpy2DAsync(dst.p, ds * es, src.p, ss * es, cols * es, rows, cudaMemcpyDeviceToDevice, a.stream.s));
  return info.Env().Undefined();
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  const char* op = "fill";
  CudaAddon& a = ready(info, op);
  DView dst = view(info, 0, op, "dst");
  float value = static_cast<float>(num(info, 1, op, "value"));
  fill(a.stream, dst.dt, dst.p, value, dst.n);
  return info.Env().Undefined();
}

}  // namespace

void register_memory(Napi::Env env, Napi::Object exports) {
  auto def = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, guard_call, name, reinterpret_cast<void*>(fn)));
  };
  def("deviceCount", DeviceCount);
  def("init", Init);
  def("setMathMode", SetMathMode);
  def("setAttention", SetAttention);
  def("setAttentionTuning", SetAttentionTuning);
  def("attentionStats", AttentionStats);
  def("setFlashBackward", SetFlashBackward);
  def("setGemmAlgo", SetGemmAlgo);
  def("setGeluEpilogue", SetGeluEpilogue);
  def("setBiasEpilogue", SetBiasEpilogue);
  def("setGemm", SetGemm);
  def("biasEpilogueStats", BiasEpilogueStats);
  def("memoryInfo", MemoryInfo);
  def("synchronize", Synchronize);
  def("alloc", Alloc);
  def("free", Free);
  def("bufferLength", BufferLength);
  def("upload", Upload);
  def("download", Download);
  def("copy", Copy);
  def("copyRows", CopyRows);
  def("bufferDtype", BufferDtype);
  def("fill", Fill);
}

}  // namespace cuda
}  // namespace gn

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  auto* a = new gn::cuda::CudaAddon();
  const char* attn = std::getenv("GPT_NATIVE_CUDA_ATTENTION");
  if (attn && !gn::cuda::parse_attn(attn, &a->attn_kind))
    std::fprintf(stderr, "gpt-native: GPT_NATIVE_CUDA_ATTENTION=%s is not gemm, fused, flash or flash2; using flash\n", attn);
  const char* scratch = std::getenv("GPT_NATIVE_CUDA_ATTN_SCRATCH");  // tests use a small one to force chunking
  if (scratch && std::atoll(scratch) > 0) a->attn_scratch = std::atoll(scratch);
  // GPT_NATIVE_CUDA_LT / GPT_NATIVE_CUDA_LT_GELU: 1 (the default) or 0 (the pass after the GEMM);
  // GPT_NATIVE_CUDA_LN_FUSED: 1 (the default) or 0 (layernorm's backward in two passes)
  auto on_off = [](const char* name, bool* flag) {
    const char* v = std::getenv(name);
    if (!v) return;
    if (std::string(v) == "1") *flag = true;
    else if (std::string(v) == "0") *flag = false;
    else std::fprintf(stderr, "gpt-native: %s=%s is not 0 or 1; ignored\n", name, v);
  };
  on_off("GPT_NATIVE_CUDA_LT", &a->lt_bias);
  on_off("GPT_NATIVE_CUDA_LT_GELU", &a->lt_gelu);
  on_off("GPT_NATIVE_CUDA_LN_FUSED", &a->ln_fused);
  on_off("GPT_NATIVE_CUDA_GRAPHS", &a->graphs);
  const char* fb = std::getenv("GPT_NATIVE_CUDA_FLASH_BWD");
  if (fb && std::string(fb) == "atomic") a->flash_atomic_dq = true;
  else if (fb && std::string(fb) != "split")
    std::fprintf(stderr, "gpt-native: GPT_NATIVE_CUDA_FLASH_BWD=%s is not split or atomic; using split\n", fb);
  const char* algo = std::getenv("GPT_NATIVE_CUDA_GEMM_ALGO");
  if (algo && std::string(algo) == "timed") a->lt_timed = true;
  else if (algo && std::string(algo) != "heuristic")
    std::fprintf(stderr, "gpt-native: GPT_NATIVE_CUDA_GEMM_ALGO=%s is not heuristic or timed; using heuristic\n", algo);
  const char* gemm = std::getenv("GPT_NATIVE_CUDA_GEMM");
  if (gemm && std::string(gemm) == "cublas") a->lt_matmul = false;
  else if (gemm && std::string(gemm) != "cublaslt")
    std::fprintf(stderr, "gpt-native: GPT_NATIVE_CUDA_GEMM=%s is not cublaslt or cublas; using cublaslt\n", gemm);
  const char* qchunk = std::getenv("GPT_NATIVE_CUDA_ATTN_QCHUNK");  // tests use a small one to force query chunks
  if (qchunk && std::atoll(qchunk) > 0) a->attn_qchunk = std::atoll(qchunk);
  env.SetInstanceData(a);
  gn::cuda::register_memory(env, exports);
  gn::cuda::register_ops(env, exports);
  gn::cuda::register_graphs(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

NODE_API_MODULE(gpt_native_cuda, InitModule)
