// LayerNorm over the last dimension, as native/cpu/layernorm.cpp:
//   mean = Σx/C, var = Σ(x-mean)²/C (biased), rstd = 1/sqrt(var+eps), out = (x-mean)·rstd·w + b
// Backward, xhat = (x-mean)·rstd, g = dout·w:
//   dinp = rstd · (g - mean_c(g) - xhat · mean_c(g·xhat))   (=, or += with accumulate; may be skipped)
//   dweight += Σ_n dout·xhat, dbias += Σ_n dout            (+=)
// Launch shapes: forward and dinp use one warp per row (8 rows per 256-thread block), 16 bytes at a time where
// the rows are 16-byte aligned (8 bf16 or 4 floats per access, not one; the forward then holds a row of up to
// 1024 in registers and reads it once); the parameter
// gradients use a column kernel over row chunks (block (32, 8), one column per threadIdx.x) and a second pass
// that adds the chunks in order: deterministic, no atomics.
// Where the rows are aligned and C <= 1024 (every lane holds at most 32 columns of a row), the backward runs in
// one pass instead (layernorm_backward_fused_kernel): each warp computes dinp row by row and keeps its lanes'
// dweight and dbias sums in registers; a block's 8 warps add theirs in warp order, and colsum_finish adds the
// blocks in order. dout and inp are read once, not twice (GPT_NATIVE_CUDA_LN_FUSED=0: the two passes).
#include <type_traits>

#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block

// W consecutive elements of a row of inp as floats into f; with ADD, inp = add_a + add_b is written there first and
// f holds the stored (rounded) sums, so the statistics see what a separate add would have left
template <int W, bool ADD, typename T>
__device__ __forceinline__ void ln_input(float* f, T* x, const T* add_a, const T* add_b) {
  if (ADD) {
    float g[W];
    load_w<W>(f, add_a);
    load_w<W>(g, add_b);
#pragma unroll
    for (int j = 0; j < W; ++j) f[j] += g[j];
    store_w<W>(x, f);
#pragma unroll
    for (int j = 0; j < W; ++j) f[j] = to_f(from_f<T>(f[j]));
  } else {
    load_w<W>(f, x);
  }
}

// W: elements per access, 1 or kVec<T> (rows 16-byte aligned and C a multiple of W; lane l takes elements
// l·W … l·W + W-1 of every 32·W). ADD: inp = add_a + add_b is written first (the residual stream's add; ln_input)
template <typename T, int W, bool ADD>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, T* inp, const float* weight,
                                         const float* bias, int64_t N, int64_t C, float eps, const T* add_a,
                                         const T* add_b) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  T* x = inp + n * C;
  float f[W];
  float s = 0.0f;
  for (int64_t c = lane * W; c < C; c += 32 * W) {
    ln_input<W, ADD>(f, x + c, add_a + n * C + c, add_b + n * C + c);
#pragma unroll
    for (int j = 0; j < W; ++j) s += f[j];
  }
  const float m = warp_sum(s) / static_cast<float>(C);
  float v = 0.0f;
  for (int64_t c = lane * W; c < C; c += 32 * W) {
    load_w<W>(f, x + c);
#pragma unroll
    for (int j = 0; j < W; ++j) v += (f[j] - m) * (f[j] - m);
  }
  const float r = 1.0f / sqrtf(warp_sum(v) / static_cast<float>(C) + eps);
  T* y = out + n * C;
  for (int64_t c = lane * W; c < C; c += 32 * W) {
    load_w<W>(f, x + c);
#pragma unroll
    for (int j = 0; j < W; ++j) f[j] = (f[j] - m) * r * weight[c + j] + bias[c + j];
    store_w<W>(y + c, f);
  }
  if (lane == 0) {
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = r;
  }
}

// The same with the row in registers (rows aligned, C <= CH·32·W <= 1024): lane l holds columns (k·32 + l)·W …
// +W-1 for k < CH, read once (the kernel above reads the row three times). The sums run in the same order.
template <typename T, int W, int CH, bool ADD>
__global__ void layernorm_forward_rows_kernel(T* out, float* mean, float* rstd, T* inp, const float* weight,
                                              const float* bias, int64_t N, int64_t C, float eps, const T* add_a,
                                              const T* add_b) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  T* x = inp + n * C;
  float f[CH][W];
  float s = 0.0f;
#pragma unroll
  for (int k = 0; k < CH; ++k) {
    const int64_t c = static_cast<int64_t>(k * 32 + lane) * W;
    if (c >= C) continue;
    ln_input<W, ADD>(f[k], x + c, add_a + n * C + c, add_b + n * C + c);
#pragma unroll
    for (int j = 0; j < W; ++j) s += f[k][j];
  }
  const float m = warp_sum(s) / static_cast<float>(C);
  float v = 0.0f;
