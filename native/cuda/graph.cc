// CUDA graphs for the KV decoder's steady state (lib/nn/decoder.ts). One decoded token per row runs about
// 8·n_layer + 4 launches; issued one at a time from JavaScript, batch-1 decoding is bound by the host. The decoder
// instead captures a step once (graphBegin … graphEnd, stream capture on the addon's stream) and replays it per
// token with one graphLaunch. A replay runs the captured launches with the arguments they had, so everything that
// changes per token lives in device memory: the decode slots [pos, ids…] (setDecodeSlots writes them before each
// launch) that decodeEmbed, decodeAppend and attentionForward({ slots }) read (decode.cu).
//
// What a capture may not do (the addon throws, naming it): copy to or from host memory, synchronise, allocate or
// free device memory, or grow a scratch buffer. A graph holds the device pointers it was captured with, so one
// captured before a scratch reallocation is stale: graphLaunch then returns false and the caller captures again.
// The buffers the caller passed (weights, caches, activations) are the caller's to keep alive and in place.
#include <napi.h>

#include <cstring>
#include <vector>

#include "cuda/context.h"
#include "cuda/kernels.h"
#include "napi/guard.h"

namespace gn {
namespace cuda {

void DecodeSlots::release() {
  if (d) cudaFree(d);
  d = nullptr;
}

DecodeSlots* slots_of(Napi::Value v, const char* op, const char* name) {
  DecodeSlots* s = v.IsExternal() ? v.As<Napi::External<DecodeSlots>>().Data() : nullptr;
  if (!s || s->magic != kSlotsMagic)
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": expected decode slots (from decodeSlots) for ", name));
  if (s->freed) throw KernelError(KernelError::Kind::Generic, str_cat(op, ": ", name, ": the decode slots were freed"));
  return s;
}

DecodeSlots* slots_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  return slots_of(info[i], op, str_cat("slots (argument ", i, ")").c_str());
}

namespace {

constexpr uint64_t kGraphMagic = 0x676e2d6772617068ULL;  // "gn-graph"
struct Graph {
  uint64_t magic = kGraphMagic;
  cudaGraphExec_t exec = nullptr;
  uint64_t reallocs = 0;  // the addon's scratch reallocations when it was captured
};

Graph* graph_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  Graph* g = info[i].IsExternal() ? info[i].As<Napi::External<Graph>>().Data() : nullptr;
  if (!g || g->magic != kGraphMagic)
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a graph (from graphEnd) for argument ", i));
  return g;
}

// decodeSlots(rows, positions): device int32 [pos, id_0, …, id_{rows-1}], all zero; pos < positions
Napi::Value DecodeSlotsNew(const Napi::CallbackInfo& info) {
  const char* op = "decode_slots";
  CudaAddon& a = ready(info, op);
  no_capture(a, "decodeSlots()");
  const int64_t rows = dim(info, 0, op, "rows"), positions = dim(info, 1, op, "positions");
  GN_CHECK_RANGE(rows >= 1 && rows < (int64_t(1) << 24), op, ": rows must be in [1, 2^24), got ", rows);
  GN_CHECK_RANGE(positions >= 1 && positions < (int64_t(1) << 30), op, ": positions must be in [1, 2^30), got ",
                 positions);
  auto* s = new DecodeSlots();
  s->rows = rows;
  s->positions = positions;
  const size_t bytes = static_cast<size_t>(rows + 1) * sizeof(int32_t);
  cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&s->d), bytes);
  if (e == cudaSuccess) e = cudaMemsetAsync(s->d, 0, bytes, a.stream.s);
  if (e != cudaSuccess) {
    s->release();
    delete s;
    GN_CUDA(e);
  }
  return Napi::External<DecodeSlots>::New(info.Env(), s, [](Napi::Env, DecodeSlots* d) {
    if (!d->freed) d->release();  // errors ignored (may run at process teardown)
    delete d;
  });
}

Napi::Value DecodeSlotsFree(const Napi::CallbackInfo& info) {
  const char* op = "free_decode_slots";
  CudaAddon& a = ready(info, op);
  no_capture(a, "freeDecodeSlots()");
  DecodeSlots* s = slots_arg(info, 0, op);
  GN_CUDA(cudaStreamSynchronize(a.stream.s));  // queued work may still read them
  s->release();
  s->freed = true;
  return info.Env().Undefined();
}

