// N-API wrappers of the CUDA kernels: the same names, argument orders, checks and messages as the CPU
// addon's native/napi/ops.cc, with device views {buf, off, len} in place of Float32Arrays. Token ids and
// targets arrive as host Int32Arrays: they are checked on the host (same messages as the CPU kernels) and
// uploaded to a device scratch. GEMMs go to cuBLAS (row-major C = op(A)·op(B) is computed as the
// column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, i.e. with the operands swapped).
#include <napi.h>

#include <climits>
#include <cmath>
#include <vector>

#include "cuda/context.h"
#include "cuda/kernels.h"
#include "napi/guard.h"

namespace gn {
namespace cuda {

namespace {

std::string shp(std::initializer_list<int64_t> d) {
  std::string s = "(";
  bool first = true;
  for (auto x : d) { s += (first ? "" : ",") + std::to_string(x); first = false; }
  return s + ")";
}

int64_t extent(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

// C (M,N) = (accumulate ? C : 0) + alpha·op(A)·op(B) + bias, row-major, as native/cpu/gemm.h.
// cuBLAS sees the row-major (r, c) matrix with leading dimension ld as the column-major (c, r) one, so
//   Cᵀ (N×M) = op(B)ᵀ (N×K) · op(A)ᵀ (K×M):  first operand B (op T when transB), second A (op T when transA).
// A and B share a dtype; C may differ (bf16 operands into an fp32 weight gradient). bf16 operands run with
// fp32 accumulation (CUBLAS_COMPUTE_32F); fp32 ones in the math mode (setMathMode). With setBiasEpilogue
// ('cublaslt') a bias without accumulation goes to cuBLASLt's epilogue (gemm_lt.cc) when it has an algorithm; other
// products run in cublasLtMatmul too (setGemm('cublaslt'), the default), or in cublasGemmEx (setGemm('cublas'), and
// wherever cuBLASLt has no algorithm).
// The MLP's GELU (C contiguous: ldc == N, no accumulation): gelu_out (M, N) = GELU(C), C keeping the GELU input;
// or, with dgelu_pre, C = alpha·op(A)·op(B) ∘ GELU'(dgelu_pre). cuBLASLt's GELU epilogues do either in the
// GEMM with setGeluEpilogue('cublaslt'); else the gelu.cu kernels run after it.
struct Operand {
  const void* p;
  DType dt;
};
void gemm_dev(CudaAddon& a, const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              Operand A, int64_t lda, Operand B, int64_t ldb, void* C, DType cdt, int64_t ldc, bool acc,
              const float* bias, void* gelu_out = nullptr, const void* dgelu_pre = nullptr) {
  if (M == 0 || N == 0) return;
  const bool gelu = gelu_out || dgelu_pre;
  GN_CHECK(!gelu || (ldc == N && !acc), op, ": the GELU forms need a contiguous output without accumulation");
  GN_CHECK_RANGE(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX,
                 op, ": dimensions beyond 2^31-1 are not supported by cuBLAS (M=", M, " N=", N, " K=", K, ")");
  if (A.dt != B.dt)
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": the two matrix operands must share a dtype (",
                                                       dtype_name(A.dt), " and ", dtype_name(B.dt), ")"));
  if (A.dt == kF32 && cdt == kBF16)
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": fp32 operands cannot write a bf16 result (cuBLAS has no "
                                                       "such combination); give bf16 operands or an fp32 output"));
  const int compute = A.dt == kBF16 ? CUBLAS_COMPUTE_32F : a.compute;
  if (gelu_out &&
      gemm_gelu_lt(a, op, ta, tb, M, N, K, alpha, A.p, A.dt, lda, B.p, ldb, gelu_out, cdt, ldc, bias, C, compute))
    return;
  if (dgelu_pre && !bias &&
      gemm_dgelu_lt(a, op, ta, tb, M, N, K, alpha, A.p, A.dt, lda, B.p, ldb, C, cdt, ldc, dgelu_pre, compute))
    return;
  // else the GEMM (its bias in cuBLASLt's epilogue where that is on), then the bias and GELU passes it needs
  if (bias && !acc &&
      gemm_bias_lt(a, op, ta, tb, M, N, K, alpha, A.p, A.dt, lda, B.p, ldb, C, cdt, ldc, bias, compute)) {
    bias = nullptr;
  } else if (K == 0) {
    if (!acc) zero_rows(a.stream, cdt, C, M, N, ldc);
  } else if (gemm_plain_lt(a, op, ta, tb, M, N, K, alpha, A.p, A.dt, lda, B.p, ldb, C, cdt, ldc, acc, compute)) {
    // done by cuBLASLt (setGemm('cublaslt'), the default)
  } else {
    const float beta = acc ? 1.0f : 0.0f;
    const int in_type = cuda_data_type(A.dt), out_type = cuda_data_type(cdt);
    cublasStatus_t s = a.blas.gemm_ex(a.handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                      static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, B.p,
                                      in_type, static_cast<int>(ldb), A.p, in_type, static_cast<int>(lda), &beta, C,
                                      out_type, static_cast<int>(ldc), compute, CUBLAS_GEMM_DEFAULT);
    GN_CHECK(s == CUBLAS_STATUS_SUCCESS, "gpt-native: cuBLAS error in cublasGemmEx (", op, ": transA=", ta,
             " transB=", tb, " M=", M, " N=", N, " K=", K, " lda=", lda, " ldb=", ldb, " ldc=", ldc,
             " operands ", dtype_name(A.dt), " -> ", dtype_name(cdt), " compute=", compute, ") at ", __FILE__, ":",
             __LINE__, ": ", cublas_status_text(a.blas, s));
    if (a.stream.sync_each) GN_CUDA(cudaStreamSynchronize(a.stream.s));
  }
  if (bias) bias_rows(a.stream, cdt, C, bias, M, N, ldc);
  if (gelu_out) gelu_forward(a.stream, cdt, gelu_out, C, M * N);
  if (dgelu_pre) gelu_backward(a.stream, cdt, C, dgelu_pre, C, M * N);
}

