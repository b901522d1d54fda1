// DeepSeek-V3 (and Cogito-V2, Kimi-K2 shapes), as transformers 4.57's
// modeling_deepseek_v3.py defines it:
//  - multi-head latent attention: q through a low-rank q_a_proj ->
//    q_a_layernorm -> q_b_proj (or one q_proj when q_lora_rank is null);
//    kv_a_proj_with_mqa gives a compressed latent (kv_lora_rank, normed by
//    kv_a_layernorm) and one shared RoPE key part (qk_rope_head_dim);
//    kv_b_proj expands the latent to each head's K nope part and V. The
//    cache keeps the latent and the RoPE part only (LatentAttention state);
//  - RoPE on each head's last qk_rope_head_dim dims, on (2i, 2i+1) pairs
//    when rope_interleave, with YaRN scaling and its softmax-scale
//    correction (mscale_all_dim);
//  - noaux_tc routing: sigmoid scores, e_score_correction_bias for the
//    choice only, group-limited top-k, norm_topk_prob, routed_scaling_factor;
//  - the first first_k_dense_replace layers dense; n_shared_experts shared
//    experts (one MLP of n_shared_experts x moe_intermediate_size, no gate).
#include <cmath>

#include "core/error.h"
#include "graph/builder.h"
#include "model/arch.h"
#include "model/arch_deepseek_v3.h"
#include "model/blocks.h"
#include "model/config.h"
#include "model/rope_yarn.h"
#include "model/tensor_list.h"

