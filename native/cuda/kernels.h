// Host-side launchers of the CUDA kernels (defined in the .cu files of this folder), callable from the
// N-API layer compiled by the host compiler. Conventions follow native/cpu/kernels.h:
//   - raw device pointers and int64 sizes; shapes were checked by the caller (native/cuda/ops.cc);
//   - parameter gradients accumulate (+=), activation gradients are written (=);
//   - everything is enqueued on st.s; nothing synchronises unless a host value is returned.
// Each launcher's .cu file states the math and the launch shape of its kernels.
#pragma once
#include <cstdint>

#include "cuda/check.h"
#include "cuda/dtype.h"

namespace gn {
namespace cuda {

// Activation arguments are void* with their dtype `dt` (fp32 or bf16, see dtype.h); everything named float* is
// fp32 (parameters, gradients, statistics).

// ---- gemm.cu: helpers around the cuBLAS call (the call itself is in ops.cc through cublas.h) --------
// C[i, j] += bias[j] for i < M, j < N, row stride ldc
void bias_rows(const Stream& st, DType dt, void* C, const float* bias, int64_t M, int64_t N, int64_t ldc);
// C[i, j] = 0 for i < M, j < N, row stride ldc (gemm with K = 0 and no accumulation)
void zero_rows(const Stream& st, DType dt, void* C, int64_t M, int64_t N, int64_t ldc);
// Deterministic column sums over N rows run in R = col_chunks(N, cols) row chunks (about 512 blocks in all, at
// least 64 rows each) whose partial sums (R, cols) are then added in chunk order.
inline int64_t col_chunks(int64_t N, int64_t cols) {
  const int64_t col_blocks = (cols + 31) / 32;
  int64_t r = (512 + col_blocks - 1) / (col_blocks > 0 ? col_blocks : 1);
  const int64_t max_r = (N + 63) / 64;
  if (r > max_r) r = max_r;
  return r < 1 ? 1 : r;
}
// Partial-sum rows colsum_acc may use (its 16-byte form takes 4 or 8 columns a thread, so more row chunks)
inline int64_t colsum_chunks(int64_t N, int64_t cols) { return col_chunks(N, (cols + 3) / 4); }
// dbias[o] += Σ_n dout[n, o]   dout (N, OC); scratch: colsum_chunks(N, OC)·OC floats of device memory
void colsum_acc(const Stream& st, DType dt, float* dbias, const void* dout, int64_t N, int64_t OC, float* scratch);
// dst[c] += Σ_r part[r, c] for r < R (the second pass, also used by layernorm_backward)
void colsum_finish(const Stream& st, float* dst, const float* part, int64_t R, int64_t cols);
// dst[i] = src[i] converted between dtypes (the bf16 copy of the weights, mixed-dtype copies)
void convert(const Stream& st, DType dst_dt, void* dst, DType src_dt, const void* src, int64_t n);

// ---- layernorm.cu -------------------------------------------------------------------------------
// with add_a (and add_b): inp = add_a + add_b is written first, then normalised (the residual stream's add)
void layernorm_forward(const Stream& st, DType dt, void* out, float* mean, float* rstd, void* inp,
                       const float* weight, const float* bias, int64_t N, int64_t C, float eps,
                       const void* add_a = nullptr, const void* add_b = nullptr);
// Row chunks (blocks) of the one-pass layernorm backward: at least 32 rows each, at most 512
inline int64_t layernorm_fused_chunks(int64_t N) {
  const int64_t r = (N + 31) / 32;
  return r < 1 ? 1 : (r > 512 ? 512 : r);
}
// Partial-sum rows layernorm_backward may use: scratch holds 2·layernorm_chunks(N, C)·C floats
inline int64_t layernorm_chunks(int64_t N, int64_t C) {
  const int64_t a = col_chunks(N, C), b = layernorm_fused_chunks(N);
  return a > b ? a : b;
}
// scratch: 2·layernorm_chunks(N, C)·C floats of device memory; dinp = the input gradient, or += with accumulate.
// fused: one pass over dout and inp where the rows allow it (layernorm.cu), else dinp and the parameters apart
void layernorm_backward(const Stream& st, DType dt, void* dinp, float* dweight, float* dbias, const void* dout,
                        const void* inp, const float* weight, const float* mean, const float* rstd, int64_t N,
                        int64_t C, float* scratch, bool accumulate = false, bool fused = true);

// ---- gelu.cu ------------------------------------------------------------------------------------
void gelu_forward(const Stream& st, DType dt, void* out, const void* inp, int64_t n);
void gelu_backward(const Stream& st, DType dt, void* dinp, const void* inp, const void* dout, int64_t n);

// ---- elementwise.cu -----------------------------------------------------------------------------
void add(const Stream& st, DType dt, void* out, const void* a, const void* b, int64_t n);
void scale(const Stream& st, DType dt, void* a, float s, int64_t n);
void fill(const Stream& st, DType dt, void* a, float value, int64_t n);
void dropout(const Stream& st, DType dt, void* out, const void* inp, int64_t n, float p, uint64_t seed,
             uint64_t offset);
// Writes one double partial sum of squares per block into partials (capacity sumsq_blocks(n));
// the caller downloads and adds them in order.
int64_t sumsq_blocks(int64_t n);
void sumsq_partials(const Stream& st, DType dt, double* partials, const void* a, int64_t n);

// ---- embedding.cu -------------------------------------------------------------------------------
// out[b,t,:] = wte[ids[b,t],:] + wpe[pos0+t,:]   (ids on the device, already range-checked)
void embedding_forward(const Stream& st, DType dt, void* out, const int32_t* ids, const float* wte, const float* wpe,
                       int64_t B, int64_t T, int64_t C, int64_t pos0);
// dwte[uniq[u],:] += Σ_{r in rows[offs[u]..offs[u+1])} dout[r,:] for u < U, rows in increasing order
void embedding_backward_wte(const Stream& st, DType dt, float* dwte, const void* dout, const int32_t* uniq,
                            const int32_t* offs, const int32_t* rows, int64_t U, int64_t C);
// dwpe[pos0+t,:] += Σ_b dout[b,t,:]  (b increasing)
void embedding_backward_wpe(const Stream& st, DType dt, float* dwpe, const void* dout, int64_t B, int64_t T,
                            int64_t C, int64_t pos0);

// ---- softmax_xent.cu ----------------------------------------------------------------------------
// logits/dlogits rows start every ld >= V elements (a padded vocabulary); elements V..ld-1 are not touched
// with dlogits (may alias logits), the forward also writes softmax_xent_backward's dlogits with `scale`
void softmax_xent_forward(const Stream& st, DType dt, float* losses, float* lse, const void* logits,
                          const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index, int64_t ld,
                          void* dlogits = nullptr, float scale = 1.0f);
void softmax_xent_backward(const Stream& st, DType dt, void* dlogits, const void* logits, const float* lse,
                           const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index, float scale,
                           int64_t ld);

// ---- attention.cu -------------------------------------------------------------------------------
// Element (b, t, h, d) of a tensor X is X[b*sb + t*st + h*HS + d] (strides in floats), as on the CPU.
struct AttnDims {
  int64_t B, Tq, Tk, NH, HS;
  int64_t q_pos0, window;
  float dropout;
  uint64_t seed;
  int64_t q[2], k[2], v[2], o[2];  // [batch stride, time stride] of q, k, v and out (dq/dk/dv/dout share them)
};
constexpr int64_t kMaxHeadSize = 256;
// decode.cu: the KV decoder's steady-state kernels, the position and token ids read from the decode slots (device
// int32 [pos, id_0, …, id_{B-1}]; checked on the host when written), so that a step's launches can be captured once
// as a CUDA graph. decode_embed: out (B, C) = wte[id_b] + wpe[pos]. decode_append: dst[b·dsb + pos·dsr + c] =
// src[b·ssb + c] for c < width. attention_decode: attention_forward without dropout or lse for d.Tq new queries
// per row at positions pos + i (pos = slots[0], or d.q_pos0 when slots is null); keys up to each query's position.
// With more than 256 positions (d.Tk: the cache's capacity) the keys are split between blocks, whose partial
// results go to `partials` (attention_decode_partials(d) floats of device scratch; none below that).
void decode_embed(const Stream& st, DType dt, void* out, const int32_t* slots, const float* wte, const float* wpe,
                  int64_t B, int64_t C);
void decode_append(const Stream& st, DType dt, void* dst, int64_t dsb, int64_t dsr, const void* src, int64_t ssb,
                   const int32_t* slots, int64_t B, int64_t width);
int64_t attention_decode_partials(const AttnDims& d);
void attention_decode(const Stream& st, DType dt, void* out, const void* q, const void* k, const void* v,
                      const AttnDims& d, const int32_t* slots, float* partials);
void attention_forward(const Stream& st, DType dt, void* out, float* lse, const void* q, const void* k,
                       const void* v, const AttnDims& d);
// Dscratch: B·NH·Tq floats of device scratch (D_i = dout_i·out_i)
void attention_backward(const Stream& st, DType dt, void* dq, void* dk, void* dv, const void* dout, const void* q,
                        const void* k, const void* v, const void* out, const float* lse, float* Dscratch,
                        const AttnDims& d);

// ---- attention_flash.cu: tensor-core flash attention, bf16 only (sm_80 and later) -----------------------
// Same contract as attention_forward/attention_backward; usable when attention_flash_supported (bf16, HS in
// 32 or 64, and 128 for the forward only, B·NH <= 65535, Tk < 2^30: a forward at 128 leaves its backward to the
// other paths, which read the same lse). Dscratch: B·NH·Tq floats. v2 (setAttention('flash2')): the forward and dQ
// with 32 query rows a warp, every kernel with cp.async double-buffered tiles (sm_90+; elsewhere as v1).
// dq_scratch (setFlashBackward('atomic')): B·NH·Tq·HS floats, 16-byte aligned; the backward then takes dQ from the dK/dV kernel
// through fp32 atomics into it (one kernel, FlashAttention-2's way; sm_90+, elsewhere ignored).
bool attention_flash_supported(DType dt, const AttnDims& d, bool backward = false);
void attention_forward_flash(const Stream& st, void* out, float* lse, const void* q, const void* k, const void* v,
                             const AttnDims& d, bool v2 = false);
void attention_backward_flash(const Stream& st, void* dq, void* dk, void* dv, const void* dout, const void* q,
                              const void* k, const void* v, const void* out, const float* lse, float* Dscratch,
                              const AttnDims& d, bool v2 = false, float* dq_scratch = nullptr);

// The flash kernels' tensor-core products one at a time on 64×64 bf16 tiles x, y, p, v (row-major, contiguous):
// out (6·4096 floats) = x·yᵀ by mma alone, by mul_abt, by mul_abt_shared, then p·v by mul_pb, xᵀ·v by
// mul_atb_shared, and x·yᵀ rounded to bf16 through store_acc_tile (attention_flash.cu).
// false (nothing launched) where the flash kernels have no sm_80+ image for this device.
bool flash_probe(const Stream& st, float* out, const void* x, const void* y, const void* p, const void* v);

// ---- attention_softmax.cu (the row kernels of the cuBLAS path, attention_gemm.cc) --------------------------
// (batch row, head) pairs u = b·NH + h = u0 .. u0+pairs-1, queries i0 .. i0+rows-1 against keys k0 .. k0+cols-1
// (every key those queries see), scores in a scratch of (rows, cols) row-major matrices: element (g, i, j) at
// g·pair_stride + i·ld + j.
struct AttnRows {
  int64_t u0, pairs, NH, Tq, Tk, q_pos0, window;
  int64_t i0, rows, k0, cols, ld, pair_stride;
  float dropout;
  uint64_t seed;
};
// S → P in place (A = P∘dropout when `dropped`), scores of dtype dt; lse from lse_in (B, NH, Tq) when given,
// else computed and written to lse_out when that is given
void attn_probs(const Stream& st, DType dt, void* S, float* lse_out, const float* lse_in, const AttnRows& r,
                bool dropped);
// (S, dA) → dS = P∘(dA∘f − D) over dA and A = P∘f over S, with P = exp(S − lse) inside the mask recomputed from
// the forward's lse (B, NH, Tq)
void attn_probs_backward(const Stream& st, DType dt, void* S, void* dA, const float* lse, const AttnRows& r);
// dst[b·bstride + t·tstride + h·HS + d] = acc[((u − u0)·Tn + t)·ldacc + d] for the pairs u = b·NH + h and d < HS,
// converted to dt
void acc_to_strided(const Stream& st, DType dt, void* dst, int64_t bstride, int64_t tstride, const float* acc,
                    int64_t ldacc, int64_t u0, int64_t pairs, int64_t NH, int64_t Tn, int64_t HS);
// Pointer arrays for cublasGemmBatchedEx, built on the device: for array a < n and pair g < pairs (u = u0 + g =
// b·NH + h), out[a·pairs + g] = base[a] + b·bstride[a] + h·hstride[a] + g·gstride[a] (byte offsets)
constexpr int kMaxPtrSpecs = 10;
struct AttnPtrSpecs {
  int n = 0;
  const char* base[kMaxPtrSpecs];
  int64_t bstride[kMaxPtrSpecs], hstride[kMaxPtrSpecs], gstride[kMaxPtrSpecs];
};
void attn_pointers(const Stream& st, void** out, const AttnPtrSpecs& p, int64_t u0, int64_t pairs, int64_t NH);

// ---- adamw.cu -----------------------------------------------------------------------------------
// bc1 = 1 - β1^step, bc2 = 1 - β2^step (computed by the caller in double, as on the CPU). param16 (bf16, may be
// null): the new weights rounded to bf16 in the same pass (a bf16 model's weight copy).
void adamw_step(const Stream& st, float* param, const float* grad, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2, float grad_scale,
                void* param16);

}  // namespace cuda
}  // namespace gn