// setDecodeSlots(slots, pos, ids, V): checks 0 <= pos < positions, ids.length <= rows and 0 <= id < V, then writes
// them to the device in stream order, before the work that follows, without waiting for the stream (to_device: through
// the addon's page-locked staging)
Napi::Value SetDecodeSlots(const Napi::CallbackInfo& info) {
  const char* op = "set_decode_slots";
  CudaAddon& a = ready(info, op);
  DecodeSlots* s = slots_arg(info, 0, op);
  const int64_t pos = dim(info, 1, op, "pos");
  HostI32 ids = i32(info, 2, op, "ids");
  const int64_t V = dim(info, 3, op, "V");
  GN_CHECK_RANGE(pos < s->positions, op, ": position ", pos, " is past the ", s->positions,
                 " positions these slots were made for");
  GN_CHECK_RANGE(ids.n >= 1 && ids.n <= s->rows, op, ": ", ids.n, " token ids for slots of ", s->rows, " rows");
  no_capture(a, "setDecodeSlots()");
  for (int64_t i = 0; i < ids.n; ++i)
    GN_CHECK_RANGE(ids.p[i] >= 0 && ids.p[i] < V, op, ": token id ", ids.p[i], " at ", i,
                   " is out of range for a vocabulary of ", V);
  std::vector<int32_t> h(static_cast<size_t>(ids.n) + 1);
  h[0] = static_cast<int32_t>(pos);
  std::memcpy(h.data() + 1, ids.p, static_cast<size_t>(ids.n) * sizeof(int32_t));
  to_device(a, s->d, h.data(), h.size() * sizeof(int32_t));
  return info.Env().Undefined();
}

// decodeEmbed(out, slots, wte, wpe, B, C, V, P): out (B, C) = wte[id_b] + wpe[pos]
Napi::Value DecodeEmbed(const Napi::CallbackInfo& info) {
  const char* op = "decode_embed";
  CudaAddon& a = ready(info, op);
  auto out = view(info, 0, op, "out");
  DecodeSlots* s = slots_arg(info, 1, op);
  auto wte = view(info, 2, op, "wte");
  auto wpe = view(info, 3, op, "wpe");
  const int64_t B = dim(info, 4, op, "B"), C = dim(info, 5, op, "C"), V = dim(info, 6, op, "V"),
                P = dim(info, 7, op, "P");
  GN_CHECK_RANGE(B >= 1 && B <= s->rows, op, ": B=", B, " rows but the slots hold ", s->rows);
  GN_CHECK_RANGE(s->positions <= P, op, ": the slots allow positions up to ", s->positions - 1,
                 " but wpe has P=", P, " rows");
  need(out, B * C, op, "out", str_cat("(", B, ",", C, ")"));
  need_exact(wte, V * C, op, "wte", str_cat("(", V, ",", C, ")"));
  need_exact(wpe, P * C, op, "wpe", str_cat("(", P, ",", C, ")"));
  decode_embed(a.stream, out.dt, out.p, s->d, f32v(wte, op, "wte"), f32v(wpe, op, "wpe"), B, C);
  return info.Env().Undefined();
}

// decodeAppend(dst, dstBatchStride, dstRowStride, src, srcBatchStride, slots, B, width):
// dst[b·dsb + pos·dsr + c] = src[b·ssb + c], c < width (a new row into each KV cache)
Napi::Value DecodeAppend(const Napi::CallbackInfo& info) {
  const char* op = "decode_append";
  CudaAddon& a = ready(info, op);
  auto dst = view(info, 0, op, "dst");
  const int64_t dsb = dim(info, 1, op, "dstBatchStride"), dsr = dim(info, 2, op, "dstRowStride");
  auto src = view(info, 3, op, "src");
  const int64_t ssb = dim(info, 4, op, "srcBatchStride");
  DecodeSlots* s = slots_arg(info, 5, op);
  const int64_t B = dim(info, 6, op, "B"), width = dim(info, 7, op, "width");
  GN_CHECK_RANGE(B >= 1 && B <= s->rows, op, ": B=", B, " rows but the slots hold ", s->rows);
  GN_CHECK_RANGE(width >= 1 && dsr >= width && (B == 1 || (dsb >= width && ssb >= width)), op,
                 ": strides (dst ", dsb, ", ", dsr, "; src ", ssb, ") are too small for rows of ", width);
  need(dst, (B - 1) * dsb + (s->positions - 1) * dsr + width, op, "dst",
       str_cat("(B=", B, ", positions=", s->positions, ", ", width, ") with strides [", dsb, ",", dsr, "]"));
  need(src, (B - 1) * ssb + width, op, "src", str_cat("(B=", B, ", ", width, ") with batch stride ", ssb));
  const DType dt = act_dtype(op, {{&dst, "dst"}, {&src, "src"}});
  decode_append(a.stream, dt, dst.p, dsb, dsr, src.p, ssb, s->d, B, width);
  return info.Env().Undefined();
}

