// YaRN RoPE from a config's "rope_yarn" (config_compat.cpp keeps the
// rope_scaling dict of type yarn there) or from GGUF metadata, as
// transformers' _compute_yarn_parameters computes it. Shared by the
// architectures that use YaRN (deepseek_v3 and its GGUF form deepseek2,
// gpt_oss).
#pragma once
#include <string>

#include "graph/ir.h"
#include "model/model_spec.h"

namespace moeflux {

class Config;

// rope_scaling's yarn parameters (YarnConfig, model_spec.h), with
// transformers' fallbacks; `max_positions` is original_max_position_
// embeddings' fallback. Throws naming the key when 'factor' is missing.
YarnConfig read_yarn_config(const Config& cfg, double max_positions);

// The frequency blend and the cos/sin factor for `dim` rotated dims per
// head and RoPE base `base`, in double as Python computes them. Throws
// naming `src` and the parameter when one is out of range.
RopeYarn yarn_rope(const YarnConfig& c, double dim, double base, const std::string& src);

// yarn_get_mscale: 0.1 * m * ln(factor) + 1 (1 for factor <= 1).
double yarn_mscale(double factor, double m);

// A value the engine keeps as an f32, checked to lie in [lo, hi] first (an
// out-of-range double cast to float is undefined; config_spec_fuzz).
double value_in_range(const std::string& src, const char* key, double v, double lo, double hi);
double config_in_range(const Config& cfg, const char* key, double v, double lo, double hi);

}  // namespace moeflux
