// Run-time check of the cuBLAS loader (native/cuda/cublas.cc) against a real libcublas, without a GPU (run by
// scripts/check-cuda.sh when one can be found, with GPT_NATIVE_CUBLAS set to its folder): every entry point the
// addon uses resolves by name, cublasGetStatusString answers, and cublasCreate fails cleanly with a status
// (no driver here) instead of crashing.
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
  need(reinterpret_cast<const void*>(api.status_string), "cublasGetStatusString");
  need(reinterpret_cast<const void*>(api.gemm_ex), "cublasGemmEx");
  need(reinterpret_cast<const void*>(api.gemm_batched_ex), "cublasGemmBatchedEx");
  if (bad) return 1;
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
