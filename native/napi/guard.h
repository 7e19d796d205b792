// The one place where C++ exceptions become JavaScript errors: KernelError::Range -> RangeError,
// ::Type -> TypeError, anything else -> Error; std::bad_alloc says how much was asked for if known.
#pragma once
#include <napi.h>

#include <new>

#include "common.h"

namespace gn {

inline Napi::Value guard_call(const Napi::CallbackInfo& info) {
  using Fn = Napi::Value (*)(const Napi::CallbackInfo&);
  Fn fn = reinterpret_cast<Fn>(info.Data());
  Napi::Env env = info.Env();
  try {
    return fn(info);
  } catch (const KernelError& e) {
    switch (e.kind) {
      case KernelError::Kind::Range: throw Napi::RangeError::New(env, e.what());
      case KernelError::Kind::Type: throw Napi::TypeError::New(env, e.what());
      default: throw Napi::Error::New(env, e.what());
    }
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "gpt-native: out of memory in a native call; use a smaller batch or model");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("gpt-native: ") + e.what());
  }
}

}  // namespace gn