namespace moeflux {

extern const GgufLayout kGgufDeepseek2Layout;  // gguf_deepseek2.cpp

namespace {

using S = TensorSlot;

// q_a_layernorm and kv_a_layernorm are built without an eps in
// transformers (DeepseekV3RMSNorm's default), not with rms_norm_eps.
constexpr float kLowRankNormEps = 1e-6f;

// Fields of transformers' DeepseekV3Config beyond the generic ones, and
// keys of the original DeepSeek-V3 config.json (its own remote code) that
// transformers keeps as plain attributes: scoring_func, topk_method and
// moe_layer_freq are checked below; the others (expert parallelism, the
// multi-token-prediction layer, training losses) do not change inference.
constexpr std::string_view kKeys[] = {
    "attention_bias", "aux_loss_alpha", "auto_map", "ep_size", "first_k_dense_replace", "head_dim", "hidden_act",
    "hidden_size", "intermediate_size", "kv_lora_rank", "max_position_embeddings", "moe_intermediate_size",
    "moe_layer_freq", "n_group", "n_routed_experts", "n_shared_experts", "norm_topk_prob", "num_attention_heads",
    "num_experts_per_tok", "num_hidden_layers", "num_key_value_heads", "num_nextn_predict_layers", "pretraining_tp",
    "q_lora_rank", "qk_head_dim", "qk_nope_head_dim", "qk_rope_head_dim", "rms_norm_eps", "rope_interleave",
    "routed_scaling_factor", "scoring_func", "seq_aux", "topk_group", "topk_method", "v_head_dim", "vocab_size"};

double in_range(const std::string& src, const char* key, double v, double lo, double hi) {
  return value_in_range(src, key, v, lo, hi);
}
double in_range(const Config& cfg, const char* key, double v, double lo, double hi) {
  return config_in_range(cfg, key, v, lo, hi);
}

void configure_yarn(const Config& cfg, ModelSpec& s) {
  apply_yarn(read_yarn_config(cfg, s.max_positions), s, cfg.source());
}

}  // namespace

void apply_yarn(const YarnConfig& c, ModelSpec& s, const std::string& src) {
  s.mla.yarn = yarn_rope(c, s.mla.qk_rope_dim, s.rope_theta, src);
  s.mla.yarn_config = c;
  const double factor = c.factor, mscale_all_dim = c.mscale_all_dim;
  // The attention scale's correction (DeepseekV3Attention.__init__).
  s.mla.scale = float(1.0 / std::sqrt(double(s.mla.qk_head_dim())));
  if (mscale_all_dim != 0) {
    const double m = yarn_mscale(factor, mscale_all_dim);
    s.mla.scale = float(in_range(src, "softmax scale with mscale_all_dim", double(s.mla.scale) * m * m, 1e-30, 1e30));
  }
}

namespace {

void configure(const Config& cfg, ModelSpec& s) {
  MlaSpec& m = s.mla;
  if (cfg.get_bool("attention_bias", false))
    fail("{}: 'attention_bias' = true is not implemented for deepseek_v3", cfg.source());
  if (s.kv_heads != s.heads)
    fail("{}: num_key_value_heads {} differs from num_attention_heads {}: multi-head latent attention expands "
         "the latent to every head",
         cfg.source(), s.kv_heads, s.heads);
  // A null q_lora_rank is a direct q_proj; an absent one is the class default.
  const auto& raw = cfg.raw();
  if (raw.contains("q_lora_rank") && raw["q_lora_rank"].is_null())
    m.q_lora_rank = 0;
  else
    m.q_lora_rank = cfg.get_dim("q_lora_rank", 1536);
  m.kv_lora_rank = cfg.get_dim("kv_lora_rank", 512);
  m.qk_nope_dim = cfg.get_dim("qk_nope_head_dim", 128);
  m.qk_rope_dim = cfg.get_dim("qk_rope_head_dim", 64);
  m.v_dim = cfg.get_dim("v_head_dim", 128);
  if (m.qk_rope_dim % 2 != 0) fail("{}: 'qk_rope_head_dim' = {} must be even for RoPE", cfg.source(), m.qk_rope_dim);
  // transformers derives head_dim (the RoPE width) and qk_head_dim, but a
  // config.json value overrides its attribute: one that disagrees is refused.
  if (auto hd = cfg.get_optional_int("head_dim"); hd && *hd != m.qk_rope_dim)
    fail("{}: 'head_dim' = {} differs from qk_rope_head_dim {}", cfg.source(), *hd, m.qk_rope_dim);
  if (auto qk = cfg.get_optional_int("qk_head_dim"); qk && *qk != m.qk_head_dim())
    fail("{}: 'qk_head_dim' = {} differs from qk_nope_head_dim + qk_rope_head_dim = {}", cfg.source(), *qk,
         m.qk_head_dim());
  // Bounded so that the projections' widths fit an int (as the generic heads x head_dim).
  const int64_t widest = int64_t(s.heads) * std::max(m.qk_head_dim(), m.qk_nope_dim + m.v_dim);
  if (widest > (int64_t(1) << 24) || int64_t(m.kv_lora_rank) + m.qk_rope_dim > (int64_t(1) << 24))
    fail("{}: num_attention_heads {} x head dims {} + {} / {} or kv_lora_rank {} are too large", cfg.source(), s.heads,
         m.qk_nope_dim, m.qk_rope_dim, m.v_dim, m.kv_lora_rank);
  s.head_dim = m.qk_rope_dim;
  m.rope_interleave = cfg.get_bool("rope_interleave", true);
  m.scale = float(1.0 / std::sqrt(double(m.qk_head_dim())));
  if (cfg.has("rope_yarn")) configure_yarn(cfg, s);

  // The original config.json's routing keys: only DeepSeek-V3's is implemented.
  if (cfg.has("scoring_func") && cfg.get_string("scoring_func") != "sigmoid")
    fail("{}: 'scoring_func' = '{}' is not implemented (deepseek_v3: sigmoid)", cfg.source(),
         cfg.get_string("scoring_func"));
  if (cfg.has("topk_method") && cfg.get_string("topk_method") != "noaux_tc")
    fail("{}: 'topk_method' = '{}' is not implemented (deepseek_v3: noaux_tc)", cfg.source(),
         cfg.get_string("topk_method"));
  if (cfg.get_int("moe_layer_freq", 1) != 1)
    fail("{}: 'moe_layer_freq' = {} is not implemented (1: every layer after the dense ones)", cfg.source(),
         cfg.get_int("moe_layer_freq"));
  // FP8 checkpoints (quantization_config fp8) are refused with the other
  // quantization methods (parse_mlx_quantization).

  s.experts = cfg.get_dim("n_routed_experts", 256);
  s.top_k = cfg.get_dim("num_experts_per_tok", 8);
  s.expert_ffn = cfg.get_dim("moe_intermediate_size", 2048);
  s.dense_ffn = cfg.get_dim("intermediate_size", 18432);
  const int shared = cfg.get_dim("n_shared_experts", 1);
  if (int64_t(shared) * s.expert_ffn > (int64_t(1) << 30))
    fail("{}: n_shared_experts {} x moe_intermediate_size {} is too large", cfg.source(), shared, s.expert_ffn);
  s.shared_ffn = shared * s.expert_ffn;
  s.shared_expert_gate = false;
  s.norm_topk = cfg.get_bool("norm_topk_prob", true);
  m.router.scoring = RouterScoring::Sigmoid;
  m.router.renormalize = s.norm_topk;
  m.router.groups = cfg.get_dim("n_group", 8);
  m.router.topk_groups = cfg.get_dim("topk_group", 4);
  m.router.scaling = float(in_range(cfg, "routed_scaling_factor", cfg.get_float("routed_scaling_factor", 2.5), 1e-6, 1e6));
  try {
    validate_router(m.router, s.experts, s.top_k);
  } catch (const Error& e) {
    fail("{}: n_routed_experts {}, n_group {}, topk_group {}, num_experts_per_tok {}: {}", cfg.source(), s.experts,
         m.router.groups, m.router.topk_groups, s.top_k, e.what());
  }
  const int64_t dense = cfg.get_int("first_k_dense_replace", 3);
  if (dense < 0) fail("{}: 'first_k_dense_replace' = {} must be >= 0", cfg.source(), dense);
  s.layer_is_moe.assign(size_t(s.layers), 0);
  for (int l = 0; l < s.layers; ++l) s.layer_is_moe[size_t(l)] = l >= dense;
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

void layer_tensors(TensorList& list, int l) {
  const ModelSpec& s = list.spec;
  const MlaSpec& m = s.mla;
  const std::string p = layer_prefix(l), a = p + "self_attn.", f = p + "mlp.";
  const int64_t D = s.hidden, H = s.heads, L = m.kv_lora_rank, R = m.qk_rope_dim;
  list.add(p + "input_layernorm.weight", {D}, ParamKind::Norm, l, S::AttnNorm);
  if (m.q_lora_rank > 0) {
    list.add(a + "q_a_proj.weight", {m.q_lora_rank, D}, ParamKind::Linear, l, S::MlaQA);
    list.add(a + "q_a_layernorm.weight", {m.q_lora_rank}, ParamKind::Norm, l, S::MlaQANorm);
    list.add(a + "q_b_proj.weight", {H * m.qk_head_dim(), m.q_lora_rank}, ParamKind::Linear, l, S::MlaQB);
  } else {
    list.add(a + "q_proj.weight", {H * m.qk_head_dim(), D}, ParamKind::Linear, l, S::Q);
  }
  list.add(a + "kv_a_proj_with_mqa.weight", {L + R, D}, ParamKind::Linear, l, S::MlaKvA);
  list.add(a + "kv_a_layernorm.weight", {L}, ParamKind::Norm, l, S::MlaKvANorm);
  list.add(a + "kv_b_proj.weight", {H * (m.qk_nope_dim + m.v_dim), L}, ParamKind::Linear, l, S::MlaKvB);
  list.add(a + "o_proj.weight", {D, H * m.v_dim}, ParamKind::Linear, l, S::O);
  list.add(p + "post_attention_layernorm.weight", {D}, ParamKind::Norm, l, S::FfnNorm);
  if (!s.layer_is_moe[size_t(l)]) {
    list.swiglu_mlp(f, s.dense_ffn, l, S::MlpGate, S::MlpUp, S::MlpDown);
    return;
  }
  list.add(f + "gate.weight", {s.experts, D}, ParamKind::Router, l, S::Router);
  list.add(f + "gate.e_score_correction_bias", {s.experts}, ParamKind::Bias, l, S::RouterCorrectionBias);
  for (int e = 0; e < (list.all_experts() ? s.experts : 1); ++e) {
    const ExpertTensorNames n = experts(l, e);
    list.add(n.gate, {s.expert_ffn, D}, ParamKind::ExpertLinear, l, S::ExpertGate, e);
    list.add(n.up, {s.expert_ffn, D}, ParamKind::ExpertLinear, l, S::ExpertUp, e);
    list.add(n.down, {D, s.expert_ffn}, ParamKind::ExpertLinear, l, S::ExpertDown, e);
  }
  list.swiglu_mlp(f + "shared_experts.", s.shared_ffn, l, S::SharedGate, S::SharedUp, S::SharedDown);
}

BufId<Role::Hidden> build_attention(GraphBuilder& g, const ModelSpec& s, const LayerWeights& w,
                                    BufId<Role::Hidden> x, int layer, MlaPath path) {
  const MlaSpec& m = s.mla;
  const int H = s.heads, L = m.kv_lora_rank, R = m.qk_rope_dim;
  BufId<Role::Query> q;
  if (m.q_lora_rank > 0) {
    auto qa = g.linear<Role::Query>(x, w[S::MlaQA], nullptr, m.q_lora_rank, "q_a");
    qa = g.rms_norm(qa, w[S::MlaQANorm], m.q_lora_rank, kLowRankNormEps, "q_a_norm");
    q = g.linear<Role::Query>(qa, w[S::MlaQB], nullptr, H * m.qk_head_dim(), "q");
  } else {
    q = g.linear<Role::Query>(x, w[S::Q], nullptr, H * m.qk_head_dim(), "q");
  }
  RopeParams rope{m.qk_head_dim(), R, s.rope_theta, m.rope_interleave, m.qk_nope_dim, m.yarn};
  q = g.rope(q, rope);
  auto kv_a = g.linear<Role::Key>(x, w[S::MlaKvA], nullptr, L + R, "kv_a");
  auto latent = g.slice<Role::Key>(kv_a, 0, L, "latent");
  latent = g.rms_norm(latent, w[S::MlaKvANorm], L, kLowRankNormEps, "kv_a_norm");
  auto k_rope = g.slice<Role::Key>(kv_a, L, R, "k_rope");
  rope.head_dim = R;
  rope.offset = 0;
  k_rope = g.rope(k_rope, rope);
  MlaParams p;
  p.heads = H;
  p.nope_dim = m.qk_nope_dim;
  p.rope_dim = R;
  p.v_dim = m.v_dim;
  p.kv_lora_rank = L;
  p.scale = m.scale;
  p.kv_b = w[S::MlaKvB];
  p.path = path;
  auto a = g.mla_attention(q, latent, k_rope, uint32_t(layer), p);
  return g.linear<Role::Hidden>(a, w[S::O], nullptr, s.hidden, "attn_proj");
}

BufId<Role::Hidden> build_layer(GraphBuilder& g, const ModelSpec& s, const ModelWeights& model,
                                BufId<Role::Hidden> x, int layer, const BuildOptions& o) {
  const LayerWeights& w = model.layers[size_t(layer)];
  auto h = g.rms_norm(x, w[S::AttnNorm], s.hidden, s.rms_eps, "attn_norm");
  x = g.add(x, build_attention(g, s, w, h, layer, o.mla_path));
  h = g.rms_norm(x, w[S::FfnNorm], s.hidden, s.rms_eps, "ffn_norm");
  BufId<Role::Hidden> ffn;
  if (s.layer_is_moe[size_t(layer)]) {
    MoeParams p = moe_params(s, model, layer, o.f32_activations);
    p.router = s.mla.router;
    p.correction_bias = w[S::RouterCorrectionBias];
    ffn = g.moe(h, p);
  } else {
    ffn = build_swiglu_mlp(g, w, S::MlpGate, S::MlpUp, S::MlpDown, s.dense_ffn, h);
  }
  return g.add(x, ffn);
}

StateDesc layer_state(const ModelSpec& s, int layer) {
  return {LayerKind::LatentAttention, layer, s.mla.kv_lora_rank + s.mla.qk_rope_dim, 0};
}

}  // namespace

extern const ArchDef kArchDeepseekV3{.model_type = "deepseek_v3",
                                     .configure = configure,
                                     .moe_prefix = "mlp.",
                                     .expert_names = experts,
                                     .default_rope_theta = 10000.0,
                                     .class_keys = kKeys,
                                     .aliases = {},
                                     .gguf = {.name = "deepseek2", .llama_norm_topk = true, .expert_ffn_key = true, .layout = &kGgufDeepseek2Layout},
                                     .layer_tensors = layer_tensors,
                                     .build_layer = build_layer,
                                     .layer_state = layer_state,
                                     .rope_yarn = true};

}  // namespace moeflux
