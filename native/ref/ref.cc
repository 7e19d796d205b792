// Reference kernels (see ref.h). Deliberately naive: no blocking, no threads, double everywhere.
#include "ref/ref.h"

#include <cmath>
#include <vector>

#include "cpu/kernels.h"  // dropout_uniform: the generator, shared so masks agree

namespace gn {
namespace ref {

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double* C, int64_t ldc, bool accumulate,
          const double* bias) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        double a = transA ? A[k * lda + m] : A[m * lda + k];
        double b = transB ? B[n * ldb + k] : B[k * ldb + n];
        s += a * b;
      }
      double c = alpha * s + (bias ? bias[n] : 0.0);
      C[m * ldc + n] = accumulate ? C[m * ldc + n] + c : c;
    }
}

void layernorm_forward(double* out, double* mean, double* rstd, const double* inp, const double* w,
                       const double* b, int64_t N, int64_t C, double eps) {
  for (int64_t n = 0; n < N; ++n) {
    const double* x = inp + n * C;
    double m = 0.0;
    for (int64_t c = 0; c < C; ++c) m += x[c];
    m /= C;
    double v = 0.0;
    for (int64_t c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    v /= C;
    double r = 1.0 / std::sqrt(v + eps);
    for (int64_t c = 0; c < C; ++c) out[n * C + c] = (x[c] - m) * r * w[c] + b[c];
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = r;
  }
}

void layernorm_backward(double* dinp, double* dw, double* db, const double* dout, const double* inp,
                        const double* w, int64_t N, int64_t C, double eps) {
  for (int64_t n = 0; n < N; ++n) {
    const double* x = inp + n * C;
    const double* dy = dout + n * C;
    double m = 0.0;
    for (int64_t c = 0; c < C; ++c) m += x[c];
    m /= C;
    double v = 0.0;
    for (int64_t c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    v /= C;
    double r = 1.0 / std::sqrt(v + eps);
    double sg = 0.0, sgx = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      double xh = (x[c] - m) * r;
      sg += dy[c] * w[c];
      sgx += dy[c] * w[c] * xh;
      db[c] += dy[c];
      dw[c] += dy[c] * xh;
    }
    sg /= C;
    sgx /= C;
    for (int64_t c = 0; c < C; ++c) {
      double xh = (x[c] - m) * r;
      dinp[n * C + c] = r * (dy[c] * w[c] - sg - xh * sgx);
    }
  }
}

static const double kS2Pi = std::sqrt(2.0 / M_PI);

void gelu_forward(double* out, const double* inp, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double x = inp[i];
    out[i] = 0.5 * x * (1.0 + std::tanh(kS2Pi * (x + 0.044715 * x * x * x)));
  }
}

void gelu_backward(double* dinp, const double* inp, const double* dout, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double x = inp[i];
    double t = std::tanh(kS2Pi * (x + 0.044715 * x * x * x));
    double d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kS2Pi * (1.0 + 3.0 * 0.044715 * x * x);
    dinp[i] = d * dout[i];
  }
}

void embedding_forward(double* out, const int32_t* ids, const double* wte, const double* wpe, int64_t B,
                       int64_t T, int64_t C, int64_t pos0) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c)
        out[(b * T + t) * C + c] = wte[ids[b * T + t] * C + c] + wpe[(pos0 + t) * C + c];
}

void embedding_backward(double* dwte, double* dwpe, const double* dout, const int32_t* ids, int64_t B,
                        int64_t T, int64_t C, int64_t pos0) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double g = dout[(b * T + t) * C + c];
        dwte[ids[b * T + t] * C + c] += g;
        dwpe[(pos0 + t) * C + c] += g;
      }
}

int64_t softmax_xent_forward(double* losses, const double* logits, const int32_t* targets, int64_t N,
                             int64_t V, int32_t ignore_index) {
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    const double* x = logits + n * V;
    double mx = x[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, x[v]);
    double s = 0.0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(x[v] - mx);
    if (targets[n] == ignore_index) { losses[n] = 0.0; continue; }
    losses[n] = mx + std::log(s) - x[targets[n]];
    ++count;
  }
  return count;
}

void softmax_xent_backward(double* dlogits, const double* logits, const int32_t* targets, int64_t N,
                           int64_t V, int32_t ignore_index, double scale) {
  for (int64_t n = 0; n < N; ++n) {
    const double* x = logits + n * V;
    double* d = dlogits + n * V;
    if (targets[n] == ignore_index) {
      for (int64_t v = 0; v < V; ++v) d[v] = 0.0;
      continue;
    }
    double mx = x[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, x[v]);
    double s = 0.0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(x[v] - mx);
    for (int64_t v = 0; v < V; ++v) d[v] = scale * (std::exp(x[v] - mx) / s - (v == targets[n] ? 1.0 : 0.0));
  }
}

static bool allowed(int64_t p, int64_t j, int64_t window) {
  return j <= p && (window <= 0 || j > p - window);
}

static double keep_factor(uint64_t seed, double dropout, int64_t B_, int64_t NH, int64_t Tq, int64_t Tk,
                          int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)B_;
  if (dropout <= 0.0) return 1.0;
  uint64_t idx = ((static_cast<uint64_t>(b) * NH + h) * Tq + i) * Tk + j;
  return dropout_uniform(seed, idx) >= static_cast<float>(dropout) ? 1.0 / (1.0 - static_cast<float>(dropout))
                                                                   : 0.0;
}

