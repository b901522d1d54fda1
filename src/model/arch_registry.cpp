#include <fmt/format.h>

#include "core/error.h"
#include "model/arch.h"
#include "model/config.h"

namespace moeflux {

extern const ArchDef kArchQwen3Moe;
extern const ArchDef kArchQwen2Moe;
extern const ArchDef kArchMixtral;
extern const ArchDef kArchOlmoe;

namespace {
const ArchDef* const kArchs[] = {&kArchQwen3Moe, &kArchQwen2Moe, &kArchMixtral, &kArchOlmoe};
}

std::vector<std::string_view> supported_archs() {
  std::vector<std::string_view> out;
  for (auto* a : kArchs) out.push_back(a->model_type);
  return out;
}

const ArchDef& arch_def(std::string_view model_type) {
  for (auto* a : kArchs)
    if (a->model_type == model_type) return *a;
  fail("unsupported architecture (model_type) '{}'; supported: {}", model_type, fmt::join(supported_archs(), ", "));
}

std::string layer_prefix(int layer) { return fmt::format("model.layers.{}.", layer); }

void set_sparse_layers(const Config& cfg, ModelSpec& spec) {
  const int64_t step = cfg.get_int("decoder_sparse_step", 1);
  if (step < 1) fail("{}: 'decoder_sparse_step' = {} must be at least 1", cfg.source(), step);
  const auto dense_only = cfg.get_int_list("mlp_only_layers");
  for (int64_t l : dense_only)
    if (l < 0 || l >= spec.layers)
      fail("{}: 'mlp_only_layers' names layer {} but the model has {} layers", cfg.source(), l, spec.layers);
  spec.layer_is_moe.assign(size_t(spec.layers), 0);
  for (int l = 0; l < spec.layers; ++l) {
    bool listed = false;
    for (int64_t d : dense_only) listed |= (d == l);
    spec.layer_is_moe[size_t(l)] = !listed && spec.experts > 0 && (l + 1) % step == 0;
  }
}

}  // namespace moeflux
