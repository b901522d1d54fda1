// Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): biased q/k/v projections, no q/k
// norm, a shared expert added to the routed ones through a sigmoid gate,
// top-k probabilities not renormalised unless norm_topk_prob.
#include "model/arch.h"
#include "model/config.h"

namespace moeflux {

namespace {

void configure(const Config& cfg, ModelSpec& s) {
  s.head_dim = s.hidden / s.heads;
  s.qkv_bias = true;  // fixed in the architecture, not a config key
  s.experts = cfg.get_dim("num_experts");
  s.top_k = cfg.get_dim("num_experts_per_tok");
  s.expert_ffn = cfg.get_dim("moe_intermediate_size");
  s.dense_ffn = cfg.get_dim("intermediate_size");
  s.shared_ffn = int(cfg.get_int("shared_expert_intermediate_size", 0));
  s.shared_expert_gate = s.shared_ffn > 0;
  s.norm_topk = cfg.get_bool("norm_topk_prob", false);
  if (cfg.get_bool("use_sliding_window", false)) s.sliding_window = int(cfg.get_dim("sliding_window"));
  set_sparse_layers(cfg, s);
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

}  // namespace

extern const ArchDef kArchQwen2Moe{"qwen2_moe", configure, "mlp.", experts};

}  // namespace moeflux
