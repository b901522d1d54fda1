#include <fmt/format.h>

#include <vector>

#include "core/error.h"
#include "model/arch.h"
#include "model/config.h"

namespace moeflux {

extern const ArchDef kArchQwen3Moe;
extern const ArchDef kArchQwen2Moe;
extern const ArchDef kArchMixtral;
extern const ArchDef kArchOlmoe;
extern const ArchDef kArchDeepseekV3;
extern const ArchDef kArchQwen3Next;
extern const ArchDef kArchQwen3_5Moe;
extern const ArchDef kArchQwen3_5MoeText;
extern const ArchDef kArchGptOss;

namespace {
const ArchDef* const kArchs[] = {&kArchQwen3Moe,    &kArchQwen2Moe,   &kArchMixtral,         &kArchOlmoe,
                                 &kArchDeepseekV3, &kArchQwen3Next, &kArchQwen3_5Moe, &kArchQwen3_5MoeText,
                                 &kArchGptOss};
}

std::vector<std::string_view> supported_archs() {
  std::vector<std::string_view> out;
  for (auto* a : kArchs) out.push_back(a->model_type);
  return out;
}

const ArchDef* arch_by_gguf_name(std::string_view gguf_name) {
  // A multimodal checkpoint's arch shares its GGUF name with its text
  // model's (qwen35moe): GGUF holds the text model, so that one.
  for (const ArchDef* a : kArchs)
    if (!a->gguf.name.empty() && a->gguf.name == gguf_name && a->text_model_prefix.empty()) return a;
  return nullptr;
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
  // One pass over the list into a per-layer mask (a list of 100k entries
  // made the per-layer scan of the list quadratic).
  std::vector<uint8_t> listed(size_t(spec.layers), 0);
  for (int64_t l : dense_only) {
    if (l < 0 || l >= spec.layers)
      fail("{}: 'mlp_only_layers' names layer {} but the model has {} layers (0..{})", cfg.source(), l, spec.layers,
           spec.layers - 1);
    listed[size_t(l)] = 1;
  }
  spec.layer_is_moe.assign(size_t(spec.layers), 0);
  for (int l = 0; l < spec.layers; ++l)
    spec.layer_is_moe[size_t(l)] = !listed[size_t(l)] && spec.experts > 0 && (l + 1) % step == 0;
}

void check_head_dim(const Config& cfg, const ModelSpec& s) {
  if (auto hd = cfg.get_optional_int("head_dim"); hd && *hd != s.head_dim)
    fail("{}: 'head_dim' = {} differs from hidden_size / num_attention_heads = {}; {} does not implement that",
         cfg.source(), *hd, s.head_dim, s.arch);
}

int count_sliding_layers(const Config& cfg, int layers) {
  const auto& v = cfg.raw()["layer_types"];
  if (!v.is_array() || v.size() != size_t(layers))
    fail("{}: 'layer_types' must be a list of {} entries (one per layer), got {}", cfg.source(), layers,
         v.is_array() ? fmt::format("{} entries", v.size()) : v.dump());
  int sliding = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string t = v[i].is_string() ? v[i].get<std::string>() : v[i].dump();
    if (t == "sliding_attention") ++sliding;
    else if (t != "full_attention")
      fail("{}: 'layer_types'[{}] = '{}' is not implemented (supported: full_attention, sliding_attention)",
           cfg.source(), i, t);
  }
  return sliding;
}

}  // namespace moeflux
