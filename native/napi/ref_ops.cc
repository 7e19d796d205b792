// N-API wrappers for the double-precision reference kernels (native/ref): the oracle of the tests.
// Exported under `ref`. Arguments mirror the fast kernels, with Float64Array data.
#include <napi.h>

#include "napi/args.h"
#include "napi/guard.h"
#include "ref/ref.h"
#include "cpu/kernels.h"

namespace gn {
namespace {

using D = View<double>;

Napi::Value RGemm(const Napi::CallbackInfo& info) {
  const char* op = "ref.gemm";
  bool ta = flag(info, 0), tb = flag(info, 1);
  int64_t M = dim(info, 2, op, "M"), N = dim(info, 3, op, "N"), K = dim(info, 4, op, "K");
  double alpha = num(info, 5, op, "alpha");
  D A = arr<double>(info, 6, op, "A");
  int64_t lda = dim(info, 7, op, "lda");
  D B = arr<double>(info, 8, op, "B");
  int64_t ldb = dim(info, 9, op, "ldb");
  D C = arr<double>(info, 10, op, "C");
  int64_t ldc = dim(info, 11, op, "ldc");
  bool acc = flag(info, 12);
  D bias = arr<double>(info, 13, op, "bias", true);
  need(A, ta ? (K - 1) * lda + M : (M - 1) * lda + K, op, "A", "");
  need(B, tb ? (N - 1) * ldb + K : (K - 1) * ldb + N, op, "B", "");
  need(C, (M - 1) * ldc + N, op, "C", "");
  need(bias, N, op, "bias", "");
  ref::gemm(ta, tb, M, N, K, alpha, A.p, lda, B.p, ldb, C.p, ldc, acc, bias.p);
  return info.Env().Undefined();
}

Napi::Value RLayernormForward(const Napi::CallbackInfo& info) {
  const char* op = "ref.layernormForward";
  D out = arr<double>(info, 0, op, "out"), inp = arr<double>(info, 1, op, "inp");
  D w = arr<double>(info, 2, op, "w"), b = arr<double>(info, 3, op, "b");
  int64_t N = dim(info, 4, op, "N"), C = dim(info, 5, op, "C");
  double eps = num(info, 6, op, "eps");
  need(out, N * C, op, "out", ""); need(inp, N * C, op, "inp", ""); need(w, C, op, "w", ""); need(b, C, op, "b", "");
  ref::layernorm_forward(out.p, nullptr, nullptr, inp.p, w.p, b.p, N, C, eps);
  return info.Env().Undefined();
}

Napi::Value RLayernormBackward(const Napi::CallbackInfo& info) {
  const char* op = "ref.layernormBackward";
  D dinp = arr<double>(info, 0, op, "dinp"), dw = arr<double>(info, 1, op, "dw"), db = arr<double>(info, 2, op, "db");
  D dout = arr<double>(info, 3, op, "dout"), inp = arr<double>(info, 4, op, "inp"), w = arr<double>(info, 5, op, "w");
  int64_t N = dim(info, 6, op, "N"), C = dim(info, 7, op, "C");
  double eps = num(info, 8, op, "eps");
  need(dinp, N * C, op, "dinp", ""); need(dw, C, op, "dw", ""); need(db, C, op, "db", "");
  need(dout, N * C, op, "dout", ""); need(inp, N * C, op, "inp", ""); need(w, C, op, "w", "");
  ref::layernorm_backward(dinp.p, dw.p, db.p, dout.p, inp.p, w.p, N, C, eps);
  return info.Env().Undefined();
}

Napi::Value RGeluForward(const Napi::CallbackInfo& info) {
  D out = arr<double>(info, 0, "ref.geluForward", "out"), inp = arr<double>(info, 1, "ref.geluForward", "inp");
  need(out, inp.n, "ref.geluForward", "out", "");
  ref::gelu_forward(out.p, inp.p, inp.n);
  return info.Env().Undefined();
}

Napi::Value RGeluBackward(const Napi::CallbackInfo& info) {
  const char* op = "ref.geluBackward";
  D dinp = arr<double>(info, 0, op, "dinp"), inp = arr<double>(info, 1, op, "inp"), dout = arr<double>(info, 2, op, "dout");
  need(dinp, inp.n, op, "dinp", ""); need(dout, inp.n, op, "dout", "");
  ref::gelu_backward(dinp.p, inp.p, dout.p, inp.n);
  return info.Env().Undefined();
}

Napi::Value REmbeddingForward(const Napi::CallbackInfo& info) {
  const char* op = "ref.embeddingForward";
  D out = arr<double>(info, 0, op, "out");
  auto ids = arr<int32_t>(info, 1, op, "ids");
  D wte = arr<double>(info, 2, op, "wte"), wpe = arr<double>(info, 3, op, "wpe");
  int64_t B = dim(info, 4, op, "B"), T = dim(info, 5, op, "T"), C = dim(info, 6, op, "C"), pos0 = dim(info, 7, op, "pos0");
  need(out, B * T * C, op, "out", ""); need(ids, B * T, op, "ids", ""); need(wpe, (pos0 + T) * C, op, "wpe", "");
  for (size_t i = 0; i < ids.n; ++i) GN_CHECK_RANGE(ids.p[i] >= 0 && static_cast<size_t>(ids.p[i]) * C < wte.n, op, ": id out of range");
  ref::embedding_forward(out.p, ids.p, wte.p, wpe.p, B, T, C, pos0);
  return info.Env().Undefined();
}

Napi::Value REmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "ref.embeddingBackward";
  D dwte = arr<double>(info, 0, op, "dwte"), dwpe = arr<double>(info, 1, op, "dwpe"), dout = arr<double>(info, 2, op, "dout");
  auto ids = arr<int32_t>(info, 3, op, "ids");
  int64_t B = dim(info, 4, op, "B"), T = dim(info, 5, op, "T"), C = dim(info, 6, op, "C"), pos0 = dim(info, 7, op, "pos0");
  need(dout, B * T * C, op, "dout", ""); need(ids, B * T, op, "ids", ""); need(dwpe, (pos0 + T) * C, op, "dwpe", "");
  for (size_t i = 0; i < ids.n; ++i) GN_CHECK_RANGE(ids.p[i] >= 0 && static_cast<size_t>(ids.p[i]) * C < dwte.n, op, ": id out of range");
  ref::embedding_backward(dwte.p, dwpe.p, dout.p, ids.p, B, T, C, pos0);
  return info.Env().Undefined();
}

Napi::Value RSoftmaxXentForward(const Napi::CallbackInfo& info) {
  const char* op = "ref.softmaxXentForward";
  D losses = arr<double>(info, 0, op, "losses"), logits = arr<double>(info, 1, op, "logits");
  auto targets = arr<int32_t>(info, 2, op, "targets");
  int64_t N = dim(info, 3, op, "N"), V = dim(info, 4, op, "V");
  int32_t ignore = static_cast<int32_t>(num(info, 5, op, "ignoreIndex"));
  need(losses, N, op, "losses", ""); need(logits, N * V, op, "logits", ""); need(targets, N, op, "targets", "");
  return Napi::Number::New(info.Env(), static_cast<double>(ref::softmax_xent_forward(losses.p, logits.p, targets.p, N, V, ignore)));
}

Napi::Value RSoftmaxXentBackward(const Napi::CallbackInfo& info) {
  const char* op = "ref.softmaxXentBackward";
  D dlogits = arr<double>(info, 0, op, "dlogits"), logits = arr<double>(info, 1, op, "logits");
  auto targets = arr<int32_t>(info, 2, op, "targets");
  int64_t N = dim(info, 3, op, "N"), V = dim(info, 4, op, "V");
  int32_t ignore = static_cast<int32_t>(num(info, 5, op, "ignoreIndex"));
  double scale = num(info, 6, op, "scale");
  need(dlogits, N * V, op, "dlogits", ""); need(logits, N * V, op, "logits", ""); need(targets, N, op, "targets", "");
  ref::softmax_xent_backward(dlogits.p, logits.p, targets.p, N, V, ignore, scale);
  return info.Env().Undefined();
}

// (out, q, k, v, B, Tq, Tk, NH, HS, qPos0, window, dropout, seed)
Napi::Value RAttentionForward(const Napi::CallbackInfo& info) {
  const char* op = "ref.attentionForward";
  D out = arr<double>(info, 0, op, "out"), q = arr<double>(info, 1, op, "q"), k = arr<double>(info, 2, op, "k"), v = arr<double>(info, 3, op, "v");
  int64_t B = dim(info, 4, op, "B"), Tq = dim(info, 5, op, "Tq"), Tk = dim(info, 6, op, "Tk"), NH = dim(info, 7, op, "NH"), HS = dim(info, 8, op, "HS");
  int64_t pos0 = dim(info, 9, op, "qPos0"), window = dim(info, 10, op, "window");
  double dropout = num(info, 11, op, "dropout");
  uint64_t seed = static_cast<uint64_t>(dim(info, 12, op, "seed"));
  need(out, B * Tq * NH * HS, op, "out", ""); need(q, B * Tq * NH * HS, op, "q", "");
  need(k, B * Tk * NH * HS, op, "k", ""); need(v, B * Tk * NH * HS, op, "v", "");
  GN_CHECK_RANGE(pos0 + Tq <= Tk, op, ": qPos0 + Tq > Tk");
  ref::attention_forward(out.p, q.p, k.p, v.p, B, Tq, Tk, NH, HS, pos0, window, dropout, seed);
  return info.Env().Undefined();
}

// (dq, dk, dv, dout, q, k, v, B, Tq, Tk, NH, HS, qPos0, window, dropout, seed)
Napi::Value RAttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "ref.attentionBackward";
  D dq = arr<double>(info, 0, op, "dq"), dk = arr<double>(info, 1, op, "dk"), dv = arr<double>(info, 2, op, "dv"), dout = arr<double>(info, 3, op, "dout");
  D q = arr<double>(info, 4, op, "q"), k = arr<double>(info, 5, op, "k"), v = arr<double>(info, 6, op, "v");
  int64_t B = dim(info, 7, op, "B"), Tq = dim(info, 8, op, "Tq"), Tk = dim(info, 9, op, "Tk"), NH = dim(info, 10, op, "NH"), HS = dim(info, 11, op, "HS");
  int64_t pos0 = dim(info, 12, op, "qPos0"), window = dim(info, 13, op, "window");
  double dropout = num(info, 14, op, "dropout");
  uint64_t seed = static_cast<uint64_t>(dim(info, 15, op, "seed"));
  int64_t nq = B * Tq * NH * HS, nk = B * Tk * NH * HS;
  need(dq, nq, op, "dq", ""); need(dout, nq, op, "dout", ""); need(q, nq, op, "q", "");
  need(dk, nk, op, "dk", ""); need(dv, nk, op, "dv", ""); need(k, nk, op, "k", ""); need(v, nk, op, "v", "");
  GN_CHECK_RANGE(pos0 + Tq <= Tk, op, ": qPos0 + Tq > Tk");
  ref::attention_backward(dq.p, dk.p, dv.p, dout.p, q.p, k.p, v.p, B, Tq, Tk, NH, HS, pos0, window, dropout, seed);
  return info.Env().Undefined();
}

