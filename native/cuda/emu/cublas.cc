// gpt-native's CUDA emulator: a host implementation of the cuBLAS entry points native/cuda/cublas.cc opens,
// built as build/cuda-emu/libcublas.so and picked with GPT_NATIVE_CUBLAS. It follows the cuBLAS
// documentation (column-major storage; C = alpha·op(A)·op(B) + beta·C with op(A) m×k, op(B) k×n, C m×n;
// lda >= max(1, transa == N ? m : k), ldb >= max(1, transb == N ? k : n), ldc >= max(1, m); beta == 0 means C
// is not read), so the addon's operand order and leading dimensions are checked against the documented
// contract, not against our own reading of it in ops.cc. Products are summed in double.
//
// Compute types: CUBLAS_COMPUTE_32F (68) multiplies the inputs as given; CUBLAS_COMPUTE_32F_FAST_16BF (75)
// rounds fp32 inputs to bfloat16 first (round to nearest even), as the tensor cores do; CUBLAS_COMPUTE_32F_FAST_TF32
// (77) rounds them to tf32. Data types: CUDA_R_32F (0) and CUDA_R_16BF (14) for A, B and C.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int kSuccess = 0, kNotInitialized = 1, kInvalidValue = 7, kNotSupported = 15;
constexpr int kOpN = 0, kOpT = 1, kOpC = 2;
constexpr int kR32F = 0, kR16BF = 14;
constexpr int kCompute32F = 68, kCompute32FPedantic = 69, kCompute32FFast16BF = 75, kCompute32FFastTF32 = 77;

struct Handle {
  uint32_t magic = 0x63626c73;
  void* stream = nullptr;
  int math_mode = 0;
};

bool valid(void* h) { return h && static_cast<Handle*>(h)->magic == 0x63626c73; }

float bf16_to_f32(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float round_tf32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) >= 0x7f800000u) return f;
  u += 0xfffu + ((u >> 13) & 1u);
  u &= ~0x1fffu;
  std::memcpy(&f, &u, 4);
  return f;
}

float load(const void* p, int type, int64_t i) {
  return type == kR16BF ? bf16_to_f32(static_cast<const uint16_t*>(p)[i]) : static_cast<const float*>(p)[i];
}
void store(void* p, int type, int64_t i, float v) {
  if (type == kR16BF)
    static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
  else
    static_cast<float*>(p)[i] = v;
}

int check_types(int at, int bt, int ct, int compute) {
  const bool ok_type = (at == kR32F || at == kR16BF) && (bt == kR32F || bt == kR16BF) && (ct == kR32F || ct == kR16BF);
  if (!ok_type || at != bt) return kNotSupported;
  if (at == kR32F && ct != kR32F) return kNotSupported;  // fp32 inputs only write fp32 (cuBLAS's table)
  if (compute == kCompute32F || compute == kCompute32FPedantic) return kSuccess;
  if ((compute == kCompute32FFast16BF || compute == kCompute32FFastTF32) && at == kR32F && ct == kR32F) return kSuccess;
  return kNotSupported;
}

int gemm_one(int ta, int tb, int m, int n, int k, float alpha, const void* A, int at, int lda, const void* B, int bt,
             int ldb, float beta, void* C, int ct, int ldc, int compute) {
  // op(A)[i, p] and op(B)[p, j], packed so the inner loop runs over contiguous memory
  std::vector<double> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(n) * k);
  auto conv = [&](float x) -> double {
    if (compute == kCompute32FFast16BF) return bf16_to_f32(f32_to_bf16(x));
    if (compute == kCompute32FFastTF32) return round_tf32(x);
    return x;
  };
  for (int i = 0; i < m; ++i)
    for (int p = 0; p < k; ++p)
      a[static_cast<size_t>(i) * k + p] =
          conv(load(A, at, ta == kOpN ? i + static_cast<int64_t>(p) * lda : p + static_cast<int64_t>(i) * lda));
  for (int j = 0; j < n; ++j)
    for (int p = 0; p < k; ++p)
      b[static_cast<size_t>(j) * k + p] =
          conv(load(B, bt, tb == kOpN ? p + static_cast<int64_t>(j) * ldb : j + static_cast<int64_t>(p) * ldb));
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      const double* ar = &a[static_cast<size_t>(i) * k];
      const double* bc = &b[static_cast<size_t>(j) * k];
      double s = 0.0;
      for (int p = 0; p < k; ++p) s += ar[p] * bc[p];
      const int64_t c = i + static_cast<int64_t>(j) * ldc;
      float r = static_cast<float>(alpha * s);
      if (beta != 0.0f) r += beta * load(C, ct, c);
      store(C, ct, c, r);
    }
  return kSuccess;
}

