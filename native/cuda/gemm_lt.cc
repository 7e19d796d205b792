// GEMMs through cuBLASLt. Plain ones (gemm_plain_lt; on unless setGemm('cublas') or GPT_NATIVE_CUDA_GEMM=cublas)
// run cublasLtMatmul with the algorithm its heuristic picks for the shape and the operands' alignment, where
// cublasGemmEx would otherwise run. The linear layers' C = A·B + bias runs in one kernel, the bias added by
// cuBLASLt's epilogue (CUBLASLT_EPILOGUE_BIAS) instead of a separate pass over the output (bias_rows). On by
// default (faster on the H200, BENCHMARKS.md); setBiasEpilogue('kernel') or GPT_NATIVE_CUDA_LT=0 turns it off;
// scripts/gpu-check.sh times both.
//
// Same row-major → column-major mapping as gemm_dev (ops.cc): the row-major C (M, N) = op(A)·op(B) is the
// column-major Cᵀ (N×M) = op(B)ᵀ·op(A)ᵀ, so cuBLASLt's first operand is our B (stored N×K, or K×N when
// transposed, leading dimension ldb), its second our A, and D = C is N×M with leading dimension ldc. The bias
// runs along D's rows (our output columns), as the epilogue wants: one value per row of D, broadcast over its
// columns. cuBLASLt takes the bias in D's dtype, so the fp32 bias is first converted into a scratch vector
// (256-byte aligned; N values: a negligible launch next to the N·M pass it replaces).
//
// The GELU epilogues (on by default; setGeluEpilogue('kernel') or GPT_NATIVE_CUDA_LT_GELU=0 turns them off) fuse
// an MLP's activation the same way: GELU_AUX_BIAS writes D = GELU(A·B + bias) and the GELU input A·B + bias to
// the auxiliary matrix (what the backward needs), and DGELU multiplies a product by GELU'(aux) (the input
// gradient of the MLP's second layer, taken to the GELU input in the same kernel). cuBLASLt's GELU is the tanh
// form, as ours (gelu.cu); the auxiliary matrix has D's layout and type, its leading dimension a multiple of 8
// (cuBLASLt's rule: otherwise the unfused path runs).
//
// Plans (descriptors, layouts and the heuristic's algorithm) are cached per shape, dtype, epilogue and operand
// alignment. setGemmAlgo('timed') (or GPT_NATIVE_CUDA_GEMM_ALGO=timed; an opt-in until a GPU run times it) asks the
// heuristic for up to 8 algorithms and, at a plan's first call, times each on that call's own operands (one run to
// warm up, then 3 between CUDA events) and keeps the fastest; the call then runs as usual. Only calls that
// overwrite their output (beta = 0) are timed, so the extra runs change nothing; a plan first met accumulating
// keeps the heuristic's first choice. When cuBLASLt is missing or its heuristic has nothing for a shape, these functions return false and
// the caller takes the cublasGemmEx path with separate bias and GELU passes; an error while running a plan is an
// Error like any cuBLAS error.
#include <climits>
#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "cuda/context.h"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

constexpr size_t kWorkspace = size_t(32) << 20;  // what NVIDIA suggests for Hopper
constexpr int kTimedAlgos = 8;                   // setGemmAlgo('timed'): candidates asked of the heuristic

uint32_t alignment(const void* p) {
  const uintptr_t u = reinterpret_cast<uintptr_t>(p);
  if (u == 0) return 256;
  const uintptr_t low = u & (~u + 1);
  return low >= 256 ? 256u : static_cast<uint32_t>(low);
}

}  // namespace

struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulAlgo_t algo{};
  std::vector<cublasLtMatmulAlgo_t> untimed;  // setGemmAlgo('timed'): the heuristic's candidates, until the first call
  bool ok = false;
};

// (transA, transB, M, N, K, lda, ldb, ldc, A/B dtype, C dtype, compute, alignment of A, B, C, epilogue, alignment
// of the auxiliary matrix (its leading dimension is ldc), setGemmAlgo('timed'))
using LtKey = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int, uint32_t,
                         uint32_t, uint32_t, uint32_t, uint32_t, bool>;

struct LtState {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  Scratch bias;
  std::map<LtKey, LtPlan> plans;
  bool broken = false;  // no cuBLASLt handle could be made: never try again
};

