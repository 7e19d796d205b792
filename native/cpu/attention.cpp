// Fused causal (optionally banded) multi-head self-attention, flash style: the (T,T) attention matrix is
// never stored; the forward keeps one logsumexp per row and the backward recomputes the weights.
//
//   q, k, v (B,·,NH,HS) through strides (see AttnView); out (B,Tq,NH,HS); lse (B,NH,Tq)
//   row i (absolute position p = q_pos0 + i) attends to key j when j <= p and, with window w > 0, j > p - w
//   S = scale·q·kᵀ (scale = 1/√HS), P = softmax(S) over the allowed keys, P' = dropout(P), out = P'·v
//   lse_i = log Σ_j exp(S_ij)
// Backward (dropout mask m, keep scale k = 1/(1-p)):
//   dv += P'ᵀ·dout;  dP' = dout·vᵀ;  D_i = dout_i·out_i;  dS = P ⊙ (dP'·m·k − D)
//   dq = scale·dS·k;  dk += scale·dSᵀ·q        (all three written with '=' overall: dk, dv zeroed first)
// Work is split over (batch, head, block of 64 query rows) in the forward and over (batch, head) in the
// backward, so each task owns the dk/dv rows it accumulates into (no atomics, deterministic).
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/simd.h"
#include "cpu/threading.h"

