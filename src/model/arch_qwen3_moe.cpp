// Qwen3-MoE: GQA with per-head q/k RMSNorm, no biases, softmax router with
// optional top-k renormalisation, dense MLP layers where mlp_only_layers /
// decoder_sparse_step say so.
#include "model/arch.h"
#include "model/config.h"

namespace moeflux {

namespace {

// Fields of transformers' Qwen3MoeConfig (4.x and 5.x) beyond the generic
// ones; 5.x writes num_experts as num_local_experts (its attribute_map).
constexpr std::string_view kKeys[] = {
    "attention_bias", "decoder_sparse_step", "head_dim", "hidden_act", "hidden_size", "intermediate_size",
    "max_position_embeddings", "max_window_layers", "mlp_only_layers", "moe_intermediate_size", "norm_topk_prob",
    "num_attention_heads", "num_experts", "num_experts_per_tok", "num_hidden_layers", "num_key_value_heads",
    "rms_norm_eps", "sliding_window", "use_sliding_window", "vocab_size"};
constexpr KeyAlias kAliases[] = {{"num_experts", "num_local_experts"}};

void configure(const Config& cfg, ModelSpec& s) {
  s.head_dim = cfg.get_dim("head_dim", s.hidden / s.heads);
  s.qk_norm = QkNorm::PerHead;
  s.qkv_bias = s.o_bias = cfg.get_bool("attention_bias", false);
  s.experts = cfg.get_dim("num_experts");
  s.top_k = cfg.get_dim("num_experts_per_tok");
  s.expert_ffn = cfg.get_dim("moe_intermediate_size");
  s.dense_ffn = cfg.get_dim("intermediate_size");
  s.norm_topk = cfg.get_bool("norm_topk_prob", true);
  if (cfg.get_bool("use_sliding_window", false)) s.sliding_window = int(cfg.get_dim("sliding_window"));
  set_sparse_layers(cfg, s);
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

}  // namespace

extern const ArchDef kArchQwen3Moe{"qwen3_moe", configure, "mlp.", experts, 10000.0, kKeys, kAliases,
                                   GgufDialect{.name = "qwen3moe", .llama_norm_topk = true, .expert_ffn_key = true}};

}  // namespace moeflux
