#pragma once
#include <fmt/format.h>

#include <utility>

#include "moeflux/error.h"

namespace moeflux {

// Bad input: the common case, so the short name.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...), ErrorKind::BadInput);
}

template <typename... Args>
[[noreturn]] void fail_as(ErrorKind kind, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...), kind);
}

}  // namespace moeflux
