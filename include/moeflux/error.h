// The one exception type moeflux throws: the message says what failed and
// where (file, tensor, offset, key, value seen, value allowed); the kind
// says whose move it is, for callers that map errors to responses (an HTTP
// server: 400 for bad input, 413/503 for capacity, 500 for I/O and
// internal errors).
#pragma once
#include <stdexcept>
#include <string>

namespace moeflux {

enum class ErrorKind {
  BadInput,  // the request, an option or a model file is wrong; fix it and retry
  Io,        // storage failed or a file changed under the engine; the request was fine
  Capacity,  // a budget, context or queue is too small for the request
  Internal,  // a bug in moeflux: an invariant did not hold
};

const char* error_kind_name(ErrorKind kind);  // "bad input", "I/O", "capacity", "internal"

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ErrorKind kind = ErrorKind::BadInput)
      : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace moeflux