#pragma unroll
  for (int k = 0; k < CH; ++k) {
    const int64_t c = static_cast<int64_t>(k * 32 + lane) * W;
    if (c >= C) continue;
#pragma unroll
    for (int j = 0; j < W; ++j) v += (f[k][j] - m) * (f[k][j] - m);
  }
  const float r = 1.0f / sqrtf(warp_sum(v) / static_cast<float>(C) + eps);
  T* y = out + n * C;
#pragma unroll
  for (int k = 0; k < CH; ++k) {
    const int64_t c = static_cast<int64_t>(k * 32 + lane) * W;
    if (c >= C) continue;
#pragma unroll
    for (int j = 0; j < W; ++j) f[k][j] = (f[k][j] - m) * r * weight[c + j] + bias[c + j];
    store_w<W>(y + c, f[k]);
  }
  if (lane == 0) {
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = r;
  }
}

// dinp only (one warp per row; W as above); ACC: dinp += (a residual stream's gradient: no separate add pass)
template <typename T, int W, bool ACC>
__global__ void layernorm_dinp_kernel(T* dinp, const T* dout, const T* inp, const float* weight, const float* mean,
                                      const float* rstd, int64_t N, int64_t C) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  const T* x = inp + n * C;
  const T* dy = dout + n * C;
  const float m = mean[n], r = rstd[n];
  float xf[W], gf[W];
  float sg = 0.0f, sgx = 0.0f;
  for (int64_t c = lane * W; c < C; c += 32 * W) {
    load_w<W>(xf, x + c);
    load_w<W>(gf, dy + c);
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float g = gf[j] * weight[c + j];
      sg += g;
      sgx += g * ((xf[j] - m) * r);
    }
  }
  sg = warp_sum(sg) / static_cast<float>(C);
  sgx = warp_sum(sgx) / static_cast<float>(C);
  T* dx = dinp + n * C;
  for (int64_t c = lane * W; c < C; c += 32 * W) {
    load_w<W>(xf, x + c);
    load_w<W>(gf, dy + c);
#pragma unroll
    for (int j = 0; j < W; ++j) xf[j] = r * (gf[j] * weight[c + j] - sg - (xf[j] - m) * r * sgx);
    if (ACC) {
      load_w<W>(gf, dx + c);
#pragma unroll
      for (int j = 0; j < W; ++j) xf[j] += gf[j];
    }
    store_w<W>(dx + c, xf);
  }
}

// Partial sums of dweight[c] = Σ_n dout[n,c]·xhat[n,c] and dbias[c] = Σ_n dout[n,c] over row chunk r (grid
// (⌈C/32⌉, R), block (32, 8), as gemm.cu's colsum_partial_kernel): part[r, c] and part[R + r, c]; the chunks
// are then added in order by colsum_finish. Deterministic, no atomics.
constexpr int kColX = 32, kColY = 8;
template <typename T>
__global__ void layernorm_params_kernel(float* part, const T* dout, const T* inp, const float* mean,
                                        const float* rstd, int64_t N, int64_t C, int64_t rows) {
  __shared__ float pw[kColY][kColX], pb[kColY][kColX];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows;
  const int64_t r1 = r0 + rows < N ? r0 + rows : N;
  float sw = 0.0f, sb = 0.0f;
  if (c < C)
    for (int64_t n = r0 + threadIdx.y; n < r1; n += kColY) {
      const float dy = to_f(dout[n * C + c]);
      sb += dy;
      sw += dy * ((to_f(inp[n * C + c]) - mean[n]) * rstd[n]);
    }
  pw[threadIdx.y][threadIdx.x] = sw;
  pb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float tw = 0.0f, tb = 0.0f;
    for (int y = 0; y < kColY; ++y) {
      tw += pw[y][threadIdx.x];
      tb += pb[y][threadIdx.x];
    }
    part[static_cast<int64_t>(blockIdx.y) * C + c] = tw;
    part[(static_cast<int64_t>(gridDim.y) + blockIdx.y) * C + c] = tb;
  }
}

