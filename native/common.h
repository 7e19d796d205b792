// Shared error type for kernels. Kernels never call exit()/abort(): a failed check throws KernelError
// carrying the op, the shapes and a hint; the N-API boundary (native/napi) turns it into a JS Error.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace gn {

struct KernelError : public std::runtime_error {
  enum class Kind { Generic, Range, Type };
  Kind kind;
  KernelError(Kind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

template <typename... Args>
inline std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

#define GN_CHECK_RANGE(cond, ...) \
  do { if (!(cond)) throw ::gn::KernelError(::gn::KernelError::Kind::Range, ::gn::str_cat(__VA_ARGS__)); } while (0)
#define GN_CHECK(cond, ...) \
  do { if (!(cond)) throw ::gn::KernelError(::gn::KernelError::Kind::Generic, ::gn::str_cat(__VA_ARGS__)); } while (0)

}  // namespace gn
