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
//   backward  S again (GEMM); dA = dout·Vᵀ (GEMM); with P from S and the stored lse, dS = P∘(dA∘f − D) and
//             A = P∘f (attn_probs_backward, one pass); dQ = scale·dS·K (GEMM, the chunk's rows); dV += Aᵀ·dout and
//             dK += scale·dSᵀ·Q (GEMMs accumulating in fp32 scratch over the query chunks, then written into
//             dv, dk by acc_to_strided)
// The GEMMs are cublasGemmBatchedEx with per-pair pointer arrays that a small kernel writes on the device
// (attn_pointers), so nothing waits for the host; every pointer in them is 16-byte aligned (see Group), and
// inputs whose layout cannot give that (odd head sizes) take one cublasGemmEx per pair instead. Scores, probabilities and their gradients are kept in the
// activation dtype (bf16 with bf16 activations, as llm.c does: half the traffic of the row passes), the row
// kernels compute in fp32. Nothing of size (Tq, Tk) outlives a call.
//
// Row-major matrices are handed to cuBLAS as their column-major transposes: Q of pair (b, h) is the
// column-major HS×rows matrix at q + b·q_batch_stride + i0·q_time_stride + h·HS with leading dimension q's time
// stride, and the (rows, cols) scratch of a pair is the column-major cols×rows matrix with leading dimension
// ld (cols rounded up to 8), so
//   Sᵀ = op_T(K)·Q           gemm(T, N, m=cols, n=rows, k=HS)
//   outᵀ = V·Aᵀ              gemm(N, N, m=HS, n=rows, k=cols)
//   dAᵀ = op_T(V)·dout       gemm(T, N, m=cols, n=rows, k=HS)
//   dVᵀ += dout·op_T(Aᵀ)     gemm(N, T, m=HS, n=cols, k=rows)   into the fp32 (pairs, Tk, HSp) accumulator
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

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// A chunk of queries and the keys it sees: rows i0 … i0+rows-1 of Tq, keys k0 … k0+cols-1 of Tk; its scores sit
// in rows ld elements apart (cols rounded up to 8) and pairs pair_stride elements apart (rounded up to 64), so
// every scratch operand of the GEMMs is 16-byte aligned.
struct QChunk {
  int64_t i0, rows, k0, cols, ld, pair_stride;
};

// Rows per query chunk: $GPT_NATIVE_CUDA_ATTN_QCHUNK (tests) or, by default, the whole of a short sequence
// (Tq <= 128) and otherwise an eighth of Tq (at least 128, a multiple of 64). A causal square in n chunks costs
// (n+1)/2n of its full GEMM and row work (56% with 8); with a band of width w, chunks of about w rows (at
// least 64) cost about 2w keys a row instead of Tk.
int64_t query_chunk_rows(const CudaAddon& a, const AttnDims& d) {
  if (a.attn_qchunk > 0) return a.attn_qchunk;
  if (d.Tq <= 128) return d.Tq;
  int64_t r = round_up((d.Tq + 7) / 8, 64);
  if (r < 128) r = 128;
  if (d.window > 0) {
    const int64_t w = round_up(d.window, 64);
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
    c.ld = round_up(c.cols, 8);
    c.pair_stride = round_up(c.rows * c.ld, 64);
    cs.push_back(c);
  }
  return cs;
}

int64_t largest_matrix(const std::vector<QChunk>& cs) {
  int64_t m = 0;
  for (const QChunk& c : cs) m = c.pair_stride > m ? c.pair_stride : m;
  return m;
}

// Pairs per group: as many as the scratch holds at the backward's need per pair (two score matrices and the two
// fp32 accumulators), in the forward too, so both run the same GEMM shapes (the backward recomputes the scores
// the forward normalised); at least one; cuBLAS batches stay < 2^16.
int64_t pairs_per_group(const CudaAddon& a, const AttnDims& d, int64_t big, int64_t es, int64_t acc_stride) {
  const int64_t pair_bytes = 2 * big * es + 2 * acc_stride * 4;
  const int64_t pairs = d.B * d.NH;
  int64_t g = a.attn_scratch / (pair_bytes > 0 ? pair_bytes : 1);
  if (g < 1) g = 1;
  if (g > 65535) g = 65535;
  return g < pairs ? g : pairs;
}