Operand operand(const DView& v) { return {v.p, v.dt}; }

// the first na elements of a and the first nb of b share memory
bool overlap(const DView& a, int64_t na, const DView& b, int64_t nb) {
  const char* pa = static_cast<const char*>(a.p);
  const char* pb = static_cast<const char*>(b.p);
  return a.present && b.present && pa < pb + nb * dtype_bytes(b.dt) && pb < pa + na * dtype_bytes(a.dt);
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* op = "gemm";
  CudaAddon& a = ready(info, op);
  bool ta = flag(info, 0), tb = flag(info, 1);
  int64_t M = dim(info, 2, op, "M"), N = dim(info, 3, op, "N"), K = dim(info, 4, op, "K");
  float alpha = static_cast<float>(num(info, 5, op, "alpha"));
  auto A = view(info, 6, op, "A");
  int64_t lda = dim(info, 7, op, "lda");
  auto B = view(info, 8, op, "B");
  int64_t ldb = dim(info, 9, op, "ldb");
  auto C = view(info, 10, op, "C");
  int64_t ldc = dim(info, 11, op, "ldc");
  bool acc = flag(info, 12);
  auto bias = view(info, 13, op, "bias", true);
  GN_CHECK_RANGE(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N, op,
                 ": leading dimensions too small: lda=", lda, " ldb=", ldb, " ldc=", ldc, " for M=", M, " N=", N,
                 " K=", K);
  need(A, ta ? extent(K, M, lda) : extent(M, K, lda), op, "A", ta ? shp({K, M}) : shp({M, K}));
  need(B, tb ? extent(N, K, ldb) : extent(K, N, ldb), op, "B", tb ? shp({N, K}) : shp({K, N}));
  need(C, extent(M, N, ldc), op, "C", shp({M, N}));
  need(bias, N, op, "bias", shp({N}));
  gemm_dev(a, op, ta, tb, M, N, K, alpha, operand(A), lda, operand(B), ldb, C.p, C.dt, ldc, acc,
           f32v(bias, op, "bias"));
  return info.Env().Undefined();
}

// Conv1D layout (native/cpu/linear.cpp): weight (C, OC); out (N, OC) = inp (N, C)·weight + bias
Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  const char* op = "linear_forward";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  auto inp = view(info, 1, op, "inp");
  auto w = view(info, 2, op, "weight");
  auto b = view(info, 3, op, "bias", true);
  int64_t N = dim(info, 4, op, "N"), C = dim(info, 5, op, "C"), OC = dim(info, 6, op, "OC");
  need(out, N * OC, op, "out", shp({N, OC}));
  need(inp, N * C, op, "inp", shp({N, C}));
  need_exact(w, C * OC, op, "weight", shp({C, OC}));
  need_exact(b, OC, op, "bias", shp({OC}));
  // optional: geluOut (=) = GELU(out) (the MLP's first layer with its activation; out keeps the GELU input)
  auto gout = view(info, 7, op, "geluOut", true);
  need(gout, N * OC, op, "geluOut", shp({N, OC}));
  GN_CHECK_RANGE(!overlap(out, N * OC, gout, N * OC), op, ": geluOut shares memory with out; give it its own buffer "
                 "(out keeps the GELU input)");
  const DType dt = act_dtype(op, {{&out, "out"}, {&inp, "inp"}, {&w, "weight"}, {&gout, "geluOut"}});
  gemm_dev(a, op, false, false, N, OC, C, 1.0f, operand(inp), C, operand(w), OC, out.p, dt, OC, false,
           f32v(b, op, "bias"), gout.present ? gout.p : nullptr);
  return info.Env().Undefined();
}

