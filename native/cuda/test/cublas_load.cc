// Run-time check of the cuBLAS loader (native/cuda/cublas.cc) against a real libcublas, without a GPU (run by
// scripts/check-cuda.sh when one can be found, with GPT_NATIVE_CUBLAS set to its folder): every entry point the
// addon uses resolves by name (cuBLASLt's through libcublas), cuBLASLt's host descriptors take our attribute
// values and sizes, cublasGetStatusString answers, and cublasCreate fails cleanly with a status
// (no driver here) instead of crashing.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/cublas.h"

int main() {
  gn::cuda::CublasApi api;
  std::vector<std::string> tried;
  if (!gn::cuda::load_cublas(&api, &tried)) {
    std::fprintf(stderr, "cublas_load: load_cublas failed:\n");
    for (const auto& t : tried) std::fprintf(stderr, "  %s\n", t.c_str());
    return 1;
  }
  std::printf("cublas_load: opened %s\n", api.path.c_str());
  int bad = 0;
  auto need = [&](const void* f, const char* name) {
    if (!f) {
      std::fprintf(stderr, "cublas_load: %s did not resolve\n", name);
      ++bad;
    }
  };
  need(reinterpret_cast<const void*>(api.create), "cublasCreate_v2");
  need(reinterpret_cast<const void*>(api.destroy), "cublasDestroy_v2");
  need(reinterpret_cast<const void*>(api.set_stream), "cublasSetStream_v2");
  need(reinterpret_cast<const void*>(api.set_math_mode), "cublasSetMathMode");
  need(reinterpret_cast<const void*>(api.get_version), "cublasGetVersion_v2");
  need(reinterpret_cast<const void*>(api.set_workspace), "cublasSetWorkspace_v2");
  need(reinterpret_cast<const void*>(api.status_string), "cublasGetStatusString");
  need(reinterpret_cast<const void*>(api.gemm_ex), "cublasGemmEx");
  need(reinterpret_cast<const void*>(api.gemm_batched_ex), "cublasGemmBatchedEx");
  need(reinterpret_cast<const void*>(api.lt_create), "cublasLtCreate");
  need(reinterpret_cast<const void*>(api.lt_destroy), "cublasLtDestroy");
  need(reinterpret_cast<const void*>(api.lt_desc_create), "cublasLtMatmulDescCreate");
  need(reinterpret_cast<const void*>(api.lt_desc_destroy), "cublasLtMatmulDescDestroy");
  need(reinterpret_cast<const void*>(api.lt_desc_set), "cublasLtMatmulDescSetAttribute");
  need(reinterpret_cast<const void*>(api.lt_layout_create), "cublasLtMatrixLayoutCreate");
  need(reinterpret_cast<const void*>(api.lt_layout_destroy), "cublasLtMatrixLayoutDestroy");
  need(reinterpret_cast<const void*>(api.lt_pref_create), "cublasLtMatmulPreferenceCreate");
  need(reinterpret_cast<const void*>(api.lt_pref_destroy), "cublasLtMatmulPreferenceDestroy");
  need(reinterpret_cast<const void*>(api.lt_pref_set), "cublasLtMatmulPreferenceSetAttribute");
  need(reinterpret_cast<const void*>(api.lt_heuristic), "cublasLtMatmulAlgoGetHeuristic");
  need(reinterpret_cast<const void*>(api.lt_matmul), "cublasLtMatmul");
  if (bad) return 1;
  // descriptors are host objects: cuBLASLt makes and fills them without a GPU, so the attribute sizes are checked
  // against the real library here
  gn::cuda::cublasLtMatmulDesc_t desc = nullptr;
  int st = api.lt_desc_create(&desc, gn::cuda::CUBLAS_COMPUTE_32F, CUDA_R_32F);
  const int32_t op = gn::cuda::CUBLAS_OP_T, bias_t = CUDA_R_16BF;
  const uint32_t epi = gn::cuda::CUBLASLT_EPILOGUE_BIAS;
  const void* bias = &op;
  auto set = [&](int attr, const void* v, size_t n, const char* name) {
    if (st != 0) return;
    st = api.lt_desc_set(desc, attr, v, n);
    if (st != 0) std::fprintf(stderr, "cublas_load: cublasLtMatmulDescSetAttribute(%s) -> %d\n", name, st);
  };
  set(gn::cuda::CUBLASLT_MATMUL_DESC_TRANSA, &op, sizeof op, "TRANSA");
  set(gn::cuda::CUBLASLT_MATMUL_DESC_TRANSB, &op, sizeof op, "TRANSB");
  set(gn::cuda::CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi, "EPILOGUE");
  set(gn::cuda::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_t, sizeof bias_t, "BIAS_DATA_TYPE");
  set(gn::cuda::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias, "BIAS_POINTER");
  gn::cuda::cublasLtMatmulPreference_t pref = nullptr;
  if (st == 0) st = api.lt_pref_create(&pref);
  const uint64_t ws = 1 << 20;
  const uint32_t al = 16;
  if (st == 0) st = api.lt_pref_set(pref, gn::cuda::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  for (int attr = gn::cuda::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
       st == 0 && attr <= gn::cuda::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES; ++attr)
    st = api.lt_pref_set(pref, attr, &al, sizeof al);
  gn::cuda::cublasLtMatrixLayout_t layout = nullptr;
  if (st == 0) st = api.lt_layout_create(&layout, CUDA_R_16BF, 37, 29, 40);
  if (layout) api.lt_layout_destroy(layout);
  if (pref) api.lt_pref_destroy(pref);
  if (desc) api.lt_desc_destroy(desc);
  if (st != 0) {
    std::fprintf(stderr, "cublas_load: making cuBLASLt descriptors failed: %s\n",
                 gn::cuda::cublas_status_text(api, st).c_str());
    return 1;
  }
  std::printf("cublas_load: cuBLASLt descriptors, layouts and preferences accept our attributes\n");
  const std::string text = gn::cuda::cublas_status_text(api, 7);
  std::printf("cublas_load: status 7 reads \"%s\"\n", text.c_str());
  if (text.find("CUBLAS_STATUS_INVALID_VALUE (7): ") != 0) {
    std::fprintf(stderr, "cublas_load: expected the library's own text for CUBLAS_STATUS_INVALID_VALUE\n");
    return 1;
  }
  gn::cuda::cublasHandle_t h = nullptr;
  const int s = api.create(&h);
  std::printf("cublas_load: cublasCreate_v2 without a GPU -> %s\n", gn::cuda::cublas_status_text(api, s).c_str());
  if (s == gn::cuda::CUBLAS_STATUS_SUCCESS) api.destroy(h);
  return 0;
}
