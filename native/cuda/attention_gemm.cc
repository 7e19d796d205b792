// Causal (optionally banded) attention through cuBLAS, the path the CUDA addon takes by default (setAttention
// / GPT_NATIVE_CUDA_ATTENTION=fused selects the fused kernels of attention.cu instead). Same contract as
// native/cpu/attention.cpp.
//
// The work is cut two ways, and every cut is one batched GEMM over many (batch row, head) pairs, so a layer
// costs a few dozen launches, not a few per batch row:
//   - groups of pairs u = b·NH + h: as many as fit the score scratch (256 MiB, or $GPT_NATIVE_CUDA_ATTN_SCRATCH
//     bytes); at GPT-2 124M, B = 16, T = 1024 that is all 192 pairs at once;
//   - chunks of queries i0 … i0+rows-1 (query_chunks): each chunk only against the keys k0 … k0+cols-1 that
//     its queries can see, which skips most of the masked half of a causal square and all but a band of a
//     banded one.
// For a group and a chunk:
//   forward   S = scale·Q·Kᵀ (GEMM) → P, lse (attn_probs; with dropout A = P∘f) → out = A·V (GEMM)
//   backward  S again → P from the stored lse; dA = dout·Vᵀ (GEMM); dS = P∘(dA∘f − D), A = P∘f
//             (attn_probs_backward); dQ = scale·dS·K (GEMM, the chunk's rows); dV += Aᵀ·dout and
//             dK += scale·dSᵀ·Q (GEMMs accumulating in fp32 scratch over the query chunks, then written into
//             dv, dk by acc_to_strided)
// The GEMMs are cublasGemmBatchedEx with per-pair pointer arrays that a small kernel writes on the device
// (attn_pointers), so nothing waits for the host. Scores, probabilities and their gradients are kept in the
// activation dtype (bf16 with bf16 activations, as llm.c does: half the traffic of the row passes), the row
// kernels compute in fp32. Nothing of size (Tq, Tk) outlives a call.
//
// Row-major matrices are handed to cuBLAS as their column-major transposes: Q of pair (b, h) is the
// column-major HS×rows matrix at q + b·q_batch_stride + i0·q_time_stride + h·HS with leading dimension q's time
// stride, and the (rows, cols) scratch of a pair is the column-major cols×rows matrix with leading dimension
// cols, so
//   Sᵀ = op_T(K)·Q           gemm(T, N, m=cols, n=rows, k=HS)
//   outᵀ = V·Aᵀ              gemm(N, N, m=HS, n=rows, k=cols)
//   dAᵀ = op_T(V)·dout       gemm(T, N, m=cols, n=rows, k=HS)
//   dVᵀ += dout·op_T(Aᵀ)     gemm(N, T, m=HS, n=cols, k=rows)   into the fp32 (pairs, Tk, HS) accumulator
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

