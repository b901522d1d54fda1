// Qwen3-Next (and the text model of Qwen3.5/3.6-MoE, arch_qwen3_5_moe.cpp):
// a hybrid of Gated DeltaNet layers (linear attention with a fixed-size
// recurrent state) and, every few layers, gated full attention (q_proj
// doubled into queries and a sigmoid output gate per head, partial RoPE,
// per-head q/k RMSNorm). Every RMSNorm but the DeltaNet output norm scales
// by 1 + w (zero-centred weights). MoE layers have a shared expert behind a
// sigmoid gate, as Qwen2-MoE.
#include "model/arch_qwen3_next.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "graph/builder.h"
#include "model/blocks.h"
#include "model/config.h"
#include "model/tensor_list.h"

namespace moeflux {

extern const GgufLayout kGgufHybridLayout;  // gguf_hybrid.cpp

using S = TensorSlot;

namespace {

// Fields of transformers' Qwen3NextConfig (4.57) beyond the generic ones.
constexpr std::string_view kKeys[] = {
    "attention_bias", "decoder_sparse_step", "full_attention_interval", "head_dim", "hidden_act", "hidden_size",
    "intermediate_size", "layer_types", "linear_conv_kernel_dim", "linear_key_head_dim", "linear_num_key_heads",
    "linear_num_value_heads", "linear_value_head_dim", "max_position_embeddings", "mlp_only_layers",
    "moe_intermediate_size", "norm_topk_prob", "num_attention_heads", "num_experts", "num_experts_per_tok",
    "num_hidden_layers", "num_key_value_heads", "output_router_logits", "rms_norm_eps", "router_aux_loss_coef",
    "shared_expert_intermediate_size", "vocab_size", "attn_output_gate"};

void configure(const Config& cfg, ModelSpec& s) {
  configure_qwen3_next_layers(cfg, s, /*fused_projections=*/true);
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

// The gated full-attention block: q_proj gives each head's queries and
// gate side by side ([q_h, gate_h] per head).
BufId<Role::Hidden> build_gated_attention(GraphBuilder& g, const ModelSpec& s, const LayerWeights& w,
                                          BufId<Role::Hidden> x, int layer) {
  const LinearAttnSpec& la = s.linear_attn;
  const float off = la.norm_weight_offset;
  auto q_gate = g.linear<Role::Mixer>(x, w[S::Q], w[S::QBias], 2 * s.q_dim(), "q_gate");
  auto q = g.buffer<Role::Query>(s.q_dim(), "q");
  auto gate = g.buffer<Role::AttnOut>(s.q_dim(), "attn_gate");
  g.split_groups(AnyBuf(q_gate), {AnyBuf(q), AnyBuf(gate)}, s.heads, {{s.head_dim, 0}, {s.head_dim, 1}});
  auto k = g.linear<Role::Key>(x, w[S::K], w[S::KBias], s.kv_dim(), "k");
  auto v = g.linear<Role::Value>(x, w[S::V], w[S::VBias], s.kv_dim(), "v");
  q = g.rms_norm(q, w[S::QNorm], s.head_dim, s.rms_eps, "q_norm", off);
  k = g.rms_norm(k, w[S::KNorm], s.head_dim, s.rms_eps, "k_norm", off);
  const RopeParams rope{s.head_dim, la.rotary_dims ? la.rotary_dims : s.head_dim, s.rope_theta, s.rope_interleaved};
  q = g.rope(q, rope);
  k = g.rope(k, rope);
  AttentionParams ap;
  ap.heads = s.heads;
  ap.kv_heads = s.kv_heads;
  ap.head_dim = s.head_dim;
  ap.scale = 1.0f / std::sqrt(float(s.head_dim));
  auto a = g.attention(q, k, v, uint32_t(layer), ap);
  a = g.sigmoid_mul(a, gate);
  return g.linear<Role::Hidden>(a, w[S::O], w[S::OBias], s.hidden, "attn_proj");
}

// The Gated DeltaNet block.
BufId<Role::Hidden> build_gated_deltanet(GraphBuilder& g, const ModelSpec& s, const LayerWeights& w,
                                         BufId<Role::Hidden> x, int layer) {
  const LinearAttnSpec& la = s.linear_attn;
  const int Hk = la.key_heads, Hv = la.value_heads, dk = la.key_dim, dv = la.value_dim, r = Hv / Hk;
  BufId<Role::Mixer> qkv, z, b, a;
  if (la.fused_projections) {
    // Qwen3-Next interleaves per key head: [q, k, v (r heads), z (r heads)]
    // and [b (r), a (r)].
    auto qkvz = g.linear<Role::Mixer>(x, w[S::DnQkvz], nullptr, 2 * la.key_width() + 2 * la.value_width(), "qkvz");
    auto ba = g.linear<Role::Mixer>(x, w[S::DnBa], nullptr, 2 * Hv, "ba");
    qkv = g.buffer<Role::Mixer>(la.conv_channels(), "qkv");
    z = g.buffer<Role::Mixer>(la.value_width(), "z");
    g.split_groups(AnyBuf(qkvz), {AnyBuf(qkv), AnyBuf(z)}, Hk, {{dk, 0}, {dk, 0}, {r * dv, 0}, {r * dv, 1}});
    b = g.buffer<Role::Mixer>(Hv, "beta_logit");
    a = g.buffer<Role::Mixer>(Hv, "decay_logit");
    g.split_groups(AnyBuf(ba), {AnyBuf(b), AnyBuf(a)}, Hk, {{r, 0}, {r, 1}});
  } else {
    qkv = g.linear<Role::Mixer>(x, w[S::DnQkv], nullptr, la.conv_channels(), "qkv");
    z = g.linear<Role::Mixer>(x, w[S::DnZ], nullptr, la.value_width(), "z");
    b = g.linear<Role::Mixer>(x, w[S::DnB], nullptr, Hv, "beta_logit");
    a = g.linear<Role::Mixer>(x, w[S::DnA], nullptr, Hv, "decay_logit");
  }
  auto conv = g.causal_conv(qkv, w[S::DnConv], la.conv_channels(), la.conv_kernel, uint32_t(layer), 0);
  DeltaRuleParams p;
  p.key_heads = Hk;
  p.value_heads = Hv;
  p.key_dim = dk;
  p.value_dim = dv;
  p.scale = 1.0f / std::sqrt(float(dk));
  auto o = g.gated_delta_rule(conv, b, a, w[S::DnALog], w[S::DnDtBias], uint32_t(layer), la.conv_state_floats(), p);
  o = g.gated_rms_norm(o, z, w[S::DnNorm], dv, s.rms_eps);
  return g.linear<Role::Hidden>(o, w[S::DnOut], nullptr, s.hidden, "linear_attn_proj");
}

}  // namespace

BufId<Role::Hidden> qwen3_next_build_layer(GraphBuilder& g, const ModelSpec& s, const ModelWeights& model,
                                           BufId<Role::Hidden> x, int layer, const BuildOptions& o) {
  const LayerWeights& w = model.layers[size_t(layer)];
  const float off = s.linear_attn.norm_weight_offset;
  auto h = g.rms_norm(x, w[S::AttnNorm], s.hidden, s.rms_eps, "attn_norm", off);
  x = g.add(x, s.linear_attn.is_linear(layer) ? build_gated_deltanet(g, s, w, h, layer)
                                              : build_gated_attention(g, s, w, h, layer));
  h = g.rms_norm(x, w[S::FfnNorm], s.hidden, s.rms_eps, "ffn_norm", off);
  auto ffn = s.layer_is_moe[size_t(layer)]
                 ? g.moe(h, moe_params(s, model, layer, o.f32_activations))
                 : build_swiglu_mlp(g, w, S::MlpGate, S::MlpUp, S::MlpDown, s.dense_ffn, h);
  return g.add(x, ffn);
}

StateDesc qwen3_next_layer_state(const ModelSpec& s, int layer) {
  if (s.linear_attn.is_linear(layer)) {
    StateDesc d{LayerKind::Recurrent, layer};
    d.fixed_floats = s.linear_attn.state_floats();
    return d;
  }
  return {LayerKind::FullAttention, layer, s.kv_dim(), s.kv_dim()};
}

void configure_qwen3_next_layers(const Config& cfg, ModelSpec& s, bool fused_projections) {
  LinearAttnSpec& la = s.linear_attn;
  s.head_dim = cfg.get_dim("head_dim", 256);  // the config class's default
  s.qk_norm = QkNorm::PerHead;
  s.qkv_bias = s.o_bias = cfg.get_bool("attention_bias", false);
  // Absent keys take the config class's defaults (512 experts, top-10,
  // expert and shared-expert ffn 512); num_experts 0 makes every layer
  // dense, as in transformers.
  s.experts = cfg.get_int("num_experts", 512) == 0 ? 0 : cfg.get_dim("num_experts", 512);
  if (s.experts) {
    s.top_k = cfg.get_dim("num_experts_per_tok", 10);
    s.expert_ffn = cfg.get_dim("moe_intermediate_size", 512);
    s.shared_ffn = cfg.get_int("shared_expert_intermediate_size", 512) == 0
                       ? 0
                       : cfg.get_dim("shared_expert_intermediate_size", 512);
    s.shared_expert_gate = s.shared_ffn > 0;
  }
  s.dense_ffn = cfg.get_int("intermediate_size", 0) == 0 ? 0 : cfg.get_dim("intermediate_size");
  s.norm_topk = cfg.get_bool("norm_topk_prob", true);
  set_sparse_layers(cfg, s);
  if (s.experts == 0) std::fill(s.layer_is_moe.begin(), s.layer_is_moe.end(), uint8_t(0));

  la.fused_projections = fused_projections;
  // Published configs may say so; transformers' classes always gate (and
  // ignore the key), so only the gated form exists.
  if (!cfg.get_bool("attn_output_gate", true))
    fail("{}: 'attn_output_gate' = false: attention without its output gate is not implemented", cfg.source());
  la.gated_attention = true;
  la.norm_weight_offset = 1.f;
  la.conv_kernel = cfg.get_dim("linear_conv_kernel_dim", 4);
  la.key_heads = cfg.get_dim("linear_num_key_heads", 16);
  la.value_heads = cfg.get_dim("linear_num_value_heads", 32);
  la.key_dim = cfg.get_dim("linear_key_head_dim", 128);
  la.value_dim = cfg.get_dim("linear_value_head_dim", 128);
  if (la.value_heads % la.key_heads != 0)
    fail("{}: linear_num_value_heads {} is not a multiple of linear_num_key_heads {}", cfg.source(), la.value_heads,
         la.key_heads);
  if (int64_t(la.key_heads) * la.key_dim > (1 << 24) || int64_t(la.value_heads) * la.value_dim > (1 << 24) ||
      int64_t(la.value_heads) * la.key_dim * la.value_dim > (int64_t(1) << 32) || la.conv_kernel > 64)
    fail("{}: linear-attention sizes (heads {}x{} / {}x{}, conv kernel {}) are too large", cfg.source(),
         la.key_heads, la.key_dim, la.value_heads, la.value_dim, la.conv_kernel);
  const double partial = cfg.get_float("partial_rotary_factor", 0.25);
  la.rotary_dims = int(double(s.head_dim) * partial);
  if (la.rotary_dims <= 0 || la.rotary_dims % 2 != 0)
    fail("{}: partial_rotary_factor {} x head_dim {} gives {} rotary dims; need a positive even number",
         cfg.source(), partial, s.head_dim, la.rotary_dims);

  // layer_types, or every full_attention_interval-th layer full attention.
  la.layer_is_linear.assign(size_t(s.layers), 0);
  if (cfg.has("layer_types")) {
    const auto& v = cfg.raw()["layer_types"];
    if (!v.is_array() || v.size() != size_t(s.layers))
      fail("{}: 'layer_types' must be a list of {} entries (one per layer), got {}", cfg.source(), s.layers, v.dump());
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string t = v[i].is_string() ? v[i].get<std::string>() : v[i].dump();
      if (t == "linear_attention") la.layer_is_linear[i] = 1;
      else if (t != "full_attention")
        fail("{}: 'layer_types'[{}] = '{}' (supported: linear_attention, full_attention)", cfg.source(), i, t);
    }
  } else {
    const int64_t interval = cfg.get_int("full_attention_interval", 4);
    if (interval < 1) fail("{}: 'full_attention_interval' = {} must be at least 1", cfg.source(), interval);
    for (int l = 0; l < s.layers; ++l) la.layer_is_linear[size_t(l)] = (l + 1) % interval != 0;
  }
}

void qwen3_next_layer_tensors(TensorList& list, int l, const std::string& p) {
  const ModelSpec& s = list.spec;
  const LinearAttnSpec& la = s.linear_attn;
  const int64_t D = s.hidden;
  list.add(p + "input_layernorm.weight", {D}, ParamKind::Norm, l, S::AttnNorm);
  if (la.is_linear(l)) {
    const std::string a = p + "linear_attn.";
    const int64_t C = la.conv_channels(), V = la.value_width(), Hv = la.value_heads;
    if (la.fused_projections) {
      list.add(a + "in_proj_qkvz.weight", {2 * int64_t(la.key_width()) + 2 * V, D}, ParamKind::Linear, l, S::DnQkvz);
      list.add(a + "in_proj_ba.weight", {2 * Hv, D}, ParamKind::Linear, l, S::DnBa);
    } else {
      list.add(a + "in_proj_qkv.weight", {C, D}, ParamKind::Linear, l, S::DnQkv);
      list.add(a + "in_proj_z.weight", {V, D}, ParamKind::Linear, l, S::DnZ);
      list.add(a + "in_proj_b.weight", {Hv, D}, ParamKind::Linear, l, S::DnB);
      list.add(a + "in_proj_a.weight", {Hv, D}, ParamKind::Linear, l, S::DnA);
    }
    list.add(a + "conv1d.weight", {C, 1, la.conv_kernel}, ParamKind::Norm, l, S::DnConv);
    list.add(a + "dt_bias", {Hv}, ParamKind::Norm, l, S::DnDtBias);
    list.add(a + "A_log", {Hv}, ParamKind::Norm, l, S::DnALog);
    list.add(a + "norm.weight", {la.value_dim}, ParamKind::Norm, l, S::DnNorm);
    list.add(a + "out_proj.weight", {D, V}, ParamKind::Linear, l, S::DnOut);
  } else {
    const std::string a = p + "self_attn.";
    const int64_t Q = s.q_dim(), KV = s.kv_dim();
    list.add(a + "q_proj.weight", {2 * Q, D}, ParamKind::Linear, l, S::Q);
    list.add(a + "k_proj.weight", {KV, D}, ParamKind::Linear, l, S::K);
    list.add(a + "v_proj.weight", {KV, D}, ParamKind::Linear, l, S::V);
    list.add(a + "o_proj.weight", {D, Q}, ParamKind::Linear, l, S::O);
    if (s.qkv_bias) {
      list.add(a + "q_proj.bias", {2 * Q}, ParamKind::Bias, l, S::QBias);
      list.add(a + "k_proj.bias", {KV}, ParamKind::Bias, l, S::KBias);
      list.add(a + "v_proj.bias", {KV}, ParamKind::Bias, l, S::VBias);
    }
    if (s.o_bias) list.add(a + "o_proj.bias", {D}, ParamKind::Bias, l, S::OBias);
    list.add(a + "q_norm.weight", {s.head_dim}, ParamKind::Norm, l, S::QNorm);
    list.add(a + "k_norm.weight", {s.head_dim}, ParamKind::Norm, l, S::KNorm);
  }
  list.add(p + "post_attention_layernorm.weight", {D}, ParamKind::Norm, l, S::FfnNorm);
  if (s.layer_is_moe[size_t(l)])
    list.moe(p + std::string(list.arch.moe_prefix), l);
  else
    list.swiglu_mlp(p + "mlp.", s.dense_ffn, l, S::MlpGate, S::MlpUp, S::MlpDown);
}

namespace {
void layer_tensors(TensorList& list, int l) { qwen3_next_layer_tensors(list, l, layer_prefix(l)); }
}  // namespace

extern const ArchDef kArchQwen3Next{.model_type = "qwen3_next",
                                    .configure = configure,
                                    .moe_prefix = "mlp.",
                                    .expert_names = experts,
                                    .default_rope_theta = 10000.0,
                                    .class_keys = kKeys,
                                    .aliases = {},
                                    .gguf = {.name = "qwen3next", .llama_norm_topk = true, .expert_ffn_key = true, .layout = &kGgufHybridLayout},
                                    .layer_tensors = layer_tensors,
                                    .build_layer = qwen3_next_build_layer,
                                    .layer_state = qwen3_next_layer_state,
                                    .partial_rotary = true};

}  // namespace moeflux
