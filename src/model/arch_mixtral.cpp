// Mixtral: plain GQA (no biases, no q/k norm), every layer MoE, experts named
// w1 (gate), w3 (up), w2 (down); top-k probabilities always renormalised
// (softmax over all experts, then top-k, then divide by their sum).
#include "model/arch.h"
#include "model/config.h"

namespace moeflux {

namespace {

// Fields of transformers' MixtralConfig (4.x and 5.x) beyond the generic
// ones; num_experts is an alias of num_local_experts (attribute_map).
constexpr std::string_view kKeys[] = {
    "head_dim", "hidden_act", "hidden_size", "intermediate_size", "max_position_embeddings", "num_attention_heads",
    "num_experts_per_tok", "num_hidden_layers", "num_key_value_heads", "num_local_experts", "rms_norm_eps",
    "router_jitter_noise", "sliding_window", "vocab_size"};
constexpr KeyAlias kAliases[] = {{"num_local_experts", "num_experts"}};

void configure(const Config& cfg, ModelSpec& s) {
  s.head_dim = cfg.get_dim("head_dim", s.hidden / s.heads);
  s.experts = cfg.get_dim("num_local_experts");
  s.top_k = cfg.get_dim("num_experts_per_tok");
  s.expert_ffn = cfg.get_dim("intermediate_size");
  s.norm_topk = true;
  if (cfg.has("sliding_window")) s.sliding_window = cfg.get_dim("sliding_window");
  s.layer_is_moe.assign(size_t(s.layers), 1);
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "block_sparse_moe.experts." + std::to_string(e) + ".";
  return {p + "w1.weight", p + "w3.weight", p + "w2.weight"};
}

}  // namespace

extern const ArchDef kArchMixtral{"mixtral", configure, "block_sparse_moe.", experts, 1e6, kKeys, kAliases,
                                   GgufDialect{.name = "llama", .llama_norm_topk = true, .vocab_and_rope_dims = true,
                                               .interleaved_rope = true, .loads_o_bias = true}};

}  // namespace moeflux
