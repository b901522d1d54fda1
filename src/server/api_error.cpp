#include "server/api_error.h"

namespace moeflux::server {

ApiError from_error(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::BadInput:
      return ApiError(400, e.what());
    case ErrorKind::Capacity: {
      ApiError a(503, e.what(), "", "server_overloaded", "capacity");
      a.retry_after_s = 1;
      return a;
    }
    case ErrorKind::Io:
      return ApiError(500, e.what(), "", "server_error", "io_error");
    case ErrorKind::Internal:
      break;
  }
  return ApiError(500, e.what(), "", "server_error", "internal_error");
}

nlohmann::json error_body(const ApiError& e) {
  nlohmann::json err = {{"message", e.what()}, {"type", e.type}};
  err["param"] = e.param.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.param);
  err["code"] = e.code.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.code);
  return {{"error", err}};
}

}  // namespace moeflux::server
