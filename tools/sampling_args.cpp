#include "cli_util.h"
#include "sampling_args.h"

#include <charconv>
#include <cmath>

#include "core/error.h"

namespace moeflux::cli {

void SamplingArgs::add_to(CLI::App* cmd) {
  cmd->add_option("-n,--max-tokens", max_tokens, "most tokens to generate")->check(int_range(1, INT32_MAX));
  cmd->add_option("--temp", params.temperature, "temperature (0: greedy)");
  cmd->add_option("--top-k", params.top_k, "keep the k most likely tokens (0: off)");
  cmd->add_option("--top-p", params.top_p, "nucleus sampling mass (1: off)");
  cmd->add_option("--min-p", params.min_p, "drop tokens below min-p x the top probability (0: off)");
  cmd->add_option("--repeat-penalty", params.repetition_penalty, "repetition penalty (1: off)");
  cmd->add_option("--presence-penalty", params.presence_penalty, "presence penalty");
  cmd->add_option("--frequency-penalty", params.frequency_penalty, "frequency penalty");
  cmd->add_option("--penalty-last-n", params.penalty_last_n, "tokens the penalties look back over (-1: all)");
  cmd->add_option("--seed", params.seed, "random seed: same seed, same text");
  cmd->add_option("--stop", stop, "stop string (repeatable)");
  cmd->add_option("--logit-bias", logit_bias, "ID=BIAS added to a token's logit (repeatable; -inf bans)");
  cmd->add_flag("--greedy", greedy, "always take the most likely token (same as --temp 0)");
  cmd->add_flag("--ignore-eos", ignore_eos, "do not stop at end-of-sequence tokens");
}

SamplingParams SamplingArgs::resolve(int32_t vocab) const {
  SamplingParams p = params;
  if (greedy) p.temperature = 0;
  for (const std::string& b : logit_bias) {
    const size_t eq = b.find('=');
    int32_t id = 0;
    // eq == 0 ("=5") must not parse as token 0: from_chars on an empty
    // range returns its end with an error code, which the end check alone missed.
    const auto parsed = eq == std::string::npos ? std::from_chars_result{} : std::from_chars(b.data(), b.data() + eq, id);
    if (eq == std::string::npos || eq == 0 || parsed.ec != std::errc() || parsed.ptr != b.data() + eq)
      fail("--logit-bias '{}': expected ID=BIAS with ID a token id, e.g. 42=-1.5", b);
    const std::string v = b.substr(eq + 1);
    float bias;
    if (v == "-inf") bias = -INFINITY;
    else {
      try {
        size_t used = 0;
        bias = std::stof(v, &used);
        if (used != v.size() || std::isnan(bias)) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        fail("--logit-bias '{}': '{}' is not a number", b, v);
      }
    }
    p.logit_bias.emplace_back(id, bias);
  }
  p.validate(vocab);
  return p;
}

StopConditions SamplingArgs::stop_conditions(const std::vector<int32_t>& stop_tokens) const {
  StopConditions c;
  c.stop_strings = stop;
  if (!ignore_eos) c.stop_tokens = stop_tokens;
  c.max_tokens = max_tokens;
  return c;
}

}  // namespace moeflux::cli
