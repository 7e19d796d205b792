// Causal (optionally banded) attention through cuBLAS, the path the CUDA addon takes by default (setAttention
// / GPT_NATIVE_CUDA_ATTENTION=fused selects the fused kernels of attention.cu instead). Same contract as
// native/cpu/attention.cpp. For each batch row b, chunk of heads (batched over heads, stride HS; the scores of
// a chunk fit a scratch of at most 256 MiB per matrix, or $GPT_NATIVE_CUDA_ATTN_SCRATCH bytes) and chunk of
// queries i0 … i0+rows-1 (see query_chunks: only the keys k0 … k0+cols-1 that those queries can see take part,
// which skips most of the masked half of a causal square and all but a band of a banded one):
//   forward   S = scale·Q·Kᵀ (GEMM) → P, lse (attn_probs; with dropout A = P∘f) → out = A·V (GEMM)
//   backward  S again → P from the stored lse; dA = dout·Vᵀ (GEMM); dS = P∘(dA∘f − D), A = P∘f
//             (attn_probs_backward); dQ = scale·dS·K (GEMM, the chunk's rows); dV += Aᵀ·dout and
//             dK += scale·dSᵀ·Q (GEMMs accumulating in fp32 scratch over the query chunks, then written into
//             dv, dk by acc_to_strided)
// Scores, probabilities and their gradients are kept in the activation dtype (bf16 with bf16 activations, as
// llm.c does: half the traffic of the row passes), the row kernels compute in fp32. Nothing of size (Tq, Tk)
// outlives a call. Row-major matrices are handed to cuBLAS as their column-major
// transposes: Q of head h is the column-major HS×rows matrix at q + (i0·q_time_stride + h·HS) with leading
// dimension q's time stride, and the (rows, cols) scratch is the column-major cols×rows matrix with leading
// dimension cols, so
//   Sᵀ = op_T(K)·Q           gemm(T, N, m=cols, n=rows, k=HS)
//   outᵀ = V·Aᵀ              gemm(N, N, m=HS, n=rows, k=cols)
//   dAᵀ = op_T(V)·dout       gemm(T, N, m=cols, n=rows, k=HS)
//   dVᵀ += dout·op_T(Aᵀ)     gemm(N, T, m=HS, n=cols, k=rows)   into the fp32 (heads, Tk, HS) accumulator
//   dQᵀ = K·dSᵀ              gemm(N, N, m=HS, n=rows, k=cols)
//   dKᵀ += Q·op_T(dSᵀ)       gemm(N, T, m=HS, n=cols, k=rows)   likewise
// Deterministic as long as cuBLAS is (it is for a fixed configuration); masked entries inside a chunk's
// rectangle cost full GEMM work.
#include <climits>
#include <cmath>
#include <vector>

#include "cuda/context.h"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

struct Mat {  // a column-major operand: pointer, dtype, leading dimension, stride between heads (elements)
  const void* p;
  DType dt;
  int64_t ld, stride;
};

