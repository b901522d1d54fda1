// An architecture is a small description: which config keys it reads and
// what its tensors are called. The graph is composed from shared blocks
// (blocks.h) driven by the spec. One file per architecture:
// arch_<model_type>.cpp, reading like the model card.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "model/model_spec.h"

namespace moeflux {

class Config;

struct ExpertTensorNames {
  std::string gate, up, down;
};

struct ArchDef {
  std::string_view model_type;
  // Fills the architecture-specific fields after the common ones are read.
  void (*configure)(const Config& cfg, ModelSpec& spec);
  // Prefix of the MoE block inside a layer, e.g. "mlp." or "block_sparse_moe.".
  std::string_view moe_prefix;
  // Tensor names of routed expert `e` of layer `layer`.
  ExpertTensorNames (*expert_names)(int layer, int expert);
};

const ArchDef& arch_def(std::string_view model_type);  // throws naming the type and the supported ones
std::vector<std::string_view> supported_archs();

// Shared helpers for the architecture files.
std::string layer_prefix(int layer);  // "model.layers.<layer>."
// Layer l is MoE when (l + 1) % decoder_sparse_step == 0 and l is not in
// mlp_only_layers (the rule of the Qwen MoE configs).
void set_sparse_layers(const Config& cfg, ModelSpec& spec);

}  // namespace moeflux
