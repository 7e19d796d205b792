// N-API wrappers for the byte-level BPE tokenizer (native/tokenizer): unpack, check, call. The tokenizer's
// state lives in a BpeTokenizer owned by a JS External (one per JS Tokenizer), never in statics.
// See lib/native.ts for the JS types.
#include <napi.h>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "napi/args.h"
#include "napi/guard.h"
#include "tokenizer/bpe.h"

namespace gn {

namespace {

struct Bytes {
  const uint8_t* p = nullptr;
  size_t n = 0;
};
struct Ids {
  const uint32_t* p = nullptr;
  size_t n = 0;
};

Bytes bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a Uint8Array for ", name, " (argument ", i, ")"));
  auto ta = v.As<Napi::TypedArray>();
  return {static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ElementLength()};
}

// A Uint32Array or an Int32Array (negative ids then read as huge and fail the range check).
Ids ids_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || (v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array &&
                            v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array))
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": expected a Uint32Array for ", name, " (argument ", i, ")"));
  auto ta = v.As<Napi::TypedArray>();
  return {reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset()),
          ta.ElementLength()};
}

BpeTokenizer* handle_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  Napi::Value v = info[i];
  if (!v.IsExternal())
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a tokenizer handle (argument ", i, ")"));
  return v.As<Napi::External<BpeTokenizer>>().Data();
}

// The UTF-8 bytes of a JS string; V8 writes a lone surrogate as U+FFFD, as TextEncoder does.
void utf8_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, std::string& out) {
  Napi::Value v = info[i];
  if (!v.IsString())
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a string for ", name, " (argument ", i, ")"));
  size_t len = 0;
  napi_status st = napi_get_value_string_utf8(info.Env(), v, nullptr, 0, &len);
  if (st != napi_ok) throw Napi::Error::New(info.Env(), "tokenizer: could not read a string");
  out.resize(len + 1);
  st = napi_get_value_string_utf8(info.Env(), v, &out[0], len + 1, &len);
  if (st != napi_ok) throw Napi::Error::New(info.Env(), "tokenizer: could not read a string");
  out.resize(len);
}

Napi::Value TokenizerCreate(const Napi::CallbackInfo& info) {
  const char* op = "tokenizer_create";
  auto runs = arr<int32_t>(info, 0, op, "classRuns");
  auto b2i = arr<int32_t>(info, 1, op, "byteToId");
  auto merges = arr<int32_t>(info, 2, op, "merges");
  Bytes tb = bytes_arg(info, 3, op, "tokenBytes");
  auto off = arr<int32_t>(info, 4, op, "tokenOffsets");
  GN_CHECK_RANGE(runs.n % 3 == 0, op, ": classRuns has ", runs.n, " elements, not a multiple of 3");
  GN_CHECK_RANGE(b2i.n == 256, op, ": byteToId has ", b2i.n, " elements but needs 256");
  GN_CHECK_RANGE(merges.n % 3 == 0, op, ": merges has ", merges.n, " elements, not a multiple of 3");
  GN_CHECK_RANGE(off.n >= 1 && off.p[off.n - 1] >= 0 && static_cast<size_t>(off.p[off.n - 1]) == tb.n, op,
                 ": tokenOffsets must end at the length of tokenBytes (", tb.n, ")");
  auto* t = new BpeTokenizer(runs.p, runs.n / 3, b2i.p, merges.p, merges.n / 3, tb.p, off.p, off.n - 1);
  return Napi::External<BpeTokenizer>::New(info.Env(), t, [](Napi::Env, BpeTokenizer* p) { delete p; });
}

Napi::Value TokenizerSetTokens(const Napi::CallbackInfo& info) {
  const char* op = "tokenizer_set_tokens";
  BpeTokenizer* t = handle_arg(info, 0, op);
  Bytes tb = bytes_arg(info, 1, op, "tokenBytes");
  auto off = arr<int32_t>(info, 2, op, "tokenOffsets");
  GN_CHECK_RANGE(off.n >= 1 && off.p[off.n - 1] >= 0 && static_cast<size_t>(off.p[off.n - 1]) == tb.n, op,
                 ": tokenOffsets must end at the length of tokenBytes (", tb.n, ")");
  t->set_tokens(tb.p, off.p, off.n - 1);
  return info.Env().Undefined();
}

