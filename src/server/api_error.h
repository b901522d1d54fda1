// Errors the HTTP API answers with, in OpenAI's shape:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// with the status that says whose move it is.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "moeflux/error.h"

namespace moeflux::server {

struct ApiError : std::runtime_error {
  int status;
  std::string type, param, code;  // param: the request field at fault ("" for none)
  int retry_after_s = 0;          // > 0: sent as Retry-After
  ApiError(int status, std::string message, std::string param = "", std::string type = "invalid_request_error",
           std::string code = "")
      : std::runtime_error(std::move(message)), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
};

// An engine or library error as the API reports it: bad input 400,
// capacity 503 (retry later), I/O and internal errors 500.
ApiError from_error(const Error& e);

nlohmann::json error_body(const ApiError& e);

}  // namespace moeflux::server