// The one-pass backward (file comment): block b takes rows b·rows … b·rows + rows-1, warp w of them rows w, w + 8, …;
// lane l holds columns (k·32 + l)·W … +W-1 for k < CH (C <= CH·32·W). Writes dinp (=, or += with ACC) and the
// block's partial sums part[b, c] (dweight) and part[gridDim.x + b, c] (dbias).
template <typename T, int W, int CH, bool ACC>
__global__ void __launch_bounds__(32 * kRowsPerBlock) layernorm_backward_fused_kernel(
    T* dinp, float* part, const T* dout, const T* inp, const float* weight, const float* mean, const float* rstd,
    int64_t N, int64_t C, int64_t rows) {
  __shared__ float red[kRowsPerBlock][CH * 32 * W];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * rows;
  const int64_t r1 = r0 + rows < N ? r0 + rows : N;
  float aw[CH][W], ab[CH][W];
#pragma unroll
  for (int k = 0; k < CH; ++k)
#pragma unroll
    for (int j = 0; j < W; ++j) aw[k][j] = ab[k][j] = 0.0f;
  for (int64_t n = r0 + warp; n < r1; n += kRowsPerBlock) {
    const T* x = inp + n * C;
    const T* dy = dout + n * C;
    const float m = mean[n], r = rstd[n];
    float xh[CH][W];  // xhat of the lane's columns (dout is read again below, from the cache: fewer registers)
    float sg = 0.0f, sgx = 0.0f;
#pragma unroll
    for (int k = 0; k < CH; ++k) {
      const int64_t c = static_cast<int64_t>(k * 32 + lane) * W;
      if (c >= C) continue;
      float d[W];
      load_w<W>(xh[k], x + c);
      load_w<W>(d, dy + c);
#pragma unroll
      for (int j = 0; j < W; ++j) {
        xh[k][j] = (xh[k][j] - m) * r;
        ab[k][j] += d[j];
        aw[k][j] += d[j] * xh[k][j];
        const float g = d[j] * weight[c + j];
        sg += g;
        sgx += g * xh[k][j];
      }
    }
    sg = warp_sum(sg) / static_cast<float>(C);
    sgx = warp_sum(sgx) / static_cast<float>(C);
    T* dx = dinp + n * C;
#pragma unroll
    for (int k = 0; k < CH; ++k) {
      const int64_t c = static_cast<int64_t>(k * 32 + lane) * W;
      if (c >= C) continue;
      float o[W];
      load_w<W>(o, dy + c);
#pragma unroll
      for (int j = 0; j < W; ++j) o[j] = r * (o[j] * weight[c + j] - sg - xh[k][j] * sgx);
      if (ACC) {
        float p[W];
        load_w<W>(p, dx + c);
#pragma unroll
        for (int j = 0; j < W; ++j) o[j] += p[j];
      }
      store_w<W>(dx + c, o);
    }
  }
  // the warps' sums, added in warp order: dweight, then dbias
#pragma unroll
  for (int pass = 0; pass < 2; ++pass) {
#pragma unroll
    for (int k = 0; k < CH; ++k) {
      const int c = (k * 32 + lane) * W;
#pragma unroll
      for (int j = 0; j < W; ++j) red[warp][c + j] = pass == 0 ? aw[k][j] : ab[k][j];
    }
    __syncthreads();
    for (int64_t c = threadIdx.x; c < C; c += 32 * kRowsPerBlock) {
      float sum = 0.0f;
      for (int w = 0; w < kRowsPerBlock; ++w) sum += red[w][c];
      part[(static_cast<int64_t>(pass) * gridDim.x + blockIdx.x) * C + c] = sum;
    }
    __syncthreads();
  }
}

// f(std::integral_constant<int, CH>{}) for CH = ch (1 … MAX): the chunks a lane holds of a row, as the one-pass
// kernels' template argument
template <int MAX, int CH = 1, typename F>
void with_chunks(int64_t ch, F&& f) {
  if constexpr (CH < MAX) {
    if (ch > CH) {
      with_chunks<MAX, CH + 1>(ch, f);
      return;
    }
  }
  f(std::integral_constant<int, CH>{});
}

}  // namespace