// P (Tq,Tk) softmax weights before dropout for one (b,h)
static void attn_probs(std::vector<double>& P, const double* q, const double* k, int64_t b, int64_t h,
                       int64_t Tq, int64_t Tk, int64_t NH, int64_t HS, int64_t q_pos0, int64_t window) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  P.assign(Tq * Tk, 0.0);
  for (int64_t i = 0; i < Tq; ++i) {
    int64_t p = q_pos0 + i;
    double mx = -INFINITY;
    for (int64_t j = 0; j < Tk; ++j) {
      if (!allowed(p, j, window)) continue;
      double s = 0.0;
      for (int64_t d = 0; d < HS; ++d)
        s += q[((b * Tq + i) * NH + h) * HS + d] * k[((b * Tk + j) * NH + h) * HS + d];
      P[i * Tk + j] = s * scale;
      mx = std::max(mx, s * scale);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < Tk; ++j)
      if (allowed(p, j, window)) sum += std::exp(P[i * Tk + j] - mx);
    for (int64_t j = 0; j < Tk; ++j)
      P[i * Tk + j] = allowed(p, j, window) ? std::exp(P[i * Tk + j] - mx) / sum : 0.0;
  }
}

void attention_forward(double* out, const double* q, const double* k, const double* v, int64_t B,
                       int64_t Tq, int64_t Tk, int64_t NH, int64_t HS, int64_t q_pos0, int64_t window,
                       double dropout, uint64_t seed) {
  std::vector<double> P;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      attn_probs(P, q, k, b, h, Tq, Tk, NH, HS, q_pos0, window);
      for (int64_t i = 0; i < Tq; ++i)
        for (int64_t d = 0; d < HS; ++d) {
          double s = 0.0;
          for (int64_t j = 0; j < Tk; ++j)
            s += P[i * Tk + j] * keep_factor(seed, dropout, B, NH, Tq, Tk, b, h, i, j) *
                 v[((b * Tk + j) * NH + h) * HS + d];
          out[((b * Tq + i) * NH + h) * HS + d] = s;
        }
    }
}

void attention_backward(double* dq, double* dk, double* dv, const double* dout, const double* q,
                        const double* k, const double* v, int64_t B, int64_t Tq, int64_t Tk, int64_t NH,
                        int64_t HS, int64_t q_pos0, int64_t window, double dropout, uint64_t seed) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  std::vector<double> P, dP(Tq * Tk), dS(Tq * Tk);
  for (int64_t i = 0; i < B * Tk * NH * HS; ++i) dk[i] = dv[i] = 0.0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      attn_probs(P, q, k, b, h, Tq, Tk, NH, HS, q_pos0, window);
      auto at = [&](const double* X, int64_t T, int64_t t, int64_t d) { return X[((b * T + t) * NH + h) * HS + d]; };
      // out_i = Σ_j P_ij m_ij v_j  ->  dv_j += P_ij m_ij dout_i ; dP_ij = m_ij dout_i·v_j
      for (int64_t i = 0; i < Tq; ++i)
        for (int64_t j = 0; j < Tk; ++j) {
          double m = keep_factor(seed, dropout, B, NH, Tq, Tk, b, h, i, j);
          double s = 0.0;
          for (int64_t d = 0; d < HS; ++d) {
            s += at(dout, Tq, i, d) * at(v, Tk, j, d);
            dv[((b * Tk + j) * NH + h) * HS + d] += P[i * Tk + j] * m * at(dout, Tq, i, d);
          }
          dP[i * Tk + j] = m * s;
        }
      // softmax backward per row
      for (int64_t i = 0; i < Tq; ++i) {
        double D = 0.0;
        for (int64_t j = 0; j < Tk; ++j) D += P[i * Tk + j] * dP[i * Tk + j];
        for (int64_t j = 0; j < Tk; ++j) dS[i * Tk + j] = P[i * Tk + j] * (dP[i * Tk + j] - D);
      }
      for (int64_t i = 0; i < Tq; ++i)
        for (int64_t d = 0; d < HS; ++d) {
          double s = 0.0;
          for (int64_t j = 0; j < Tk; ++j) s += dS[i * Tk + j] * at(k, Tk, j, d);
          dq[((b * Tq + i) * NH + h) * HS + d] = scale * s;
        }
      for (int64_t j = 0; j < Tk; ++j)
        for (int64_t d = 0; d < HS; ++d) {
          double s = 0.0;
          for (int64_t i = 0; i < Tq; ++i) s += dS[i * Tk + j] * at(q, Tq, i, d);
          dk[((b * Tk + j) * NH + h) * HS + d] += scale * s;
        }
    }
}

void adamw_step(double* p, const double* g, double* m, double* v, int64_t n, double lr, double b1,
                double b2, double eps, double wd, int64_t step, double grad_scale) {
  double bc1 = 1.0 - std::pow(b1, static_cast<double>(step));
  double bc2 = 1.0 - std::pow(b2, static_cast<double>(step));
  for (int64_t i = 0; i < n; ++i) {
    double gi = g[i] * grad_scale;
    m[i] = b1 * m[i] + (1.0 - b1) * gi;
    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
    double mh = m[i] / bc1, vh = v[i] / bc2;
    p[i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * p[i]);
  }
}

}  // namespace ref
}  // namespace gn
