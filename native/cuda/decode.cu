// Kernels of the KV decoder's steady state (lib/nn/decoder.ts): one new token per row, with the position and the
// token ids read from a small device array, the decode slots [pos, id_0, …, id_{B-1}] (int32). A step's launches are
// then the same for every position, so the addon can capture them once as a CUDA graph and replay it per token
// (graph.cc); run without a graph, they give the same results bit for bit.
//
//   decode_embed_kernel    out[b, :] = wte[id_b, :] + wpe[pos, :]           (embedding_forward's arithmetic)
//   decode_append_kernel   dst[b·dsb + pos·dsr + c] = src[b·ssb + c]         (a row into the KV cache)
//   attention_decode_kernel  block per (b, h, query i) of Tq new queries at positions pos + i: softmax(q·Kᵀ·scale)·V
//                          over keys lo..pos+i (lo > 0 with a window), no dropout and no logsumexp (inference).
//                          256 threads = 32 groups of 8 lanes; a group takes one key at a time (keys lo + g,
//                          lo + g + 32, …): each lane holds 8 consecutive elements of every 64 of the head row, the
//                          dot product is summed over the group's 8 lanes by shuffles, and each group keeps its own
//                          online softmax (running max, sum, weighted V). The 32 partial results are merged through
//                          shared memory at the end. A warp's 4 groups step through their keys together (a key past
//                          the row's last counts for nothing), so the shuffles never diverge.
//                          Over a long cache (more than kSplitMin positions) the keys are also split between blocks:
//                          grid (rows, S), block y taking keys [y·kSplitKeys, (y+1)·kSplitKeys), each writing its
//                          running max, sum and weighted V to fp32 partials; attention_decode_merge_kernel then merges
//                          the S partials of a row (a split with no key of the row has sum 0 and counts for nothing).
//                          S follows the cache's capacity, not the position, so a captured step keeps its grid.
// Positions and ids are checked on the host when the slots are written (setDecodeSlots).
#include <cfloat>

#include "cuda/device.cuh"
#include "cuda/kernels.h"

namespace gn {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kLanes = 8;                        // lanes of a group (one key)
constexpr int kGroups = kThreads / kLanes;       // 32 keys at a time
constexpr int kChunk = 8 * kLanes;               // head-row elements a group covers per pass: 64
constexpr int kMaxE = static_cast<int>(kMaxHeadSize / kChunk);  // passes for the largest head: 4
constexpr int64_t kSplitKeys = 128;  // keys a block takes when they are split between blocks
constexpr int64_t kSplitMin = 256;   // caches of up to this many positions are not split

// blocks a row's keys are split between: 1 (no partials) up to kSplitMin positions
int64_t decode_splits(int64_t positions) {
  return positions <= kSplitMin ? 1 : (positions + kSplitKeys - 1) / kSplitKeys;
}

template <typename E>
__global__ void decode_embed_kernel(E* out, const int32_t* slots, const float* wte, const float* wpe, int64_t C) {
  const int64_t b = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= C) return;
  const int64_t pos = slots[0], id = slots[1 + b];
  out[b * C + c] = from_f<E>(wte[id * C + c] + wpe[pos * C + c]);
}

template <typename E>
__global__ void decode_append_kernel(E* dst, int64_t dsb, int64_t dsr, const E* src, int64_t ssb,
                                     const int32_t* slots, int64_t width) {
  const int64_t b = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= width) return;
  dst[b * dsb + static_cast<int64_t>(slots[0]) * dsr + c] = src[b * ssb + c];
}

struct DecDims {
  int64_t Tq, NH, HS, q_pos0, window;  // q_pos0: used when no slots are given
  float scale;
  int64_t qsb, qst, ksb, kst, vsb, vst, osb, ost;
};

