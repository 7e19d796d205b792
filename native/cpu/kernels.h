// CPU kernels other than GEMM: declarations. One family per .cpp file, forward and backward side by side.
// Conventions (all families):
//   - dimensions: B batch, T time, C channels, NH heads, HS head size, V vocabulary, N = rows (usually B·T);
//   - raw pointers and sizes only, no N-API types; a ThreadPool* (may be null: serial) as the last argument;
//   - parameter gradients accumulate (+=), activation gradients are written (=);
//   - checks that depend on data (token ids) throw KernelError before anything is written.
#pragma once
#include <cstdint>

namespace gn {
class ThreadPool;

// ---- layernorm.cpp ------------------------------------------------------------------------------------
// out = (inp - mean) * rstd * weight + bias, rstd = 1/sqrt(var + eps), var biased.  inp/out (N,C)
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps, ThreadPool* pool);
// sum = a + b (the residual stream's add, written), then out = LayerNorm(sum) as layernorm_forward, in one pass
void add_layernorm_forward(float* out, float* mean, float* rstd, float* sum, const float* a, const float* b,
                           const float* weight, const float* bias, int64_t N, int64_t C, float eps, ThreadPool* pool);
// dinp = (or, with accumulate, +=) the input gradient; dweight, dbias += the parameter gradients
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        ThreadPool* pool, bool accumulate = false);

// ---- gelu.cpp (tanh form) -----------------------------------------------------------------------------
void gelu_forward(float* out, const float* inp, int64_t n, ThreadPool* pool);
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, ThreadPool* pool);

// ---- elementwise.cpp: residual add, scale, dropout, sum of squares ------------------------------------
void add_forward(float* out, const float* a, const float* b, int64_t n, ThreadPool* pool);
// a += b
void add_inplace(float* a, const float* b, int64_t n, ThreadPool* pool);
void scale_inplace(float* a, float s, int64_t n, ThreadPool* pool);
// Dropout with a counter-based generator: element i of a call with (seed, offset) is kept when
// uniform(seed, offset + i) >= p, and scaled by 1/(1-p). The same (seed, offset) regenerates the mask.
void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset,
                     ThreadPool* pool);
void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset,
                      ThreadPool* pool);
double sumsq(const float* a, int64_t n, ThreadPool* pool);
// Uniform [0,1) of the dropout generator (exposed so the reference and tests use the same stream).
float dropout_uniform(uint64_t seed, uint64_t index);

// ---- embedding.cpp ------------------------------------------------------------------------------------
// out[b,t,:] = wte[ids[b,t],:] + wpe[pos0 + t,:]   ids (B,T) int32, wte (V,C), wpe (P,C), out (B,T,C)
void embedding_forward(float* out, const int32_t* ids, const float* wte, const float* wpe, int64_t B,
                       int64_t T, int64_t C, int64_t V, int64_t P, int64_t pos0, ThreadPool* pool);
// dwte[ids[b,t],:] += dout[b,t,:]; dwpe[pos0+t,:] += dout[b,t,:]  (either table may be null)
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* ids, int64_t B,
                        int64_t T, int64_t C, int64_t V, int64_t P, int64_t pos0, ThreadPool* pool);

// ---- softmax_xent.cpp ---------------------------------------------------------------------------------
// losses[n] = logsumexp(logits[n,:]) - logits[n, targets[n]]; rows whose target == ignore_index get 0.
// lse[n] keeps logsumexp for the backward pass. Returns the number of rows counted. Row n of logits starts at
// n·ld (ld >= V: a padded vocabulary; elements V..ld-1 of a row are not read). With dlogits (may alias logits),
// the same pass also writes softmax_xent_backward's dlogits with `scale`, while the row is in cache.
int64_t softmax_xent_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                             int64_t N, int64_t V, int32_t ignore_index, ThreadPool* pool, int64_t ld,
                             float* dlogits = nullptr, float scale = 1.0f);
// dlogits[n,:] = scale * (softmax(logits[n,:]) - onehot(targets[n])); 0 for ignored rows.
// dlogits may alias logits; both have row stride ld, and elements V..ld-1 of a row are not touched.
void softmax_xent_backward(float* dlogits, const float* logits, const float* lse, const int32_t* targets,
                           int64_t N, int64_t V, int32_t ignore_index, float scale, ThreadPool* pool, int64_t ld);

// ---- attention.cpp ------------------------------------------------------------------------------------
// Causal (optionally banded) multi-head attention. Row i of the queries sits at absolute position
// q_pos0 + i and attends to key j when j <= q_pos0 + i and, with window > 0, j > q_pos0 + i - window.
// Tensors are addressed by strides so the packed qkv (B,T,3,NH,HS) and a KV cache both work directly:
// element (b, t, h, d) of X is X[b*X.sb + t*X.st + h*HS + d].
struct AttnView {
  const float* data;
  int64_t sb, st;  // batch and time strides (in floats)
};
struct AttnOut {
  float* data;
  int64_t sb, st;
};
struct AttnShape {
  int64_t B, Tq, Tk, NH, HS;
  int64_t q_pos0;      // absolute position of query row 0 (KV-cache decoding)
  int64_t window;      // 0 = dense causal
  float dropout;       // probability on attention weights (training only)
  uint64_t seed;       // dropout generator
};
// out (B,Tq,NH,HS) via strides; lse (B,NH,Tq) may be null at inference.
void attention_forward(AttnOut out, float* lse, AttnView q, AttnView k, AttnView v, const AttnShape& s,
                       ThreadPool* pool);
// Gradients of q, k, v are written (=). Needs the forward's out and lse.
void attention_backward(AttnOut dq, AttnOut dk, AttnOut dv, AttnView dout, AttnView q, AttnView k,
                        AttnView v, AttnView out, const float* lse, const AttnShape& s, ThreadPool* pool);

// ---- adamw.cpp ----------------------------------------------------------------------------------------
// One AdamW step (decoupled weight decay, bias correction); grads are multiplied by grad_scale first
// (for clipping without a separate pass). step counts from 1. param16, if not null, receives the new
// weights rounded to bf16 (nearest even): a bf16 model's weight copy, refreshed in the same pass.
void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
                ThreadPool* pool, uint16_t* param16 = nullptr);

// ---- linear.cpp ---------------------------------------------------------------------------------------
// Hugging Face Conv1D layout: weight (C, OC), out (N, OC) = inp (N, C) · weight + bias.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC, ThreadPool* pool);
// dinp (=, may be null), dweight (+=, may be null), dbias (+=, may be null)
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, ThreadPool* pool);
// The same with the weight in bf16 (gemm_bf16b): a bf16 model's matrix products on the CPU.
void linear_forward(float* out, const float* inp, const uint16_t* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC, ThreadPool* pool);
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const uint16_t* weight, int64_t N, int64_t C, int64_t OC, ThreadPool* pool);

}  // namespace gn