namespace {

constexpr size_t kMaxPlans = 512;  // then the cache starts over (shapes that vary without end, e.g. prompt lengths)

void destroy_plans(CudaAddon& a, LtState* s) {
  for (auto& kv : s->plans) {
    LtPlan& p = kv.second;
    if (p.desc) a.blas.lt_desc_destroy(p.desc);
    if (p.la) a.blas.lt_layout_destroy(p.la);
    if (p.lb) a.blas.lt_layout_destroy(p.lb);
    if (p.ld) a.blas.lt_layout_destroy(p.ld);
  }
  s->plans.clear();
}

}  // namespace

void lt_release(CudaAddon& a) {
  LtState* s = a.lt;
  if (!s) return;
  destroy_plans(a, s);
  if (s->handle) a.blas.lt_destroy(s->handle);
  if (s->workspace) cudaFree(s->workspace);  // errors ignored (teardown)
  s->bias.release();
  delete s;
  a.lt = nullptr;
}

namespace {

LtState* state(CudaAddon& a) {
  if (!a.lt) a.lt = new LtState();
  LtState* s = a.lt;
  if (s->broken) return nullptr;
  if (!s->handle) {
    if (a.blas.lt_create(&s->handle) != CUBLAS_STATUS_SUCCESS) {
      s->handle = nullptr;
      s->broken = true;
      return nullptr;
    }
  }
  if (!s->workspace && a.stream.capturing) return nullptr;  // no allocation during a graph capture: cublasGemmEx
  if (!s->workspace && cudaMalloc(&s->workspace, kWorkspace) != cudaSuccess) {
    (void)cudaGetLastError();  // out of memory now: the bias pass this time, another try next time
    s->workspace = nullptr;
    return nullptr;
  }
  return s;
}

bool has_bias(uint32_t epi) { return (epi & CUBLASLT_EPILOGUE_BIAS) != 0; }
bool has_aux(uint32_t epi) { return epi == CUBLASLT_EPILOGUE_GELU_AUX || epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS ||
                                    epi == CUBLASLT_EPILOGUE_DGELU; }

// Descriptors and the heuristic's choice for one key; plan.ok == false when cuBLASLt has no algorithm for it.
// aux: the call's auxiliary matrix, set before the heuristic (which reads its alignment from the pointer).
LtPlan make_plan(CudaAddon& a, const LtKey& k, const void* aux) {
  const auto& [ta, tb, M, N, K, lda, ldb, ldc, in_t, out_t, compute, al_a, al_b, al_c, epi, al_aux, timed] = k;
  (void)al_aux;
  const CublasApi& b = a.blas;
  LtPlan p;
  bool good = b.lt_desc_create(&p.desc, compute, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS;
  if (!good) p.desc = nullptr;
  const int32_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N, bias_t = out_t;
  const int64_t aux_ld = ldc;
  good = good && b.lt_desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa) == CUBLAS_STATUS_SUCCESS &&
         b.lt_desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb) == CUBLAS_STATUS_SUCCESS &&
         b.lt_desc_set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS &&
         (!has_bias(epi) ||
          b.lt_desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_t, sizeof bias_t) == CUBLAS_STATUS_SUCCESS) &&
         (!has_aux(epi) ||
          (b.lt_desc_set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux) ==
               CUBLAS_STATUS_SUCCESS &&
           b.lt_desc_set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld) ==
               CUBLAS_STATUS_SUCCESS));
  // cuBLASLt's A is our B: N×K as stored (K×N when transposed); its B is our A: K×M (M×K); D is N×M
  auto layout = [&](cublasLtMatrixLayout_t* l, int type, int64_t rows, int64_t cols, int64_t ldx) {
    if (!good) return;
    good = b.lt_layout_create(l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ldx) ==
           CUBLAS_STATUS_SUCCESS;
    if (!good) *l = nullptr;
  };
  layout(&p.la, in_t, tb ? K : N, tb ? N : K, ldb);
  layout(&p.lb, in_t, ta ? M : K, ta ? K : M, lda);
  layout(&p.ld, out_t, N, M, ldc);
  cublasLtMatmulPreference_t pref = nullptr;
  if (good && b.lt_pref_create(&pref) == CUBLAS_STATUS_SUCCESS) {
    const uint64_t ws = kWorkspace;
    good = b.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) == CUBLAS_STATUS_SUCCESS &&
           b.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_b, sizeof al_b) ==
               CUBLAS_STATUS_SUCCESS &&
           b.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_a, sizeof al_a) ==
               CUBLAS_STATUS_SUCCESS &&
           b.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c) ==
               CUBLAS_STATUS_SUCCESS &&
           b.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c) ==
               CUBLAS_STATUS_SUCCESS;
    // the bias pointer is not set yet (it is per call); the heuristic would read its alignment from it, and the
    // bias always sits at the start of a cudaMalloc'd scratch: 256-byte aligned, the default it assumes
    cublasLtMatmulHeuristicResult_t r[kTimedAlgos] = {};
    int found = 0;
    good = good &&
           b.lt_heuristic(a.lt->handle, p.desc, p.la, p.lb, p.ld, p.ld, pref, timed ? kTimedAlgos : 1, r, &found) ==
               CUBLAS_STATUS_SUCCESS;
    std::vector<cublasLtMatmulAlgo_t> usable;
    for (int i = 0; good && i < found && i < kTimedAlgos; ++i)
      if (r[i].state == CUBLAS_STATUS_SUCCESS && r[i].workspaceSize <= kWorkspace) usable.push_back(r[i].algo);
    good = good && !usable.empty();
    if (good) p.algo = usable[0];
    if (good && usable.size() > 1) p.untimed = std::move(usable);
    b.lt_pref_destroy(pref);
  } else {
    good = false;
  }
  p.ok = good;
  return p;
}

}  // namespace