// dinp (=) = dout·weightᵀ;  dweight (+=) = inpᵀ·dout;  dbias (+=) = Σ_n dout   (each may be null)
Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  const char* op = "linear_backward";
  CudaAddon& a = ready(info, op);
  auto dinp = view(info, 0, op, "dinp", true);
  auto dw = view(info, 1, op, "dweight", true);
  auto db = view(info, 2, op, "dbias", true);
  auto dout = view(info, 3, op, "dout");
  auto inp = view(info, 4, op, "inp");
  auto w = view(info, 5, op, "weight");
  int64_t N = dim(info, 6, op, "N"), C = dim(info, 7, op, "C"), OC = dim(info, 8, op, "OC");
  need(dinp, N * C, op, "dinp", shp({N, C}));
  need_exact(dw, C * OC, op, "dweight", shp({C, OC}));
  need_exact(db, OC, op, "dbias", shp({OC}));
  need(dout, N * OC, op, "dout", shp({N, OC}));
  need(inp, N * C, op, "inp", shp({N, C}));
  need_exact(w, C * OC, op, "weight", shp({C, OC}));
  // optional: geluPre, the GELU input that produced inp: dinp is then the gradient at geluPre
  auto pre = view(info, 9, op, "geluPre", true);
  need(pre, N * C, op, "geluPre", shp({N, C}));
  GN_CHECK_RANGE(!overlap(dinp, N * C, pre, N * C), op, ": dinp shares memory with geluPre; give it its own buffer "
                 "(geluPre is read after dinp is written)");
  const DType dt = act_dtype(op, {{&dinp, "dinp"}, {&dout, "dout"}, {&inp, "inp"}, {&w, "weight"}, {&pre, "geluPre"}});
  float* dwp = f32v(dw, op, "dweight");
  float* dbp = f32v(db, op, "dbias");
  if (dinp.present)
    gemm_dev(a, op, false, true, N, C, OC, 1.0f, operand(dout), OC, operand(w), OC, dinp.p, dt, C, false, nullptr,
             nullptr, pre.present ? pre.p : nullptr);
  if (dw.present) gemm_dev(a, op, true, false, C, OC, N, 1.0f, operand(inp), C, operand(dout), OC, dwp, kF32, OC, true,
                           nullptr);
  if (db.present)
    colsum_acc(a.stream, dt, dbp, dout.p, N, OC,
               static_cast<float*>(a.floats.get(a.stream, colsum_chunks(N, OC) * OC * sizeof(float))));
  return info.Env().Undefined();
}

void* opt(const DView& v) { return v.present ? v.p : nullptr; }

Napi::Value LayernormForward(const Napi::CallbackInfo& info) {
  const char* op = "layernorm_forward";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  auto mean = view(info, 1, op, "mean", true);
  auto rstd = view(info, 2, op, "rstd", true);
  auto inp = view(info, 3, op, "inp");
  auto w = view(info, 4, op, "weight");
  auto b = view(info, 5, op, "bias");
  int64_t N = dim(info, 6, op, "N"), C = dim(info, 7, op, "C");
  float eps = static_cast<float>(num(info, 8, op, "eps"));
  need(out, N * C, op, "out", shp({N, C}));
  need(inp, N * C, op, "inp", shp({N, C}));
  need(mean, N, op, "mean", shp({N}));
  need(rstd, N, op, "rstd", shp({N}));
  need_exact(w, C, op, "weight", shp({C}));
  need_exact(b, C, op, "bias", shp({C}));
  // optional: addA, addB: inp = addA + addB is written first (the residual stream's add in the same pass)
  auto addA = view(info, 9, op, "addA", true);
  auto addB = view(info, 10, op, "addB", !addA.present);
  need(addA, N * C, op, "addA", shp({N, C}));
  need(addB, N * C, op, "addB", shp({N, C}));
  const DType dt = act_dtype(op, {{&out, "out"}, {&inp, "inp"}, {&addA, "addA"}, {&addB, "addB"}});
  layernorm_forward(a.stream, dt, out.p, f32v(mean, op, "mean"), f32v(rstd, op, "rstd"), inp.p, f32v(w, op, "weight"),
                    f32v(b, op, "bias"), N, C, eps, opt(addA), opt(addB));
  return info.Env().Undefined();
}

Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  const char* op = "layernorm_backward";
  CudaAddon& a = ready(info, op);
  auto dinp = view(info, 0, op, "dinp", true);
  auto dw = view(info, 1, op, "dweight");
  auto db = view(info, 2, op, "dbias");
  auto dout = view(info, 3, op, "dout");
  auto inp = view(info, 4, op, "inp");
  auto w = view(info, 5, op, "weight");
  auto mean = view(info, 6, op, "mean");
  auto rstd = view(info, 7, op, "rstd");
  int64_t N = dim(info, 8, op, "N"), C = dim(info, 9, op, "C");
  need(dinp, N * C, op, "dinp", shp({N, C}));
  need_exact(dw, C, op, "dweight", shp({C}));
  need_exact(db, C, op, "dbias", shp({C}));
  need(dout, N * C, op, "dout", shp({N, C}));
  need(inp, N * C, op, "inp", shp({N, C}));
  need_exact(w, C, op, "weight", shp({C}));
  need(mean, N, op, "mean", shp({N}));
  need(rstd, N, op, "rstd", shp({N}));
  float* part = static_cast<float*>(a.floats.get(a.stream, 2 * layernorm_chunks(N, C) * C * sizeof(float)));
  const DType dt = act_dtype(op, {{&dinp, "dinp"}, {&dout, "dout"}, {&inp, "inp"}});
  const bool accumulate = flag(info, 10);  // optional: dinp += instead of =
  layernorm_backward(a.stream, dt, opt(dinp), f32v(dw, op, "dweight"), f32v(db, op, "dbias"), dout.p, inp.p,
                     f32v(w, op, "weight"), f32v(mean, op, "mean"), f32v(rstd, op, "rstd"), N, C, part, accumulate,
                     a.ln_fused);
  return info.Env().Undefined();
}

Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  const char* op = "gelu_forward";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  auto inp = view(info, 1, op, "inp");
  need_exact(out, inp.n, op, "out", shp({inp.n}));
  gelu_forward(a.stream, act_dtype(op, {{&out, "out"}, {&inp, "inp"}}), out.p, inp.p, inp.n);
  return info.Env().Undefined();
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const char* op = "gelu_backward";
  CudaAddon& a = ready(info, op);
  auto dinp = view(info, 0, op, "dinp");
  auto inp = view(info, 1, op, "inp");
  auto dout = view(info, 2, op, "dout");
  int64_t n = inp.n;
  need_exact(dinp, n, op, "dinp", shp({n}));
  need_exact(dout, n, op, "dout", shp({n}));
  gelu_backward(a.stream, act_dtype(op, {{&dinp, "dinp"}, {&inp, "inp"}, {&dout, "dout"}}), dinp.p, inp.p, dout.p, n);
  return info.Env().Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* op = "add";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  auto x = view(info, 1, op, "a");
  auto y = view(info, 2, op, "b");
  int64_t n = x.n;
  need_exact(y, n, op, "b", shp({n}));
  need_exact(out, n, op, "out", shp({n}));
  add(a.stream, act_dtype(op, {{&out, "out"}, {&x, "a"}, {&y, "b"}}), out.p, x.p, y.p, n);
  return info.Env().Undefined();
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* op = "scale";
  CudaAddon& a = ready(info, op);
  auto x = view(info, 0, op, "a");
  float s = static_cast<float>(num(info, 1, op, "s"));
  scale(a.stream, x.dt, x.p, s, x.n);
  return info.Env().Undefined();
}