int cuda_type(DType dt) { return dt == kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

void bgemm(CudaAddon& a, const char* what, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, Mat A, Mat B,
           void* C, DType cdt, int64_t ldc, int64_t sc, int64_t batch, float beta = 0.0f) {
  GN_CHECK_RANGE(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && A.ld <= INT_MAX && B.ld <= INT_MAX && ldc <= INT_MAX,
                 what, ": dimensions beyond 2^31-1 are not supported by cuBLAS");
  // bf16 operands run on the tensor cores with fp32 accumulation (COMPUTE_32F); fp32 ones use the math mode
  const int compute = A.dt == kBF16 ? CUBLAS_COMPUTE_32F : a.compute;
  cublasStatus_t s = a.blas.gemm_strided_batched_ex(
      a.handle, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, A.p, cuda_type(A.dt),
      static_cast<int>(A.ld), A.stride, B.p, cuda_type(B.dt), static_cast<int>(B.ld), B.stride, &beta, C,
      cuda_type(cdt), static_cast<int>(ldc), sc, static_cast<int>(batch), compute, CUBLAS_GEMM_DEFAULT);
  GN_CHECK(s == CUBLAS_STATUS_SUCCESS, "gpt-native: cuBLAS error in cublasGemmStridedBatchedEx (", what, ": m=", m,
           " n=", n, " k=", k, " lda=", A.ld, " ldb=", B.ld, " ldc=", ldc, " batch=", batch, " compute=", compute,
           ") at ", __FILE__, ":", __LINE__, ": ", cublas_status_text(a.blas, s));
  if (a.stream.sync_each) GN_CUDA(cudaStreamSynchronize(a.stream.s));
}

// A chunk of queries and the keys it sees: rows i0 … i0+rows-1 of Tq, keys k0 … k0+cols-1 of Tk.
struct QChunk {
  int64_t i0, rows, k0, cols;
};

// Rows per query chunk: $GPT_NATIVE_CUDA_ATTN_QCHUNK (tests) or, by default, the whole of a short sequence
// (Tq <= 128) and otherwise an eighth of Tq (at least 128, a multiple of 64). A causal square in n chunks costs
// (n+1)/2n of its full GEMM and row work (56% with 8); with a band of width w, chunks of about w rows (at
// least 64) cost about 2w keys a row instead of Tk.
int64_t query_chunk_rows(const CudaAddon& a, const AttnDims& d) {
  if (a.attn_qchunk > 0) return a.attn_qchunk;
  if (d.Tq <= 128) return d.Tq;
  auto up64 = [](int64_t x) { return (x + 63) / 64 * 64; };
  int64_t r = up64((d.Tq + 7) / 8);
  if (r < 128) r = 128;
  if (d.window > 0) {
    const int64_t w = up64(d.window);
    if (w < r) r = w;
  }
  return r;
}

std::vector<QChunk> query_chunks(const CudaAddon& a, const AttnDims& d) {
  std::vector<QChunk> cs;
  const int64_t step = query_chunk_rows(a, d);
  for (int64_t i0 = 0; i0 < d.Tq; i0 += step) {
    QChunk c;
    c.i0 = i0;
    c.rows = d.Tq - i0 < step ? d.Tq - i0 : step;
    // the mask's key range grows with the row: [lo(i0), hi(i0 + rows - 1)] holds every row's (attn_softmax.cu)
    const int64_t p0 = d.q_pos0 + i0, p1 = p0 + c.rows - 1;
    const int64_t lo = (d.window > 0 && p0 - d.window + 1 > 0) ? p0 - d.window + 1 : 0;
    const int64_t hi = p1 < d.Tk - 1 ? p1 : d.Tk - 1;
    // rows that see nothing (a band that ends before the keys do): one column, all masked
    c.k0 = lo <= hi ? lo : hi;
    c.cols = lo <= hi ? hi - lo + 1 : 1;
    cs.push_back(c);
  }
  return cs;
}

int64_t heads_per_chunk(const CudaAddon& a, const AttnDims& d, int64_t mat_bytes) {
  int64_t hc = a.attn_scratch / (mat_bytes > 0 ? mat_bytes : 1);
  if (hc < 1) hc = 1;
  return hc < d.NH ? hc : d.NH;
}

int64_t largest_matrix(const std::vector<QChunk>& cs) {
  int64_t m = 0;
  for (const QChunk& c : cs) m = c.rows * c.cols > m ? c.rows * c.cols : m;
  return m;
}

AttnRows rows(const AttnDims& d, int64_t b, int64_t h0, int64_t heads, const QChunk& c) {
  AttnRows r;
  r.b = b; r.h0 = h0; r.heads = heads; r.NH = d.NH; r.Tq = d.Tq; r.Tk = d.Tk;
  r.q_pos0 = d.q_pos0; r.window = d.window; r.dropout = d.dropout; r.seed = d.seed;
  r.i0 = c.i0; r.rows = c.rows; r.k0 = c.k0; r.cols = c.cols;
  return r;
}

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

}  // namespace

bool attention_gemm_usable(const CudaAddon& a) { return a.blas.gemm_strided_batched_ex != nullptr; }

void attention_forward_gemm(CudaAddon& a, DType dt, void* out, float* lse, const void* q, const void* k, const void* v,
                            const AttnDims& d) {
  if (d.B == 0 || d.Tq == 0 || d.Tk == 0 || d.NH == 0) return;
  const std::vector<QChunk> cs = query_chunks(a, d);
  const int64_t es = dtype_bytes(dt), hc = heads_per_chunk(a, d, largest_matrix(cs) * es);
  void* S = a.attn.get(a.stream, align256(static_cast<size_t>(hc * largest_matrix(cs) * es)));
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  const char *qc = static_cast<const char*>(q), *kc = static_cast<const char*>(k), *vc = static_cast<const char*>(v);
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h0 = 0; h0 < d.NH; h0 += hc) {
      const int64_t nh = d.NH - h0 < hc ? d.NH - h0 : hc;
      for (const QChunk& c : cs) {
        const int64_t mat = c.rows * c.cols;
        const Mat Q{qc + (b * d.q[0] + c.i0 * d.q[1] + h0 * d.HS) * es, dt, d.q[1], d.HS};
        const Mat K{kc + (b * d.k[0] + c.k0 * d.k[1] + h0 * d.HS) * es, dt, d.k[1], d.HS};
        const Mat V{vc + (b * d.v[0] + c.k0 * d.v[1] + h0 * d.HS) * es, dt, d.v[1], d.HS};
        bgemm(a, "attention_forward scores", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, scale, K, Q, S, dt, c.cols,
              mat, nh);
        attn_probs(a.stream, dt, S, lse, nullptr, rows(d, b, h0, nh, c), /*dropped=*/true);
        bgemm(a, "attention_forward values", CUBLAS_OP_N, CUBLAS_OP_N, d.HS, c.rows, c.cols, 1.0f, V,
              {S, dt, c.cols, mat}, static_cast<char*>(out) + (b * d.o[0] + c.i0 * d.o[1] + h0 * d.HS) * es, dt,
              d.o[1], d.HS, nh);
      }
    }
}