AttnRows rows(const AttnDims& d, int64_t u0, int64_t pairs, const QChunk& c) {
  AttnRows r;
  r.u0 = u0; r.pairs = pairs; r.NH = d.NH; r.Tq = d.Tq; r.Tk = d.Tk;
  r.q_pos0 = d.q_pos0; r.window = d.window; r.dropout = d.dropout; r.seed = d.seed;
  r.i0 = c.i0; r.rows = c.rows; r.k0 = c.k0; r.cols = c.cols; r.ld = c.ld; r.pair_stride = c.pair_stride;
  return r;
}

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

// The operands of one chunk's GEMMs for the pairs u0 … u0+g-1 of a group: AttnPtrSpecs (entry x of pair u =
// b·NH + h at base + b·bstride + h·hstride + (u − u0)·gstride bytes), and where they go.
//   - batched, for a GEMM whose three operands have every such pointer 16-byte aligned (bases and strides
//     are): one cublasGemmBatchedEx over pointer arrays written on the device (attn_pointers). cuBLAS cannot see
//     pointers inside device arrays and picks tensor-core kernels that need aligned operands (bf16 with
//     k % 8 == 0, for one), so only aligned pointers go there; the scratch operands always are.
//   - otherwise (odd head sizes or view offsets of the inputs): one cublasGemmEx per pair, with pointers cuBLAS
//     checks itself.
// The choice is per GEMM, so a GEMM takes the same path in the forward and the backward (the backward
// recomputes the forward's scores bit for bit) whatever the other operands of the pass are.
struct Group {
  CudaAddon& a;
  AttnPtrSpecs s;
  void** dev = nullptr;  // device pointer arrays (n × g entries: 5 in the forward, 9 in the backward)
  int64_t u0 = 0, g = 0, NH = 0;

  Group(CudaAddon& addon, void** d, int64_t u0_, int64_t g_, int64_t nh) : a(addon), dev(d), u0(u0_), g(g_), NH(nh) {}
  int add(const void* base, int64_t es, int64_t bstride, int64_t hstride, int64_t gstride, int64_t offset) {
    s.base[s.n] = static_cast<const char*>(base) + offset * es;
    s.bstride[s.n] = bstride * es;
    s.hstride[s.n] = hstride * es;
    s.gstride[s.n] = gstride * es;
    return s.n++;
  }
  bool aligned(int x) const {
    return reinterpret_cast<uintptr_t>(s.base[x]) % 16 == 0 && s.bstride[x] % 16 == 0 && s.hstride[x] % 16 == 0 &&
           s.gstride[x] % 16 == 0;
  }
  // after the add()s: the pointer arrays (the scratch operands are always aligned, so some GEMM uses them)
  void ready() { attn_pointers(a.stream, dev, s, u0, g, NH); }
  const char* host_ptr(int x, int64_t gi) const {
    const int64_t u = u0 + gi;
    return s.base[x] + (u / NH) * s.bstride[x] + (u % NH) * s.hstride[x] + gi * s.gstride[x];
  }

