// Per-instance state of the CUDA addon (Napi instance data: no C++ statics hold state) and the argument
// helpers of its N-API layer: device views {buf, off, len}, host typed arrays, numbers, length checks.
// Messages follow native/napi/args.h word for word, so a shape error reads the same on both backends.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "common.h"
#include "cuda/check.h"
#include "cuda/cublas.h"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

// Device scratch that only grows (ids/targets uploads, attention's D, sumsq partials). Growing
// synchronises the stream first, so work still queued on the old allocation finishes before it is freed.
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  void* get(const Stream& st, size_t need);
  void release();
};

struct LtState;  // gemm_lt.cc

// Page-locked host memory through which host copies of up to kMax bytes go (addon.cc: to_device, to_host): the
// device reads and writes it at full speed, and an upload need not wait for the device (its bytes are copied here at
// once). Uploads take successive regions; `done` is recorded after each, and the regions are used again only after
// it (or a synchronising download) shows the device has read them all.
struct HostStage {
  static constexpr size_t kMax = size_t(8) << 20;
  char* p = nullptr;
  size_t bytes = 0, used = 0;
  cudaEvent_t done = nullptr;
  void release();
};

struct CudaAddon {
  bool ready = false;  // init() succeeded
  int device = -1;
  Stream stream;
  CublasApi blas;
  cublasHandle_t handle = nullptr;
  void* blas_workspace = nullptr;  // 32 MiB given to cuBLAS (cublasSetWorkspace_v2), when the library has it
  int compute = CUBLAS_COMPUTE_32F;  // setMathMode
  // how attention runs (setAttention, $GPT_NATIVE_CUDA_ATTENTION): cuBLAS + row kernels, the fused kernels of
  // attention.cu, or the tensor-core kernels of attention_flash.cu where they apply (else as with kGemm)
  enum class Attn { kGemm, kFused, kFlash, kFlash2 };
  Attn attn_kind = Attn::kFlash;  // measured fastest for bf16 on the H200 (BENCHMARKS.md); else as kGemm
  // the flash backward's dQ: from its own kernel, which recomputes the scores ('split', the default), or from the
  // dK/dV kernel through fp32 atomics (setFlashBackward('atomic'), $GPT_NATIVE_CUDA_FLASH_BWD; sm_90+, else split)
  bool flash_atomic_dq = false;
  int64_t flash_calls = 0, flash_fallbacks = 0;  // attention calls that ran flash / that asked for it and could not
  int64_t attn_scratch = int64_t(256) << 20;  // score scratch bytes a chunk of heads may use ($GPT_NATIVE_CUDA_ATTN_SCRATCH)
  int64_t attn_qchunk = 0;  // query rows per chunk of cuBLAS attention, 0: chosen by shape ($GPT_NATIVE_CUDA_ATTN_QCHUNK)
  bool lt_bias = true;  // linear biases through cuBLASLt's epilogue (setBiasEpilogue, $GPT_NATIVE_CUDA_LT)
  LtState* lt = nullptr;  // cuBLASLt handle, workspace and plans, made on first use
  int64_t lt_calls = 0, lt_fallbacks = 0;  // biases added by cuBLASLt / by the pass after a shape it had nothing for
  bool lt_gelu = true;  // MLP activations through cuBLASLt's GELU epilogues (setGeluEpilogue, $GPT_NATIVE_CUDA_LT_GELU)
  int64_t lt_gelu_calls = 0, lt_gelu_fallbacks = 0;  // GEMMs with a GELU epilogue / that took the separate pass
  // GEMMs without an epilogue through cublasLtMatmul and its heuristic, else cublasGemmEx (setGemm,
  // $GPT_NATIVE_CUDA_GEMM); BENCHMARKS.md has the two side by side
  int64_t lt_plain_calls = 0, lt_plain_fallbacks = 0;  // GEMMs cuBLASLt ran / that took cublasGemmEx instead
  bool lt_matmul = true;
  // cuBLASLt's algorithm: the heuristic's first choice, or the fastest of its 8 first, timed at a plan's first call
  // (setGemmAlgo('timed'), $GPT_NATIVE_CUDA_GEMM_ALGO); plans timed so far, and the algorithms they timed
  bool lt_timed = false;
  int64_t lt_timed_plans = 0, lt_timed_algos = 0;
  // layernorm's backward in one pass where the rows allow it, else dinp and the parameter sums apart
  // ($GPT_NATIVE_CUDA_LN_FUSED: 1, the default, or 0; bench kernels times both)
  bool ln_fused = true;
  Scratch ints, floats, doubles, attn;
  HostStage stage;
  // scratch reallocations so far (stream.reallocs points here): a graph captured before one is stale (graph.cc)
  uint64_t scratch_reallocs = 0;
  int64_t graphs_captured = 0, graphs_launched = 0, graphs_stale = 0;  // graphStats()
  // CUDA graphs for the KV decoder's steady state ($GPT_NATIVE_CUDA_GRAPHS=0 or setGraphs(false): every step runs
  // its kernels one launch at a time, as the graphs' comparison in bench generate does)
  bool graphs = true;
  ~CudaAddon();
};