// (p, g, m, v, lr, b1, b2, eps, wd, step, gradScale)
Napi::Value RAdamwStep(const Napi::CallbackInfo& info) {
  const char* op = "ref.adamwStep";
  D p = arr<double>(info, 0, op, "p"), g = arr<double>(info, 1, op, "g"), m = arr<double>(info, 2, op, "m"), v = arr<double>(info, 3, op, "v");
  need(g, p.n, op, "g", ""); need(m, p.n, op, "m", ""); need(v, p.n, op, "v", "");
  ref::adamw_step(p.p, g.p, m.p, v.p, p.n, num(info, 4, op, "lr"), num(info, 5, op, "b1"), num(info, 6, op, "b2"),
                  num(info, 7, op, "eps"), num(info, 8, op, "wd"), dim(info, 9, op, "step"), num(info, 10, op, "gradScale"));
  return info.Env().Undefined();
}

Napi::Value RDropoutUniform(const Napi::CallbackInfo& info) {
  uint64_t seed = static_cast<uint64_t>(dim(info, 0, "ref.dropoutUniform", "seed"));
  uint64_t index = static_cast<uint64_t>(dim(info, 1, "ref.dropoutUniform", "index"));
  return Napi::Number::New(info.Env(), dropout_uniform(seed, index));
}

}  // namespace

void register_ref_ops(Napi::Env env, Napi::Object exports) {
  Napi::Object r = Napi::Object::New(env);
  auto def = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    r.Set(name, Napi::Function::New(env, guard_call, name, reinterpret_cast<void*>(fn)));
  };
  def("gemm", RGemm);
  def("layernormForward", RLayernormForward);
  def("layernormBackward", RLayernormBackward);
  def("geluForward", RGeluForward);
  def("geluBackward", RGeluBackward);
  def("embeddingForward", REmbeddingForward);
  def("embeddingBackward", REmbeddingBackward);
  def("softmaxXentForward", RSoftmaxXentForward);
  def("softmaxXentBackward", RSoftmaxXentBackward);
  def("attentionForward", RAttentionForward);
  def("attentionBackward", RAttentionBackward);
  def("adamwStep", RAdamwStep);
  def("dropoutUniform", RDropoutUniform);
  exports.Set("ref", r);
}

}  // namespace gn
