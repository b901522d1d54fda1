// Sampling and stop options shared by `run` and `chat`.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "sampling/sampler.h"
#include "sampling/stop.h"

namespace moeflux::cli {

struct SamplingArgs {
  SamplingParams params;
  int max_tokens = 256;
  std::vector<std::string> stop;
  std::vector<std::string> logit_bias;  // "ID=BIAS"
  bool greedy = false;
  bool ignore_eos = false;
  void add_to(CLI::App* cmd);
  // Resolves the options against the model's vocabulary; throws naming a bad value.
  SamplingParams resolve(int32_t vocab) const;
  StopConditions stop_conditions(const std::vector<int32_t>& stop_tokens) const;
};

}  // namespace moeflux::cli