// 8 consecutive elements from p (d0 .. d0+7 of a head row of HS): 16-byte loads when VEC (the host checked the
// alignment and HS % 8 == 0), else one at a time with zeros past HS
template <bool VEC, typename T>
__device__ __forceinline__ void load8(float (&f)[8], const T* p, int64_t d0, int64_t HS) {
  if constexpr (VEC) {
    if (d0 < HS) {  // (HS % 8 == 0: the 8 elements are in the row)
#pragma unroll
      for (int i = 0; i < 8; i += kVec<T>) load16(f + i, p + d0 + i);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = 0.0f;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] = d0 + i < HS ? to_f(p[d0 + i]) : 0.0f;
  }
}

// sum over the 8 lanes of a group (lanes 8k .. 8k+7 of the warp)
__device__ __forceinline__ float group_sum(float x) {
#pragma unroll
  for (int o = kLanes / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// SPLIT: block y takes keys [y·kSplitKeys, (y+1)·kSplitKeys) only and writes (max, sum, Σ weight·v) to part
template <typename T, int E, bool VEC, bool SPLIT>
__global__ void __launch_bounds__(kThreads) attention_decode_kernel(T* out, const T* q, const T* k, const T* v,
                                                                    DecDims s, const int32_t* slots, float* part) {
  __shared__ float sm_m[kGroups], sm_l[kGroups];
  __shared__ float sm_acc[kGroups][E * kChunk];
  const int64_t r = blockIdx.x;
  const int64_t i = r % s.Tq, h = (r / s.Tq) % s.NH, b = r / (s.Tq * s.NH);
  const int64_t p = (slots ? static_cast<int64_t>(slots[0]) : s.q_pos0) + i;  // this query's position
  int64_t lo = s.window > 0 && p - s.window + 1 > 0 ? p - s.window + 1 : 0, hi = p;  // its keys
  if constexpr (SPLIT) {
    const int64_t y0 = static_cast<int64_t>(blockIdx.y) * kSplitKeys;
    lo = lo > y0 ? lo : y0;
    hi = hi < y0 + kSplitKeys - 1 ? hi : y0 + kSplitKeys - 1;
  }
  const int g = threadIdx.x / kLanes, sub = threadIdx.x % kLanes;
  const int warp = threadIdx.x / 32, gw = (threadIdx.x % 32) / kLanes;  // a warp holds groups 4·warp .. +3
  const T* qr = q + b * s.qsb + i * s.qst + h * s.HS;
  const T* kb = k + b * s.ksb + h * s.HS;
  const T* vb = v + b * s.vsb + h * s.HS;
  float qv[E][8], acc[E][8];
#pragma unroll
  for (int e = 0; e < E; ++e) {
    load8<VEC>(qv[e], qr, e * kChunk + sub * 8, s.HS);
#pragma unroll
    for (int t = 0; t < 8; ++t) acc[e][t] = 0.0f;
  }
  float m = -FLT_MAX, l = 0.0f;
  // the warp's groups take keys base + gw for base = lo + 4·warp, lo + 4·warp + 32, …: the same trip count for
  // all lanes of a warp
  for (int64_t base = lo + 4 * warp; base <= hi; base += kGroups) {
    const int64_t j = base + gw;
    const bool live = j <= hi;
    float kr[E][8], vr[E][8];
    float dot = 0.0f;
    if (live) {
#pragma unroll
      for (int e = 0; e < E; ++e) {
        load8<VEC>(kr[e], kb + j * s.kst, e * kChunk + sub * 8, s.HS);
        load8<VEC>(vr[e], vb + j * s.vst, e * kChunk + sub * 8, s.HS);
#pragma unroll
        for (int t = 0; t < 8; ++t) dot += qv[e][t] * kr[e][t];
      }
    }
    dot = group_sum(dot);
    if (live) {
      const float sij = s.scale * dot;
      const float mn = fmaxf(m, sij);
      const float corr = expf(m - mn), pe = expf(sij - mn);
      l = l * corr + pe;
#pragma unroll
      for (int e = 0; e < E; ++e)
#pragma unroll
        for (int t = 0; t < 8; ++t) acc[e][t] = acc[e][t] * corr + pe * vr[e][t];
      m = mn;
    }
  }
  if (sub == 0) {
    sm_m[g] = m;
    sm_l[g] = l;
  }
#pragma unroll
  for (int e = 0; e < E; ++e)
#pragma unroll
    for (int t = 0; t < 8; ++t) sm_acc[g][e * kChunk + sub * 8 + t] = acc[e][t];
  __syncthreads();
  // merge: groups that saw no key have l = 0 and add nothing
  float M = -FLT_MAX;
  for (int x = 0; x < kGroups; ++x)
    if (sm_l[x] > 0.0f) M = fmaxf(M, sm_m[x]);
  float L = 0.0f;
  for (int x = 0; x < kGroups; ++x)
    if (sm_l[x] > 0.0f) L += expf(sm_m[x] - M) * sm_l[x];
  // SPLIT: this block's share (max, sum: 0 when none of its keys is the row's, Σ weight·v) to its partials; else the
  // row's output (it sees at least key p, so L >= 1)
  float* pr = SPLIT ? part + (r * gridDim.y + blockIdx.y) * (s.HS + 2) : nullptr;
  if (SPLIT && threadIdx.x == 0) {
    pr[0] = M;
    pr[1] = L;
  }
  const float inv = SPLIT ? 1.0f : 1.0f / L;
  T* o = out + b * s.osb + i * s.ost + h * s.HS;
  for (int64_t d = threadIdx.x; d < s.HS; d += kThreads) {
    float sum = 0.0f;
    for (int x = 0; x < kGroups; ++x)
      if (sm_l[x] > 0.0f) sum += expf(sm_m[x] - M) * sm_acc[x][d];
    if constexpr (SPLIT) pr[2 + d] = sum;
    else o[d] = from_f<T>(sum * inv);
  }
}

// a row's S partials (max, sum, Σ weight·v) merged into its output
template <typename T>
__global__ void __launch_bounds__(kThreads) attention_decode_merge_kernel(T* out, const float* part, int S, DecDims s) {
  const int64_t r = blockIdx.x;
  const int64_t i = r % s.Tq, h = (r / s.Tq) % s.NH, b = r / (s.Tq * s.NH);
  const float* pr = part + r * S * (s.HS + 2);
  float M = -FLT_MAX;
  for (int y = 0; y < S; ++y)
    if (pr[y * (s.HS + 2) + 1] > 0.0f) M = fmaxf(M, pr[y * (s.HS + 2)]);
  float L = 0.0f;
  for (int y = 0; y < S; ++y) {
    const float* py = pr + y * (s.HS + 2);
    if (py[1] > 0.0f) L += expf(py[0] - M) * py[1];
  }
  const float inv = 1.0f / L;
  T* o = out + b * s.osb + i * s.ost + h * s.HS;
  for (int64_t d = threadIdx.x; d < s.HS; d += kThreads) {
    float sum = 0.0f;
    for (int y = 0; y < S; ++y) {
      const float* py = pr + y * (s.HS + 2);
      if (py[1] > 0.0f) sum += expf(py[0] - M) * py[2 + d];
    }
    o[d] = from_f<T>(sum * inv);
  }
}

template <typename T, int E>
void decode_attn_e(const Stream& st, void* out, const void* q, const void* k, const void* v, const DecDims& s,
                   int64_t rows, const int32_t* slots, bool vec, int64_t S, float* part) {
  auto* o = static_cast<T*>(out);
  auto* qp = static_cast<const T*>(q);
  auto* kp = static_cast<const T*>(k);
  auto* vp = static_cast<const T*>(v);
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(S));
  if (S == 1 && vec) attention_decode_kernel<T, E, true, false><<<grid, kThreads, 0, st.s>>>(o, qp, kp, vp, s, slots, part);
  else if (S == 1) attention_decode_kernel<T, E, false, false><<<grid, kThreads, 0, st.s>>>(o, qp, kp, vp, s, slots, part);
  else if (vec) attention_decode_kernel<T, E, true, true><<<grid, kThreads, 0, st.s>>>(o, qp, kp, vp, s, slots, part);
  else attention_decode_kernel<T, E, false, true><<<grid, kThreads, 0, st.s>>>(o, qp, kp, vp, s, slots, part);
  GN_LAUNCHED(st, "attention_decode_kernel");
  if (S > 1) {
    attention_decode_merge_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, st.s>>>(o, part, static_cast<int>(S), s);
    GN_LAUNCHED(st, "attention_decode_merge_kernel");
  }
}

template <typename T>
void decode_attn(const Stream& st, void* out, const void* q, const void* k, const void* v, const AttnDims& d,
                 const int32_t* slots, float* part) {
  DecDims s;
  s.Tq = d.Tq; s.NH = d.NH; s.HS = d.HS; s.q_pos0 = d.q_pos0; s.window = d.window;
  s.scale = 1.0f / sqrtf(static_cast<float>(d.HS));
  s.qsb = d.q[0]; s.qst = d.q[1]; s.ksb = d.k[0]; s.kst = d.k[1];
  s.vsb = d.v[0]; s.vst = d.v[1]; s.osb = d.o[0]; s.ost = d.o[1];
  // 8-element loads where every head row starts 16-byte aligned: HS, and every stride, a multiple of 8 elements
  const bool vec = d.HS % 8 == 0 && aligned16(q) && aligned16(k) && aligned16(v) && d.q[0] % 8 == 0 &&
                   d.q[1] % 8 == 0 && d.k[0] % 8 == 0 && d.k[1] % 8 == 0 && d.v[0] % 8 == 0 && d.v[1] % 8 == 0;
  const int64_t rows = d.B * d.NH * d.Tq, S = decode_splits(d.Tk);
  switch ((d.HS + kChunk - 1) / kChunk) {
    case 1: decode_attn_e<T, 1>(st, out, q, k, v, s, rows, slots, vec, S, part); break;
    case 2: decode_attn_e<T, 2>(st, out, q, k, v, s, rows, slots, vec, S, part); break;
    case 3: decode_attn_e<T, 3>(st, out, q, k, v, s, rows, slots, vec, S, part); break;
    default: decode_attn_e<T, kMaxE>(st, out, q, k, v, s, rows, slots, vec, S, part); break;
  }
}

}  // namespace