void attention_backward_gemm(CudaAddon& a, DType dt, void* dq, void* dk, void* dv, const void* dout, const void* q,
                             const void* k, const void* v, const float* lse, const AttnDims& d) {
  if (d.B == 0 || d.Tq == 0 || d.Tk == 0 || d.NH == 0) return;
  const std::vector<QChunk> cs = query_chunks(a, d);
  const int64_t es = dtype_bytes(dt), big = largest_matrix(cs);
  // per head: two score matrices and the two fp32 accumulators
  const int64_t hc = heads_per_chunk(a, d, 2 * big * es + 2 * d.Tk * d.HS * 4);
  const size_t region = align256(static_cast<size_t>(hc * big * es)),
               acc_region = align256(static_cast<size_t>(hc * d.Tk * d.HS * 4));
  char* base = static_cast<char*>(a.attn.get(a.stream, 2 * region + 2 * acc_region));
  void* P = base;            // S, then P, then A
  void* dA = base + region;  // dA, then dS
  float* dKacc = reinterpret_cast<float*>(base + 2 * region);  // (heads, Tk, HS)
  float* dVacc = reinterpret_cast<float*>(base + 2 * region + acc_region);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  auto at = [&](const void* p, int64_t off) { return static_cast<const char*>(p) + off * es; };
  auto atw = [&](void* p, int64_t off) { return static_cast<char*>(p) + off * es; };
  const int64_t acc_stride = d.Tk * d.HS;  // between heads
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h0 = 0; h0 < d.NH; h0 += hc) {
      const int64_t nh = d.NH - h0 < hc ? d.NH - h0 : hc;
      fill(a.stream, kF32, dKacc, 0.0f, nh * acc_stride);
      fill(a.stream, kF32, dVacc, 0.0f, nh * acc_stride);
      for (const QChunk& c : cs) {
        const int64_t mat = c.rows * c.cols;
        const int64_t qo = b * d.q[0] + c.i0 * d.q[1] + h0 * d.HS, ko = b * d.k[0] + c.k0 * d.k[1] + h0 * d.HS,
                      vo = b * d.v[0] + c.k0 * d.v[1] + h0 * d.HS, oo = b * d.o[0] + c.i0 * d.o[1] + h0 * d.HS;
        const Mat Q{at(q, qo), dt, d.q[1], d.HS}, K{at(k, ko), dt, d.k[1], d.HS}, V{at(v, vo), dt, d.v[1], d.HS},
            dO{at(dout, oo), dt, d.o[1], d.HS};
        bgemm(a, "attention_backward scores", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, scale, K, Q, P, dt,
              c.cols, mat, nh);
        const AttnRows r = rows(d, b, h0, nh, c);
        attn_probs(a.stream, dt, P, nullptr, lse, r, /*dropped=*/false);
        bgemm(a, "attention_backward dA", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, 1.0f, V, dO, dA, dt, c.cols,
              mat, nh);
        attn_probs_backward(a.stream, dt, P, dA, r);
        const Mat A{P, dt, c.cols, mat}, dS{dA, dt, c.cols, mat};
        bgemm(a, "attention_backward dv", CUBLAS_OP_N, CUBLAS_OP_T, d.HS, c.cols, c.rows, 1.0f, dO, A,
              dVacc + c.k0 * d.HS, kF32, d.HS, acc_stride, nh, /*beta=*/1.0f);
        bgemm(a, "attention_backward dq", CUBLAS_OP_N, CUBLAS_OP_N, d.HS, c.rows, c.cols, scale, K, dS, atw(dq, qo), dt,
              d.q[1], d.HS, nh);
        bgemm(a, "attention_backward dk", CUBLAS_OP_N, CUBLAS_OP_T, d.HS, c.cols, c.rows, scale, Q, dS,
              dKacc + c.k0 * d.HS, kF32, d.HS, acc_stride, nh, /*beta=*/1.0f);
      }
      acc_to_strided(a.stream, dt, atw(dk, b * d.k[0] + h0 * d.HS), d.k[1], dKacc, nh, d.Tk, d.HS);
      acc_to_strided(a.stream, dt, atw(dv, b * d.v[0] + h0 * d.HS), d.v[1], dVacc, nh, d.Tk, d.HS);
    }
}

}  // namespace cuda
}  // namespace gn