namespace {

// setGemmAlgo('timed'): runs each of p.untimed on this call's operands (beta = 0: each run writes the same output),
// one run to warm up and 3 between events, and makes the fastest p.algo. A candidate that fails to run is passed
// over; the heuristic's first choice stays where none could be timed.
void time_algos(CudaAddon& a, LtState* s, LtPlan& p, float alpha, const void* A, const void* B, void* C) {
  const float beta = 0.0f;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
    (void)cudaGetLastError();
    if (e0) cudaEventDestroy(e0);
    return;
  }
  float best = 0.0f;
  for (size_t i = 0; i < p.untimed.size(); ++i) {
    auto run = [&]() {
      return a.blas.lt_matmul(s->handle, p.desc, &alpha, B, p.la, A, p.lb, &beta, C, p.ld, C, p.ld, &p.untimed[i],
                              s->workspace, kWorkspace, a.stream.s) == CUBLAS_STATUS_SUCCESS;
    };
    bool ok = run() && cudaEventRecord(e0, a.stream.s) == cudaSuccess;
    for (int r = 0; ok && r < 3; ++r) ok = run();
    float ms = 0.0f;
    ok = ok && cudaEventRecord(e1, a.stream.s) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
         cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
    (void)cudaGetLastError();  // (a candidate that could not run leaves nothing behind)
    ++a.lt_timed_algos;
    if (ok && (best == 0.0f || ms < best)) {
      best = ms;
      p.algo = p.untimed[i];
    }
  }
  ++a.lt_timed_plans;
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

// D = C (M, N, row-major as gemm_dev) = epilogue(alpha·op(A)·op(B)) + beta·C through cuBLASLt (C read in place when
// beta != 0); false when it cannot
bool lt_gemm(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
             const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* C, DType cdt, int64_t ldc,
             const float* bias, uint32_t epi, void* aux, int compute, int64_t* calls, int64_t* fallbacks,
             const char* off, float beta = 0.0f) {
  if (!a.blas.lt_usable() || M == 0 || N == 0 || K == 0) return false;
  if (has_aux(epi) && ldc % 8 != 0) {  // cuBLASLt wants the auxiliary matrix's leading dimension divisible by 8
    ++*fallbacks;
    return false;
  }
  LtState* s = state(a);
  if (!s) return false;
  const LtKey key{ta, tb, M, N, K, lda, ldb, ldc, cuda_data_type(in_dt), cuda_data_type(cdt), compute,
                  alignment(A), alignment(B), alignment(C), epi, has_aux(epi) ? alignment(aux) : 0u, a.lt_timed};
  auto it = s->plans.find(key);
  if (it == s->plans.end()) {
    if (s->plans.size() >= kMaxPlans) destroy_plans(a, s);
    it = s->plans.emplace(key, make_plan(a, key, aux)).first;
  }
  LtPlan& p = it->second;
  if (!p.ok) {
    ++*fallbacks;
    return false;
  }
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  if (has_bias(epi)) {
    void* bias_d = s->bias.get(a.stream, static_cast<size_t>(N) * dtype_bytes(cdt));
    convert(a.stream, cdt, bias_d, kF32, bias, N);
    const void* bias_arg = bias_d;
    st = a.blas.lt_desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_arg, sizeof bias_arg);
  }
  if (st == CUBLAS_STATUS_SUCCESS && has_aux(epi))
    st = a.blas.lt_desc_set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux);
  // (not while a graph is being captured: timing synchronises; a later call outside one times the plan)
  if (st == CUBLAS_STATUS_SUCCESS && !p.untimed.empty() && !a.stream.capturing) {
    if (beta == 0.0f) time_algos(a, s, p, alpha, A, B, C);
    p.untimed.clear();
  }
  if (st == CUBLAS_STATUS_SUCCESS)
    st = a.blas.lt_matmul(s->handle, p.desc, &alpha, B, p.la, A, p.lb, &beta, C, p.ld, C, p.ld, &p.algo, s->workspace,
                          kWorkspace, a.stream.s);
  GN_CHECK(st == CUBLAS_STATUS_SUCCESS, "gpt-native: cuBLAS error in cublasLtMatmul (", op, " with epilogue ", epi,
           ": transA=", ta, " transB=", tb, " M=", M, " N=", N, " K=", K, " lda=", lda, " ldb=", ldb, " ldc=", ldc,
           " operands ", dtype_name(in_dt), " -> ", dtype_name(cdt), ") at ", __FILE__, ":", __LINE__, ": ",
           cublas_status_text(a.blas, st), ". ", off, " avoids cuBLASLt");
  if (a.stream.sync_each) GN_CUDA(cudaStreamSynchronize(a.stream.s));
  ++*calls;
  return true;
}

}  // namespace

