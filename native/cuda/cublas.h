// cuBLAS loaded at run time (dlopen): no cuBLAS headers or import library are needed to build the addon.
// Only the few entry points below are used; their prototypes and enum values are written here from the
// public cuBLAS API (cublas_api.h of CUDA 12/13):
//   cublasOperation_t:   CUBLAS_OP_N = 0, CUBLAS_OP_T = 1
//   cublasComputeType_t: CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_16BF = 75
//   cublasMath_t:        CUBLAS_DEFAULT_MATH = 0
//   cublasGemmAlgo_t:    CUBLAS_GEMM_DEFAULT = -1
//   cudaDataType:        CUDA_R_32F = 0, CUDA_R_16BF = 14 (library_types.h, which the CUDA runtime headers ship)
//   cublasStatus_t:      CUBLAS_STATUS_SUCCESS = 0
// and of cuBLASLt (cublasLt.h; its entry points are looked up through libcublas, which depends on libcublasLt):
//   cublasLtMatmulDescAttributes_t:       TRANSA = 3, TRANSB = 4 (int32), EPILOGUE = 7 (uint32),
//                                         BIAS_POINTER = 8 (const void*), EPILOGUE_AUX_POINTER = 11 (void*),
//                                         EPILOGUE_AUX_LD = 12 (int64), BIAS_DATA_TYPE = 26 (int32)
//   cublasLtEpilogue_t:                   CUBLASLT_EPILOGUE_DEFAULT = 1, CUBLASLT_EPILOGUE_BIAS = 4,
//                                         GELU_AUX = 32 | 128, GELU_AUX_BIAS = GELU_AUX | BIAS, DGELU = 64 | 128
//   cublasLtMatmulPreferenceAttributes_t: MAX_WORKSPACE_BYTES = 1 (uint64), MIN_ALIGNMENT_A/B/C/D_BYTES = 5/6/7/8
//                                         (uint32; the heuristics assume 256-byte aligned pointers otherwise)
//   cublasLtMatmulAlgo_t { uint64_t data[8]; }, cublasLtMatmulHeuristicResult_t { algo; size_t workspaceSize;
//   cublasStatus_t state; float wavesCount; int reserved[4]; }
// native/cuda/test/cublas_abi.cc checks all of these against NVIDIA's headers when they are at hand.
//
// Where the library is looked for, in order (the first that dlopen accepts wins):
//   1. $GPT_NATIVE_CUBLAS: a file (used as is) or a directory (libcublas.so.13, .so.12, .so inside it);
//   2. the dynamic loader's search path (LD_LIBRARY_PATH, ldconfig cache): libcublas.so.13, .so.12, .so;
//   3. toolkit folders: $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64, /usr/local/cuda-*/lib64
//      (also …/targets/x86_64-linux/lib and …/targets/sbsa-linux/lib);
//   4. pip wheels (nvidia-cublas-cu12 / nvidia-cublas): <site-packages>/nvidia/cublas/lib and
//      <site-packages>/nvidia/cu13/lib, with site-packages under $VIRTUAL_ENV, $CONDA_PREFIX, ~/.local,
//      /usr/local/lib and /usr/lib (python3.*), and each entry of $PYTHONPATH.
// Before a file inside a folder is opened, the libcublasLt of the same version in that folder is opened
// (RTLD_GLOBAL) so the dependency resolves even when the folder is not on the loader path.
#pragma once
#include <cuda_runtime_api.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/dtype.h"

