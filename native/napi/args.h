// Argument unpacking for the N-API layer: typed-array views, numbers, and length checks that throw
// RangeError/TypeError naming the op, the argument and the shapes. The N-API layer never computes.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "common.h"
#include "cpu/threading.h"

namespace gn {

struct AddonData {
  ThreadPool* pool = nullptr;
  ~AddonData() { delete pool; }
};

inline ThreadPool* pool_of(const Napi::CallbackInfo& info) {
  return info.Env().GetInstanceData<AddonData>()->pool;
}

// An argument's typed-array data. `present` is false only for an omitted optional argument: an empty array
// is present with p possibly null, so its length is still checked against what the shape needs.
template <typename T>
struct View {
  T* p = nullptr;
  size_t n = 0;
  bool present = false;
};

template <typename T>
constexpr napi_typedarray_type typed_kind();
template <> constexpr napi_typedarray_type typed_kind<float>() { return napi_float32_array; }
template <> constexpr napi_typedarray_type typed_kind<double>() { return napi_float64_array; }
template <> constexpr napi_typedarray_type typed_kind<int32_t>() { return napi_int32_array; }
template <> constexpr napi_typedarray_type typed_kind<uint16_t>() { return napi_uint16_array; }

template <typename T>
constexpr const char* typed_name();
template <> constexpr const char* typed_name<float>() { return "a Float32Array"; }
template <> constexpr const char* typed_name<double>() { return "a Float64Array"; }
template <> constexpr const char* typed_name<int32_t>() { return "an Int32Array"; }
template <> constexpr const char* typed_name<uint16_t>() { return "a Uint16Array"; }

template <typename T>
View<T> arr(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name,
            bool nullable = false) {
  Napi::Value v = info[i];
  if (nullable && (v.IsNull() || v.IsUndefined())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != typed_kind<T>())
    throw KernelError(KernelError::Kind::Type,
                      str_cat(op, ": expected ", typed_name<T>(), " for ", name, " (argument ", i, ")"));
  auto ta = v.As<Napi::TypedArray>();
  View<T> r;
  r.n = ta.ElementLength();
  r.p = r.n ? reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset()) : nullptr;
  r.present = true;
  return r;
}

// A matrix-product weight operand: a Float32Array, or a Uint16Array holding bf16 values (a bf16 model's copy).
struct WeightView {
  View<float> f;
  View<uint16_t> h;
  bool bf16() const { return h.present; }
};

inline WeightView weight_arr(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  WeightView w;
  if (v.IsTypedArray()) {
    const napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
    if (t == napi_uint16_array) { w.h = arr<uint16_t>(info, i, op, name); return w; }
    if (t == napi_float32_array) { w.f = arr<float>(info, i, op, name); return w; }
  }
  throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a Float32Array, or a Uint16Array of bf16 values, for ",
                                                     name, " (argument ", i, ")"));
}

inline double num(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber())
    throw KernelError(KernelError::Kind::Type, str_cat(op, ": expected a number for ", name, " (argument ", i, ")"));
  return v.As<Napi::Number>().DoubleValue();
}

inline int64_t dim(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  double d = num(info, i, op, name);
  if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d)) || d > 9.0e15)
    throw KernelError(KernelError::Kind::Range,
                      str_cat(op, ": expected a non-negative integer for ", name, " but received ", d));
  return static_cast<int64_t>(d);
}

inline bool flag(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

template <typename T>
void need(const View<T>& v, int64_t required, const char* op, const char* name, const std::string& shape) {
  if (!v.present) return;  // optional argument omitted
  if (static_cast<int64_t>(v.n) < required)
    throw KernelError(KernelError::Kind::Range,
                      str_cat(op, ": ", name, " has ", v.n, " elements but shape ", shape, " needs ", required));
}

template <typename T>
void need_exact(const View<T>& v, int64_t required, const char* op, const char* name,
                const std::string& shape) {
  if (!v.present) return;
  if (static_cast<int64_t>(v.n) != required)
    throw KernelError(KernelError::Kind::Range,
                      str_cat(op, ": ", name, " has ", v.n, " elements but shape ", shape, " has ", required));
}

}  // namespace gn