uint64_t seed_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  double d = num(info, i, op, "seed");
  GN_CHECK_RANGE(d >= 0 && d <= 9007199254740991.0, op, ": seed must be an integer in [0, 2^53), got ", d);
  return static_cast<uint64_t>(d);
}

Napi::Value Dropout(const Napi::CallbackInfo& info) {
  const char* op = "dropout";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  auto inp = view(info, 1, op, "inp");
  float p = static_cast<float>(num(info, 2, op, "p"));
  uint64_t seed = seed_arg(info, 3, op);
  uint64_t offset = static_cast<uint64_t>(dim(info, 4, op, "offset"));
  GN_CHECK_RANGE(p >= 0.0f && p < 1.0f, op, ": p must be in [0, 1), got ", p);
  need_exact(out, inp.n, op, "out", shp({inp.n}));
  dropout(a.stream, act_dtype(op, {{&out, "out"}, {&inp, "inp"}}), out.p, inp.p, inp.n, p, seed, offset);
  return info.Env().Undefined();
}

// Σ a² (double): per-block partials on the device, added on the host in block order
Napi::Value Sumsq(const Napi::CallbackInfo& info) {
  const char* op = "sumsq";
  CudaAddon& a = ready(info, op);
  auto x = view(info, 0, op, "a");
  if (x.n == 0) return Napi::Number::New(info.Env(), 0.0);
  const int64_t nb = sumsq_blocks(x.n);
  auto* part = static_cast<double*>(a.doubles.get(a.stream, nb * sizeof(double)));
  sumsq_partials(a.stream, x.dt, part, x.p, x.n);
  std::vector<double> host(static_cast<size_t>(nb));
  to_host(a, host.data(), part, nb * sizeof(double));
  double t = 0.0;
  for (double v : host) t += v;
  return Napi::Number::New(info.Env(), t);
}