namespace gn {
namespace cuda {

using cublasHandle_t = void*;
using cublasStatus_t = int;
constexpr int CUBLAS_OP_N = 0;
constexpr int CUBLAS_OP_T = 1;
constexpr int CUBLAS_COMPUTE_32F = 68;
constexpr int CUBLAS_COMPUTE_32F_FAST_16BF = 75;
constexpr int CUBLAS_DEFAULT_MATH = 0;
constexpr int CUBLAS_GEMM_DEFAULT = -1;
constexpr int CUBLAS_STATUS_SUCCESS = 0;

using cublasLtHandle_t = void*;
using cublasLtMatmulDesc_t = void*;
using cublasLtMatrixLayout_t = void*;
using cublasLtMatmulPreference_t = void*;
struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};
constexpr int CUBLASLT_MATMUL_DESC_TRANSA = 3;
constexpr int CUBLASLT_MATMUL_DESC_TRANSB = 4;
constexpr int CUBLASLT_MATMUL_DESC_EPILOGUE = 7;
constexpr int CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8;
constexpr int CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11;
constexpr int CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12;
constexpr int CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26;
constexpr uint32_t CUBLASLT_EPILOGUE_DEFAULT = 1;
constexpr uint32_t CUBLASLT_EPILOGUE_BIAS = 4;
constexpr uint32_t CUBLASLT_EPILOGUE_GELU_AUX = 32 | 128;
constexpr uint32_t CUBLASLT_EPILOGUE_GELU_AUX_BIAS = CUBLASLT_EPILOGUE_GELU_AUX | CUBLASLT_EPILOGUE_BIAS;
constexpr uint32_t CUBLASLT_EPILOGUE_DGELU = 64 | 128;
constexpr int CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;
constexpr int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5;
constexpr int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6;
constexpr int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7;
constexpr int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8;

// cuBLAS's data type of a buffer dtype (dtype.h)
inline int cuda_data_type(DType dt) { return dt == kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

struct CublasApi {
  void* lib = nullptr;
  std::string path;  // what was opened
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;                // cublasCreate_v2
  cublasStatus_t (*destroy)(cublasHandle_t) = nullptr;                // cublasDestroy_v2
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;  // cublasSetStream_v2
  cublasStatus_t (*set_math_mode)(cublasHandle_t, int) = nullptr;     // cublasSetMathMode
  cublasStatus_t (*get_version)(cublasHandle_t, int*) = nullptr;      // cublasGetVersion_v2 (optional)
  // cublasSetWorkspace_v2(handle, workspace, bytes) (optional): a workspace of our own, set after the stream
  // (cublasSetStream resets it)
  cublasStatus_t (*set_workspace)(cublasHandle_t, void*, size_t) = nullptr;
  const char* (*status_string)(cublasStatus_t) = nullptr;             // cublasGetStatusString (optional)
  // cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
  //              computeType, algo)
  cublasStatus_t (*gemm_ex)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int,
                            const void*, int, int, const void*, void*, int, int, int, int) = nullptr;
  // cublasGemmBatchedEx(handle, transa, transb, m, n, k, alpha, Aarray, Atype, lda, Barray, Btype, ldb, beta,
  //                     Carray, Ctype, ldc, batchCount, computeType, algo), pointer arrays in device memory
  // (optional; the cuBLAS attention path needs it)
  cublasStatus_t (*gemm_batched_ex)(cublasHandle_t, int, int, int, int, int, const void*, const void* const*, int, int,
                                    const void* const*, int, int, const void*, void* const*, int, int, int, int,
                                    int) = nullptr;
  // cuBLASLt (all optional, all or none: lt_usable() says whether the set is complete)
  cublasStatus_t (*lt_create)(cublasLtHandle_t*) = nullptr;   // cublasLtCreate
  cublasStatus_t (*lt_destroy)(cublasLtHandle_t) = nullptr;   // cublasLtDestroy
  // cublasLtMatmulDescCreate(desc*, computeType, scaleType), …Destroy(desc), …SetAttribute(desc, attr, buf, size)
  cublasStatus_t (*lt_desc_create)(cublasLtMatmulDesc_t*, int, int) = nullptr;
  cublasStatus_t (*lt_desc_destroy)(cublasLtMatmulDesc_t) = nullptr;
  cublasStatus_t (*lt_desc_set)(cublasLtMatmulDesc_t, int, const void*, size_t) = nullptr;
  // cublasLtMatrixLayoutCreate(layout*, type, rows, cols, ld) (column-major), …Destroy(layout)
  cublasStatus_t (*lt_layout_create)(cublasLtMatrixLayout_t*, int, uint64_t, uint64_t, int64_t) = nullptr;
  cublasStatus_t (*lt_layout_destroy)(cublasLtMatrixLayout_t) = nullptr;
  // cublasLtMatmulPreferenceCreate(pref*), …Destroy(pref), …SetAttribute(pref, attr, buf, size)
  cublasStatus_t (*lt_pref_create)(cublasLtMatmulPreference_t*) = nullptr;
  cublasStatus_t (*lt_pref_destroy)(cublasLtMatmulPreference_t) = nullptr;
  cublasStatus_t (*lt_pref_set)(cublasLtMatmulPreference_t, int, const void*, size_t) = nullptr;
  // cublasLtMatmulAlgoGetHeuristic(handle, desc, Adesc, Bdesc, Cdesc, Ddesc, pref, requested, results[], *returned)
  cublasStatus_t (*lt_heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
                                 cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                 cublasLtMatmulPreference_t, int, cublasLtMatmulHeuristicResult_t*, int*) = nullptr;
  // cublasLtMatmul(handle, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo*, workspace, size, stream)
  cublasStatus_t (*lt_matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void*, const void*, cublasLtMatrixLayout_t,
                              const void*, cublasLtMatrixLayout_t, const void*, const void*, cublasLtMatrixLayout_t,
                              void*, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t*, void*, size_t,
                              cudaStream_t) = nullptr;
  bool lt_usable() const {
    return lt_create && lt_destroy && lt_desc_create && lt_desc_destroy && lt_desc_set && lt_layout_create &&
           lt_layout_destroy && lt_pref_create && lt_pref_destroy && lt_pref_set && lt_heuristic && lt_matmul;
  }
};

// Tries the candidates above; on success fills api and returns true. `tried` receives every candidate with
// dlerror()'s reason, for the error message.
bool load_cublas(CublasApi* api, std::vector<std::string>* tried);

// "CUBLAS_STATUS_… (n)" for a status code (cublasGetStatusString when the library has it)
std::string cublas_status_text(const CublasApi& api, cublasStatus_t s);

}  // namespace cuda
}  // namespace gn