int check_args(void* h, int ta, int tb, int m, int n, int k, const void* alpha, int lda, int ldb, const void* beta,
               int ldc) {
  if (!valid(h)) return kNotInitialized;
  if ((ta != kOpN && ta != kOpT && ta != kOpC) || (tb != kOpN && tb != kOpT && tb != kOpC)) return kInvalidValue;
  if (m < 0 || n < 0 || k < 0 || !alpha || !beta) return kInvalidValue;
  const int rows_a = ta == kOpN ? m : k, rows_b = tb == kOpN ? k : n;
  if (lda < (rows_a > 1 ? rows_a : 1) || ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1)) return kInvalidValue;
  return kSuccess;
}

}  // namespace

extern "C" {

int cublasCreate_v2(void** handle) {
  if (!handle) return kInvalidValue;
  *handle = new Handle();
  return kSuccess;
}
int cublasDestroy_v2(void* handle) {
  if (!valid(handle)) return kNotInitialized;
  static_cast<Handle*>(handle)->magic = 0;
  delete static_cast<Handle*>(handle);
  return kSuccess;
}
int cublasSetStream_v2(void* handle, void* stream) {
  if (!valid(handle)) return kNotInitialized;
  static_cast<Handle*>(handle)->stream = stream;
  return kSuccess;
}
int cublasSetMathMode(void* handle, int mode) {
  if (!valid(handle)) return kNotInitialized;
  static_cast<Handle*>(handle)->math_mode = mode;
  return kSuccess;
}
int cublasGetVersion_v2(void* handle, int* version) {
  if (!valid(handle)) return kNotInitialized;
  *version = 130000;
  return kSuccess;
}
const char* cublasGetStatusString(int status) {
  switch (status) {
    case kSuccess: return "the operation completed successfully (emulator)";
    case kNotInitialized: return "the library was not initialized (emulator)";
    case kInvalidValue: return "an invalid numeric value was used as an argument (emulator)";
    case kNotSupported: return "the functionality requested is not supported (emulator)";
    default: return "unknown status (emulator)";
  }
}

int cublasGemmEx(void* handle, int ta, int tb, int m, int n, int k, const void* alpha, const void* A, int at, int lda,
                 const void* B, int bt, int ldb, const void* beta, void* C, int ct, int ldc, int compute, int algo) {
  (void)algo;
  int s = check_args(handle, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc);
  if (s != kSuccess) return s;
  if ((s = check_types(at, bt, ct, compute)) != kSuccess) return s;
  if (m == 0 || n == 0) return kSuccess;
  return gemm_one(ta, tb, m, n, k, *static_cast<const float*>(alpha), A, at, lda, B, bt, ldb,
                  *static_cast<const float*>(beta), C, ct, ldc, compute);
}

// Aarray, Barray, Carray: arrays of batch pointers in device memory (here: the emulator's device allocations,
// readable by the host; an array that is not one faults at its guard page like a kernel would)
int cublasGemmBatchedEx(void* handle, int ta, int tb, int m, int n, int k, const void* alpha, const void* const A[],
                        int at, int lda, const void* const B[], int bt, int ldb, const void* beta, void* const C[],
                        int ct, int ldc, int batch, int compute, int algo) {
  (void)algo;
  int s = check_args(handle, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc);
  if (s != kSuccess) return s;
  if (batch < 0) return kInvalidValue;
  if ((s = check_types(at, bt, ct, compute)) != kSuccess) return s;
  if (m == 0 || n == 0 || batch == 0) return kSuccess;
  if (!A || !B || !C) return kInvalidValue;
  for (int i = 0; i < batch; ++i) {
    s = gemm_one(ta, tb, m, n, k, *static_cast<const float*>(alpha), A[i], at, lda, B[i], bt, ldb,
                 *static_cast<const float*>(beta), C[i], ct, ldc, compute);
    if (s != kSuccess) return s;
  }
  return kSuccess;
}

}  // extern "C"