// the CPU's check_ids (native/cpu/embedding.cpp), same messages
void check_ids(const int32_t* ids, int64_t n, int64_t V, int64_t T, int64_t P, int64_t pos0, const char* op) {
  GN_CHECK_RANGE(pos0 >= 0 && pos0 + T <= P, op, ": positions ", pos0, "..", pos0 + T - 1,
                 " exceed the context of ", P, " positions (n_positions); shorten the input");
  for (int64_t i = 0; i < n; ++i)
    GN_CHECK_RANGE(ids[i] >= 0 && ids[i] < V, op, ": token id ", ids[i], " at index ", i,
                   " is outside the vocabulary [0, ", V, "); check the tokenizer matches the model");
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  const char* op = "embedding_forward";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  auto ids = i32(info, 1, op, "ids");
  auto wte = view(info, 2, op, "wte");
  auto wpe = view(info, 3, op, "wpe");
  int64_t B = dim(info, 4, op, "B"), T = dim(info, 5, op, "T"), C = dim(info, 6, op, "C");
  int64_t V = dim(info, 7, op, "V"), P = dim(info, 8, op, "P"), pos0 = dim(info, 9, op, "pos0");
  need(out, B * T * C, op, "out", shp({B, T, C}));
  need(ids, B * T, op, "ids", shp({B, T}));
  need_exact(wte, V * C, op, "wte", shp({V, C}));
  need_exact(wpe, P * C, op, "wpe", shp({P, C}));
  check_ids(ids.p, B * T, V, T, P, pos0, op);
  auto* dids = static_cast<int32_t*>(a.ints.get(a.stream, B * T * sizeof(int32_t)));
  to_device(a, dids, ids.p, B * T * sizeof(int32_t));
  embedding_forward(a.stream, out.dt, out.p, dids, f32v(wte, op, "wte"), f32v(wpe, op, "wpe"), B, T, C, pos0);
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "embedding_backward";
  CudaAddon& a = ready(info, op);
  auto dwte = view(info, 0, op, "dwte", true);
  auto dwpe = view(info, 1, op, "dwpe", true);
  auto dout = view(info, 2, op, "dout");
  auto ids = i32(info, 3, op, "ids");
  int64_t B = dim(info, 4, op, "B"), T = dim(info, 5, op, "T"), C = dim(info, 6, op, "C");
  int64_t V = dim(info, 7, op, "V"), P = dim(info, 8, op, "P"), pos0 = dim(info, 9, op, "pos0");
  need_exact(dwte, V * C, op, "dwte", shp({V, C}));
  need_exact(dwpe, P * C, op, "dwpe", shp({P, C}));
  need(dout, B * T * C, op, "dout", shp({B, T, C}));
  need(ids, B * T, op, "ids", shp({B, T}));
  check_ids(ids.p, B * T, V, T, P, pos0, op);
  float* dwte_p = f32v(dwte, op, "dwte");
  float* dwpe_p = f32v(dwpe, op, "dwpe");
  const int64_t n = B * T;
  if (dwte.present && n > 0) {
    // group rows by id (counting sort, stable): uniq ids ascending, offs[u]..offs[u+1] index rows
    GN_CHECK_RANGE(n <= INT_MAX, op, ": B·T = ", n, " rows exceed 2^31-1");
    std::vector<int32_t> count(static_cast<size_t>(V), 0);
    for (int64_t i = 0; i < n; ++i) ++count[ids.p[i]];
    std::vector<int32_t> slot(static_cast<size_t>(V), -1);
    std::vector<int32_t> host;  // [uniq (U) | offs (U+1) | rows (n)]
    std::vector<int32_t> uniq, offs{0};
    for (int64_t v = 0; v < V; ++v)
      if (count[v] > 0) {
        slot[v] = static_cast<int32_t>(uniq.size());
        uniq.push_back(static_cast<int32_t>(v));
        offs.push_back(offs.back() + count[v]);
      }
    std::vector<int32_t> rows(static_cast<size_t>(n)), fillp(offs.begin(), offs.end() - 1);
    for (int64_t i = 0; i < n; ++i) rows[fillp[slot[ids.p[i]]]++] = static_cast<int32_t>(i);
    const int64_t U = static_cast<int64_t>(uniq.size());
    host.reserve(U + U + 1 + n);
    host.insert(host.end(), uniq.begin(), uniq.end());
    host.insert(host.end(), offs.begin(), offs.end());
    host.insert(host.end(), rows.begin(), rows.end());
    auto* d = static_cast<int32_t*>(a.ints.get(a.stream, host.size() * sizeof(int32_t)));
    to_device(a, d, host.data(), host.size() * sizeof(int32_t));
    embedding_backward_wte(a.stream, dout.dt, dwte_p, dout.p, d, d + U, d + 2 * U + 1, U, C);
  }
  if (dwpe.present) embedding_backward_wpe(a.stream, dout.dt, dwpe_p, dout.p, B, T, C, pos0);
  return info.Env().Undefined();
}

// the CPU's check_targets (native/cpu/softmax_xent.cpp), same message
void check_targets(const int32_t* targets, int64_t N, int64_t V, int32_t ignore, const char* op) {
  for (int64_t n = 0; n < N; ++n)
    GN_CHECK_RANGE(targets[n] == ignore || (targets[n] >= 0 && targets[n] < V), op, ": target ", targets[n],
                   " at row ", n, " is outside the vocabulary [0, ", V, ") and is not the ignore index ", ignore);
}

Napi::Value SoftmaxXentForward(const Napi::CallbackInfo& info) {
  const char* op = "softmax_xent_forward";
  CudaAddon& a = ready(info, op);
  auto losses = view(info, 0, op, "losses");
  auto lse = view(info, 1, op, "lse", true);
  auto logits = view(info, 2, op, "logits");
  auto targets = i32(info, 3, op, "targets");
  int64_t N = dim(info, 4, op, "N"), V = dim(info, 5, op, "V");
  int32_t ignore = static_cast<int32_t>(num(info, 6, op, "ignoreIndex"));
  const int64_t ld = info.Length() > 7 && !info[7].IsUndefined() ? dim(info, 7, op, "ld") : V;
  GN_CHECK_RANGE(ld >= V, op, ": the row stride ld = ", ld, " is less than V = ", V);
  need(losses, N, op, "losses", shp({N}));
  need(lse, N, op, "lse", shp({N}));
  need(logits, N > 0 ? (N - 1) * ld + V : 0, op, "logits", shp({N, V}));
  need(targets, N, op, "targets", shp({N}));
  // optional: dlogits (may be logits itself) and its scale, the backward's gradient written in the same pass
  auto dlogits = view(info, 8, op, "dlogits", true);
  need(dlogits, N > 0 ? (N - 1) * ld + V : 0, op, "dlogits", shp({N, V}));
  const float scale = dlogits.present ? static_cast<float>(num(info, 9, op, "scale")) : 1.0f;
  const DType dtype = act_dtype(op, {{&logits, "logits"}, {&dlogits, "dlogits"}});
  check_targets(targets.p, N, V, ignore, op);
  auto* dt = static_cast<int32_t*>(a.ints.get(a.stream, N * sizeof(int32_t)));
  to_device(a, dt, targets.p, N * sizeof(int32_t));
  softmax_xent_forward(a.stream, dtype, f32v(losses, op, "losses"), f32v(lse, op, "lse"), logits.p, dt, N, V,
                       ignore, ld, opt(dlogits), scale);
  int64_t count = 0;  // rows counted: from the host copy of the targets (no device round trip)
  for (int64_t n = 0; n < N; ++n) count += targets.p[n] != ignore;
  return Napi::Number::New(info.Env(), static_cast<double>(count));
}