  // C_x = alpha·op(A_x)·op(B_x) + beta·C_x for every pair, column-major as cuBLAS
  void gemm(const char* what, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, int xa, DType at,
            int64_t lda, int xb, int64_t ldb, int xc, DType ct, int64_t ldc, float beta) {
    GN_CHECK_RANGE(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
                       ldc <= INT_MAX && g <= INT_MAX,
                   what, ": dimensions beyond 2^31-1 are not supported by cuBLAS");
    // bf16 operands run on the tensor cores with fp32 accumulation (COMPUTE_32F); fp32 ones use the math mode
    const int compute = at == kBF16 ? CUBLAS_COMPUTE_32F : a.compute;
    const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    const bool batched = aligned(xa) && aligned(xb) && aligned(xc);
    if (batched) {
      st = a.blas.gemm_batched_ex(a.handle, ta, tb, im, in, ik, &alpha, dev + xa * g, cuda_data_type(at),
                                  static_cast<int>(lda), dev + xb * g, cuda_data_type(at), static_cast<int>(ldb), &beta,
                                  dev + xc * g, cuda_data_type(ct), static_cast<int>(ldc), static_cast<int>(g), compute,
                                  CUBLAS_GEMM_DEFAULT);
    } else {
      for (int64_t gi = 0; gi < g && st == CUBLAS_STATUS_SUCCESS; ++gi)
        st = a.blas.gemm_ex(a.handle, ta, tb, im, in, ik, &alpha, host_ptr(xa, gi), cuda_data_type(at),
                            static_cast<int>(lda), host_ptr(xb, gi), cuda_data_type(at), static_cast<int>(ldb), &beta,
                            const_cast<char*>(host_ptr(xc, gi)), cuda_data_type(ct), static_cast<int>(ldc), compute,
                            CUBLAS_GEMM_DEFAULT);
    }
    GN_CHECK(st == CUBLAS_STATUS_SUCCESS, "gpt-native: cuBLAS error in ",
             batched ? "cublasGemmBatchedEx" : "cublasGemmEx", " (", what, ": m=", m, " n=", n, " k=", k, " lda=", lda,
             " ldb=", ldb, " ldc=", ldc, " pairs=", g, " compute=", compute, ") at ", __FILE__, ":", __LINE__, ": ",
             cublas_status_text(a.blas, st));
    if (a.stream.sync_each) GN_CUDA(cudaStreamSynchronize(a.stream.s));
  }
};

}  // namespace

bool attention_gemm_usable(const CudaAddon& a) { return a.blas.gemm_batched_ex != nullptr; }

void attention_forward_gemm(CudaAddon& a, DType dt, void* out, float* lse, const void* q, const void* k, const void* v,
                            const AttnDims& d) {
  const int64_t BH = d.B * d.NH;
  if (BH == 0 || d.Tq == 0 || d.Tk == 0) return;
  const std::vector<QChunk> cs = query_chunks(a, d);
  const int64_t es = dtype_bytes(dt), big = largest_matrix(cs);
  const int64_t G = pairs_per_group(a, d, big, es, d.Tk * round_up(d.HS, 4));
  const size_t s_bytes = align256(static_cast<size_t>(G * big * es));
  char* base = static_cast<char*>(a.attn.get(a.stream, s_bytes + 5 * G * sizeof(void*)));
  void* S = base;
  void** ptrs = reinterpret_cast<void**>(base + s_bytes);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  for (int64_t u0 = 0; u0 < BH; u0 += G) {
    const int64_t g = BH - u0 < G ? BH - u0 : G;
    for (const QChunk& c : cs) {
      Group gr(a, ptrs, u0, g, d.NH);
      const int K = gr.add(k, es, d.k[0], d.HS, 0, c.k0 * d.k[1]), Q = gr.add(q, es, d.q[0], d.HS, 0, c.i0 * d.q[1]),
                Sp = gr.add(S, es, 0, 0, c.pair_stride, 0), V = gr.add(v, es, d.v[0], d.HS, 0, c.k0 * d.v[1]),
                O = gr.add(out, es, d.o[0], d.HS, 0, c.i0 * d.o[1]);
      gr.ready();
      gr.gemm("attention_forward scores", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, scale, K, dt, d.k[1], Q,
              d.q[1], Sp, dt, c.ld, 0.0f);
      attn_probs(a.stream, dt, S, lse, nullptr, rows(d, u0, g, c), /*dropped=*/true);
      gr.gemm("attention_forward values", CUBLAS_OP_N, CUBLAS_OP_N, d.HS, c.rows, c.cols, 1.0f, V, dt, d.v[1], Sp,
              c.ld, O, dt, d.o[1], 0.0f);
    }
  }
}

