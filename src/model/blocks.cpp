#include "model/blocks.h"

#include <cmath>

namespace moeflux {

std::vector<StateDesc> layer_states(const ModelSpec& s) {
  std::vector<StateDesc> states;
  for (int l = 0; l < s.layers; ++l)
    states.push_back({s.sliding_window ? LayerKind::SlidingAttention : LayerKind::FullAttention, l, s.kv_dim(),
                      s.kv_dim()});
  return states;
}

namespace {

int next_moe_layer(const ModelSpec& s, int layer) {
  for (int l = layer + 1; l < s.layers; ++l)
    if (s.layer_is_moe[size_t(l)]) return l;
  return -1;
}

}  // namespace

MoeParams moe_params(const ModelSpec& s, const ModelWeights& w, int layer, bool f32_activations) {
  MoeParams p;
  p.f32_activations = f32_activations;
  const LayerWeights& lw = w.layers[size_t(layer)];
  p.layer = layer;
  p.experts = s.experts;
  p.top_k = s.top_k;
  p.expert_ffn = s.expert_ffn;
  p.router.scoring = RouterScoring::Softmax;
  p.router.renormalize = s.norm_topk;
  p.router_weight = lw.router;
  p.shared_ffn = s.shared_ffn;
  if (s.shared_ffn > 0) {
    p.shared_gate = lw.shared.gate;
    p.shared_up = lw.shared.up;
    p.shared_down = lw.shared.down;
    p.shared_expert_gate = lw.shared_gate;
  }
  p.next_layer = next_moe_layer(s, layer);
  if (p.next_layer >= 0) p.next_router_weight = w.layers[size_t(p.next_layer)].router;
  return p;
}

BufId<Role::Hidden> build_attention(GraphBuilder& g, const ModelSpec& s, const AttentionWeights& w,
                                    BufId<Role::Hidden> x, int layer) {
  auto q = g.linear<Role::Query>(x, w.q, w.q_bias, s.q_dim(), "q");
  auto k = g.linear<Role::Key>(x, w.k, w.k_bias, s.kv_dim(), "k");
  auto v = g.linear<Role::Value>(x, w.v, w.v_bias, s.kv_dim(), "v");
  if (s.qk_norm != QkNorm::None) {
    const int qg = s.qk_norm == QkNorm::PerHead ? s.head_dim : s.q_dim();
    const int kg = s.qk_norm == QkNorm::PerHead ? s.head_dim : s.kv_dim();
    q = g.rms_norm(q, w.q_norm, qg, s.rms_eps, "q_norm");
    k = g.rms_norm(k, w.k_norm, kg, s.rms_eps, "k_norm");
  }
  if (s.clip_qkv) {  // OLMoE clamps after the q/k norm
    q = g.clamp(q, *s.clip_qkv);
    k = g.clamp(k, *s.clip_qkv);
    v = g.clamp(v, *s.clip_qkv);
  }
  const RopeParams rope{s.head_dim, s.head_dim, s.rope_theta, s.rope_interleaved};
  q = g.rope(q, rope);
  k = g.rope(k, rope);
  AttentionParams ap;
  ap.heads = s.heads;
  ap.kv_heads = s.kv_heads;
  ap.head_dim = s.head_dim;
  ap.scale = 1.0f / std::sqrt(float(s.head_dim));
  ap.window = s.sliding_window;
  auto a = g.attention(q, k, v, uint32_t(layer), ap);
  return g.linear<Role::Hidden>(a, w.o, w.o_bias, s.hidden, "attn_proj");
}

BufId<Role::Hidden> build_swiglu_mlp(GraphBuilder& g, const MlpWeights& w, int ffn, BufId<Role::Hidden> x) {
  auto gate = g.linear<Role::Ffn>(x, w.gate, nullptr, ffn, "mlp_gate");
  auto up = g.linear<Role::Ffn>(x, w.up, nullptr, ffn, "mlp_up");
  auto act = g.swiglu(gate, up);
  return g.linear<Role::Hidden>(act, w.down, nullptr, g.width(x), "mlp_down");
}

BufId<Role::Hidden> build_decoder_layer(GraphBuilder& g, const ModelSpec& s, const ModelWeights& model,
                                        BufId<Role::Hidden> x, int layer, bool f32) {
  const LayerWeights& w = model.layers[size_t(layer)];
  auto h = g.rms_norm(x, w.attn_norm, s.hidden, s.rms_eps, "attn_norm");
  x = g.add(x, build_attention(g, s, w.attn, h, layer));
  h = g.rms_norm(x, w.ffn_norm, s.hidden, s.rms_eps, "ffn_norm");
  auto ffn = s.layer_is_moe[size_t(layer)] ? g.moe(h, moe_params(s, model, layer, f32)) : build_swiglu_mlp(g, w.mlp, s.dense_ffn, h);
  return g.add(x, ffn);
}

Graph build_model_graph(const ModelSpec& s, const ModelWeights& w, int tokens, bool all_logits,
                        bool f32_activations) {
  GraphBuilder g(tokens);
  g.set_f32_activations(f32_activations);
  g.set_states(layer_states(s));
  auto x = g.embed(g.input(), w.embed, s.hidden);
  for (int l = 0; l < s.layers; ++l) x = build_decoder_layer(g, s, w, x, l, f32_activations);
  x = g.rms_norm(x, w.final_norm, s.hidden, s.rms_eps, "final_norm");
  g.set_output(g.linear<Role::Logits>(x, w.lm_head, nullptr, s.vocab, "logits", !all_logits));
  return g.finish();
}

}  // namespace moeflux
