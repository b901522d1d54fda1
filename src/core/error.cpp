#include "core/error.h"

namespace moeflux {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::BadInput: return "bad input";
    case ErrorKind::Io: return "I/O";
    case ErrorKind::Capacity: return "capacity";
    case ErrorKind::Internal: return "internal";
  }
  return "unknown";
}

}  // namespace moeflux
