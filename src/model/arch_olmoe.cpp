// OLMoE: q/k RMSNorm over the whole projection (all heads at once, before
// the head split), optional clamping of q/k/v to [-clip_qkv, clip_qkv],
// every layer MoE, top-k probabilities not renormalised by default.
#include "model/arch.h"
#include "model/config.h"

namespace moeflux {

namespace {

// Fields of transformers' OlmoeConfig (4.x and 5.x) beyond the generic
// ones; num_local_experts is an alias of num_experts (attribute_map).
constexpr std::string_view kKeys[] = {
    "attention_bias", "clip_qkv", "hidden_act", "hidden_size", "intermediate_size", "max_position_embeddings",
    "norm_topk_prob", "num_attention_heads", "num_experts", "num_experts_per_tok", "num_hidden_layers",
    "num_key_value_heads", "rms_norm_eps", "vocab_size", "head_dim"};
constexpr KeyAlias kAliases[] = {{"num_experts", "num_local_experts"}};

void configure(const Config& cfg, ModelSpec& s) {
  s.head_dim = s.hidden / s.heads;
  check_head_dim(cfg, s);
  s.qk_norm = QkNorm::Full;
  s.qkv_bias = s.o_bias = cfg.get_bool("attention_bias", false);
  if (auto c = cfg.get_optional_float("clip_qkv")) s.clip_qkv = float(*c);
  s.experts = cfg.get_dim("num_experts");
  s.top_k = cfg.get_dim("num_experts_per_tok");
  s.expert_ffn = cfg.get_dim("intermediate_size");
  s.norm_topk = cfg.get_bool("norm_topk_prob", false);
  s.layer_is_moe.assign(size_t(s.layers), 1);
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

}  // namespace

extern const ArchDef kArchOlmoe{"olmoe", configure, "mlp.", experts, 10000.0, kKeys, kAliases,
                                 GgufDialect{.name = "olmoe", .qk_norm_whole = true}};

}  // namespace moeflux
