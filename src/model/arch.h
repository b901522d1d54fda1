// An architecture is a small description: which config keys it reads,
// what its tensors are called and how its layers are composed from the
// shared blocks (blocks.h). One file per architecture,
// arch_<model_type>.cpp, reading like the model card; the binder, the
// parameter counts, inspect, GGUF names and the converter derive from its
// table (tensor_list.h). A new architecture adds its file, registers it in
// arch_registry.cpp, and adds new blocks (with their tensor slots and IR
// ops) where the shared ones do not fit.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "graph/ir.h"
#include "model/model_spec.h"

namespace moeflux {

class Config;
class GraphBuilder;
class TensorList;
class TensorTable;
struct ModelTensor;
struct ModelWeights;
struct GgufLayout;

// What the graph of a step is built with (EngineOptions that change it).
struct BuildOptions {
  bool f32_activations = false;  // every matrix product keeps its activations in f32
  MlaPath mla_path = MlaPath::Auto;  // how latent attention reads its cache (tests force one)
};

struct ExpertTensorNames {
  std::string gate, up, down;
};

// Another name transformers accepts for a config key (its config class's
// attribute_map): config.json may hold either, depending on the version
// that wrote it.
struct KeyAlias {
  std::string_view key, alias;
};

// How llama.cpp writes this architecture in GGUF: the converter, the
// GGUF reader and the llama.cpp compatibility warnings read these instead
// of testing architecture names.
struct GgufDialect {
  std::string_view name;  // general.architecture: "qwen3moe", "llama", ...
  // What llama.cpp's graph hard-codes for top-k renormalisation
  // (build_moe_ffn's norm_w in src/models/<arch>.cpp).
  bool llama_norm_topk = false;
  // Experts sized by expert_feed_forward_length, feed_forward_length being
  // the dense MLP's (the Qwen MoE loaders); else by feed_forward_length.
  bool expert_ffn_key = false;
  // vocab_size and rope.dimension_count written (convert_hf_to_gguf's llama).
  bool vocab_and_rope_dims = false;
  // q/k rows permuted by the converter, RoPE on (2i, 2i+1) pairs (llama).
  bool interleaved_rope = false;
  // A q_norm as wide as one head with one head is the whole projection's
  // norm (OLMoE), not a per-head one.
  bool qk_norm_whole = false;
  bool needs_shared_expert = false;  // llama.cpp's loader requires one (qwen2moe)
  bool loads_o_bias = false;         // llama.cpp's loader reads attn_output.bias (llama)
  // Architectures whose GGUF is not the shared pre-norm layer's
  // (llama.cpp's qwen3next, qwen35moe, deepseek2): their own metadata,
  // spec reader, tensor names and converter transforms (model/gguf_layout.h).
  // Null: the shared ones of gguf_arch.cpp.
  const GgufLayout* layout = nullptr;
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
  GgufDialect gguf = {};
  // How a layer is composed. Null: the shared pre-norm decoder layer
  // (attention with one KV state, then the MoE block or a dense MLP),
  // which is what every architecture so far uses. An architecture with
  // other layers sets all three, consistently: the tensors it adds are the
  // ones its graph reads (by slot), and the state is the one its ops use.
  void (*layer_tensors)(TensorList& list, int layer) = nullptr;
  BufId<Role::Hidden> (*build_layer)(GraphBuilder& g, const ModelSpec& s, const ModelWeights& w,
                                     BufId<Role::Hidden> x, int layer, const BuildOptions& o) = nullptr;
  StateDesc (*layer_state)(const ModelSpec& s, int layer) = nullptr;
  // rope_scaling type "yarn" is implemented (DeepSeek-V3): config_compat
  // keeps its parameters, checked, under the key "rope_yarn" for configure.
  bool rope_yarn = false;
  // Reads 'partial_rotary_factor' (RoPE over part of each head; the RoPE
  // dict's copy folded in by config_compat); others refuse a value below 1.
  bool partial_rotary = false;
  // Keys of the RoPE dict that transformers' class ignores (its
  // ignore_keys_at_rope_validation): Qwen3.5's multimodal RoPE sections,
  // which give plain RoPE when every position id is a text position.
  std::span<const std::string_view> rope_ignored_keys = {};
  // A multimodal checkpoint: config.json keeps the text model's keys under
  // 'text_config' and its tensors under this prefix instead of "model."
  // (e.g. "model.language_model."); tensors under skipped_prefixes (the
  // vision tower) are known and not loaded.
  std::string_view text_model_prefix = {};
  std::span<const std::string_view> skipped_prefixes = {};
  // gpt-oss: the safetensors checkpoint as the tensor table lists it (its
  // fused, possibly MXFP4, experts presented per expert: gpt_oss_experts.h).
  // Null: the files' tensors as they are.
  std::unique_ptr<TensorTable> (*checkpoint_view)(const ModelSpec& s, std::unique_ptr<TensorTable> files) = nullptr;
  // The tensors as a Hugging Face checkpoint of this architecture stores
  // them, where that differs from model_tensors() (gpt-oss: fused experts),
  // for what writes one (synth). Null: model_tensors() as they are.
  std::vector<ModelTensor> (*stored_tensors)(const ModelSpec& s) = nullptr;
};

const ArchDef& arch_def(std::string_view model_type);  // throws naming the type and the supported ones
std::vector<std::string_view> supported_archs();
// The architecture whose GGUF name is `gguf_name` (null: none).
const ArchDef* arch_by_gguf_name(std::string_view gguf_name);

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
