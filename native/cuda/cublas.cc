// Run-time loader of cuBLAS; see cublas.h for the search order and the prototypes.
#include "cuda/cublas.h"

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

namespace gn {
namespace cuda {

namespace {

const char* const kNames[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
const char* const kLtNames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};

bool is_dir(const std::string& p) {
  struct stat sb;
  return stat(p.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode);
}

std::vector<std::string> expand(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g;
  if (glob(pattern.c_str(), GLOB_ONLYDIR, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  globfree(&g);
  return out;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// candidate folders of steps 3 and 4
std::vector<std::string> candidate_dirs() {
  std::vector<std::string> dirs;
  auto toolkit = [&](const std::string& root) {
    if (root.empty()) return;
    dirs.push_back(root + "/lib64");
    dirs.push_back(root + "/lib");
    dirs.push_back(root + "/targets/x86_64-linux/lib");
    dirs.push_back(root + "/targets/sbsa-linux/lib");
  };
  toolkit(env("CUDA_HOME"));
  toolkit(env("CUDA_PATH"));
  toolkit("/usr/local/cuda");
  for (const auto& d : expand("/usr/local/cuda-*")) toolkit(d);
  std::vector<std::string> sites;
  auto site_roots = [&](const std::string& prefix) {
    if (prefix.empty()) return;
    for (const auto& d : expand(prefix + "/lib/python3*/site-packages")) sites.push_back(d);
    for (const auto& d : expand(prefix + "/lib/python3*/dist-packages")) sites.push_back(d);
  };
  site_roots(env("VIRTUAL_ENV"));
  site_roots(env("CONDA_PREFIX"));
  if (!env("HOME").empty()) site_roots(env("HOME") + "/.local");
  site_roots("/usr/local");
  site_roots("/usr");
  sites.push_back("/usr/lib/python3/dist-packages");
  std::string pp = env("PYTHONPATH");
  for (size_t a = 0; !pp.empty() && a <= pp.size();) {
    size_t b = pp.find(':', a);
    if (b == std::string::npos) b = pp.size();
    if (b > a) sites.push_back(pp.substr(a, b - a));
    a = b + 1;
  }
  for (const auto& s : sites) {
    dirs.push_back(s + "/nvidia/cublas/lib");
    dirs.push_back(s + "/nvidia/cu13/lib");
  }
  return dirs;
}

}  // namespace

bool load_cublas(CublasApi* api, std::vector<std::string>* tried) {
  // (file or bare name, folder to preload libcublasLt from or "")
  std::vector<std::pair<std::string, std::string>> cands;
  std::string user = env("GPT_NATIVE_CUBLAS");
  if (!user.empty()) {
    if (is_dir(user)) {
      for (const char* n : kNames) cands.push_back({user + "/" + n, user});
    } else {
      std::string dir = user.find('/') != std::string::npos ? user.substr(0, user.rfind('/')) : "";
      cands.push_back({user, dir});
    }
  }
  for (const char* n : kNames) cands.push_back({n, ""});
  for (const auto& d : candidate_dirs())
    if (is_dir(d))
      for (const char* n : kNames) cands.push_back({d + "/" + n, d});

  for (const auto& c : cands) {
    if (!c.second.empty())
      for (const char* lt : kLtNames)
        if (dlopen((c.second + "/" + lt).c_str(), RTLD_NOW | RTLD_GLOBAL)) break;
    dlerror();
    void* lib = dlopen(c.first.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = dlerror();
      tried->push_back(c.first + " (" + (why ? why : "not found") + ")");
      continue;
    }
    CublasApi a;
    a.lib = lib;
    a.path = c.first;
    auto sym = [&](auto& f, const char* name) {
      f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(dlsym(lib, name));
    };
    sym(a.create, "cublasCreate_v2");
    sym(a.destroy, "cublasDestroy_v2");
    sym(a.set_stream, "cublasSetStream_v2");
    sym(a.set_math_mode, "cublasSetMathMode");
    sym(a.gemm_ex, "cublasGemmEx");
    sym(a.get_version, "cublasGetVersion_v2");
    sym(a.set_workspace, "cublasSetWorkspace_v2");
    sym(a.status_string, "cublasGetStatusString");
    sym(a.gemm_batched_ex, "cublasGemmBatchedEx");
    // cuBLASLt through the same handle: dlsym searches libcublas's dependencies, libcublasLt among them
    sym(a.lt_create, "cublasLtCreate");
    sym(a.lt_destroy, "cublasLtDestroy");
    sym(a.lt_desc_create, "cublasLtMatmulDescCreate");
    sym(a.lt_desc_destroy, "cublasLtMatmulDescDestroy");
    sym(a.lt_desc_set, "cublasLtMatmulDescSetAttribute");
    sym(a.lt_layout_create, "cublasLtMatrixLayoutCreate");
    sym(a.lt_layout_destroy, "cublasLtMatrixLayoutDestroy");
    sym(a.lt_pref_create, "cublasLtMatmulPreferenceCreate");
    sym(a.lt_pref_destroy, "cublasLtMatmulPreferenceDestroy");
    sym(a.lt_pref_set, "cublasLtMatmulPreferenceSetAttribute");
    sym(a.lt_heuristic, "cublasLtMatmulAlgoGetHeuristic");
    sym(a.lt_matmul, "cublasLtMatmul");
    if (!a.create || !a.destroy || !a.set_stream || !a.set_math_mode || !a.gemm_ex) {
      tried->push_back(c.first + " (opened, but lacks cublasCreate_v2/cublasDestroy_v2/cublasSetStream_v2/"
                                 "cublasSetMathMode/cublasGemmEx)");
      dlclose(lib);
      continue;
    }
    *api = a;
    return true;
  }
  return false;
}

std::string cublas_status_text(const CublasApi& api, cublasStatus_t s) {
  const char* name = nullptr;
  switch (s) {
    case 0: name = "CUBLAS_STATUS_SUCCESS"; break;
    case 1: name = "CUBLAS_STATUS_NOT_INITIALIZED"; break;
    case 3: name = "CUBLAS_STATUS_ALLOC_FAILED"; break;
    case 7: name = "CUBLAS_STATUS_INVALID_VALUE"; break;
    case 8: name = "CUBLAS_STATUS_ARCH_MISMATCH"; break;
    case 11: name = "CUBLAS_STATUS_MAPPING_ERROR"; break;
    case 13: name = "CUBLAS_STATUS_EXECUTION_FAILED"; break;
    case 14: name = "CUBLAS_STATUS_INTERNAL_ERROR"; break;
    case 15: name = "CUBLAS_STATUS_NOT_SUPPORTED"; break;
    default: break;
  }
  std::string r = name ? name : "CUBLAS_STATUS_UNKNOWN";
  r += " (" + std::to_string(s) + ")";
  if (api.status_string) {
    const char* t = api.status_string(s);
    if (t && *t) r += ": " + std::string(t);
  }
  return r;
}

}  // namespace cuda
}  // namespace gn
