// Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): biased q/k/v projections, no q/k
// norm, a shared expert added to the routed ones through a sigmoid gate,
// top-k probabilities not renormalised unless norm_topk_prob.
#include "model/arch.h"
#include "core/error.h"
#include "model/config.h"

namespace moeflux {

namespace {

// Fields of transformers' Qwen2MoeConfig (4.x and 5.x) beyond the generic
// ones. 5.x adds qkv_bias (the q/k/v biases, true before) and layer_types.
constexpr std::string_view kKeys[] = {
    "decoder_sparse_step", "hidden_act", "hidden_size", "intermediate_size", "layer_types", "max_position_embeddings",
    "max_window_layers", "mlp_only_layers", "moe_intermediate_size", "norm_topk_prob", "num_attention_heads",
    "num_experts", "num_experts_per_tok", "num_hidden_layers", "num_key_value_heads", "qkv_bias", "rms_norm_eps",
    "shared_expert_intermediate_size", "sliding_window", "use_sliding_window", "vocab_size", "head_dim"};

void configure(const Config& cfg, ModelSpec& s) {
  s.head_dim = s.hidden / s.heads;
  check_head_dim(cfg, s);
  // Always true before transformers 5, which made it a key.
  s.qkv_bias = cfg.get_bool("qkv_bias", true);
  s.experts = cfg.get_dim("num_experts");
  s.top_k = cfg.get_dim("num_experts_per_tok");
  s.expert_ffn = cfg.get_dim("moe_intermediate_size");
  s.dense_ffn = cfg.get_dim("intermediate_size");
  // 0: no shared expert; read as a checked size (an int cast of 2^32 + 48 gave 48).
  s.shared_ffn = cfg.get_int("shared_expert_intermediate_size", 0) == 0 ? 0 : cfg.get_dim("shared_expert_intermediate_size");
  s.shared_expert_gate = s.shared_ffn > 0;
  s.norm_topk = cfg.get_bool("norm_topk_prob", false);
  // transformers applies the window per layer (layer_types in 5.x, derived
  // from max_window_layers differently across versions when absent); only
  // a window on every layer or on none is implemented.
  bool window = cfg.get_bool("use_sliding_window", false);
  if (cfg.has("layer_types")) {
    const int sliding = count_sliding_layers(cfg, s.layers);
    if (sliding != 0 && (sliding != s.layers || !window))
      fail("{}: 'layer_types' gives a sliding window to {} of {} layers (use_sliding_window {}); moeflux implements "
           "a window on all layers or none",
           cfg.source(), sliding, s.layers, window);
    window = sliding == s.layers;
  } else if (window) {
    fail("{}: 'use_sliding_window' = true without 'layer_types': which layers transformers windows depends on its "
         "version (max_window_layers); give 'layer_types'",
         cfg.source());
  }
  if (window) s.sliding_window = int(cfg.get_dim("sliding_window"));
  set_sparse_layers(cfg, s);
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

}  // namespace

extern const ArchDef kArchQwen2Moe{"qwen2_moe", configure, "mlp.", experts, 10000.0, kKeys, {},
                                   GgufDialect{.name = "qwen2moe", .expert_ffn_key = true, .needs_shared_expert = true}};

}  // namespace moeflux
