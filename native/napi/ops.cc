// N-API wrappers for the CPU kernels: unpack, check lengths, call. See lib/native.ts for the JS types.
#include <napi.h>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "napi/args.h"
#include "napi/guard.h"

namespace gn {

namespace {

std::string shp(std::initializer_list<int64_t> d) {
  std::string s = "(";
  bool first = true;
  for (auto x : d) { s += (first ? "" : ",") + std::to_string(x); first = false; }
  return s + ")";
}

// extent of a row-major (rows, cols) operand with leading dimension ld
int64_t extent(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* op = "gemm";
  bool ta = flag(info, 0), tb = flag(info, 1);
  int64_t M = dim(info, 2, op, "M"), N = dim(info, 3, op, "N"), K = dim(info, 4, op, "K");
  float alpha = static_cast<float>(num(info, 5, op, "alpha"));
  auto A = arr<float>(info, 6, op, "A");
  int64_t lda = dim(info, 7, op, "lda");
  auto B = weight_arr(info, 8, op, "B");
  int64_t ldb = dim(info, 9, op, "ldb");
  auto C = arr<float>(info, 10, op, "C");
  int64_t ldc = dim(info, 11, op, "ldc");
  bool acc = flag(info, 12);
  auto bias = arr<float>(info, 13, op, "bias", true);
  GN_CHECK_RANGE(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N, op,
                 ": leading dimensions too small: lda=", lda, " ldb=", ldb, " ldc=", ldc, " for M=", M, " N=", N,
                 " K=", K);
  need(A, ta ? extent(K, M, lda) : extent(M, K, lda), op, "A", ta ? shp({K, M}) : shp({M, K}));
  const int64_t needB = tb ? extent(N, K, ldb) : extent(K, N, ldb);
  need(B.f, needB, op, "B", tb ? shp({N, K}) : shp({K, N}));
  need(B.h, needB, op, "B", tb ? shp({N, K}) : shp({K, N}));
  need(C, extent(M, N, ldc), op, "C", shp({M, N}));
  need(bias, N, op, "bias", shp({N}));
  if (B.bf16()) gemm_bf16b(ta, tb, M, N, K, alpha, A.p, lda, B.h.p, ldb, C.p, ldc, acc, bias.p, pool_of(info));
  else gemm(ta, tb, M, N, K, alpha, A.p, lda, B.f.p, ldb, C.p, ldc, acc, bias.p, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  const char* op = "linear_forward";
  auto out = arr<float>(info, 0, op, "out");
  auto inp = arr<float>(info, 1, op, "inp");
  auto w = weight_arr(info, 2, op, "weight");
  auto b = arr<float>(info, 3, op, "bias", true);
  int64_t N = dim(info, 4, op, "N"), C = dim(info, 5, op, "C"), OC = dim(info, 6, op, "OC");
  need(out, N * OC, op, "out", shp({N, OC}));
  need(inp, N * C, op, "inp", shp({N, C}));
  need_exact(w.f, C * OC, op, "weight", shp({C, OC}));
  need_exact(w.h, C * OC, op, "weight", shp({C, OC}));
  need_exact(b, OC, op, "bias", shp({OC}));
  // optional: gelu_out (=) = GELU(out), the MLP's first layer with its activation (out keeps the input of GELU)
  auto gout = arr<float>(info, 7, op, "geluOut", true);
  need(gout, N * OC, op, "geluOut", shp({N, OC}));
  GN_CHECK_RANGE(!gout.p || gout.p >= out.p + N * OC || out.p >= gout.p + N * OC, op,
                 ": geluOut shares memory with out; give it its own array (out keeps the GELU input)");
  if (w.bf16()) linear_forward(out.p, inp.p, w.h.p, b.p, N, C, OC, pool_of(info));
  else linear_forward(out.p, inp.p, w.f.p, b.p, N, C, OC, pool_of(info));
  if (gout.p) gelu_forward(gout.p, out.p, N * OC, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  const char* op = "linear_backward";
  auto dinp = arr<float>(info, 0, op, "dinp", true);
  auto dw = arr<float>(info, 1, op, "dweight", true);
  auto db = arr<float>(info, 2, op, "dbias", true);
  auto dout = arr<float>(info, 3, op, "dout");
  auto inp = arr<float>(info, 4, op, "inp");
  auto w = weight_arr(info, 5, op, "weight");
  int64_t N = dim(info, 6, op, "N"), C = dim(info, 7, op, "C"), OC = dim(info, 8, op, "OC");
  need(dinp, N * C, op, "dinp", shp({N, C}));
  need_exact(dw, C * OC, op, "dweight", shp({C, OC}));
  need_exact(db, OC, op, "dbias", shp({OC}));
  need(dout, N * OC, op, "dout", shp({N, OC}));
  need(inp, N * C, op, "inp", shp({N, C}));
  need_exact(w.f, C * OC, op, "weight", shp({C, OC}));
  need_exact(w.h, C * OC, op, "weight", shp({C, OC}));
  // optional: gelu_pre, the input of the GELU that made `inp`: dinp is then the gradient at gelu_pre
  // (dout·weightᵀ times GELU'(gelu_pre)), the MLP's second layer and its activation's backward in one call
  auto pre = arr<float>(info, 9, op, "geluPre", true);
  need(pre, N * C, op, "geluPre", shp({N, C}));
  GN_CHECK_RANGE(!pre.p || !dinp.p || pre.p >= dinp.p + N * C || dinp.p >= pre.p + N * C, op,
                 ": dinp shares memory with geluPre; give it its own array (geluPre is read after dinp is written)");
  if (w.bf16()) linear_backward(dinp.p, dw.p, db.p, dout.p, inp.p, w.h.p, N, C, OC, pool_of(info));
  else linear_backward(dinp.p, dw.p, db.p, dout.p, inp.p, w.f.p, N, C, OC, pool_of(info));
  if (pre.p && dinp.p) gelu_backward(dinp.p, pre.p, dinp.p, N * C, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value LayernormForward(const Napi::CallbackInfo& info) {
  const char* op = "layernorm_forward";
  auto out = arr<float>(info, 0, op, "out");
  auto mean = arr<float>(info, 1, op, "mean", true);
  auto rstd = arr<float>(info, 2, op, "rstd", true);
  auto inp = arr<float>(info, 3, op, "inp");
  auto w = arr<float>(info, 4, op, "weight");
  auto b = arr<float>(info, 5, op, "bias");
  int64_t N = dim(info, 6, op, "N"), C = dim(info, 7, op, "C");
  float eps = static_cast<float>(num(info, 8, op, "eps"));
  need(out, N * C, op, "out", shp({N, C}));
  need(inp, N * C, op, "inp", shp({N, C}));
  need(mean, N, op, "mean", shp({N}));
  need(rstd, N, op, "rstd", shp({N}));
  need_exact(w, C, op, "weight", shp({C}));
  need_exact(b, C, op, "bias", shp({C}));
  // optional: addA, addB: inp = addA + addB is written first (the residual stream's add in the same pass)
  auto addA = arr<float>(info, 9, op, "addA", true);
  auto addB = arr<float>(info, 10, op, "addB", !addA.present);
  need(addA, N * C, op, "addA", shp({N, C}));
  need(addB, N * C, op, "addB", shp({N, C}));
  if (addA.present)
    add_layernorm_forward(out.p, mean.p, rstd.p, inp.p, addA.p, addB.p, w.p, b.p, N, C, eps, pool_of(info));
  else
    layernorm_forward(out.p, mean.p, rstd.p, inp.p, w.p, b.p, N, C, eps, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  const char* op = "layernorm_backward";
  auto dinp = arr<float>(info, 0, op, "dinp", true);
  auto dw = arr<float>(info, 1, op, "dweight");
  auto db = arr<float>(info, 2, op, "dbias");
  auto dout = arr<float>(info, 3, op, "dout");
  auto inp = arr<float>(info, 4, op, "inp");
  auto w = arr<float>(info, 5, op, "weight");
  auto mean = arr<float>(info, 6, op, "mean");
  auto rstd = arr<float>(info, 7, op, "rstd");
  int64_t N = dim(info, 8, op, "N"), C = dim(info, 9, op, "C");
  need(dinp, N * C, op, "dinp", shp({N, C}));
  need_exact(dw, C, op, "dweight", shp({C}));
  need_exact(db, C, op, "dbias", shp({C}));
  need(dout, N * C, op, "dout", shp({N, C}));
  need(inp, N * C, op, "inp", shp({N, C}));
  need_exact(w, C, op, "weight", shp({C}));
  need(mean, N, op, "mean", shp({N}));
  need(rstd, N, op, "rstd", shp({N}));
  const bool accumulate = flag(info, 10);  // optional: dinp += instead of =
  layernorm_backward(dinp.p, dw.p, db.p, dout.p, inp.p, w.p, mean.p, rstd.p, N, C, pool_of(info), accumulate);
  return info.Env().Undefined();
}

Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  const char* op = "gelu_forward";
  auto out = arr<float>(info, 0, op, "out");
  auto inp = arr<float>(info, 1, op, "inp");
  need_exact(out, static_cast<int64_t>(inp.n), op, "out", shp({static_cast<int64_t>(inp.n)}));
  gelu_forward(out.p, inp.p, inp.n, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const char* op = "gelu_backward";
  auto dinp = arr<float>(info, 0, op, "dinp");
  auto inp = arr<float>(info, 1, op, "inp");
  auto dout = arr<float>(info, 2, op, "dout");
  int64_t n = inp.n;
  need_exact(dinp, n, op, "dinp", shp({n}));
  need_exact(dout, n, op, "dout", shp({n}));
  gelu_backward(dinp.p, inp.p, dout.p, n, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* op = "add";
  auto out = arr<float>(info, 0, op, "out");
  auto a = arr<float>(info, 1, op, "a");
  auto b = arr<float>(info, 2, op, "b");
  int64_t n = a.n;
  need_exact(b, n, op, "b", shp({n}));
  need_exact(out, n, op, "out", shp({n}));
  add_forward(out.p, a.p, b.p, n, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* op = "scale";
  auto a = arr<float>(info, 0, op, "a");
  float s = static_cast<float>(num(info, 1, op, "s"));
  scale_inplace(a.p, s, a.n, pool_of(info));
  return info.Env().Undefined();
}

uint64_t seed_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  double d = num(info, i, op, "seed");
  GN_CHECK_RANGE(d >= 0 && d <= 9007199254740991.0, op, ": seed must be an integer in [0, 2^53), got ", d);
  return static_cast<uint64_t>(d);
}

Napi::Value Dropout(const Napi::CallbackInfo& info) {
  const char* op = "dropout";
  auto out = arr<float>(info, 0, op, "out");
  auto inp = arr<float>(info, 1, op, "inp");
  float p = static_cast<float>(num(info, 2, op, "p"));
  uint64_t seed = seed_arg(info, 3, op);
  uint64_t offset = static_cast<uint64_t>(dim(info, 4, op, "offset"));
  GN_CHECK_RANGE(p >= 0.0f && p < 1.0f, op, ": p must be in [0, 1), got ", p);
  need_exact(out, static_cast<int64_t>(inp.n), op, "out", shp({static_cast<int64_t>(inp.n)}));
  dropout_forward(out.p, inp.p, inp.n, p, seed, offset, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value Sumsq(const Napi::CallbackInfo& info) {
  auto a = arr<float>(info, 0, "sumsq", "a");
  return Napi::Number::New(info.Env(), sumsq(a.p, a.n, pool_of(info)));
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  const char* op = "embedding_forward";
  auto out = arr<float>(info, 0, op, "out");
  auto ids = arr<int32_t>(info, 1, op, "ids");
  auto wte = arr<float>(info, 2, op, "wte");
  auto wpe = arr<float>(info, 3, op, "wpe");
  int64_t B = dim(info, 4, op, "B"), T = dim(info, 5, op, "T"), C = dim(info, 6, op, "C");
  int64_t V = dim(info, 7, op, "V"), P = dim(info, 8, op, "P"), pos0 = dim(info, 9, op, "pos0");
  need(out, B * T * C, op, "out", shp({B, T, C}));
  need(ids, B * T, op, "ids", shp({B, T}));
  need_exact(wte, V * C, op, "wte", shp({V, C}));
  need_exact(wpe, P * C, op, "wpe", shp({P, C}));
  embedding_forward(out.p, ids.p, wte.p, wpe.p, B, T, C, V, P, pos0, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "embedding_backward";
  auto dwte = arr<float>(info, 0, op, "dwte", true);
  auto dwpe = arr<float>(info, 1, op, "dwpe", true);
  auto dout = arr<float>(info, 2, op, "dout");
  auto ids = arr<int32_t>(info, 3, op, "ids");
  int64_t B = dim(info, 4, op, "B"), T = dim(info, 5, op, "T"), C = dim(info, 6, op, "C");
  int64_t V = dim(info, 7, op, "V"), P = dim(info, 8, op, "P"), pos0 = dim(info, 9, op, "pos0");
  need_exact(dwte, V * C, op, "dwte", shp({V, C}));
  need_exact(dwpe, P * C, op, "dwpe", shp({P, C}));
  need(dout, B * T * C, op, "dout", shp({B, T, C}));
  need(ids, B * T, op, "ids", shp({B, T}));
  embedding_backward(dwte.p, dwpe.p, dout.p, ids.p, B, T, C, V, P, pos0, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value SoftmaxXentForward(const Napi::CallbackInfo& info) {
  const char* op = "softmax_xent_forward";
  auto losses = arr<float>(info, 0, op, "losses");
  auto lse = arr<float>(info, 1, op, "lse", true);
  auto logits = arr<float>(info, 2, op, "logits");
  auto targets = arr<int32_t>(info, 3, op, "targets");
  int64_t N = dim(info, 4, op, "N"), V = dim(info, 5, op, "V");
  int32_t ignore = static_cast<int32_t>(num(info, 6, op, "ignoreIndex"));
  const int64_t ld = info.Length() > 7 && !info[7].IsUndefined() ? dim(info, 7, op, "ld") : V;
  GN_CHECK_RANGE(ld >= V, op, ": the row stride ld = ", ld, " is less than V = ", V);
  need(losses, N, op, "losses", shp({N}));
  need(lse, N, op, "lse", shp({N}));
  need(logits, N > 0 ? (N - 1) * ld + V : 0, op, "logits", shp({N, V}));
  need(targets, N, op, "targets", shp({N}));
  // optional: dlogits (may be logits itself) and its scale, the backward's gradient written in the same pass
  auto dlogits = arr<float>(info, 8, op, "dlogits", true);
  need(dlogits, N > 0 ? (N - 1) * ld + V : 0, op, "dlogits", shp({N, V}));
  const float scale = dlogits.present ? static_cast<float>(num(info, 9, op, "scale")) : 1.0f;
  int64_t count = softmax_xent_forward(losses.p, lse.p, logits.p, targets.p, N, V, ignore, pool_of(info), ld,
                                       dlogits.present ? dlogits.p : nullptr, scale);
  return Napi::Number::New(info.Env(), static_cast<double>(count));
}

Napi::Value SoftmaxXentBackward(const Napi::CallbackInfo& info) {
  const char* op = "softmax_xent_backward";
  auto dlogits = arr<float>(info, 0, op, "dlogits");
  auto logits = arr<float>(info, 1, op, "logits");
  auto lse = arr<float>(info, 2, op, "lse");
  auto targets = arr<int32_t>(info, 3, op, "targets");
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
  softmax_xent_backward(dlogits.p, logits.p, lse.p, targets.p, N, V, ignore, scale, pool_of(info), ld);
  return info.Env().Undefined();
}

// attention shape object: {B, Tq, Tk, NH, HS, qPos0, window, dropout, seed,
//                          q: [sb, st], k: [sb, st], v: [sb, st], o: [sb, st]}
struct AttnArgs {
  AttnShape s;
  int64_t q[2], k[2], v[2], o[2];
};

AttnArgs attn_args(const Napi::CallbackInfo& info, size_t i, const char* op) {
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
  AttnArgs r;
  r.s.B = static_cast<int64_t>(get("B"));
  r.s.Tq = static_cast<int64_t>(get("Tq"));
  r.s.Tk = static_cast<int64_t>(get("Tk"));
  r.s.NH = static_cast<int64_t>(get("NH"));
  r.s.HS = static_cast<int64_t>(get("HS"));
  r.s.q_pos0 = static_cast<int64_t>(get("qPos0"));
  r.s.window = static_cast<int64_t>(get("window"));
  r.s.dropout = static_cast<float>(get("dropout"));
  double seed = get("seed");
  GN_CHECK_RANGE(seed >= 0 && seed <= 9007199254740991.0, op, ": seed must be an integer in [0, 2^53)");
  r.s.seed = static_cast<uint64_t>(seed);
  pair("q", r.q);
  pair("k", r.k);
  pair("v", r.v);
  pair("o", r.o);
  return r;
}

void need_view(const View<float>& a, const int64_t* st, int64_t B, int64_t T, int64_t width, const char* op,
               const char* name) {
  if (!a.present) return;
  GN_CHECK_RANGE(st[0] >= 0 && st[1] >= width, op, ": ", name, " strides [", st[0], ",", st[1],
                 "] are too small for rows of ", width);
  int64_t req = (B - 1) * st[0] + (T - 1) * st[1] + width;
  need(a, req, op, name, str_cat("(B=", B, ",T=", T, ",", width, ") with strides [", st[0], ",", st[1], "]"));
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* op = "attention_forward";
  auto out = arr<float>(info, 0, op, "out");
  auto lse = arr<float>(info, 1, op, "lse", true);
  auto q = arr<float>(info, 2, op, "q");
  auto k = arr<float>(info, 3, op, "k");
  auto v = arr<float>(info, 4, op, "v");
  AttnArgs a = attn_args(info, 5, op);
  const auto& s = a.s;
  int64_t W = s.NH * s.HS;
  need_view(out, a.o, s.B, s.Tq, W, op, "out");
  need_view(q, a.q, s.B, s.Tq, W, op, "q");
  need_view(k, a.k, s.B, s.Tk, W, op, "k");
  need_view(v, a.v, s.B, s.Tk, W, op, "v");
  need(lse, s.B * s.NH * s.Tq, op, "lse", shp({s.B, s.NH, s.Tq}));
  attention_forward({out.p, a.o[0], a.o[1]}, lse.p, {q.p, a.q[0], a.q[1]}, {k.p, a.k[0], a.k[1]},
                    {v.p, a.v[0], a.v[1]}, s, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "attention_backward";
  auto dq = arr<float>(info, 0, op, "dq");
  auto dk = arr<float>(info, 1, op, "dk");
  auto dv = arr<float>(info, 2, op, "dv");
  auto dout = arr<float>(info, 3, op, "dout");
  auto q = arr<float>(info, 4, op, "q");
  auto k = arr<float>(info, 5, op, "k");
  auto v = arr<float>(info, 6, op, "v");
  auto out = arr<float>(info, 7, op, "out");
  auto lse = arr<float>(info, 8, op, "lse");
  AttnArgs a = attn_args(info, 9, op);
  const auto& s = a.s;
  int64_t W = s.NH * s.HS;
  need_view(dq, a.q, s.B, s.Tq, W, op, "dq");
  need_view(dk, a.k, s.B, s.Tk, W, op, "dk");
  need_view(dv, a.v, s.B, s.Tk, W, op, "dv");
  need_view(dout, a.o, s.B, s.Tq, W, op, "dout");
  need_view(q, a.q, s.B, s.Tq, W, op, "q");
  need_view(k, a.k, s.B, s.Tk, W, op, "k");
  need_view(v, a.v, s.B, s.Tk, W, op, "v");
  need_view(out, a.o, s.B, s.Tq, W, op, "out");
  need(lse, s.B * s.NH * s.Tq, op, "lse", shp({s.B, s.NH, s.Tq}));
  attention_backward({dq.p, a.q[0], a.q[1]}, {dk.p, a.k[0], a.k[1]}, {dv.p, a.v[0], a.v[1]},
                     {dout.p, a.o[0], a.o[1]}, {q.p, a.q[0], a.q[1]}, {k.p, a.k[0], a.k[1]},
                     {v.p, a.v[0], a.v[1]}, {out.p, a.o[0], a.o[1]}, lse.p, s, pool_of(info));
  return info.Env().Undefined();
}

Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  const char* op = "adamw_step";
  auto p = arr<float>(info, 0, op, "param");
  auto g = arr<float>(info, 1, op, "grad");
  auto m = arr<float>(info, 2, op, "m");
  auto v = arr<float>(info, 3, op, "v");
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
  auto p16 = arr<uint16_t>(info, 11, op, "param16", true);
  need_exact(p16, n, op, "param16", shp({n}));
  GN_CHECK_RANGE(step >= 1, op, ": step counts from 1, got ", step);
  adamw_step(p.p, g.p, m.p, v.p, n, lr, b1, b2, eps, wd, step, gs, pool_of(info), p16.present ? p16.p : nullptr);
  return info.Env().Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), pool_of(info)->size());
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int64_t n = dim(info, 0, "setThreads", "n");
  GN_CHECK_RANGE(n >= 1 && n <= 1024, "setThreads: expected a thread count in [1, 1024], got ", n);
  AddonData* d = info.Env().GetInstanceData<AddonData>();
  if (d->pool->size() != n) {
    delete d->pool;
    d->pool = new ThreadPool(static_cast<int>(n));
  }
  return info.Env().Undefined();
}

Napi::Value ToBf16(const Napi::CallbackInfo& info) {
  const char* op = "to_bf16";
  auto dst = arr<uint16_t>(info, 0, op, "dst");
  auto src = arr<float>(info, 1, op, "src");
  GN_CHECK_RANGE(dst.n == src.n, op, ": dst has ", dst.n, " elements but src has ", src.n);
  f32_to_bf16(dst.p, src.p, static_cast<int64_t>(src.n), pool_of(info));
  return info.Env().Undefined();
}

// setMathMode('fp32' | 'bf16') → the mode now in effect ('fp32' where the processor lacks bf16 arithmetic)
Napi::Value SetMathMode(const Napi::CallbackInfo& info) {
  const std::string m = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (m != "fp32" && m != "bf16")
    throw KernelError(KernelError::Kind::Range, "set_math_mode: expected 'fp32' or 'bf16' for mode");
  return Napi::String::New(info.Env(), set_gemm_math_bf16(m == "bf16") ? "bf16" : "fp32");
}

Napi::Value MathMode(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), gemm_math_bf16() ? "bf16" : "fp32");
}

Napi::Value GemmIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), gemm_isa()); }

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
  def("threads", Threads);
  def("setThreads", SetThreads);
  def("gemmIsa", GemmIsa);
  def("toBf16", ToBf16);
  def("setMathMode", SetMathMode);
  def("mathMode", MathMode);
}

}  // namespace gn