Napi::Value TokenizerEncode(const Napi::CallbackInfo& info) {
  const char* op = "tokenizer_encode";
  BpeTokenizer* t = handle_arg(info, 0, op);
  std::string& text = t->text_scratch;
  utf8_arg(info, 1, op, "text", text);
  std::vector<uint32_t>& ids = t->ids_scratch;
  ids.clear();
  ids.reserve(text.size() / 2 + 16);
  t->encode(reinterpret_cast<const uint8_t*>(text.data()), text.size(), ids);
  auto out = Napi::Uint32Array::New(info.Env(), ids.size());
  if (!ids.empty()) std::memcpy(out.Data(), ids.data(), ids.size() * sizeof(uint32_t));
  t->release_scratch();
  return out;
}

Napi::Value TokenizerDecode(const Napi::CallbackInfo& info) {
  const char* op = "tokenizer_decode";
  BpeTokenizer* t = handle_arg(info, 0, op);
  Ids ids = ids_arg(info, 1, op, "ids");
  size_t bad = 0;
  int64_t v = t->find_invalid(ids.p, ids.n, &bad);
  if (v >= 0) {
    // an Int32Array's negative id arrives here as a large unsigned one
    double shown = v > 0x7fffffff ? static_cast<double>(static_cast<int32_t>(v)) : static_cast<double>(v);
    throw KernelError(KernelError::Kind::Range, str_cat("Expected a token id in [0, ", t->n_tokens(), ") for ids[",
                                                        bad, "] but received ", shown));
  }
  size_t n = t->decoded_length(ids.p, ids.n);
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), n);
  t->decode(ids.p, ids.n, out.Data());
  return out;
}

// Unique pre-tokenised pieces of a text and their counts (the first step of BPE training):
// { bytes: Uint8Array, offsets: Int32Array (pieces + 1), counts: Int32Array }.
Napi::Value TokenizerCountPieces(const Napi::CallbackInfo& info) {
  const char* op = "tokenizer_count_pieces";
  BpeTokenizer* t = handle_arg(info, 0, op);
  std::string text;
  utf8_arg(info, 1, op, "text", text);
  const uint8_t* s = reinterpret_cast<const uint8_t*>(text.data());
  std::unordered_map<std::string, int32_t> counts;
  t->pretokenize(s, text.size(), [&](size_t b, size_t e) {
    ++counts[std::string(reinterpret_cast<const char*>(s + b), e - b)];
  });
  size_t total = 0;
  for (auto& kv : counts) total += kv.first.size();
  Napi::Env env = info.Env();
  auto bytes = Napi::Uint8Array::New(env, total);
  auto offsets = Napi::Int32Array::New(env, counts.size() + 1);
  auto cnt = Napi::Int32Array::New(env, counts.size());
  size_t at = 0, k = 0;
  offsets[0] = 0;
  for (auto& kv : counts) {
    std::memcpy(bytes.Data() + at, kv.first.data(), kv.first.size());
    at += kv.first.size();
    cnt[k] = kv.second;
    offsets[++k] = static_cast<int32_t>(at);
  }
  auto r = Napi::Object::New(env);
  r.Set("bytes", bytes);
  r.Set("offsets", offsets);
  r.Set("counts", cnt);
  return r;
}

}  // namespace

void register_tokenizer_ops(Napi::Env env, Napi::Object exports) {
  auto def = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, guard_call, name, reinterpret_cast<void*>(fn)));
  };
  def("tokenizerCreate", TokenizerCreate);
  def("tokenizerSetTokens", TokenizerSetTokens);
  def("tokenizerEncode", TokenizerEncode);
  def("tokenizerDecode", TokenizerDecode);
  def("tokenizerCountPieces", TokenizerCountPieces);
}

}  // namespace gn