Napi::Value SoftmaxXentBackward(const Napi::CallbackInfo& info) {
  const char* op = "softmax_xent_backward";
  CudaAddon& a = ready(info, op);
  auto dlogits = view(info, 0, op, "dlogits");
  auto logits = view(info, 1, op, "logits");
  auto lse = view(info, 2, op, "lse");
  auto targets = i32(info, 3, op, "targets");
  int64_t N = dim(info, 4, op, "N"), V = dim(info, 5, op, "V");
  int32_t ignore = static_cast<int32_t>(num(info, 6, op, "ignoreIndex"));
  float scale = static_cast<float>(num(info, 7, op, "scale"));
  const int64_t ld = info.Length() > 8 && !info[8].IsUndefined() ? dim(info, 8, op, "ld") : V;
  GN_CHECK_RANGE(ld >= V, op, ": the row stride ld = ", ld, " is less than V = ", V);
  const int64_t span = N > 0 ? (N - 1) * ld + V : 0;
  need(dlogits, span, op, "dlogits", shp({N, V}));
  need(logits, span, op, "logits", shp({N, V}));
  need(lse, N, op, "lse", shp({N}));
  need(targets, N, op, "targets", shp({N}));
  check_targets(targets.p, N, V, ignore, op);
  auto* dt = static_cast<int32_t*>(a.ints.get(a.stream, N * sizeof(int32_t)));
  to_device(a, dt, targets.p, N * sizeof(int32_t));
  softmax_xent_backward(a.stream, act_dtype(op, {{&dlogits, "dlogits"}, {&logits, "logits"}}), dlogits.p, logits.p,
                        f32v(lse, op, "lse"), dt, N, V, ignore, scale, ld);
  return info.Env().Undefined();
}

// attention shape object, parsed exactly as native/napi/ops.cc's attn_args
AttnDims attn_args(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (!info[i].IsObject())
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a shape object (argument ", i, ")"));
  Napi::Object o = info[i].As<Napi::Object>();
  auto get = [&](const char* key) -> double {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) throw KernelError(KernelError::Kind::Type, str_cat(op, ": shape.", key, " must be a number"));
    return v.As<Napi::Number>().DoubleValue();
  };
  auto pair = [&](const char* key, int64_t* out) {
    Napi::Value v = o.Get(key);
    if (!v.IsArray() || v.As<Napi::Array>().Length() != 2)
      throw KernelError(KernelError::Kind::Type, str_cat(op, ": shape.", key, " must be [batchStride, timeStride]"));
    Napi::Array a = v.As<Napi::Array>();
    out[0] = static_cast<int64_t>(a.Get(0u).As<Napi::Number>().DoubleValue());
    out[1] = static_cast<int64_t>(a.Get(1u).As<Napi::Number>().DoubleValue());
  };
  AttnDims r;
  r.B = static_cast<int64_t>(get("B"));
  r.Tq = static_cast<int64_t>(get("Tq"));
  r.Tk = static_cast<int64_t>(get("Tk"));
  r.NH = static_cast<int64_t>(get("NH"));
  r.HS = static_cast<int64_t>(get("HS"));
  r.q_pos0 = static_cast<int64_t>(get("qPos0"));
  r.window = static_cast<int64_t>(get("window"));
  r.dropout = static_cast<float>(get("dropout"));
  double seed = get("seed");
  GN_CHECK_RANGE(seed >= 0 && seed <= 9007199254740991.0, op, ": seed must be an integer in [0, 2^53)");
  r.seed = static_cast<uint64_t>(seed);
  pair("q", r.q);
  pair("k", r.k);
  pair("v", r.v);
  pair("o", r.o);
  return r;
}

// native/cpu/attention.cpp's check_shape, same messages, plus the head-size limit of the CUDA kernels
void check_shape(const AttnDims& s, const char* op) {
  GN_CHECK_RANGE(s.B > 0 && s.Tq > 0 && s.NH > 0 && s.HS > 0, op, ": empty shape B=", s.B, " Tq=", s.Tq,
                 " NH=", s.NH, " HS=", s.HS);
  GN_CHECK_RANGE(s.q_pos0 >= 0 && s.q_pos0 + s.Tq <= s.Tk, op, ": queries at positions ", s.q_pos0, "..",
                 s.q_pos0 + s.Tq - 1, " need ", s.q_pos0 + s.Tq, " keys but only Tk=", s.Tk, " are given");
  GN_CHECK_RANGE(s.window >= 0, op, ": window must be >= 0 (0 = dense), got ", s.window);
  GN_CHECK_RANGE(s.dropout >= 0.0f && s.dropout < 1.0f, op, ": dropout must be in [0, 1), got ", s.dropout);
  GN_CHECK_RANGE(s.HS <= kMaxHeadSize, op, ": head size ", s.HS, " exceeds the CUDA kernels' limit of ",
                 kMaxHeadSize);
}

void need_view(const DView& a, const int64_t* st, int64_t B, int64_t T, int64_t width, const char* op,
               const char* name) {
  if (!a.present) return;
  GN_CHECK_RANGE(st[0] >= 0 && st[1] >= width, op, ": ", name, " strides [", st[0], ",", st[1],
                 "] are too small for rows of ", width);
  int64_t req = (B - 1) * st[0] + (T - 1) * st[1] + width;
  need(a, req, op, name, str_cat("(B=", B, ",T=", T, ",", width, ") with strides [", st[0], ",", st[1], "]"));
}