int cuda_type(DType dt) { return dt == kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

// One batched GEMM: the pointer arrays A, B, C (device memory, `batch` entries each) of dtypes at, bt, ct.
void bgemm(CudaAddon& a, const char* what, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
           const void* const* A, DType at, int64_t lda, const void* const* B, DType bt, int64_t ldb, void* const* C,
           DType ct, int64_t ldc, int64_t batch, float beta) {
  GN_CHECK_RANGE(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX &&
                     batch <= INT_MAX,
                 what, ": dimensions beyond 2^31-1 are not supported by cuBLAS");
  // bf16 operands run on the tensor cores with fp32 accumulation (COMPUTE_32F); fp32 ones use the math mode
  const int compute = at == kBF16 ? CUBLAS_COMPUTE_32F : a.compute;
  cublasStatus_t s = a.blas.gemm_batched_ex(
      a.handle, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, A, cuda_type(at),
      static_cast<int>(lda), B, cuda_type(bt), static_cast<int>(ldb), &beta, C, cuda_type(ct), static_cast<int>(ldc),
      static_cast<int>(batch), compute, CUBLAS_GEMM_DEFAULT);
  GN_CHECK(s == CUBLAS_STATUS_SUCCESS, "gpt-native: cuBLAS error in cublasGemmBatchedEx (", what, ": m=", m, " n=", n,
           " k=", k, " lda=", lda, " ldb=", ldb, " ldc=", ldc, " batch=", batch, " compute=", compute, ") at ",
           __FILE__, ":", __LINE__, ": ", cublas_status_text(a.blas, s));
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

int64_t largest_matrix(const std::vector<QChunk>& cs) {
  int64_t m = 0;
  for (const QChunk& c : cs) m = c.rows * c.cols > m ? c.rows * c.cols : m;
  return m;
}

// pairs per group: as many as fit the scratch at pair_bytes each (at least one; cuBLAS batches stay < 2^16)
int64_t pairs_per_group(const CudaAddon& a, int64_t pairs, int64_t pair_bytes) {
  int64_t g = a.attn_scratch / (pair_bytes > 0 ? pair_bytes : 1);
  if (g < 1) g = 1;
  if (g > 65535) g = 65535;
  return g < pairs ? g : pairs;
}

AttnRows rows(const AttnDims& d, int64_t u0, int64_t pairs, const QChunk& c) {
  AttnRows r;
  r.u0 = u0; r.pairs = pairs; r.NH = d.NH; r.Tq = d.Tq; r.Tk = d.Tk;
  r.q_pos0 = d.q_pos0; r.window = d.window; r.dropout = d.dropout; r.seed = d.seed;
  r.i0 = c.i0; r.rows = c.rows; r.k0 = c.k0; r.cols = c.cols;
  return r;
}

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

// Builds AttnPtrSpecs: add() returns the index of the array whose entries point at
// base + (b·bstride + h·hstride + g·gstride) elements of es bytes.
struct Ptrs {
  AttnPtrSpecs s;
  int add(const void* base, int64_t es, int64_t bstride, int64_t hstride, int64_t gstride) {
    s.base[s.n] = static_cast<const char*>(base);
    s.bstride[s.n] = bstride * es;
    s.hstride[s.n] = hstride * es;
    s.gstride[s.n] = gstride * es;
    return s.n++;
  }
};

}  // namespace

bool attention_gemm_usable(const CudaAddon& a) { return a.blas.gemm_batched_ex != nullptr; }

void attention_forward_gemm(CudaAddon& a, DType dt, void* out, float* lse, const void* q, const void* k, const void* v,
                            const AttnDims& d) {
  const int64_t BH = d.B * d.NH;
  if (BH == 0 || d.Tq == 0 || d.Tk == 0) return;
  const std::vector<QChunk> cs = query_chunks(a, d);
  const int64_t es = dtype_bytes(dt), big = largest_matrix(cs), G = pairs_per_group(a, BH, big * es);
  const size_t s_bytes = align256(static_cast<size_t>(G * big * es));
  char* base = static_cast<char*>(a.attn.get(a.stream, s_bytes + 6 * G * sizeof(void*)));
  void* S = base;
  void** ptrs = reinterpret_cast<void**>(base + s_bytes);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  for (int64_t u0 = 0; u0 < BH; u0 += G) {
    const int64_t g = BH - u0 < G ? BH - u0 : G;
    for (const QChunk& c : cs) {
      const int64_t mat = c.rows * c.cols;
      Ptrs p;
      const int K = p.add(k, es, d.k[0], d.HS, 0) /* + k0 rows below */, Q = p.add(q, es, d.q[0], d.HS, 0),
                Sp = p.add(S, es, 0, 0, mat), V = p.add(v, es, d.v[0], d.HS, 0), O = p.add(out, es, d.o[0], d.HS, 0);
      p.s.base[K] += c.k0 * d.k[1] * es;
      p.s.base[Q] += c.i0 * d.q[1] * es;
      p.s.base[V] += c.k0 * d.v[1] * es;
      p.s.base[O] += c.i0 * d.o[1] * es;
      attn_pointers(a.stream, ptrs, p.s, u0, g, d.NH);
      auto arr = [&](int i) { return ptrs + i * g; };
      bgemm(a, "attention_forward scores", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, scale, arr(K), dt, d.k[1],
            arr(Q), dt, d.q[1], arr(Sp), dt, c.cols, g, 0.0f);
      attn_probs(a.stream, dt, S, lse, nullptr, rows(d, u0, g, c), /*dropped=*/true);
      bgemm(a, "attention_forward values", CUBLAS_OP_N, CUBLAS_OP_N, d.HS, c.rows, c.cols, 1.0f, arr(V), dt, d.v[1],
            arr(Sp), dt, c.cols, arr(O), dt, d.o[1], g, 0.0f);
    }
  }
}

void attention_backward_gemm(CudaAddon& a, DType dt, void* dq, void* dk, void* dv, const void* dout, const void* q,
                             const void* k, const void* v, const float* lse, const AttnDims& d) {
  const int64_t BH = d.B * d.NH;
  if (BH == 0 || d.Tq == 0 || d.Tk == 0) return;
  const std::vector<QChunk> cs = query_chunks(a, d);
  const int64_t es = dtype_bytes(dt), big = largest_matrix(cs), acc_stride = d.Tk * d.HS;
  // per pair: two score matrices and the two fp32 accumulators
  const int64_t G = pairs_per_group(a, BH, 2 * big * es + 2 * acc_stride * 4);
  const size_t region = align256(static_cast<size_t>(G * big * es)),
               acc_region = align256(static_cast<size_t>(G * acc_stride * 4));
  char* base = static_cast<char*>(a.attn.get(a.stream, 2 * region + 2 * acc_region + 9 * G * sizeof(void*)));
  void* P = base;            // S, then P, then A
  void* dA = base + region;  // dA, then dS
  float* dKacc = reinterpret_cast<float*>(base + 2 * region);  // (pairs, Tk, HS)
  float* dVacc = reinterpret_cast<float*>(base + 2 * region + acc_region);
  void** ptrs = reinterpret_cast<void**>(base + 2 * region + 2 * acc_region);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  for (int64_t u0 = 0; u0 < BH; u0 += G) {
    const int64_t g = BH - u0 < G ? BH - u0 : G;
    fill(a.stream, kF32, dKacc, 0.0f, g * acc_stride);
    fill(a.stream, kF32, dVacc, 0.0f, g * acc_stride);
    for (const QChunk& c : cs) {
      const int64_t mat = c.rows * c.cols;
      Ptrs p;
      const int K = p.add(k, es, d.k[0], d.HS, 0), Q = p.add(q, es, d.q[0], d.HS, 0),
                V = p.add(v, es, d.v[0], d.HS, 0), dO = p.add(dout, es, d.o[0], d.HS, 0),
                dQ = p.add(dq, es, d.q[0], d.HS, 0), Pp = p.add(P, es, 0, 0, mat), dAp = p.add(dA, es, 0, 0, mat),
                dKa = p.add(dKacc + c.k0 * d.HS, 4, 0, 0, acc_stride),
                dVa = p.add(dVacc + c.k0 * d.HS, 4, 0, 0, acc_stride);
      p.s.base[K] += c.k0 * d.k[1] * es;
      p.s.base[V] += c.k0 * d.v[1] * es;
      p.s.base[Q] += c.i0 * d.q[1] * es;
      p.s.base[dO] += c.i0 * d.o[1] * es;
      p.s.base[dQ] += c.i0 * d.q[1] * es;
      attn_pointers(a.stream, ptrs, p.s, u0, g, d.NH);
      auto arr = [&](int i) { return ptrs + i * g; };
      bgemm(a, "attention_backward scores", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, scale, arr(K), dt, d.k[1],
            arr(Q), dt, d.q[1], arr(Pp), dt, c.cols, g, 0.0f);
      const AttnRows r = rows(d, u0, g, c);
      attn_probs(a.stream, dt, P, nullptr, lse, r, /*dropped=*/false);
      bgemm(a, "attention_backward dA", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, 1.0f, arr(V), dt, d.v[1],
            arr(dO), dt, d.o[1], arr(dAp), dt, c.cols, g, 0.0f);
      attn_probs_backward(a.stream, dt, P, dA, r);
      // P now holds A, dA holds dS
      bgemm(a, "attention_backward dv", CUBLAS_OP_N, CUBLAS_OP_T, d.HS, c.cols, c.rows, 1.0f, arr(dO), dt, d.o[1],
            arr(Pp), dt, c.cols, arr(dVa), kF32, d.HS, g, /*beta=*/1.0f);
      bgemm(a, "attention_backward dq", CUBLAS_OP_N, CUBLAS_OP_N, d.HS, c.rows, c.cols, scale, arr(K), dt, d.k[1],
            arr(dAp), dt, c.cols, arr(dQ), dt, d.q[1], g, 0.0f);
      bgemm(a, "attention_backward dk", CUBLAS_OP_N, CUBLAS_OP_T, d.HS, c.cols, c.rows, scale, arr(Q), dt, d.q[1],
            arr(dAp), dt, c.cols, arr(dKa), kF32, d.HS, g, /*beta=*/1.0f);
    }
    acc_to_strided(a.stream, dt, dk, d.k[0], d.k[1], dKacc, u0, g, d.NH, d.Tk, d.HS);
    acc_to_strided(a.stream, dt, dv, d.v[0], d.v[1], dVacc, u0, g, d.NH, d.Tk, d.HS);
  }
}

}  // namespace cuda
}  // namespace gn