void decode_embed(const Stream& st, DType dt, void* out, const int32_t* slots, const float* wte, const float* wpe,
                  int64_t B, int64_t C) {
  const dim3 grid(static_cast<unsigned>(B), static_cast<unsigned>((C + kThreads - 1) / kThreads));
  if (dt == kBF16) decode_embed_kernel<bf16><<<grid, kThreads, 0, st.s>>>(static_cast<bf16*>(out), slots, wte, wpe, C);
  else decode_embed_kernel<float><<<grid, kThreads, 0, st.s>>>(static_cast<float*>(out), slots, wte, wpe, C);
  GN_LAUNCHED(st, "decode_embed_kernel");
}

void decode_append(const Stream& st, DType dt, void* dst, int64_t dsb, int64_t dsr, const void* src, int64_t ssb,
                   const int32_t* slots, int64_t B, int64_t width) {
  const dim3 grid(static_cast<unsigned>(B), static_cast<unsigned>((width + kThreads - 1) / kThreads));
  if (dt == kBF16)
    decode_append_kernel<bf16><<<grid, kThreads, 0, st.s>>>(static_cast<bf16*>(dst), dsb, dsr,
                                                            static_cast<const bf16*>(src), ssb, slots, width);
  else
    decode_append_kernel<float><<<grid, kThreads, 0, st.s>>>(static_cast<float*>(dst), dsb, dsr,
                                                             static_cast<const float*>(src), ssb, slots, width);
  GN_LAUNCHED(st, "decode_append_kernel");
}

int64_t attention_decode_partials(const AttnDims& d) {
  const int64_t S = decode_splits(d.Tk);
  return S == 1 ? 0 : d.B * d.NH * d.Tq * S * (d.HS + 2);
}

void attention_decode(const Stream& st, DType dt, void* out, const void* q, const void* k, const void* v,
                      const AttnDims& d, const int32_t* slots, float* partials) {
  if (dt == kBF16) decode_attn<bf16>(st, out, q, k, v, d, slots, partials);
  else decode_attn<float>(st, out, q, k, v, d, slots, partials);
}

}  // namespace cuda
}  // namespace gn
