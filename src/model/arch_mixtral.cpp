// Mixtral: plain GQA (no biases, no q/k norm), every layer MoE, experts named
// w1 (gate), w3 (up), w2 (down); top-k probabilities always renormalised
// (softmax over all experts, then top-k, then divide by their sum).
#include "model/arch.h"
#include "model/config.h"

namespace moeflux {

namespace {

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

extern const ArchDef kArchMixtral{"mixtral", configure, "block_sparse_moe.", experts};

}  // namespace moeflux
