// An architecture is a small description: which config keys it reads and
// what its tensors are called. The graph is composed from shared blocks
// (blocks.h) driven by the spec. One file per architecture:
// arch_<model_type>.cpp, reading like the model card.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/model_spec.h"

namespace moeflux {

class Config;

struct ExpertTensorNames {
  std::string gate, up, down;
};

// Another name transformers accepts for a config key (its config class's
// attribute_map): config.json may hold either, depending on the version
// that wrote it.
struct KeyAlias {
  std::string_view key, alias;
};

struct ArchDef {
  std::string_view model_type;
  // Fills the architecture-specific fields after the common ones are read.
  void (*configure)(const Config& cfg, ModelSpec& spec);
  // Prefix of the MoE block inside a layer, e.g. "mlp." or "block_sparse_moe.".
  std::string_view moe_prefix;
  // Tensor names of routed expert `e` of layer `layer`.
  ExpertTensorNames (*expert_names)(int layer, int expert);
  // rope_theta when config.json gives none: the config class's default
  // (transformers' MixtralConfig uses 1e6, the others 1e4).
  double default_rope_theta = 10000.0;
  // Keys this architecture's transformers config class (4.x and 5.x)
  // defines beyond the generic PretrainedConfig ones and the keys the arch
  // file reads; config_compat.cpp tells these from keys transformers itself
  // would ignore.
  std::span<const std::string_view> class_keys = {};
  std::span<const KeyAlias> aliases = {};
};

const ArchDef& arch_def(std::string_view model_type);  // throws naming the type and the supported ones
std::vector<std::string_view> supported_archs();

// Shared helpers for the architecture files.
std::string layer_prefix(int layer);  // "model.layers.<layer>."
// Layer l is MoE when (l + 1) % decoder_sparse_step == 0 and l is not in
// mlp_only_layers (the rule of the Qwen MoE configs).
void set_sparse_layers(const Config& cfg, ModelSpec& spec);
// For archs whose head dimension is hidden / heads: a 'head_dim' key that
// says otherwise (transformers would use it) is refused.
void check_head_dim(const Config& cfg, const ModelSpec& spec);
// Validates 'layer_types' (one "full_attention" or "sliding_attention" per
// layer) and returns how many layers are sliding.
int count_sliding_layers(const Config& cfg, int layers);

}  // namespace moeflux