void attention_backward_gemm(CudaAddon& a, DType dt, void* dq, void* dk, void* dv, const void* dout, const void* q,
                             const void* k, const void* v, const float* lse, const AttnDims& d) {
  const int64_t BH = d.B * d.NH;
  if (BH == 0 || d.Tq == 0 || d.Tk == 0) return;
  const std::vector<QChunk> cs = query_chunks(a, d);
  // accumulators (pairs, Tk, HSp): rows of HSp = HS rounded up to 4 floats, 16-byte aligned at every key
  const int64_t es = dtype_bytes(dt), big = largest_matrix(cs), HSp = round_up(d.HS, 4), acc_stride = d.Tk * HSp;
  const int64_t G = pairs_per_group(a, d, big, es, acc_stride);
  const size_t region = align256(static_cast<size_t>(G * big * es)),
               acc_region = align256(static_cast<size_t>(G * acc_stride * 4));
  char* base = static_cast<char*>(a.attn.get(a.stream, 2 * region + 2 * acc_region + 9 * G * sizeof(void*)));
  void* P = base;            // S, then A
  void* dA = base + region;  // dA, then dS
  float* dKacc = reinterpret_cast<float*>(base + 2 * region);
  float* dVacc = reinterpret_cast<float*>(base + 2 * region + acc_region);
  void** ptrs = reinterpret_cast<void**>(base + 2 * region + 2 * acc_region);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  for (int64_t u0 = 0; u0 < BH; u0 += G) {
    const int64_t g = BH - u0 < G ? BH - u0 : G;
    fill(a.stream, kF32, dKacc, 0.0f, g * acc_stride);
    fill(a.stream, kF32, dVacc, 0.0f, g * acc_stride);
    for (const QChunk& c : cs) {
      Group gr(a, ptrs, u0, g, d.NH);
      const int K = gr.add(k, es, d.k[0], d.HS, 0, c.k0 * d.k[1]), Q = gr.add(q, es, d.q[0], d.HS, 0, c.i0 * d.q[1]),
                V = gr.add(v, es, d.v[0], d.HS, 0, c.k0 * d.v[1]),
                dO = gr.add(dout, es, d.o[0], d.HS, 0, c.i0 * d.o[1]),
                dQ = gr.add(dq, es, d.q[0], d.HS, 0, c.i0 * d.q[1]), Pp = gr.add(P, es, 0, 0, c.pair_stride, 0),
                dAp = gr.add(dA, es, 0, 0, c.pair_stride, 0), dKa = gr.add(dKacc, 4, 0, 0, acc_stride, c.k0 * HSp),
                dVa = gr.add(dVacc, 4, 0, 0, acc_stride, c.k0 * HSp);
      gr.ready();
      gr.gemm("attention_backward scores", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, scale, K, dt, d.k[1], Q,
              d.q[1], Pp, dt, c.ld, 0.0f);
      gr.gemm("attention_backward dA", CUBLAS_OP_T, CUBLAS_OP_N, c.cols, c.rows, d.HS, 1.0f, V, dt, d.v[1], dO,
              d.o[1], dAp, dt, c.ld, 0.0f);
      attn_probs_backward(a.stream, dt, P, dA, lse, rows(d, u0, g, c));
      // P now holds A (it held S), dA holds dS
      gr.gemm("attention_backward dv", CUBLAS_OP_N, CUBLAS_OP_T, d.HS, c.cols, c.rows, 1.0f, dO, dt, d.o[1], Pp, c.ld,
              dVa, kF32, HSp, /*beta=*/1.0f);
      gr.gemm("attention_backward dq", CUBLAS_OP_N, CUBLAS_OP_N, d.HS, c.rows, c.cols, scale, K, dt, d.k[1], dAp, c.ld,
              dQ, dt, d.q[1], 0.0f);
      gr.gemm("attention_backward dk", CUBLAS_OP_N, CUBLAS_OP_T, d.HS, c.cols, c.rows, scale, Q, dt, d.q[1], dAp, c.ld,
              dKa, kF32, HSp, /*beta=*/1.0f);
    }
    acc_to_strided(a.stream, dt, dk, d.k[0], d.k[1], dKacc, HSp, u0, g, d.NH, d.Tk, d.HS);
    acc_to_strided(a.stream, dt, dv, d.v[0], d.v[1], dVacc, HSp, u0, g, d.NH, d.Tk, d.HS);
  }
}

}  // namespace cuda
}  // namespace gn
