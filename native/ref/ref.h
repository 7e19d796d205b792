// Reference kernels: plain scalar loops in double precision, written for clarity and never optimised.
// They are the oracle the tests compare the fast kernels against, and what finite differences check.
// Same layouts and gradient rules as native/cpu/kernels.h.
#pragma once
#include <cstdint>

namespace gn {
namespace ref {

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double* C, int64_t ldc, bool accumulate,
          const double* bias);

void layernorm_forward(double* out, double* mean, double* rstd, const double* inp, const double* w,
                       const double* b, int64_t N, int64_t C, double eps);
void layernorm_backward(double* dinp, double* dw, double* db, const double* dout, const double* inp,
                        const double* w, int64_t N, int64_t C, double eps);

void gelu_forward(double* out, const double* inp, int64_t n);
void gelu_backward(double* dinp, const double* inp, const double* dout, int64_t n);

void embedding_forward(double* out, const int32_t* ids, const double* wte, const double* wpe, int64_t B,
                       int64_t T, int64_t C, int64_t pos0);
void embedding_backward(double* dwte, double* dwpe, const double* dout, const int32_t* ids, int64_t B,
                        int64_t T, int64_t C, int64_t pos0);

// losses (N); returns the count of rows not ignored
int64_t softmax_xent_forward(double* losses, const double* logits, const int32_t* targets, int64_t N,
                             int64_t V, int32_t ignore_index);
void softmax_xent_backward(double* dlogits, const double* logits, const int32_t* targets, int64_t N,
                           int64_t V, int32_t ignore_index, double scale);

// q (B,Tq,NH,HS), k/v (B,Tk,NH,HS), out (B,Tq,NH,HS), contiguous; window 0 = dense; dropout uses the
// same counter-based draws as the CPU kernel.
void attention_forward(double* out, const double* q, const double* k, const double* v, int64_t B,
                       int64_t Tq, int64_t Tk, int64_t NH, int64_t HS, int64_t q_pos0, int64_t window,
                       double dropout, uint64_t seed);
void attention_backward(double* dq, double* dk, double* dv, const double* dout, const double* q,
                        const double* k, const double* v, int64_t B, int64_t Tq, int64_t Tk, int64_t NH,
                        int64_t HS, int64_t q_pos0, int64_t window, double dropout, uint64_t seed);

void adamw_step(double* p, const double* g, double* m, double* v, int64_t n, double lr, double b1,
                double b2, double eps, double wd, int64_t step, double grad_scale);

}  // namespace ref
}  // namespace gn