// graphBegin(): the addon's stream starts recording instead of running (until graphEnd)
Napi::Value GraphBegin(const Napi::CallbackInfo& info) {
  const char* op = "graph_begin";
  CudaAddon& a = ready(info, op);
  GN_CHECK(!a.stream.capturing, op, ": a CUDA graph is already being captured; call graphEnd first");
  GN_CUDA(cudaStreamBeginCapture(a.stream.s, cudaStreamCaptureModeThreadLocal));
  a.stream.capturing = true;
  return info.Env().Undefined();
}

// graphEnd(keep): ends the capture; keep: the graph, ready to launch; else (a capture abandoned after an error)
// nothing is kept and undefined is returned
Napi::Value GraphEnd(const Napi::CallbackInfo& info) {
  const char* op = "graph_end";
  CudaAddon& a = ready(info, op);
  GN_CHECK(a.stream.capturing, op, ": no CUDA graph is being captured (graphBegin starts one)");
  const bool keep = flag(info, 0);
  a.stream.capturing = false;
  cudaGraph_t g = nullptr;
  cudaError_t e = cudaStreamEndCapture(a.stream.s, &g);
  if (!keep || e != cudaSuccess) {
    if (g) cudaGraphDestroy(g);
    (void)cudaGetLastError();
    if (keep) GN_CUDA(e);
    return info.Env().Undefined();
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  GN_CUDA(e);
  auto* h = new Graph();
  h->exec = exec;
  h->reallocs = a.scratch_reallocs;
  ++a.graphs_captured;
  return Napi::External<Graph>::New(info.Env(), h, [](Napi::Env, Graph* d) {
    if (d->exec) cudaGraphExecDestroy(d->exec);  // errors ignored (may run at process teardown)
    delete d;
  });
}

// graphLaunch(graph): true when it ran (queued on the stream); false when it is stale (a scratch buffer it uses
// was reallocated since it was captured): capture it again
Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {
  const char* op = "graph_launch";
  CudaAddon& a = ready(info, op);
  no_capture(a, "graphLaunch()");
  Graph* g = graph_arg(info, 0, op);
  GN_CHECK(g->exec, op, ": the graph was freed");
  if (g->reallocs != a.scratch_reallocs) {
    ++a.graphs_stale;
    return Napi::Boolean::New(info.Env(), false);
  }
  GN_CUDA(cudaGraphLaunch(g->exec, a.stream.s));
  if (a.stream.sync_each) GN_CUDA(cudaStreamSynchronize(a.stream.s));
  ++a.graphs_launched;
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value GraphFree(const Napi::CallbackInfo& info) {
  const char* op = "graph_free";
  CudaAddon& a = ready(info, op);
  no_capture(a, "graphFree()");
  Graph* g = graph_arg(info, 0, op);
  if (g->exec) {
    GN_CUDA(cudaStreamSynchronize(a.stream.s));  // a launch may still be running
    GN_CUDA(cudaGraphExecDestroy(g->exec));
    g->exec = nullptr;
  }
  return info.Env().Undefined();
}

// setGraphs(on): whether the KV decoder replays its steps as CUDA graphs (the default) or launches each kernel;
// returns the old setting
Napi::Value SetGraphs(const Napi::CallbackInfo& info) {
  CudaAddon& a = addon(info);
  const bool old = a.graphs;
  a.graphs = flag(info, 0);
  return Napi::Boolean::New(info.Env(), old);
}

Napi::Value GraphStats(const Napi::CallbackInfo& info) {
  CudaAddon& a = addon(info);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("enabled", Napi::Boolean::New(info.Env(), a.graphs));
  o.Set("captured", Napi::Number::New(info.Env(), static_cast<double>(a.graphs_captured)));
  o.Set("launched", Napi::Number::New(info.Env(), static_cast<double>(a.graphs_launched)));
  o.Set("stale", Napi::Number::New(info.Env(), static_cast<double>(a.graphs_stale)));
  o.Set("scratchReallocs", Napi::Number::New(info.Env(), static_cast<double>(a.scratch_reallocs)));
  return o;
}

}  // namespace

void register_graphs(Napi::Env env, Napi::Object exports) {
  auto def = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, guard_call, name, reinterpret_cast<void*>(fn)));
  };
  def("decodeSlots", DecodeSlotsNew);
  def("freeDecodeSlots", DecodeSlotsFree);
  def("setDecodeSlots", SetDecodeSlots);
  def("decodeEmbed", DecodeEmbed);
  def("decodeAppend", DecodeAppend);
  def("graphBegin", GraphBegin);
  def("graphEnd", GraphEnd);
  def("graphLaunch", GraphLaunch);
  def("graphFree", GraphFree);
  def("setGraphs", SetGraphs);
  def("graphStats", GraphStats);
}

}  // namespace cuda
}  // namespace gn
