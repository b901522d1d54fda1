#pragma once
#include <fmt/format.h>

#include <utility>

#include "moeflux/error.h"

namespace moeflux {

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace moeflux