// Which attention kernels run this call (setAttention; flash and flash2 only where attention_flash_supported: bf16,
// its head sizes, and kernels built for this device at sm_80 or later; else as 'gemm')
enum class AttnPath { kGemm, kFused, kFlash };
AttnPath attn_path(CudaAddon& a, DType dt, const AttnDims& s, bool backward) {
  if (a.attn_kind == CudaAddon::Attn::kFlash || a.attn_kind == CudaAddon::Attn::kFlash2) {
    if (attention_flash_supported(dt, s, backward)) {
      ++a.flash_calls;
      return AttnPath::kFlash;
    }
    ++a.flash_fallbacks;
  }
  if (a.attn_kind != CudaAddon::Attn::kFused && attention_gemm_usable(a)) return AttnPath::kGemm;
  return AttnPath::kFused;
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* op = "attention_forward";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  auto lse = view(info, 1, op, "lse", true);
  auto q = view(info, 2, op, "q");
  auto k = view(info, 3, op, "k");
  auto v = view(info, 4, op, "v");
  AttnDims s = attn_args(info, 5, op);
  // shape.slots (decode slots, graph.cc): one new query per row at the position the slots hold on the device, over
  // a cache of the slots' positions (Tk must be that many; qPos0 is not used)
  Napi::Value sv = info[5].As<Napi::Object>().Get("slots");
  DecodeSlots* slots = sv.IsUndefined() || sv.IsNull() ? nullptr : slots_of(sv, op, "shape.slots");
  if (slots) {
    GN_CHECK_RANGE(s.Tq == 1 && s.Tk == slots->positions && s.B <= slots->rows, op,
                   ": with shape.slots, Tq must be 1, Tk the slots' positions (", slots->positions,
                   ") and B at most their rows (", slots->rows, "); got Tq=", s.Tq, " Tk=", s.Tk, " B=", s.B);
    GN_CHECK_RANGE(!lse.present && s.dropout == 0.0f, op, ": with shape.slots (decoding) there is no lse and no dropout");
    s.q_pos0 = s.Tk - 1;  // for the checks below: the last position the slots allow
  }
  int64_t W = s.NH * s.HS;
  need_view(out, s.o, s.B, s.Tq, W, op, "out");
  need_view(q, s.q, s.B, s.Tq, W, op, "q");
  need_view(k, s.k, s.B, s.Tk, W, op, "k");
  need_view(v, s.v, s.B, s.Tk, W, op, "v");
  need(lse, s.B * s.NH * s.Tq, op, "lse", shp({s.B, s.NH, s.Tq}));
  check_shape(s, op);
  const DType dt = act_dtype(op, {{&out, "out"}, {&q, "q"}, {&k, "k"}, {&v, "v"}});
  if (slots) {
    const int64_t np = attention_decode_partials(s);
    float* part = np ? static_cast<float*>(a.floats.get(a.stream, np * sizeof(float))) : nullptr;
    attention_decode(a.stream, dt, out.p, q.p, k.p, v.p, s, slots->d, part);
    return info.Env().Undefined();
  }
  float* lp = f32v(lse, op, "lse");
  switch (attn_path(a, dt, s, false)) {
    case AttnPath::kFlash:
      attention_forward_flash(a.stream, out.p, lp, q.p, k.p, v.p, s, a.attn_kind == CudaAddon::Attn::kFlash2);
      break;
    case AttnPath::kGemm: attention_forward_gemm(a, dt, out.p, lp, q.p, k.p, v.p, s); break;
    case AttnPath::kFused: attention_forward(a.stream, dt, out.p, lp, q.p, k.p, v.p, s); break;
  }
  return info.Env().Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "attention_backward";
  CudaAddon& a = ready(info, op);
  auto dq = view(info, 0, op, "dq");
  auto dk = view(info, 1, op, "dk");
  auto dv = view(info, 2, op, "dv");
  auto dout = view(info, 3, op, "dout");
  auto q = view(info, 4, op, "q");
  auto k = view(info, 5, op, "k");
  auto v = view(info, 6, op, "v");
  auto out = view(info, 7, op, "out");
  auto lse = view(info, 8, op, "lse");
  AttnDims s = attn_args(info, 9, op);
  int64_t W = s.NH * s.HS;
  need_view(dq, s.q, s.B, s.Tq, W, op, "dq");
  need_view(dk, s.k, s.B, s.Tk, W, op, "dk");
  need_view(dv, s.v, s.B, s.Tk, W, op, "dv");
  need_view(dout, s.o, s.B, s.Tq, W, op, "dout");
  need_view(q, s.q, s.B, s.Tq, W, op, "q");
  need_view(k, s.k, s.B, s.Tk, W, op, "k");
  need_view(v, s.v, s.B, s.Tk, W, op, "v");
  need_view(out, s.o, s.B, s.Tq, W, op, "out");
  need(lse, s.B * s.NH * s.Tq, op, "lse", shp({s.B, s.NH, s.Tq}));
  check_shape(s, op);
  const DType dt = act_dtype(op, {{&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}, {&dout, "dout"}, {&q, "q"}, {&k, "k"},
                                  {&v, "v"}, {&out, "out"}});
  float* lp = f32v(lse, op, "lse");
  const AttnPath path = attn_path(a, dt, s, true);
  if (path == AttnPath::kGemm) {
    attention_backward_gemm(a, dt, dq.p, dk.p, dv.p, dout.p, q.p, k.p, v.p, lp, s);
  } else {
    // D (B·NH·Tq floats), then, for setFlashBackward('atomic'), dQ's fp32 sums (B·NH·Tq·HS) from the next 256-byte
    // boundary (the kernel adds into them 16 bytes at a time)
    const int64_t rows = s.B * s.NH * s.Tq, acc_at = (rows + 63) / 64 * 64;
    const bool atomic = path == AttnPath::kFlash && a.flash_atomic_dq;
    auto* D = static_cast<float*>(a.floats.get(a.stream, (atomic ? acc_at + rows * s.HS : rows) * sizeof(float)));
    if (path == AttnPath::kFlash)
      attention_backward_flash(a.stream, dq.p, dk.p, dv.p, dout.p, q.p, k.p, v.p, out.p, lp, D, s,
                               a.attn_kind == CudaAddon::Attn::kFlash2, atomic ? D + acc_at : nullptr);
    else
      attention_backward(a.stream, dt, dq.p, dk.p, dv.p, dout.p, q.p, k.p, v.p, out.p, lp, D, s);
  }
  return info.Env().Undefined();
}