namespace {

template <typename T>
void ln_forward(const Stream& st, void* out, float* mean, float* rstd, void* inp, const float* weight,
                const float* bias, int64_t N, int64_t C, float eps, const void* add_a, const void* add_b) {
  const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  T* y = static_cast<T*>(out);
  T* x = static_cast<T*>(inp);
  const T *a = static_cast<const T*>(add_a), *b = static_cast<const T*>(add_b);
  constexpr int kW = kVec<T>;
  const bool vec = rows_aligned16<T>(C, {out, inp, add_a, add_b});
  auto run = [&](auto add) {
    constexpr bool kAdd = decltype(add)::value;
    if (vec && C <= 32 * 32)
      with_chunks<32 / kW>((C + 32 * kW - 1) / (32 * kW), [&](auto chunks) {
        constexpr int kCh = decltype(chunks)::value;
        layernorm_forward_rows_kernel<T, kW, kCh, kAdd><<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(y, mean, rstd, x, weight,
                                                                                               bias, N, C, eps, a, b);
      });
    else if (vec)
      layernorm_forward_kernel<T, kW, kAdd><<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(y, mean, rstd, x, weight, bias, N,
                                                                                    C, eps, a, b);
    else
      layernorm_forward_kernel<T, 1, kAdd><<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(y, mean, rstd, x, weight, bias, N,
                                                                                   C, eps, a, b);
  };
  if (add_a) run(std::true_type{});
  else run(std::false_type{});
  GN_LAUNCHED(st, "layernorm_forward_kernel");
}

template <typename T>
void ln_backward(const Stream& st, void* dinp, float* dweight, float* dbias, const void* dout, const void* inp,
                 const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C, float* scratch,
                 bool accumulate, bool fused) {
  constexpr int kW = kVec<T>;
  if (fused && dinp && N > 0 && C <= 32 * 32 && rows_aligned16<T>(C, {dinp, dout, inp})) {
    const int64_t R = layernorm_fused_chunks(N), rows = (N + R - 1) / R;
    const int64_t ch = (C + 32 * kW - 1) / (32 * kW);
    T* dx = static_cast<T*>(dinp);
    const T *dy = static_cast<const T*>(dout), *x = static_cast<const T*>(inp);
    const unsigned blocks = static_cast<unsigned>(R);
    with_chunks<32 / kW>(ch, [&](auto chunks) {
      constexpr int kCh = decltype(chunks)::value;
      if (accumulate)
        layernorm_backward_fused_kernel<T, kW, kCh, true><<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(
            dx, scratch, dy, x, weight, mean, rstd, N, C, rows);
      else
        layernorm_backward_fused_kernel<T, kW, kCh, false><<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(
            dx, scratch, dy, x, weight, mean, rstd, N, C, rows);
    });
    GN_LAUNCHED(st, "layernorm_backward_fused_kernel");
    colsum_finish(st, dweight, scratch, R, C);
    colsum_finish(st, dbias, scratch + R * C, R, C);
    return;
  }
  if (dinp && N > 0) {
    const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
    T* dx = static_cast<T*>(dinp);
    const T *dy = static_cast<const T*>(dout), *x = static_cast<const T*>(inp);
    const bool vec = rows_aligned16<T>(C, {dinp, dout, inp});
    auto run = [&](auto acc) {
      constexpr bool kAcc = decltype(acc)::value;
      if (vec)
        layernorm_dinp_kernel<T, kW, kAcc><<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(dx, dy, x, weight, mean, rstd, N, C);
      else
        layernorm_dinp_kernel<T, 1, kAcc><<<blocks, 32 * kRowsPerBlock, 0, st.s>>>(dx, dy, x, weight, mean, rstd, N, C);
    };
    if (accumulate) run(std::true_type{});
    else run(std::false_type{});
    GN_LAUNCHED(st, "layernorm_dinp_kernel");
  }
  const int64_t R = col_chunks(N, C), rows = N > 0 ? (N + R - 1) / R : 0;
  const dim3 grid(static_cast<unsigned>((C + kColX - 1) / kColX), static_cast<unsigned>(R));
  layernorm_params_kernel<T><<<grid, dim3(kColX, kColY), 0, st.s>>>(
      scratch, static_cast<const T*>(dout), static_cast<const T*>(inp), mean, rstd, N, C, rows);
  GN_LAUNCHED(st, "layernorm_params_kernel");
  colsum_finish(st, dweight, scratch, R, C);
  colsum_finish(st, dbias, scratch + R * C, R, C);
}

}  // namespace

void layernorm_forward(const Stream& st, DType dt, void* out, float* mean, float* rstd, void* inp,
                       const float* weight, const float* bias, int64_t N, int64_t C, float eps, const void* add_a,
                       const void* add_b) {
  if (N == 0) return;
  if (dt == kBF16) ln_forward<bf16>(st, out, mean, rstd, inp, weight, bias, N, C, eps, add_a, add_b);
  else ln_forward<float>(st, out, mean, rstd, inp, weight, bias, N, C, eps, add_a, add_b);
}

void layernorm_backward(const Stream& st, DType dt, void* dinp, float* dweight, float* dbias, const void* dout,
                        const void* inp, const float* weight, const float* mean, const float* rstd, int64_t N,
                        int64_t C, float* scratch, bool accumulate, bool fused) {
  if (C == 0) return;
  if (dt == kBF16)
    ln_backward<bf16>(st, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, scratch, accumulate, fused);
  else ln_backward<float>(st, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, scratch, accumulate, fused);
}

}  // namespace cuda
}  // namespace gn
