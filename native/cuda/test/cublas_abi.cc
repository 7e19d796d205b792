// Compile-time check of native/cuda/cublas.h against NVIDIA's own cublas_api.h (run by scripts/check-cuda.sh
// when a copy of that header can be found: the toolkit's, or the nvidia-cublas wheel's). cublas.h writes the
// few prototypes and enum values it needs by hand so that the addon builds without cuBLAS; this file fails to
// compile if any of them (cuBLAS and cuBLASLt) differs from the real API: an enum value, a parameter count, or a parameter type
// (enums and int are the same at the ABI level; cublasHandle_t is an opaque pointer either way).
#include <cublasLt.h>
#include <cublas_api.h>

#include <cstddef>
#include <type_traits>

#include "cuda/cublas.h"

namespace ours = gn::cuda;

static_assert(ours::CUBLAS_OP_N == CUBLAS_OP_N && ours::CUBLAS_OP_T == CUBLAS_OP_T, "cublasOperation_t");
static_assert(ours::CUBLAS_COMPUTE_32F == CUBLAS_COMPUTE_32F, "CUBLAS_COMPUTE_32F");
static_assert(ours::CUBLAS_COMPUTE_32F_FAST_16BF == CUBLAS_COMPUTE_32F_FAST_16BF, "CUBLAS_COMPUTE_32F_FAST_16BF");
static_assert(ours::CUBLAS_DEFAULT_MATH == CUBLAS_DEFAULT_MATH, "CUBLAS_DEFAULT_MATH");
static_assert(ours::CUBLAS_GEMM_DEFAULT == CUBLAS_GEMM_DEFAULT, "CUBLAS_GEMM_DEFAULT");
static_assert(ours::CUBLAS_STATUS_SUCCESS == CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS");
static_assert(CUDA_R_32F == 0 && CUDA_R_16BF == 14, "cudaDataType");
// the names cublas_status_text gives to status codes
static_assert(CUBLAS_STATUS_NOT_INITIALIZED == 1 && CUBLAS_STATUS_ALLOC_FAILED == 3 &&
                  CUBLAS_STATUS_INVALID_VALUE == 7 && CUBLAS_STATUS_ARCH_MISMATCH == 8 &&
                  CUBLAS_STATUS_MAPPING_ERROR == 11 && CUBLAS_STATUS_EXECUTION_FAILED == 13 &&
                  CUBLAS_STATUS_INTERNAL_ERROR == 14 && CUBLAS_STATUS_NOT_SUPPORTED == 15,
              "cublasStatus_t");

// cuBLASLt
static_assert(ours::CUBLASLT_MATMUL_DESC_TRANSA == CUBLASLT_MATMUL_DESC_TRANSA, "CUBLASLT_MATMUL_DESC_TRANSA");
static_assert(ours::CUBLASLT_MATMUL_DESC_TRANSB == CUBLASLT_MATMUL_DESC_TRANSB, "CUBLASLT_MATMUL_DESC_TRANSB");
static_assert(ours::CUBLASLT_MATMUL_DESC_EPILOGUE == CUBLASLT_MATMUL_DESC_EPILOGUE, "CUBLASLT_MATMUL_DESC_EPILOGUE");
static_assert(ours::CUBLASLT_MATMUL_DESC_BIAS_POINTER == CUBLASLT_MATMUL_DESC_BIAS_POINTER, "BIAS_POINTER");
static_assert(ours::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE == CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, "BIAS_DATA_TYPE");
static_assert(ours::CUBLASLT_EPILOGUE_DEFAULT == CUBLASLT_EPILOGUE_DEFAULT, "CUBLASLT_EPILOGUE_DEFAULT");
static_assert(ours::CUBLASLT_EPILOGUE_BIAS == CUBLASLT_EPILOGUE_BIAS, "CUBLASLT_EPILOGUE_BIAS");
static_assert(ours::CUBLASLT_EPILOGUE_GELU_AUX == CUBLASLT_EPILOGUE_GELU_AUX &&
                  ours::CUBLASLT_EPILOGUE_GELU_AUX_BIAS == CUBLASLT_EPILOGUE_GELU_AUX_BIAS &&
                  ours::CUBLASLT_EPILOGUE_DGELU == CUBLASLT_EPILOGUE_DGELU,
              "GELU epilogues");
static_assert(ours::CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER == CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER &&
                  ours::CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD == CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
              "EPILOGUE_AUX_POINTER / EPILOGUE_AUX_LD");
static_assert(ours::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, "MAX_WS");
static_assert(ours::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES &&
                  ours::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES &&
                  ours::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES &&
                  ours::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
              "MIN_ALIGNMENT_*");
static_assert(sizeof(ours::cublasLtMatmulAlgo_t) == sizeof(::cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t");
static_assert(sizeof(ours::cublasLtMatmulHeuristicResult_t) == sizeof(::cublasLtMatmulHeuristicResult_t) &&
                  offsetof(ours::cublasLtMatmulHeuristicResult_t, workspaceSize) ==
                      offsetof(::cublasLtMatmulHeuristicResult_t, workspaceSize) &&
                  offsetof(ours::cublasLtMatmulHeuristicResult_t, state) ==
                      offsetof(::cublasLtMatmulHeuristicResult_t, state) &&
                  offsetof(ours::cublasLtMatmulHeuristicResult_t, wavesCount) ==
                      offsetof(::cublasLtMatmulHeuristicResult_t, wavesCount),
              "cublasLtMatmulHeuristicResult_t");

// A parameter type as the ABI sees it: 4-byte enums are int, and a pointer to a struct is void* (const kept):
// cuBLAS's handles and cuBLASLt's descriptors are pointers to opaque structs where ours are void*, and its algo
// and heuristic-result structs are ours by the size and offset checks above. Pointers to pointers follow.
template <class T, bool = std::is_enum<T>::value>
struct canon {
  using type = T;
};
template <class T>
struct canon<T, true> {
  static_assert(sizeof(T) == sizeof(int), "a cuBLAS enum that is not int-sized");
  using type = int;
};
template <class T, bool = std::is_class<std::remove_cv_t<T>>::value>
struct canon_pointee {  // T* for a non-struct T: canon(T)*, so pointers to pointers follow
  using type = typename canon<T>::type*;
};
template <class T>
struct canon_pointee<T, true> {
  using type = std::conditional_t<std::is_const<T>::value, const void*, void*>;
};
template <class T>
struct canon<T*, false> {
  using type = typename canon_pointee<T>::type;
};
template <class T>
struct canon<T* const, false> {
  using type = typename canon_pointee<T>::type const;
};
template <class F>
struct canon_fn;
template <class R, class... A>
struct canon_fn<R (*)(A...)> {
  using type = typename canon<R>::type (*)(typename canon<A>::type...);
};
template <class F>
using canon_t = typename canon_fn<F>::type;

// The header overloads some of these in C++ (legacy cudaDataType compute types); the exported symbol is the
// one with cublasComputeType_t, which the casts below select.
using GemmEx = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                  const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                                  cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
using GemmBatchedEx = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                         const void*, const void* const[], cudaDataType, int, const void* const[],
                                         cudaDataType, int, const void*, void* const[], cudaDataType, int, int,
                                         cublasComputeType_t, cublasGemmAlgo_t);

template <class Ours, class Theirs>
constexpr bool same_abi() {
  return std::is_same<canon_t<Ours>, canon_t<Theirs>>::value;
}

static_assert(same_abi<decltype(ours::CublasApi::create), decltype(&cublasCreate_v2)>(), "cublasCreate_v2");
static_assert(same_abi<decltype(ours::CublasApi::destroy), decltype(&cublasDestroy_v2)>(), "cublasDestroy_v2");
static_assert(same_abi<decltype(ours::CublasApi::set_stream), decltype(&cublasSetStream_v2)>(), "cublasSetStream_v2");
static_assert(same_abi<decltype(ours::CublasApi::set_math_mode), decltype(&cublasSetMathMode)>(), "cublasSetMathMode");
static_assert(same_abi<decltype(ours::CublasApi::set_workspace), decltype(&cublasSetWorkspace_v2)>(),
              "cublasSetWorkspace_v2");
static_assert(same_abi<decltype(ours::CublasApi::get_version), decltype(&cublasGetVersion_v2)>(),
              "cublasGetVersion_v2");
static_assert(same_abi<decltype(ours::CublasApi::status_string), decltype(&cublasGetStatusString)>(),
              "cublasGetStatusString");
static_assert(same_abi<decltype(ours::CublasApi::gemm_ex), GemmEx>(), "cublasGemmEx");
static_assert(same_abi<decltype(ours::CublasApi::gemm_batched_ex), GemmBatchedEx>(), "cublasGemmBatchedEx");

static_assert(same_abi<decltype(ours::CublasApi::lt_create), decltype(&cublasLtCreate)>(), "cublasLtCreate");
static_assert(same_abi<decltype(ours::CublasApi::lt_destroy), decltype(&cublasLtDestroy)>(), "cublasLtDestroy");
static_assert(same_abi<decltype(ours::CublasApi::lt_desc_create), decltype(&cublasLtMatmulDescCreate)>(),
              "cublasLtMatmulDescCreate");
static_assert(same_abi<decltype(ours::CublasApi::lt_desc_destroy), decltype(&cublasLtMatmulDescDestroy)>(),
              "cublasLtMatmulDescDestroy");
static_assert(same_abi<decltype(ours::CublasApi::lt_desc_set), decltype(&cublasLtMatmulDescSetAttribute)>(),
              "cublasLtMatmulDescSetAttribute");
static_assert(same_abi<decltype(ours::CublasApi::lt_layout_create), decltype(&cublasLtMatrixLayoutCreate)>(),
              "cublasLtMatrixLayoutCreate");
static_assert(same_abi<decltype(ours::CublasApi::lt_layout_destroy), decltype(&cublasLtMatrixLayoutDestroy)>(),
              "cublasLtMatrixLayoutDestroy");
static_assert(same_abi<decltype(ours::CublasApi::lt_pref_create), decltype(&cublasLtMatmulPreferenceCreate)>(),
              "cublasLtMatmulPreferenceCreate");
static_assert(same_abi<decltype(ours::CublasApi::lt_pref_destroy), decltype(&cublasLtMatmulPreferenceDestroy)>(),
              "cublasLtMatmulPreferenceDestroy");
static_assert(same_abi<decltype(ours::CublasApi::lt_pref_set), decltype(&cublasLtMatmulPreferenceSetAttribute)>(),
              "cublasLtMatmulPreferenceSetAttribute");
static_assert(same_abi<decltype(ours::CublasApi::lt_heuristic), decltype(&cublasLtMatmulAlgoGetHeuristic)>(),
              "cublasLtMatmulAlgoGetHeuristic");
static_assert(same_abi<decltype(ours::CublasApi::lt_matmul), decltype(&cublasLtMatmul)>(), "cublasLtMatmul");

int main() {
  // the casts compile only if the header declares these exact signatures
  GemmEx g = &cublasGemmEx;
  GemmBatchedEx gb = &cublasGemmBatchedEx;
  return (g != nullptr && gb != nullptr) ? 0 : 1;
}