// flashProbe(out, x, y, p, v): the flash kernels' tensor-core products one at a time on 64×64 bf16 tiles
// (kernels.h: flash_probe): a diagnostic for the tests and gpu-check, which names the building block that
// disagrees with the plain product. out: fp32, 6·4096 elements.
Napi::Value FlashProbe(const Napi::CallbackInfo& info) {
  const char* op = "flash_probe";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  need_exact(out, 6 * 4096, op, "out", shp({6, 64, 64}));
  const char* names[4] = {"x", "y", "p", "v"};
  DView in[4];
  for (int i = 0; i < 4; ++i) {
    in[i] = view(info, 1 + i, op, names[i]);
    need_exact(in[i], 4096, op, names[i], shp({64, 64}));
    if (in[i].dt != kBF16)
      throw KernelError(KernelError::Kind::Type,
                        str_cat(op, ": expected a bf16 buffer for ", names[i], " (argument ", 1 + i, ") but received fp32"));
  }
  if (!flash_probe(a.stream, f32v(out, op, "out"), in[0].p, in[1].p, in[2].p, in[3].p))
    throw KernelError(KernelError::Kind::Generic,
                      str_cat(op, ": the flash kernels have no sm_80 or later image for this device; build for its "
                                  "architecture (CUDA_ARCHS) to run them"));
  return info.Env().Undefined();
}

Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  const char* op = "adamw_step";
  CudaAddon& a = ready(info, op);
  auto p = view(info, 0, op, "param");
  auto g = view(info, 1, op, "grad");
  auto m = view(info, 2, op, "m");
  auto v = view(info, 3, op, "v");
  int64_t n = p.n;
  need_exact(g, n, op, "grad", shp({n}));
  need_exact(m, n, op, "m", shp({n}));
  need_exact(v, n, op, "v", shp({n}));
  float lr = static_cast<float>(num(info, 4, op, "lr"));
  float b1 = static_cast<float>(num(info, 5, op, "beta1"));
  float b2 = static_cast<float>(num(info, 6, op, "beta2"));
  float eps = static_cast<float>(num(info, 7, op, "eps"));
  float wd = static_cast<float>(num(info, 8, op, "weightDecay"));
  int64_t step = dim(info, 9, op, "step");
  float gs = static_cast<float>(num(info, 10, op, "gradScale"));
  auto p16 = view(info, 11, op, "param16", true);
  need_exact(p16, n, op, "param16", shp({n}));
  if (p16.present && p16.dt != kBF16)
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a bf16 buffer for param16 (argument 11) but received fp32"));
  GN_CHECK_RANGE(step >= 1, op, ": step counts from 1, got ", step);
  float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(b1), static_cast<double>(step)));
  float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(b2), static_cast<double>(step)));
  adamw_step(a.stream, f32v(p, op, "param"), f32v(g, op, "grad"), f32v(m, op, "m"), f32v(v, op, "v"), n, lr, b1, b2,
             eps, wd, bc1, bc2, gs, p16.present ? p16.p : nullptr);
  return info.Env().Undefined();
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  auto def = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, guard_call, name, reinterpret_cast<void*>(fn)));
  };
  def("gemm", Gemm);
  def("linearForward", LinearForward);
  def("linearBackward", LinearBackward);
  def("layernormForward", LayernormForward);
  def("layernormBackward", LayernormBackward);
  def("geluForward", GeluForward);
  def("geluBackward", GeluBackward);
  def("add", Add);
  def("scale", Scale);
  def("dropout", Dropout);
  def("sumsq", Sumsq);
  def("embeddingForward", EmbeddingForward);
  def("embeddingBackward", EmbeddingBackward);
  def("softmaxXentForward", SoftmaxXentForward);
  def("softmaxXentBackward", SoftmaxXentBackward);
  def("attentionForward", AttentionForward);
  def("attentionBackward", AttentionBackward);
  def("adamwStep", AdamwStep);
  def("flashProbe", FlashProbe);
}

}  // namespace cuda
}  // namespace gn
