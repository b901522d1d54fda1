#include "model/rope_yarn.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/config.h"

namespace moeflux {

double yarn_mscale(double factor, double m) { return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; }

double value_in_range(const std::string& src, const char* key, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) fail("{}: '{}' = {} is not in [{}, {}]", src, key, v, lo, hi);
  return v;
}

double config_in_range(const Config& cfg, const char* key, double v, double lo, double hi) {
  return value_in_range(cfg.source(), key, v, lo, hi);
}

YarnConfig read_yarn_config(const Config& cfg, double max_positions) {
  const auto& y = cfg.raw()["rope_yarn"];
  auto num = [&](const char* k, double fallback) {
    return y.contains(k) && !y[k].is_null() ? y[k].get<double>() : fallback;
  };
  if (!y.contains("factor")) fail("{}: rope_scaling of type yarn lacks 'factor'", cfg.source());
  YarnConfig c;
  c.factor = config_in_range(cfg, "rope_scaling.factor", num("factor", 1), 1e-6, 1e6);
  c.original_ctx = config_in_range(cfg, "rope_scaling.original_max_position_embeddings",
                                   num("original_max_position_embeddings", max_positions), 1, 1e9);
  // transformers reads `get(...) or default`: 0 falls back too.
  c.beta_fast = num("beta_fast", 0) != 0 ? num("beta_fast", 0) : 32;
  c.beta_slow = num("beta_slow", 0) != 0 ? num("beta_slow", 0) : 1;
  c.mscale = num("mscale", 0);
  c.mscale_all_dim = num("mscale_all_dim", 0);
  if (y.contains("attention_factor") && !y["attention_factor"].is_null())
    c.attention_factor = y["attention_factor"].get<double>();
  c.truncate = !y.contains("truncate") || y["truncate"].get<bool>();
  return c;
}

RopeYarn yarn_rope(const YarnConfig& c, double dim, double base, const std::string& src) {
  const double factor = value_in_range(src, "rope_scaling.factor", c.factor, 1e-6, 1e6);
  const double orig = value_in_range(src, "rope_scaling.original_max_position_embeddings", c.original_ctx, 1, 1e9);
  const double beta_fast = value_in_range(src, "rope_scaling.beta_fast", c.beta_fast, 1e-6, 1e6);
  const double beta_slow = value_in_range(src, "rope_scaling.beta_slow", c.beta_slow, 1e-6, 1e6);
  const double mscale = value_in_range(src, "rope_scaling.mscale", c.mscale, -1e6, 1e6);
  const double mscale_all_dim = value_in_range(src, "rope_scaling.mscale_all_dim", c.mscale_all_dim, -1e6, 1e6);
  double attention_factor = 0;
  if (c.attention_factor)
    attention_factor = *c.attention_factor;
  else if (mscale != 0 && mscale_all_dim != 0)
    attention_factor = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim);
  else
    attention_factor = yarn_mscale(factor, 1);
  value_in_range(src, "rope_scaling attention factor", attention_factor, -1e6, 1e6);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(orig / (rotations * 2 * M_PI)) / (2 * std::log(base));
  };
  double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
  if (c.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  return RopeYarn{float(factor), float(low), float(high), float(attention_factor)};
}

}  // namespace moeflux