bool gemm_bias_lt(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* C, DType cdt, int64_t ldc,
                  const float* bias, int compute) {
  if (!a.lt_bias) return false;
  return lt_gemm(a, op, ta, tb, M, N, K, alpha, A, in_dt, lda, B, ldb, C, cdt, ldc, bias, CUBLASLT_EPILOGUE_BIAS,
                 nullptr, compute, &a.lt_calls, &a.lt_fallbacks, "setBiasEpilogue('kernel') (or GPT_NATIVE_CUDA_LT=0)");
}

bool gemm_gelu_lt(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* D, DType cdt, int64_t ldc,
                  const float* bias, void* pre, int compute) {
  if (!a.lt_gelu) return false;
  return lt_gemm(a, op, ta, tb, M, N, K, alpha, A, in_dt, lda, B, ldb, D, cdt, ldc, bias,
                 bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX, pre, compute, &a.lt_gelu_calls,
                 &a.lt_gelu_fallbacks, "setGeluEpilogue('kernel') (or GPT_NATIVE_CUDA_LT_GELU=0)");
}

bool gemm_dgelu_lt(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* C, DType cdt,
                   int64_t ldc, const void* pre, int compute) {
  if (!a.lt_gelu) return false;
  return lt_gemm(a, op, ta, tb, M, N, K, alpha, A, in_dt, lda, B, ldb, C, cdt, ldc, nullptr, CUBLASLT_EPILOGUE_DGELU,
                 const_cast<void*>(pre), compute, &a.lt_gelu_calls, &a.lt_gelu_fallbacks,
                 "setGeluEpilogue('kernel') (or GPT_NATIVE_CUDA_LT_GELU=0)");
}

bool gemm_plain_lt(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const void* A, DType in_dt, int64_t lda, const void* B, int64_t ldb, void* C, DType cdt,
                   int64_t ldc, bool acc, int compute) {
  if (!a.lt_matmul) return false;
  return lt_gemm(a, op, ta, tb, M, N, K, alpha, A, in_dt, lda, B, ldb, C, cdt, ldc, nullptr, CUBLASLT_EPILOGUE_DEFAULT,
                 nullptr, compute, &a.lt_plain_calls, &a.lt_plain_fallbacks,
                 "setGemm('cublas') (or GPT_NATIVE_CUDA_GEMM=cublas)", acc ? 1.0f : 0.0f);
}

}  // namespace cuda
}  // namespace gn
