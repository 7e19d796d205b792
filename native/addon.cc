// gpt-native addon: module registration only. Each family's wrappers live in native/napi/.
#include <napi.h>

#include "cpu/threading.h"
#include "napi/args.h"

namespace gn {
void register_ops(Napi::Env env, Napi::Object exports);
void register_ref_ops(Napi::Env env, Napi::Object exports);
void register_tokenizer_ops(Napi::Env env, Napi::Object exports);
}  // namespace gn

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new gn::AddonData();
  data->pool = new gn::ThreadPool(gn::ThreadPool::default_threads());
  env.SetInstanceData(data);
  gn::register_ops(env, exports);
  gn::register_ref_ops(env, exports);
  gn::register_tokenizer_ops(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

NODE_API_MODULE(gpt_native, Init)
