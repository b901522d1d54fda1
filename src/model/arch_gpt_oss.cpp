// gpt-oss (openai/gpt-oss-20b, -120b), as transformers 4.57's
// modeling_gpt_oss.py defines it:
//  - GQA attention with biases on q/k/v/o and attention sinks: one learned
//    logit per head joins each softmax's denominator and is dropped;
//  - layers alternate sliding-window and full attention (layer_types;
//    transformers' default: even layers sliding);
//  - RoPE (rotate-half) with YaRN scaling, cos/sin times its attention
//    factor;
//  - every layer MoE: a router with bias, softmax over the top-k logits;
//    routed experts with biases and the clamped SwiGLU
//    ((up + 1) * gate * sigmoid(alpha * gate), gate <= limit,
//    |up| <= limit), no shared expert.
// The checkpoints store each layer's experts fused (gate and up
// interleaved, MXFP4 blocks + scales in the original files):
// gpt_oss_experts.h presents them per expert.
#include <cmath>

#include "core/error.h"
#include "graph/builder.h"
#include "model/arch.h"
#include "model/blocks.h"
#include "model/config.h"
#include "model/gpt_oss_experts.h"
#include "model/rope_yarn.h"
#include "model/tensor_list.h"

namespace moeflux {

namespace {

using S = TensorSlot;

// Fields of transformers' GptOssConfig (4.57 and 5.x) beyond the generic
// ones; 5.x's attribute_map also accepts num_experts for num_local_experts.
constexpr std::string_view kKeys[] = {
    "attention_bias", "head_dim", "hidden_act", "hidden_size", "intermediate_size", "layer_types",
    "max_position_embeddings", "num_attention_heads", "num_experts_per_tok", "num_hidden_layers",
    "num_key_value_heads", "num_local_experts", "rms_norm_eps", "sliding_window", "swiglu_alpha", "swiglu_limit",
    "vocab_size"};
constexpr KeyAlias kAliases[] = {{"num_local_experts", "num_experts"}};

void configure(const Config& cfg, ModelSpec& s) {
  GptOssSpec& g = s.gpt_oss;
  s.head_dim = cfg.get_dim("head_dim", s.hidden / s.heads);
  // transformers 4.57 sets attention_bias = True whatever config.json says
  // (5.x reads it): a false one would mean different models to the two.
  if (!cfg.get_bool("attention_bias", true))
    fail("{}: 'attention_bias' = false is not implemented for gpt_oss (transformers 4.57 ignores it, 5.x drops the "
         "projections' biases)",
         cfg.source());
  s.qkv_bias = s.o_bias = true;
  s.experts = cfg.get_dim("num_local_experts", 128);
  s.top_k = cfg.get_dim("num_experts_per_tok", 4);
  s.expert_ffn = cfg.get_dim("intermediate_size", 2880);
  s.dense_ffn = 0;
  s.shared_ffn = 0;
  s.norm_topk = false;  // the softmax over the top-k logits already sums to 1
  s.layer_is_moe.assign(size_t(s.layers), 1);
  // 4.57 hard-codes alpha 1.702 and limit 7.0; 5.x reads these keys.
  g.swiglu_alpha = float(config_in_range(cfg, "swiglu_alpha", cfg.get_float("swiglu_alpha", 1.702), -1e6, 1e6));
  g.swiglu_limit = float(config_in_range(cfg, "swiglu_limit", cfg.get_float("swiglu_limit", 7.0), 0, 1e30));
  // layer_types, or transformers' default: sliding, full, sliding, ...
  g.layer_sliding.assign(size_t(s.layers), 0);
  if (cfg.has("layer_types")) {
    count_sliding_layers(cfg, s.layers);  // validates the list
    for (int l = 0; l < s.layers; ++l)
      g.layer_sliding[size_t(l)] = cfg.raw()["layer_types"][size_t(l)].get<std::string>() == "sliding_attention";
  } else {
    for (int l = 0; l < s.layers; ++l) g.layer_sliding[size_t(l)] = (l + 1) % 2 != 0;
  }
  bool any_sliding = false;
  for (uint8_t v : g.layer_sliding) any_sliding |= v != 0;
  if (any_sliding) {
    if (!cfg.has("sliding_window"))
      fail("{}: 'layer_types' has sliding_attention layers but 'sliding_window' is null", cfg.source());
    g.window = cfg.get_dim("sliding_window");
  }
  if (cfg.has("rope_yarn")) g.yarn = yarn_rope(read_yarn_config(cfg, s.max_positions), s.head_dim, s.rope_theta, cfg.source());
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

void layer_tensors(TensorList& list, int l) {
  const ModelSpec& s = list.spec;
  const std::string p = layer_prefix(l), a = p + "self_attn.", f = p + "mlp.";
  const int64_t D = s.hidden, E = s.experts, F = s.expert_ffn;
  list.add(p + "input_layernorm.weight", {D}, ParamKind::Norm, l, S::AttnNorm);
  list.attention(a, l);
  list.add(a + "sinks", {s.heads}, ParamKind::Bias, l, S::AttnSinks);
  list.add(p + "post_attention_layernorm.weight", {D}, ParamKind::Norm, l, S::FfnNorm);
  list.add(f + "router.weight", {E, D}, ParamKind::Router, l, S::Router);
  list.add(f + "router.bias", {E}, ParamKind::Bias, l, S::RouterBias);
  for (int e = 0; e < (list.all_experts() ? s.experts : 1); ++e) {
    const ExpertTensorNames n = experts(l, e);
    list.add(n.gate, {F, D}, ParamKind::ExpertLinear, l, S::ExpertGate, e);
    list.add(n.up, {F, D}, ParamKind::ExpertLinear, l, S::ExpertUp, e);
    list.add(n.down, {D, F}, ParamKind::ExpertLinear, l, S::ExpertDown, e);
  }
  list.add(f + "experts.gate_up_proj_bias", {E, 2 * F}, ParamKind::Bias, l, S::ExpertGateUpBias);
  list.add(f + "experts.down_proj_bias", {E, D}, ParamKind::Bias, l, S::ExpertDownBias);
}

BufId<Role::Hidden> build_sink_attention(GraphBuilder& g, const ModelSpec& s, const LayerWeights& w,
                                         BufId<Role::Hidden> x, int layer) {
  auto q = g.linear<Role::Query>(x, w[S::Q], w[S::QBias], s.q_dim(), "q");
  auto k = g.linear<Role::Key>(x, w[S::K], w[S::KBias], s.kv_dim(), "k");
  auto v = g.linear<Role::Value>(x, w[S::V], w[S::VBias], s.kv_dim(), "v");
  RopeParams rope{s.head_dim, s.head_dim, s.rope_theta, s.rope_interleaved};
  rope.yarn = s.gpt_oss.yarn;
  q = g.rope(q, rope);
  k = g.rope(k, rope);
  AttentionParams ap;
  ap.heads = s.heads;
  ap.kv_heads = s.kv_heads;
  ap.head_dim = s.head_dim;
  ap.scale = 1.0f / std::sqrt(float(s.head_dim));
  if (s.gpt_oss.is_sliding(layer)) ap.window = s.gpt_oss.window;
  ap.sinks = w[S::AttnSinks];
  auto att = g.attention(q, k, v, uint32_t(layer), ap);
  return g.linear<Role::Hidden>(att, w[S::O], w[S::OBias], s.hidden, "attn_proj");
}

BufId<Role::Hidden> build_layer(GraphBuilder& g, const ModelSpec& s, const ModelWeights& model,
                                BufId<Role::Hidden> x, int layer, const BuildOptions& o) {
  const LayerWeights& w = model.layers[size_t(layer)];
  auto h = g.rms_norm(x, w[S::AttnNorm], s.hidden, s.rms_eps, "attn_norm");
  x = g.add(x, build_sink_attention(g, s, w, h, layer));
  h = g.rms_norm(x, w[S::FfnNorm], s.hidden, s.rms_eps, "ffn_norm");
  MoeParams p = moe_params(s, model, layer, o.f32_activations);
  p.router.scoring = RouterScoring::TopkSoftmax;
  p.router.renormalize = false;
  p.router_bias = w[S::RouterBias];
  if (p.next_layer >= 0) p.next_router_bias = model.layers[size_t(p.next_layer)][S::RouterBias];
  p.expert_gate_up_bias = w[S::ExpertGateUpBias];
  p.expert_down_bias = w[S::ExpertDownBias];
  p.clamped_swiglu = true;
  p.swiglu_alpha = s.gpt_oss.swiglu_alpha;
  p.swiglu_limit = s.gpt_oss.swiglu_limit;
  return g.add(x, g.moe(h, p));
}

StateDesc layer_state(const ModelSpec& s, int layer) {
  return {s.gpt_oss.is_sliding(layer) ? LayerKind::SlidingAttention : LayerKind::FullAttention, layer, s.kv_dim(),
          s.kv_dim()};
}

}  // namespace

extern const ArchDef kArchGptOss{.model_type = "gpt_oss",
                                 .configure = configure,
                                 .moe_prefix = "mlp.",
                                 .expert_names = experts,
                                 .default_rope_theta = 150000.0,
                                 .class_keys = kKeys,
                                 .aliases = kAliases,
                                 .gguf = {},
                                 .layer_tensors = layer_tensors,
                                 .build_layer = build_layer,
                                 .layer_state = layer_state,
                                 .rope_yarn = true,
                                 .checkpoint_view = gpt_oss_experts_view,
                                 .stored_tensors = gpt_oss_stored_tensors};

}  // namespace moeflux
