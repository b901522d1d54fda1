// Helpers shared by the config tests of the model area.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"
#include "model/model_spec.h"
#include "moeflux/error.h"

namespace moeflux::test {

// The message model_spec_from_config gives for `j`, or "" when it loads.
inline std::string spec_error(const nlohmann::json& j) {
  try {
    model_spec_from_config(Config(j, "config.json"));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace moeflux::test
