// The one exception type moeflux throws: the message says what failed and
// where (file, tensor, offset, key, value seen, value allowed).
#pragma once
#include <stdexcept>
#include <string>

namespace moeflux {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace moeflux
