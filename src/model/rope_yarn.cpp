#include "model/rope_yarn.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/config.h"

namespace moeflux {

double yarn_mscale(double factor, double m) { return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; }

double config_in_range(const Config& cfg, const char* key, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) fail("{}: '{}' = {} is not in [{}, {}]", cfg.source(), key, v, lo, hi);
  return v;
}

// In double, as Python computes it.
YarnConfig read_rope_yarn(const Config& cfg, double dim, double base, double max_positions) {
  const auto& y = cfg.raw()["rope_yarn"];
  auto num = [&](const char* k, double fallback) {
    return y.contains(k) && !y[k].is_null() ? y[k].get<double>() : fallback;
  };
  auto in_range = [&](const char* key, double v, double lo, double hi) { return config_in_range(cfg, key, v, lo, hi); };
  if (!y.contains("factor")) fail("{}: rope_scaling of type yarn lacks 'factor'", cfg.source());
  const double factor = in_range("rope_scaling.factor", num("factor", 1), 1e-6, 1e6);
  const double orig = in_range("rope_scaling.original_max_position_embeddings",
                               num("original_max_position_embeddings", max_positions), 1, 1e9);
  // transformers reads `get(...) or default`: 0 falls back too.
  const double beta_fast =
      in_range("rope_scaling.beta_fast", num("beta_fast", 0) != 0 ? num("beta_fast", 0) : 32, 1e-6, 1e6);
  const double beta_slow =
      in_range("rope_scaling.beta_slow", num("beta_slow", 0) != 0 ? num("beta_slow", 0) : 1, 1e-6, 1e6);
  const double mscale = in_range("rope_scaling.mscale", num("mscale", 0), -1e6, 1e6);
  const double mscale_all_dim = in_range("rope_scaling.mscale_all_dim", num("mscale_all_dim", 0), -1e6, 1e6);
  double attention_factor = 0;
  if (y.contains("attention_factor") && !y["attention_factor"].is_null())
    attention_factor = y["attention_factor"].get<double>();
  else if (mscale != 0 && mscale_all_dim != 0)
    attention_factor = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim);
  else
    attention_factor = yarn_mscale(factor, 1);
  in_range("rope_scaling attention factor", attention_factor, -1e6, 1e6);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(orig / (rotations * 2 * M_PI)) / (2 * std::log(base));
  };
  double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
  if (!y.contains("truncate") || y["truncate"].get<bool>()) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  YarnConfig out;
  out.rope = RopeYarn{float(factor), float(low), float(high), float(attention_factor)};
  out.factor = factor;
  out.mscale_all_dim = mscale_all_dim;
  return out;
}

}  // namespace moeflux