namespace gn {

namespace {

constexpr int64_t kQB = 64;  // query rows per block

struct Scratch {
  std::vector<float> a, b, c;
  void ensure(size_t n) {
    if (a.size() < n) { a.resize(n); b.resize(n); c.resize(n); }
  }
};
thread_local Scratch tl_scratch;  // per-thread working memory, reused across calls (no page-fault storms)

inline uint64_t drop_index(const AttnShape& s, int64_t b, int64_t h, int64_t i, int64_t j) {
  return ((static_cast<uint64_t>(b) * s.NH + h) * s.Tq + i) * s.Tk + j;
}

struct Block {
  int64_t i0, nq, jlo, nk;
};

inline Block block_range(const AttnShape& s, int64_t qb) {
  Block r;
  r.i0 = qb * kQB;
  r.nq = std::min(kQB, s.Tq - r.i0);
  int64_t pmax = s.q_pos0 + r.i0 + r.nq - 1;
  int64_t jhi = std::min(s.Tk, pmax + 1);
  r.jlo = s.window > 0 ? std::max<int64_t>(0, s.q_pos0 + r.i0 - s.window + 1) : 0;
  r.nk = jhi - r.jlo;
  return r;
}

// valid keys of query row i (absolute): [lo, hi] intersected with the block's [jlo, jlo+nk)
inline void row_keys(const AttnShape& s, int64_t i, int64_t* lo, int64_t* hi) {
  int64_t p = s.q_pos0 + i;
  *hi = std::min(p, s.Tk - 1);
  *lo = s.window > 0 ? std::max<int64_t>(0, p - s.window + 1) : 0;
}

GN_MULTIVERSION
float softmax_row(float* row, int64_t a, int64_t e, int64_t n) {
  // row[0..n): entries outside [a, e) are masked (set to 0); returns logsumexp over [a, e)
  const float mx = lane_max(row + a, e - a);
  for (int64_t j = a; j < e; ++j) row[j] = fast_expf(row[j] - mx);
  const float sum = lane_sum(e - a, [&](int64_t j) { return row[a + j]; });
  float inv = 1.0f / sum;
  for (int64_t j = 0; j < a; ++j) row[j] = 0.0f;
  for (int64_t j = a; j < e; ++j) row[j] *= inv;
  for (int64_t j = e; j < n; ++j) row[j] = 0.0f;
  return mx + std::log(sum);
}

GN_MULTIVERSION
void probs_row(float* row, float lse, int64_t a, int64_t e, int64_t n) {
  for (int64_t j = 0; j < a; ++j) row[j] = 0.0f;
  for (int64_t j = a; j < e; ++j) row[j] = fast_expf(row[j] - lse);
  for (int64_t j = e; j < n; ++j) row[j] = 0.0f;
}

GN_MULTIVERSION
float dot(const float* x, const float* y, int64_t n) {
  return lane_sum(n, [&](int64_t i) { return x[i] * y[i]; });
}

}  // namespace

static void check_shape(const AttnShape& s, const char* op) {
  GN_CHECK_RANGE(s.B > 0 && s.Tq > 0 && s.NH > 0 && s.HS > 0, op, ": empty shape B=", s.B, " Tq=", s.Tq,
                 " NH=", s.NH, " HS=", s.HS);
  GN_CHECK_RANGE(s.q_pos0 >= 0 && s.q_pos0 + s.Tq <= s.Tk, op, ": queries at positions ", s.q_pos0, "..",
                 s.q_pos0 + s.Tq - 1, " need ", s.q_pos0 + s.Tq, " keys but only Tk=", s.Tk, " are given");
  GN_CHECK_RANGE(s.window >= 0, op, ": window must be >= 0 (0 = dense), got ", s.window);
  GN_CHECK_RANGE(s.dropout >= 0.0f && s.dropout < 1.0f, op, ": dropout must be in [0, 1), got ", s.dropout);
}

void attention_forward(AttnOut out, float* lse, AttnView q, AttnView k, AttnView v, const AttnShape& s,
                       ThreadPool* pool) {
  check_shape(s, "attention_forward");
  const int64_t HS = s.HS, NH = s.NH;
  const int64_t nqb = (s.Tq + kQB - 1) / kQB;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const float keep = s.dropout > 0.0f ? 1.0f / (1.0f - s.dropout) : 1.0f;
  auto task = [&](int64_t idx, int) {
    const int64_t b = idx / (NH * nqb), h = (idx / nqb) % NH, qb = idx % nqb;
    const Block blk = block_range(s, qb);
    Scratch& sc = tl_scratch;
    sc.ensure(static_cast<size_t>(kQB * std::max<int64_t>(blk.nk, 1)));
    float* S = sc.a.data();
    const float* Qp = q.data + b * q.sb + blk.i0 * q.st + h * HS;
    const float* Kp = k.data + b * k.sb + blk.jlo * k.st + h * HS;
    const float* Vp = v.data + b * v.sb + blk.jlo * v.st + h * HS;
    float* Op = out.data + b * out.sb + blk.i0 * out.st + h * HS;
    gemm(false, true, blk.nq, blk.nk, HS, scale, Qp, q.st, Kp, k.st, S, blk.nk, false, nullptr, nullptr);
    for (int64_t r = 0; r < blk.nq; ++r) {
      const int64_t i = blk.i0 + r;
      int64_t lo, hi;
      row_keys(s, i, &lo, &hi);
      float* row = S + r * blk.nk;
      float l = softmax_row(row, lo - blk.jlo, hi + 1 - blk.jlo, blk.nk);
      if (lse) lse[(b * NH + h) * s.Tq + i] = l;
      if (s.dropout > 0.0f)
        for (int64_t j = lo; j <= hi; ++j)
          row[j - blk.jlo] *= dropout_uniform(s.seed, drop_index(s, b, h, i, j)) >= s.dropout ? keep : 0.0f;
    }
    gemm(false, false, blk.nq, HS, blk.nk, 1.0f, S, blk.nk, Vp, v.st, Op, out.st, false, nullptr, nullptr);
  };
  run_tasks(pool, s.B * NH * nqb, task);
}

void attention_backward(AttnOut dq, AttnOut dk, AttnOut dv, AttnView dout, AttnView q, AttnView k,
                        AttnView v, AttnView out, const float* lse, const AttnShape& s, ThreadPool* pool) {
  check_shape(s, "attention_backward");
  const int64_t HS = s.HS, NH = s.NH;
  const int64_t nqb = (s.Tq + kQB - 1) / kQB;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const float keep = s.dropout > 0.0f ? 1.0f / (1.0f - s.dropout) : 1.0f;
  auto task = [&](int64_t idx, int) {
    const int64_t b = idx / NH, h = idx % NH;
    for (int64_t j = 0; j < s.Tk; ++j) {
      std::fill_n(dk.data + b * dk.sb + j * dk.st + h * HS, HS, 0.0f);
      std::fill_n(dv.data + b * dv.sb + j * dv.st + h * HS, HS, 0.0f);
    }
    Scratch& sc = tl_scratch;
    for (int64_t qb = 0; qb < nqb; ++qb) {
      const Block blk = block_range(s, qb);
      sc.ensure(static_cast<size_t>(kQB * std::max<int64_t>(blk.nk, 1)));
      float* P = sc.a.data();   // softmax weights (before dropout)
      float* Pd = sc.b.data();  // after dropout (aliases P without dropout)
      float* dP = sc.c.data();
      if (s.dropout <= 0.0f) Pd = P;
      const float* Qp = q.data + b * q.sb + blk.i0 * q.st + h * HS;
      const float* Kp = k.data + b * k.sb + blk.jlo * k.st + h * HS;
      const float* Vp = v.data + b * v.sb + blk.jlo * v.st + h * HS;
      const float* Op = out.data + b * out.sb + blk.i0 * out.st + h * HS;
      const float* dOp = dout.data + b * dout.sb + blk.i0 * dout.st + h * HS;
      float* dQp = dq.data + b * dq.sb + blk.i0 * dq.st + h * HS;
      float* dKp = dk.data + b * dk.sb + blk.jlo * dk.st + h * HS;
      float* dVp = dv.data + b * dv.sb + blk.jlo * dv.st + h * HS;
      gemm(false, true, blk.nq, blk.nk, HS, scale, Qp, q.st, Kp, k.st, P, blk.nk, false, nullptr, nullptr);
      for (int64_t r = 0; r < blk.nq; ++r) {
        const int64_t i = blk.i0 + r;
        int64_t lo, hi;
        row_keys(s, i, &lo, &hi);
        float* row = P + r * blk.nk;
        probs_row(row, lse[(b * NH + h) * s.Tq + i], lo - blk.jlo, hi + 1 - blk.jlo, blk.nk);
        if (s.dropout > 0.0f) {
          float* rd = Pd + r * blk.nk;
          for (int64_t j = 0; j < blk.nk; ++j) {
            int64_t ja = blk.jlo + j;
            rd[j] = (ja >= lo && ja <= hi &&
                     dropout_uniform(s.seed, drop_index(s, b, h, i, ja)) >= s.dropout)
                        ? row[j] * keep
                        : 0.0f;
          }
        }
      }
      // dv += P'ᵀ · dout
      gemm(true, false, blk.nk, HS, blk.nq, 1.0f, Pd, blk.nk, dOp, dout.st, dVp, dv.st, true, nullptr,
           nullptr);
      // dP' = dout · vᵀ
      gemm(false, true, blk.nq, blk.nk, HS, 1.0f, dOp, dout.st, Vp, v.st, dP, blk.nk, false, nullptr,
           nullptr);
      for (int64_t r = 0; r < blk.nq; ++r) {
        const int64_t i = blk.i0 + r;
        const float D = dot(dOp + r * dout.st, Op + r * out.st, HS);
        float* prow = P + r * blk.nk;
        float* drow = dP + r * blk.nk;
        if (s.dropout > 0.0f) {
          const float* rd = Pd + r * blk.nk;
          // m·k equals rd/prow where kept; recompute the mask from the draw to avoid dividing by 0
          for (int64_t j = 0; j < blk.nk; ++j) {
            float mk = (prow[j] != 0.0f && rd[j] != 0.0f) ? keep : 0.0f;
            drow[j] = prow[j] * (drow[j] * mk - D);
          }
        } else {
          for (int64_t j = 0; j < blk.nk; ++j) drow[j] = prow[j] * (drow[j] - D);
        }
        (void)i;
      }
      // dq = scale · dS · k ;  dk += scale · dSᵀ · q
      gemm(false, false, blk.nq, HS, blk.nk, scale, dP, blk.nk, Kp, k.st, dQp, dq.st, false, nullptr,
           nullptr);
      gemm(true, false, blk.nk, HS, blk.nq, scale, dP, blk.nk, Qp, q.st, dKp, dk.st, true, nullptr,
           nullptr);
    }
  };
  run_tasks(pool, s.B * NH, task);
}

}  // namespace gn
