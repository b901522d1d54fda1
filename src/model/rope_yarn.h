// YaRN RoPE parameters from a config's "rope_yarn" (config_compat.cpp keeps
// the rope_scaling dict of type yarn there), as transformers'
// _compute_yarn_parameters computes them. Shared by the architectures
// whose ArchDef sets rope_yarn (deepseek_v3, gpt_oss).
#pragma once
#include "graph/ir.h"

namespace moeflux {

class Config;

struct YarnConfig {
  RopeYarn rope;               // the frequency blend and cos/sin factor
  double factor = 1;           // rope_scaling.factor
  double mscale_all_dim = 0;   // rope_scaling.mscale_all_dim (0: absent)
};

// `dim`: the rotated dims per head; `base`: rope_theta; `max_positions`:
// the fallback of original_max_position_embeddings. Throws naming the
// key when a value is missing or out of range.
YarnConfig read_rope_yarn(const Config& cfg, double dim, double base, double max_positions);

// yarn_get_mscale: 0.1 * m * ln(factor) + 1 (1 for factor <= 1).
double yarn_mscale(double factor, double m);

// A value the engine keeps as an f32, checked to lie in [lo, hi] first (an
// out-of-range double cast to float is undefined; config_spec_fuzz).
double config_in_range(const Config& cfg, const char* key, double v, double lo, double hi);

}  // namespace moeflux