// The KV decoder's decode slots (decode.cu): device int32 [pos, id_0, …, id_{rows-1}]; pos < positions (checked
// when written by setDecodeSlots)
constexpr uint64_t kSlotsMagic = 0x676e2d736c6f7421ULL;  // "gn-slot!"
struct DecodeSlots {
  uint64_t magic = kSlotsMagic;
  int32_t* d = nullptr;
  int64_t rows = 0, positions = 0;
  bool freed = false;
  void release();  // frees d (errors ignored)
};
// the slots argument i (an External from decodeSlots); throws naming op otherwise
DecodeSlots* slots_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
DecodeSlots* slots_of(Napi::Value v, const char* op, const char* name);
// throws when a graph is being captured: what (a host copy, a synchronisation, an allocation) would wait for the device
void no_capture(const CudaAddon& a, const char* what);

CudaAddon& addon(const Napi::CallbackInfo& info);
// the addon after init(); throws an Error naming op otherwise
CudaAddon& ready(const Napi::CallbackInfo& info, const char* op);

// A device allocation, owned by a JS External. p becomes null when free() is called.
constexpr uint64_t kBufMagic = 0x676e2d6375646121ULL;  // "gn-cuda!"
struct DevBuf {
  uint64_t magic = kBufMagic;
  void* p = nullptr;
  int64_t n = 0;  // elements
  DType dt = kF32;
  bool freed = false;
};

// A checked window of a DevBuf. present == false for an omitted nullable argument.
struct DView {
  void* p = nullptr;  // first element
  int64_t n = 0;      // elements
  bool present = false;
  DevBuf* buf = nullptr;
  int64_t off = 0;
  DType dt = kF32;
};

// The fp32 pointer of v (nullptr when an optional argument is absent); a TypeError naming op and name when v
// holds bf16 (parameters, gradients, moments and statistics are fp32).
float* f32v(const DView& v, const char* op, const char* name);
// The dtype shared by the activation arguments of an op (those present); a TypeError when they differ.
DType act_dtype(const char* op, std::initializer_list<std::pair<const DView*, const char*>> views);

struct HostI32 {
  const int32_t* p = nullptr;
  int64_t n = 0;
};

DevBuf* buffer_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
DView view(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, bool nullable = false);
HostI32 i32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
Napi::Float32Array f32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
double num(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
int64_t dim(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
inline bool flag(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

void need(const DView& v, int64_t required, const char* op, const char* name, const std::string& shape);
void need_exact(const DView& v, int64_t required, const char* op, const char* name, const std::string& shape);
void need(const HostI32& v, int64_t required, const char* op, const char* name, const std::string& shape);

// host → device and device → host copies on the addon's stream; both wait for completion (the host side
// is JS memory that may move or be collected once the call returns)
void to_device(CudaAddon& a, void* dst, const void* src, size_t bytes);
void to_host(CudaAddon& a, void* dst, const void* src, size_t bytes);

// attention through cuBLAS strided-batched GEMMs and the row kernels of attention_softmax.cu (attention_gemm.cc);
// same contract as attention_forward/attention_backward of kernels.h. Usable when cuBLAS has
// cublasGemmStridedBatchedEx.
bool attention_gemm_usable(const CudaAddon& a);
void attention_forward_gemm(CudaAddon& a, DType dt, void* out, float* lse, const void* q, const void* k, const void* v,
                            const AttnDims& d);
void attention_backward_gemm(CudaAddon& a, DType dt, void* dq, void* dk, void* dv, const void* dout, const void* q,
                             const void* k, const void* v, const float* lse, const AttnDims& d);

// C (M, N) = alpha·op(A)·op(B) + bias through cuBLASLt's bias epilogue (gemm_lt.cc), row-major as gemm_dev;
// false (nothing done) when the epilogue is off, cuBLASLt is missing, or it has no algorithm for the shape.
bool gemm_bias_lt(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* C, DType cdt, int64_t ldc,
                  const float* bias, int compute);
// D (M, N) = GELU(alpha·op(A)·op(B) + bias) with pre (M, N, row stride ldc, D's dtype) = its GELU input, through
// cuBLASLt's GELU_AUX(_BIAS) epilogue; false (nothing done) when the GELU epilogue is off or cuBLASLt cannot
bool gemm_gelu_lt(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* D, DType cdt, int64_t ldc,
                  const float* bias, void* pre, int compute);
// C (M, N) = alpha·op(A)·op(B) ∘ GELU'(pre) (pre: M×N, row stride ldc, C's dtype) through cuBLASLt's DGELU
// epilogue; false as gemm_gelu_lt
bool gemm_dgelu_lt(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* C, DType cdt,
                   int64_t ldc, const void* pre, int compute);
// C (M, N) = alpha·op(A)·op(B) (+ C when acc) through cublasLtMatmul with the algorithm its heuristic picks, row-major
// as gemm_dev; C may be fp32 for bf16 operands. false (nothing done) when setGemm('cublas') is on, cuBLASLt is
// missing, or it has no algorithm for the shape: the caller runs cublasGemmEx.
bool gemm_plain_lt(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* C, DType cdt,
                   int64_t ldc, bool acc, int compute);
// frees the cuBLASLt state (handle, workspace, plans); a.lt becomes null
void lt_release(CudaAddon& a);

void register_memory(Napi::Env env, Napi::Object exports);
void register_graphs(Napi::Env env, Napi::Object exports);
void register_ops(Napi::Env env, Napi::Object exports);

}  // namespace cuda
}  // namespace gn
