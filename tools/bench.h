// The benchmark behind `moeflux bench`, also run by `moeflux demo`.
#pragma once
#include <nlohmann/json.hpp>

#include "cli_util.h"

namespace moeflux::cli {

struct BenchArgs {
  ModelArgs model;
  int prompt_tokens = 256;
  int decode_tokens = 32;
  uint64_t seed = 1;
  bool json = false;
};

nlohmann::ordered_json run_bench(const BenchArgs& a);
void print_bench(const nlohmann::ordered_json& j);

}  // namespace moeflux::cli
