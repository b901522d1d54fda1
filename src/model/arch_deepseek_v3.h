// What DeepSeek-V3's GGUF reader shares with its config reader
// (arch_deepseek_v3.cpp).
#pragma once
#include <string>

#include "model/arch.h"

namespace moeflux {

// Sets spec.mla.yarn, .yarn_config and .scale (with YaRN's mscale_all_dim
// correction) from YaRN's parameters, as transformers computes them;
// needs mla.qk_rope_dim, qk_nope_dim and rope_theta set. Throws naming
// `src` and the parameter when one is out of range.
void apply_yarn(const YarnConfig& c, ModelSpec& spec, const std::string& src);

}  // namespace moeflux
